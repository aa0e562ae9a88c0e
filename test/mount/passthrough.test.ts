// FUSE passthrough (src/fuse/open-files.ts, native/fuse-ll-passthrough.c) through a real mount:
// which opens pass through (the daemon then sees no read or write), that the kernel's one-mode-per-
// inode rule never fails an open, and what a reader opened before a copy-up sees under each policy.
import { existsSync } from 'node:fs'
import { chmod, copyFile, link, mkdir, open, readFile, stat, truncate, writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { LAYERFS_COMMAND as CLI, fuseAvailable, mountFuse, mountOverlay, overlayAvailable, runCmd } from '../helpers/mount.js'
import { delta, statsOf } from '../helpers/daemon-stats.js'
import { layerfsSuite, readUpper } from '../helpers/layerfs-suite.js'
import { PASSTHROUGH_READ_MIN } from '../../src/fuse/open-files.js'

const fuse = fuseAvailable()
if (!fuse.ok) console.warn(`skipping passthrough mount tests: ${fuse.reason}`)
if (fuse.ok && !existsSync(resolve('dist/src/cli/main.js'))) throw new Error('build first: npm run build')

/** A text of at least PASSTHROUGH_READ_MIN bytes starting with `head`. */
function bigText(head: string): string {
  return head + '.'.repeat(PASSTHROUGH_READ_MIN)
}

describe.skipIf(!fuse.ok)('FUSE passthrough', () => {
  const suite = layerfsSuite('passthrough')
  /** Set by the first test: whether this kernel grants passthrough at all. */
  let granted = true

  /** A stack whose lower `f` is big and starts with 'old content', and a reader of `f` that has read
   *  those 11 bytes into `buf` (the caller closes it). */
  async function readingBigLowerFile(options: string) {
    const { mnt, upper } = await suite.stack(options, (lower) => writeFile(join(lower, 'f'), bigText('old content')))
    const reader = await open(join(mnt, 'f'), 'r')
    const buf = Buffer.alloc(11)
    expect((await reader.read(buf, 0, 11, 0)).bytesRead).toBe(11)
    return { mnt, upper, reader, buf }
  }

  it('reads big lower files and writes upper files without a read or write request', async () => {
    const big = randomBytes(PASSTHROUGH_READ_MIN + 4321)
    const { mnt, upper } = await suite.stack('', async (lower) => {
      await writeFile(join(lower, 'big'), big)
      await writeFile(join(lower, 'small'), 'small lower')
    })
    const before = await statsOf(mnt)
    expect((await readFile(join(mnt, 'big'))).equals(big)).toBe(true)
    await writeFile(join(mnt, 'new'), 'first')
    await writeFile(join(mnt, 'new'), ' second', { flag: 'a' })
    const after = await statsOf(mnt)
    if (after.passthrough === 'off') {
      granted = false
      console.warn('skipping passthrough assertions: this kernel did not grant FUSE passthrough (needs Linux 6.9+ and CAP_SYS_ADMIN)')
      return
    }
    expect(after.passedThrough - before.passedThrough).toBe(3)
    expect(delta(before, after, 'read')).toBe(0)
    expect(delta(before, after, 'write')).toBe(0)
    expect(await readFile(join(upper, 'new'), 'utf8')).toBe('first second')
    // The size the kernel reports follows writes it made itself.
    expect((await stat(join(mnt, 'new'))).size).toBe(12)
    // Small files opened for reading stay with the daemon (their pages are kept across opens).
    expect(await readFile(join(mnt, 'small'), 'utf8')).toBe('small lower')
    expect(await readFile(join(mnt, 'new'), 'utf8')).toBe('first second')
    const last = await statsOf(mnt)
    expect(last.passedThrough).toBe(after.passedThrough)
    expect(delta(after, last, 'read')).toBeGreaterThan(0)
  })

  it('copies up small lower files read cold while a reader holds them (chmod answered in C, a write, a truncate): the readers move to the copies', async () => {
    const files: string[] = []
    const { mnt, upper } = await suite.stack('', async (lower) => {
      for (const name of ['f', 'g']) {
        files.push(join(lower, name))
        await writeFile(join(lower, name), `${name} lower bytes\n`)
      }
    })
    // Out of the host's page cache: written back, then dropped (dd's nocache is POSIX_FADV_DONTNEED).
    await runCmd('sync', files)
    for (const file of files) expect((await runCmd('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none'])).code).toBe(0)
    const before = await statsOf(mnt)
    const readers = [await open(join(mnt, 'f'), 'r'), await open(join(mnt, 'g'), 'r')]
    try {
      // Small files opened for reading stay with the daemon, cached or not.
      expect((await statsOf(mnt)).passedThrough).toBe(before.passedThrough)
      await chmod(join(mnt, 'f'), 0o600)
      await writeFile(join(mnt, 'f'), 'new f\n', { flag: 'r+' })
      await truncate(join(mnt, 'g'), 3)
      expect(await readFile(join(mnt, 'f'), 'utf8')).toBe('new f\nr bytes\n')
      expect(await readFile(join(mnt, 'g'), 'utf8')).toBe('g l')
      expect((await stat(join(mnt, 'f'))).mode & 0o777).toBe(0o600)
      // Readers opened before the copy-ups read the copies, as overlayfs's do since Linux 4.19.
      const got: string[] = []
      for (const r of readers) {
        const buf = Buffer.alloc(64)
        got.push(buf.toString('utf8', 0, (await r.read(buf, 0, 64, 0)).bytesRead))
      }
      expect(got).toEqual(['new f\nr bytes\n', 'g l'])
    } finally {
      for (const r of readers) await r.close()
    }
    expect((await readUpper(join(upper, 'f'))).toString()).toBe('new f\nr bytes\n')
    expect((await readUpper(join(upper, 'g'))).toString()).toBe('g l')
  })

  it('drops pages cached before a write that passed through', async () => {
    const { mnt } = await suite.stack('', async () => {})
    const path = join(mnt, 'f')
    await writeFile(path, 'one')
    expect(await readFile(path, 'utf8')).toBe('one') // through the daemon: the kernel caches the page
    await writeFile(path, 'TWO', { flag: 'r+' }) // passes through: the kernel drops the page at open
    expect(await readFile(path, 'utf8')).toBe('TWO')
    await writeFile(path, 'three', { flag: 'r+' })
    expect(await readFile(path, 'utf8')).toBe('three')
  })

  it('keeps reads and writes with the daemon when passthrough=off', async () => {
    // Bigger than what a first open hands the kernel with its reply (64 KiB): read by request.
    const text = 'lower bytes'.repeat(10_000)
    const { mnt, upper } = await suite.stack(',passthrough=off', async (lower) => {
      await writeFile(join(lower, 'low'), text)
    })
    const before = await statsOf(mnt)
    expect(await readFile(join(mnt, 'low'), 'utf8') === text).toBe(true)
    await writeFile(join(mnt, 'new'), 'data')
    const after = await statsOf(mnt)
    expect(after.passthrough).toBe('off')
    expect(after.passedThrough).toBe(0)
    expect(delta(before, after, 'read')).toBeGreaterThan(0)
    expect(delta(before, after, 'write')).toBeGreaterThan(0)
    expect(await readFile(join(upper, 'new'), 'utf8')).toBe('data')
  })

  it('opens a big lower file for writing while a reader holds it: the writer gets the upper copy, a new reader sees it', async () => {
    const { mnt, upper, reader, buf } = await readingBigLowerFile('')
    try {
      // The write-open copies up; the node passing through to the lower file is retired (ESTALE,
      // and the kernel's retry opens the fresh node): the caller never sees an error.
      await writeFile(join(mnt, 'f'), 'new!', { flag: 'r+' })
      expect((await readUpper(join(upper, 'f'))).toString() === bigText('new!content')).toBe(true)
      expect(await readFile(join(mnt, 'f'), 'utf8') === bigText('new!content')).toBe(true)
      expect((await stat(join(mnt, 'f'))).size).toBe(bigText('old content').length)
      // The reader opened before the copy-up goes on reading the lower file (as overlayfs before
      // 4.19 and fuse-overlayfs do); without passthrough it is moved over to the copy.
      await reader.read(buf, 0, 11, 0)
      expect(buf.toString()).toBe(granted ? 'old content' : 'new!content')
    } finally {
      await reader.close()
    }
    // Once the old reader is closed, every open sees the upper copy.
    expect((await readFile(join(mnt, 'f'), 'utf8')).slice(0, 11)).toBe('new!content')
  })

  it('passthrough=upper moves a reader opened before a copy-up over to the upper copy', async () => {
    const { mnt, reader, buf } = await readingBigLowerFile(',passthrough=upper')
    try {
      await writeFile(join(mnt, 'f'), 'NEW', { flag: 'r+' })
      // The write went through the daemon and this inode, so the reader's cached page is current.
      await reader.read(buf, 0, 11, 0)
      expect(buf.toString()).toBe('NEW content')
      const stats = await statsOf(mnt)
      expect(stats.passthrough).toBe(granted ? 'upper' : 'off')
      expect(stats.passedThrough).toBe(0) // the node stayed with the daemon while the reader held it
    } finally {
      await reader.close()
    }
    // The node has no open file left: the next open of the now-upper file passes through.
    const before = await statsOf(mnt)
    expect((await readFile(join(mnt, 'f'), 'utf8')).slice(0, 11)).toBe('NEW content')
    expect((await statsOf(mnt)).passedThrough - before.passedThrough).toBe(granted ? 1 : 0)
  })

  it('truncating a big lower file by name while a reader holds it: new opens see the truncated copy', async () => {
    const { mnt, upper } = await suite.stack('', async (lower) => {
      await writeFile(join(lower, 'f'), bigText('twelve bytes'))
    })
    const reader = await open(join(mnt, 'f'), 'r')
    try {
      expect((await reader.read(Buffer.alloc(4), 0, 4, 0)).bytesRead).toBe(4)
      await truncate(join(mnt, 'f'), 3)
      expect(await readFile(join(mnt, 'f'), 'utf8')).toBe('twe')
      expect((await readUpper(join(upper, 'f'))).toString()).toBe('twe')
      expect((await stat(join(mnt, 'f'))).size).toBe(3)
    } finally {
      await reader.close()
    }
  })

  it('runs a big lower executable mapped from its backing file', async () => {
    const { mnt } = await suite.stack('', async (lower) => {
      await copyFile('/usr/bin/bash', join(lower, 'bash'))
      await chmod(join(lower, 'bash'), 0o755)
    })
    const size = (await stat(join(mnt, 'bash'))).size
    if (size < PASSTHROUGH_READ_MIN) throw new Error(`/usr/bin/bash is ${size} bytes: too small to pass through`)
    const before = await statsOf(mnt)
    const r = await runCmd(join(mnt, 'bash'), ['-c', 'echo $((6 * 7))'])
    expect(r.stdout.trim()).toBe('42')
    const after = await statsOf(mnt)
    expect(after.passedThrough - before.passedThrough).toBe(granted ? 1 : 0)
    if (granted) expect(delta(before, after, 'read')).toBe(0) // exec and mmap read the lower file itself
  })

  it('writes to an upper file with two names through the daemon, so both names see them', async () => {
    const { mnt } = await suite.stack('', async () => {})
    await writeFile(join(mnt, 'a'), 'one')
    await link(join(mnt, 'a'), join(mnt, 'b'))
    // Cache b's pages first, then write through a.
    expect(await readFile(join(mnt, 'b'), 'utf8')).toBe('one')
    const before = await statsOf(mnt)
    await writeFile(join(mnt, 'a'), 'two', { flag: 'r+' })
    expect(await readFile(join(mnt, 'b'), 'utf8')).toBe('two')
    const after = await statsOf(mnt)
    expect(delta(before, after, 'write')).toBe(1)
    expect(after.passedThrough - before.passedThrough).toBe(0)
  })

  it('keeps no attributes of a name linked to a file while it passes through: its size follows the writes', async () => {
    const { mnt } = await suite.stack('', async () => {})
    await writeFile(join(mnt, 'a'), 'one')
    const before = await statsOf(mnt)
    const writer = await open(join(mnt, 'a'), 'a')
    try {
      await link(join(mnt, 'a'), join(mnt, 'b'))
      expect((await stat(join(mnt, 'b'))).size).toBe(3)
      await writer.write('+two')
      // As with overlayfs, where both names are one inode.
      expect((await stat(join(mnt, 'b'))).size).toBe(7)
      expect(await readFile(join(mnt, 'b'), 'utf8')).toBe('one+two')
      const during = await statsOf(mnt)
      expect(during.passedThrough - before.passedThrough).toBe(granted ? 1 : 0)
    } finally {
      await writer.close()
    }
    expect((await stat(join(mnt, 'b'))).size).toBe(7)
  })

  it('serves many concurrent opens of one node in one mode, whichever comes first', async () => {
    const { mnt } = await suite.stack('', async (lower) => {
      for (let i = 0; i < 8; i++) await writeFile(join(lower, `f${i}`), bigText(`lower ${i}`))
    })
    // Readers and writers of the same files at once: every open succeeds and every file ends up
    // with its writer's bytes.
    await Promise.all(Array.from({ length: 8 }, async (_, i) => {
      const path = join(mnt, `f${i}`)
      const readers = await Promise.all([open(path, 'r'), open(path, 'r')])
      try {
        await writeFile(path, `upper ${i}`)
        expect(await readFile(path, 'utf8')).toBe(`upper ${i}`)
      } finally {
        await Promise.all(readers.map((r) => r.close()))
      }
    }))
    for (let i = 0; i < 8; i++) expect(await readFile(join(mnt, `f${i}`), 'utf8')).toBe(`upper ${i}`)
  })

  // Opens for writing of small lower files copied up in C (fll_cow_open) pass through while readers
  // of the same files come and go, opened in C or by JS: every open must find the node in one
  // mode. Some one at a time first (C answers them), then many at once, in an order a seeded random
  // walk picks: no operation may fail.
  it('keeps one mode per node while small lower files are opened for writing and reading at once', async () => {
    const N = 120
    const { mnt } = await suite.stack('', async (lower) => {
      await mkdir(join(lower, 'd'))
      for (let i = 0; i < N; i++) await writeFile(join(lower, 'd', `f${i}`), `lower ${i}`)
    })
    const at = (i: number): string => join(mnt, 'd', `f${i}`)
    await stat(at(0))
    const before = await statsOf(mnt)
    for (let i = 0; i < 10; i++) {
      await readFile(at(i))
      const f = await open(at(i), 'r+')
      await f.write('s', 0)
      await f.close()
    }
    const after = await statsOf(mnt)
    if (granted) expect(after.loop!.cowOpens - before.loop!.cowOpens).toBe(10)
    let seed = 12345
    const next = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed % n
    }
    const last = new Map<number, string>()
    const failures: string[] = []
    await Promise.all(Array.from({ length: 12 }, async (_, w) => {
      for (let k = 0; k < 60; k++) {
        const i = 10 + next(N - 10)
        const kind = next(5)
        try {
          if (kind === 0) await readFile(at(i))
          else if (kind === 1) await stat(at(i))
          else {
            // A writer, alone, beside a reader that stays open across it, or read by name while
            // it is open.
            const reader = kind === 3 ? await open(at(i), 'r') : undefined
            const f = await open(at(i), 'r+')
            const text = `w${w}-${k}`
            await f.write(text, 0)
            last.set(i, text)
            if (kind === 4) await readFile(at(i))
            await f.close()
            await reader?.close()
          }
        } catch (err) {
          failures.push(`${kind} f${i}: ${(err as Error).message}`)
        }
      }
    }))
    expect(failures).toEqual([])
    // Every file a writer opened begins with some writer's text (writers of one file may overlap).
    for (const [i, text] of last) expect((await readFile(at(i), 'utf8')).slice(0, text.length)).toMatch(/^w\d+-\d+$/)
    expect((await readFile(at(0), 'utf8'))).toBe('sower 0')
  })

  // The first open for writing of a small lower file is copied up in C, which registers the copy
  // as its backing file (fll_cow_open); an upper layer on overlayfs cannot back one (ELOOP): C then
  // leaves such opens to JS, which finds out the same and writes through the daemon.
  it('writes lower files copied up at their first open through the daemon when the upper layer is on overlayfs', async (ctx) => {
    const overlay = overlayAvailable()
    if (!overlay.ok) {
      console.warn(`stacked-upper passthrough test skipped: ${overlay.reason}`)
      return ctx.skip()
    }
    const base = join(suite.dir, 'stacked-upper')
    const [lower, below, onTop, scratch, stacked, mnt] = ['lower', 'below', 'on-top', 'scratch', 'stacked', 'mnt'].map((d) => join(base, d)) as [string, string, string, string, string, string]
    for (const d of [lower, below, onTop, scratch, stacked, mnt]) await mkdir(d, { recursive: true })
    for (const name of ['f', 'g']) await writeFile(join(lower, name), `lower ${name}`)
    suite.mounts.add(await mountOverlay({ lowers: [below], upper: onTop, work: scratch, mnt: stacked }))
    for (const d of ['upper', 'work']) await mkdir(join(stacked, d))
    suite.mounts.add(await mountFuse([CLI, '-o', `lowerdir=${lower},upperdir=${stacked}/upper,workdir=${stacked}/work`, mnt], mnt))
    for (const name of ['f', 'g']) await stat(join(mnt, name)) // looked up: marked for copy-ups in C
    const before = await statsOf(mnt)
    for (const [name, byte] of [['f', 'W'], ['g', 'V']]) {
      const file = await open(join(mnt, name!), 'r+')
      await file.write(byte!, 0)
      await file.close()
    }
    expect(await readFile(join(mnt, 'f'), 'utf8')).toBe('Wower f')
    expect(await readFile(join(mnt, 'g'), 'utf8')).toBe('Vower g')
    const after = await statsOf(mnt)
    expect(after.loop!.cowOpens - before.loop!.cowOpens).toBe(0)
    expect(after.passedThrough - before.passedThrough).toBe(0)
    expect(delta(before, after, 'write')).toBe(2)
    expect((await readUpper(join(stacked, 'upper', 'f'))).toString()).toBe('Wower f')
  })

  it('reads a layer kept on overlayfs (which cannot back a passthrough file) through the daemon', async (ctx) => {
    const overlay = overlayAvailable()
    if (!overlay.ok) {
      console.warn(`stacked-layer passthrough test skipped: ${overlay.reason}`)
      return ctx.skip()
    }
    const texts = [bigText('first'), bigText('second')]
    const { mnt } = await suite.stack('', async (lower) => {
      const below = `${lower}.below`
      await mkdir(below)
      await writeFile(join(below, 'a'), texts[0]!)
      await writeFile(join(below, 'b'), texts[1]!)
      suite.mounts.add(await mountOverlay({ lowers: [below], mnt: lower }))
    })
    const before = await statsOf(mnt)
    expect(await readFile(join(mnt, 'a'), 'utf8')).toBe(texts[0])
    expect(await readFile(join(mnt, 'b'), 'utf8')).toBe(texts[1])
    await writeFile(join(mnt, 'new'), 'upper file')
    const after = await statsOf(mnt)
    // The stacked lower files are read by the daemon; the upper file (on a plain filesystem) still
    // passes through.
    expect(delta(before, after, 'read')).toBeGreaterThan(0)
    expect(after.passedThrough - before.passedThrough).toBe(granted ? 1 : 0)
  })
})
