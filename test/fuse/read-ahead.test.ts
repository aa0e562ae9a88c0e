// ReadAhead (src/fuse/read-ahead.ts) against a recording stand-in for the union: which files of a
// directory it asks the pool for, in which direction, when it asks for more, when a listing starts
// it, and when it stops.
import { describe, expect, it } from 'vitest'
import { HEAT, MARGIN, ReadAhead, WINDOW, listingOrder } from '../../src/fuse/read-ahead.js'
import { type DirOrder, sortedIndexOf } from '../../src/union/readdir.js'

/** Directory `dir` holding files f000..f(n-1), and a listing order of it (names sorted). */
function dirOf(dir: string, n: number, notFiles: ReadonlySet<number> = new Set()): { names: string[]; order: DirOrder } {
  const names = Array.from({ length: n }, (_, i) => `f${String(i).padStart(3, '0')}`)
  return {
    names,
    order: {
      size: n,
      indexOf: (name) => sortedIndexOf(names, name),
      file: (i) => (notFiles.has(i) ? undefined : `/host/${dir}/${names[i]}`),
    },
  }
}

class Source {
  readonly orders = new Map<string, DirOrder>()
  /** Each batch asked for, and how the test settles it. */
  readonly fetched: string[][] = []
  readonly #settle: Array<(cold: number) => void> = []
  ordersTaken = 0
  /** What opened() answers: first opens that found their file cached. */
  openedCount = 0
  /** How many times it was asked. */
  openedAsked = 0

  opened(): number {
    this.openedAsked++
    return this.openedCount
  }

  order(path: string): DirOrder | undefined {
    this.ordersTaken++
    return this.orders.get(path)
  }

