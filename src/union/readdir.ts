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
import { ST, ST_FIELDS, listDirSync } from '../sys/native.js'
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

  constructor(path: HostPath, withStats: boolean) {
    const { names, numbers } = listDirSync(path, withStats)
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
 *  directory, cost less than the thread-pool round trip that would carry them. */
export function listLayers(dir: Entry, withStats: boolean): Listings {
  const listings: Listings = new Map()
  for (const layer of dir.dirLayers) {
    try {
      listings.set(layer, new LayerListing(layer.path(dir.path), withStats))
    } catch (err) {
      if (!isCode(err, 'ENOENT', 'ENOTDIR')) throw err
    }
  }
  return listings
}

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
