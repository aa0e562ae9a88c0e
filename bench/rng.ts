/** A small seeded PRNG (mulberry32) so the fixture and the random-read offsets are the same on every run. */
export class Rng {
  private s: number
  constructor(seed: number) {
    this.s = seed >>> 0
  }
  /** uniform in [0, 1) */
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0)
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  /** integer in [lo, hi] */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1))
  }
  pick<T>(xs: readonly T[]): T {
    const x = xs[Math.floor(this.next() * xs.length)]
    if (x === undefined) throw new Error('pick from an empty list')
    return x
  }
  /** A log-uniform integer in [lo, hi]: most values small, a long tail of large ones. */
  logInt(lo: number, hi: number): number {
    return Math.floor(Math.exp(Math.log(lo) + this.next() * (Math.log(hi + 1) - Math.log(lo))))
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n)
    for (let i = 0; i < n; i += 4) b.writeUInt32LE((this.next() * 4294967296) >>> 0, i)
    return b
  }
}
