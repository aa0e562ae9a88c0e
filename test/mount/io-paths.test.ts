// The request paths of the ll bridge that answer without the thread pool, through a real mount:
// directory listings kept by node (opendir is ENOSYS, so there are no directory handles), reads
// served from the page cache, small uncached reads and small writes on the JS thread, big ones on
// the pool, and setattr of objects already in the upper layer.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { chmod, lstat, mkdir, mkdtemp, open, opendir, readFile, readdir, rm, stat, truncate, utimes, writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { basename, dirname, join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { fuseAvailable } from '../helpers/mount.js'
import { layerfsSuite, readUpper } from '../helpers/layerfs-suite.js'
import { type DaemonStats, delta, statsOf } from '../helpers/daemon-stats.js'

const fuse = fuseAvailable()
if (!fuse.ok) console.warn(`skipping io-path mount tests: ${fuse.reason}`)
const isRoot = process.getuid?.() === 0
if (fuse.ok && !isRoot) console.warn('skipping the mount tests of read-ahead and of first opens of uncached files: dropping the page cache needs root')
if (fuse.ok && !existsSync(resolve('dist/src/cli/main.js'))) throw new Error('build first: npm run build')

/**
 * Waits until the daemon has read `files` ahead (its count of files read ahead; up to 40 s: behind
 * the writeback of earlier tests a pool thread's reads have taken over 10 s), then expects every
 * one of them in the page cache. A machine may page out memory behind our back: this VM's kernel
 * runs DAMON with a `pageout` scheme, which reclaims page cache in physical regions it has seen
 * idle, and once took a file read ahead a moment before. A file missing from the cache passes only
 * when such a scheme paged something out since `pageouts` (damonPageouts, taken before the reads).
 */
async function readAhead(mnt: string, files: string[], cached: (name: string) => boolean, pageouts: bigint | undefined): Promise<void> {
  const deadline = Date.now() + 40_000
  while (Date.now() < deadline && (await statsOf(mnt)).prefetched < files.length) await new Promise((r) => setTimeout(r, 100))
  // On failure, how far it got: uncached reads seen, of them too soon after a shared open, started.
  const stats = await statsOf(mnt)
  expect(stats.prefetched, `read ahead: ${JSON.stringify({ ...stats.readAhead, failures: stats.prefetchFailures })}`).toBeGreaterThanOrEqual(files.length)
  const missing = files.filter((name) => !cached(name))
  if (missing.length === 0) return
  const pagedOut = pageouts === undefined ? undefined : (damonPageouts() ?? pageouts) - pageouts
  expect(pagedOut, `not in the page cache: ${missing.join(' ')}; DAMON paged out nothing meanwhile`).toBeGreaterThan(0n)
  console.warn(`read ahead, then paged out by DAMON (${pagedOut} bytes meanwhile): ${missing.join(' ')}`)
}

const DAMON = '/sys/kernel/mm/damon/admin/kdamonds'

/**
 * The bytes DAMON's running `pageout` schemes have paged out so far (asking each running kdamond
 * to update its counters first), or undefined where none runs.
 */
function damonPageouts(): bigint | undefined {
  let total: bigint | undefined
  for (const kd of existsSync(DAMON) ? readdirSync(DAMON).filter((name) => /^\d+$/.test(name)) : []) {
    const dir = join(DAMON, kd)
    if (readFileSync(join(dir, 'state'), 'utf8').trim() !== 'on') continue
    writeFileSync(join(dir, 'state'), 'update_schemes_stats')
    for (const ctx of readdirSync(join(dir, 'contexts')).filter((name) => /^\d+$/.test(name))) {
      const schemes = join(dir, 'contexts', ctx, 'schemes')
      for (const scheme of readdirSync(schemes).filter((name) => /^\d+$/.test(name))) {
        if (readFileSync(join(schemes, scheme, 'action'), 'utf8').trim() !== 'pageout') continue
        total = (total ?? 0n) + BigInt(readFileSync(join(schemes, scheme, 'stats', 'sz_applied'), 'utf8').trim())
      }
    }
  }
  return total
}

