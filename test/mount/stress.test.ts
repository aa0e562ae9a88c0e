// Concurrency: four processes make random renames, links, reads, stats, writes, unlinks, chmods,
// listings, mkdirs and rmdirs in one small tree of two lower layers (and, in one run, an upper
// layer an earlier run left files in), all at once, while the kernel's caches are dropped every
// 0.2 s (its forgets race with the requests). Many of these are answered in C (renames, chmods
// and lookups of lower files; reads and chmods of the upper layer's files), the rest in JS, and
// copies (and the renames and links made with them) wait for their flush:
// nothing may fail but with the errors such a race gives (ENOENT, EEXIST, ...), no read may return
// anything but a whole file's text, and the tree the live mount shows must be the tree a fresh
// mount of the same upper layer shows, and kernel overlayfs too.
import { execFileSync, spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { statsOf } from '../helpers/daemon-stats.js'
import { mountFrame } from '../helpers/layerfs-suite.js'
import { treeOf } from '../helpers/tree.js'
import { LAYERFS_COMMAND, fuseAvailable, mountFuse, mountOverlay } from '../helpers/mount.js'

const fuse = fuseAvailable()
if (!fuse.ok) console.warn(`skipping the stress test: ${fuse.reason}`)
const isRoot = process.getuid?.() === 0
const WORKER = resolve(import.meta.dirname, 'stress-worker.mjs')
/** The workers' seeds are multiples of this (STRESS_SEED: other scripts, for a longer hunt by hand). */
const SEED = Number(process.env.STRESS_SEED ?? 7919)

/** d0-d7, each with f0-f9 in the top layer and f10-f19 in the bottom one, which also holds f0-f4
 *  (shadowed), and every other directory merged from both. f18 and f19 are big (their copies are
 *  made on the thread pool, so their renames, writes and links wait for JS while C answers the
 *  small files' beside them). */
async function fill(top: string, bottom: string, deep: boolean): Promise<void> {
  for (let d = 0; d < 8; d++) {
    for (const sub of deep ? ['', 'e0', 'e1', 'e2', 'e3'] : ['']) {
      const rel = join('tree', `d${d}`, sub)
      await mkdir(join(top, rel), { recursive: true })
      if (d % 2 === 0) await mkdir(join(bottom, rel), { recursive: true })
      for (let f = 0; f < 20; f++) {
        const layer = f < 10 || d % 2 === 1 ? top : bottom
        await writeFile(join(layer, rel, `f${f}`), `lower d${d}/f${f}`.padEnd(f >= 18 ? 100_000 : 0))
      }
      if (d % 2 === 0) for (let f = 0; f < 5; f++) await writeFile(join(bottom, rel, `f${f}`), 'shadowed')
    }
  }
}

/** The upper layer an earlier run left (a stack's upper, beside its lower `top`: see mountFrame):
 *  every d<i> there, merging with the lowers, with n0-n4 in it and, in the odd ones, f5 over the
 *  lower f5, all with a worker's text. C answers for such files too (their getattrs, first opens
 *  and chmods). */
async function fillUpper(top: string): Promise<void> {
  for (let d = 0; d < 8; d++) {
    const dir = join(dirname(top), 'upper', 'tree', `d${d}`)
    await mkdir(dir, { recursive: true })
    for (let n = 0; n < 5; n++) await writeFile(join(dir, `n${n}`), `w0 ${d * 10 + n}`)
    if (d % 2 === 1) await writeFile(join(dir, 'f5'), `w0 ${d * 10 + 5}`)
  }
}

/** Everything under `root`/tree: a file's type, mode and text; a directory's mode. */
function treeState(root: string): Record<string, string> {
  return treeOf(root, 'tree', (st, path) => st.isDirectory() ? `dir ${st.mode.toString(8)}` : `${st.mode.toString(8)} ${st.nlink} ${readFileSync(path, 'utf8')}`)
}

function worker(mnt: string, seed: number, ops: number, shape: 'flat' | 'deep' | 'moves'): Promise<{ done: number; moved: number; unexpected: string[] }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [WORKER, mnt, String(seed), String(ops), shape], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (b: Buffer) => (out += b))
    child.stderr.on('data', (b: Buffer) => (err += b))
    child.on('error', fail)
    child.on('close', (code) => {
      if (code !== 0) fail(new Error(`worker ${seed} exited ${code}: ${err}`))
      else done(JSON.parse(out) as { done: number; moved: number; unexpected: string[] })
    })
  })
}

