/**
 * The union's shared state and the machinery every operation builds on: the layer stack, the resolver
 * (node table + lookup cache), copy-up and whiteout writing.
 *
 * Atomicity: every change to the upper layer's namespace (a create, an unlink, a rename, the commit of
 * a copy-up) is one synchronous step on the JavaScript thread, from the checks that decide it to the
 * resolver update that records it. No other change can run in between, as no other can run between
 * the kernel's checks and its change while it holds a directory's i_rwsem; so there is no lock.
 * The only thing that waits is a copy of file data, which is built in the work directory, outside
 * any such step, and committed by one that first checks that the name still means what it meant
 * when the copy began.
 */
import { closeSync, constants, existsSync, fsyncSync, linkSync, lstatSync, mkdirSync, openSync, renameSync, rmdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Layer, joinPath, splitPath } from '../layers/layer.js'
import { OPAQUE_MARKER, OPAQUE_XATTRS, WHITEOUT_PREFIX, whiteoutAt } from '../layers/whiteout.js'
import { nowMs } from '../sys/clock.js'
import { hostJoin, nameFromBytes, type HostPath } from '../sys/names.js'
import { type CopyChange, RENAME_EXCHANGE, ST, ST_FIELDS, lgetxattrSync, lsetxattrSync, lstatIfAny, lstatNumbers, mknodSync, renameat2Sync, stTimeNs, syncfs, utimensatSync } from '../sys/native.js'
import { DEFAULT_ACL } from './acl.js'
import { METACOPY_XATTR, REDIRECT_XATTR } from './inode.js'
import { type Entry, NO_LAYERS, inUpper } from './entry.js'
import { fsError, isCode } from './errors.js'
import { Handles } from './handles.js'
import { Resolver } from './resolver.js'
import { type Staged, Stager } from './copy-up.js'
import { Trash } from './trash.js'

/** What a copy-up must bring: true the data too; false an empty file (O_TRUNC, truncate to 0);
 *  'meta' what a change of metadata needs (chmod, chown, utimens, xattrs, rename), which with
 *  metacopy on is everything but the bytes. */
export type CopyUpWant = boolean | 'meta'

/** A metadata change to make on a copy as it is made (see copyUpNow), and whether it was. */
export interface Fold {
  readonly change: CopyChange
  applied: boolean
}

/** A copy-up deferred until its flush (see Core.#defer): the entry holds its fd (`staged`). */
interface Deferred {
  readonly entry: Entry
  readonly bytes: number
  /** A syncfs that began after the copy was made has finished: its data is on disk. */
  flushed: boolean
  /** Callers waiting for the copy's name (see whenNamed). */
  waiters?: Array<{ resolve: () => void; reject: (err: unknown) => void }>
  /** A rename moved the copy before it was named (see deferMove). */
  moved?: Moved
  /** Names linked to the copy before it was named (see deferLink): their entries, which answer
   *  with the copy's fd until it is, and are then linked on disk. */
  links?: Entry[]
}

/** The rename a deferred copy carries: it is linked at `from`, its old name, and `finish` renames it
 *  to the entry's path, leaving the whiteout. */
interface Moved {
  readonly from: string
  /** `dirTimes`: false when the caller gives both directories back their times. */
  readonly finish: (dirTimes: boolean) => void
  /** A rename made outside the union (adoptMove): called once it is written, or lost. Whoever made
   *  it keeps the new name out of its own lookups until then, so the directory's stay marked (no
   *  onMovePending). */
  readonly onWritten?: () => void
}

export interface Counters {
  copyUps: number
  copyUpBytes: number
  copyUpMs: number
  whiteouts: number
  /** Deferred copy-ups that could not be flushed or named (see Core.#defer). */
  lostCopies: number
}

export class Core {
  readonly layers: Layer[]
  readonly upper: Layer | undefined
  readonly resolver: Resolver
  readonly handles = new Handles()
  readonly counters: Counters = { copyUps: 0, copyUpBytes: 0, copyUpMs: 0, whiteouts: 0, lostCopies: 0 }
  readonly #stager: Stager | undefined
  #trash: Trash | undefined
  /** Data copy-ups in flight, by path: concurrent openers of one file share one copy. */
  readonly #inflight = new Map<string, Promise<Entry>>()
  /** See Union.onAttrChange. */
  onAttrChange: ((path: string, ctimeOnly: boolean) => void) | undefined
  /** Told how many more copies may wait for their flush whenever that changes (see copyBehind). */
  onCopyRoom: ((room: number) => void) | undefined
  /** See Union.onDirCopiedUp. */
  onDirCopiedUp: ((path: string, upperPath: HostPath) => void) | undefined
  /** See Union.onMovePending. */
  onMovePending: ((dir: string) => void) | undefined
  /** See Union.onMovesWritten. */
  onMovesWritten: ((dir: string) => void) | undefined
  /** See Union.onLinkPending. */
  onLinkPending: ((path: string) => void) | undefined
  /** See Union.onLinkWritten. */
  onLinkWritten: ((path: string) => void) | undefined
  /** Whether mknod of a char 0/0 works here; false after the first EPERM (then `.wh.` files). */
  #mknodWhiteouts = true
  /** A char 0/0 in the work directory that whiteouts are made as links of (#linkWhiteout), as
   *  overlayfs shares one; undefined: none yet, or it filled up or went. Removed at close. */
  #sharedWhiteout: string | undefined
  /** Flush copies of files in batches, after the caller is answered where it can be (see #defer). */
  flushBehind = false
  /** How long a deferred copy waits for the others of its batch before their syncfs (#flushSoon). */
  flushWindowMs = FLUSH_WINDOW_MS
  /** Copies made, not flushed or named yet, by path (see #defer). */
  readonly #deferred = new Map<string, Deferred>()
  /** The deferred copies that carry a rename, by old name (see deferMove). */
  readonly #movedFrom = new Map<string, Deferred>()
  /** The deferred copies given another name, by that name (see deferLink). */
  readonly #linkedAt = new Map<string, Deferred>()
  /** How many names of each directory, by its path, the three maps above hold (unwrittenIn). */
  readonly #unwrittenIn = new Map<string, number>()
  /** How many of them rename into each directory, by its path (movesInto). */
  readonly #movesInto = new Map<string, number>()
  /** A syncfs for deferred copies is running: its end, with the copies it covered named. */
  #flushing: Promise<void> | undefined
  /** Cancels the wait before the next syncfs, when one is scheduled. */
  #cancelFlush: (() => void) | undefined
  /** The upper layer's root, open for syncfs. */
  #upperFd: number | undefined

  /** Copy up metadata only for metadata changes (metacopy=on). */
  readonly metacopy: boolean
  /** Directories with lower layers may be renamed (redirect_dir=on; see namespace.ts, movableDir). */
  redirectDir = false

  /** The process umask when the union opened: 0 in the daemon, which takes modes as the kernel
   *  computed them. Where it is not 0 (a union used in-process), creates put back what it took. */
  readonly umask: number = readUmask()

  constructor(layers: Layer[], stager: Stager | undefined, cacheEntries: number, metacopy = false) {
    this.metacopy = metacopy
    this.layers = layers
    this.upper = layers[0]?.writable ? layers[0] : undefined
    this.#stager = stager
    if (stager) stager.umaskZero = this.umask === 0
    this.resolver = new Resolver(layers, cacheEntries)
  }

