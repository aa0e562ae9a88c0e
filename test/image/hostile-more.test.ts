// Hostile and malformed images found by probing the import with archives made for the purpose
// (2026-12-05): each case was mishandled before (a write outside the store, a silent exit 0, a
// crash with a stack trace, a stored layer that was not a directory, a masked error). Each test
// fails, or fails the run (an unhandled error), on the code before its fix; but the 0555 directory
// unpacked as root, whom no mode stops: the unprivileged import below is the one that fails.
import { spawnSync } from 'node:child_process'
import { chmod, lstat, mkdir, readFile, readdir, rm, stat, symlink, utimes } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { AutoDecompress } from '../../src/image/decompress.js'
import { openImage } from '../../src/image/open-image.js'
import { unpackLayer, type UnpackOptions } from '../../src/image/unpack.js'
import { dockerSaveFiles, makeTar, ociLayoutFiles, sha, tempDir, writeFilesToDir, writeFilesToTar, zstdStore, type TarEntry } from './fixtures.js'

let t: { dir: string; cleanup: () => Promise<void> }
let root: string
beforeEach(async () => {
  t = await tempDir()
  root = join(t.dir, 'root')
  await mkdir(root)
  await mkdir(join(t.dir, 'outside'))
  await utimes(join(t.dir, 'outside'), new Date('2020-01-01'), new Date('2020-01-01'))
})
afterEach(async () => {
  await t.cleanup()
})

const isRoot = process.getuid?.() === 0
const opts = (o: Partial<UnpackOptions> = {}): UnpackOptions => ({
  whiteouts: 'marker', devices: false, chown: false, maxEntrySize: 1024 * 1024, what: 'test layer', ...o,
})
const unpack = async (entries: TarEntry[], o: Partial<UnpackOptions> = {}) =>
  unpackLayer(Readable.from([await makeTar(entries)]), root, opts(o))

/** A tar whose entry `index` (0-based, headers only, no PAX) declares `size` in its header. */
function withDeclaredSize(tarBytes: Buffer, index: number, size: number): Buffer {
  const out = Buffer.from(tarBytes)
  let at = 0
  for (let i = 0; i < index; i++) {
    const declared = parseInt(out.subarray(at + 124, at + 136).toString('latin1').replace(/\0.*$/, '').trim() || '0', 8)
    at += 512 + Math.ceil(declared / 512) * 512
  }
  out.write(size.toString(8).padStart(11, '0') + '\0', at + 124, 'latin1')
  out.fill(0x20, at + 148, at + 156)
  let sum = 0
  for (let i = at; i < at + 512; i++) sum += out[i]!
  out.write(sum.toString(8).padStart(6, '0') + '\0 ', at + 148, 'latin1')
  return out
}

