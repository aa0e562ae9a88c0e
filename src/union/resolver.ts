/**
 * The resolver turns a merged-view path into an Entry, layer by layer, and caches the answer (negative
 * answers too) in a bounded LRU, so memory stays flat however many files are walked.
 *
 * Lookup of NAME in a directory D walks D's contributing layers from the top:
 * - a whiteout (char 0/0, or a `.wh.NAME` file beside it) ends the walk: the name is gone;
 * - a non-directory wins if nothing was found above it, and hides everything below it;
 * - directories merge down until one is opaque (xattr or `.wh..wh..opq`) or a non-directory or
 *   whiteout interrupts the chain.
 * A layer contributes to a directory only where that directory exists as a real directory in it (lstat,
 * never stat): symlinks inside a layer are never followed.
 *
 * Exactness: every namespace change goes through set/invalidate. Lookups and changes are each one
 * synchronous step on the JavaScript thread (see core.ts), so no lookup can straddle a change and
 * store a stale answer.
 */
import { LRUCache } from 'lru-cache'
import { Layer, joinPath, splitPath } from '../layers/layer.js'
import { OPAQUE_MARKER, WHITEOUT_PREFIX, hasOpaqueXattr, isWhiteoutMode, markerAt } from '../layers/whiteout.js'
import { byteLength, type HostPath } from '../sys/names.js'
import { ST, ST_FIELDS, listNamesSync, lstatIfAny } from '../sys/native.js'
import { type Entry, type Kind, NO_LAYERS, kindOfMode } from './entry.js'
import type { LayerListing, Listings } from './readdir.js'
import { fsError } from './errors.js'
import { GrowingLru } from './growing-lru.js'

/** Stands for "no such name" in the cache (lru-cache values cannot be undefined). */
const MISSING = Object.freeze({ missing: true as const })
/** "No such name", and the upper layer holds nothing by that name either: no whiteout, no `.wh.`
 *  marker (or no directory at all there yet; or no lower one below it, for which a marker would
 *  mean anything). A create there needs no look at the upper layer. */
const CLEAR = Object.freeze({ missing: true as const })
type Cached = Entry | typeof MISSING | typeof CLEAR

export const NAME_MAX = 255

/** How many lower-directory names the resolver keeps (see #lowerNames): a few MiB. */
const LOWER_NAMES_MAX = 100_000
/** A directory with more names than this is probed name by name. */
const LOWER_DIR_MAX = 20_000
/** How many upper directories the resolver knows to hold no `.wh.` file (see #markerFree). */
const MARKER_FREE_MAX = 65_536

export interface ResolverStats {
  hits: number
  misses: number
  negativeHits: number
  size: number
  /** Lower directories whose names are held (see #lowerNames). */
  lowerDirs: number
}

export class Resolver {
  readonly #layers: Layer[]
  /** The answers of lookups by merged path, negative ones included. */
  readonly #cache: GrowingLru<string, Cached>
  /**
   * The names in lower layers' directories, by layer index and directory. A lower layer
   * never changes, so a set read once stays exact and needs no invalidation: a name it lacks costs
   * a lookup no syscall in that layer (fuse-overlayfs keeps whole directories in memory for the
   * same reason). A directory is read once a second name was found missing there (#missedIn).
   * Bounded by the names held.
   */
  readonly #lowerNames = new LRUCache<string, Set<string>>({ maxSize: LOWER_NAMES_MAX, sizeCalculation: (names) => names.size + 1 })
  /** Lower directories probed once and not read yet ('once'), or not to be read: too big to keep,
   *  or unreadable ('never'). */
  readonly #probed = new LRUCache<string, 'once' | 'never'>({ max: 1024 })
  /** Answers that must outlive the cache: copy-ups whose names are not on disk yet, and the old
   *  names of deferred renames (Core.defer, Core.deferMove). Looked up from the disk, such a name
   *  would show the lower object again. */
  readonly #pinned = new Map<string, Cached>()
  /**
   * Upper directories this union made (copied up, or made by mkdir) while its whiteouts are char
   * devices: no `.wh.` file can be in one, so a probe there looks for none (a rename of lower
   * files into fresh copies of their directories lstat'ed one per name). By path, so a directory
   * rename forgets both subtrees (invalidateTree); bounded, an evicted one is probed as any other.
   * Off for good once the union writes a `.wh.` file (markersWritten).
   */
  readonly #markerFree = new GrowingLru<string, true>(MARKER_FREE_MAX)
  #markersWritten = false
  /** See probedStat. */
  #justProbed: Entry | undefined
  #hits = 0
  #misses = 0
  #negativeHits = 0

