import { lstat, readFile, readdir, readlink, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { openImage } from '../../src/image/open-image.js'
import { unpackLayer, type UnpackOptions } from '../../src/image/unpack.js'
import { lgetxattr } from '../../src/sys/native.js'
import { makeTar, ociLayoutFiles, tempDir, writeFilesToDir, type TarEntry } from './fixtures.js'

let t: { dir: string; cleanup: () => Promise<void> }
let root: string
beforeEach(async () => {
  t = await tempDir()
  root = join(t.dir, 'root')
  await writeFile(join(t.dir, 'outside'), 'precious')
  const { mkdir } = await import('node:fs/promises')
  await mkdir(root)
})
afterEach(async () => {
  await t.cleanup()
})

const opts = (o: Partial<UnpackOptions> = {}): UnpackOptions => ({
  whiteouts: 'marker', devices: false, chown: false, maxEntrySize: 1024 * 1024, what: 'test layer', ...o,
})
const unpack = async (entries: TarEntry[], o: Partial<UnpackOptions> = {}) =>
  unpackLayer(Readable.from([await makeTar(entries)]), root, opts(o))
const outsideIntact = async () => expect(await readFile(join(t.dir, 'outside'), 'utf8')).toBe('precious')
const isRoot = process.getuid?.() === 0

describe('unpackLayer (hostile input)', () => {
  it('rejects an entry with .. that climbs out of the root', async () => {
    await expect(unpack([{ name: '../outside', content: 'pwned' }])).rejects.toThrow(/outside the layer root/)
    await outsideIntact()
  })

  it('keeps an absolute entry name inside the root', async () => {
    await unpack([{ name: '/abs/file', content: 'in' }])
    expect(await readFile(join(root, 'abs/file'), 'utf8')).toBe('in')
  })

  it('rejects a path through a symlink planted by an earlier entry', async () => {
    await expect(
      unpack([
        { name: 'esc', type: 'symlink', linkname: t.dir },
        { name: 'esc/outside', content: 'pwned' },
      ]),
    ).rejects.toThrow(/goes through the symlink 'esc'/)
    await outsideIntact()
  })

  it('rejects a path through a relative symlink that points up', async () => {
    await expect(
      unpack([
        { name: 'd/up', type: 'symlink', linkname: '../..' },
        { name: 'd/up/outside', content: 'pwned' },
      ]),
    ).rejects.toThrow(/symlink 'd\/up'/)
    await outsideIntact()
  })

  it('replaces a symlink entry with a file instead of writing through it', async () => {
    await unpack([
      { name: 'f', type: 'symlink', linkname: join(t.dir, 'outside') },
      { name: 'f', content: 'replaced' },
    ])
    expect((await lstat(join(root, 'f'))).isFile()).toBe(true)
    await outsideIntact()
  })

  it('keeps a symlink pointing outside as a symlink, never following it', async () => {
    await unpack([{ name: 'etc/passwd', type: 'symlink', linkname: '/etc/passwd' }])
    expect(await readlink(join(root, 'etc/passwd'))).toBe('/etc/passwd')
  })

  it('rejects a hard link that points outside the root', async () => {
    await expect(unpack([{ name: 'h', type: 'link', linkname: '../outside' }])).rejects.toThrow(/outside the layer root/)
    expect((await stat(join(t.dir, 'outside'))).nlink).toBe(1)
  })

  it('rejects a hard link whose target goes through a symlink', async () => {
    await expect(
      unpack([
        { name: 's', type: 'symlink', linkname: t.dir },
        { name: 'h', type: 'link', linkname: 's/outside' },
      ]),
    ).rejects.toThrow(/symlink 's'/)
    expect((await stat(join(t.dir, 'outside'))).nlink).toBe(1)
  })

  it('rejects a hard link to an absolute host path that is not in the layer', async () => {
    await expect(unpack([{ name: 'h', type: 'link', linkname: join(t.dir, 'outside') }])).rejects.toThrow(/does not exist in the layer/)
    expect((await stat(join(t.dir, 'outside'))).nlink).toBe(1)
  })

  it('rejects an entry whose declared size is over the limit', async () => {
    await expect(unpack([{ name: 'big', content: Buffer.alloc(2048) }], { maxEntrySize: 1024 })).rejects.toThrow(/over the limit of 1024/)
  })

  it('skips device nodes when devices are not permitted', async () => {
    const st = await unpack([{ name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 }])
    expect(st.skippedDevices).toBe(1)
    await expect(lstat(join(root, 'dev/null'))).rejects.toThrow(/ENOENT/)
  })

  it.skipIf(!isRoot)('creates device nodes when devices are permitted', async () => {
    await unpack([{ name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 }], { devices: true })
    expect((await lstat(join(root, 'dev/null'))).isCharacterDevice()).toBe(true)
  })

  it('fails on a truncated entry', async () => {
    const tarBytes = await makeTar([{ name: 'f', content: Buffer.alloc(3000, 1) }])
    const cut = tarBytes.subarray(0, 512 + 1000)
    await expect(unpackLayer(Readable.from([cut]), root, opts())).rejects.toThrow(/truncated/)
  })

  it('fails on a stream cut inside a header', async () => {
    const tarBytes = await makeTar([{ name: 'a', content: 'x' }, { name: 'b', content: 'y' }])
    const cut = tarBytes.subarray(0, 1024 + 100)
    await expect(unpackLayer(Readable.from([cut]), root, opts())).rejects.toThrow(/truncated/)
  })

  it('accepts a layer whose last entry lacks padding and end-of-archive blocks', async () => {
    const tarBytes = await makeTar([{ name: 'a', content: 'first' }, { name: 'b', content: 'last!' }], { end: false })
    const unpadded = tarBytes.subarray(0, tarBytes.length - (512 - 5))
    await unpackLayer(Readable.from([unpadded]), root, opts())
    expect(await readFile(join(root, 'b'), 'utf8')).toBe('last!')
  })

  it('leaves no layer in the store when the diff_id does not match', async () => {
    const layer = await makeTar([{ name: 'a', content: 'A' }])
    const bad = 'sha256:' + '0'.repeat(64)
    const src = await writeFilesToDir(join(t.dir, 'oci'), ociLayoutFiles([{ layers: [layer], badDiffId: bad }]))
    await expect(openImage(src, { store: join(t.dir, 'store') })).rejects.toThrow(/diff_id mismatch/)
    expect(await readdir(join(t.dir, 'store', 'layers', 'sha256'))).toEqual([])
    expect(await readdir(join(t.dir, 'store', 'tmp'))).toEqual([])
  })

  it('fails on a blob whose bytes do not match its digest', async () => {
    const layer = await makeTar([{ name: 'a', content: 'A' }])
    const files = ociLayoutFiles([{ layers: [layer], compression: 'none' }])
    const name = [...files.keys()].find((k) => files.get(k)!.equals(layer))!
    const tampered = Buffer.from(layer)
    tampered[600] = 0x42 // inside the data of 'a': same size, other bytes
    files.set(name, tampered)
    const src = await writeFilesToDir(join(t.dir, 'oci'), files)
    await expect(openImage(src, { store: join(t.dir, 'store') })).rejects.toThrow(/digest mismatch/)
    expect(await readdir(join(t.dir, 'store', 'layers', 'sha256'))).toEqual([])
  })
})

describe('unpackLayer (whiteouts and metadata)', () => {
  const wh: TarEntry[] = [
    { name: 'd/', type: 'directory' },
    { name: 'd/.wh..wh..opq', content: '' },
    { name: 'd/.wh.gone', content: '' },
  ]

  it('keeps .wh. files as they are in marker mode', async () => {
    await unpack(wh)
    expect((await readdir(join(root, 'd'))).sort()).toEqual(['.wh..wh..opq', '.wh.gone'])
  })

  it.skipIf(!isRoot)('converts whiteouts to char 0/0 and opaque xattrs in kernel mode', async () => {
    await unpack(wh, { whiteouts: 'kernel' })
    const st = await lstat(join(root, 'd/gone'))
    expect(st.isCharacterDevice() && st.rdev === 0).toBe(true)
    expect((await lgetxattr(join(root, 'd'), 'trusted.overlay.opaque'))?.toString()).toBe('y')
    expect(await readdir(join(root, 'd'))).toEqual(['gone'])
  })

  it('applies mode, mtime and PAX xattrs', async () => {
    const mtime = new Date(1_600_000_000_000)
    await unpack([
      { name: 'dir/', type: 'directory', mode: 0o750, mtime },
      { name: 'dir/f', content: 'x', mode: 0o4755, mtime, pax: { 'SCHILY.xattr.user.test': 'hello' } },
    ])
    const f = await lstat(join(root, 'dir/f'))
    expect(f.mode & 0o7777).toBe(0o4755)
    expect(f.mtimeMs).toBe(mtime.getTime())
    expect((await lstat(join(root, 'dir'))).mtimeMs).toBe(mtime.getTime())
    expect((await lgetxattr(join(root, 'dir/f'), 'user.test'))?.toString()).toBe('hello')
  })

  it('creates fifos', async () => {
    await unpack([{ name: 'p', type: 'fifo', mode: 0o600 }])
    expect((await lstat(join(root, 'p'))).isFIFO()).toBe(true)
  })
})
