/**
 * The merged listing of a directory: every contributing layer's names, topmost first, each name once,
 * minus whiteouts and the markers that encode them. A whiteout (char 0/0 or `.wh.NAME`) hides NAME in
 * the layers below its own, never in its own layer, as the OCI spec has it. The result is sorted, so a
 * directory offset means the same thing across calls.
 */
import { constants } from 'node:fs'
import type { Layer } from '../layers/layer.js'
import { OPAQUE_MARKER, WHITEOUT_PREFIX, isWhiteoutMode, whiteoutTarget } from '../layers/whiteout.js'
import type { HostPath } from '../sys/names.js'
import { ST, ST_FIELDS, listDir, listDirSync } from '../sys/native.js'
import type { Entry } from './entry.js'
import { isCode } from './errors.js'

/**
 * One layer's copy of a directory as one read saw it: its names and each name's kind, which answer
 * a listing's lookups, and, when read `withStats`, each name's lstat numbers (native/stat.c), which
 * give readdirplus its attributes without another syscall.
 */
export class LayerListing {
  readonly names: string[]
  readonly numbers: Float64Array
  readonly #withStats: boolean
  readonly #index = new Map<string, number>()

  constructor(path: HostPath, withStats: boolean, read = listDirSync(path, withStats)) {
    const { names, numbers } = read
    this.names = names
    this.numbers = numbers
    this.#withStats = withStats
    for (let i = 0; i < names.length; i++) this.#index.set(names[i]!, i)
  }

  has(name: string): boolean {
    return this.#index.has(name)
  }

  /** Where `name`'s numbers start in `numbers` (its kind, and a char device's rdev, at least);
   *  -1 when it is not listed. */
  offsetOf(name: string): number {
    const i = this.#index.get(name)
    return i === undefined ? -1 : i * ST_FIELDS
  }

  /** Where `name`'s full lstat numbers start in `numbers`; -1 when it is not listed, or the listing
   *  was read without them. */
  statsOffset(name: string): number {
    return this.#withStats ? this.offsetOf(name) : -1
  }

  isFile(name: string): boolean {
    const at = this.offsetOf(name)
    return at >= 0 && (this.numbers[at + ST.MODE]! & constants.S_IFMT) === constants.S_IFREG
  }

  /** A char device 0/0: overlayfs's whiteout. */
  isWhiteout(name: string): boolean {
    const at = this.offsetOf(name)
    return at >= 0 && isWhiteoutMode(this.numbers[at + ST.MODE]!, this.numbers[at + ST.RDEV]!)
  }
}

/** Per layer, the directory as one read saw it. */
export type Listings = Map<Layer, LayerListing>

export function mergedNames(dir: Entry): string[] {
  return mergeListings(dir, listLayers(dir, false))
}

/** One read of the directory per contributing layer (a layer whose copy vanished lists nothing),
 *  `withStats` for readdirplus. Synchronous, like the lookup probes (resolver.ts): getdents on an
 *  inode the walk that got here has just looked up, and an fstatat per entry relative to the open
 *  directory, cost less than the thread-pool round trip that would carry them, when cached. A
 *  lower layer's read `ahead` on the thread pool is taken instead. */
export function listLayers(dir: Entry, withStats: boolean, ahead?: ListingsAhead): Listings {
  const listings: Listings = new Map()
  for (const layer of dir.dirLayers) {
    try {
      const path = layer.path(dir.path)
      const read = withStats && !layer.writable ? ahead?.take(path) : undefined
      listings.set(layer, new LayerListing(path, withStats, read))
    } catch (err) {
      if (!isCode(err, 'ENOENT', 'ENOTDIR')) throw err
    }
  }
  return listings
}

/**
 * Lower layers' listings (with stats) read ahead on the thread pool, by host path, until a listing
 * takes them. The first listing of a directory the host has not cached waits for the disk, for its
 * names and for every entry's inode: on the daemon's one thread, a walker's other requests would
 * wait behind it, and only one such read would be at the disk at a time. Lower layers do not
 * change while mounted, so a listing read early is as good as one read at the reply; the upper
 * layer's, which changes, is always read at the reply.
 */
