// The resolver's cache: an lru-cache that allocates its capacity in steps (growing-lru.ts).
import { describe, expect, it } from 'vitest'
import { GrowingLru } from '../../src/union/growing-lru.js'

describe('GrowingLru', () => {
  it('starts small and grows, up to its maximum, as it fills', () => {
    const cache = new GrowingLru<number, string>(100_000)
    expect(cache.capacity).toBeLessThan(10_000)
    const first = cache.capacity
    for (let i = 0; i < first; i++) cache.set(i, `v${i}`)
    expect(cache.capacity).toBe(first)
    cache.set(first, 'one more')
    expect(cache.capacity).toBeGreaterThan(first)
    for (let i = first + 1; i < 100_000; i++) cache.set(i, `v${i}`)
    expect(cache.capacity).toBe(100_000)
    expect(cache.size).toBe(100_000)
    // Nothing was lost on the way.
    expect(cache.get(0)).toBe('v0')
    expect(cache.get(first)).toBe('one more')
    expect(cache.get(99_999)).toBe('v99999')
    // Full at its maximum, it evicts instead of growing.
    cache.set(-1, 'new')
    expect(cache.capacity).toBe(100_000)
    expect(cache.size).toBe(100_000)
    expect(cache.has(-1)).toBe(true)
  })

  it('keeps the recency order across a growth, so the least recently used is evicted first', () => {
    const cache = new GrowingLru<number, number>(5000)
    const first = cache.capacity
    expect(first).toBeLessThan(5000)
    for (let i = 0; i < first; i++) cache.set(i, i)
    expect(cache.get(0)).toBe(0) // now the most recent
    for (let i = first; i < 5000; i++) cache.set(i, i) // grows on the first of these
    expect(cache.capacity).toBe(5000)
    cache.set(-1, -1)
    expect(cache.has(0)).toBe(true)
    expect(cache.has(1)).toBe(false)
    // peek does not make a key recent, get does.
    expect(cache.peek(2)).toBe(2)
    cache.set(-2, -2)
    expect(cache.has(2)).toBe(false)
    expect(cache.get(3)).toBe(3)
    cache.set(-3, -3)
    expect(cache.has(3)).toBe(true)
    expect(cache.has(4)).toBe(false)
  })

  it('sets an existing key in place when full, and deletes and clears', () => {
    const cache = new GrowingLru<string, number>(3)
    cache.set('a', 1)
    cache.set('b', 2)
    cache.set('c', 3)
    cache.set('a', 4)
    expect(cache.size).toBe(3)
    expect(cache.get('a')).toBe(4)
    expect([...cache.keys()]).toEqual(['a', 'c', 'b'])
    expect(cache.delete('c')).toBe(true)
    expect(cache.delete('c')).toBe(false)
    expect(cache.size).toBe(2)
    cache.clear()
    expect(cache.size).toBe(0)
    expect(cache.get('a')).toBeUndefined()
  })
})
