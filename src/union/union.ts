/**
 * Union: the merged view of a layer stack, as a set of syscall-named operations on paths. It knows
 * nothing of FUSE; the kernel bridge (src/fuse) and the tests drive it alike.
 *
 *   const union = await Union.open({ lowers: ['/img/top', '/img/base'], upper: '/c/upper', work: '/c/work' })
 *   const fh = await union.open('/etc/hosts', O_WRONLY)   // copies /etc/hosts up
 *
 * Paths are merged-view paths ('/a/b', as FUSE gives them). Errors carry an errno name (`.code`).
 */

import { closeSync, constants, mkdirSync, openSync, readdirSync, realpathSync, rmSync, rmdirSync, statSync, statfsSync } from 'node:fs'
import { isAbsolute, join, relative, resolve, sep } from 'node:path'
import { layerRoot, readMountinfo, releaseRoot } from '../layers/held-root.js'
import { Layer, joinPath, relPath, splitPath } from '../layers/layer.js'
import type { HostPath } from '../sys/names.js'
import { ST, flockNowaitSync, lremovexattrSync, prefetch, readlinkSync, type TimeNs } from '../sys/native.js'
import { ACCESS_ACL, DEFAULT_ACL } from './acl.js'
import * as attrs from './attrs.js'
import { Stager } from './copy-up.js'
import { Core, type Counters } from './core.js'
import { type Entry, NO_LAYERS, inUpper } from './entry.js'
import { fsError, isCode } from './errors.js'
import * as files from './files.js'
import type { Handle } from './handles.js'
import * as names from './namespace.js'
import { type DirOrder, ListingsAhead, listLayers, mergeListings, mergedNames, sortedIndexOf } from './readdir.js'
import { NAME_MAX, type ResolverStats } from './resolver.js'

export type { Attr, AttrChange } from './attrs.js'
export type { Owner } from './namespace.js'

export interface UnionOptions {
  /** Lower layer directories, topmost first (overlayfs `lowerdir=` order). */
  lowers: string[]
  upper?: string
  work?: string
  /** Bound of the lookup cache, in entries (positive and negative). */
  cacheEntries?: number
  /** fsync each copy-up before it becomes visible (overlayfs does; `volatile` turns it off). */
  fsync?: boolean
  /** Copy up metadata only for metadata changes (overlayfs `metacopy=on`, same on-disk marks). */
  metacopy?: boolean
  /** Rename directories with lower layers too (overlayfs `redirect_dir=on`), copying up their trees
   *  first (namespace.ts, movableDir); else EXDEV. Default: as `metacopy`, as overlayfs's. */
  redirectDir?: boolean
  /** With fsync on: answer an open, setattr or rename that copies a lower file up before the copy
   *  is flushed, flush copies in batches (one syncfs each) and name them after; callers that need
   *  the name (link, xattr writes, a rename of a big file) share those flushes. The owner must call
   *  flush() before it exits. See Core.#defer and Core.deferMove. */
  flushBehind?: boolean
  /** With flushBehind: how long a copy waits for others to share its flush, in milliseconds (20). */
  flushWindowMs?: number
  /** The caller maps ids itself (uidmapping, gidmapping): a lower layer on an idmapped mount is read
   *  through a mount that shows its ids as stored, where one reaches it (see layers/held-root.ts). */
  unmappedLowers?: boolean
  /** Told what is odd but not fatal (an upperdir or workdir another union holds). */
  onWarning?: (message: string) => void
}

export interface DirEntry {
  name: string
  attr: attrs.Attr
  /** readdirPlusSync with `sources`: where a copy of a lower object may be made outside the union
   *  (see copyBehind), or where a directory only in the upper layer is (CopySource.sole). */
  src?: CopySource
}

/** A lower object a copy may be made of outside the union (see Union.copyBehind): a small file
 *  (`src`, its host path), or a directory (`src`, and `dst`, the host path its copy takes); or
 *  (`sole`) a directory only in the upper layer, whose attributes are its own lstat at `dst`. */
export interface CopySource {
  src: HostPath
  dst?: HostPath
  /** With `dst` and `src` '': a directory in the upper layer, at `dst`, only there (see
   *  #copySource); without, one there that merges with lower ones. */
  sole?: true
  /** A lower directory only in `src`'s layer: it shows its own link count (a merged one shows 1). */
  lone?: true
  /** Without `dst`, what else `src` may be (see #copySource): 'upper', the file itself, in the
   *  upper layer, never copied; 'held', a lower file never copied outside the union. Else a lower
   *  file that may be. */
  file?: 'upper' | 'held'
}

export interface StatFs {
  bsize: number
  frsize: number
  blocks: number
  bfree: number
  bavail: number
  files: number
  ffree: number
  namemax: number
}

export interface UnionStats {
  cache: ResolverStats
  copyUps: Counters
  openFiles: number
  /** Copy-ups answered and not yet flushed and named (flushBehind). */
  deferredCopies: number
  /** Files read ahead (prefetch), counted once read. */
  prefetched: number
  /** Read-aheads that failed as a whole (a file that cannot be read is only left out). */
  prefetchFailures: number
  /** Lower layers' listings read on the thread pool and taken by a listing (readAhead). */
  listingsAhead: number
}

/** A directory's attributes as readdirPlusSync gives '.' and '..' with `dotsByIno`: its inode number
 *  and type, nothing else. */
function dotAttr(ino: number): attrs.Attr {
  return {
    ino, mode: constants.S_IFDIR, nlink: 0, uid: 0, gid: 0, rdev: 0, size: 0, blksize: 0, blocks: 0,
    atimeSec: 0, atimeNsec: 0, mtimeSec: 0, mtimeNsec: 0, ctimeSec: 0, ctimeNsec: 0,
  }
}

