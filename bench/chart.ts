/**
 * A self-contained SVG chart: per workload, horizontal grouped bars of each driver's median time as a ratio
 * to kernel overlayfs, on a log scale (1x = kernel, marked by a line). No external assets, no scripts.
 */
import type { DriverName } from './drivers.js'
import type { Row } from './report.js'

const COLORS: Record<DriverName, string> = { plain: '#8c8c8c', kernel: '#2f6db5', 'fuse-overlayfs': '#e08a1e', layerfs: '#2e9c4f' }

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

export function renderChart(rows: Row[], drivers: DriverName[], title: string): string {
  const bars = drivers.filter((d) => d !== 'kernel')
  const ratio = (r: Row, d: DriverName): number | undefined => {
    const k = r.drivers.kernel?.time?.median
    const x = r.drivers[d]?.time?.median
    return k !== undefined && x !== undefined && k > 0 && x > 0 ? x / k : undefined
  }
  const values = rows.flatMap((r) => bars.flatMap((d) => ratio(r, d) ?? []))
  const lo = Math.min(0.5, ...values.map((v) => v / 1.2))
  const hi = Math.max(2, ...values.map((v) => v * 1.2))
  const decades = { lo: Math.floor(Math.log10(lo)), hi: Math.ceil(Math.log10(hi)) }
  const labelW = 150
  const plotW = 560
  const barH = 11
  const groupGap = 10
  const top = 56
  const groupH = bars.length * barH + groupGap
  const height = top + rows.length * groupH + 40
  const width = labelW + plotW + 90
  const x = (v: number): number => labelW + ((Math.log10(v) - decades.lo) / (decades.hi - decades.lo)) * plotW
  const parts: string[] = []
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`)
  parts.push(`<rect width="100%" height="100%" fill="#fff"/>`)
  parts.push(`<text x="${labelW}" y="18" font-size="14" font-weight="bold">${esc(title)}</text>`)
  parts.push(`<text x="${labelW}" y="34" fill="#555">median time relative to kernel overlayfs (log scale; left of the line is faster)</text>`)
  // legend
  bars.forEach((d, i) => {
    parts.push(`<rect x="${labelW + i * 120}" y="40" width="10" height="10" fill="${COLORS[d]}"/><text x="${labelW + i * 120 + 14}" y="49">${esc(d)}</text>`)
  })
  // grid
  for (let e = decades.lo; e <= decades.hi; e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e
      if (v < 10 ** decades.lo || v > 10 ** decades.hi) continue
      const gx = x(v).toFixed(1)
      parts.push(`<line x1="${gx}" y1="${top - 4}" x2="${gx}" y2="${height - 30}" stroke="${m === 1 ? '#ccc' : '#eee'}"/>`)
      parts.push(`<text x="${gx}" y="${height - 16}" text-anchor="middle" fill="#555">${v >= 1 ? v : v.toPrecision(1)}x</text>`)
    }
  }
  rows.forEach((r, gi) => {
    const gy = top + gi * groupH
    parts.push(`<text x="${labelW - 6}" y="${gy + (bars.length * barH) / 2 + 4}" text-anchor="end">${esc(r.key)}</text>`)
    bars.forEach((d, bi) => {
      const v = ratio(r, d)
      const y = gy + bi * barH
      if (v === undefined) {
        parts.push(`<text x="${x(1) + 4}" y="${y + barH - 2}" fill="#999" font-size="9">${esc(d)}: n/a</text>`)
        return
      }
      const x0 = Math.min(x(1), x(v))
      const w = Math.max(1, Math.abs(x(v) - x(1)))
      parts.push(`<rect x="${x0.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${barH - 2}" fill="${COLORS[d]}"><title>${esc(`${r.key} ${d}: ${v.toFixed(2)}x kernel`)}</title></rect>`)
      parts.push(`<text x="${(Math.max(x(1), x(v)) + 3).toFixed(1)}" y="${y + barH - 3}" font-size="9" fill="#333">${v.toFixed(2)}x</text>`)
    })
  })
  parts.push(`<line x1="${x(1).toFixed(1)}" y1="${top - 4}" x2="${x(1).toFixed(1)}" y2="${height - 30}" stroke="${COLORS.kernel}" stroke-width="2"/>`)
  parts.push('</svg>')
  return parts.join('\n') + '\n'
}
