/**
 * Real images built by Debian's umoci (and read back by skopeo): import, inspect and compare the
 * merged tree with `umoci unpack`'s rootfs. Skipped, with the reason printed, without the binaries.
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { copyFile, lstat, mkdir, readFile, readdir, readlink, rm, symlink, writeFile, chmod } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { resolve } from 'node:path'
import { run as commit } from '../../src/cli/commands/commit.js'
import { run as inspect } from '../../src/cli/commands/inspect.js'
import { fuseAvailable, mountFuse, unmount } from '../helpers/mount.js'
import type { ImageReport } from '../../src/image/analyze.js'
import { openImage } from '../../src/image/open-image.js'
import { lgetxattr } from '../../src/sys/native.js'
import { runCli, tempDir } from './fixtures.js'

const exec = promisify(execFile)
const has = async (bin: string) => exec('which', [bin]).then(() => true, () => false)
const hasUmoci = await has('umoci')
if (!hasUmoci) console.log('skipping umoci image tests: umoci is not installed (apt-get install umoci)')
const rootless = process.getuid?.() !== 0 ? ['--rootless'] : []

/** Applies layer dirs bottom to top onto a plain dir, honouring both whiteout encodings. */
async function applyLayer(layer: string, target: string): Promise<void> {
  for (const name of (await readdir(layer)).sort()) {
    const src = join(layer, name)
    const dst = join(target, name)
    const st = await lstat(src)
    if (name === '.wh..wh..opq') continue
    if (name.startsWith('.wh.')) {
      await rm(join(target, name.slice(4)), { recursive: true, force: true })
      continue
    }
    if (st.isCharacterDevice() && st.rdev === 0) {
      await rm(dst, { recursive: true, force: true })
      continue
    }
    const old = await lstat(dst).catch(() => undefined)
    if (st.isDirectory()) {
      const opaque = (await readdir(src)).includes('.wh..wh..opq') || (await lgetxattr(src, 'trusted.overlay.opaque').catch(() => undefined))?.toString() === 'y'
      if (old && (!old.isDirectory() || opaque)) await rm(dst, { recursive: true, force: true })
      await mkdir(dst, { recursive: true })
      await chmod(dst, st.mode & 0o7777)
      await applyLayer(src, dst)
      continue
    }
    if (old) await rm(dst, { recursive: true, force: true })
    if (st.isSymbolicLink()) await symlink(await readlink(src), dst)
    else if (st.isFile()) {
      await copyFile(src, dst)
      await chmod(dst, st.mode & 0o7777)
    }
  }
}

/** path → "type mode size sha/target" for a whole tree. */
async function snapshot(root: string, rel = ''): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const name of (await readdir(join(root, rel))).sort()) {
    const p = join(rel, name)
    const st = await lstat(join(root, p))
    const mode = (st.mode & 0o7777).toString(8)
    if (st.isDirectory()) {
      out[p] = `dir ${mode}`
      Object.assign(out, await snapshot(root, p))
    } else if (st.isSymbolicLink()) out[p] = `symlink -> ${await readlink(join(root, p))}`
    else out[p] = `file ${mode} ${createHash('sha256').update(await readFile(join(root, p))).digest('hex').slice(0, 16)}`
  }
  return out
}

