// The bench's summary: medians per driver and their ratios, and, against each other driver, the
// ratios of samples taken in the same round, whose spread shows how much of a median ratio is the
// machine's slow and fast spells.
import { describe, expect, it } from 'vitest'
import type { DriverName } from '../../bench/drivers.js'
import { formatTable, summarize } from '../../bench/report.js'
import type { Sample } from '../../bench/runner.js'

function sample(driver: DriverName, rep: number, ms: number | null): Sample {
  return { key: 'rename', workload: 'rename', mode: null, driver, rep, ms, daemonCpuMs: null, daemonPeakRssKiB: null, ...(ms === null ? { error: 'failed' } : {}) }
}

describe('summarize', () => {
  it('gives the ratio of medians and the ratios round by round', () => {
    // layerfs lost the first round by 2x and won the second by 2x: the medians tie.
    const samples = [sample('fuse-overlayfs', 1, 10), sample('layerfs', 1, 20), sample('fuse-overlayfs', 2, 40), sample('layerfs', 2, 20)]
    const [row] = summarize(samples, ['fuse-overlayfs', 'layerfs'], ['rename'])
    expect(row!.ratios['fuse-overlayfs']).toBeCloseTo(20 / 25)
    expect(row!.perRound['fuse-overlayfs']).toMatchObject({ n: 2, min: 0.5, max: 2, median: 1.25 })
    expect(row!.perRound.layerfs).toBeUndefined()
  })

  it('pairs only rounds where both drivers have a time', () => {
    const samples = [
      sample('fuse-overlayfs', 1, 10), sample('layerfs', 1, 15),
      sample('fuse-overlayfs', 2, null), sample('layerfs', 2, 100),
      sample('fuse-overlayfs', 3, 30), // layerfs has no sample in round 3
    ]
    const [row] = summarize(samples, ['fuse-overlayfs', 'layerfs'], ['rename'])
    expect(row!.perRound['fuse-overlayfs']).toMatchObject({ n: 1, min: 1.5, max: 1.5 })
  })

  it('shows the per-round range next to the ratio of medians', () => {
    const samples = [sample('fuse-overlayfs', 1, 10), sample('layerfs', 1, 20), sample('fuse-overlayfs', 2, 40), sample('layerfs', 2, 20)]
    const lines = formatTable(summarize(samples, ['fuse-overlayfs', 'layerfs'], ['rename']), ['fuse-overlayfs', 'layerfs']).split('\n')
    expect(lines[0]).toMatch(/layerfs\/fuse-ovl\s+per round$/)
    expect(lines[2]).toMatch(/0\.80x\s+0\.50-2\.00x$/)
  })
})
