// Random differential scripts: layers and operations drawn from a seeded generator over a few names,
// so that they collide (a name that is a file in one layer, a directory in another, whited out in a
// third; renames onto each other, links, removals and re-creations), run on kernel overlayfs and on
// layerfs, and compared like the hand-written scenarios. A failure prints the seed and the script.
//
// Each seed draws a namespace script; every second seed an io script too (every fourth of them
// with passthrough=off), and every fourth a users script (random-script.ts).
//
//   DIFF_RANDOM_SEED=N     the first seed (default 1: CI runs the same scripts every time)
//   DIFF_RANDOM_COUNT=N    how many seeds (default 24)
//   DIFF_RANDOM_OPS=N      operations per script (default 30)
//   DIFF_DUMP=<dir>        write each script's two runs there as JSON
//   DIFF_RANDOM_OPTIONS=o  mount options for both sides (e.g. metacopy=on), comma-separated
//   DIFF_RANDOM_FLAVOR=f   only scripts of that flavor (namespace, io, users)
import { join } from 'node:path'
import { chmod, mkdir, writeFile } from 'node:fs/promises'
import { afterAll, describe, expect, it } from 'vitest'
import { fuseAvailable, overlayAvailable, unmount } from '../helpers/mount.js'
import { makeTempDir, mountsUnder, removeTempDir } from '../helpers/tmp.js'
import { diffRuns, diffSnapshots, type Difference } from './compare.js'
import { kernel, layerfs, layerfsWith } from './drivers.js'
import { judgeParts, knownParts, runScenario, verdictMessage, type KnownPart } from './harness.js'
import { FsTarget, newNormContext, type Json } from './ops.js'
import { snapshotMerged, type Snapshot } from './snapshot.js'
import type { Scenario } from './spec.js'
import { randomScript } from './random-script.js'

const fuse = fuseAvailable()
const ovl = overlayAvailable()
const skipReason = !fuse.ok ? fuse.reason : !ovl.ok ? ovl.reason : undefined
if (skipReason !== undefined) console.warn(`[differential/random] skipped: ${skipReason}`)

const firstSeed = Number(process.env.DIFF_RANDOM_SEED ?? 1)
const count = Number(process.env.DIFF_RANDOM_COUNT ?? 24)
const opsPerScript = Number(process.env.DIFF_RANDOM_OPS ?? 30)
const dumpDir = process.env.DIFF_DUMP
const mountOptions = (process.env.DIFF_RANDOM_OPTIONS ?? '').split(',').filter((o) => o !== '')
const onlyFlavor = process.env.DIFF_RANDOM_FLAVOR

/**
 * What the kernel leaves behind of a rename it refuses, which layerfs does not: overlayfs marks a
 * directory opaque before the rename it is moving for, into a merged directory, reaches the upper
 * filesystem, and keeps the mark when that fails (a non-empty target: ENOTEMPTY). The mark is on a
 * directory that merges with nothing (else it could not move), so neither view shows it.
 */
function kernelLeftovers(s: Scenario, results: Json[]): KnownPart[] {
  const refused = s.ops.flatMap((op, i) => {
    const result = results[i] as { error?: string } | undefined
    return op[0] === 'rename' && result?.error === 'ENOTEMPTY' ? [op[1]] : []
  })
  return knownParts(refused.map((path) => ({
    scenario: s.name, driver: 'layerfs' as const, fields: [`upper:${path}#opaque`],
    where: (d) => d.a === true && d.b === undefined,
    why: 'overlayfs keeps the opaque mark it set for a rename that then failed',
  })))
}

/**
 * With redirect_dir on (metacopy=on turns it on), overlayfs moves a directory with lower layers by
 * recording where they hold it, and layerfs by copying its tree up (namespace.ts, movableDir): the
 * two upper layers then differ, and so do the link counts of the directories moved (a merged one
 * shows 1). The upper layer is judged instead by what overlayfs itself shows of it: the stack
 * mounted by the kernel over each side's upper layer must show the same tree.
 */
const redirects = (options: string[]): boolean => options.includes('redirect_dir=on') || options.includes('metacopy=on')

/** A link count a moved tree's copy changes: a directory overlayfs shows merged (1) and layerfs
 *  moved whole, a lower file with other names that overlayfs leaves below and layerfs copied (1). */
const movedDirLinks = (d: Difference): boolean => /#nlink$/.test(d.key) && typeof d.a === 'number' && typeof d.b === 'number' &&
  ((d.a === 1 && d.b > 1) || (d.a > 1 && d.b === 1))

/** And where a copied file had other names below, which keep its inode number: the numbers the
 *  two sides show from there on (labels are given in the order they are met). */
function movedDirParts(s: Scenario, diffs: Difference[]): KnownPart[] {
  const linksBroken = diffs.some((d) => movedDirLinks(d) && (d.a as number) > 1)
  return knownParts([{
    scenario: s.name, driver: 'layerfs' as const, fields: ['upper:*', 'merged:*#nlink', 'op:*#nlink', ...(linksBroken ? ['merged:*#ino', 'op:*#ino'] : [])],
    where: (d) => d.key.startsWith('upper:') || movedDirLinks(d) || (linksBroken && d.key.endsWith('#ino')),
    why: 'redirect_dir: the upper layers are compared through overlayfs (remounted below)',
  }])
}

