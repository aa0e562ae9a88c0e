/**
 * Reading ahead for a reader that goes through a directory's files uncached, one after another
 * (tar, cp -r, grep -r, a loader; chmod -R and chown -R of a layer, whose copy-ups read each file).
 * The kernel reads ahead within a file, never across files: each next file's first read would
 * wait for the disk. Once two first opens in a row of one directory have found their file
 * uncached, its next files in listing order, in the direction the reader goes (find and tar go the
 * way readdir gives the names; a walker that stacks them, the other way), are read into the page
 * cache on the thread pool, WINDOW at a time. Each open of the directory the bridge's JS answers
 * says how far the reader got (first opens of cached files answered in C go unseen; the next
 * uncached one then asks again): once it comes within MARGIN of the end of what was asked for, the
 * next WINDOW follow, so the reader keeps finding its files in memory rather than catching up
 * with the disk every WINDOW files. And while a reader finds files uncached, each
 * directory listed has its first files read ahead before any is opened (listed).
 *
 * The order is the merged listing's (the order readdir gives), taken once per directory while it
 * is read, for the few directories read most recently: reading it again at every step would cost
 * more than the files (a directory of n names, re-listed and sorted every two files, made reading a
 * tree backwards take twice the time). A listing that changes meanwhile costs nothing but bytes
 * read for nothing: reading ahead only fills the page cache, and the union reads every file again.
 */
import { constants } from 'node:fs'
import type { HostPath } from '../sys/names.js'
import { type DirOrder, sortedIndexOf } from '../union/readdir.js'

/** What reading ahead needs of the union. */
export interface ReadAheadSource {
  /** The listing of the directory at `path`, or undefined (gone, unreadable, not a directory). */
  order(path: string): DirOrder | undefined
  /** Read these files into the page cache, on the thread pool: how many of them were not cached
   *  (never rejects). */
  fetch(paths: HostPath[]): Promise<number>
  /** A count that grows with every first open (or copy-up) that found its file cached. */
  opened(): number
}

/** Files asked for at a time. */
export const WINDOW = 64
/** How close to the end of what was asked for the reader comes before the next WINDOW are. */
export const MARGIN = 32
/** Directories followed at a time. */
const STREAMS = 8
/** Listings whose first files are read ahead after the last sign of a cold reader (see listed). */
export const HEAT = 16

interface Stream {
  /** The name of the uncached open that started this stream (until it has an order). */
  first: string
  order?: DirOrder
  /** The index of the last name the reader opened in it, and its direction (1 or -1). */
  at: number
  direction: number
  /** Names [lo, hi) were asked for (or were the reader's own). */
  lo: number
  hi: number
}

export class ReadAhead {
  readonly #source: ReadAheadSource
  /** By directory node id; in the order last used (a Map keeps insertion order). */
  readonly #streams = new Map<number, Stream>()
  /** The directory of the last uncached open. */
  #last = 0
  /** The way the reader went last (1: as readdir gives the names, -1: the other way). */
  #direction = 1
  /** Listings left that read ahead (see listed). */
  #heat = 0
  /** source.opened() when a listing last asked, and whether the last read-ahead to end found
   *  files uncached. */
  #opened = 0
  #coldSeen = false
  /** Reads asked of the pool (batches of files). */
  started = 0

  constructor(source: ReadAheadSource) {
    this.#source = source
  }

  /**
   * A first open (or a copy-up) of `name` in directory `dir` found its file uncached. The second
   * in a row of the same directory starts reading ahead; `path` gives the directory's path, then.
   */
  uncached(dir: number, name: string, path: () => string | undefined): void {
    const last = this.#last
    this.#last = dir
    this.#heat = HEAT
    const stream = this.#streams.get(dir)
    if (stream === undefined) {
      this.#add(dir, { first: name, at: -1, direction: this.#direction, lo: 0, hi: 0 })
      return
    }
    this.#touch(dir, stream)
    if (stream.order === undefined) {
      // Not two in a row: this one may be the first of a reader's.
      if (last !== dir) {
        stream.first = name
        return
      }
      const where = path()
      const order = where === undefined ? undefined : this.#source.order(where)
      if (order === undefined) {
        this.#streams.delete(dir)
        return
      }
      stream.order = order
      stream.at = order.indexOf(stream.first)
    }
    const i = stream.order.indexOf(name)
    if (i < 0) return
    this.#step(stream, i)
    // Outside what was asked for: the reader jumped. Start again from here.
    if (i < stream.lo || i >= stream.hi) {
      stream.lo = i
      stream.hi = i + 1
    }
    this.#ahead(stream, i, 0)
  }

