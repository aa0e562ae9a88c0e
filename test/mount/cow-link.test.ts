// A link of a lower file to a name missing from every layer of its new directory is copied up and
// answered in C (native/fuse-ll-cow.c, fll_cow_link), as `cp -al` of a lower tree makes them: the
// lower directories above the file and above the new name are copied up first, the new name is a
// node of its own, kept out of C's lookups until the union has written the link after its copy's
// flush. Each case runs on kernel overlayfs and on layerfs: the merged view and the upper layer must
// agree, link counts and shared inodes included, and the links must have been answered in C.
import { execFileSync } from 'node:child_process'
import { appendFileSync, existsSync, linkSync, lstatSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { link, mkdir, utimes, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { statsOf } from '../helpers/daemon-stats.js'
import { eachInFlight } from '../helpers/in-flight.js'
import { mountFrame } from '../helpers/layerfs-suite.js'
import { fuseAvailable } from '../helpers/mount.js'

const fuse = fuseAvailable()
if (!fuse.ok) console.warn(`skipping link-in-C tests: ${fuse.reason}`)
if (fuse.ok && !existsSync(resolve('dist/src/cli/main.js'))) throw new Error('build first: npm run build')

const M0 = 1_500_000_000
const DIRS = 12
const FILES = 3

/** Two lower layers: lib/d<i>/s<j>/f<k> in the first, and in the second a file of its own in some
 *  of those directories (which then merge) and a directory of its own (lib/only/deep). */
async function fill(top: string, bottom: string): Promise<void> {
  for (let d = 0; d < DIRS; d++) {
    const dir = join(top, 'lib', `d${d % 4}`, `s${d}`)
    await mkdir(dir, { recursive: true })
    for (let f = 0; f < FILES; f++) {
      await writeFile(join(dir, `f${f}`), `lib ${d}/${f}\n`)
      await utimes(join(dir, `f${f}`), M0, M0 + f)
    }
    if (d % 3 === 0) {
      await mkdir(join(bottom, 'lib', `d${d % 4}`, `s${d}`), { recursive: true })
      await writeFile(join(bottom, 'lib', `d${d % 4}`, `s${d}`, 'under'), `under ${d}\n`)
      await utimes(join(bottom, 'lib', `d${d % 4}`, `s${d}`, 'under'), M0, M0)
    }
  }
  await mkdir(join(bottom, 'lib', 'only', 'deep'), { recursive: true })
  await writeFile(join(bottom, 'lib', 'only', 'deep', 'x'), 'x\n')
  await utimes(join(bottom, 'lib', 'only', 'deep', 'x'), M0, M0)
}

/** The links: every file of every fourth directory linked in place, one file of each other directory
 *  linked into the next (across lower directories, merged or not), one into a directory only the
 *  second layer holds, and one file of each directory into a directory made through the mount (the
 *  new tree of `cp -al`). */
function links(): Array<[string, string]> {
  const out: Array<[string, string]> = []
  for (let d = 0; d < DIRS; d++) {
    const dir = join('lib', `d${d % 4}`, `s${d}`)
    if (d % 4 === 0) for (let f = 0; f < FILES; f++) out.push([join(dir, `f${f}`), join(dir, `f${f}.ln`)])
    else out.push([join(dir, 'f0'), join('lib', `d${(d + 1) % 4}`, `s${(d + 1) % DIRS}`, `from${d}`)])
    out.push([join(dir, 'f1'), join('copy', `s${d}`, 'f1')])
  }
  out.push([join('lib', 'd1', 's1', 'f2'), join('lib', 'only', 'deep', 'y')])
  return out
}

/** Everything under `root` (lib and copy): a directory's mode; a file's mode, link count, content,
 *  mtime (the fixture's, or `new` once written), and which path listed before it has the same
 *  inode (the inode numbers themselves differ between the drivers). */
function treeState(root: string): Record<string, string> {
  const out: Record<string, string> = {}
  const firstOf = new Map<bigint, string>()
  const walk = (rel: string): void => {
    const p = join(root, rel)
    const st = lstatSync(p, { bigint: true })
    if (st.isDirectory()) {
      out[rel] = `dir ${st.mode.toString(8)}`
      for (const name of readdirSync(p).sort()) walk(join(rel, name))
    } else if (st.isCharacterDevice()) {
      out[rel] = `char ${st.rdev}`
    } else {
      const first = firstOf.get(st.ino)
      if (first === undefined) firstOf.set(st.ino, rel)
      const mtime = st.mtimeNs < BigInt(M0 + 60) * 1_000_000_000n ? String(st.mtimeNs) : 'new'
      out[rel] = `${st.mode.toString(8)} n=${st.nlink} m=${mtime} ${readFileSync(p, 'utf8').trim()}${first === undefined ? '' : ` =${first}`}`
    }
  }
  for (const top of ['lib', 'copy']) if (existsSync(join(root, top))) walk(top)
  return out
}

describe.skipIf(!fuse.ok)('links of lower files answered in C', () => {
  const frame = mountFrame('cow-link')
  const mounts = frame.mounts

  /** The links on a fresh stack on `driver`, `inFlight` at a time, after every file was looked up
   *  (a file's first lookup marks it), then an append through some of the new names: the merged
   *  view, the upper layer at rest, and (layerfs) how many links were answered in C. `between`
   *  runs halfway through. */
  async function run(driver: 'kernel' | 'layerfs', inFlight: number, between?: () => void): Promise<{ merged: Record<string, string>; upper: Record<string, string>; inC: number }> {
    const { upper, mnt, handle } = await frame.stack(driver, '', (top, bottom) => fill(top!, bottom!), 2)
    try {
      execFileSync('find', [join(mnt, 'lib'), '-name', 'f*', '-exec', 'stat', '{}', '+'], { stdio: 'ignore' })
      execFileSync('stat', [join(mnt, 'lib', 'only', 'deep')], { stdio: 'ignore' })
      for (let d = 0; d < DIRS; d++) await mkdir(join(mnt, 'copy', `s${d}`), { recursive: true })
      const list = links()
      await eachInFlight(list, inFlight, ([from, to]) => link(join(mnt, from), join(mnt, to)), between)
      // Written through the new name, read through both (the state reads every file).
      for (const [, to] of list.slice(0, 6)) appendFileSync(join(mnt, to), 'appended\n')
      const merged = treeState(mnt)
      const inC = driver === 'layerfs' ? (await statsOf(mnt)).loop!.cowLinks : 0
      await mounts.unmount(handle)
      return { merged, upper: treeState(upper), inC }
    } finally {
      await mounts.unmount(handle)
    }
  }

  it('links lower files in place, across lower directories and into new ones as kernel overlayfs does, one at a time, each in C', async () => {
    const expected = await run('kernel', 1)
    const actual = await run('layerfs', 1)
    expect(actual.merged).toEqual(expected.merged)
    expect(actual.upper).toEqual(expected.upper)
    const list = links()
    // Each file's first link: a second one finds the file in the upper layer, which JS links.
    expect(actual.inC).toBe(new Set(list.map(([from]) => from)).size)
    // What the comparison rests on: both names of each link show one file with two links, in the
    // view and in the upper layer; the appended ones show the append through both.
    const file = (rel: string): string => actual.merged[rel]!.replace(/ =.*$/s, '')
    const inode = (rel: string): string => / =(.*)$/s.exec(actual.merged[rel]!)?.[1] ?? rel
    for (const [i, [from, to]] of list.entries()) {
      expect(file(to)).toMatch(new RegExp(`^100644 n=[23] m=${i < 6 ? 'new' : '\\d+'} lib \\d+/\\d+${i < 6 ? '(\\nappended)+' : ''}$`))
      expect(file(from)).toBe(file(to))
      expect(inode(from), `${from} and ${to}: one inode`).toBe(inode(to))
      expect(actual.upper[to]).toBe(actual.merged[to])
    }
  })

  // Eight at a time, as cp -al of a tree with many files per directory makes them in a burst of
  // requests, and the kernel's caches dropped halfway (its forgets): a link waits for JS only
  // behind a request that names its file or one of its directories.
  it('links lower files eight at a time as kernel overlayfs does, with the caches dropped halfway', async () => {
    const dropCaches = (): void => writeFileSync('/proc/sys/vm/drop_caches', '2')
    const expected = await run('kernel', 8, dropCaches)
    const actual = await run('layerfs', 8, dropCaches)
    expect(actual.merged).toEqual(expected.merged)
    expect(actual.upper).toEqual(expected.upper)
    expect(actual.inC).toBeGreaterThan(links().length / 2)
  })

  // The link reaches the disk only after the copy's flush (held back a minute here, flush_window):
  // until then the file's own name shows its two links at once (C tells the kernel that name's
  // attributes changed before it answers), a lookup of the new name with the kernel's caches
  // dropped finds it, and a listing of its directory writes it first.
  it('shows a linked file under both names, with two links, before the link reaches the disk', async () => {
    const { mnt, upper, handle } = await frame.stack('layerfs', ',flush_window=60000', (top, bottom) => fill(top!, bottom!), 2)
    try {
      const from = join(mnt, 'lib', 'd0', 's0', 'f0')
      const to = join(mnt, 'lib', 'd0', 's0', 'linked')
      expect(lstatSync(from).nlink).toBe(1)
      linkSync(from, to)
      expect(lstatSync(from).nlink, 'the old name: its attributes dropped').toBe(2)
      expect((await statsOf(mnt)).loop!.cowLinks).toBe(1)
      // Not on the disk yet: the copy-up of the directory is, holding neither name.
      expect(readdirSync(join(upper, 'lib', 'd0', 's0'))).toEqual([])
      writeFileSync('/proc/sys/vm/drop_caches', '2')
      expect(readFileSync(to, 'utf8')).toBe('lib 0/0\n')
      expect(lstatSync(to).ino).toBe(lstatSync(from).ino)
      expect(readdirSync(join(upper, 'lib', 'd0', 's0'))).toEqual([])
      expect(readdirSync(join(mnt, 'lib', 'd0', 's0')).sort()).toEqual(['f0', 'f1', 'f2', 'linked', 'under'])
      // The listing wrote the link: both names on the disk, one inode.
      expect(readdirSync(join(upper, 'lib', 'd0', 's0')).sort()).toEqual(['f0', 'linked'])
      expect(lstatSync(join(upper, 'lib', 'd0', 's0', 'linked')).ino).toBe(lstatSync(join(upper, 'lib', 'd0', 's0', 'f0')).ino)
      expect(lstatSync(join(upper, 'lib', 'd0', 's0', 'f0')).nlink).toBe(2)
    } finally {
      await mounts.unmount(handle)
    }
  })
})
