/** Order statistics for the samples: median, min/max and quartiles. */
export interface Spread {
  n: number
  median: number
  min: number
  max: number
  q1: number
  q3: number
}

function quantile(sorted: number[], q: number): number {
  const pos = (sorted.length - 1) * q
  const lo = Math.floor(pos)
  const hi = Math.ceil(pos)
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo)
}

export function spread(xs: number[]): Spread | undefined {
  if (xs.length === 0) return undefined
  const s = [...xs].sort((a, b) => a - b)
  return { n: s.length, median: quantile(s, 0.5), min: s[0]!, max: s[s.length - 1]!, q1: quantile(s, 0.25), q3: quantile(s, 0.75) }
}

export function median(xs: number[]): number | undefined {
  return spread(xs)?.median
}
