// The names of a hard link are separate inodes to the kernel (one node per name), each with its own
// page cache; overlayfs has one inode for all of them. A change of the data through one name must
// reach a file held open under another at once, also while reads of that file are in flight: the
// daemon drops its pages from the thread pool (dropping them may wait in the kernel for a request
// on that inode, which only the daemon's thread answers) and answers the change once they are gone
// (ll-bridge.ts, #dropSiblingPages). Until 2026-12-02 the held file read its old pages.
import { existsSync } from 'node:fs'
import { link, open, truncate, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { fuseAvailable } from '../helpers/mount.js'
import { layerfsSuite } from '../helpers/layerfs-suite.js'

const fuse = fuseAvailable()
if (!fuse.ok) console.warn(`skipping hard-link mount tests: ${fuse.reason}`)
if (fuse.ok && !existsSync(resolve('dist/src/cli/main.js'))) throw new Error('build first: npm run build')

const SIZE = 256 * 1024

describe.skipIf(!fuse.ok)('hard links written through one name', () => {
  const suite = layerfsSuite('hard-links')

  it.each(['', ',passthrough=off'])('show a name held open the new bytes, with its reads in flight (options%s)', async (options) => {
    const { mnt } = await suite.stack(options, async () => undefined)
    const [a, b] = [join(mnt, 'a'), join(mnt, 'b')]
    await writeFile(a, Buffer.alloc(SIZE, '0'))
    await link(a, b)
    const held = await open(b, 'r')
    let stop = false
    let reads = 0
    try {
      // Readers of the held name keep requests in flight (the pages they read are dropped again at
      // every write), each on a thread of the pool.
      const readers = Array.from({ length: 4 }, async () => {
        const buf = Buffer.alloc(SIZE)
        while (!stop) {
          await held.read(buf, 0, SIZE, 0)
          reads++
        }
      })
      const check = Buffer.alloc(SIZE)
      try {
        for (let i = 0; i < 40; i++) {
          const fill = String(i % 10)
          await writeFile(a, Buffer.alloc(SIZE, fill), { flag: 'r+' })
          const { bytesRead } = await held.read(check, 0, SIZE, 0)
          expect([bytesRead, check.equals(Buffer.alloc(SIZE, fill))]).toEqual([SIZE, true])
        }
        await truncate(a, 10)
        expect((await held.stat()).size).toBe(10)
        const { bytesRead } = await held.read(check, 0, SIZE, 0)
        expect(check.subarray(0, bytesRead).toString()).toBe('9'.repeat(10))
        await writeFile(a, 'fresh')
        expect((await held.read(check, 0, SIZE, 0)).bytesRead).toBe(5)
        expect(check.subarray(0, 5).toString()).toBe('fresh')
      } finally {
        stop = true
        await Promise.all(readers)
      }
    } finally {
      await held.close()
    }
    expect(reads).toBeGreaterThan(0)
  }, 60_000)
})
