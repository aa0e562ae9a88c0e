// Lower files C does not copy up (too big, or with other names: an image's programs and libraries,
// files a layer holds hard links of) are still marked when listed or looked up (native/fuse-ll-cow.c,
// `held`): their getattrs and xattr reads are answered in C from their host paths, and the opens
// for reading of those JS passes through (1 MiB and more) are passed through in C, to one backing
// file per node while any is open. Every change goes to JS, and an open JS answers beside C's
// open files of a node goes to a new node (ESTALE, then a new lookup). A lower file's hard links
// now keep their pages across opens: a write through one name copies that name up, apart from the
// others. The same script runs on kernel overlayfs (attr_timeout=0 on layerfs: every stat reaches
// the daemon), and what it shows must agree.
import { execFile } from 'node:child_process'
import { constants, existsSync } from 'node:fs'
import { appendFile, chmod, copyFile, link, mkdir, open, readFile, readdir, rename, truncate, unlink, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { lgetxattrSync, lsetxattrSync } from '../../src/sys/native.js'
import { statsOf } from '../helpers/daemon-stats.js'
import { type Stack, mountFrame } from '../helpers/layerfs-suite.js'
import { fuseAvailable } from '../helpers/mount.js'
import { type Before, remember, statLine } from '../helpers/stat-line.js'

const run = promisify(execFile)
const fuse = fuseAvailable()
if (!fuse.ok) console.warn(`skipping held-file tests: ${fuse.reason}`)
if (fuse.ok && !existsSync(resolve('dist/src/cli/main.js'))) throw new Error('build first: npm run build')

const MIB = 1 << 20
/** A program to start from the layer: ls, and a copy of it padded past 1 MiB (an ELF file's
 *  trailing bytes are never read), which layerfs passes through. */
const PROGRAM = '/usr/bin/ls'
const NAMES = ['big', 'big2', 'mid', 'ha', 'hb', 'hc', 'hd', 'hbig1', 'hbig2', 'prog', 'prog2', 'bigprog']

/** Bytes that differ from one 4 KiB block to the next, so that a read of the wrong part shows. */
function pattern(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size)
  for (let i = 0; i < size; i += 4096) b.writeUInt32LE((i / 4096 + seed) >>> 0, i)
  return b
}

async function fill(lower: string): Promise<void> {
  const d = join(lower, 'd')
  await mkdir(d)
  await writeFile(join(d, 'big'), pattern(2 * MIB, 1))
  await writeFile(join(d, 'big2'), pattern(MIB + 4096, 2))
  await writeFile(join(d, 'mid'), pattern(200_000, 3))
  lsetxattrSync(join(d, 'mid'), 'user.k', Buffer.from('lower value'))
  await writeFile(join(d, 'ha'), 'shared by two names')
  await link(join(d, 'ha'), join(d, 'hb'))
  await writeFile(join(d, 'hc'), 'another pair')
  await link(join(d, 'hc'), join(d, 'hd'))
  await writeFile(join(d, 'hbig1'), pattern(MIB + 8192, 4))
  await link(join(d, 'hbig1'), join(d, 'hbig2'))
  await copyFile(PROGRAM, join(d, 'prog'))
  await link(join(d, 'prog'), join(d, 'prog2'))
  await copyFile(PROGRAM, join(d, 'bigprog'))
  await appendFile(join(d, 'bigprog'), Buffer.alloc(MIB))
}

/** A program's output, or its error's first line. */
async function started(path: string, ...args: string[]): Promise<string> {
  try {
    return (await run(path, args)).stdout
  } catch (e) {
    return `failed: ${String((e as Error).message).split('\n')[0]}`
  }
}

