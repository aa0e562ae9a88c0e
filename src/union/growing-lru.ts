import { LRUCache } from 'lru-cache'

/** The capacity a GrowingLru starts with, and the factor it grows by. */
const FIRST_CAPACITY = 1024
const GROWTH = 8

/**
 * An LRU cache of at most `max` entries (the `lru-cache` package) that starts small and grows as it
 * fills. lru-cache allocates the slots of its whole capacity when it is made: for the resolver's
 * 100,000 answers that was 30-50 ms of page faults and array fills, which a daemon paid right after
 * its mount came up, just as the first requests arrived. A mount that sees a few thousand names
 * never pays it; one that sees more pays it in steps (each moves the entries over, oldest first, so
 * the recency order is kept), while it is busy looking names up anyway. (The resolver's two caches
 * took 0.9 ms of a mount's start at 4,096 entries each, 0.4 ms at 1,024.)
 */
export class GrowingLru<K extends {}, V extends {}> {
  readonly #max: number
  #lru: LRUCache<K, V>

  constructor(max: number) {
    this.#max = Math.max(1, max)
    this.#lru = new LRUCache<K, V>({ max: Math.min(this.#max, FIRST_CAPACITY) })
  }

  get size(): number {
    return this.#lru.size
  }

  /** The capacity allocated so far. */
  get capacity(): number {
    return this.#lru.max
  }

  get(key: K): V | undefined {
    return this.#lru.get(key)
  }

  /** The value without making it the most recent. */
  peek(key: K): V | undefined {
    return this.#lru.peek(key)
  }

  has(key: K): boolean {
    return this.#lru.has(key)
  }

  set(key: K, value: V): void {
    const lru = this.#lru
    if (lru.size >= lru.max && lru.max < this.#max && !lru.has(key)) this.#grow()
    this.#lru.set(key, value)
  }

  delete(key: K): boolean {
    return this.#lru.delete(key)
  }

  /** The keys, most recently used first. */
  keys(): Generator<K, void, unknown> {
    return this.#lru.keys()
  }

  clear(): void {
    this.#lru.clear()
  }

  #grow(): void {
    const bigger = new LRUCache<K, V>({ max: Math.min(this.#max, this.#lru.max * GROWTH) })
    // rkeys goes from the least recently used up: the last one set is the most recent again.
    for (const key of this.#lru.rkeys()) bigger.set(key, this.#lru.peek(key)!)
    this.#lru = bigger
  }
}