describe('unpackLayer: more hostile input', () => {
  it('sets no directory times through a symlink that replaced the directory', async () => {
    const outside = join(t.dir, 'outside')
    await unpack([
      { name: 'a/', type: 'directory', mtime: new Date(0) },
      { name: 'a', type: 'symlink', linkname: outside },
    ])
    expect((await lstat(join(root, 'a'))).isSymbolicLink()).toBe(true)
    expect((await stat(outside)).mtime.toISOString()).toBe('2020-01-01T00:00:00.000Z')
  })

  it('gives a directory its own metadata only, not that of one a later entry removed', async () => {
    await unpack([
      { name: 'd/', type: 'directory', mode: 0o711, mtime: new Date(0) },
      { name: 'd', content: 'now a file' },
      { name: 'd', type: 'symlink', linkname: 'elsewhere' },
      { name: 'e/', type: 'directory', mode: 0o750, mtime: new Date(1_500_000_000_000) },
    ])
    expect((await lstat(join(root, 'd'))).isSymbolicLink()).toBe(true)
    const e = await lstat(join(root, 'e'))
    expect(e.mode & 0o7777).toBe(0o750)
    expect(e.mtimeMs).toBe(1_500_000_000_000)
  })

  for (const whiteouts of ['marker', 'kernel'] as const) {
    it.skipIf(whiteouts === 'kernel' && !isRoot)(`refuses whiteouts of . and .. (${whiteouts} whiteouts)`, async () => {
      for (const name of ['.wh..', '.wh...', 'd/.wh..', 'd/.wh...']) {
        await expect(unpack([{ name: 'd/', type: 'directory' }, { name, content: '' }], { whiteouts })).rejects.toThrow(/whiteout .* deletes '\.\.?'/)
        expect((await lstat(root)).isDirectory()).toBe(true)
        expect((await lstat(join(t.dir, 'outside'))).isDirectory()).toBe(true)
      }
    })
  }

  it.skipIf(!isRoot)('refuses a hard link to a name a whiteout deleted (kernel whiteouts)', async () => {
    await expect(
      unpack([{ name: '.wh.f', content: '' }, { name: 'g', type: 'link', linkname: 'f' }], { whiteouts: 'kernel' }),
    ).rejects.toThrow(/'f' does not exist in the layer/)
  })

  it('unpacks a directory whose header declares a size, and the entries after it', async () => {
    const tarBytes = withDeclaredSize(await makeTar([{ name: 'd/', type: 'directory' }, { name: 'd/f', content: 'after' }]), 0, 600)
    await unpackLayer(Readable.from([tarBytes]), root, opts())
    expect(await readFile(join(root, 'd/f'), 'utf8')).toBe('after')
  })

  it('refuses a symlink with an empty target', async () => {
    await expect(unpack([{ name: 's', type: 'symlink', linkname: '' }])).rejects.toThrow(/symlink 's' has no target/)
  })

  it('names the entry a system call failed for', async () => {
    const long = 'n'.repeat(300)
    await expect(unpack([{ name: long, content: 'x' }])).rejects.toThrow(new RegExp(`test layer: entry '${long}': ENAMETOOLONG`))
  })

  it('keeps a 0555 directory writable until its children are in, then gives it its mode', async () => {
    await unpack([
      { name: 'usr/bin/', type: 'directory', mode: 0o555, mtime: new Date(1_400_000_000_000) },
      { name: 'usr/bin/tool', content: '#!/bin/sh\n', mode: 0o755 },
    ])
    const bin = await lstat(join(root, 'usr/bin'))
    expect(bin.mode & 0o7777).toBe(0o555)
    expect(bin.mtimeMs).toBe(1_400_000_000_000)
    expect(await readdir(join(root, 'usr/bin'))).toEqual(['tool'])
  })
})

describe('decompression of bad blobs', () => {
  const drain = async (bytes: Buffer) => {
    const chunks: Buffer[] = []
    for await (const c of Readable.from([bytes]).pipe(new AutoDecompress())) chunks.push(c as Buffer)
    return Buffer.concat(chunks)
  }

  it('hands fewer than four bytes on as they are, so a layer of three junk bytes is truncated', async () => {
    expect(await drain(Buffer.from('abc'))).toEqual(Buffer.from('abc'))
    await expect(unpackLayer(Readable.from([Buffer.from('abc')]).pipe(new AutoDecompress()), root, opts())).rejects.toThrow(/truncated/)
  })

  it('fails a corrupt zstd stream with an error, not an unhandled event', async () => {
    // Junk after the magic, in chunks: the decompressor fails on a write, not at the end.
    const junk = [Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0x58]), ...Array.from({ length: 8 }, () => Buffer.alloc(64 * 1024, 0xee))]
    const chunks: Buffer[] = []
    await expect((async () => {
      for await (const c of Readable.from(junk).pipe(new AutoDecompress())) chunks.push(c as Buffer)
    })()).rejects.toThrow(/zstd/)
    // A valid raw block of 10 bytes, then a last block of the reserved type (3).
    const frameHeader = zstdStore(Buffer.alloc(1)).subarray(0, 6)
    const bad = Buffer.concat([frameHeader, Buffer.from([10 << 3, 0, 0]), Buffer.alloc(10, 0x61), Buffer.from([(3 << 1) | 1, 0, 0]), Buffer.alloc(16)])
    await expect(drain(bad)).rejects.toThrow(/zstd/)
  })
})