describe.skipIf(!fuse.ok)('four processes changing one tree at once', () => {
  const frame = mountFrame('stress')
  /** Runs so far: each one's second mounts get directories of their own. */
  let runs = 0

  /** The workers on a fresh stack mounted with `options`, the caches dropped (`drop`, as written
   *  to drop_caches) every 0.2 s, and the checks. `deep`: each d<i> holds e0-e3 too, as lower
   *  directories with files of their own. `upperFiles`: the upper layer starts with files of its
   *  own (fillUpper). */
  async function stress(options: string, drop: '2' | '3', deep = false, upperFiles = false): Promise<void> {
    const metacopy = options.includes('metacopy=on')
    // With redirect_dir, the workers move the nested directories too.
    const redirects = metacopy || options.includes('redirect_dir=on')
    const shape = redirects && deep ? 'moves' : deep ? 'deep' : 'flat'
    const { mnt, upper, lowers, handle } = await frame.stack('layerfs', options, async (top, bottom) => {
      await fill(top!, bottom!, deep)
      if (upperFiles) await fillUpper(top!)
    }, 2)
    execFileSync('find', [join(mnt, 'tree'), '-exec', 'stat', '{}', '+'], { stdio: 'ignore' })
    const dropping = isRoot ? setInterval(() => writeFileSync('/proc/sys/vm/drop_caches', drop), 200) : undefined
    let results
    try {
      results = await Promise.all([1, 2, 3, 4].map((seed) => worker(mnt, seed * SEED, 2500, shape)))
    } finally {
      clearInterval(dropping)
    }
    for (const r of results) expect(r.unexpected).toEqual([])
    // Most operations did something (the rest met a name another worker had just taken away; with
    // directories moving, a quarter of the names are in one that is elsewhere, or not yet made).
    expect(results.reduce((n, r) => n + r.done, 0)).toBeGreaterThan(shape === 'moves' ? 2000 : 4000)
    if (shape === 'moves') expect(results.reduce((n, r) => n + r.moved, 0)).toBeGreaterThan(20)
    const live = treeState(mnt)
    // Both halves of the daemon took part: renames and chmods of lower files answered in C (and
    // first lookups of lower files, logged: between the caches dropped every 0.2 s and the
    // directories the workers' changes keep from C, a run may have few).
    const loop = (await statsOf(mnt)).loop!
    console.log(`stress: ${JSON.stringify({ done: results.map((r) => r.done), renamesInC: loop.cowRenames, linksInC: loop.cowLinks, setattrsInC: loop.cowSetattrs, lookupsInC: loop.cowLookups, fileLookupsInC: loop.cowFileLookups, lowerDirsRead: loop.lowerDirsRead, firstOpensInC: loop.firstOpens, getattrsInC: loop.cowGetattrs })}`)
    // (With metacopy on, renames are JS's: it copies their metadata only.)
    if (!metacopy) expect(loop.cowRenames).toBeGreaterThan(0)
    expect(loop.cowSetattrs).toBeGreaterThan(0)
    await frame.mounts.unmount(handle)

    const again = join(frame.dir, `again${++runs}`)
    await mkdir(again)
    const fresh = frame.mounts.add(await mountFuse([LAYERFS_COMMAND, '-o', `lowerdir=${lowers.join(':')},upperdir=${upper},workdir=${join(upper, '..', 'work')}${options}`, again], again))
    const remounted = treeState(again)
    await frame.mounts.unmount(fresh)
    expect(remounted).toEqual(live)

    const kmnt = join(frame.dir, `kernel${runs}`)
    const kwork = join(frame.dir, `kwork${runs}`)
    await mkdir(kmnt)
    await mkdir(kwork)
    const kernel = frame.mounts.add(await mountOverlay({ lowers, upper, work: kwork, mnt: kmnt, options: metacopy ? ['metacopy=on'] : redirects ? ['redirect_dir=on'] : [] }))
    const shown = treeState(kmnt)
    await frame.mounts.unmount(kernel)
    expect(shown).toEqual(live)
    // The workers changed the tree: files were renamed away, written and made.
    expect(Object.values(live).some((v) => / w\d+ \d+$/.test(v))).toBe(true)
  }

  it('get only the errors of the race, whole files, and the tree a fresh mount and kernel overlayfs show', { timeout: 120_000 }, async () => {
    await stress('', '2')
  })

  // The daemon's own reads (no passthrough), with the page cache dropped too: reads wait for the
  // pool while copy-ups move their readers to the copies.
  it('as much with passthrough off and the page cache dropped too', { timeout: 120_000 }, async () => {
    await stress(',passthrough=off', '3')
  })

  // Over the upper layer an earlier run left: its files' reads, stats and chmods answered in C
  // beside the changes JS makes to them.
  it('as much over an upper layer holding files of an earlier run', { timeout: 120_000 }, async () => {
    await stress('', '2', false, true)
  })

  // Forty lower directories two deep: C copies them up for the renames it answers (an ancestor
  // shared with a request waiting for JS, more often than in the flat tree).
  it('as much in a tree of nested lower directories', { timeout: 120_000 }, async () => {
    await stress('', '2', true)
  })

  // Metadata-only copies: the chmods of lower files answered in C make them and name them there
  // (copying their lower directories up first), beside JS's renames, writes and links of the same
  // files; the upper layer is then read by kernel overlayfs with metacopy=on too.
  it('as much with metacopy on, in the nested tree, its directories moved too', { timeout: 120_000 }, async () => {
    await stress(',metacopy=on', '2', true)
  })

  // redirect_dir: the nested lower directories renamed from one directory to another while the
  // other workers change their files (each move copies its tree up first).
  it('as much with redirect_dir on, the nested directories moved as their files change', { timeout: 120_000 }, async () => {
    await stress(',redirect_dir=on', '2', true)
  })
})