/** The inode numbers getdents64(2) gives '.' and '..' in `dir` (readdir(3) wrappers skip both). */
function dotInos(dir: string): Record<string, bigint> {
  const script = `
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
buf = ctypes.create_string_buffer(65536)
out = {}
while True:
    n = libc.syscall(217, fd, buf, len(buf))  # SYS_getdents64 on x86-64
    if n <= 0:
        break
    at = 0
    while at < n:
        ino, off, reclen, kind = struct.unpack_from('<QqHB', buf.raw, at)
        name = buf.raw[at + 19:at + reclen].split(b'\\0', 1)[0].decode()
        if name in ('.', '..'):
            out[name] = (ino, kind)
        at += reclen
assert n == 0, ctypes.get_errno()
print(' '.join(f'{k}={v[0]}:{v[1]}' for k, v in sorted(out.items())))
`
  const line = execFileSync('python3', ['-c', script, dir], { encoding: 'utf8' }).trim()
  const out: Record<string, bigint> = {}
  for (const part of line.split(' ')) {
    const [name, value] = part.split('=') as [string, string]
    const [ino, type] = value.split(':')
    expect(type, `${dir}: the type of ${name}`).toBe('4') // DT_DIR
    out[name] = BigInt(ino!)
  }
  return out
}

/** Drops clean page cache, dentries and inodes (root only): the next read of a file must go to the disk. */
function dropCaches(): boolean {
  try {
    writeFileSync('/proc/sys/vm/drop_caches', '3')
    return true
  } catch {
    return false
  }
}

/** Drops the page cache's pages of `path` (posix_fadvise DONTNEED, through dd), written to the
 *  disk first (dirty pages stay). */
function dropPages(path: string): void {
  execFileSync('sync', [path])
  execFileSync('dd', [`if=${path}`, 'iflag=nocache', 'count=0', 'status=none'])
}

/** Opens answered in C that were a node's first (their bytes stored there). */
function firstOpens(stats: DaemonStats): number {
  return stats.loop?.firstOpens ?? 0
}

/** Of those, the ones that read their file from the disk. */
function uncachedFirstOpens(stats: DaemonStats): number {
  return stats.loop?.firstOpensUncached ?? 0
}

/** Bytes of `path` in the page cache: fincore asks mincore(2), which reads nothing in (a read that
 *  may not wait, RWF_NOWAIT, would). */
function residentBytes(path: string): number {
  return Number(execFileSync('fincore', ['-b', '-n', '-o', 'RES', path], { encoding: 'utf8' }).trim())
}

/**
 * Drops the caches until none of `files` has a page cached (a drop is best effort: it skips pages
 * in use at that moment), up to 10 times: the read-ahead tests start from files that must come
 * from the disk.
 */
async function dropUntilUncached(files: string[], cached: (name: string) => boolean): Promise<void> {
  for (let i = 0; i < 10 && (i === 0 || files.some(cached)); i++) {
    execFileSync('sync')
    expect(dropCaches()).toBe(true)
    if (files.some(cached)) await new Promise((r) => setTimeout(r, 200))
  }
  expect(files.filter(cached)).toEqual([])
}