describe('malformed image metadata', () => {
  const layer = () => makeTar([{ name: 'f', content: 'x' }])

  async function dockerArchive(edit: (manifest: unknown[]) => unknown): Promise<string> {
    const files = dockerSaveFiles([{ tag: 'probe:latest', layers: [await layer()] }], 'v25')
    files.set('manifest.json', Buffer.from(JSON.stringify(edit(JSON.parse(files.get('manifest.json')!.toString()) as unknown[]))))
    return writeFilesToTar(join(t.dir, 'image.tar'), files)
  }
  const store = () => ({ store: join(t.dir, 'store') })

  it('refuses manifest entries of the wrong shape with a message, not a TypeError', async () => {
    const cases: Array<(m: Array<Record<string, unknown>>) => unknown> = [
      () => [null],
      (m) => [{ ...m[0], RepoTags: 'probe:latest' }],
      (m) => [{ ...m[0], Layers: [42] }],
      (m) => [{ ...m[0], Config: 7 }],
    ]
    for (const edit of cases) {
      const file = await dockerArchive(edit as (m: unknown[]) => unknown)
      await expect(openImage(file, store())).rejects.toThrow(/malformed manifest.json/)
    }
  })

  it('reads a layer path with a leading ./ as the blob it names', async () => {
    const file = await dockerArchive((m) => [{ ...(m[0] as object), Layers: (m[0] as { Layers: string[] }).Layers.map((p) => `./${p}`) }])
    const img = await openImage(file, store())
    expect(img.layers).toHaveLength(1)
    expect(await readFile(join(img.layers[0]!.dir!, 'f'), 'utf8')).toBe('x')
  })

  it('refuses a layer path that climbs out of the image', async () => {
    const file = await dockerArchive((m) => [{ ...(m[0] as object), Layers: ['blobs/sha256/../../../../etc/passwd'] }])
    await expect(openImage(file, store())).rejects.toThrow(/points outside it/)
  })

  it('refuses a config whose history is not a list', async () => {
    const l = await layer()
    const files = dockerSaveFiles([{ layers: [l] }], 'legacy')
    const [name] = [...files.keys()].filter((k) => k.endsWith('.json') && k !== 'manifest.json')
    const config = JSON.parse(files.get(name!)!.toString()) as Record<string, unknown>
    config.history = 'oops'
    const bytes = Buffer.from(JSON.stringify(config))
    files.delete(name!)
    files.set(`${sha(bytes).slice(7)}.json`, bytes)
    const manifest = JSON.parse(files.get('manifest.json')!.toString()) as Array<Record<string, unknown>>
    manifest[0]!.Config = `${sha(bytes).slice(7)}.json`
    files.set('manifest.json', Buffer.from(JSON.stringify(manifest)))
    await expect(openImage(await writeFilesToTar(join(t.dir, 'legacy.tar'), files), store())).rejects.toThrow(/history that is not a list/)
  })

  it('refuses an OCI layout whose layer blob is not a regular file (a link to /dev/zero), at once', async () => {
    const l = await layer()
    const dir = await writeFilesToDir(join(t.dir, 'oci'), ociLayoutFiles([{ layers: [l], compression: 'none' }]))
    const path = join(dir, 'blobs/sha256', sha(l).slice(7))
    await rm(path)
    await symlink('/dev/zero', path)
    await expect(openImage(dir, store())).rejects.toThrow(/not a regular file/)
  }, 10_000)
})

describe.skipIf(!isRoot)('an unprivileged import (the CLI as nobody)', () => {
  const layerfs = join(import.meta.dirname, '../../bin/layerfs.js')
  const asNobody = (args: string[]) =>
    spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, layerfs, ...args], { encoding: 'utf8', timeout: 30_000 })

  async function archive(layers: Buffer[], badDiffId?: string): Promise<string> {
    await chmod(t.dir, 0o777)
    const file = await writeFilesToTar(join(t.dir, 'img.tar'), dockerSaveFiles([{ tag: 'probe:latest', layers, badDiffId }], 'v25'))
    await chmod(file, 0o644)
    return file
  }
  const readOnlyDir: TarEntry[] = [
    { name: 'usr/bin/', type: 'directory', mode: 0o555 },
    { name: 'usr/bin/tool', content: 'x', mode: 0o755 },
  ]

  it('unpacks a directory of mode 0555 with files in it', async () => {
    const file = await archive([await makeTar(readOnlyDir)])
    const r = asNobody(['import', file, '--store', join(t.dir, 'store')])
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    const layerDir = r.stdout.trim().split('\n').pop()!.trim()
    expect((await lstat(join(layerDir, 'usr/bin'))).mode & 0o7777).toBe(0o555)
    expect(await readdir(join(layerDir, 'usr/bin'))).toEqual(['tool'])
  })

  it('reports the import\'s own failure, not its cleanup\'s, and leaves no work dir', async () => {
    const file = await archive([await makeTar(readOnlyDir)], 'sha256:' + '0'.repeat(64))
    const r = asNobody(['import', file, '--store', join(t.dir, 'store')])
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/diff_id mismatch/)
    expect(await readdir(join(t.dir, 'store', 'tmp'))).toEqual([])
  })
})

describe('the command line', () => {
  it('exits 70 with a message, never 0, when the command stops before it finished', () => {
    const exit = join(import.meta.dirname, '../../dist/src/cli/exit.js')
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', `import { exitWith } from ${JSON.stringify(exit)}; exitWith(new Promise(() => {}))`], { encoding: 'utf8', timeout: 10_000 })
    expect(r.status).toBe(70)
    expect(r.stderr).toMatch(/stopped before it finished/)
  })
})
