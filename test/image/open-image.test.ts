import { lstat, readFile, readdir, readlink } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { openImage } from '../../src/image/open-image.js'
import { dockerSaveFiles, makeTar, ociLayoutFiles, sha, tempDir, writeFilesToDir, writeFilesToTar, type Compression } from './fixtures.js'

let t: { dir: string; cleanup: () => Promise<void> }
beforeEach(async () => {
  t = await tempDir()
})
afterEach(async () => {
  await t.cleanup()
})

const base = () =>
  makeTar([
    { name: 'etc/', type: 'directory' },
    { name: 'etc/hostname', content: 'base\n' },
    { name: 'bin/', type: 'directory' },
    { name: 'bin/sh', content: '#!sh\n', mode: 0o755 },
    { name: 'bin/ash', type: 'link', linkname: 'bin/sh' },
    { name: 'bin/busybox', type: 'symlink', linkname: '/bin/sh' },
  ])
const top = () =>
  makeTar([
    { name: 'etc/', type: 'directory' },
    { name: 'etc/hostname', content: 'top\n' },
    { name: 'bin/.wh.busybox', content: '' },
  ])

describe('openImage', () => {
  for (const compression of ['none', 'gzip', 'zstd'] as Compression[]) {
    it(`imports a ${compression} OCI layout directory with layers topmost-first`, async () => {
      const layers = [await base(), await top()]
      const src = await writeFilesToDir(join(t.dir, 'oci'), ociLayoutFiles([{ tag: 'v1', layers, compression }]))
      const img = await openImage(src, { store: join(t.dir, 'store') })
      expect(img.layers.map((l) => l.diffId)).toEqual(layers.map(sha))
      const [upper, lower] = img.lowerDirs()
      expect(await readFile(join(upper!, 'etc/hostname'), 'utf8')).toBe('top\n')
      expect(await readFile(join(lower!, 'etc/hostname'), 'utf8')).toBe('base\n')
      expect(await readlink(join(lower!, 'bin/busybox'))).toBe('/bin/sh')
      expect((await lstat(join(lower!, 'bin/ash'))).ino).toBe((await lstat(join(lower!, 'bin/sh'))).ino)
      expect((await lstat(join(lower!, 'bin/sh'))).mode & 0o777).toBe(0o755)
      expect(img.layers[1]!.createdBy).toBe('step 1')
    })
  }

  it('picks an image by tag from a nested index in an OCI tar', async () => {
    const a = await makeTar([{ name: 'a', content: 'A' }])
    const b = await makeTar([{ name: 'b', content: 'B' }])
    const file = await writeFilesToTar(join(t.dir, 'img.tar'), ociLayoutFiles([{ tag: 'one', layers: [a] }, { tag: 'two', layers: [b] }], { nested: true }))
    const img = await openImage(`${file}:two`, { store: join(t.dir, 'store') })
    expect(img.names).toContain('two')
    expect(await readdir(img.lowerDirs()[0]!)).toEqual(['b'])
    await expect(openImage(file, { store: join(t.dir, 'store') })).rejects.toThrow(/holds 2 images.*one, two/)
    const byIndex = await openImage(`${file}@0`, { store: join(t.dir, 'store') })
    expect(byIndex.names).toContain('one')
  })

  for (const style of ['legacy', 'v25'] as const) {
    it(`imports a ${style} docker-save archive without a tag when it holds one image`, async () => {
      const layers = [await base(), await top()]
      const file = await writeFilesToTar(join(t.dir, 'save.tar'), dockerSaveFiles([{ tag: 'app:1', layers }], style))
      const img = await openImage(file, { store: join(t.dir, 'store') })
      expect(img.format).toBe('docker')
      expect(img.names).toEqual(['app:1'])
      expect(img.lowerDirs()).toHaveLength(2)
      const again = await openImage(`${file}:1`, { store: join(t.dir, 'store') })
      expect(again.lowerDirs()).toEqual(img.lowerDirs())
    })
  }

  it('shares a layer between two images in the store', async () => {
    const layers = [await base()]
    const one = await writeFilesToDir(join(t.dir, 'one'), ociLayoutFiles([{ tag: 'a', layers }]))
    const two = await writeFilesToTar(join(t.dir, 'two.tar'), dockerSaveFiles([{ tag: 'b:1', layers: [...layers, await top()] }], 'legacy'))
    const a = await openImage(one, { store: join(t.dir, 'store') })
    const b = await openImage(two, { store: join(t.dir, 'store') })
    expect(b.lowerDirs()[1]).toBe(a.lowerDirs()[0])
    expect(await readdir(join(t.dir, 'store', 'layers', 'sha256'))).toHaveLength(2)
  })

  it('lists empty layers from history without giving them a dir', async () => {
    const layers = [await base()]
    const history = [{ created_by: 'ADD rootfs' }, { created_by: 'ENV A=1', empty_layer: true }]
    const src = await writeFilesToDir(join(t.dir, 'oci'), ociLayoutFiles([{ layers, history }]))
    const img = await openImage(src, { store: join(t.dir, 'store') })
    expect(img.layers.map((l) => [l.empty, l.createdBy, l.dir === undefined])).toEqual([
      [false, 'ADD rootfs', false],
      [true, 'ENV A=1', true],
    ])
  })
})