describe.skipIf(!hasUmoci)('images built by umoci', () => {
  let t: { dir: string; cleanup: () => Promise<void> }
  let layout: string
  beforeAll(async () => {
    t = await tempDir()
    layout = join(t.dir, 'oci')
    const bundle = join(t.dir, 'bundle')
    const umoci = (...args: string[]) => exec('umoci', args)
    await umoci('init', '--layout', layout)
    await umoci('new', '--image', `${layout}:t`)
    await umoci('unpack', ...rootless, '--image', `${layout}:t`, bundle)
    const rootfs = join(bundle, 'rootfs')
    await mkdir(join(rootfs, 'etc/sub'), { recursive: true })
    await writeFile(join(rootfs, 'etc/hostname'), 'one\n')
    await writeFile(join(rootfs, 'etc/sub/deleted'), 'soon gone')
    await writeFile(join(rootfs, 'big'), Buffer.alloc(4096, 7))
    await symlink('etc/hostname', join(rootfs, 'hn'))
    await umoci('repack', '--image', `${layout}:t`, bundle)
    // umoci diffs against the image the bundle came from: unpack again for the next layer.
    const bundle2 = join(t.dir, 'bundle2')
    await umoci('unpack', ...rootless, '--image', `${layout}:t`, bundle2)
    const rootfs2 = join(bundle2, 'rootfs')
    await writeFile(join(rootfs2, 'etc/hostname'), 'two\n')
    await rm(join(rootfs2, 'etc/sub/deleted'))
    await rm(join(rootfs2, 'big'))
    await writeFile(join(rootfs2, 'added'), 'new file')
    await chmod(join(rootfs2, 'added'), 0o755)
    await umoci('repack', '--image', `${layout}:t`, bundle2)
    await umoci('config', '--image', `${layout}:t`, '--config.env', 'A=1')
  })
  afterAll(async () => {
    await t?.cleanup()
  })

  it('imports the layers and merges them into the same tree as umoci unpack', async () => {
    const img = await openImage(`${layout}:t`, { store: join(t.dir, 'store') })
    const merged = join(t.dir, 'merged')
    await mkdir(merged)
    for (const dir of [...img.lowerDirs()].reverse()) await applyLayer(dir, merged)
    const truth = join(t.dir, 'truth')
    await exec('umoci', ['unpack', ...rootless, '--image', `${layout}:t`, truth])
    expect(await snapshot(merged)).toEqual(await snapshot(join(truth, 'rootfs')))
    expect(await readFile(join(merged, 'etc/hostname'), 'utf8')).toBe('two\n')
  })

  it('inspects the whiteout and the wasted bytes of the rewritten files', async () => {
    const r = await runCli(inspect, ['--store', join(t.dir, 'store'), '--json', `${layout}:t`])
    expect(r.code).toBe(0)
    const report = JSON.parse(r.stdout) as ImageReport
    const withFiles = report.layers.filter((l) => !l.empty)
    const last = withFiles[withFiles.length - 1]!
    expect(last.deleted.count).toBeGreaterThanOrEqual(2) // etc/sub/deleted and big
    expect(last.added.count).toBeGreaterThanOrEqual(1)
    expect(report.wastedBytes).toBeGreaterThanOrEqual(4096 + 9 + 4)
    expect(report.efficiency).toBeLessThan(1)
  })

  it.skipIf(!fuseAvailable().ok)('mounts with layerfs showing what umoci unpacks, and commits changes umoci unpacks back', async () => {
    const store = join(t.dir, 'store-mount')
    const [mnt, upper, work] = ['mnt', 'upper', 'work'].map((d) => join(t.dir, d)) as [string, string, string]
    for (const d of [mnt, upper, work]) await mkdir(d)
    const truth = join(t.dir, 'truth-mount')
    await exec('umoci', ['unpack', ...rootless, '--image', `${layout}:t`, truth])
    const cli = resolve('bin/layerfs.js')
    const mount = await mountFuse([process.execPath, cli, 'mount', '--store', store, '--upper', upper, '--work', work, `${layout}:t`, mnt], mnt, { timeoutMs: 30_000 })
    let merged: Record<string, string>
    try {
      expect(await snapshot(mnt)).toEqual(await snapshot(join(truth, 'rootfs')))
      // A container's changes: a rewrite, a deletion of a lower file, a new directory.
      await writeFile(join(mnt, 'etc/hostname'), 'container\n')
      await rm(join(mnt, 'hn'))
      await mkdir(join(mnt, 'srv'))
      await writeFile(join(mnt, 'srv/data'), 'payload')
      merged = await snapshot(mnt)
    } finally {
      await unmount(mount)
    }
    const out = join(t.dir, 'committed')
    const r = await runCli(commit, ['--upper', upper, '--from', `${layout}:t`, '--tag', 'c', '-o', out])
    expect(r.code).toBe(0)
    const back = join(t.dir, 'back')
    await exec('umoci', ['unpack', ...rootless, '--image', `${out}:c`, back])
    expect(await snapshot(join(back, 'rootfs'))).toEqual(merged)
  })

  it('reads the same image from a tar of the layout', async () => {
    const file = join(t.dir, 'oci.tar')
    await exec('tar', ['-C', layout, '-cf', file, '.'])
    const img = await openImage(`${file}:t`, { store: join(t.dir, 'store2') })
    expect(img.lowerDirs().length).toBeGreaterThanOrEqual(2)
    expect(await readFile(join(img.lowerDirs()[0]!, 'added'), 'utf8')).toBe('new file')
  })
})