// With passthrough (the default: writes and big reads bypass the daemon), and without it, with the
// default busy-polling after each burst of requests and without it (spin=0).
describe.skipIf(!fuse.ok).each(['', ',passthrough=off', ',spin=0,passthrough=off'])('ll bridge request paths (options%s)', (extra) => {
  const suite = layerfsSuite('iopaths')
  /** Two lower layers, topmost first. */
  const mountStack = (fill: (top: string, bottom: string) => Promise<void>) => suite.stack(extra, fill, 2)

  it('lists a big merged directory completely, once per name, for interleaved readers and after changes', async () => {
    // 1200 names over two layers (more than one readdirplus buffer many times over), 100 of them
    // deleted in the top layer by OCI whiteouts.
    const { mnt } = await mountStack(async (top, bottom) => {
      await mkdir(join(top, 'big'))
      await mkdir(join(bottom, 'big'))
      for (let i = 0; i < 600; i++) await writeFile(join(bottom, 'big', `low-${i}`), '')
      for (let i = 0; i < 600; i++) await writeFile(join(top, 'big', `top-${i}`), '')
      for (let i = 0; i < 100; i++) await writeFile(join(top, 'big', `.wh.low-${i}`), '')
      await mkdir(join(top, 'two'))
      await mkdir(join(bottom, 'two'))
      await writeFile(join(top, 'two', 'a'), '')
      await writeFile(join(bottom, 'two', 'b'), '')
    })
    const expected = [...Array.from({ length: 500 }, (_, i) => `low-${i + 100}`), ...Array.from({ length: 600 }, (_, i) => `top-${i}`)].sort()
    const big = join(mnt, 'big')
    // Several threads calling (node's thread pool, missing names): both lower layers' listings
    // are read on the daemon's thread pool, and the listing takes them.
    let before = await statsOf(mnt)
    await Promise.all(Array.from({ length: 20 }, (_, i) => stat(join(mnt, `missing-${i}`)).catch(() => undefined)))
    expect((await readdir(big)).sort()).toEqual(expected)
    expect((await statsOf(mnt)).listingsAhead - before.listingsAhead).toBe(2)
    // One thread alone calling (a process's, synchronously): the listing of another merged
    // directory is read at the reply, with no trip to the pool.
    before = await statsOf(mnt)
    const lone = execFileSync(process.execPath, ['-e', `
      const { readdirSync, statSync } = require('node:fs')
      for (let i = 0; i < 20; i++) { try { statSync(process.argv[1] + '/lone-' + i) } catch {} }
      console.log(JSON.stringify(readdirSync(process.argv[1] + '/two')))`, mnt], { encoding: 'utf8' })
    expect((JSON.parse(lone) as string[]).sort()).toEqual(['a', 'b'])
    expect((await statsOf(mnt)).listingsAhead - before.listingsAhead).toBe(0)

    // Two open directories read alternately, one entry at a time: each sees every name exactly once.
    const a = await opendir(big, { bufferSize: 1 })
    const b = await opendir(big, { bufferSize: 1 })
    const seenA: string[] = []
    const seenB: string[] = []
    for (;;) {
      const ea = await a.read()
      const eb = await b.read()
      if (ea) seenA.push(ea.name)
      if (eb) seenB.push(eb.name)
      if (!ea && !eb) break
    }
    await a.close()
    await b.close()
    expect(seenA.sort()).toEqual(expected)
    expect(seenB.sort()).toEqual(expected)

    // A listing after a change shows it: the kernel's cached listing is dropped with the change.
    await writeFile(join(big, 'new-one'), 'x')
    await writeFile(join(big, 'top-0'), 'copied up') // no change of names
    const after = await readdir(big)
    expect(after.length).toBe(expected.length + 1)
    expect(after).toContain('new-one')
  })

  // The daemon gives '.' and '..' their inode numbers and type only (no lstat each): getdents must
  // still show the numbers stat shows, for lower, merged, copied-up and new directories and the root;
  // and a directory's copy-up (by the union, or in C) keeps the number it showed.
  it("gives '.' and '..' the inode numbers stat shows, and copied-up directories their own", async () => {
    const { mnt } = await mountStack(async (top, bottom) => {
      await mkdir(join(bottom, 'low', 'deeper'), { recursive: true })
      await mkdir(join(top, 'merged', 'sub'), { recursive: true })
      await mkdir(join(bottom, 'merged', 'sub'), { recursive: true })
      await mkdir(join(bottom, 'copied', 'in'), { recursive: true })
    })
    const dirs = ['', 'low', 'low/deeper', 'merged', 'merged/sub', 'copied', 'copied/in']
    const before = new Map<string, bigint>()
    for (const dir of dirs) before.set(dir, (await stat(join(mnt, dir), { bigint: true })).ino)
    await chmod(join(mnt, 'copied', 'in'), 0o700) // both copied up by the union
    // Its parent (the root) is in the upper layer: copied up in C, and the inode number handed over.
    const inC = (await statsOf(mnt)).loop!.cowSetattrs
    await chmod(join(mnt, 'low'), 0o750)
    expect((await statsOf(mnt)).loop!.cowSetattrs).toBe(inC + 1)
    await mkdir(join(mnt, 'copied', 'in', 'new'))
    for (const dir of [...dirs, 'copied/in/new']) {
      const path = join(mnt, dir)
      const shown = dotInos(path)
      const own = (await stat(path, { bigint: true })).ino
      // A copy-up keeps the inode number.
      if (before.has(dir)) expect(own, dir).toBe(before.get(dir))
      // The root's '..' is its own (the mount's parent is outside it), as on any filesystem's root.
      const parent = dir === '' ? own : (await stat(join(path, '..'), { bigint: true })).ino
      expect(shown, dir).toEqual({ '.': own, '..': parent })
    }
  })

  it('answers the empty read that ends a listing in C, and lists every name after changes and a reader that stopped', async () => {
    const { mnt } = await mountStack(async (top, bottom) => {
      await mkdir(join(top, 'empty'))
      await mkdir(join(top, 'small'))
      await mkdir(join(bottom, 'small'))
      for (const name of ['a', 'b', 'c']) await writeFile(join(top, 'small', name), name)
      for (const name of ['c', 'd', 'e']) await writeFile(join(bottom, 'small', name), name)
      await mkdir(join(top, 'big'))
      for (let i = 0; i < 1000; i++) await writeFile(join(top, 'big', `name-${String(i).padStart(4, '0')}`), '')
    })
    const names = (n: number, from = 0): string[] => Array.from({ length: n }, (_, i) => `name-${String(i + from).padStart(4, '0')}`)
    const before = await statsOf(mnt)
    expect(await readdir(join(mnt, 'empty'))).toEqual([])
    expect((await readdir(join(mnt, 'small'))).sort()).toEqual(['a', 'b', 'c', 'd', 'e'])
    expect((await readdir(join(mnt, 'big'))).sort()).toEqual(names(1000))
    // Each pass ended with one read past its last entry (the big one's after many replies), and C
    // answered it: JS saw none of them.
    const after = await statsOf(mnt)
    expect(after.loop!.dirEnds - before.loop!.dirEnds).toBe(3)
    expect(delta(before, after, 'readdir') + delta(before, after, 'readdirplus')).toBeGreaterThan(3)

    // Changes between passes: the next pass is a new listing, whose end is its own (the old end
    // falls many replies before the new one).
    for (let i = 1000; i < 1200; i++) await writeFile(join(mnt, 'big', `name-${i}`), '')
    expect((await readdir(join(mnt, 'big'))).sort()).toEqual(names(1200))
    await rm(join(mnt, 'big', 'name-0000'))
    await rm(join(mnt, 'small', 'e'))
    expect((await readdir(join(mnt, 'big'))).sort()).toEqual(names(1199, 1))
    expect((await readdir(join(mnt, 'small'))).sort()).toEqual(['a', 'b', 'c', 'd'])
    // A reader that stops part of the way leaves no end behind; the listing after a change is whole.
    const partial = await opendir(join(mnt, 'big'), { bufferSize: 1 })
    for (let i = 0; i < 10; i++) expect(await partial.read()).not.toBeNull()
    await partial.close()
    for (let i = 1200; i < 1300; i++) await writeFile(join(mnt, 'big', `name-${i}`), '')
    expect((await readdir(join(mnt, 'big'))).sort()).toEqual(names(1299, 1))
  })

  it('reads the same bytes cached, uncached in small pieces and in big ones', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 123)
    const { mnt } = await mountStack(async (top) => {
      await writeFile(join(top, 'blob'), data)
    })
    const path = join(mnt, 'blob')
    const dropped = dropCaches()
    if (!dropped) console.warn('not root: the uncached reads below may be served from the page cache')
    const fh = await open(path, 'r')
    try {
      // Small reads at scattered offsets (the small-read path when uncached), the last one short.
      for (const at of [0, 4096 * 37, 1234567, data.length - 100]) {
        const buf = Buffer.alloc(4096)
        const { bytesRead } = await fh.read(buf, 0, 4096, at)
        expect(bytesRead).toBe(Math.min(4096, data.length - at))
        expect(buf.subarray(0, bytesRead).equals(data.subarray(at, at + bytesRead))).toBe(true)
      }
      // A read past the end returns nothing.
      expect((await fh.read(Buffer.alloc(16), 0, 16, data.length + 10)).bytesRead).toBe(0)
    } finally {
      await fh.close()
    }
    // Whole-file reads: big requests (the pool when uncached), then again from the cache.
    expect((await readFile(path)).equals(data)).toBe(true)
    expect((await readFile(path)).equals(data)).toBe(true)
  })

  it('hands the kernel a small file\'s bytes at its first open: no read requests, same bytes, same atime', async () => {
    const sizes = [1, 4095, 4096, 4097, 16 * 1024 + 1, 64 * 1024]
    const blobs = sizes.map((n) => randomBytes(n))
    const big = randomBytes(64 * 1024 + 1)
    const { mnt, lowers } = await mountStack(async (top, bottom) => {
      for (const [i, blob] of blobs.entries()) await writeFile(join(bottom, `f${i}`), blob)
      await writeFile(join(top, 'big'), big)
      // Atimes older than the mtimes: the first read moves them (relatime), in the lower layer too.
      for (const name of ['aged', 'cold']) {
        await writeFile(join(bottom, name), `${name} bytes`)
        await utimes(join(bottom, name), new Date('2000-01-01'), new Date('2001-01-01'))
      }
    })
    // Files the host has cached (just written): their first opens are answered in C
    // (native/fuse-ll-fast.c), which stores their bytes as JS does.
    const before = await statsOf(mnt)
    for (const [i, blob] of blobs.entries()) expect((await readFile(join(mnt, `f${i}`))).equals(blob)).toBe(true)
    const afterSmall = await statsOf(mnt)
    expect(delta(before, afterSmall, 'open')).toBe(0)
    expect(firstOpens(afterSmall) - firstOpens(before)).toBe(sizes.length)
    expect(delta(before, afterSmall, 'read')).toBe(0)
    // Bigger files are opened by JS and read by request, as before.
    expect((await readFile(join(mnt, 'big'))).equals(big)).toBe(true)
    const afterBig = await statsOf(mnt)
    expect(delta(afterSmall, afterBig, 'open')).toBe(1)
    expect(delta(afterSmall, afterBig, 'read')).toBeGreaterThan(0)

    // The kernel's cached atime follows the read the store made, in C and in JS.
    const aged = join(mnt, 'aged')
    expect((await stat(aged)).atimeMs).toBe(Date.parse('2000-01-01'))
    expect(await readFile(aged, 'utf8')).toBe('aged bytes')
    const lowerAtime = (await stat(join(lowers[1]!, 'aged'))).atimeMs
    expect(lowerAtime).toBeGreaterThan(Date.parse('2001-01-01')) // the lower filesystem is relatime
    expect((await stat(aged)).atimeMs).toBe(lowerAtime)
    // One the host has not cached is read in C as well, once the other requests of its batch are
    // answered (native/fuse-ll-fast.c: parked), and its bytes stored: no request reaches JS.
    const cold = join(mnt, 'cold')
    dropPages(join(lowers[1]!, 'cold'))
    expect(residentBytes(join(lowers[1]!, 'cold'))).toBe(0)
    // fincore maps the file, which moves its atime: aged again.
    await utimes(join(lowers[1]!, 'cold'), new Date('2000-01-01'), new Date('2001-01-01'))
    expect((await stat(cold)).atimeMs).toBe(Date.parse('2000-01-01'))
    const beforeCold = await statsOf(mnt)
    expect(await readFile(cold, 'utf8')).toBe('cold bytes')
    const afterCold = await statsOf(mnt)
    expect(delta(beforeCold, afterCold, 'open')).toBe(0)
    expect(delta(beforeCold, afterCold, 'read')).toBe(0)
    expect(firstOpens(afterCold)).toBe(firstOpens(beforeCold) + 1)
    expect(uncachedFirstOpens(afterCold)).toBe(uncachedFirstOpens(beforeCold) + 1)
    expect((await stat(cold)).atimeMs).toBe((await stat(join(lowers[1]!, 'cold'))).atimeMs)
    expect((await stat(cold)).atimeMs).toBeGreaterThan(Date.parse('2001-01-01'))

    // Uncached below, and read by many at once (the first open stores, the others read the pages).
    if (!dropCaches()) console.warn('not root: the reads below may be served from the page cache')
    const readers = await Promise.all(blobs.flatMap((_, i) => [0, 1, 2].map(() => readFile(join(mnt, `f${i}`)))))
    readers.forEach((got, k) => expect(got.equals(blobs[Math.floor(k / 3)]!)).toBe(true))

    // A file written through the mount and still open for writing: its readers see the new bytes.
    const handle = await open(join(mnt, 'f0'), 'r+')
    try {
      await handle.write('changed', 0)
      expect(await readFile(join(mnt, 'f0'), 'utf8')).toBe('changed')
    } finally {
      await handle.close()
    }
  })

  it.skipIf(!isRoot)('answers first opens of uncached files in C at the end of their batch, beside changes to the same files', async () => {
    // A file per directory, none listed: nothing reads them ahead, so every first open finds its
    // file uncached (native/fuse-ll-fast.c parks it until the batch of requests it came in ends).
    const blobs = Array.from({ length: 150 }, () => randomBytes(8192))
    const { mnt, lowers } = await mountStack(async (top) => {
      for (const [i, blob] of blobs.entries()) {
        await mkdir(join(top, `d${i}`))
        await writeFile(join(top, `d${i}`, 'f'), blob)
      }
    })
    const resident = (i: number): number => residentBytes(join(lowers[0]!, `d${i}`, 'f'))
    await dropUntilUncached(blobs.map((_, i) => i), (i) => resident(i) > 0)
    const before = await statsOf(mnt)
    // Two readers of each file at once, and a third process truncating it (a copy-up C may answer)
    // or appending to it (an open for writing, copied up): their requests come in the same batches
    // as its first opens.
    const seen = await mkdtemp(join(suite.dir, 'seen-'))
    const script = `for i in $(seq 0 ${blobs.length - 1}); do
      cat d$i/f > ${seen}/$i.a & cat d$i/f > ${seen}/$i.b &
      if [ $((i % 2)) = 0 ]; then truncate -s 100 d$i/f & else echo -n tail >> d$i/f & fi
    done; wait`
    const run = spawnSync('bash', ['-c', script], { cwd: mnt, encoding: 'utf8', timeout: 60_000 })
    expect(run.stderr).toBe('')
    const expected = (i: number): Buffer[] => {
      const blob = blobs[i]!
      return i % 2 === 0 ? [blob, blob.subarray(0, 100)] : [blob, Buffer.concat([blob, Buffer.from('tail')])]
    }
    for (const [i] of blobs.entries()) {
      // Each reader of an appended file saw it whole, before or after the append. (One that read a
      // file while it was truncated may find zeros past the new end: the kernel takes the size it
      // reads up to before it copies the pages, which a truncate zeroes and drops meanwhile. The
      // build before parking showed it too, about one such reader in a few thousand.)
      for (const reader of i % 2 === 1 ? ['a', 'b'] : []) {
        const bytes = await readFile(join(seen, `${i}.${reader}`))
        expect(expected(i).some((b) => b.equals(bytes)), `d${i}/f, reader ${reader}: ${bytes.length} bytes`).toBe(true)
      }
      // Afterwards every file is changed, its size too.
      const now = expected(i)[1]!
      expect((await stat(join(mnt, `d${i}`, 'f'))).size, `d${i}/f's size`).toBe(now.length)
      expect((await readFile(join(mnt, `d${i}`, 'f'))).equals(now), `d${i}/f`).toBe(true)
    }
    const after = await statsOf(mnt)
    expect(uncachedFirstOpens(after) - uncachedFirstOpens(before), 'first opens answered in C after reading from the disk').toBeGreaterThan(0)
  }, 90_000)

  // A reader going through the names as readdir gives them, and one going the other way.
  const orders: Array<[string, (names: string[]) => string[]]> = [
    ['the next files of a directory whose files are read uncached one after another', (names) => names],
    ['the files before, for a reader going through a directory backwards', (names) => [...names].reverse()],
  ]
  for (const [what, inOrder] of orders) {
    it.skipIf(!isRoot)(`reads ahead ${what}`, async () => {
      const blobs = Array.from({ length: 24 }, () => randomBytes(8192))
      const { mnt, lowers } = await mountStack(async (top) => {
        await mkdir(join(top, 'dir'))
        for (const [i, blob] of blobs.entries()) await writeFile(join(top, 'dir', `f${i}`), blob)
      })
      // Dropped before the listing: the kernel's forgets of the mount's dropped inodes come first.
      const resident = (name: string): number => residentBytes(join(lowers[0]!, 'dir', name))
      await dropUntilUncached(await readdir(join(lowers[0]!, 'dir')), (name) => resident(name) > 0)
      const names = inOrder(await readdir(join(mnt, 'dir'))) // in the order the reader goes through them
      const cached = (name: string): boolean => resident(name) === 8192
      const pageouts = damonPageouts()
      // Two files read uncached: the others follow on the thread pool.
      for (const name of names.slice(0, 2)) await readFile(join(mnt, 'dir', name))
      await readAhead(mnt, names.slice(2), cached, pageouts)
      for (const name of names) expect((await readFile(join(mnt, 'dir', name))).equals(blobs[Number(name.slice(1))]!)).toBe(true)
    }, 90_000)
  }

  it.skipIf(!isRoot)('reads ahead the files of a directory listed after a reader found files uncached', async () => {
    const blobs = Array.from({ length: 12 }, () => randomBytes(8192))
    const { mnt, lowers } = await mountStack(async (top) => {
      for (const dir of ['a', 'b']) {
        await mkdir(join(top, dir))
        for (const [i, blob] of blobs.entries()) await writeFile(join(top, dir, `f${i}`), blob)
      }
    })
    const resident = (dir: string, name: string): number => residentBytes(join(lowers[0]!, dir, name))
    const names = await readdir(join(lowers[0]!, 'a'))
    await dropUntilUncached([...names.map((n) => `a/${n}`), ...names.map((n) => `b/${n}`)], (path) => resident(dirname(path), basename(path)) > 0)
    const inA = await readdir(join(mnt, 'a'))
    const pageouts = damonPageouts()
    // One file of a/ read uncached, then b/ listed: b's files are read ahead before any is opened.
    await readFile(join(mnt, 'a', inA[0]!))
    expect(await readdir(join(mnt, 'b'))).toEqual(inA)
    await readAhead(mnt, inA.map((n) => `b/${n}`), (path) => resident(dirname(path), basename(path)) === 8192, pageouts)
    for (const name of inA) expect((await readFile(join(mnt, 'b', name))).equals(blobs[Number(name.slice(1))]!)).toBe(true)
  }, 90_000)

  it.skipIf(!isRoot)('reads ahead the next files of a directory whose files chmod copies up uncached', async () => {
    const blobs = Array.from({ length: 24 }, () => randomBytes(8192))
    const { mnt, lowers, upper } = await mountStack(async (top) => {
      await mkdir(join(top, 'dir'))
      for (const [i, blob] of blobs.entries()) await writeFile(join(top, 'dir', `f${i}`), blob)
    })
    // Dropped before the listing: the kernel's forgets of the mount's dropped inodes come first.
    const resident = (name: string): number => residentBytes(join(lowers[0]!, 'dir', name))
    await dropUntilUncached(await readdir(join(lowers[0]!, 'dir')), (name) => resident(name) > 0)
    const names = await readdir(join(mnt, 'dir')) // in the order chmod -R goes through them
    const cached = (name: string): boolean => resident(name) === 8192
    const later = names.slice(2)
    const before = await statsOf(mnt)
    const pageouts = damonPageouts()
    // Two copy-ups (answered in C) that read their data from the disk: the others follow on the pool.
    for (const name of names.slice(0, 2)) await chmod(join(mnt, 'dir', name), 0o600)
    expect((await statsOf(mnt)).loop!.cowSetattrs - before.loop!.cowSetattrs).toBe(2)
    await readAhead(mnt, later, cached, pageouts)
    // Read ahead, not copied up: only the two are in the upper layer once flushed.
    for (const name of names) expect((await readFile(join(mnt, 'dir', name))).equals(blobs[Number(name.slice(1))]!)).toBe(true)
    for (let i = 0; i < 250 && (await statsOf(mnt)).deferredCopies > 0; i++) await new Promise((r) => setTimeout(r, 20))
    expect((await readdir(join(upper, 'dir'))).sort()).toEqual(names.slice(0, 2).sort())
  }, 90_000)

  it('writes small and big pieces into the upper layer, byte for byte', async () => {
    const { mnt, upper } = await mountStack(async (top) => {
      await writeFile(join(top, 'lowfile'), 'lower bytes\n')
    })
    const small = randomBytes(3000)
    const big = randomBytes(2 * 1024 * 1024 + 5)
    const fh = await open(join(mnt, 'written'), 'w+')
    try {
      await fh.write(small, 0, small.length, 0)
      await fh.write(big, 0, big.length, small.length)
      await fh.write(small, 0, 10, 5) // overwrite inside the first piece
    } finally {
      await fh.close()
    }
    const expected = Buffer.concat([small, big])
    small.copy(expected, 5, 0, 10)
    expect((await readFile(join(mnt, 'written'))).equals(expected)).toBe(true)
    expect((await readFile(join(upper, 'written'))).equals(expected)).toBe(true)
    // An append to a lower file copies it up first and keeps its bytes.
    await writeFile(join(mnt, 'lowfile'), 'more\n', { flag: 'a' })
    expect((await readUpper(join(upper, 'lowfile'))).toString()).toBe('lower bytes\nmore\n')
  })

  it('answers fsync and fdatasync of new, copied-up and read-only lower files', async () => {
    const { mnt, upper } = await mountStack(async (top) => {
      await writeFile(join(top, 'low'), 'lower bytes')
    })
    const before = await statsOf(mnt)
    const created = await open(join(mnt, 'new'), 'w')
    const copied = await open(join(mnt, 'low'), 'r+')
    const reader = await open(join(mnt, 'low'), 'r')
    try {
      await created.write('new bytes')
      await created.sync()
      await created.datasync()
      await copied.write('LOWER', 0)
      await copied.datasync()
      await reader.sync()
    } finally {
      await Promise.all([created.close(), copied.close(), reader.close()])
    }
    expect(delta(before, await statsOf(mnt), 'fsync')).toBe(4)
    expect(await readFile(join(upper, 'new'), 'utf8')).toBe('new bytes')
    expect(await readFile(join(upper, 'low'), 'utf8')).toBe('LOWER bytes')
  })

  it('answers getattr of a file unlinked while open through its handle', async () => {
    const { mnt } = await mountStack(async () => {})
    const path = join(mnt, 'gone')
    await writeFile(path, 'hello')
    await chmod(path, 0o640)
    await utimes(path, 1_000_000, 2_000_000.5)
    const before = await stat(path)
    const handle = await open(path, 'r')
    try {
      const requests = await statsOf(mnt)
      await rm(path)
      // The unlink leaves the kernel's ctime stale: the fstat asks the daemon, which has no name to
      // go by any more, only the open handle.
      const st = await handle.stat()
      expect(delta(requests, await statsOf(mnt), 'getattr')).toBeGreaterThanOrEqual(1)
      expect([st.ino, st.nlink, st.size, st.mode & 0o7777, st.mtimeMs]).toEqual([before.ino, 0, 5, 0o640, 2_000_000_500])
    } finally {
      await handle.close()
    }
  })

  it('changes mode, times and size of an upper file at once, and of a lower one through a copy-up', async () => {
    const { mnt, upper } = await mountStack(async (top) => {
      await writeFile(join(top, 'low'), 'lower content')
    })
    const up = join(mnt, 'up')
    await writeFile(up, 'upper content')
    await chmod(up, 0o640)
    await truncate(up, 5)
    await utimes(up, 1_000_000, 2_000_000) // last: a truncate sets mtime
    const st = await stat(up)
    expect(st.mode & 0o7777).toBe(0o640)
    expect(st.mtimeMs).toBe(2_000_000_000)
    expect(st.size).toBe(5)
    expect(await readFile(up, 'utf8')).toBe('upper')
    expect((await lstat(join(upper, 'up'))).mode & 0o7777).toBe(0o640)

    await chmod(join(mnt, 'low'), 0o600)
    await truncate(join(mnt, 'low'), 3)
    expect((await stat(join(mnt, 'low'))).mode & 0o7777).toBe(0o600)
    expect((await readUpper(join(upper, 'low'))).toString()).toBe('low')
  })
})
