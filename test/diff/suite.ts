// The differential suite: every scenario runs on kernel overlayfs (the oracle) and on a driver, and op
// results, the merged view and the upper layer must be equal, except for parts listed in
// known-differences.ts (which must still differ). differential.test.ts runs it on the driver DIFF_DRIVER
// selects (layerfs by default), differential-fuse-native.test.ts on layerfs's fuse-native bridge.
import { join } from 'node:path'
import { chmod, mkdir, writeFile } from 'node:fs/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fuseAvailable, overlayAvailable, unmount } from '../helpers/mount.js'
import { makeTempDir, mountsUnder, removeTempDir } from '../helpers/tmp.js'
import { diffRuns } from './compare.js'
import { type Driver, kernel, layerfs, layerfsWith } from './drivers.js'
import { judgeParts, knownParts, runScenario, verdictMessage, type KnownPart } from './harness.js'
import { KNOWN_DIFFERENCES } from './known-differences.js'
import { SCENARIOS } from './scenarios.js'
import type { Scenario } from './spec.js'

/** Scenario groups whose files are read and written (run again without passthrough). */
const IO_GROUPS = ['open/create/truncate', 'big files', 'unprivileged writers', 'metacopy=on', 'hard links', 'deep copy-up', 'memory maps']

/** DIFF_DUMP=<dir>: write each scenario's two runs as JSON there (for investigating differences). */
const dumpDir = process.env.DIFF_DUMP

/** per-scenario budget before the watchdog unmounts (the vitest timeout for a scenario is 30 s) */
const WATCHDOG_MS = 22_000

/** Every scenario on kernel overlayfs and on `driver`, one test each. */
export function differentialSuite(driver: Driver): void {
  const fuse = fuseAvailable()
  const ovl = overlayAvailable()
  const skipReason = !fuse.ok ? fuse.reason : !ovl.ok ? ovl.reason : undefined
  if (skipReason !== undefined) console.warn(`[differential] ${driver.name} skipped: ${skipReason}`)

  const driverWide = knownParts(KNOWN_DIFFERENCES.filter((k) => k.scenario === '*' && k.driver === driver.name))
  const driverWideUsed = new Set<KnownPart>()
  let scenariosRun = 0
  /** temp dirs of scenarios still running or not cleaned up (e.g. after a test timeout): swept in afterAll */
  const liveBases = new Set<string>()

  describe.skipIf(skipReason !== undefined)(`differential: kernel overlayfs vs ${driver.name}`, () => {
    afterAll(async () => {
      // safety net: nothing mounted or left in /tmp even if a scenario timed out half-way
      for (const base of liveBases) {
        for (const m of mountsUnder(base).reverse()) await unmount(m).catch((e: unknown) => console.warn(String(e)))
        await removeTempDir(base).catch((e: unknown) => console.warn(String(e)))
      }
    })

    beforeAll(() => {
      const problem = driver.problem()
      if (problem !== undefined) throw new Error(problem)
    })

    it('scenario table is sound', () => {
      expect(SCENARIOS.length).toBeGreaterThanOrEqual(60)
      const names = SCENARIOS.map((s) => s.name)
      expect(names.filter((n, i) => names.indexOf(n) !== i)).toEqual([])
      const unknown = KNOWN_DIFFERENCES.filter((k) => k.scenario !== '*' && !names.includes(k.scenario)).map((k) => k.scenario)
      expect(unknown, 'known-differences entries naming no scenario').toEqual([])
    })

    /** Runs `s` on kernel overlayfs and on `drv`, and judges the differences. */
    async function compareWithKernel(s: Scenario, drv: Driver): Promise<void> {
      const startSec = Math.floor(Date.now() / 1000)
      const base = await makeTempDir('diff')
      liveBases.add(base)
      await chmod(base, 0o711) // the 'asUser' ops run as another user, who must reach the mount point
      try {
        // watchdog: a hung driver must fail the scenario, not block the suite; unmounting (which aborts a stuck
        // FUSE connection) makes the hanging syscalls return, so the run ends and reports
        let fired = false
        const watchdog = setTimeout(() => {
          fired = true
          console.warn(`[differential] "${s.name}" exceeded ${WATCHDOG_MS} ms: unmounting`)
          for (const m of mountsUnder(base).reverse()) void unmount(m, { timeoutMs: 2_000 }).catch(() => undefined)
        }, WATCHDOG_MS)
        let a, b
        try {
          a = await runScenario(s, kernel, join(base, 'kernel'), startSec)
          b = await runScenario(s, drv, join(base, 'driver'), startSec)
        } finally {
          clearTimeout(watchdog)
        }
        if (fired) expect.fail(`scenario "${s.name}" hung for ${WATCHDOG_MS} ms; its mounts were aborted`)
        if (dumpDir !== undefined) {
          await mkdir(dumpDir, { recursive: true })
          await writeFile(join(dumpDir, s.name.replace(/[^A-Za-z0-9_.-]+/g, '_') + '.json'), JSON.stringify({ scenario: s, kernel: a, driver: b }, null, 1))
        }
        const own = knownParts(KNOWN_DIFFERENCES.filter((k) => k.scenario === s.name && k.driver === driver.name))
        const v = judgeParts(diffRuns(a, b), [...own, ...driverWide], driverWideUsed)
        if (v.unexplained.length > 0 || v.stale.length > 0) expect.fail(verdictMessage(s, drv.name, v))
      } finally {
        await removeTempDir(base)
        liveBases.delete(base)
      }
    }

    for (const s of SCENARIOS) {
      it(`${s.group ?? ''}: ${s.name}`, async () => {
        await compareWithKernel(s, driver)
        scenariosRun++
      }, 30_000)
    }

    // layerfs passes file I/O through to the layers by default (FUSE passthrough); the scenarios that
    // read and write files also run with every read and write going through the daemon.
    if (driver === layerfs) {
      const daemonIo = layerfsWith('passthrough=off')
      for (const s of SCENARIOS.filter((s) => s.group !== undefined && IO_GROUPS.includes(s.group))) {
        it(`passthrough=off: ${s.group}: ${s.name}`, () => compareWithKernel(s, daemonIo), 30_000)
      }
    }

    it('driver-wide known differences are not stale', (ctx) => {
      if (scenariosRun !== SCENARIOS.length) {
        ctx.skip(`only ${scenariosRun}/${SCENARIOS.length} scenarios ran: staleness of driver-wide entries not judged`)
        return
      }
      const stale = driverWide.filter((p) => !driverWideUsed.has(p)).map((p) => `${p.label} (${p.entry.why})`)
      expect(stale, 'driver-wide known-differences that matched nothing in any scenario').toEqual([])
    })
  })
}