/** What kernel overlayfs shows of the stack a run left in `dir` (its layers and upper layer), with
 *  the scenario's options, on a fresh mount and workdir. */
async function kernelView(s: Scenario, dir: string, startSec: number): Promise<Snapshot> {
  const mnt = join(dir, 'M2')
  const work = join(dir, 'W2')
  await mkdir(mnt, { recursive: true })
  await mkdir(work, { recursive: true })
  const h = await kernel.mount({ lowers: s.layers.map((_, i) => join(dir, `L${i}`)), upper: join(dir, 'U'), work, mnt, options: s.options })
  try {
    return await snapshotMerged(new FsTarget(mnt), newNormContext(startSec))
  } finally {
    await unmount(h)
  }
}

const liveBases = new Set<string>()

describe.skipIf(skipReason !== undefined)('differential: random scripts, kernel overlayfs vs layerfs', () => {
  afterAll(async () => {
    for (const base of liveBases) {
      for (const m of mountsUnder(base).reverse()) await unmount(m).catch((e: unknown) => console.warn(String(e)))
      await removeTempDir(base).catch((e: unknown) => console.warn(String(e)))
    }
  })

  it('draws the same script from the same seed, and different ones from others', () => {
    expect(randomScript(7)).toEqual(randomScript(7))
    expect(randomScript(7).ops).not.toEqual(randomScript(8).ops)
  })

  const runs = Array.from({ length: count }, (_, i) => firstSeed + i).flatMap((seed) => [
    { seed, flavor: 'namespace' as const, driver: layerfs },
    // Files opened, written and read: through the daemon and passed through, one seed each.
    ...(seed % 2 === 0 ? [{ seed, flavor: 'io' as const, driver: seed % 4 === 0 ? layerfsWith('passthrough=off') : layerfs }] : []),
    // Other users: each of their operations is a process of its own (a second each way).
    ...(seed % 4 === 1 ? [{ seed, flavor: 'users' as const, driver: layerfs }] : []),
  ]).map((run) => ({ ...run, options: mountOptions }))
  // With no options asked for, the first six namespace scripts and two io ones run again with
  // directories moving (redirect_dir=on, and metacopy=on), compared as above.
  if (mountOptions.length === 0) {
    for (let i = 0; i < Math.min(count, 6); i++) runs.push({ seed: firstSeed + i, flavor: 'namespace', driver: layerfs, options: ['redirect_dir=on'] })
    for (let i = 0; i < Math.min(count, 2); i++) runs.push({ seed: firstSeed + 2 * i, flavor: 'io', driver: layerfs, options: ['metacopy=on'] })
  }
  for (const { seed, flavor, driver, options } of runs.filter((run) => onlyFlavor === undefined || run.flavor === onlyFlavor)) {
    it(`${flavor} seed ${seed}${driver === layerfs ? '' : ' (passthrough=off)'}${options === mountOptions ? '' : ` (${options.join(',')})`}`, async () => {
      const drawn = randomScript(seed, opsPerScript, flavor)
      const s = options.length > 0 ? { ...drawn, options: [...(drawn.options ?? []), ...options] } : drawn
      const startSec = Math.floor(Date.now() / 1000)
      const base = await makeTempDir('diff-random')
      liveBases.add(base)
      await chmod(base, 0o711)
      try {
        const a = await runScenario(s, kernel, join(base, 'kernel'), startSec)
        const b = await runScenario(s, driver, join(base, 'driver'), startSec)
        if (dumpDir !== undefined) {
          await mkdir(dumpDir, { recursive: true })
          await writeFile(join(dumpDir, `random-${flavor}-${seed}.json`), JSON.stringify({ scenario: s, kernel: a, driver: b }, null, 1))
        }
        let parts = kernelLeftovers(s, a.ops)
        if (redirects(options)) {
          const views = diffSnapshots('merged', await kernelView(s, join(base, 'kernel'), startSec), await kernelView(s, join(base, 'driver'), startSec))
          // (overlayfs does not read the origins layerfs records: copies show their own numbers.)
          const unlike = views.filter((d) => !movedDirLinks(d) && !d.key.endsWith('#ino'))
          if (unlike.length > 0) expect.fail(`overlayfs shows the two upper layers differently:\n${unlike.map((d) => `  ${d.key}: ${JSON.stringify(d.a)} / ${JSON.stringify(d.b)}`).join('\n')}`)
          parts = [...parts, ...movedDirParts(s, diffRuns(a, b))]
        }
        const v = judgeParts(diffRuns(a, b), parts)
        if (v.unexplained.length > 0) {
          expect.fail(`${verdictMessage(s, driver.name, v)}\nlayers: ${JSON.stringify(s.layers)}\nupper: ${JSON.stringify(s.upper)}`)
        }
      } finally {
        await removeTempDir(base)
        liveBases.delete(base)
      }
    }, 30_000)
  }
})