  requireUpper(): Layer {
    if (!this.upper) throw fsError('EROFS', 'no upper layer')
    return this.upper
  }

  #upperDev: number | undefined

  /** st_dev of the upper layer, where every new file is made. */
  get upperDev(): number {
    return (this.#upperDev ??= lstatSync(this.requireUpper().path('')).dev)
  }

  /** Where removed upper directories wait to be deleted (see Trash). */
  get trash(): Trash {
    return this.#trash ??= new Trash(() => this.stager.tempPath())
  }

  get stager(): Stager {
    if (!this.#stager) throw fsError('EROFS', 'no work directory')
    return this.#stager
  }

  /** Make sure the directory `dir` exists in the upper layer, copying it (and its parents) up; a
   *  setattr's `fold` is made on the copy before it is named (see copyUpNow). */
  ensureUpperDir(dir: Entry, fold?: Fold): void {
    if (inUpper(dir)) return
    const upper = this.requireUpper()
    this.ensureUpperDir(this.resolver.get(splitPath(dir.path)[0]))
    const target = upper.path(dir.path)
    let origin: boolean
    try {
      origin = this.stager.copyDirNow(dir.layer.path(dir.path), target, fold?.change, sourceStat)
    } catch (err) {
      // Copied up already: C copied it up (fuse-ll-cow.c, lift, for a rename it answered in it or
      // below it) after the request this serves was queued, and that record comes later. Taken
      // over as adoptDir takes it (the record then finds it done), with what C did in it since (a
      // rename's new times, names): copyDirNow never renames over it. The caller makes `fold`.
      if (!isCode(err, 'EEXIST') || !lstatIfAny(target, sourceStat) || (sourceStat[ST.MODE]! & constants.S_IFMT) !== constants.S_IFDIR) throw err
      this.onAttrChange?.('/' + dir.path, false)
      this.#upperDir(dir, upper)
      return
    }
    // Its inode number is its origin's, the lower directory's own, which the copy just lstat'ed.
    const ino = sourceStat[ST.INO]!
    if (fold) fold.applied = true
    this.onAttrChange?.('/' + dir.path, false)
    this.#upperDir(dir, upper, origin && Number.isSafeInteger(ino) ? ino : undefined)
  }

  /** The lower directory `dir` has its copy in the upper layer now; `ino`, when known, the inode
   *  number it shows (its origin). */
  #upperDir(dir: Entry, upper: Layer, ino?: number): void {
    dir.layer = upper
    dir.dirLayers = [upper, ...dir.dirLayers]
    dir.ino = ino
    this.resolver.madeUpperDir(dir.path)
    dir.lowerHas = true
    this.resolver.set(dir.path, dir)
    this.counters.copyUps++
    this.onDirCopiedUp?.('/' + dir.path, upper.path(dir.path))
  }

  /**
   * Copy `rel` up, at once, when the copy moves no data or little: a directory, a symlink or special
   * file, an empty file, a metadata-only copy (metacopy on, want 'meta'), a small file when copies
   * are not fsync'd or when `alone` (no other request waits on the daemon: the flush delays nobody,
   * and the trip to the pool is saved). Returns the upper entry, or undefined when file data must be
   * copied on the thread pool (or a copy is in flight for this name): call copyUp then.
   * With metacopy on, the bytes of a metadata-only copy stay in the lower layer until a write needs
   * them (overlayfs's metacopy, in the kernel's on-disk format); an upper metadata-only copy asked
   * for its data (or for an empty file) is completed.
   * `fold` is a setattr's metadata change: when this call copies the lower object, the change is
   * made on the copy before it is named (a chown, chmod or utimensat by path fewer), and
   * `fold.applied` is set; else the caller makes it.
   * `defer`: the caller can work with a copy that has no name yet (an open, a setattr): a small file's
   * copy is then made on the calling thread whoever waits, and named after its flush (see #defer).
   */
  copyUpNow(rel: string, want: CopyUpWant, alone = false, fold?: Fold, defer = false): Entry | undefined {
    const entry = this.resolver.get(rel)
    const complete = inUpper(entry) && want !== 'meta' && this.isMetacopy(entry)
    if (inUpper(entry) && !complete) return entry
    this.requireUpper()
    if (this.#inflight.has(rel)) return undefined
    if (entry.kind === 'dir') {
      this.ensureUpperDir(entry, fold)
      return entry
    }
    const started = nowMs()
    if (complete) {
      // Made empty (O_TRUNC), it needs none of the lower bytes.
      const from = want === true ? this.dataSource(entry) : undefined
      if (from !== undefined && !this.#copiesNow(lstatSync(from).size, alone)) return undefined
      return this.#completed(entry, this.stager.fillNow(this.requireUpper().path(rel), from), started)
    }
    const meta = want === 'meta' && this.metacopy && entry.kind === 'file'
    const data = want !== false && !meta
    const src = entry.layer.path(rel)
    const change = fold?.change
    if (!data) {
      // No bytes to copy, so nothing to decide first: the copy's lstat is the only one.
      const staged = this.#stageNow(entry, src, 'own', { data, meta, change }, sourceStat)
      return this.#copied(entry, staged, meta, originOf(sourceFrom(src, sourceStat)), started, fold)
    }
    const behind = defer ? this.#stageBehind(entry, src, change) : undefined
    if (behind?.staged) return this.#copied(entry, behind.staged, false, originOf(behind.st), started, fold, true)
    const st = behind?.st ?? sourceOf(src)
    if (entry.kind === 'file' && !this.#copiesNow(st.size, alone)) return undefined
    return this.#copied(entry, this.#stageNow(entry, src, originOf(st), { data, meta, change }), meta, originOf(st), started, fold)
  }

  /** A copy of the small lower file `entry`, made now on the calling thread and left unflushed, to
   *  be named after its flush (see #defer), and what it was copied from; no copy (`staged`
   *  undefined) when it may not wait (#defers) or is too big for this thread. Its lstat is the
   *  copy's own (one per copy-up), whenever the copy may wait. */
  #stageBehind(entry: Entry, src: HostPath, change: CopyChange | undefined): { staged?: Staged; st: Source } {
    if (!this.#defers(entry)) return { st: sourceOf(src) }
    this.ensureUpperDir(this.resolver.get(splitPath(entry.path)[0]))
    const staged = this.stager.stageSmallNow(src, COPY_NOW_MAX, sourceStat, { data: true, origin: undefined, change, unflushed: true })
    return { staged, st: sourceFrom(src, sourceStat) }
  }

  /**
   * Where a copy of a small lower file may be made outside the union, with a setattr's change on it,
   * to be adopted as one of its own (adoptCopy): the work directory, the biggest file it may be
   * for, how many such copies may wait for their flush now (onCopyRoom tells the changes), and
   * whether a setattr's copy is a metadata-only one (metacopy on: named at its adoption, it waits
   * for no flush). Undefined where the union would not make such a copy itself (no flush behind).
   * The FUSE bridge answers such setattrs in C (native/fuse-ll-cow.c).
   */
  get copyBehind(): { dir: HostPath; maxSize: number; room: number; exactModes: boolean; meta: boolean } | undefined {
    const stager = this.#stager
    if (!this.upper || !stager || !this.flushBehind || !stager.syncsData || !stager.unnamed) return undefined
    return { dir: stager.dir, maxSize: COPY_NOW_MAX, room: DEFERRED_MAX - this.#deferred.size, exactModes: stager.exactModes, meta: this.metacopy }
  }

  /** Whether a lower file, as listed or looked up, is one copyBehind is for (see there). */
  copiesBehind(entry: Entry, size: number, nlink: number): boolean {
    return entry.kind === 'file' && !inUpper(entry) && nlink === 1 && size <= COPY_NOW_MAX
  }

  /** Whether a file, as listed or looked up, is a lower one: its host path holds what the union
   *  shows of it until it is copied up. */
  showsLowerFile(entry: Entry): boolean {
    return entry.kind === 'file' && !inUpper(entry)
  }

  /** Whether a file, as listed or looked up, is one in the upper layer whose host path holds what
   *  the union shows of it: one link, named (no copy of it waiting for its flush), and no deferred
   *  rename or link still to write that name (see #copySource in union.ts). */
  showsUpperFile(entry: Entry, nlink: number): boolean {
    return entry.kind === 'file' && inUpper(entry) && nlink === 1 && entry.staged === undefined && !this.unwritten(entry.path)
  }

  /** Whether a directory, as listed or looked up, is a lower one that may be copied up outside the
   *  union, to be adopted as one of its own (adoptDir). Its copy is named at once, under its own
   *  name, as ensureUpperDir names one: only once its parent is in the upper layer (chmod -R and
   *  chown -R change a directory before they list it, but may list it again from the kernel's
   *  cache, with no request, after a first walk listed it while its parent was lower). */
  copiesDirBehind(entry: Entry): boolean {
    return entry.kind === 'dir' && !inUpper(entry)
  }

  /** Take over the copy-up of the lower directory `rel`, made and named outside the union (see
   *  copiesDirBehind): the union shows it merged from now on, as after ensureUpperDir. `ino`: the
   *  inode number the copy recorded as its origin, when it could (else read when needed).
   *  `unseen`: its maker answered nobody with the copy's attributes (onAttrChange tells). */
  adoptDir(rel: string, ino?: number, unseen = false): void {
    const dir = this.resolver.resolve(rel)
    // The caller was answered with the copy's attributes, unless `unseen` (copied up on the way).
    if (unseen) this.onAttrChange?.('/' + rel, false)
    // An entry looked up afresh (not cached) has found the copy already.
    if (dir?.kind === 'dir' && !inUpper(dir)) this.#upperDir(dir, this.requireUpper(), ino)
  }

  /**
   * Take over a copy of the lower file `rel` made outside the union (see copyBehind), held open as
   * `fd`, of `bytes` bytes of data, from the lower inode `srcIno`: deferred as #stageBehind's are,
   * or, a metadata-only copy (`meta`), named now; one its maker named already has no fd (-1).
   * Its caller has been answered already: a copy that cannot be taken (its directory cannot be
   * copied up, or the name no longer means that file) is lost, as one whose flush fails.
   */
  adoptCopy(rel: string, fd: number, bytes: number, srcIno: number, meta = false): void {
    const started = nowMs()
    const entry = this.resolver.resolve(rel)
    if (fd < 0) {
      // Named at `rel` already, in a directory in the upper layer: the lower file it was made of is
      // what the union still shows there; anything else (never seen) is read again from the disk.
      if (entry?.kind === 'file' && !inUpper(entry)) {
        this.#nowUpper(entry, BigInt(srcIno), meta)
        this.resolver.set(rel, entry)
      } else {
        this.resolver.invalidate(rel)
      }
      this.#count({ fd, bytes }, started)
      return
    }
    try {
      if (!entry || inUpper(entry) || entry.kind !== 'file') throw fsError('ESTALE', `/${rel} is no longer that lower file`)
      this.ensureUpperDir(this.resolver.get(splitPath(rel)[0]))
    } catch (err) {
      closeSync(fd)
      return this.#reportLost(rel, err)
    }
    // A metadata-only copy has no data to flush: named now, as copyUpNow names one.
    this.#copied(entry, { fd, bytes }, meta, BigInt(srcIno), started, undefined, !meta)
  }

  /** Whether the flush and name of this lower file's copy may wait (see #defer), if it has one link. */
  #defers(entry: Entry): boolean {
    return this.flushBehind && entry.kind === 'file' && this.stager.syncsData && this.stager.unnamed &&
      this.#deferred.size < DEFERRED_MAX
  }

  /**
   * Make the copy of a lower file the entry's upper object before it is flushed and named. The copy
   * answers for the entry (its fd: `entry.staged`): getattr, a setattr, an open (through
   * /proc/self/fd) and the lower file's readers all use it, and the caller replies at once; the
   * copy is linked to its name once a syncfs has flushed it. One syncfs covers
   * the copies of a few milliseconds (#flushSoon), so `chown -R` pays a fraction of one flush per
   * file instead of one fsync each, and never waits for the disk.
   *
   * Nothing ever sees a name without its data: a crash before the link loses the change (the lower
   * file shows again, as after a crash before the kernel's own journal commit), never the bytes. Any
   * operation that needs the copy by name (xattrs, link, unlink, rename of it or of a directory
   * above it, an fsync of a handle on it) first links it, after an fsync of its own if its syncfs
   * has not finished: see settle.
   */
  #defer(entry: Entry, fd: number, bytes: number, started: number, moved?: Moved): Entry {
    this.#upperFd ??= openSync(this.requireUpper().path(''), constants.O_RDONLY | constants.O_DIRECTORY)
    entry.staged = fd
    this.resolver.pin(entry)
    const copy: Deferred = { entry, bytes, flushed: false, moved }
    this.#put(this.#deferred, entry.path, copy)
    this.onCopyRoom?.(DEFERRED_MAX - this.#deferred.size)
    if (moved) {
      this.resolver.pinMissing(moved.from)
      this.#put(this.#movedFrom, moved.from, copy)
      const dir = splitPath(entry.path)[0]
      this.#movesInto.set(dir, (this.#movesInto.get(dir) ?? 0) + 1)
      if (!moved.onWritten) this.onMovePending?.('/' + dir)
    }
    try {
      this.handles.promote(moved?.from ?? entry.path, stagedPath(fd), true)
    } catch {
      // Its readers stay on the lower file: the same bytes until somebody writes the copy.
    }
    this.#count({ fd, bytes }, started)
    this.#flushSoon()
    return entry
  }

  /**
   * Rename the lower file `source` to `toRel` without waiting for the flush of its copy (flush
   * behind, see #defer). The copy is made now and answers at the new name, and the old name is gone
   * at once (the resolver pins both). On disk, once a syncfs has flushed the copy, it is linked at
   * the old name and `finish` renames it to the new one, leaving the whiteout, as a rename that
   * waited would have: a crash before then loses the rename (the lower file shows at its old name),
   * never the bytes. Anything that needs either name on disk (a create or link at the old name, a
   * listing of either directory, the settles of #defer) writes the rename first.
   * Returns false when the rename cannot be deferred (metacopy, a big or hard-linked file, a copy
   * in flight): the caller copies up and renames the usual way.
   */
  deferMove(source: Entry, toRel: string, finish: (dirTimes: boolean) => void): boolean {
    if (this.metacopy || inUpper(source) || this.#inflight.has(source.path)) return false
    const src = source.layer.path(source.path)
    const started = nowMs()
    const { staged, st } = this.#stageBehind(source, src, undefined)
    if (staged?.fd === undefined) return false
    const origin = originOf(st)
    const moved: Entry = { path: toRel, kind: 'file', layer: this.requireUpper(), dirLayers: NO_LAYERS, ino: origin === undefined ? undefined : Number(origin), metacopy: false }
    this.#defer(moved, staged.fd, staged.bytes, started, { from: source.path, finish })
    return true
  }

  /**
   * Give the lower file whose copy `source` has just been deferred (see #defer) the new name `toRel`
   * too (link) without waiting for the copy's flush: the new name answers at once, through the
   * copy's fd, and both names show the two links they will have. On disk the name is linked once the
   * copy is named (#name), so that no name shows a copy before its data is on disk, as a link that
   * waited for the flush would; a crash before then loses the link and the copy, never the bytes.
   * Until then a listing of the new name's directory, or anything that needs either name on disk,
   * names the copy first (settle, settleListing), and the directory takes its new times at once,
   * keeping them when the link is written. `cp -al` of lower files waited for an fsync at every
   * link. False when the link cannot wait (no copy deferred just now, a rename it carries, a
   * whiteout or marker to replace at the new name, a deferred rename's old name): the caller names
   * the copy and links by name. `outside`: the link was answered outside the union (Union.adoptLinkSync),
   * whose maker gave the directory its times and keeps the name out of its lookups until
   * onLinkWritten.
   */
  deferLink(source: Entry, toRel: string, outside = false): boolean {
    const copy = source.staged === undefined ? undefined : this.#deferred.get(source.path)
    if (!copy || copy.entry !== source || copy.moved || this.#movedFrom.has(toRel) || this.#linkedAt.has(toRel)) return false
    const upper = this.requireUpper()
    const [dir, name] = splitPath(toRel)
    if (!this.resolver.upperClear(toRel) && (whiteoutAt(upper.path(toRel)) || this.resolver.upperMarker(dir, name))) return false
    this.ensureUpperDir(this.resolver.get(dir))
    const linked: Entry = { path: toRel, kind: 'file', layer: upper, dirLayers: NO_LAYERS, ino: source.ino, lowerHas: false, metacopy: false, staged: source.staged }
    const links = (copy.links ??= [])
    links.push(linked)
    for (const entry of [source, ...links]) entry.stagedNames = 1 + links.length
    this.#put(this.#linkedAt, toRel, copy)
    this.resolver.set(toRel, linked)
    this.resolver.pin(linked)
    // Counted as a rename into the directory is (no listing answered from the disk meanwhile), but
    // only this name is kept from lookups that probe the disk (onLinkPending).
    this.#movesInto.set(dir, (this.#movesInto.get(dir) ?? 0) + 1)
    if (outside) return true
    this.onLinkPending?.('/' + toRel)
    utimensatSync(upper.path(dir), null, 'now', true)
    return true
  }

  /**
   * Take over the rename of the lower file `fromRel` to `toRel` made outside the union, as deferMove
   * makes one: its copy held open as `fd`, of `bytes` bytes of data, from the lower inode `srcIno`,
   * both directories in the upper layer already, with their new times, and the new name missing
   * (its maker checked every layer). Its caller has been answered already: a rename that cannot be
   * taken (the old name no longer means that lower file) is lost, as a deferred copy whose flush
   * fails, and reported.
   * `onWritten`: see Moved.
   */
  adoptMove(fromRel: string, toRel: string, fd: number, bytes: number, srcIno: number, finish: (dirTimes: boolean) => void, onWritten: () => void): void {
    const started = nowMs()
    try {
      if (!this.#stillLower(fromRel)) throw fsError('ESTALE', `/${fromRel} is no longer that lower file`)
      this.ensureUpperDir(this.resolver.get(splitPath(fromRel)[0]))
      this.ensureUpperDir(this.resolver.get(splitPath(toRel)[0]))
    } catch (err) {
      closeSync(fd)
      onWritten()
      return this.#reportLost(toRel, err)
    }
    const moved: Entry = { path: toRel, kind: 'file', layer: this.requireUpper(), dirLayers: NO_LAYERS, ino: srcIno, metacopy: false }
    this.#defer(moved, fd, bytes, started, { from: fromRel, finish, onWritten })
  }

  /** Whether `rel`, whose copy-up C made, is still the lower file it copied: as the cache knows it,
   *  or, for a name the cache does not hold (C answered its lookup itself), as C found it. What the
   *  cache does not hold, the disk shows (what it does not show yet is pinned), and C's mark on the
   *  file went before anything JS did could change it (ll-bridge.ts, #unmarkChanged). Not walked
   *  again: a lookup's walk, two lstats a layer, cost a rename answered in C more CPU than the rest
   *  of its adoption. */
  #stillLower(rel: string): boolean {
    if (this.#inflight.has(rel)) return false
    if (!this.resolver.isCached(rel)) return true
    const source = this.resolver.resolve(rel)
    return source !== undefined && !inUpper(source) && source.kind === 'file'
  }

  /** Unless a flush runs or is scheduled, start one flushWindowMs from now for the deferred copies
   *  of that moment; each is linked when it finishes, and the copies made meanwhile get the next.
   *  `now`: somebody waits for a name (see whenNamed): no window, and a scheduled one is cut short. */
  #flushSoon(now = false): void {
    if (this.#flushing || this.#deferred.size === 0) return
    if (this.#cancelFlush) {
      if (!now) return
      this.#cancelFlush()
    }
    const run = (): void => {
      this.#cancelFlush = undefined
      this.#flush()
    }
    if (now) {
      const immediate = setImmediate(run)
      this.#cancelFlush = () => clearImmediate(immediate)
    } else {
      const timer = setTimeout(run, this.flushWindowMs)
      this.#cancelFlush = () => clearTimeout(timer)
    }
  }

  #flush(): void {
    const batch = [...this.#deferred.values()]
    if (batch.length === 0) return
    this.#flushing = syncfs(this.#upperFd!).then(
      () => { for (const copy of batch) copy.flushed = true },
      // Left unflushed: each copy gets an fsync of its own when linked, and fails alone.
      () => undefined,
    ).finally(() => {
      this.#flushing = undefined
      for (const { dirs, copies } of byDirectories(batch)) {
        // One copy alone names itself and gives its directory back its times in one call; a rename
        // takes its directories' times once for its link and its rename.
        if (copies.length === 1 && !copies[0]!.moved) this.#linkFlushed(copies[0]!)
        else this.#keepingTimes(dirs, () => { for (const copy of copies) this.#linkFlushed(copy, false) })
      }
      this.#flushSoon([...this.#deferred.values()].some((copy) => copy.waiters))
    })
  }

  /** Whether the deferred `copy` still waits to be named (a batch's naming may have named it, or
   *  another copy of the name may have taken its place). */
  #waiting(copy: Deferred): boolean {
    return this.#deferred.get(copy.entry.path) === copy
  }

  /** #link for a flushed batch's copy, unless it was named meanwhile; `dirTimes`: see #link. */
  #linkFlushed(copy: Deferred, dirTimes = true): void {
    if (!this.#waiting(copy)) return
    try {
      this.#link(copy, dirTimes)
    } catch (err) {
      // Named, but the kernel could not be told (the session is ending): nothing to undo.
      process.emitWarning(`layerfs: after naming /${copy.entry.path}: ${err instanceof Error ? err.message : String(err)}`)
    }
  }

  /** Run `link`, which names copies in the upper directories `dirs` (and writes the renames they
   *  carry between them), and give each directory back the times it had before, once for all of
   *  them: a copy-up is no change of its parent, as in overlayfs, and a deferred rename's
   *  directories took their new times when it was answered. A flush of chmod -R's copies names a
   *  directory's files together, two syscalls each fewer; of renamed ones, four. */
  #keepingTimes(dirs: string[], link: () => void): void {
    const kept: Array<{ dir: string; atime: bigint; mtime: bigint }> = []
    for (const dir of dirs) {
      try {
        // Gone, it has no times to keep (and the copies named in it are lost).
        if (!lstatIfAny(this.requireUpper().path(dir), parentStat)) continue
      } catch {
        continue // unreadable: the links fail alike, each on its own
      }
      kept.push({ dir, atime: stTimeNs(parentStat, ST.ATIME), mtime: stTimeNs(parentStat, ST.MTIME) })
    }
    link()
    for (const { dir, atime, mtime } of kept) {
      try {
        utimensatSync(this.requireUpper().path(dir), atime, mtime, true)
      } catch (err) {
        process.emitWarning(`layerfs: /${dir} keeps the times of the copies named in it: ${err instanceof Error ? err.message : String(err)}`)
      }
    }
  }

  /** Resolves once the copy `entry` is named (at once when it is not deferred); rejects with the
   *  reason when it is lost. Starts its flush without waiting for more copies. */
  whenNamed(entry: Entry): Promise<void> {
    const copy = entry.staged === undefined ? undefined : this.#deferred.get(entry.path)
    if (!copy) return Promise.resolve()
    return new Promise((resolve, reject) => {
      (copy.waiters ??= []).push({ resolve, reject })
      this.#flushSoon(true)
    })
  }

  /** Link the deferred copies at `rel` and, with `tree`, below it, now (see #defer). */
  settle(rel: string, tree = false): void {
    if (this.#deferred.size === 0) return
    // Only a directory has anything below it (a rename or rmdir of a file needs no scan).
    if (!tree || !this.#mayBeDir(rel)) {
      const copy = this.#deferred.get(rel)
      if (copy) this.#link(copy)
      const moved = this.#movedFrom.get(rel)
      if (moved) this.#link(moved)
      const linked = this.#linkedAt.get(rel)
      if (linked && this.#waiting(linked)) this.#link(linked)
      return
    }
    const prefix = rel === '' ? '' : rel + '/'
    const under = (path: string): boolean => path === rel || path.startsWith(prefix)
    for (const copy of [...this.#deferred.values()]) {
      if (!this.#waiting(copy)) continue // named meanwhile, with another
      if (under(copy.entry.path) || (copy.moved && under(copy.moved.from)) || copy.links?.some((l) => under(l.path))) this.#link(copy)
    }
  }

  /** Whether `rel` is a directory, or may be (it cannot be looked up). */
  #mayBeDir(rel: string): boolean {
    try {
      return this.resolver.resolve(rel)?.kind === 'dir'
    } catch {
      return true
    }
  }

  /** Write the deferred renames (see deferMove) into or out of the directory `dir`: a listing reads
   *  its names from the disk. */
  settleListing(dir: string): void {
    if (this.#movedFrom.size === 0 && this.#linkedAt.size === 0) return
    for (const copy of [...this.#movedFrom.values()]) {
      if (splitPath(copy.moved!.from)[0] === dir || splitPath(copy.entry.path)[0] === dir) this.#link(copy)
    }
    for (const [to, copy] of [...this.#linkedAt]) {
      if (splitPath(to)[0] === dir && this.#waiting(copy)) this.#link(copy)
    }
  }

  /** Whether a deferred rename or link (see deferMove, deferLink) has yet to write a name into the
   *  directory `dir`: until then, the disk does not hold all of its names. */
  movesInto(dir: string): boolean {
    return this.#movesInto.has(dir)
  }

  /** `rel` goes into `map`, one of #deferred, #movedFrom and #linkedAt, as `copy`'s (#unwrittenIn
   *  counts it, unless it was there). */
  #put(map: Map<string, Deferred>, rel: string, copy: Deferred): void {
    if (!map.has(rel)) this.#countUnwritten(rel, 1)
    map.set(rel, copy)
  }

  /** `rel` leaves `map` (see #put). */
  #take(map: Map<string, Deferred>, rel: string): void {
    if (map.delete(rel)) this.#countUnwritten(rel, -1)
  }

  #countUnwritten(rel: string, by: number): void {
    const dir = splitPath(rel)[0]
    const count = (this.#unwrittenIn.get(dir) ?? 0) + by
    if (count > 0) this.#unwrittenIn.set(dir, count)
    else this.#unwrittenIn.delete(dir)
  }

  /** Whether the directory `dir` holds a name the disk does not show as the union does yet (see
   *  unwritten). */
  unwrittenIn(dir: string): boolean {
    return this.#unwrittenIn.has(dir)
  }

  /** Whether the disk does not show `rel` as the union does yet: a copy there not named (deferred,
   *  or given that name by a deferred link), or the old name of a deferred rename, not whited out. */
  unwritten(rel: string): boolean {
    return this.#deferred.has(rel) || this.#movedFrom.has(rel) || this.#linkedAt.has(rel)
  }

  /** Copies waiting for their flush and name. */
  get deferredCopies(): number {
    return this.#deferred.size
  }

  /** Link every deferred copy now: before the daemon exits. */
  settleAll(): void {
    this.settle('', true)
  }

  /** Name every deferred copy, let a syncfs still running end, and close what the core holds open:
   *  the handles callers left open and the upper layer's root. See Union.close. */
  async close(): Promise<void> {
    this.settleAll()
    this.#cancelFlush?.()
    this.#cancelFlush = undefined
    await this.#flushing
    this.handles.closeAll()
    if (this.#upperFd !== undefined) closeSync(this.#upperFd)
    this.#upperFd = undefined
    if (this.#sharedWhiteout !== undefined) rmSync(this.#sharedWhiteout, { force: true })
    this.#sharedWhiteout = undefined
  }

  /** Name a deferred copy, after an fsync unless a syncfs covered it. A copy that cannot be flushed
   *  or named is dropped, and the entry shows the lower file again (#lost); only telling the kernel
   *  (onAttrChange) may throw. Without `dirTimes` the caller gives the directories back their times
   *  (see #keepingTimes). The last deferred rename into a directory, written (or lost), tells
   *  onMovesWritten. */
  #link(copy: Deferred, dirTimes = true): void {
    if (!copy.moved) return this.#name(copy, dirTimes)
    const dir = splitPath(copy.entry.path)[0]
    try {
      this.#name(copy, dirTimes)
    } finally {
      copy.moved.onWritten?.()
      this.#writtenInto(dir)
    }
  }

  /** A deferred rename or link has written its name into `dir` (or lost it): the last one tells
   *  onMovesWritten. */
  #writtenInto(dir: string): void {
    const left = (this.#movesInto.get(dir) ?? 1) - 1
    if (left > 0) this.#movesInto.set(dir, left)
    else {
      this.#movesInto.delete(dir)
      this.onMovesWritten?.('/' + dir)
    }
  }

  #name(copy: Deferred, dirTimes: boolean): void {
    const { entry, moved } = copy
    const links = copy.links ?? []
    const rel = entry.path
    const fd = entry.staged!
    this.#take(this.#deferred, rel)
    this.onCopyRoom?.(DEFERRED_MAX - this.#deferred.size)
    this.resolver.unpin(rel)
    if (moved) {
      this.#take(this.#movedFrom, moved.from)
      this.resolver.unpin(moved.from)
    }
    for (const linked of [entry, ...links]) {
      linked.staged = undefined
      linked.stagedNames = undefined
    }
    for (const linked of links) {
      this.#take(this.#linkedAt, linked.path)
      this.resolver.unpin(linked.path)
    }
    let named = false
    // The copy's fd closes below (named or lost): the handles that borrow it take their own.
    this.handles.ownLent(fd)
    try {
      try {
        if (!copy.flushed) fsyncSync(fd)
      } catch (err) {
        closeSync(fd)
        return this.#lost(copy, err)
      }
      const upper = this.requireUpper()
      const at = moved?.from ?? rel
      try {
        this.stager.commit({ fd, bytes: copy.bytes }, upper.path(at), dirTimes ? upper.path(splitPath(at)[0]) : undefined)
        moved?.finish(dirTimes)
      } catch (err) {
        return this.#lost(copy, err)
      }
      named = true
      for (const waiter of copy.waiters ?? []) waiter.resolve()
      // The copy was shown as it is now, with the one link it just got: naming it moved its ctime.
      this.onAttrChange?.('/' + rel, true)
    } finally {
      for (const linked of links) this.#writeLink(rel, linked, named, dirTimes)
    }
  }

  /** Write a link deferLink answered, once its copy is named at `rel` (`named`; else the link is
   *  lost with it): its directory keeps the times it took when the link was answered (without
   *  `dirTimes`, the caller sees to that: see #keepingTimes). */
  #writeLink(rel: string, linked: Entry, named: boolean, dirTimes: boolean): void {
    const upper = this.requireUpper()
    const dir = splitPath(linked.path)[0]
    let written = false
    try {
      if (named) {
        const dirPath = upper.path(dir)
        const times = dirTimes && lstatIfAny(dirPath, parentStat) ? { atime: stTimeNs(parentStat, ST.ATIME), mtime: stTimeNs(parentStat, ST.MTIME) } : undefined
        linkSync(upper.path(rel), upper.path(linked.path))
        written = true
        if (times) utimensatSync(dirPath, times.atime, times.mtime, true)
      } else {
        this.resolver.invalidate(linked.path)
      }
    } catch (err) {
      if (!written) {
        this.resolver.invalidate(linked.path)
        this.counters.lostCopies++
        process.emitWarning(`layerfs: the link /${linked.path} to /${rel} was lost: ${err instanceof Error ? err.message : String(err)}`)
      }
    } finally {
      try {
        // Written, the name shows the ctime the link gave the file; lost, it is gone.
        this.onAttrChange?.('/' + linked.path, written)
      } catch {
        // The session is ending: the kernel cannot be told.
      }
      this.onLinkWritten?.('/' + linked.path)
      this.#writtenInto(dir)
    }
  }

  /** A deferred copy could not be made durable or named: the change it carried is lost, as a
   *  write's is when writeback fails. The name shows the lower object again. */
  #lost(copy: Deferred, err: unknown): void {
    const rel = copy.entry.path
    for (const waiter of copy.waiters ?? []) waiter.reject(err)
    this.resolver.invalidate(rel)
    if (copy.moved) this.resolver.invalidate(copy.moved.from)
    this.#reportLost(rel, err)
  }

  /** A copy-up of `rel` the caller was answered for is lost: counted, the kernel told, a warning. */
  #reportLost(rel: string, err: unknown): void {
    this.counters.lostCopies++
    this.onAttrChange?.('/' + rel, false)
    process.emitWarning(`layerfs: the copy-up of /${rel} was lost: ${err instanceof Error ? err.message : String(err)}`)
  }

  /** Whether a copy of this many bytes is made on the calling thread (see COPY_NOW_MAX): when it is
   *  not fsync'd, or nobody else waits for its flush (see copyUpNow). */
  #copiesNow(bytes: number, alone: boolean): boolean {
    return bytes <= COPY_NOW_MAX && (!this.stager.syncsData || alone)
  }

  /** Stage a copy of the lower `entry` on the calling thread, its parent made ready first; `st` as
   *  for Stager.stageNow. */
  #stageNow(entry: Entry, src: HostPath, origin: bigint | 'own' | undefined, options: { data: boolean; meta: boolean; change: CopyChange | undefined }, st?: Float64Array): Staged {
    this.ensureUpperDir(this.resolver.get(splitPath(entry.path)[0]))
    // A lower entry's name is free in the upper layer: the copy can be linked straight to it.
    return this.stager.stageNow(src, entry.kind, { ...options, origin }, true, st)
  }

  /** Copy `rel` up with what `want` asks for and return its upper entry (see copyUpNow). `tried`:
   *  the caller's copyUpNow of it just returned undefined, with nothing run since. */
  async copyUp(rel: string, want: CopyUpWant, defer = false, tried = false): Promise<Entry> {
    for (let first = true; ; first = false) {
      const now = first && tried ? undefined : this.copyUpNow(rel, want, false, undefined, defer)
      if (now) return now
      const running = this.#inflight.get(rel)
      if (running) {
        await running.catch(() => undefined)
        continue
      }
      const entry = this.resolver.get(rel)
      const job = inUpper(entry) ? this.#complete(entry) : this.#copyUpData(entry, defer)
      this.#inflight.set(rel, job)
      try {
        return await job
      } finally {
        this.#inflight.delete(rel)
      }
    }
  }

  /** Is this upper file a metadata-only copy whose data is still below? (Memoised on the entry.) */
  isMetacopy(entry: Entry): boolean {
    if (entry.kind !== 'file' || !inUpper(entry)) return false
    entry.metacopy ??= lgetxattrSync(entry.layer.path(entry.path), METACOPY_XATTR) !== undefined
    return entry.metacopy
  }

  /** The host path of a metadata-only copy's data: the lower file at its redirect (set when the copy
   *  was renamed), else at its own path, as overlayfs finds it. */
  dataSource(entry: Entry): HostPath {
    const value = lgetxattrSync(entry.layer.path(entry.path), REDIRECT_XATTR)
    const redirect = value === undefined ? undefined : nameFromBytes(value)
    const rel = redirect !== undefined ? redirect.replace(/^\/+/, '') : entry.path
    for (const layer of this.layers) {
      if (layer.writable) continue
      const path = layer.path(rel)
      if (lstatSync(path, { throwIfNoEntry: false })?.isFile()) return path
    }
    throw fsError('EIO', `${entry.path}: the lower data of a metadata-only copy is gone`)
  }

  async #copyUpData(entry: Entry, defer: boolean): Promise<Entry> {
    const started = nowMs()
    this.ensureUpperDir(this.resolver.get(splitPath(entry.path)[0]))
    const src = entry.layer.path(entry.path)
    const st = sourceOf(src)
    const unflushed = this.#defers(entry) && st.nlink === 1
    const options = { data: true, origin: originOf(st), unflushed }
    // A small copy is made here: it costs less than the trip to the pool, and its flush is not.
    const staged = unflushed && st.size <= COPY_NOW_MAX ? this.stager.stageNow(src, entry.kind, options, true) : await this.stager.stage(src, entry.kind, options, true)
    const copied = this.#copied(entry, staged, false, originOf(st), started, undefined, unflushed)
    // A caller that needs the name waits for it: the copies of concurrent callers share a flush.
    if (!defer) await this.whenNamed(copied)
    return copied
  }

  /** Commit a copy of the lower `entry`, unless the name changed while it was made; an `unflushed`
   *  one is deferred instead (see #defer). */
  #copied(entry: Entry, staged: Staged, meta: boolean, origin: bigint | undefined, started: number, fold?: Fold, unflushed = false): Entry {
    const upper = this.requireUpper()
    const rel = entry.path
    const current = this.resolver.resolve(rel)
    if (!current || current.layer !== entry.layer || current.kind !== entry.kind) {
      // Removed, replaced or copied up while we copied: our copy is stale.
      this.stager.discard(staged)
      if (current && inUpper(current)) return current
      throw fsError('ENOENT', rel)
    }
    if (fold) fold.applied = true
    if (unflushed) {
      if (staged.fd !== undefined) {
        this.#nowUpper(current, origin, false)
        return this.#defer(current, staged.fd, staged.bytes, started)
      }
      // O_TMPFILE was refused just now: the copy was made by name, and is flushed before it is.
      this.stager.flush(staged)
    }
    this.#commit(staged, rel)
    this.#nowUpper(current, origin, meta)
    this.resolver.set(rel, current)
    // A metadata-only copy leaves readers on the lower data, which is still the file's.
    if (!meta) this.handles.promote(rel, upper.path(rel))
    this.#count(staged, started)
    return current
  }

  /** The lower `entry` has a copy in the upper layer now (named or not), recording `origin`. */
  #nowUpper(entry: Entry, origin: bigint | undefined, meta: boolean): void {
    entry.layer = this.requireUpper()
    entry.ino = origin === undefined ? undefined : Number(origin)
    entry.lowerHas = true
    entry.metacopy = meta
  }

  /** Give a metadata-only copy its data, in place, as overlayfs does (Stager.fill): its inode, and
   *  so the number it shows, stays (until 2026-12-05 a new copy was renamed over it, and a file
   *  with other names in its layer, which records no origin, showed a new number). */
  async #complete(entry: Entry): Promise<Entry> {
    const started = nowMs()
    return this.#completed(entry, await this.stager.fill(this.requireUpper().path(entry.path), this.dataSource(entry)), started)
  }

  /** `entry`'s metadata-only copy has its data now (`bytes` of it). No copy-up of the name ran
   *  meanwhile (#inflight), nor a rename of it (renames copy up first, and wait for this one): the
   *  inode filled is the one the entry named, wherever the name went since (removed, replaced). */
  #completed(entry: Entry, bytes: number, started: number): Entry {
    entry.metacopy = false
    const rel = entry.path
    const current = this.resolver.resolve(rel)
    if (current !== entry) {
      if (current) return current
      throw fsError('ENOENT', rel)
    }
    this.resolver.set(rel, current)
    this.handles.promote(rel, this.requireUpper().path(rel))
    // Its blocks, and its ctime, changed.
    this.onAttrChange?.('/' + rel, false)
    this.#count({ fd: -1, bytes }, started)
    return current
  }

