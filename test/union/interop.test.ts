// Upper layers move between layerfs and kernel overlayfs: what one wrote, the other mounts and shows
// the same merged tree. That holds for metadata-only copies too: a metacopy=on union writes the
// kernel's own on-disk marks, which the kernel mounted with metacopy=on follows to the lower data.
import { execFileSync } from 'node:child_process'
import { constants } from 'node:fs'
import { mkdir, readFile, readdir, rm, writeFile, lstat, readlink, unlink, rename } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { Union } from '../../src/union/union.js'
import { overlayAvailable } from '../helpers/mount.js'
import { makeTempDir } from '../helpers/tmp.js'
import { buildLayer } from './fixture.js'

const overlay = overlayAvailable()
if (!overlay.ok) console.warn(`skipping interop tests: ${overlay.reason}`)

type Tree = Record<string, string>

/** The merged view through kernel overlayfs: path → kind and content. */
async function kernelTree(root: string, rel = ''): Promise<Tree> {
  const out: Tree = {}
  for (const name of (await readdir(join(root, rel))).sort()) {
    const p = rel ? `${rel}/${name}` : name
    const st = await lstat(join(root, p))
    if (st.isDirectory()) {
      out[p] = 'dir'
      Object.assign(out, await kernelTree(root, p))
    } else if (st.isSymbolicLink()) out[p] = `-> ${await readlink(join(root, p))}`
    else out[p] = `file ${await readFile(join(root, p), 'utf8')}`
  }
  return out
}

/** The same through the union, with no mount. */
async function unionTree(union: Union, rel = ''): Promise<Tree> {
  const out: Tree = {}
  for (const name of await union.readdir('/' + rel)) {
    const p = rel ? `${rel}/${name}` : name
    const mode = (await union.getattr('/' + p)).mode & constants.S_IFMT
    if (mode === constants.S_IFDIR) {
      out[p] = 'dir'
      Object.assign(out, await unionTree(union, p))
    } else if (mode === constants.S_IFLNK) out[p] = `-> ${await union.readlink('/' + p)}`
    else {
      const fh = await union.open('/' + p, constants.O_RDONLY)
      const buf = Buffer.alloc(1 << 16)
      const n = await union.read(fh, buf, buf.length, 0)
      await union.release(fh)
      out[p] = `file ${buf.subarray(0, n).toString()}`
    }
  }
  return out
}

const LOWER = { 'a/keep': 'k', 'a/drop': 'd', 'b/x': 'x', 'b/y': 'y', top: 't', link: '->top' }

describe.skipIf(!overlay.ok)('upper layers shared with kernel overlayfs', () => {
  let dir = ''
  let mounted = ''
  afterEach(async () => {
    if (mounted) {
      try { execFileSync('umount', [mounted], { timeout: 10_000 }) } catch { execFileSync('umount', ['-l', mounted], { timeout: 10_000 }) }
      mounted = ''
    }
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  async function setup(): Promise<{ lower: string; upper: string; work: string; mnt: string }> {
    dir = await makeTempDir('interop')
    const [lower, upper, work, mnt] = ['l', 'u', 'w', 'm'].map((d) => join(dir, d)) as [string, string, string, string]
    await buildLayer(lower, LOWER)
    for (const d of [upper, work, mnt]) await mkdir(d)
    return { lower, upper, work, mnt }
  }

  function mountKernel(d: { lower: string; upper: string; work: string; mnt: string }, extra = ''): void {
    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${d.lower},upperdir=${d.upper},workdir=${d.work}${extra}`, d.mnt], { timeout: 10_000 })
    mounted = d.mnt
  }

  it('kernel overlayfs mounts what layerfs wrote', async () => {
    const d = await setup()
    const union = await Union.open({ lowers: [d.lower], upper: d.upper, work: d.work })
    await union.unlink('/a/drop')
    const fh = await union.open('/top', constants.O_WRONLY | constants.O_TRUNC)
    await union.write(fh, Buffer.from('changed'), 7, 0)
    await union.release(fh)
    for (const name of ['x', 'y']) await union.unlink(`/b/${name}`)
    await union.rmdir('/b')
    await union.mkdir('/b', 0o755)
    await union.rename('/a/keep', '/kept')
    const expected = await unionTree(union)
    mountKernel(d)
    expect(await kernelTree(d.mnt)).toEqual(expected)
  })

  it('layerfs opens what kernel overlayfs wrote', async () => {
    const d = await setup()
    mountKernel(d)
    await unlink(join(d.mnt, 'a/drop'))
    await writeFile(join(d.mnt, 'top'), 'changed')
    await rm(join(d.mnt, 'b'), { recursive: true })
    await mkdir(join(d.mnt, 'b'))
    await rename(join(d.mnt, 'a/keep'), join(d.mnt, 'kept'))
    const expected = await kernelTree(d.mnt)
    execFileSync('umount', [d.mnt], { timeout: 10_000 })
    mounted = ''
    const union = await Union.open({ lowers: [d.lower], upper: d.upper, work: d.work })
    expect(await unionTree(union)).toEqual(expected)
    expect(expected['b']).toBe('dir')
    expect(expected['b/x']).toBeUndefined()
  })

  it('kernel overlayfs with metacopy=on reads the lower data of layerfs metadata-only copies', async () => {
    const d = await setup()
    const union = await Union.open({ lowers: [d.lower], upper: d.upper, work: d.work, metacopy: true })
    await union.chmod('/a/keep', 0o600)
    await union.chown('/top', 1000, 1000)
    await union.rename('/top', '/moved')
    mountKernel(d, ',metacopy=on')
    expect(await readFile(join(d.mnt, 'a/keep'), 'utf8')).toBe('k')
    expect((await lstat(join(d.mnt, 'a/keep'))).mode & 0o7777).toBe(0o600)
    expect(await readFile(join(d.mnt, 'moved'), 'utf8')).toBe('t')
    expect((await lstat(join(d.mnt, 'moved'))).uid).toBe(1000)
    await expect(lstat(join(d.mnt, 'top'))).rejects.toMatchObject({ code: 'ENOENT' })
  })
})
