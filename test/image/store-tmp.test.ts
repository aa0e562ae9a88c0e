/**
 * The store's temp dirs: ones left by dead imports are swept before an import, live ones are not;
 * a compressed blob cut in the middle fails clearly and leaves nothing in the store.
 */
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, readdir, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { openImage } from '../../src/image/open-image.js'
import { LayerStore } from '../../src/image/store.js'
import { makeTar, ociLayoutFiles, tempDir, writeFilesToDir, type Compression } from './fixtures.js'

let t: { dir: string; cleanup: () => Promise<void> }
let store: string
beforeEach(async () => {
  t = await tempDir()
  store = join(t.dir, 'store')
})
afterEach(async () => {
  await t.cleanup()
})

/** A pid that ran and has exited (its child was reaped by spawnSync). */
function deadPid(): number {
  const r = spawnSync('true')
  expect(r.pid).toBeGreaterThan(0)
  return r.pid as number
}

describe('store temp dirs', () => {
  it('removes the dirs of dead imports and old unnamed ones, never those of running processes', async () => {
    const tmp = join(store, 'tmp')
    const dead = deadPid()
    const names = {
      dead: `layer-${dead}-abc123`,
      deadProbe: `.probe-${dead}-xyz`,
      ours: `layer-${process.pid}-live01`,
      init: 'layer-1-otherns', // pid 1 always runs
      oldUnnamed: 'layer-Q7x9aa',
      newUnnamed: 'layer-R2b8bb',
    }
    for (const n of Object.values(names)) {
      await mkdir(join(tmp, n, 'root', 'usr'), { recursive: true })
      await writeFile(join(tmp, n, 'root', 'usr', 'half-written'), 'partial')
    }
    const old = new Date(Date.now() - 2 * 60 * 60 * 1000)
    await utimes(join(tmp, names.oldUnnamed), old, old)
    await utimes(join(tmp, names.ours), old, old) // old but live: kept

    const layer = await makeTar([{ name: 'a', content: 'A' }])
    const src = await writeFilesToDir(join(t.dir, 'oci'), ociLayoutFiles([{ layers: [layer] }]))
    const img = await openImage(src, { store })
    expect(await readFile(join(img.lowerDirs()[0]!, 'a'), 'utf8')).toBe('A')
    expect((await readdir(tmp)).sort()).toEqual([names.init, names.ours, names.newUnnamed].sort())
  })

  it('names its own temp dirs with its pid while an import runs', async () => {
    const s = new LayerStore(store)
    let seen: string[] = []
    await s.ensureLayer('sha256:' + 'a'.repeat(64), async () => {
      seen = await readdir(join(store, 'tmp'))
      return { size: 0, entries: 0, tarSize: 0, skippedDevices: 0 }
    })
    expect(seen).toHaveLength(1)
    expect(seen[0]).toMatch(new RegExp(`^layer-${process.pid}-`))
    expect(await readdir(join(store, 'tmp'))).toEqual([])
  })
})

describe('truncated compressed blobs', () => {
  for (const compression of ['gzip', 'zstd'] as Compression[]) {
    it(`fails clearly on a ${compression} blob cut in the middle and leaves the store empty`, async () => {
      // Random bytes do not compress: the blob is big, and the cut falls inside the file's data.
      const layer = await makeTar([{ name: 'big', content: randomBytes(300 * 1024) }, { name: 'z', content: 'z' }])
      const files = ociLayoutFiles([{ layers: [layer], compression }])
      const [name, blob] = [...files].reduce((a, b) => (b[1].length > a[1].length ? b : a))
      files.set(name, blob.subarray(0, Math.floor(blob.length / 2)))
      const src = await writeFilesToDir(join(t.dir, 'oci'), files)
      // "is corrupt or truncated: unexpected end of file" (gzip) / "...: zstd: unexpected EOF".
      await expect(openImage(src, { store })).rejects.toThrow(/^layer sha256:[0-9a-f]{64} is (corrupt or )?truncated/)
      expect(await readdir(join(store, 'layers', 'sha256'))).toEqual([])
      expect(await readdir(join(store, 'tmp'))).toEqual([])
    })
  }
})
