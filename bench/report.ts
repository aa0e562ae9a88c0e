/**
 * Summaries and the terminal table: per workload the median time per driver with its min-max spread, the
 * ratios layerfs/kernel and layerfs/fuse-overlayfs (of the medians, and against fuse-overlayfs also round
 * by round), and the daemons' CPU time and peak RSS.
 */
import type { DriverName } from './drivers.js'
import type { Sample } from './runner.js'
import { type Spread, median, spread } from './stats.js'

export interface Row {
  key: string
  /** per driver: wall time spread (ms), daemon CPU median (ms), peak RSS max (KiB), errors */
  drivers: Partial<Record<DriverName, { time: Spread | undefined; cpuMs: number | undefined; peakRssKiB: number | undefined; errors: number }>>
  /** layerfs median / other driver median */
  ratios: Partial<Record<DriverName, number>>
  /** layerfs / other driver, sample by sample within each repetition (both ran it in the same round
   *  of drivers, within minutes): a slow spell of the machine more often weighs on both sides */
  perRound: Partial<Record<DriverName, Spread>>
}

export function summarize(samples: Sample[], drivers: DriverName[], keys: string[]): Row[] {
  return keys.map((key) => {
    const row: Row = { key, drivers: {}, ratios: {}, perRound: {} }
    for (const d of drivers) {
      const mine = samples.filter((s) => s.key === key && s.driver === d)
      const ok = mine.flatMap((s) => (s.ms === null ? [] : [s.ms]))
      const cpu = mine.flatMap((s) => (s.daemonCpuMs === null ? [] : [s.daemonCpuMs]))
      const rss = mine.flatMap((s) => (s.daemonPeakRssKiB === null ? [] : [s.daemonPeakRssKiB]))
      row.drivers[d] = { time: spread(ok), cpuMs: median(cpu), peakRssKiB: rss.length ? Math.max(...rss) : undefined, errors: mine.length - ok.length }
    }
    const l = row.drivers.layerfs?.time?.median
    if (l !== undefined) {
      for (const d of drivers) {
        const other = row.drivers[d]?.time?.median
        if (d !== 'layerfs' && other !== undefined && other > 0) row.ratios[d] = l / other
      }
    }
    const layerfsTimes = timesByRep(samples, key, 'layerfs')
    for (const d of drivers) {
      if (d === 'layerfs') continue
      const theirs = timesByRep(samples, key, d)
      const ratios = [...layerfsTimes].flatMap(([rep, ms]) => {
        const other = theirs.get(rep)
        return other !== undefined && other > 0 ? [ms / other] : []
      })
      const s = spread(ratios)
      if (s !== undefined) row.perRound[d] = s
    }
    return row
  })
}

/** A driver's successful times for `key`, by repetition. */
function timesByRep(samples: Sample[], key: string, driver: DriverName): Map<number, number> {
  const out = new Map<number, number>()
  for (const s of samples) if (s.key === key && s.driver === driver && s.ms !== null) out.set(s.rep, s.ms)
  return out
}

export function fmtMs(ms: number | undefined): string {
  if (ms === undefined) return '-'
  if (ms >= 10_000) return `${(ms / 1000).toFixed(1)}s`
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)}s`
  if (ms >= 100) return `${ms.toFixed(0)}ms`
  if (ms >= 10) return `${ms.toFixed(1)}ms`
  return `${ms.toFixed(2)}ms`
}

const fmtRatio = (r: number | undefined): string => (r === undefined ? '-' : `${r >= 10 ? r.toFixed(0) : r.toFixed(2)}x`)

/** The spread of per-round ratios: "0.92-1.31x", or the one ratio of a single round. */
export function fmtRange(s: Spread | undefined): string {
  if (s === undefined) return '-'
  return s.n === 1 || fmtRatio(s.min) === fmtRatio(s.max) ? fmtRatio(s.min) : `${fmtRatio(s.min).slice(0, -1)}-${fmtRatio(s.max)}`
}

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n')
}

export function formatTable(rows: Row[], drivers: DriverName[]): string {
  const head = ['workload', ...drivers.map((d) => `${d} (min-max)`)]
  if (drivers.includes('layerfs')) {
    if (drivers.includes('kernel')) head.push('layerfs/kernel')
    if (drivers.includes('fuse-overlayfs')) head.push('layerfs/fuse-ovl', 'per round')
  }
  const body = rows.map((r) => {
    const cells = [r.key]
    for (const d of drivers) {
      const x = r.drivers[d]
      const t = x?.time
      cells.push(t === undefined ? (x && x.errors > 0 ? 'ERROR' : '-') : `${fmtMs(t.median)} (${fmtMs(t.min)}-${fmtMs(t.max)})${x && x.errors > 0 ? ` !${x.errors}` : ''}`)
    }
    if (drivers.includes('layerfs')) {
      if (drivers.includes('kernel')) cells.push(fmtRatio(r.ratios.kernel))
      if (drivers.includes('fuse-overlayfs')) cells.push(fmtRatio(r.ratios['fuse-overlayfs']), fmtRange(r.perRound['fuse-overlayfs']))
    }
    return cells
  })
  let out = table(head, body)
  const daemons = drivers.filter((d) => d === 'fuse-overlayfs' || d === 'layerfs')
  if (daemons.length > 0) {
    const h2 = ['daemon CPU (median) / peak RSS', ...daemons.flatMap((d) => [`${d} cpu`, `${d} rss`])]
    const b2 = rows.map((r) => [r.key, ...daemons.flatMap((d) => {
      const x = r.drivers[d]
      return [fmtMs(x?.cpuMs), x?.peakRssKiB === undefined ? '-' : `${(x.peakRssKiB / 1024).toFixed(0)}MiB`]
    })])
    out += '\n\n' + table(h2, b2)
  }
  return out
}

/** The workloads where layerfs is furthest behind `other` (highest ratio first). */
export function worstAgainst(rows: Row[], other: DriverName, n: number): Row[] {
  return rows.filter((r) => r.ratios[other] !== undefined).sort((a, b) => b.ratios[other]! - a.ratios[other]!).slice(0, n)
}