  /** A first open (or a copy-up) of `name` in `dir` found its bytes cached: the reader goes on. */
  cached(dir: number, name: string): void {
    const stream = this.#streams.get(dir)
    const i = stream?.order?.indexOf(name) ?? -1
    if (stream === undefined || i < 0) return
    this.#step(stream, i)
    this.#ahead(stream, i, MARGIN)
  }

  /**
   * Directory `dir` was listed afresh (`order` gives its names). A reader that went through
   * files uncached lately reads a directory's files next, most of the time: with a few files to a
   * directory (a node_modules tree has six or seven), waiting for two of them to start reading
   * ahead would leave a third of them to the disk. So the first WINDOW files, from the end the
   * reader went towards last, are read ahead now, for HEAT listings after the last uncached open;
   * and for HEAT more whenever the reader opened files since the last listing while the last
   * read-ahead still found files uncached. So `find` (no opens) never starts it, `ls -lR` after an
   * uncached read stops it within HEAT listings (it opens nothing), and so does a reader whose
   * files are all cached (reading ahead finds nothing to read).
   */
  listed(dir: number, order: () => DirOrder | undefined): void {
    // Asked only after a read-ahead that found files uncached: every listing of a walk comes here.
    if (this.#coldSeen) {
      const opened = this.#source.opened()
      if (opened !== this.#opened) this.#heat = HEAT
      this.#opened = opened
    }
    if (this.#heat === 0) return
    this.#heat--
    const o = order()
    if (o === undefined || o.size === 0) return
    const stream: Stream = { first: '', order: o, at: -1, direction: this.#direction, lo: 0, hi: 0 }
    if (stream.direction < 0) stream.lo = stream.hi = o.size
    this.#streams.delete(dir)
    this.#add(dir, stream)
    this.#ahead(stream, stream.direction > 0 ? -1 : o.size, 0)
  }

  /** The reader is at `i`: its direction is the way it moved. */
  #step(stream: Stream, i: number): void {
    if (stream.at >= 0 && i !== stream.at) this.#direction = stream.direction = i > stream.at ? 1 : -1
    stream.at = i
  }

  /** Asks for the next WINDOW names past the end the reader heads for, when the reader at `i`
   *  is within `margin` of it. */
  #ahead(stream: Stream, i: number, margin: number): void {
    const order = stream.order!
    let from: number
    let to: number
    if (stream.direction > 0) {
      if (stream.hi - 1 - i > margin || stream.hi >= order.size) return
      from = stream.hi
      to = Math.min(order.size, from + WINDOW)
      stream.hi = to
    } else {
      if (i - stream.lo > margin || stream.lo <= 0) return
      to = stream.lo
      from = Math.max(0, to - WINDOW)
      stream.lo = from
    }
    const paths: HostPath[] = []
    for (let k = from; k < to; k++) {
      const file = order.file(k)
      if (file !== undefined) paths.push(file)
    }
    if (paths.length === 0) return
    this.started++
    void this.#source.fetch(paths).then((cold) => {
      this.#coldSeen = cold > 0
    })
  }

  #add(dir: number, stream: Stream): void {
    this.#streams.set(dir, stream)
    if (this.#streams.size > STREAMS) this.#streams.delete(this.#streams.keys().next().value!)
  }

  #touch(dir: number, stream: Stream): void {
    this.#streams.delete(dir)
    this.#streams.set(dir, stream)
  }
}

/** An entry of a listing as the bridge keeps it for readdir. */
interface Listed {
  name: string
  attr: { mode: number; size: number }
}

/**
 * The order of a listing taken for readdir ('.' and '..' first, then the names as readdir gives
 * them): its regular files of 1 to `maxSize` bytes, at the host paths `filePath` finds.
 */
export function listingOrder(list: readonly Listed[], filePath: (name: string) => HostPath | undefined, maxSize: number): DirOrder {
  let start = 0
  while (start < list.length && (list[start]!.name === '.' || list[start]!.name === '..')) start++
  const entries = list.slice(start)
  const names = entries.map((e) => e.name)
  return {
    size: entries.length,
    indexOf: (name) => sortedIndexOf(names, name),
    file: (i) => {
      const e = entries[i]
      return e !== undefined && (e.attr.mode & S_IFMT) === S_IFREG && e.attr.size > 0 && e.attr.size <= maxSize ? filePath(e.name) : undefined
    },
  }
}

const { S_IFMT, S_IFREG } = constants
