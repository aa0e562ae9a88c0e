// Opens answered in C (native/fuse-ll-fast.c, ll-bridge.ts): after a node's first open for reading,
// its next ones cost no request. These tests check that they are answered in C, and that the files
// they open behave as any other open file: what a read sees when the kernel has dropped the pages
// (the read then reaches the daemon with a handle no host file backs), after an unlink, a copy-up,
// a hard link, and beside an open for writing that could pass through.
import { existsSync } from 'node:fs'
import { link, open, readFile, rename, unlink, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { fuseAvailable, runCmd } from '../helpers/mount.js'
import { type DaemonStats, delta, statsOf } from '../helpers/daemon-stats.js'
import { layerfsSuite } from '../helpers/layerfs-suite.js'

const fuse = fuseAvailable()
if (!fuse.ok) console.warn(`skipping fast-open mount tests: ${fuse.reason}`)
if (fuse.ok && !existsSync(resolve('dist/src/cli/main.js'))) throw new Error('build first: npm run build')

function fastOpens(s: DaemonStats): number {
  return s.loop?.fastOpens ?? 0
}

/** Drops the kernel's cached pages of `path` (posix_fadvise DONTNEED through dd): the next read of
 *  that inode reaches the daemon. */
async function dropPages(path: string): Promise<void> {
  const r = await runCmd('dd', [`if=${path}`, 'iflag=nocache', 'count=0', 'status=none'])
  if (r.code !== 0) throw new Error(`dd failed: ${r.stderr}`)
}

async function readAt(fh: Awaited<ReturnType<typeof open>>, length: number): Promise<string> {
  const buf = Buffer.alloc(length)
  const { bytesRead } = await fh.read(buf, 0, length, 0)
  return buf.subarray(0, bytesRead).toString()
}

describe.skipIf(!fuse.ok)('opens answered in C', () => {
  const suite = layerfsSuite('fast-open')

  it('answers a second open for reading without a request, and reads dropped pages through the daemon', async () => {
    const { mnt } = await suite.stack('', (lower) => writeFile(join(lower, 'f'), 'lower data'))
    expect(await readFile(join(mnt, 'f'), 'utf8')).toBe('lower data') // the first open: JS
    const before = await statsOf(mnt)
    const fh = await open(join(mnt, 'f'), 'r')
    try {
      const opened = await statsOf(mnt)
      expect(fastOpens(opened) - fastOpens(before)).toBe(1)
      expect(delta(before, opened, 'open')).toBe(0)
      await dropPages(join(mnt, 'f'))
      expect(await readAt(fh, 100)).toBe('lower data')
      const read = await statsOf(mnt)
      expect(delta(opened, read, 'read')).toBeGreaterThan(0)
      expect((await fh.stat()).size).toBe(10)
    } finally {
      await fh.close()
    }
    // The last release closes what the daemon opened for the reads (the anchor); the release of a
    // fast open without one reaches no JS at all.
    const closed = await statsOf(mnt)
    expect(closed.openFiles).toBe(0)
    // Opens for writing still go to the daemon.
    await writeFile(join(mnt, 'f'), 'L', { flag: 'r+' })
    const written = await statsOf(mnt)
    expect(delta(closed, written, 'open')).toBe(1)
    expect(await readFile(join(mnt, 'f'), 'utf8')).toBe('Lower data')
  })

  it('keeps the data of a file unlinked or renamed over while it is open', async () => {
    const { mnt, upper } = await suite.stack('', (lower) => writeFile(join(lower, 'low'), 'lower file'))
    await writeFile(join(mnt, 'up'), 'upper file')
    await writeFile(join(mnt, 'over'), 'replaced file')
    for (const name of ['low', 'up', 'over']) await readFile(join(mnt, name))
    const before = await statsOf(mnt)
    const handles = await Promise.all(['low', 'up', 'over'].map((name) => open(join(mnt, name), 'r')))
    try {
      expect(fastOpens(await statsOf(mnt)) - fastOpens(before)).toBe(3)
      await unlink(join(mnt, 'low'))
      await unlink(join(mnt, 'up'))
      await writeFile(join(mnt, 'new'), 'newcomer')
      await rename(join(mnt, 'new'), join(mnt, 'over'))
      expect(existsSync(join(upper, 'up'))).toBe(false)
      expect(await readFile(join(mnt, 'over'), 'utf8')).toBe('newcomer')
      const expected = ['lower file', 'upper file', 'replaced file']
      for (const [i, fh] of handles.entries()) {
        // Reopened through /proc (an open of the unlinked node, answered in C too) to drop its pages.
        await dropPages(`/proc/${process.pid}/fd/${fh.fd}`)
        expect(await readAt(fh, 100)).toBe(expected[i])
        expect((await fh.stat()).size).toBe(expected[i]!.length)
      }
    } finally {
      for (const fh of handles) await fh.close()
    }
    expect((await statsOf(mnt)).openFiles).toBe(0)
  })

  it('a file opened in C reads the copy after a copy-up, and a hard link sends opens to the daemon again', async () => {
    const { mnt } = await suite.stack('', async (lower) => {
      await writeFile(join(lower, 'g'), 'old content')
      await writeFile(join(lower, 'h'), 'linked')
    })
    await readFile(join(mnt, 'g'))
    const reader = await open(join(mnt, 'g'), 'r')
    try {
      await writeFile(join(mnt, 'g'), 'NEW', { flag: 'r+' })
      expect(await readAt(reader, 100)).toBe('NEW content')
      await dropPages(join(mnt, 'g'))
      expect(await readAt(reader, 100)).toBe('NEW content')
    } finally {
      await reader.close()
    }
    await readFile(join(mnt, 'h'))
    await link(join(mnt, 'h'), join(mnt, 'h2'))
    const before = await statsOf(mnt)
    expect(await readFile(join(mnt, 'h'), 'utf8')).toBe('linked')
    const after = await statsOf(mnt)
    expect(delta(before, after, 'open')).toBe(1)
    expect(fastOpens(after)).toBe(fastOpens(before))
  })

  it('an open for writing beside files opened in C stays in their I/O mode', async () => {
    const { mnt } = await suite.stack('', (lower) => writeFile(join(lower, 's'), 'small lower'))
    await readFile(join(mnt, 's'))
    const reader = await open(join(mnt, 's'), 'r')
    try {
      // Root's writes pass through where they may; one that did here would fail with EIO (the
      // kernel holds the node in the daemon's mode for the reader).
      await writeFile(join(mnt, 's'), 'SMALL', { flag: 'r+' })
      expect(await readAt(reader, 100)).toBe('SMALL lower')
      const stats = await statsOf(mnt)
      expect(stats.passedThrough).toBe(0)
    } finally {
      await reader.close()
    }
    // With no file open, the next open for writing passes through again (when the kernel grants it).
    const before = await statsOf(mnt)
    await writeFile(join(mnt, 's'), 'again', { flag: 'r+' })
    const after = await statsOf(mnt)
    expect(after.passedThrough - before.passedThrough).toBe(after.passthrough === 'off' ? 0 : 1)
    expect(await readFile(join(mnt, 's'), 'utf8')).toBe('again lower')
  })
})
