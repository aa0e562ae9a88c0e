/**
 * A committed image loaded by podman: `layerfs commit --format docker` writes what `podman load`
 * takes, and podman's own unpacking of it shows the container's changes. Skipped, with the reason
 * printed, without podman.
 */
import { execFile } from 'node:child_process'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { run as commit } from '../../src/cli/commands/commit.js'
import { mknod } from '../../src/sys/native.js'
import { makeTar, ociLayoutFiles, runCli, tempDir, writeFilesToDir } from './fixtures.js'

const exec = promisify(execFile)
const hasPodman = await exec('which', ['podman']).then(() => true, () => false)
const root = process.getuid?.() === 0
if (!hasPodman || !root) console.log(`skipping podman test: ${!hasPodman ? 'podman is not installed (apt-get install podman)' : 'needs root'}`)

describe.skipIf(!hasPodman || !root)('committed images loaded by podman', () => {
  let t: { dir: string; cleanup: () => Promise<void> }
  let podman: (...args: string[]) => Promise<string>
  beforeAll(async () => {
    t = await tempDir()
    // A private store: vfs needs no mounts, and nothing touches the machine's own images.
    const storage = ['--root', join(t.dir, 'root'), '--runroot', join(t.dir, 'run'), '--storage-driver', 'vfs']
    podman = async (...args) => (await exec('podman', [...storage, ...args], { timeout: 60_000 })).stdout
  })
  afterAll(async () => {
    await podman?.('image', 'unmount', '--all').catch(() => undefined)
    await t?.cleanup()
  })

  it('loads a docker-format commit and shows the upper layer applied', async () => {
    const base = await makeTar([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/hostname', content: 'base\n' },
      { name: 'etc/motd', content: 'hello\n' },
    ])
    const image = await writeFilesToDir(join(t.dir, 'oci'), ociLayoutFiles([{ tag: 'v1', layers: [base] }]))
    const upper = join(t.dir, 'upper')
    await mkdir(join(upper, 'etc'), { recursive: true })
    await writeFile(join(upper, 'etc/hostname'), 'container\n')
    await mknod(join(upper, 'etc/motd'), 0o020000, 0) // a kernel-format whiteout
    const out = join(t.dir, 'image.tar')
    const r = await runCli(commit, ['--upper', upper, '--from', `${image}:v1`, '--tag', 'committed:v2', '-o', out, '--format', 'docker'])
    expect(r.code).toBe(0)
    expect(await podman('load', '-i', out)).toMatch(/committed:v2/)
    const rootfs = (await podman('image', 'mount', 'localhost/committed:v2')).trim()
    expect(await readFile(join(rootfs, 'etc/hostname'), 'utf8')).toBe('container\n')
    await expect(readFile(join(rootfs, 'etc/motd'))).rejects.toMatchObject({ code: 'ENOENT' })
  })
})
