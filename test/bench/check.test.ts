// The bench's CI gate machinery on a tiny fixture: the report's structure (every workload sampled on both
// drivers, finite positive ratios, no mounts left behind), never its timings.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { renderChart } from '../../bench/chart.js'
import { CHECK_WORKLOADS, runCheck } from '../../bench/check.js'
import { kernelDriver, setDriverOptions } from '../../bench/drivers.js'
import { type FixtureSpec, ensureFixture } from '../../bench/fixture.js'
import { summarize } from '../../bench/report.js'
import type { Sample } from '../../bench/runner.js'

const TINY: FixtureSpec = {
  name: 'test', baseFiles: 60, nmFiles: 80, bigFiles: 1, bigBytes: 1 << 20,
  bulkOps: 30, buildSources: 20, randReads: 50, appendBytes: 1 << 20,
}

const dir = mkdtempSync('/var/tmp/layerfs-bench-test-')
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const ourMounts = (): string[] => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(dir))

describe('bench --check', () => {
  it('samples every workload on both drivers and reports finite ratios', async (ctx) => {
    const reps = 2
    const report = await runCheck({ dir, reps, threshold: 4, spec: TINY })
    if (report.skipped) {
      console.warn(`bench check skipped: ${report.skipped}`)
      ctx.skip()
      return
    }
    expect(report.errors).toEqual([])
    expect(report.threshold).toBe(4)
    expect(report.workloads.map((w) => w.workload.replace(/:warm$/, '')).sort()).toEqual([...CHECK_WORKLOADS].sort())
    for (const w of report.workloads) {
      expect(w.samples['fuse-overlayfs']).toHaveLength(reps)
      expect(w.samples.layerfs).toHaveLength(reps)
      for (const ms of [...w.samples['fuse-overlayfs'], ...w.samples.layerfs]) expect(ms).toBeGreaterThan(0)
      expect(Number.isFinite(w.ratio)).toBe(true)
      expect(w.ratio).toBeGreaterThan(0)
      expect(w.ok).toBe(w.ratio <= report.threshold)
    }
    expect(report.ok).toBe(report.workloads.every((w) => w.ok))
    expect(ourMounts()).toEqual([])
  }, 300_000)
})

describe('bench --kernel-options', () => {
  it('mounts kernel overlayfs with the extra options, and refuses options that name the stack', async (ctx) => {
    const why = await kernelDriver.unavailable()
    if (why) {
      console.warn(`kernel overlayfs options test skipped: ${why}`)
      ctx.skip()
      return
    }
    expect(() => setDriverOptions('kernel', 'metacopy=on,upperdir=/tmp')).toThrow(/upperdir is set by the bench/)
    expect(() => setDriverOptions('plain', 'ro')).toThrow(/no mount options/)
    const fx = await ensureFixture(dir, TINY)
    setDriverOptions('kernel', 'redirect_dir=on,metacopy=on')
    try {
      const instance = await kernelDriver.open(fx, { scratch: join(dir, 'options-scratch'), mutates: true, needs: [] })
      try {
        const line = ourMounts().find((l) => l.includes(instance.root))
        expect(line).toMatch(/ overlay overlay /)
        expect(line).toMatch(/[ ,]metacopy=on/)
      } finally {
        await instance.close()
      }
    } finally {
      setDriverOptions('kernel', '')
    }
    expect(ourMounts()).toEqual([])
  }, 120_000)
})

describe('bench report', () => {
  const sample = (key: string, driver: Sample['driver'], ms: number): Sample => ({
    key, workload: key, mode: null, driver, rep: 1, ms, daemonCpuMs: null, daemonPeakRssKiB: null,
  })
  it('computes ratios to kernel and fuse-overlayfs and draws a self-contained chart', () => {
    const samples = [sample('w', 'kernel', 10), sample('w', 'fuse-overlayfs', 20), sample('w', 'layerfs', 40), sample('w', 'layerfs', 60)]
    const rows = summarize(samples, ['kernel', 'fuse-overlayfs', 'layerfs'], ['w'])
    expect(rows[0]!.ratios.kernel).toBeCloseTo(5)
    expect(rows[0]!.ratios['fuse-overlayfs']).toBeCloseTo(2.5)
    const svg = renderChart(rows, ['kernel', 'fuse-overlayfs', 'layerfs'], 't')
    expect(svg.startsWith('<svg')).toBe(true)
    expect(svg).not.toMatch(/href=|<script|@import/)
  })
})