/** The work directory's scratch area; the same name overlayfs uses, so either can clean up after the other. */
const WORK_SUBDIR = 'work'

/**
 * A default ACL on the work directory is inherited by the scratch area made in it, and from there,
 * as an access ACL, by every copy made in it: a copied-up file gained entries its lower file never
 * had. overlayfs removes both ACLs from its work directory when it makes it; so does this.
 */
function dropAcls(dir: HostPath): void {
  for (const name of [DEFAULT_ACL, ACCESS_ACL]) {
    try {
      lremovexattrSync(dir, name)
    } catch (err) {
      if (!isCode(err, 'ENODATA', 'EOPNOTSUPP', 'ENOTSUP')) throw err
    }
  }
}

export class Union {
  readonly #core: Core
  /** Open on the upperdir and workdir, each holding an exclusive flock(2) (see claimDir). */
  readonly #claims: number[]
  readonly #ahead = new ListingsAhead()
  /** See UnionStats.prefetched. */
  #prefetched = 0
  #prefetchFailures = 0

  private constructor(core: Core, claims: number[]) {
    this.#core = core
    this.#claims = claims
  }

  /** Check the directories and open the stack. Throws an Error with a one-line reason. */
  static async open(options: UnionOptions): Promise<Union> {
    if (options.lowers.length === 0) throw new Error('at least one lower layer is needed')
    const lowers: string[] = []
    for (const dir of options.lowers) lowers.push(requireDir(resolve(dir), 'lower layer').path)
    const claims: number[] = []
    try {
      const top = options.upper !== undefined || options.work !== undefined ? openUpper(options, lowers, claims) : undefined
      const layers: Layer[] = top ? [top.layer] : []
      // A lower layer on an idmapped mount is held open: its mount may be detached under us.
      const mountinfo = readMountinfo()
      for (const dir of lowers) layers.push(new Layer(layerRoot(dir, mountinfo, options.unmappedLowers), layers.length, false))
      const core = new Core(layers, top?.stager, options.cacheEntries ?? 100_000, options.metacopy ?? false)
      core.flushBehind = options.flushBehind ?? false
      core.redirectDir = options.redirectDir ?? core.metacopy
      if (options.flushWindowMs !== undefined) core.flushWindowMs = options.flushWindowMs
      return new Union(core, claims)
    } catch (err) {
      for (const fd of claims) closeSync(fd)
      throw err
    }
  }

