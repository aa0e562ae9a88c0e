// The node table in C (native/fuse-ll-fast.c), through a session that never mounts: a directory
// marked for lookups (probeAllow) is found with its mark (positiveAllow answers true) until the mark
// goes (probeDeny), across growths of the table's index, removals that move index entries up, places
// of removed nodes taken again, and nodes that keep another mark (fastAllow) when this one goes.
import { describe, expect, it } from 'vitest'
import { Session } from '../../src/sys/fuse-ll.js'

describe('the node table in C', () => {
  it('finds every marked node and no other, through growth, removals and reuse', () => {
    const s = new Session(() => undefined, () => undefined)
    try {
      const probed = new Set<number>()
      let seed = 20261203
      const random = (n: number): number => { // mulberry32
        seed = (seed + 0x6d2b79f5) | 0
        let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
        t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
        return ((t ^ (t >>> 14)) >>> 0) % n
      }
      const IDS = 20_000
      for (let round = 0; round < 5; round++) {
        for (let i = 0; i < 4000; i++) {
          const id = 1 + random(IDS)
          expect(s.probeAllow(id, ['/lower/a', '/lower/b'])).toBe(true)
          probed.add(id)
          // Some keep a second mark: they stay in the table when the first goes.
          if (id % 7 === 0) expect(s.fastAllow(id)).toBe(true)
        }
        for (let i = 0; i < 2000; i++) {
          const id = 1 + random(IDS)
          s.probeDeny(id)
          probed.delete(id)
          if (round % 2 === 1 && id % 7 === 0) s.fastDeny(id)
        }
        const found: number[] = []
        for (let id = 1; id <= IDS; id++) if (s.positiveAllow(id, true)) found.push(id)
        expect(found).toEqual([...probed].sort((a, b) => a - b))
      }
      expect(probed.size).toBeGreaterThan(5000)
    } finally {
      s.unmount()
    }
  })
})