describe.skipIf(!fuse.ok || !existsSync(PROGRAM))('lower files C holds but does not copy', () => {
  const frame = mountFrame('held-files')
  const mounts = frame.mounts

  async function script({ mnt }: Stack, driver: 'kernel' | 'layerfs'): Promise<{ listed: string[]; after: string[]; counts?: Record<string, number>; joined: boolean }> {
    let joined = false
    const at = (name: string): string => join(mnt, 'd', name)
    const before: Before = new Map()
    const listed: string[] = [(await readdir(join(mnt, 'd'))).sort().join(' ')]
    const s0 = driver === 'layerfs' ? await statsOf(mnt) : undefined
    for (const name of NAMES) {
      await remember(before, name, at(name))
      listed.push(`${name}: ${await statLine(at(name), { content: 8 })}`)
    }
    listed.push(`mid user.k: ${lgetxattrSync(at('mid'), 'user.k')?.toString() ?? '-'}`)
    // Opened again and again, one of them kept open across the changes below.
    const held = await open(at('big'), 'r')
    const block = Buffer.alloc(8)
    await held.read(block, 0, 8, 5 * 4096)
    listed.push(`big at block 5, held open: ${block.readUInt32LE(0)}`)
    for (const name of ['big', 'big', 'big2', 'hbig2', 'hb', 'hb']) {
      const bytes = await readFile(at(name))
      listed.push(`${name} read: ${bytes.length} bytes, block 3 ${bytes.length > 3 * 4096 ? bytes.readUInt32LE(3 * 4096) : '-'}`)
    }
    // An open C leaves to JS (O_DSYNC) while C's open of the node passes through: it joins C's.
    const first = await open(at('big2'), 'r')
    const nodes = driver === 'layerfs' ? (await statsOf(mnt)).nodes : 0
    const dsync = await open(at('big2'), constants.O_RDONLY | constants.O_DSYNC)
    if (driver === 'layerfs') joined = (await statsOf(mnt)).nodes === nodes
    try {
      await first.read(block, 0, 8, 7 * 4096)
      listed.push(`big2 at block 7: ${block.readUInt32LE(0)}`)
      await dsync.read(block, 0, 8, 9 * 4096)
      listed.push(`big2 at block 9, opened O_DSYNC: ${block.readUInt32LE(0)}`)
    } finally {
      await dsync.close()
      await first.close()
    }
    for (const prog of ['prog', 'prog2', 'bigprog', 'bigprog']) listed.push(`${prog}: ${await started(at(prog), '-d', '/')}`)
    const s1 = driver === 'layerfs' ? await statsOf(mnt) : undefined
    // Every kind of change, each JS's: a write to the file held open (its copy-up moves its data,
    // and the open goes to a new node), chmods (one of a small file with two names, which C
    // would copy up if it had one), an append through one name of a lower pair, a truncate and a
    // link through one name of a big pair, an xattr, a rename and an unlink.
    const w = await open(at('big'), 'r+')
    try {
      await w.write('changed!', 0)
    } finally {
      await w.close()
    }
    const c0 = driver === 'layerfs' ? await statsOf(mnt) : undefined
    await chmod(at('mid'), 0o600)
    await chmod(at('hc'), 0o640)
    const c1 = driver === 'layerfs' ? await statsOf(mnt) : undefined
    lsetxattrSync(at('mid'), 'user.k', Buffer.from('upper value'))
    await appendFile(at('ha'), ', then one')
    await truncate(at('hbig1'), 4096)
    await link(at('hbig2'), at('hbig3'))
    await rename(at('big2'), at('big2-renamed'))
    await unlink(at('prog2'))
    // Each stat right after the changes, before a listing marks the files anew.
    const after: string[] = []
    for (const name of [...NAMES.filter((n) => n !== 'big2' && n !== 'prog2'), 'big2-renamed', 'hbig3']) {
      after.push(`${name}: ${await statLine(at(name), { before, key: name === 'big2-renamed' ? 'big2' : name === 'hbig3' ? 'hbig2' : name, content: 8 })}`)
    }
    after.push(`mid user.k: ${lgetxattrSync(at('mid'), 'user.k')?.toString() ?? '-'}`)
    for (const name of ['big', 'hb', 'hbig2', 'big2-renamed']) after.push(`${name} read: ${(await readFile(at(name))).subarray(0, 24).toString('hex')}`)
    for (const prog of ['prog', 'bigprog']) after.push(`${prog}: ${await started(at(prog), '-d', '/')}`)
    after.push((await readdir(join(mnt, 'd'))).sort().join(' '))
    await held.close()
    const counts = s0?.loop && s1?.loop && c0?.loop && c1?.loop
      ? {
          getattrs: s1.loop.cowGetattrs - s0.loop.cowGetattrs,
          getxattrs: s1.loop.cowGetxattrs - s0.loop.cowGetxattrs,
          passOpens: s1.loop.passOpens - s0.loop.passOpens,
          setattrs: c1.loop.cowSetattrs - c0.loop.cowSetattrs,
        }
      : undefined
    return { listed, after, counts, joined }
  }

  it('shows what kernel overlayfs shows, before and after each kind of change, and answers their stats, xattr reads and big opens for reading in C', async () => {
    const { kernel: expected, layerfs: actual } = await frame.onBoth(',attr_timeout=0', fill, script)
    expect(actual.listed).toEqual(expected.listed)
    expect(actual.after).toEqual(expected.after)
    // What the comparison rests on, spelled out.
    expect(actual.listed).toContain('hb: 100644 nlink 2 0:0 size 19 "shared b"')
    expect(actual.listed).toContain(`big read: ${2 * MIB} bytes, block 3 4`)
    expect(actual.listed).toContain('prog2: /\n')
    expect(actual.listed).toContain('bigprog: /\n')
    expect(actual.after).toContain('mid: 100600 nlink 1 0:0 size 200000 "\u0003\u0000\u0000\u0000\u0000\u0000\u0000\u0000" ino same mtime same ctime other')
    expect(actual.after).toContain('hb: 100644 nlink 2 0:0 size 19 "shared b" ino same mtime same ctime same')
    expect(actual.after).toContain('hbig2: 100644 nlink 2 0:0 size 1056768 "\u0004\u0000\u0000\u0000\u0000\u0000\u0000\u0000" ino other mtime same ctime other')
    expect(actual.after).toContain(`big read: ${Buffer.from('changed!').toString('hex')}${'00'.repeat(16)}`)
    expect(actual.after).toContain('mid user.k: upper value')
    // In C: the stats of every file, the xattr read and the security.capability each start of a
    // program asks for, and the opens for reading of the files of 1 MiB and more (big three times,
    // big2, hbig2, bigprog twice and what exec opens of it).
    const counts = actual.counts!
    expect(counts.getattrs).toBeGreaterThanOrEqual(NAMES.length)
    expect(counts.getxattrs).toBeGreaterThanOrEqual(3)
    expect(counts.passOpens).toBeGreaterThanOrEqual(7)
    expect(counts.setattrs, 'the chmods of held files were made in JS').toBe(0)
    expect(actual.joined, 'the O_DSYNC open joined the open C passed through, on the same node').toBe(true)
  })

  // A request on a file C passed through that C leaves to JS (an fsync) gives JS a file of its own
  // of the node, its anchor, kept until C's last file of the node is closed. JS's open beside C's joins C's backing id; once that one is closed, only the anchor is
  // left with JS, and the join must end with it, or C's files never all close (nor the anchor), and
  // the node's opens stay JS's for as long as it lives.
  it('ends a join with JS\'s last file of the node, its anchor aside, and answers the next opens in C again', async () => {
    const { mnt, handle } = await frame.stack('layerfs', '', async (lower) => {
      await mkdir(join(lower, 'd'))
      await writeFile(join(lower, 'd', 'big'), pattern(2 * MIB, 7))
    })
    try {
      const big = join(mnt, 'd', 'big')
      await readdir(join(mnt, 'd'))
      const held = await open(big, 'r')
      await held.sync()
      expect((await statsOf(mnt)).openFiles, 'the anchor').toBe(1)
      const dsync = await open(big, constants.O_RDONLY | constants.O_DSYNC)
      await dsync.close()
      await held.close()
      expect((await statsOf(mnt)).openFiles, 'no file of the node left with JS').toBe(0)
      const before = (await statsOf(mnt)).loop!.passOpens
      expect((await readFile(big)).readUInt32LE(4096 * 3)).toBe(10)
      expect((await statsOf(mnt)).loop!.passOpens - before, 'the open after them passed through in C').toBe(1)
    } finally {
      await mounts.unmount(handle)
    }
  })

  // Readers of big lower files, some opening them with flags C leaves to JS: their opens, in C or
  // in JS, must agree on each node's I/O mode and backing file at every moment (the kernel fails an
  // open that does not: EIO). A release JS takes just before an open of the same node once let C
  // answer beside JS's open file.
  it('lets readers open big lower files at once, in C and in JS, with no error', async () => {
    const { mnt, handle } = await frame.stack('layerfs', '', async (lower) => {
      await mkdir(join(lower, 'd'))
      for (let i = 0; i < 3; i++) await writeFile(join(lower, 'd', `big${i}`), pattern(MIB + 4096 * i, 10 + i))
    })
    try {
      await readdir(join(mnt, 'd'))
      const errors: string[] = []
      let opens = 0
      const until = Date.now() + 2500
      const reader = async (seed: number): Promise<void> => {
        let x = seed
        const block = Buffer.alloc(4)
        while (Date.now() < until) {
          x = (x * 1103515245 + 12345) >>> 0
          const i = x % 3
          const flags = constants.O_RDONLY | ((x >>> 8) % 16 === 0 ? constants.O_DSYNC : 0)
          try {
            const fh = await open(join(mnt, 'd', `big${i}`), flags)
            try {
              await fh.read(block, 0, 4, 4096 * 2)
              if (block.readUInt32LE(0) !== 12 + i) errors.push(`big${i}: read ${block.readUInt32LE(0)}`)
            } finally {
              await fh.close()
            }
            opens++
          } catch (e) {
            errors.push(`big${i} (flags ${flags.toString(8)}): ${(e as Error).message}`)
          }
        }
      }
      await Promise.all([1, 2, 3, 4].map(reader))
      const stats = await statsOf(mnt)
      console.log(`held files: ${opens} opens, ${stats.loop?.passOpens ?? 0} passed through in C, ${stats.passedThrough} in all`)
      expect(errors.slice(0, 5)).toEqual([])
      expect(opens).toBeGreaterThan(100)
    } finally {
      await mounts.unmount(handle)
    }
  })
})