export class ListingsAhead {
  readonly #ready = new Map<string, { names: string[]; numbers: Float64Array }>()
  readonly #reading = new Map<string, Promise<void>>()
  /** The names the listings in #ready hold. */
  #readyNames = 0
  /** Listings read ahead that a listing took. */
  taken = 0
  readonly #maxReadyNames: number

  constructor(maxReadyNames = MAX_READY_NAMES) {
    this.#maxReadyNames = maxReadyNames
  }

  /** Reads `dir`'s lower layers' listings that are neither read nor being read: a promise that
   *  settles (never rejects) once all of them are, or undefined when there is none to wait for. A
   *  listing that fails, or that finds MAX_READING reads in flight, is left to the synchronous
   *  read (which reports a failure). */
  read(dir: Entry): Promise<void> | undefined {
    let waits: Promise<void>[] | undefined
    for (const layer of dir.dirLayers) {
      if (layer.writable) continue
      const path = layer.path(dir.path)
      if (typeof path !== 'string' || this.#ready.has(path)) continue
      let reading = this.#reading.get(path)
      if (!reading) {
        if (this.#reading.size >= MAX_READING) break
        reading = listDir(path, true).then(
          (read) => {
            // A reader that gave up leaves its listings behind: the oldest go.
            this.#readyNames += read.names.length
            this.#ready.set(path, read)
            for (const [old, gone] of this.#ready) {
              if (this.#readyNames <= this.#maxReadyNames || old === path) break
              this.#ready.delete(old)
              this.#readyNames -= gone.names.length
            }
          },
          () => undefined,
        ).finally(() => this.#reading.delete(path))
        this.#reading.set(path, reading)
      }
      ;(waits ??= []).push(reading)
    }
    return waits && (waits.length === 1 ? waits[0] : Promise.all(waits).then(() => undefined))
  }

  /** The listing read ahead for `path`, which it hands over. */
  take(path: HostPath): { names: string[]; numbers: Float64Array } | undefined {
    if (typeof path !== 'string') return undefined
    const read = this.#ready.get(path)
    if (read) {
      this.#ready.delete(path)
      this.#readyNames -= read.names.length
      this.taken++
    }
    return read
  }
}

/** Listings being read ahead at most, and names in those read and not yet taken (about 130 bytes
 *  each, with their numbers), beyond the one just read. */
const MAX_READING = 64
const MAX_READY_NAMES = 100_000

export function mergeListings(dir: Entry, listings: Listings): string[] {
  const seen = new Set<string>()
  const hidden = new Set<string>()
  const names: string[] = []
  for (const layer of dir.dirLayers) {
    const listing = listings.get(layer)
    if (!listing) continue
    const hides: string[] = []
    for (const name of listing.names) {
      if (name.startsWith(WHITEOUT_PREFIX)) {
        const target = name === OPAQUE_MARKER ? undefined : whiteoutTarget(name)
        if (target !== undefined) hides.push(target)
        continue
      }
      if (seen.has(name) || hidden.has(name)) continue
      if (listing.isWhiteout(name)) {
        hides.push(name)
        continue
      }
      seen.add(name)
      names.push(name)
    }
    for (const name of hides) hidden.add(name)
  }
  return names.sort()
}

/** A directory's names in the order readdir gives them, and the file each stands for. */
export interface DirOrder {
  readonly size: number
  /** The place of `name` in the order, or -1. */
  indexOf(name: string): number
  /** The host path of the regular file at place `i`, or undefined (not a file, gone). */
  file(i: number): HostPath | undefined
}

/** The place of `name` in `names`, sorted as mergeListings sorts them (by UTF-16 code units), or -1. */
export function sortedIndexOf(names: readonly string[], name: string): number {
  let lo = 0
  let hi = names.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (names[mid]! < name) lo = mid + 1
    else hi = mid
  }
  return lo < names.length && names[lo] === name ? lo : -1
}