  /** Flush and name every copy-up still waiting for its flush (flushBehind), and delete the removed
   *  directories still set aside (Trash), on the calling thread: the daemon does it as it exits. */
  flush(): void {
    this.#core.settleAll()
    if (this.#core.upper) this.#core.trash.emptySync()
  }

  /** Flush as `flush` does, let the deletions and the syncfs still running end, and close every
   *  descriptor the union holds: the handles left open, the upper layer's root, the layers held
   *  open. For a program that uses a union in-process and then unmounts or removes its layers (the
   *  daemon exits instead). The union is not to be used afterwards. */
  async close(): Promise<void> {
    this.#core.settleAll()
    if (this.#core.upper) await this.#core.trash.close()
    await this.#core.close()
    for (const layer of this.#core.layers) releaseRoot(layer.root)
    for (const fd of this.#claims.splice(0)) closeSync(fd)
  }

  /** The relative path of `path`, with any deferred copy-up at it named first (see Core.#defer): for
   *  the operations that need the object by its name. */
  #named(path: string): string {
    const rel = relPath(path)
    this.#core.settle(rel)
    return rel
  }

  /** #named, for every deferred copy-up at or below `path` (an operation that moves or removes a
   *  directory). */
  #namedTree(path: string): string {
    const rel = relPath(path)
    this.#core.settle(rel, true)
    return rel
  }

  get readOnly(): boolean {
    return this.#core.upper === undefined
  }

  stats(): UnionStats {
    const core = this.#core
    return { cache: core.resolver.stats, copyUps: { ...core.counters }, openFiles: core.handles.size, deferredCopies: core.deferredCopies, prefetched: this.#prefetched, prefetchFailures: this.#prefetchFailures, listingsAhead: this.#ahead.taken }
  }

  // The read side never waits: getattr, readlink, readdir, statfs, xattr reads, opens that need no
  // copy-up and releases each come in a synchronous form (…Sync, tryOpen), answered on the calling
  // thread from the lookup cache and a few syscalls on inodes the kernel has cached. The FUSE bridge
  // answers those requests without a promise; the async forms are for everyone else.

  getattrSync(path: string): attrs.Attr {
    return attrs.attrOf(this.#core.resolver.get(relPath(path)))
  }

  async getattr(path: string): Promise<attrs.Attr> {
    return this.getattrSync(path)
  }

  /** getattrSync(path).ino, with no lstat where a copy's origin tells it. */
  shownInoSync(path: string): number {
    return attrs.shownIno(this.#core.resolver.get(relPath(path)))
  }

  /** getattr for a name that may well be absent (a lookup): undefined then, with no error built. */
  lookupSync(path: string): attrs.Attr | undefined {
    const resolver = this.#core.resolver
    const entry = resolver.resolve(relPath(path))
    if (!entry) return undefined
    const probed = resolver.probedStat(entry)
    return probed ? attrs.attrFrom(entry, probed, 0) : attrs.attrOf(entry)
  }

  /** Whether the directory `path` holds a name the disk does not show as the union does yet. */
  unwrittenInSync(path: string): boolean {
    return this.#core.unwrittenIn(relPath(path))
  }

  /** Whether the disk does not show the name `path` as the union does yet (Core.unwritten). */
  unwrittenSync(path: string): boolean {
    return this.#core.unwritten(relPath(path))
  }

  /** Whether the object at `path` is in the upper layer (made or copied up there), not only below. */
  isUpperSync(path: string): boolean {
    return inUpper(this.#core.resolver.get(relPath(path)))
  }

  readlinkSync(path: string): string {
    const entry = this.#core.resolver.get(relPath(path))
    if (entry.kind !== 'symlink') throw fsError('EINVAL', path)
    return readlinkSync(entry.layer.path(entry.path))
  }

  async readlink(path: string): Promise<string> {
    return this.readlinkSync(path)
  }

  /** Sorted names of a directory, without '.' and '..'. */
  async readdir(path: string): Promise<string[]> {
    const rel = relPath(path)
    const entry = this.#core.resolver.get(rel)
    if (entry.kind !== 'dir') throw fsError('ENOTDIR', path)
    this.#core.settleListing(rel)
    return mergedNames(entry)
  }

  /** Names with attributes, '.' and '..' first (what a FUSE readdir with inode numbers needs). */
  async readdirPlus(path: string): Promise<DirEntry[]> {
    return this.readdirPlusSync(path)
  }

  /** Reads the lower layers' listings of the directory at `path` on the thread pool, for the next
   *  readdirPlusSync of it to take (see ListingsAhead): a promise that never rejects, or undefined
   *  when there is nothing to wait for (none to read, or not a directory: the listing says why). */
  readAhead(path: string): Promise<void> | undefined {
    let dir
    try {
      dir = this.#core.resolver.get(relPath(path))
    } catch {
      return undefined
    }
    return dir.kind === 'dir' ? this.#ahead.read(dir) : undefined
  }

  /** readdirPlus on the calling thread. `dotsByIno`: '.' and '..' carry their inode numbers and
   *  type only, all that a listing gives of them, and the kernel takes (no lstat of each where the
   *  inode numbers are known: two fewer per directory of a walk). */
  readdirPlusSync(path: string, sources = false, dotsByIno = false): DirEntry[] {
    const rel = relPath(path)
    const core = this.#core
    const resolver = core.resolver
    const dir = resolver.get(rel)
    if (dir.kind !== 'dir') throw fsError('ENOTDIR', path)
    this.#core.settleListing(rel)
    // The listings that give the names also answer the lookups of the children (resolver.prime).
    const listings = listLayers(dir, true, this.#ahead)
    const list = mergeListings(dir, listings)
    const entries = resolver.prime(dir, list, listings)
    const parentRel = rel === '' ? '' : rel.slice(0, Math.max(0, rel.lastIndexOf('/')))
    const parent = resolver.get(parentRel)
    const out: DirEntry[] = dotsByIno
      ? [{ name: '.', attr: dotAttr(attrs.shownIno(dir)) }, { name: '..', attr: dotAttr(attrs.shownIno(parent)) }]
      : [{ name: '.', attr: attrs.attrOf(dir) }, { name: '..', attr: attrs.attrOf(parent) }]
    for (let i = 0; i < list.length; i++) {
      const name = list[i]!
      const entry = entries[i]
      if (!entry) continue
      // The listing of the entry's own layer has its numbers; an entry cached from elsewhere (an
      // older lookup) is stat'ed afresh.
      const listing = listings.get(entry.layer)
      const at = listing ? listing.statsOffset(name) : -1
      if (at >= 0) {
        const attr = attrs.attrFrom(entry, listing!.numbers, at)
        const src = sources ? this.#copySource(entry, attr) : undefined
        out.push(src ? { name, attr, src } : { name, attr })
        continue
      }
      try {
        out.push({ name, attr: attrs.attrOf(entry) })
      } catch {
        // Listed, but gone before its lstat (removed behind the union's back): skip it.
      }
    }
    return out
  }

  async statfs(): Promise<StatFs> {
    return this.statfsSync()
  }

  statfsSync(): StatFs {
    const top = this.#core.layers[0]!
    const st = statfsSync(top.root)
    return {
      bsize: st.bsize, frsize: st.bsize, blocks: st.blocks, bfree: st.bfree, bavail: st.bavail,
      files: st.files, ffree: st.ffree, namemax: NAME_MAX,
    }
  }

  /** `tried`: the caller's tryOpen of the same open just returned undefined, with nothing run since
   *  (see files.open). */
  open(path: string, flags: number, tried = false): Promise<number> {
    return files.open(this.#core, relPath(path), flags, tried)
  }

  /** open when no copy-up is needed (the fh), else undefined: call open then. `alone`, here and in
   *  the other try… methods: the caller is the only request its daemon has, so a small copy-up
   *  that ends in a disk flush may run on this thread (the flush delays nobody, and the trip to the
   *  thread pool is saved). */
  tryOpen(path: string, flags: number, alone = false): number | undefined {
    return files.tryOpen(this.#core, relPath(path), flags, alone)
  }

  async create(path: string, mode: number, owner?: names.Owner): Promise<number> {
    return this.createSync(path, mode, owner)
  }

  createSync(path: string, mode: number, owner?: names.Owner): number {
    return files.create(this.#core, this.#named(path), mode, owner)
  }

  /** O_TMPFILE: a new file with no name in the directory `dir`, open read-write: its handle, and its
   *  attributes as a new file's (one link: the kernel takes it away itself). */
  createUnnamedSync(dir: string, mode: number, owner?: names.Owner): { fh: number; attr: attrs.Attr } {
    return files.createUnnamed(this.#core, relPath(dir), mode, owner)
  }

  /** An open handle: its fd (opened on first use for a lower file), whether its file is the complete
   *  upper copy (false: a lower file, or the lower data of a metadata-only copy), and, as when it was
   *  opened, whether it had one name, its size, whether it was setuid/setgid and its filesystem. */
  openFile(fh: number): Readonly<Handle> {
    return files.openFile(this.#core, fh)
  }

  /**
   * The directory at `path` as readdir gives it (see ReadAhead): its names in order, and for each
   * the host path of the regular file it shows. Kinds only: this runs because the disk is cold, and
   * stat'ing every entry here would wait for it. Undefined when it is gone or not a directory.
   */
  dirOrder(path: string): DirOrder | undefined {
    let dir: Entry
    let listings: ReturnType<typeof listLayers>
    let list: string[]
    try {
      dir = this.#core.resolver.get(relPath(path))
      if (dir.kind !== 'dir') return undefined
      listings = listLayers(dir, false)
      list = mergeListings(dir, listings)
    } catch {
      return undefined // gone or unreadable: nothing to read ahead
    }
    return {
      size: list.length,
      indexOf: (name) => sortedIndexOf(list, name),
      file: (i) => {
        const name = list[i]
        if (name === undefined) return undefined
        // The topmost layer that lists the name shows it (a whiteout would have hidden it from the list).
        const layer = dir.dirLayers.find((l) => listings.get(l)?.has(name))
        return layer && listings.get(layer)!.isFile(name) ? layer.path(joinPath(dir.path, name)) : undefined
      },
    }
  }

  /** Reads the regular files at `paths` of at most `maxSize` bytes into the page cache, on the
   *  thread pool: how many of them were not cached (never rejects). Errors are left to the reads
   *  that follow. */
  prefetch(paths: HostPath[], maxSize: number): Promise<number> {
    return prefetch(paths, maxSize).then(({ read, cold }) => {
      this.#prefetched += read
      return cold
    }, () => {
      this.#prefetchFailures++
      return 0
    })
  }

  /** The host path of the regular file shown at `path` (its data's, for reading ahead), or
   *  undefined: not a regular file, or gone. */
  filePathSync(path: string): HostPath | undefined {
    try {
      const entry = this.#core.resolver.get(relPath(path))
      return entry.kind === 'file' ? entry.layer.path(entry.path) : undefined
    } catch {
      return undefined
    }
  }

  /**
   * Clear setuid, and setgid where the kernel would, after a write, truncate or O_TRUNC open by a
   * process without CAP_FSETID (`inGroup`: whether it is in a group): by handle when there is one,
   * else by name (the file is in the upper layer by then). Whether the mode changed.
   */
  clearSetidSync(path: string | undefined, fh: number | undefined, inGroup: (gid: number) => boolean): boolean {
    if (fh !== undefined) return files.clearSetid(this.#core, fh, inGroup)
    if (path === undefined) throw new Error('clearSetid: neither a name nor a handle')
    const attr = this.getattrSync(path)
    const mode = files.modeWithoutSetid(attr.mode, attr.gid, inGroup)
    if (mode === (attr.mode & 0o7777)) return false
    if (!this.trySetattr(path, { mode })) throw new Error(`clearSetid: ${path} is not in the upper layer`)
    return true
  }

  /** Attributes of an open file by handle (its name may be gone), shown with inode number `ino`:
   *  by default the file's own, as a file made through the mount shows it (it has no origin; a
   *  create's reply takes its attributes so, without walking the path again). */
  async fgetattr(fh: number, ino?: number): Promise<attrs.Attr> {
    return this.fgetattrSync(fh, ino)
  }

  fgetattrSync(fh: number, ino?: number): attrs.Attr {
    const st = files.fstatNumbers(this.#core, fh)
    return attrs.attrOfNumbers(st, 0, ino ?? st[ST.INO]!, st[ST.NLINK]!)
  }

  /** read when the page cache has the bytes, or when it is small and `waitForDisk` allows reading
   *  it from the disk on the calling thread (the count); else undefined: call read then. */
  tryRead(fh: number, buffer: Buffer, length: number, position: number, waitForDisk = true): number | undefined {
    return files.tryRead(this.#core, fh, buffer, length, position, waitForDisk)
  }

  /**
   * The first `length` bytes of an open file, whole (for handing them to the kernel): from the page
   * cache, or, when `waitForDisk`, from the disk on the calling thread. `uncached` is called when
   * they are not cached (before the wait). undefined when not cached and not to be waited for. Also tells whether this read moved the
   * file's atime (the kernel, which caches it, then needs telling).
   */
  readHead(fh: number, buffer: Buffer, length: number, waitForDisk: boolean, uncached: () => void): files.Head | undefined {
    return files.readHead(this.#core, fh, buffer, length, waitForDisk, uncached)
  }

  read(fh: number, buffer: Buffer, length: number, position: number): Promise<number> {
    return files.read(this.#core, fh, buffer, length, position)
  }

  write(fh: number, buffer: Buffer, length: number, position: number): Promise<number> {
    return files.write(this.#core, fh, buffer, length, position)
  }

  /** write when it cannot stall the calling thread (the count), else undefined: call write then. */
  tryWrite(fh: number, buffer: Buffer, length: number, position: number): number | undefined {
    return files.tryWrite(this.#core, fh, buffer, length, position)
  }

  ftruncate(fh: number, size: number): Promise<void> {
    return files.ftruncate(this.#core, fh, size)
  }

  /** lseek(2) with SEEK_DATA or SEEK_HOLE on an open file (see files.seek). */
  seek(fh: number, offset: number, whence: number): Promise<number> {
    return files.seek(this.#core, fh, offset, whence)
  }

  /** fallocate(2) on an open file (FALLOC_FL_* in `mode`). */
  fallocate(fh: number, mode: number, offset: number, length: number): Promise<void> {
    return files.fallocate(this.#core, fh, mode, offset, length)
  }

  /** fsync on the calling thread: for a caller that has nothing else to do meanwhile. */
  fsyncSync(fh: number, dataOnly: boolean): void {
    files.fsyncSync(this.#core, fh, dataOnly)
  }

  fsync(fh: number, dataOnly: boolean): Promise<void> {
    return files.fsync(this.#core, fh, dataOnly)
  }

  async release(fh: number): Promise<void> {
    this.releaseSync(fh)
  }

  releaseSync(fh: number): void {
    files.release(this.#core, fh)
  }

  /** setattr's changes at once, when they need no copy-up: true if done, false to call setattr.
   *  `fh`: truncate through this open handle. */
  trySetattr(path: string, change: attrs.AttrChange, fh?: number, alone = false): boolean {
    return attrs.trySetattr(this.#core, relPath(path), change, this.#truncateFd(fh), alone)
  }

  /** chmod, chown, truncate (or ftruncate through `fh`) and utimens in one, copying up as needed. */
  setattr(path: string, change: attrs.AttrChange, fh?: number): Promise<void> {
    return attrs.setattr(this.#core, relPath(path), change, this.#truncateFd(fh))
  }

  #truncateFd(fh: number | undefined): ((size: number) => void) | undefined {
    const core = this.#core
    return fh === undefined ? undefined : (size) => files.ftruncateNow(core, fh, size)
  }

  truncate(path: string, size: number): Promise<void> {
    return attrs.truncate(this.#core, relPath(path), size)
  }

  chmod(path: string, mode: number): Promise<void> {
    return attrs.chmod(this.#core, relPath(path), mode)
  }

  chown(path: string, uid: number, gid: number): Promise<void> {
    return attrs.chown(this.#core, relPath(path), uid, gid)
  }

  /** Times in ns since the epoch; null leaves one unchanged, 'now' sets the current time. */
  utimens(path: string, atime: TimeNs, mtime: TimeNs): Promise<void> {
    return attrs.utimens(this.#core, relPath(path), atime, mtime)
  }

  async getxattr(path: string, name: string): Promise<Buffer> {
    const value = this.getxattrSync(path, name)
    if (value === undefined) throw fsError('ENODATA', name)
    return value
  }

  /** undefined: no such attribute (ENODATA, without an error built). */
  getxattrSync(path: string, name: string): Buffer | undefined {
    return attrs.getxattr(this.#core, relPath(path), name)
  }

  async listxattr(path: string): Promise<string[]> {
    return this.listxattrSync(path)
  }

  listxattrSync(path: string): string[] {
    return attrs.listxattr(this.#core, relPath(path))
  }

  setxattr(path: string, name: string, value: Buffer, flags = 0): Promise<void> {
    return attrs.setxattr(this.#core, relPath(path), name, value, flags)
  }

  removexattr(path: string, name: string): Promise<void> {
    return attrs.removexattr(this.#core, relPath(path), name)
  }

  // A file with no name left (unlinked while open) is changed and read through an open handle on
  // it (see attrs.fsetattr): a change needs it in the upper layer (else EEXIST, as in overlayfs).

  fsetattrSync(fh: number, change: attrs.AttrChange): void {
    attrs.fsetattr(this.#core, fh, change)
  }

  /** Open a file with no name left again (as /proc/PID/fd/N reopens it), from its open handle `fh`. */
  reopenUnnamedSync(fh: number, flags: number): number {
    return files.reopenUnnamed(this.#core, fh, flags)
  }

  fgetxattrSync(fh: number, name: string): Buffer | undefined {
    return attrs.fgetxattr(this.#core, fh, name)
  }

  flistxattrSync(fh: number): string[] {
    return attrs.flistxattr(this.#core, fh)
  }

  fsetxattrSync(fh: number, name: string, value: Buffer, flags = 0): void {
    attrs.fsetxattr(this.#core, fh, name, value, flags)
  }

  fremovexattrSync(fh: number, name: string): void {
    attrs.fremovexattr(this.#core, fh, name)
  }

  /** A file-attribute ioctl that reads (lsattr's FS_IOC_GETFLAGS, FS_IOC_FSGETXATTR). */
  readFileAttrIoctl(path: string, cmd: number, size: number): Buffer {
    return attrs.readFileAttrIoctl(this.#core, this.#named(path), cmd, size)
  }

  /** A file-attribute ioctl that changes them (chattr's FS_IOC_SETFLAGS, FS_IOC_FSSETXATTR). */
  writeFileAttrIoctl(path: string, cmd: number, arg: Buffer): Promise<void> {
    return attrs.writeFileAttrIoctl(this.#core, this.#named(path), cmd, arg)
  }

  // Namespace changes are synchronous too (…Sync; tryLink and tryRename when no data must be copied
  // up first); the async forms wrap them.

  async mkdir(path: string, mode: number, owner?: names.Owner): Promise<void> {
    this.mkdirSync(path, mode, owner)
  }

  mkdirSync(path: string, mode: number, owner?: names.Owner): void {
    names.mkdir(this.#core, this.#named(path), mode, owner)
  }

  async mknod(path: string, mode: number, rdev: number, owner?: names.Owner): Promise<void> {
    this.mknodSync(path, mode, rdev, owner)
  }

  mknodSync(path: string, mode: number, rdev: number, owner?: names.Owner): void {
    names.mknod(this.#core, this.#named(path), mode, rdev, owner)
  }

  async symlink(target: string, path: string, owner?: names.Owner): Promise<void> {
    this.symlinkSync(target, path, owner)
  }

  symlinkSync(target: string, path: string, owner?: names.Owner): void {
    names.symlink(this.#core, target, this.#named(path), owner)
  }

  /**
   * Setattrs of small lower files may be answered outside the union, which then adopts their copies
   * (adoptCopySync): where to make them, how big a file may be and how many may wait for their
   * flush now, whether copies may be made with their modes from the start (Stager.exactModes) and
   * whether they are metadata-only ones (metacopy on), or undefined when they may not be made (see
   * Core.copyBehind).
   */
  get copyBehind(): { dir: HostPath; maxSize: number; room: number; exactModes: boolean; meta: boolean } | undefined {
    return this.#core.copyBehind
  }

  /** Where a copy of the object at `path`, with attributes `attr` (as looked up), may be made
   *  outside the union, when it is a lower object copyBehind is for; for a directory in the upper
   *  layer (the root included), its host path there (see #copySource). */
  copyBehindSource(path: string, attr: attrs.Attr): CopySource | undefined {
    const rel = relPath(path)
    const entry = this.#core.resolver.resolve(rel)
    if (!entry || (rel === '' && !entry.layer.writable)) return undefined
    return this.#copySource(entry, attr)
  }

  #copySource(entry: Entry, attr: attrs.Attr): CopySource | undefined {
    const core = this.#core
    if (core.copiesBehind(entry, attr.size, attr.nlink)) return { src: entry.layer.path(entry.path) }
    // Any other lower file (too big, or with other names: a program or library of the image, a
    // file the layer holds hard links of) is copied by the union alone, but its getattrs and xattr
    // reads may be answered outside it, from its host path, which never changes.
    if (core.showsLowerFile(entry)) return { src: entry.layer.path(entry.path), file: 'held' }
    // A file in the upper layer with one name, on the disk as the union shows it (no copy waiting
    // to be named there, nor a rename to be written over it): its getattrs, xattr reads, first
    // open, setattrs of mode, owner and times and an open for writing may be answered outside the
    // union, on its host path, while that path stays its own.
    if (core.showsUpperFile(entry, attr.nlink)) return { src: entry.layer.path(entry.path), file: 'upper' }
    if (entry.kind !== 'dir') return undefined
    // A directory only in the upper layer (made there, or opaque) shows its own lstat: its getattr
    // may be answered outside the union, from its host path, while that path stays its own.
    if (entry.layer.writable && entry.dirLayers.length === 1) return { src: '', dst: entry.layer.path(entry.path), sole: true }
    // One in the upper layer that merges with lower ones shows its upper lstat with one link, as
    // one copied up while mounted does (onDirCopiedUp): the upper layer's from an earlier mount, the
    // mount's root. Such a directory is renamed only with redirect_dir, whose bridge takes the
    // marks of its tree away first (LowLevelBridge.#unmarkLowerTrees): its path stays its own.
    if (entry.layer.writable) return { src: '', dst: entry.layer.path(entry.path) }
    if (core.copiesDirBehind(entry)) {
      const source: CopySource = { src: entry.layer.path(entry.path), dst: core.requireUpper().path(entry.path) }
      if (entry.dirLayers.length === 1) source.lone = true
      return source
    }
    return undefined
  }

  /**
   * Where a name in the directory `path` could be: its host path in the upper layer (made or not),
   * first whenever the union has one, and in each lower layer that contributes to it, down to the
   * first opaque one (C reads the names of those, which never change: native/lower-names.c). A
   * name missing from all of them is missing from the directory, whatever whiteouts say: the FUSE
   * bridge answers such lookups outside the union (native/fuse-ll-cow.c). `movable`: the directory
   * is only in the upper layer, the one kind renamed in place, so the paths hold until a rename
   * moves it or a directory above it. Undefined for anything else, and while a deferred rename has
   * yet to write a name into it (Core.deferMove): the disk does not hold all its names then.
   */
  probeDirsSync(path: string): { dirs: HostPath[]; movable: boolean } | undefined {
    const rel = relPath(path)
    const core = this.#core
    const entry = core.resolver.resolve(rel)
    if (entry?.kind !== 'dir' || core.movesInto(rel)) return undefined
    return { dirs: this.#probeLayers(entry).map((layer) => layer.path(rel)), movable: entry.layer.writable && entry.dirLayers.length === 1 }
  }

  /** The layers of probeDirsSync's host paths for the directory `entry`: the upper layer (whether
   *  the directory is there yet or not), then each it merges. */
  #probeLayers(entry: Entry): Layer[] {
    const upper = this.#core.upper
    return upper && entry.dirLayers[0] !== upper ? [upper, ...entry.dirLayers] : entry.dirLayers
  }

  /**
   * A lower file found outside the union at `depth` of the host paths probeDirsSync gave for its
   * directory (the first lookups of lower files answered in C, native/fuse-ll-cow.c,
   * file_lookup), or with `layers` a lower directory found there, which merges the host paths of
   * those bits (bit `depth` the first: lower_dir_lookup): the lookup cache holds it as the union's
   * own lookup would have found it, unless it knows the name already. Found there, the name is
   * missing from the layers above, whose `.wh.` names for it were looked for as a lookup does, and
   * none of those is opaque (the host paths end at the first opaque one, as the directory's layers
   * do); the directory's layers below were probed as the lookup's walk probes them.
   */
  learnLowerSync(path: string, depth: number, layers?: number): void {
    const rel = relPath(path)
    const resolver = this.#core.resolver
    if (depth <= 0 || resolver.isCached(rel)) return
    const dir = resolver.resolve(splitPath(rel)[0])
    if (dir?.kind !== 'dir') return
    const probed = this.#probeLayers(dir)
    const layer = probed[depth]
    if (!layer || layer.writable) return
    if (layers === undefined) {
      resolver.set(rel, { path: rel, kind: 'file', layer, dirLayers: NO_LAYERS })
      return
    }
    const dirLayers: Layer[] = []
    for (let i = depth; i < probed.length; i++) if (Math.floor(layers / 2 ** i) % 2 === 1) dirLayers.push(probed[i]!)
    resolver.set(rel, { path: rel, kind: 'dir', layer, dirLayers })
  }

  /** Whether `path` names a directory (from the resolver's cache when it holds the name). */
  /** Whether directories with lower layers may be renamed (redirect_dir: namespace.ts, movableDir). */
  get redirectDir(): boolean {
    return this.#core.redirectDir
  }

  /** Whether `path` is a directory that merges with a lower one, or is only below: with
   *  redirectDir, a rename of it copies its whole tree up. */
  dirHasLowerSync(path: string): boolean {
    try {
      const entry = this.#core.resolver.resolve(relPath(path))
      return entry?.kind === 'dir' && names.hasLower(entry)
    } catch {
      return false
    }
  }

  isDirSync(path: string): boolean {
    try {
      return this.#core.resolver.resolve(relPath(path))?.kind === 'dir'
    } catch {
      return false
    }
  }

  /** Take over the copy of the lower directory at `path` made and named outside the union (see
   *  Core.adoptDir). */
  adoptDirSync(path: string, ino?: number, unseen = false): void {
    this.#core.adoptDir(relPath(path), ino, unseen)
  }

  /** A file handle number for an open made outside the union (adoptOpenSync), or given up
   *  (unreserveHandle). */
  reserveHandle(): number {
    return this.#core.handles.reserve()
  }

  unreserveHandle(fh: number): void {
    this.#core.handles.unreserve(fh)
  }

  /** The open of the copy adopted at `path` (adoptCopySync), of `size` bytes, made outside the
   *  union, as `fh` (a reserved number). */
  adoptOpenSync(path: string, fh: number, size: number): void {
    files.adoptOpen(this.#core, relPath(path), fh, size)
  }

  /** The open of the file in the upper layer at `path` made outside the union, on `fd` (taken
   *  over), as `fh` (a reserved number): as an open of it for writing would have made it. */
  adoptUpperOpenSync(path: string, fh: number, fd: number): void {
    files.adoptUpperOpen(this.#core, relPath(path), fh, fd)
  }

  /** Take over the copy of the lower file at `path` made outside the union (see Core.adoptCopy). */
  adoptCopySync(path: string, fd: number, bytes: number, srcIno: number, meta = false): void {
    this.#core.adoptCopy(relPath(path), fd, bytes, srcIno, meta)
  }

  /** Take over the rename of the lower file at `from` to `to` made outside the union, its copy
   *  held open as `fd` (see Core.adoptMove). */
  adoptMoveSync(from: string, to: string, fd: number, bytes: number, srcIno: number, onWritten: () => void): void {
    names.adoptMove(this.#core, relPath(from), relPath(to), fd, bytes, srcIno, onWritten)
  }

  /** Called with how many more copies may wait for their flush, whenever that changes (see
   *  copyBehind). */
  set onCopyRoom(listener: ((room: number) => void) | undefined) {
    this.#core.onCopyRoom = listener
  }

  /** Called with a merged-view path and the host path of its copy whenever a lower directory is
   *  copied up (it merges from then on). */
  set onDirCopiedUp(listener: ((path: string, upperPath: HostPath) => void) | undefined) {
    this.#core.onDirCopiedUp = listener
  }

  /** Called with the merged-view path of a directory whenever a rename into it is deferred (see
   *  Core.deferMove): until it is written, the disk lacks a name the directory shows (probeDirsSync). */
  set onMovePending(listener: ((dir: string) => void) | undefined) {
    this.#core.onMovePending = listener
  }

  /** Called with the merged-view path of a directory when the last deferred rename into it is
   *  written (or lost): the disk holds every name it shows again. */
  set onMovesWritten(listener: ((dir: string) => void) | undefined) {
    this.#core.onMovesWritten = listener
  }

  /** Called with the merged-view path of a link made before the disk has it (see Core.deferLink):
   *  until onLinkWritten, a lookup of that name finds nothing on the disk. Its directory cannot be
   *  marked for lookups meanwhile (probeDirsSync), as while a rename into it waits. */
  set onLinkPending(listener: ((path: string) => void) | undefined) {
    this.#core.onLinkPending = listener
  }

  /** Called with the merged-view path of a deferred link once it is written (or lost). */
  set onLinkWritten(listener: ((path: string) => void) | undefined) {
    this.#core.onLinkWritten = listener
  }

  /** Called with a merged-view path whenever a change the kernel did not ask for alters what getattr
   *  would say (a directory copied up becomes merged; a copy-up gives a new ctime), and whether only
   *  the ctime moved (a deferred copy named). */
  set onAttrChange(listener: ((path: string, ctimeOnly: boolean) => void) | undefined) {
    this.#core.onAttrChange = listener
  }

  link(existing: string, path: string): Promise<void> {
    return names.link(this.#core, this.#named(existing), this.#named(path))
  }

  /** link when the source needs no data copied up: true if done, false to call link. */
  tryLink(existing: string, path: string, alone = false): boolean {
    return names.linkNow(this.#core, this.#named(existing), this.#named(path), alone)
  }

  /**
   * Take over a link of the lower file `existing` to the new name `path` made outside the union
   * (the FUSE bridge answers some in C, native/fuse-ll-cow.c): its copy, held open as `fd`, of
   * `bytes` bytes from the lower inode `srcIno`, deferred as adoptCopy's, and the new name with it
   * (Core.deferLink), as tryLink would have made them. Its maker gave the new name's directory its
   * times and keeps the name out of its own lookups until onLinkWritten. A copy the union cannot
   * take is lost (adoptCopy), and the link is then made the usual way, from the lower file again;
   * throws when even that fails.
   */
  adoptLinkSync(existing: string, path: string, fd: number, bytes: number, srcIno: number): void {
    const [from, to] = [this.#named(existing), this.#named(path)]
    this.#core.adoptCopy(from, fd, bytes, srcIno)
    if (!names.linkNow(this.#core, from, to, true, true)) throw fsError('EIO', `${path}: the link of ${existing} could not be made`)
  }

  /** linkat of a file with no name (O_TMPFILE), open as `fh`, to `path`. */
  linkUnnamedSync(fh: number, path: string): void {
    files.linkUnnamed(this.#core, fh, this.#named(path))
  }

  async unlink(path: string): Promise<void> {
    this.unlinkSync(path)
  }

  unlinkSync(path: string): void {
    names.unlink(this.#core, this.#named(path))
  }

  async rmdir(path: string): Promise<void> {
    this.rmdirSync(path)
  }

  rmdirSync(path: string): void {
    names.rmdir(this.#core, this.#namedTree(path))
  }

  /** flags: RENAME_NOREPLACE and RENAME_EXCHANGE (src/sys/native.ts). */
  rename(from: string, to: string, flags = 0): Promise<void> {
    return names.rename(this.#core, this.#namedTree(from), this.#namedTree(to), flags)
  }

  /** rename when no file involved needs its data copied up: true if done, false to call rename. */
  tryRename(from: string, to: string, flags = 0, alone = false): boolean {
    return names.renameNow(this.#core, this.#namedTree(from), this.#namedTree(to), flags, alone)
  }
}

/** The upper layer and its stager, the directories checked and claimed (their descriptors added to
 *  `claims`), the work directory's scratch area made and emptied. */
function openUpper(options: UnionOptions, lowers: string[], claims: number[]): { layer: Layer; stager: Stager } {
  if (options.upper === undefined) throw new Error('workdir given without upperdir')
  if (options.work === undefined) throw new Error('upperdir needs a workdir')
  const { path: upper, st: upperSt } = requireDir(resolve(options.upper), 'upperdir')
  const { path: work, st: workSt } = requireDir(resolve(options.work), 'workdir')
  if (upperSt.dev !== workSt.dev) throw new Error(`upperdir ${upper} and workdir ${work} must be on the same filesystem`)
  if (isInside(work, upper) || isInside(upper, work)) throw new Error('upperdir and workdir must not contain each other')
  for (const dir of lowers) {
    if (dir === upper) throw new Error(`${dir} is both a lower layer and the upperdir`)
    // As overlayfs refuses: the union would empty the work directory's scratch area in a layer, or
    // show its own changes as a lower layer's.
    if (isInside(work, dir) || isInside(dir, work)) throw new Error(`workdir ${work} and lower layer ${dir} must not contain each other`)
    if (isInside(dir, upper) || isInside(upper, dir)) throw new Error(`upperdir ${upper} and lower layer ${dir} must not contain each other`)
  }
  const warn = options.onWarning ?? ((message: string) => process.emitWarning(message))
  const upperShared = claimDir(upper, claims)
  const workShared = claimDir(work, claims)
  // As overlayfs does, a second mount of the same directories is only warned of.
  if (upperShared) warn(`upperdir ${upper} is in use by another layerfs mount: changes made through both are undefined`)
  if (workShared) warn(`workdir ${work} is in use by another layerfs mount: its scratch area is left as it is`)
  const scratch = join(work, WORK_SUBDIR)
  // Leftovers of an interrupted copy-up or removal: never visible, safe to drop (unless another
  // mount is using them).
  if (!workShared) removeTree(scratch)
  mkdirSync(scratch, { mode: 0o700, recursive: workShared })
  dropAcls(scratch)
  return { layer: new Layer(upper, 0, true), stager: new Stager(scratch, options.fsync ?? true) }
}

/** Remove whatever is at `path`, if anything. Missing or an empty directory, as a scratch area
 *  mostly is at a mount, without rmSync: its recursive removal loads a module of Node's of its own
 *  (0.4 ms of a mount here). */
function removeTree(path: string): void {
  try {
    return rmdirSync(path)
  } catch (err) {
    if (isCode(err, 'ENOENT')) return
  }
  rmSync(path, { recursive: true, force: true })
}

/**
 * Claim `dir` for this union: an exclusive flock(2) on a descriptor kept open (added to `claims`)
 * until the union closes or its process ends. True when another union holds it: two mounts on one
 * upperdir or workdir (overlayfs warns of those, and mounts all the same). Where the directory
 * cannot be opened or locked, nothing is claimed and nothing is reported.
 */
function claimDir(dir: string, claims: number[]): boolean {
  let fd: number
  try {
    fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY)
  } catch {
    return false // a directory the daemon may write but not read: nothing to claim it by
  }
  let held: boolean
  try {
    held = flockNowaitSync(fd)
  } catch {
    held = true // ENOLCK, EINVAL: a filesystem without locks
  }
  if (held) claims.push(fd)
  else closeSync(fd)
  return !held
}

/** A layer directory, checked: its real path (a symlink to a directory is followed, as overlayfs
 *  follows it; containers-storage names lower layers by short symlinks) and its stat. */
function requireDir(dir: string, what: string): { path: string; st: import('node:fs').Stats } {
  let st
  let path
  try {
    st = statSync(dir)
    path = realpathSync.native(dir)
  } catch (err) {
    // Missing, or unreachable (EACCES, a dead FUSE mount's ENOTCONN): say which.
    const code = (err as NodeJS.ErrnoException).code
    throw new Error(code === 'ENOENT' ? `${what} ${dir}: no such directory` : `${what} ${dir}: ${code ?? String(err)}${code === 'ENOTCONN' ? ' (a FUSE mount whose daemon is gone: fusermount3 -u it)' : ''}`)
  }
  if (!st.isDirectory()) throw new Error(`${what} ${dir}: not a directory`)
  // A layer must be listable: the union merges it.
  try {
    readdirSync(path)
  } catch (err) {
    throw new Error(`${what} ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  return { path, st }
}

function isInside(child: string, parent: string): boolean {
  const rel = relative(parent, child)
  // By whole components: `..w` is a name inside, `../w` a path outside.
  return rel === '' || (rel !== '..' && !rel.startsWith('..' + sep) && !isAbsolute(rel))
}