  fetch(paths: string[]): Promise<number> {
    this.fetched.push(paths)
    return new Promise((resolve) => this.#settle.push(resolve))
  }

  /** Settles the batch `i` with `cold` files found uncached, and lets its callbacks run. */
  async settle(i: number, cold: number): Promise<void> {
    this.#settle[i]!(cold)
    await new Promise((resolve) => setImmediate(resolve))
  }
}

function setup(): { source: Source; ahead: ReadAhead; a: ReturnType<typeof dirOf> } {
  const source = new Source()
  const a = dirOf('a', 300)
  source.orders.set('/a', a.order)
  return { source, ahead: new ReadAhead(source), a }
}

const files = (dir: string, names: string[]): string[] => names.map((n) => `/host/${dir}/${n}`)

describe('ReadAhead', () => {
  it('reads ahead the next WINDOW files once two opens in a row of a directory found theirs uncached', () => {
    const { source, ahead, a } = setup()
    ahead.uncached(1, a.names[10]!, () => '/a')
    expect(source.fetched).toEqual([])
    expect(source.ordersTaken).toBe(0) // one uncached open lists nothing
    ahead.uncached(1, a.names[11]!, () => '/a')
    expect(source.fetched).toEqual([files('a', a.names.slice(12, 12 + WINDOW))])
    expect(ahead.started).toBe(1)
  })

  it('reads the other way for a reader going through the names backwards, in ascending order', () => {
    const { source, ahead, a } = setup()
    ahead.uncached(1, a.names[299]!, () => '/a')
    ahead.uncached(1, a.names[298]!, () => '/a')
    expect(source.fetched).toEqual([files('a', a.names.slice(298 - WINDOW, 298))])
  })

  it('asks for the next WINDOW once the reader comes within MARGIN of the end, and never twice for a file', () => {
    const { source, ahead, a } = setup()
    ahead.uncached(1, a.names[0]!, () => '/a')
    ahead.uncached(1, a.names[1]!, () => '/a')
    const end = 2 + WINDOW // asked for: 2 .. end-1
    ahead.cached(1, a.names[end - 1 - MARGIN - 1]!)
    expect(source.fetched.length).toBe(1)
    ahead.cached(1, a.names[end - 1 - MARGIN]!)
    expect(source.fetched).toEqual([files('a', a.names.slice(2, end)), files('a', a.names.slice(end, end + WINDOW))])
    ahead.cached(1, a.names[end - MARGIN]!)
    expect(source.fetched.length).toBe(2)
    // An uncached open inside what was asked for (the pool is behind) asks for nothing more.
    ahead.uncached(1, a.names[end + 5]!, () => '/a')
    expect(source.fetched.length).toBe(2)
    // One outside it (the reader jumped) starts again from there.
    ahead.uncached(1, a.names[250]!, () => '/a')
    expect(source.fetched[2]).toEqual(files('a', a.names.slice(251, 300)))
    expect(source.ordersTaken).toBe(1) // the listing is taken once
  })

  it('starts nothing for uncached opens that are not in a row, and skips what is not a file', () => {
    const source = new Source()
    const a = dirOf('a', 100, new Set([5, 6]))
    const b = dirOf('b', 100)
    source.orders.set('/a', a.order)
    source.orders.set('/b', b.order)
    const ahead = new ReadAhead(source)
    ahead.uncached(1, a.names[0]!, () => '/a')
    ahead.uncached(2, b.names[0]!, () => '/b')
    ahead.uncached(1, a.names[1]!, () => '/a')
    expect(source.fetched).toEqual([])
    ahead.uncached(1, a.names[2]!, () => '/a')
    expect(source.fetched).toEqual([files('a', a.names.slice(3, 3 + WINDOW).filter((n) => n !== 'f005' && n !== 'f006'))])
  })

  it('forgets a directory whose listing is gone', () => {
    const { source, ahead } = setup()
    ahead.uncached(7, 'x', () => '/gone')
    ahead.uncached(7, 'y', () => '/gone')
    ahead.cached(7, 'z')
    expect(source.fetched).toEqual([])
  })

  it('reads a listed directory\'s first files ahead after a cold reader, for as long as it opens files found uncached', async () => {
    const { source, ahead, a } = setup()
    const small = dirOf('s', 5)
    let listings = 0
    const order = (): DirOrder => {
      listings++
      return small.order
    }
    // No reader has found files uncached: a listing reads nothing ahead (find, ls -R).
    ahead.listed(50, order)
    expect(source.fetched).toEqual([])
    expect(listings).toBe(0)
    ahead.uncached(1, a.names[0]!, () => '/a')
    for (let i = 0; i < HEAT; i++) ahead.listed(100 + i, order)
    expect(source.fetched.length).toBe(HEAT)
    expect(source.fetched[0]).toEqual(files('s', small.names))
    // No read-ahead has ended finding files uncached: the listings never asked for the opens.
    expect(source.openedAsked).toBe(0)
    // Nothing opened since (ls -lR after one uncached read): it stops, though files were uncached.
    await source.settle(0, 3)
    ahead.listed(200, order)
    expect(source.fetched.length).toBe(HEAT)
    expect(listings).toBe(HEAT)
    // Files opened, and the last read-ahead found uncached ones: HEAT more listings.
    source.openedCount += 5
    ahead.listed(201, order)
    expect(source.fetched.length).toBe(HEAT + 1)
    // Files opened, but the last read-ahead found every one cached: no more than those.
    await source.settle(1, 0)
    for (let i = 0; i < 2 * HEAT; i++) {
      source.openedCount++
      ahead.listed(300 + i, order)
    }
    expect(source.fetched.length).toBe(2 * HEAT)
  })

  it('reads a listed directory from its end after a reader that went backwards', () => {
    const { source, ahead, a } = setup()
    ahead.uncached(1, a.names[299]!, () => '/a')
    ahead.uncached(1, a.names[298]!, () => '/a')
    const big = dirOf('b', 200)
    ahead.listed(2, () => big.order)
    expect(source.fetched[1]).toEqual(files('b', big.names.slice(200 - WINDOW)))
    // Going on backwards in it asks for the WINDOW before.
    ahead.cached(2, big.names[200 - WINDOW + MARGIN]!)
    ahead.cached(2, big.names[200 - WINDOW + MARGIN - 1]!)
    expect(source.fetched[2]).toEqual(files('b', big.names.slice(200 - 2 * WINDOW, 200 - WINDOW)))
  })
})

describe('listingOrder', () => {
  it('skips the dots and keeps regular files of 1 to maxSize bytes', () => {
    const REG = 0o100644
    const DIR = 0o040755
    const list = [
      { name: '.', attr: { mode: DIR, size: 0 } },
      { name: '..', attr: { mode: DIR, size: 0 } },
      { name: 'a', attr: { mode: REG, size: 10 } },
      { name: 'b', attr: { mode: DIR, size: 4096 } },
      { name: 'c', attr: { mode: REG, size: 0 } },
      { name: 'd', attr: { mode: REG, size: 1000 } },
      { name: 'e', attr: { mode: REG, size: 100 } },
    ]
    const order = listingOrder(list, (name) => `/h/${name}`, 100)
    expect(order.size).toBe(5)
    expect(['a', 'b', 'c', 'd', 'e', 'zz', '.'].map((n) => order.indexOf(n))).toEqual([0, 1, 2, 3, 4, -1, -1])
    expect([0, 1, 2, 3, 4, 5].map((i) => order.file(i))).toEqual(['/h/a', undefined, undefined, undefined, '/h/e', undefined])
  })
})