  constructor(layers: Layer[], maxEntries: number) {
    this.#layers = layers
    this.#cache = new GrowingLru<string, Cached>(Math.max(16, maxEntries))
  }

  get stats(): ResolverStats {
    return { hits: this.#hits, misses: this.#misses, negativeHits: this.#negativeHits, size: this.#cache.size, lowerDirs: this.#lowerNames.size }
  }

  /** The entry at `rel`, or undefined when nothing is there. Throws ENOTDIR when a parent is not a
   *  directory, ENAMETOOLONG for an over-long component. Synchronous, as every probe is (probeName). */
  resolve(rel: string): Entry | undefined {
    this.#justProbed = undefined
    const cached = this.#cache.get(rel)
    if (cached !== undefined) {
      if ('missing' in cached) {
        this.#negativeHits++
        return undefined
      }
      this.#hits++
      return cached
    }
    this.#misses++
    const pinned = this.#pinned.get(rel)
    const found = pinned ?? (rel === '' ? this.#root() : this.#lookup(rel))
    this.#cache.set(rel, found)
    if ('missing' in found) return undefined
    // A non-directory's walk ends at the lstat that found it (see #walk).
    if (!pinned && found.kind !== 'dir') this.#justProbed = found
    return found
  }

  /** The lstat numbers of `entry` when the last resolve call returned it after looking it up by an
   *  lstat (a non-directory, not from the cache): its attributes without a second lstat. Valid until
   *  the next resolve or probe. */
  probedStat(entry: Entry): Float64Array | undefined {
    return this.#justProbed === entry ? probeStat : undefined
  }

  /** Whether anything is known of `rel` without a probe (cached or pinned, found or missing). */
  isCached(rel: string): boolean {
    return this.#cache.has(rel) || this.#pinned.has(rel)
  }

  /** Whether `rel` is known to be free in the upper layer too (see CLEAR); false when unknown. */
  upperClear(rel: string): boolean {
    return this.#cache.peek(rel) === CLEAR
  }

  /** Like resolve, but a missing entry is ENOENT. */
  get(rel: string): Entry {
    const entry = this.resolve(rel)
    if (!entry) throw fsError('ENOENT', rel)
    return entry
  }

  /** Record what a change made of `rel` (undefined: the name is now gone). */
  set(rel: string, entry: Entry | undefined): void {
    this.#cache.set(rel, entry ?? MISSING)
  }

  /** Keep `entry` at its path until unpin, whatever the cache evicts. */
  pin(entry: Entry): void {
    this.#pinned.set(entry.path, entry)
    this.#cache.set(entry.path, entry)
  }

  /** Keep `rel` missing until unpin, whatever the cache evicts. */
  pinMissing(rel: string): void {
    this.#pinned.set(rel, MISSING)
    this.#cache.set(rel, MISSING)
  }

  unpin(rel: string): void {
    this.#pinned.delete(rel)
  }

  /** Record that `rel` is gone and left nothing behind in the upper layer (it had no lower). */
  setFree(rel: string): void {
    this.#cache.set(rel, CLEAR)
  }

  /** Forget `rel` only (a non-directory changed). */
  invalidate(rel: string): void {
    this.#cache.delete(rel)
  }

  /** Forget `rel` and everything below it (a directory moved). O(cache size): it runs only for
   *  renames of directories (an rmdir needs none, see namespace.ts). */
  invalidateTree(rel: string): void {
    if (rel === '') {
      this.#cache.clear()
      this.#markerFree.clear()
      return
    }
    const prefix = rel + '/'
    for (const cache of [this.#cache, this.#markerFree]) {
      for (const key of [...cache.keys()]) {
        if (key === rel || key.startsWith(prefix)) cache.delete(key)
      }
    }
  }

  /** The union made the upper directory `rel` (see #markerFree). */
  madeUpperDir(rel: string): void {
    if (!this.#markersWritten) this.#markerFree.set(rel, true)
  }

  /** The host path of the `.wh.` marker of `name` in the upper directory `dir`, if there is one;
   *  not looked for in a directory known to hold none (see #markerFree). */
  upperMarker(dir: string, name: string): HostPath | undefined {
    const upper = this.#layers[0]
    if (!upper?.writable || this.#markerFree.has(dir)) return undefined
    const path = upper.path(joinPath(dir, WHITEOUT_PREFIX + name))
    return markerAt(path) ? path : undefined
  }

  /** The union wrote a `.wh.` file (it cannot make device nodes): no directory is known free of
   *  them from now on. */
  markersWritten(): void {
    this.#markersWritten = true
    this.#markerFree.clear()
  }

  /** Does a layer below the upper hold `rel` (so removing it must leave a whiteout)? */
  lowerHas(entry: Entry): boolean {
    if (entry.lowerHas !== undefined) return entry.lowerHas
    let found = !entry.layer.writable
    if (!found && entry.path !== '') {
      const [dir, name] = splitPath(entry.path)
      const parent = this.resolve(dir)
      for (const layer of parent?.dirLayers ?? []) {
        if (layer.writable) continue
        const probe = this.#probe(layer, dir, name, true)
        if (probe === 'whiteout') break
        if (probe !== 'absent') {
          found = true
          break
        }
      }
    }
    entry.lowerHas = found
    return found
  }

  #root(): Entry {
    const top = this.#layers[0]
    if (!top) throw fsError('EINVAL', 'no layers')
    return { path: '', kind: 'dir', layer: top, dirLayers: [...this.#layers] }
  }

  #lookup(rel: string): Cached {
    const [dir, name] = splitPath(rel)
    if (byteLength(name) > NAME_MAX) throw fsError('ENAMETOOLONG', rel)
    const parent = this.resolve(dir)
    if (!parent) return MISSING
    if (parent.kind !== 'dir') throw fsError('ENOTDIR', dir)
    return this.#walk(rel, parent, (layer, checkMarker) => this.#probe(layer, dir, name, checkMarker))
  }

  /** probeName, answered from the names of a lower directory when they have been read (read after
   *  the second name found missing there): a name that is not there needs no lstat, and neither
   *  does its `.wh.` marker. A name that is there is lstat'ed for its kind. */
  #probe(layer: Layer, dir: string, name: string, checkMarker: boolean): Probe {
    if (layer.writable) return probeName(layer, dir, name, checkMarker && !this.#markerFree.has(dir))
    const key = `${layer.index}/${dir}`
    const names = this.#lowerNames.get(key)
    if (names) {
      if (names.has(name)) return probeName(layer, dir, name, false)
      return checkMarker && names.has(WHITEOUT_PREFIX + name) ? 'whiteout' : 'absent'
    }
    const probe = probeName(layer, dir, name, checkMarker)
    if (probe === 'absent') this.#missedIn(layer, dir, key)
    return probe
  }

  /**
   * A name was found missing from the lower directory `dir` by lstat: the second time, its names
   * are read and kept (#lowerNames). Only misses count: a name that is there costs its lstat
   * anyway, for its kind, so reading the names of a directory whose files are looked up one by one
   * (`mv` of many lower files, each looked up once) cost more than it saved (the rename workload's
   * daemon spent 7% of its time reading the names of directories it then asked nothing more of).
   */
  #missedIn(layer: Layer, dir: string, key: string): void {
    const probed = this.#probed.get(key)
    if (probed !== 'once') {
      if (probed === undefined) this.#probed.set(key, 'once')
      return
    }
    let names: Set<string> | undefined
    try {
      names = new Set(listNamesSync(layer.path(dir)))
    } catch {
      // Unreadable (a directory one may search but not list, say): probed name by name, as before.
    }
    if (!names || names.size > LOWER_DIR_MAX) {
      this.#probed.set(key, 'never')
      return
    }
    this.#probed.delete(key)
    this.#lowerNames.set(key, names)
  }

  /**
   * Fill the cache for the children of `dir` from per-layer listings just taken (readdir hands them
   * over): the same walk as a lookup, with the listings answering what an lstat would, so a
   * directory's entries cost no probe each. Entries already cached are left alone. Returns what
   * resolve would of each name, in order (the listing's caller needs them all: resolving each
   * again built its path a second time and looked it up twice more).
   */
  prime(dir: Entry, names: string[], listings: Listings): Array<Entry | undefined> {
    this.#justProbed = undefined
    const found: Array<Entry | undefined> = new Array(names.length)
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!
      const rel = joinPath(dir.path, name)
      let cached = this.#cache.get(rel)
      if (cached === undefined) {
        cached = this.#pinned.get(rel) ?? this.#walk(rel, dir, (layer, checkMarker) => probeListed(listings.get(layer), name, checkMarker))
        this.#cache.set(rel, cached)
      }
      // Counted as the lookups of a listing's names always were: answered by the cache.
      if ('missing' in cached) this.#negativeHits++
      else {
        this.#hits++
        found[i] = cached
      }
    }
    return found
  }

  /** The lookup walk proper, over the parent's layers, with `probe` telling what the name is in one. */
  #walk(rel: string, parent: Entry, probe: (layer: Layer, checkMarker: boolean) => Probe): Cached {
    // Marker names are how layers encode deletions; they are never entries of the merged view.
    if (splitPath(rel)[1].startsWith(WHITEOUT_PREFIX)) return MISSING
    let entry: Entry | undefined
    const layers = parent.dirLayers
    // Without the directory in the upper layer, nothing of the name is there either.
    let clear = !layers[0]?.writable
    for (let i = 0; i < layers.length; i++) {
      const layer = layers[i]!
      const last = i === layers.length - 1
      const kind = probe(layer, !last)
      if (kind === 'absent') {
        // Markers were looked for, or (the upper layer alone) would hide nothing.
        if (i === 0 && layer.writable) clear = true
        continue
      }
      if (kind === 'whiteout') break
      if (!entry) {
        if (kind !== 'dir') {
          entry = { path: rel, kind, layer, dirLayers: NO_LAYERS }
          break
        }
        entry = { path: rel, kind, layer, dirLayers: [] }
      } else if (kind !== 'dir') {
        break // a non-directory below a directory ends the merge
      }
      entry.dirLayers.push(layer)
      if (!last && isOpaqueIn(layer, rel, layer.writable && this.#markerFree.has(rel))) break
    }
    return entry ?? (clear ? CLEAR : MISSING)
  }
}

type Probe = 'absent' | 'whiteout' | Kind

/**
 * What `dir/name` is in one layer. `checkMarker`: also look for a `.wh.name` file (pointless in the
 * bottom layer, where nothing is left to hide).
 *
 * Synchronous on purpose: a lookup makes one to three lstats per layer of inodes the kernel almost
 * always has cached; run on the thread pool, each would cost a round trip several times the syscall,
 * and absent names (most probes) would each build an Error. throwIfNoEntry answers ENOENT with
 * undefined instead.
 */
function probeName(layer: Layer, dir: string, name: string, checkMarker: boolean): Probe {
  if (lstatIfAny(layer.path(joinPath(dir, name)), probeStat)) return probeKind(probeStat, 0)
  if (!checkMarker) return 'absent'
  return markerAt(layer.path(joinPath(dir, WHITEOUT_PREFIX + name))) ? 'whiteout' : 'absent'
}

/** probeName's lstat numbers: one array, read before the next probe. */
const probeStat = new Float64Array(ST_FIELDS)

/** What the lstat numbers at `at` in `st` show: a whiteout, or an object of some kind. */
function probeKind(st: Float64Array, at: number): Probe {
  const mode = st[at + ST.MODE]!
  return isWhiteoutMode(mode, st[at + ST.RDEV]!) ? 'whiteout' : kindOfMode(mode)
}

/** probeName answered from a listing, which holds every name's kind, and a char device's rdev
 *  (readdir.ts). */
function probeListed(listing: LayerListing | undefined, name: string, checkMarker: boolean): Probe {
  const at = listing ? listing.offsetOf(name) : -1
  if (at < 0) return checkMarker && listing?.has(WHITEOUT_PREFIX + name) ? 'whiteout' : 'absent'
  return probeKind(listing!.numbers, at)
}

/** `markerFree`: the directory holds no `.wh.` file, `.wh..wh..opq` included (see #markerFree). */
function isOpaqueIn(layer: Layer, rel: string, markerFree: boolean): boolean {
  return hasOpaqueXattr(layer.path(rel)) || (!markerFree && markerAt(layer.path(joinPath(rel, OPAQUE_MARKER))))
}
