// One worker of stress.test.ts: random operations on a mounted tree, from a seeded generator, as
// fast as it can. Prints a JSON summary: how many operations it made, and every error that is not
// one of the answers these operations may get from a tree others change at the same time.
// usage: node stress-worker.mjs MNT SEED OPS [deep|moves]   (deep: the tree's d<i>/e<j> too; moves:
// and those directories renamed from one d<i> to another, as e<j> or x<j>, with redirect_dir on)
import { chmod, link, mkdir, readFile, readdir, rename, rmdir, stat, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

const [mnt, seedArg, opsArg, shape] = process.argv.slice(2)
let seed = Number(seedArg) >>> 0 || 1
const random = () => {
  seed ^= seed << 13; seed >>>= 0
  seed ^= seed >>> 17
  seed ^= seed << 5; seed >>>= 0
  return seed / 2 ** 32
}
const pick = (n) => Math.floor(random() * n)
const moves = shape === 'moves'
const SUBDIRS = shape === 'deep' ? ['e0', 'e1', 'e2', 'e3'] : moves ? ['e0', 'e1', 'e2', 'e3', 'x0', 'x1', 'x2', 'x3'] : []
const DIRS = Array.from({ length: 8 }, (_, d) => [`d${d}`, ...SUBDIRS.map((e) => `d${d}/${e}`)]).flat()
const subdir = () => join(mnt, 'tree', `d${pick(8)}`, SUBDIRS[pick(SUBDIRS.length)])
const dir = () => join(mnt, 'tree', DIRS[pick(DIRS.length)])
// Names the fixture holds (f0-f19) and names only workers make (n0-n9, m0-m39), so that renames,
// links and writes often land on each other's names, and renames of lower files to missing names
// (which the daemon answers in C) come often too.
const name = () => {
  const r = random()
  return r < 0.5 ? `f${pick(20)}` : r < 0.7 ? `n${pick(10)}` : `m${pick(40)}`
}
// The only errors the race gives: every name is a file's but s0-s2, made and removed (empty) by
// mkdir and rmdir alone, so nothing may be refused ENOTEMPTY, EISDIR or ENOTDIR.
// Moving directories onto each other's names, also ENOTEMPTY.
const EXPECTED = new Set(['ENOENT', 'EEXIST', ...(moves ? ['ENOTEMPTY'] : [])])
// What a file may hold: a lower file's text (a big one's padded with spaces) or a worker's, whole;
// or nothing, between the truncate and the write of a writeFile.
const WELL_FORMED = /^(lower d\d+\/f\d+ *|w\d+ \d+|)$/

const ops = Number(opsArg)
const unexpected = []
let done = 0
let moved = 0
for (let i = 0; i < ops; i++) {
  const r = random()
  const path = join(dir(), name())
  try {
    if (moves && r < 0.02) {
      await rename(subdir(), subdir())
      moved++
    }
    else if (r < 0.26) await rename(path, join(dir(), name()))
    // A link of a lower file answers before its copy's flush (Core.deferLink). Its names (l0-l9)
    // are never read or written: a hard link's other names are other kernel inodes, whose cached
    // pages may lag a write that passed through another name within an open (see the README).
    else if (r < 0.28) await link(path, join(dir(), `l${pick(10)}`))
    else if (r < 0.3) await unlink(join(dir(), `l${pick(10)}`))
    else if (r < 0.45) {
      const text = await readFile(path, 'utf8')
      if (!WELL_FORMED.test(text)) unexpected.push(`read ${path}: ${JSON.stringify(text.slice(0, 80))}`)
    } else if (r < 0.55) await stat(path)
    else if (r < 0.65) await writeFile(path, `w${seedArg} ${i}`)
    else if (r < 0.73) await unlink(path)
    else if (r < 0.81) await chmod(path, 0o600 | pick(0o100))
    else if (r < 0.89) await readdir(dir())
    else if (r < 0.95) await mkdir(join(dir(), `s${pick(3)}`))
    else await rmdir(join(dir(), `s${pick(3)}`))
    done++
  } catch (err) {
    if (!EXPECTED.has(err.code)) unexpected.push(`${err.code ?? ''} ${err.message}`)
  }
}
console.log(JSON.stringify({ done, moved, unexpected }))