  #count(staged: Staged, started: number): void {
    this.counters.copyUps++
    this.counters.copyUpBytes += staged.bytes
    this.counters.copyUpMs += nowMs() - started
  }

  /** Move a finished copy into place. A copy-up is no change to the parent directory as users see
   *  it, so the parent keeps its times, as overlayfs keeps them. The kernel is told the attributes
   *  changed (a new ctime, a directory that now merges). */
  #commit(staged: Staged, rel: string): void {
    const upper = this.requireUpper()
    this.stager.commit(staged, upper.path(rel), upper.path(splitPath(rel)[0]))
    this.onAttrChange?.('/' + rel, false)
  }

  /**
   * Make the whiteout at the free name `target` a link of the shared one, as overlayfs makes the
   * whiteouts of its unlinks: a link allocates no inode, and on this project's ext4 (after
   * deletions) an allocation cost 270 µs against 18 µs for a link. Undefined when made, else the
   * error (the name is taken, the filesystem or the directory refuses): the caller then makes it
   * its other ways, which meet the same refusal and report it.
   */
  #linkWhiteout(target: HostPath, again = true): unknown {
    try {
      if (this.#sharedWhiteout === undefined) {
        const made = this.stager.tempPath()
        mknodSync(made, constants.S_IFCHR, 0)
        this.#sharedWhiteout = made
      }
      linkSync(this.#sharedWhiteout, target)
      return undefined
    } catch (err) {
      // Full (a filesystem's most links), or gone from the work directory: a new one, once.
      if (isCode(err, 'EMLINK') || (isCode(err, 'ENOENT') && this.#sharedWhiteout !== undefined && !existsSync(this.#sharedWhiteout))) {
        if (this.#sharedWhiteout !== undefined) rmSync(this.#sharedWhiteout, { force: true })
        this.#sharedWhiteout = undefined
        if (again) return this.#linkWhiteout(target, false)
      }
      return err
    }
  }

  /** Leave a whiteout at `rel` in the upper layer, replacing whatever non-directory is there. The
   *  parent must already be in the upper layer. */
  whiteout(rel: string): void {
    const upper = this.requireUpper()
    const target = upper.path(rel)
    if (this.#mknodWhiteouts) {
      // A link of the shared one when the name is free. Else, when linking is refused, made in
      // place (the inode then comes from the directory's own block group, not the work
      // directory's, where every copy-up's temp files come and go: ext4 without a journal scans
      // past recently freed inodes on each allocation). Over an upper object, made aside (a link
      // where it can be) and renamed over it, so that the name never goes missing.
      let inPlace = this.#linkWhiteout(target)
      if (inPlace === undefined) {
        this.counters.whiteouts++
        return
      }
      if (!isCode(inPlace, 'EEXIST')) {
        try {
          mknodSync(target, constants.S_IFCHR, 0)
          this.counters.whiteouts++
          return
        } catch (err) {
          inPlace = err
        }
      }
      const tmp = this.stager.tempPath()
      try {
        if (this.#linkWhiteout(tmp) !== undefined) mknodSync(tmp, constants.S_IFCHR, 0)
      } catch (err) {
        if (!isCode(err, 'EPERM', 'EOPNOTSUPP')) throw err
        // No device nodes on this filesystem, or not for this process: `.wh.` files from now on.
        this.#mknodWhiteouts = false
      }
      if (this.#mknodWhiteouts) {
        try {
          // Refused in place for another reason than a name already there (an immutable or
          // append-only directory: EPERM), the whiteout is refused.
          if (!isCode(inPlace, 'EEXIST')) throw inPlace
          renameSync(tmp, target)
        } catch (err) {
          rmSync(tmp, { force: true })
          throw err
        }
        this.counters.whiteouts++
        return
      }
    }
    const [dir, name] = splitPath(rel)
    const marker = upper.path(joinPath(dir, WHITEOUT_PREFIX + name))
    this.resolver.markersWritten()
    writeFileSync(marker, '', { mode: 0o600 })
    try {
      unlinkSync(target)
    } catch (err) {
      if (!isCode(err, 'ENOENT')) {
        // Still there (immutable, append-only): no whiteout either.
        rmSync(marker, { force: true })
        throw err
      }
    }
    this.counters.whiteouts++
  }

  /** The opaque xattrs this upper layer may still take, best first (see markOpaque): one is
   *  dropped at its first refusal. */
  readonly #opaqueXattrs: string[] = [...OPAQUE_XATTRS]

  /**
   * Mark the upper directory at host path `path` opaque: trusted.overlay.opaque, as the kernel writes
   * it; where trusted.* is refused (a daemon without CAP_SYS_ADMIN, as in rootless containers),
   * user.overlay.opaque, overlayfs's `userxattr` form; where xattrs are refused altogether, the OCI
   * `.wh..wh..opq` file. The union reads all three.
   */
  markOpaque(path: HostPath): void {
    while (this.#opaqueXattrs.length > 0) {
      const name = this.#opaqueXattrs[0]!
      try {
        return lsetxattrSync(path, name, 'y')
      } catch (err) {
        if (!isCode(err, 'EPERM', 'EOPNOTSUPP')) throw err
        // Refused by this directory (immutable, append-only), not by the filesystem: so is the mark.
        if (this.#takesXattr(name)) throw err
        this.#opaqueXattrs.shift()
      }
    }
    this.resolver.markersWritten()
    writeFileSync(hostJoin(path, OPAQUE_MARKER), '', { mode: 0o600 })
  }

  /** Whether a fresh directory of the upper filesystem takes the xattr `name`. */
  #takesXattr(name: string): boolean {
    const probe = this.stager.tempPath()
    try {
      mkdirSync(probe, { mode: 0o700 })
      lsetxattrSync(probe, name, 'y')
      return true
    } catch {
      return false
    } finally {
      rmSync(probe, { recursive: true, force: true })
    }
  }

  /**
   * Create a new object at `rel` in the upper layer with `make(hostPath, aside)`. When the upper
   * layer holds a whiteout there, the object is made aside, in the work directory, and moved over
   * it, so the name is never missing and never shows the lower object; a directory made over a
   * whiteout is opaque, since the lower directory it replaces must not show through. Returns
   * whether a whiteout was replaced. `defaultAcl`: the parent directory's, which an object made
   * aside must inherit all the same.
   */
  place(rel: string, isDir: boolean, make: (path: HostPath, aside: boolean) => void, defaultAcl?: Buffer): boolean {
    const upper = this.requireUpper()
    const [dir, name] = splitPath(rel)
    const clear = this.resolver.upperClear(rel)
    this.ensureUpperDir(this.resolver.get(dir))
    const target = upper.path(rel)
    const charWhiteout = !clear && whiteoutAt(target)
    const marker = clear || charWhiteout ? undefined : this.resolver.upperMarker(dir, name)
    if (!charWhiteout && !marker) {
      make(target, false)
      return false
    }
    // Made aside, in the work directory: in a directory of its own carrying the parent's default
    // ACL, if it has one, for the filesystem to derive the new object's mode and ACLs from, as it
    // would have in the parent.
    const scratch = defaultAcl === undefined ? undefined : this.stager.tempPath()
    if (scratch !== undefined) {
      mkdirSync(scratch, 0o700)
      lsetxattrSync(scratch, DEFAULT_ACL, defaultAcl!)
    }
    const tmp = scratch === undefined ? this.stager.tempPath() : join(scratch, 'new')
    try {
      make(tmp, true)
      if (isDir) this.markOpaque(tmp)
      if (isDir && charWhiteout) {
        exchange(tmp, target)
        rmSync(tmp, { force: true })
      } else {
        renameSync(tmp, target)
      }
    } catch (err) {
      rmSync(scratch ?? tmp, { recursive: true, force: true })
      throw err
    }
    if (scratch !== undefined) rmdirSync(scratch)
    if (marker) unlinkSync(marker)
    return true
  }
}

/** The process umask, read by setting it and putting it back (the only way without /proc). */
function readUmask(): number {
  const mask = process.umask(0o022)
  process.umask(mask)
  return mask
}

/** Files up to this size are copied up on the calling thread when copies are not fsync'd, or when
 *  nothing else waits: the copy costs less than the trip to the thread pool and back (copy-up.ts). */
const COPY_NOW_MAX = 64 * 1024

/** How long deferred copies gather before a syncfs flushes them: a flush writes each block of
 *  inodes and directories once for all the copies it covers, and one begun at once after the first
 *  copy covers few. (5 ms: chmod -R of 3,000 lower files took 0.80 s against 0.91 s with none. 20
 *  ms: chmod -R of the full fixture's 36,000 took 3-4% less than with 5, in 5 interleaved rounds
 *  of 5; 50 ms, no less than 20.) */
const FLUSH_WINDOW_MS = 20

/** At most this many deferred copies (each holds an fd) wait for their flush; past it, copies are
 *  flushed before they are named, as without deferral. It also bounds the fsyncs a settle of a
 *  whole tree may run on the calling thread. */
const DEFERRED_MAX = 512

/** What a copy-up needs to know of the object it copies. */
interface Source {
  size: number
  nlink: number
  /** Exact: recorded as the copy's origin. */
  ino: bigint
}

/** The lstat of a copy-up's source, without node:fs's BigIntStats (a BigInt per field: it cost
 *  more than the syscall, once per copy). */
function sourceOf(path: HostPath): Source {
  return sourceFrom(path, lstatNumbers(path, sourceStat))
}

/** sourceOf from the lstat numbers `st` of `path`. */
function sourceFrom(path: HostPath, st: Float64Array): Source {
  const ino = st[ST.INO]!
  // A double holds an inode number exactly up to 2^53; a bigger one is read again, exactly.
  return { size: st[ST.SIZE]!, nlink: st[ST.NLINK]!, ino: Number.isSafeInteger(ino) ? BigInt(ino) : lstatSync(path, { bigint: true }).ino }
}

const sourceStat = new Float64Array(ST_FIELDS)
const parentStat = new Float64Array(ST_FIELDS)

/** Copies by the upper directories their naming changes: the one each is named in, for a
 *  deferred rename the one it moves to as well, and those its deferred links are written into. */
function byDirectories(copies: Deferred[]): Array<{ dirs: string[]; copies: Deferred[] }> {
  const groups = new Map<string, { dirs: string[]; copies: Deferred[] }>()
  for (const copy of copies) {
    const at = splitPath(copy.moved?.from ?? copy.entry.path)[0]
    const to = splitPath(copy.entry.path)[0]
    const dirs = copy.moved && to !== at ? [at, to] : [at]
    // The directories its deferred links go into (cp -al: most often one other, for every file).
    for (const linked of copy.links ?? []) {
      const dir = splitPath(linked.path)[0]
      if (!dirs.includes(dir)) dirs.push(dir)
    }
    // Directory paths hold no NUL: the key is exact.
    const key = dirs.join('\0')
    const group = groups.get(key)
    if (group) group.copies.push(copy)
    else groups.set(key, { dirs, copies: [copy] })
  }
  return [...groups.values()]
}

/** A path that opens a deferred copy, which has no name yet, through its fd. */
export function stagedPath(fd: number): string {
  return `/proc/self/fd/${fd}`
}

/** The origin a copy records: the lower inode, unless the lower file has other links, which the
 *  copy does not keep (then it must not keep their inode number). */
function originOf(st: Source): bigint | undefined {
  return st.nlink === 1 ? st.ino : undefined
}

/** Swap two paths atomically; where renameat2 is missing, fall back to remove-then-rename. */
function exchange(a: HostPath, b: HostPath): void {
  try {
    renameat2Sync(a, b, RENAME_EXCHANGE)
  } catch (err) {
    if (!isCode(err, 'EINVAL', 'ENOSYS')) throw err
    rmSync(b, { force: true })
    renameSync(a, b)
  }
}

