// The upper layer of a metacopy=on union is kernel overlayfs's own on-disk format: the kernel, mounted
// with metacopy=on, reads the metadata-only copies' data from below, renamed ones through their
// redirect.
import { execFileSync } from 'node:child_process'
import { mkdir, readFile, rm, writeFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { Union } from '../../src/union/union.js'
import { overlayAvailable } from '../helpers/mount.js'
import { makeTempDir } from '../helpers/tmp.js'

const overlay = overlayAvailable()
if (!overlay.ok) console.warn(`skipping metacopy interop test: ${overlay.reason}`)

describe.skipIf(!overlay.ok)('metacopy interop with kernel overlayfs', () => {
  let dir = ''
  let mounted = ''
  afterEach(async () => {
    if (mounted) {
      try { execFileSync('umount', [mounted], { timeout: 10_000 }) } catch { execFileSync('umount', ['-l', mounted], { timeout: 10_000 }) }
      mounted = ''
    }
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('mounts a layerfs metacopy upper with kernel overlayfs metacopy=on and reads the lower data', async () => {
    dir = await makeTempDir('metacopy')
    const [lower, upper, work, mnt] = ['l', 'u', 'w', 'm'].map((d) => join(dir, d)) as [string, string, string, string]
    for (const d of [lower, upper, work, mnt]) await mkdir(d)
    await writeFile(join(lower, 'a'), 'lower data A')
    await writeFile(join(lower, 'c'), 'lower data C')
    const union = await Union.open({ lowers: [lower], upper, work, metacopy: true })
    await union.chmod('/a', 0o600)
    await union.chown('/c', 1000, 1000)
    await union.rename('/c', '/d')
    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work},metacopy=on`, mnt], { timeout: 10_000 })
    mounted = mnt
    expect(await readFile(join(mnt, 'a'), 'utf8')).toBe('lower data A')
    expect(((await stat(join(mnt, 'a'))).mode & 0o7777)).toBe(0o600)
    expect(await readFile(join(mnt, 'd'), 'utf8')).toBe('lower data C')
    expect((await stat(join(mnt, 'd'))).uid).toBe(1000)
    await expect(stat(join(mnt, 'c'))).rejects.toMatchObject({ code: 'ENOENT' })
  })
})
