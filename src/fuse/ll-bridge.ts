/**
 * The low-level bridge: libfuse3's node-id protocol (native/fuse-ll-*.c) driven from the libuv loop,
 * translated to Union calls through the node table (nodes.ts). The default bridge.
 *
 * Over the fuse-native bridge it gains what the union's semantics need: nanosecond times and
 * UTIME_OMIT/UTIME_NOW, 64-bit inode numbers, rename flags (RENAME_NOREPLACE, RENAME_EXCHANGE), the
 * caller's uid/gid for new files, readdirplus, and exact kernel caching: attributes the kernel cannot
 * see change (a directory copied up turns into a merged one; hard-link siblings) are invalidated by
 * notification, so entry and attribute timeouts can be long.
 *
 * Replies are sent once per request, at once (#answerNow) or from the promise that settles it;
 * errors go through toErrno, the one place where errno names become numbers.
 */
import { closeSync, constants, readFileSync } from 'node:fs'
import { codeCache } from '../sys/code-cache.js'
import {
  type Ctx, type EntryOut, FAST_FH, RENAME_EXCHANGE, type Request, SETATTR_ATIME, SETATTR_ATIME_NOW, SETATTR_GID,
  SETATTR_MODE, SETATTR_MTIME, SETATTR_MTIME_NOW, SETATTR_SIZE, SETATTR_UID, Session,
} from '../sys/fuse-ll.js'
import { relPath, splitPath } from '../layers/layer.js'
import { hostBytes } from '../sys/names.js'
import { type TimeNs, XATTR_CREATE, XATTR_REPLACE } from '../sys/native.js'
import type { Owner } from '../union/namespace.js'
import type { Attr, AttrChange, CopySource, DirEntry, Union } from '../union/union.js'
import { toErrno } from './errno.js'
import { ACL_XATTRS, type IdMap } from './id-map.js'
import { type Node, NodeTable } from './nodes.js'
import { OpenFiles, PASSTHROUGH_READ_MIN, type PassthroughPolicy, STALE } from './open-files.js'
import { ReadAhead, listingOrder } from './read-ahead.js'
import { STATS_XATTR } from './stats-xattr.js'

export interface LowLevelOptions {
  fsname: string
  allowOther: boolean
  readOnly: boolean
  entryTimeout: number
  attrTimeout: number
  negativeTimeout: number
  /** Busy-poll /dev/fuse this long (µs) once every request is answered; 0 never. */
  spinUs: number
  /** Which files the kernel reads and writes itself (see OpenFiles). */
  passthrough: PassthroughPolicy
  /** POSIX ACLs enforced by the kernel (FUSE_POSIX_ACL). */
  acl: boolean
  /** Ids shown shifted or squashed (fuse-overlayfs's uidmapping and squash_to_*); none: as stored. */
  ids?: IdMap
  /** mount(8) flags for the mount (see MountOptions in sys/fuse-ll.ts). */
  kernelFlags?: string[]
  debug: boolean
  log: (line: string) => void
}

const NS = 1_000_000_000n
const NO_NODES: readonly number[] = []

/** A setattr request's changes, with its owner as stored (`ids`); the size goes through the open
 *  handle when the kernel gave one. */
function attrChange(r: Request & { op: 'setattr' }, ids: IdMap | undefined): AttrChange {
  const uid = ids ? ids.storedUid(r.uid) : r.uid
  const gid = ids ? ids.storedGid(r.gid) : r.gid
  return {
    mode: r.valid & SETATTR_MODE ? r.mode : undefined,
    uid: r.valid & SETATTR_UID ? uid : undefined,
    gid: r.valid & SETATTR_GID ? gid : undefined,
    size: r.valid & SETATTR_SIZE ? r.size : undefined,
    atime: timeArg(r.valid, SETATTR_ATIME, SETATTR_ATIME_NOW, r.atimeSec, r.atimeNsec),
    mtime: timeArg(r.valid, SETATTR_MTIME, SETATTR_MTIME_NOW, r.mtimeSec, r.mtimeNsec),
  }
}

/** Nanoseconds since the epoch as [seconds, nanoseconds], nanoseconds in [0, 1e9). */
function splitNs(ns: bigint): [number, number] {
  const sec = ns / NS - (ns % NS < 0n ? 1n : 0n)
  return [Number(sec), Number(ns - sec * NS)]
}

/** What is kept of a directory removed while the kernel holds it. */
interface RemovedDir {
  attr: Attr
  upper: boolean
  /** Its xattrs, as stored (taken at the rmdir: nothing of it is left to read afterwards). */
  xattrs: Map<string, Buffer>
}

function timeArg(valid: number, setBit: number, nowBit: number, sec: number, nsec: number): TimeNs {
  if (valid & nowBit) return 'now'
  if (valid & setBit) return BigInt(sec) * NS + BigInt(nsec)
  return null
}

/** How many file handles C holds for opens for writing it answers (a burst of them in one batch
 *  of requests uses several before JS gives more). */
const OPEN_HANDLES_GIVEN = 8
/** Node ids C is given at a time for the files it looks up (#giveLookupIds). */
const LOOKUP_IDS = 1024

export class LowLevelBridge {
  readonly #union: Union
  readonly #options: LowLevelOptions
  readonly #nodes = new NodeTable()
  /** Directory listings being read, by node id (there are no directory handles: opendir is ENOSYS),
   *  oldest first: taken at offset 0, dropped at the end of the listing or when evicted. */
  readonly #listings = new Map<number, Listing>()
  /** Directories removed while the kernel still holds them (an open fd, a working directory): the
   *  attributes they had, for what is still asked of them, and whether they were in the upper layer
   *  (see #setattrRemoved), and their xattrs (see #xattrRemoved). */
  readonly #removedDirs = new WeakMap<Node, RemovedDir>()
  #readBuffer = Buffer.allocUnsafeSlow(128 * 1024)
  /** Buffers of reads that waited on the thread pool, for the next ones: the reply copies the bytes
   *  out, and a new buffer per read left RSS to the garbage collector's pace. As many as there were
   *  such reads in flight at once. */
  readonly #spareBuffers: Buffer[] = []
  /** The next files of a directory read uncached, read ahead (see #uncachedRead). */
  readonly #ahead: ReadAhead
  /** First opens and copies that found their file uncached, for the statistics (the batches read
   *  ahead are ReadAhead.started), and those here that found it cached. */
  #uncachedOpens = 0
  #cachedOpens = 0
  /** The nodes whose attributes the kernel drops or replaces once the request being answered on
   *  the calling thread succeeds (see #answering): a copy-up on the way needs no invalidation of
   *  them. */
  #replying: readonly number[] = NO_NODES
  /** Those of #replying whose invalidation was left to the reply, to be made if it fails. */
  readonly #leftToReply: number[] = []
  readonly #session: Session
  readonly #open: OpenFiles
  /** Setattrs of small lower files may be answered in C (see #markCopyable). */
  #cow = false
  /** File handles C holds for the opens for writing it may answer (#giveOpenHandles). */
  #openHandlesGiven = 0
  /** Node ids of the last block C was given (#giveLookupIds) that no answered lookup named yet. */
  #lookupIdsLeft = 0
  /** The directories with lower layers a rename is moving, and their trees copying up (#unmarkLowerTrees). */
  readonly #movingTrees: Node[] = []
  /** The marked directories only in the upper layer (see #unmarkMovedDirs). */
  readonly #soleDirs = new Set<Node>()
  /** The marked files in the upper layer, which C answers for from their host paths (see
   *  #unmarkMovedDirs). */
  readonly #upperFiles = new Set<Node>()
  /** Opens whose tryOpen #answerNow made, found waiting for a copy-up: #handle does not try again. */
  readonly #openTried = new WeakSet<Request>()
  /** Directories marked for their lookups (#markProbe) whose host paths a rename may move. */
  readonly #movableProbes = new Set<Node>()
  /**
   * By node id: the file opened for a node's opens answered in C (FAST_FH), its anchor: what the
   * union reads, fstats or seeks for them, and what keeps the data of such a file once its name is
   * gone. Closed with the node's last fast open (Session.fastWatch).
   */
  readonly #anchors = new Map<number, number>()
  readonly counts: Record<string, number> = {}
  #closed!: () => void
  readonly closed: Promise<void>
  /** Page invalidations sent from the thread pool and not done (see #dropSiblingPages). */
  readonly #drops = new Set<Promise<unknown>>()

  constructor(union: Union, options: LowLevelOptions) {
    this.#union = union
    this.#options = options
    this.closed = new Promise((resolve) => { this.#closed = resolve })
    this.#session = new Session((r) => this.#dispatch(r), (reason) => {
      if (reason && options.debug) options.log(`layerfs: session ended: ${reason}`)
      this.#closed()
    })
    this.#open = new OpenFiles(this.#session, options.passthrough)
    this.#ahead = new ReadAhead({
      order: (path) => union.dirOrder(path),
      fetch: (paths) => union.prefetch(paths, STORE_MAX),
      opened: () => this.#session.firstOpens + this.#cachedOpens,
    })
    // Setattrs that copy a small lower file up are answered in C (native/fuse-ll-cow.c), where the
    // union would defer the copy's flush itself; not where ids are shown mapped (C shows them as
    // stored).
    const behind = options.ids ? undefined : union.copyBehind
    if (behind) {
      this.#session.cowConfigure(behind.dir, behind.maxSize, options.attrTimeout, behind.exactModes, options.negativeTimeout > 0 ? options.negativeTimeout : 0, options.entryTimeout,
        options.passthrough === 'on' ? PASSTHROUGH_READ_MIN : 0, behind.meta)
      this.#session.cowRoom(behind.room)
      union.onCopyRoom = (room) => this.#session.cowRoom(room)
      // A directory copied up (by the union, or in C and adopted) has its later setattrs answered
      // in C too, on the copy (chown -R changes a directory after its files, whose copy-ups copied
      // it up). The mark replaces one it had as a lower directory: C must not copy it again.
      union.onDirCopiedUp = (path, upperPath) => {
        const node = this.#nodes.byPath(path)
        if (!node) return
        if (this.#session.cowAllowUpperDir(node.id, upperPath, union.shownInoSync(path), node.parent?.id, node.parent && node.name)) {
          node.cow = true
          if (node.parent) node.named = true
        } else {
          this.#unmark(node)
        }
      }
      // A lower file renamed into a directory reaches its disk only after its copy's flush: C would
      // answer the lookup of the new name as missing meanwhile (#markProbe).
      union.onMovePending = (dir) => this.#unprobe(this.#nodes.byPath(dir))
      // A link made before the disk has it keeps only its own name from C's lookups of missing
      // names in its directory: cp -al looks every new name up first.
      union.onLinkPending = (path) => {
        const [node, name] = this.#dirAndName(path)
        if (node?.probe && !this.#session.pendingAdd(node.id, name)) this.#unprobe(node)
      }
      union.onLinkWritten = (path) => {
        const [node, name] = this.#dirAndName(path)
        if (node) this.#session.pendingDrop(node.id, name)
      }
      // Once the renames into it are written, C may answer them again (renaming files in place
      // looks each new name up first).
      union.onMovesWritten = (dir) => {
        const node = this.#nodes.byPath(dir)
        try {
          if (node && !node.probe) this.#markProbe(node, dir)
        } catch {
          // Unreadable now: its lookups stay JS's.
        }
      }
      this.#cow = true
    }
    union.onAttrChange = (path, ctimeOnly) => {
      const node = this.#nodes.byPath(path)
      if (!node || node.attrsExpired || (ctimeOnly && node.ctimeExpired)) return
      if (this.#replying.includes(node.id)) this.#leftToReply.push(node.id)
      else this.#invalidate(node)
    }
  }

  async mount(mountpoint: string): Promise<void> {
    await this.#session.mount(mountpoint, {
      fsname: this.#options.fsname, subtype: 'layerfs', allowOther: this.#options.allowOther,
      defaultPermissions: true, readOnly: this.#options.readOnly, maxWrite: 1 << 20, debug: this.#options.debug,
      spinUs: this.#options.spinUs, passthrough: this.#options.passthrough !== 'off', kernelFlags: this.#options.kernelFlags,
      posixAcl: this.#options.acl,
    })
    // The root is never looked up or listed as an entry: it is marked here (and for its lookups
    // again at its listings, #readdir).
    if (this.#cow) {
      this.#giveLookupIds()
      this.#markDir(this.#nodes.root, '/', this.#union.getattrSync('/'))
    }
    // Opens for writing of small lower files by root are answered in C where JS would pass them
    // through (#adoptOpen).
    if (this.#cow && this.#open.policy !== 'off') this.#giveOpenHandles()
  }

  unmount(): void {
    this.#session.unmount()
  }

  /**
   * Settles once the page invalidations in flight are done (at most `ms` later). One can wait in the
   * kernel for a request this thread has yet to answer: a daemon that exited before answering it
   * would leave its pool thread, and so its /dev/fuse, waiting for good (see #dropSiblingPages).
   */
  async dropsSettled(ms: number): Promise<void> {
    const deadline = Date.now() + ms
    while (this.#drops.size > 0 && Date.now() < deadline) {
      await Promise.race([Promise.all(this.#drops), new Promise((resolve) => setTimeout(resolve, deadline - Date.now()).unref())])
    }
  }

  /** Attributes only (offset −1): the kernel then takes no inode or page lock, only a spinlock, so
   *  this cannot deadlock on a lock a request still waiting for us holds, and it is sent at once,
   *  before the reply to the request that caused it: whoever sees that reply sees fresh attributes. */
  #invalidate(node: Node): void {
    this.#session.notifyInvalInode(node.id, -1, 0)
  }

  /**
   * Run `step`, the synchronous part of a request whose success makes the kernel drop or replace
   * the attributes of the nodes `ids` (a setattr's reply carries its node's; after a rename the
   * kernel drops both directories'). The attribute changes `step` makes on the way to them (a
   * copy-up) then need no invalidation; should it fail, or leave the request for later (false),
   * they get it after all.
   */
  #answering(ids: readonly number[], step: () => boolean): boolean {
    this.#replying = ids
    let done = false
    try {
      done = step()
      return done
    } finally {
      this.#replying = NO_NODES
      const left = this.#leftToReply.length > 0 ? this.#leftToReply.splice(0) : NO_NODES
      if (!done) {
        for (const id of left) {
          const node = this.#nodes.get(id)
          if (node) this.#invalidate(node)
        }
      }
    }
  }

  /** An xattr value as the kernel is shown it: an ACL's ids mapped (see IdMap). */
  #shownXattr(name: string, value: Buffer | undefined): Buffer | undefined {
    return value !== undefined && this.#options.ids && ACL_XATTRS.has(name) ? this.#options.ids.presentAcl(value) : value
  }

  /** Attributes as the kernel is shown them (see IdMap). */
  #shown(attr: Attr): Attr {
    return this.#options.ids ? this.#options.ids.present(attr) : attr
  }

  #entry(node: Node | undefined, attr: Attr): EntryOut {
    return {
      ino: node ? node.id : 0, generation: 0, attr: this.#shown(attr),
      attrTimeout: this.#attrTimeout(node, attr, true), entryTimeout: this.#options.entryTimeout,
    }
  }

  /**
   * Reply with a node's attributes. Those of a copy-up not named yet are given no time to live
   * (#attrTimeout), and the node remembers it: when the copy is named, which moves its ctime, the
   * kernel holds no attributes to invalidate (chmod -R sends no stat after its chmods, and was
   * spared a notification per file).
   */
  #replyAttr(req: number, node: Node | undefined, attr: Attr): void {
    const timeout = this.#attrTimeout(node, attr)
    if (node) {
      // A copy-up may change the number a file shows (see 'link'): its other names are found by it.
      this.#nodes.setIno(node, attr.ino)
      node.attrsExpired = timeout === 0
      node.ctimeExpired = false
    }
    this.#session.replyAttr(req, this.#shown(attr), timeout)
  }

  /**
   * How long the kernel may keep a node's attributes. Not at all for another name of a file that
   * passes through while open: its writes never reach the daemon, which therefore cannot tell this
   * name's kernel inode (one per name) that the size and times moved. Only a link made while the
   * file was open can be such a name (a file with several names never passes through).
   */
  #attrTimeout(node: Node | undefined, attr: Attr, entry = false): number {
    if (attr.unnamed) return 0
    // An entry reply may not reach the kernel (a readdirplus entry that did not fit): only one that
    // gives the attributes time to live is known to leave the node holding valid ones.
    if (entry && node) {
      node.attrsExpired = false
      node.ctimeExpired = false
    }
    if (attr.nlink > 1 && (attr.mode & S_IFMT) === S_IFREG) {
      for (const other of this.#nodes.withIno(attr.ino)) if (other !== node && this.#open.passesThrough(other.id)) return 0
    }
    return this.#options.attrTimeout
  }

  #node(id: number): Node {
    const node = this.#nodes.get(id)
    if (!node) throw Object.assign(new Error(`stale node ${id}`), { code: 'ESTALE' })
    return node
  }

  #path(node: Node): string {
    const path = this.#nodes.path(node)
    if (path === undefined) throw Object.assign(new Error('name gone'), { code: 'ENOENT' })
    return path
  }

  #childPath(parentId: number, name: string): { parent: Node; path: string } {
    const parent = this.#node(parentId)
    const path = this.#nodes.childPath(parent, name)
    if (path === undefined) throw Object.assign(new Error('parent gone'), { code: 'ENOENT' })
    return { parent, path }
  }

  /** The node of the directory of the merged-view `path` (if the kernel holds one), and the name. */
  #dirAndName(path: string): [Node | undefined, string] {
    const [dir, name] = splitPath(relPath(path))
    return [this.#nodes.byPath('/' + dir), name]
  }

  /** Reply to a request that creates a name: look the new object up and count the reference. */
  #replyNewEntry(req: number, parent: Node, name: string, path: string, attr = this.#union.getattrSync(path)): { node: Node; attr: Attr } {
    const node = this.#nodes.remember(parent, name, attr.ino)
    this.#session.replyEntry(req, this.#entry(node, attr))
    // A name given to a copy not named yet (a deferred link) took its attributes with no time to
    // live: naming the copy later needs no invalidation of it (Union.onAttrChange).
    if (attr.unnamed) node.attrsExpired = true
    return { node, attr }
  }

  #dispatch(r: Request): void {
    if (r.op === 'open' && r.answered && r.copy === undefined) {
      // No request: a first open answered in C read its file from the disk. JS reads the next
      // ones ahead.
      const node = this.#nodes.get(r.ino)
      if (node) this.#uncachedRead(node)
      return
    }
    // (A directory C copied up for a rename it answered came with no request.)
    if (!(r.op === 'setattr' && r.copy?.dir && r.copy.lifted)) this.counts[r.op] = (this.counts[r.op] ?? 0) + 1
    if (r.op === 'forget') {
      this.#forget(r.ino, r.nlookup)
      return
    }
    if (r.op === 'setattr' && r.copy) {
      this.#adoptCopy(r, r.copy)
      return
    }
    if (r.op === 'open' && r.copy) {
      this.#adoptOpen(r, r.copy)
      return
    }
    if (r.op === 'rename' && r.copy) {
      this.#adoptMove(r, r.copy)
      return
    }
    if (r.op === 'link' && r.copy) {
      this.#adoptLink(r, r.copy)
      return
    }
    if (r.op === 'lookup' && r.child !== undefined) {
      if (r.shownIno === undefined) this.#lookedUp(r.child)
      else this.#lookedUpNew(r.parent, r.name, r.child, r.shownIno, r.depth ?? -1, r.layers, r.held)
      return
    }
    let answered: boolean
    try {
      this.#unmarkChanged(r)
      if ((r as { fh?: number }).fh === FAST_FH && !this.#fromFastOpen(r as Request & { fh: number; ino: number })) return
      answered = this.#answerNow(r)
    } catch (err) {
      this.#fail(r, err)
      return
    }
    if (!answered) this.#handle(r).catch((err: unknown) => this.#fail(r, err))
  }

  /** A marked directory's lookup answered in C (see Session.cowAllow's `name`): the kernel holds
   *  one more reference to the node, and its attributes, given the usual time to live. No forget
   *  of it came between (C answers none while one waits for JS). */
  #lookedUp(id: number): void {
    const node = this.#nodes.get(id)
    if (!node) {
      this.#options.log(`layerfs: a lookup answered in C named node ${id}, which is gone`)
      return
    }
    this.#nodes.counted(node)
    node.attrsExpired = false
    node.ctimeExpired = false
  }

  /** The first lookup of a lower file (`held`: one too big for C to copy) or, with `layers`, a
   *  lower directory, answered in C (Session.positiveAllow): node `id`, one JS reserved
   *  (#giveLookupIds), marked in C as #markCopyable marks one it looks up, answers for `name` in the
   *  directory node `parentId` from now on. No request or forget came between. A directory is then
   *  marked for the lookups in it as JS marks one it looks up (#markProbe): C leaves that to JS,
   *  which knows of the names not written there yet. */
  #lookedUpNew(parentId: number, name: string, id: number, shownIno: number, depth: number, layers?: number, held?: 'held' | 'passed'): void {
    const parent = this.#nodes.get(parentId)
    if (!parent) {
      this.#options.log(`layerfs: a lookup answered in C gave node ${id} a name in node ${parentId}, which is gone`)
      return
    }
    const had = this.#nodes.child(parent, name)
    if (had) this.#options.log(`layerfs: a lookup answered in C gave ${name} a new node while node ${had.id} had it`)
    const node = this.#nodes.adopt(id, parent, name, shownIno)
    // The union learns what C found, as its own lookup would have (its copy-up at an open for
    // writing answered in C next, touch(1)'s, walked the layers for it again).
    const path = this.#nodes.path(node)
    try {
      if (path !== undefined) this.#union.learnLowerSync(path, depth, layers)
    } catch {
      // Its directory could not be resolved: the union looks the name up itself when it needs it.
    }
    node.cow = true
    node.named = true
    if (--this.#lookupIdsLeft < LOOKUP_IDS / 4) this.#giveLookupIds()
    if (layers === undefined) {
      // A small file's first open may be C's; a held one's opens for reading pass through in C, or
      // are JS's (#markCopyable).
      if (held === undefined) node.opened = true
      if (held !== 'held') node.fast = true
      return
    }
    try {
      if (path !== undefined) this.#markProbe(node, path)
    } catch {
      // Unreadable now: its lookups stay JS's.
    }
  }

  /** A block of node ids for the lookups C answers (Session.lookupIds), in place of what is left of
   *  the last one. */
  #giveLookupIds(): void {
    this.#session.lookupIds(this.#nodes.reserve(LOOKUP_IDS), LOOKUP_IDS)
    this.#lookupIdsLeft = LOOKUP_IDS
  }

  #forget(id: number, count: number): void {
    const node = this.#nodes.get(id)
    this.#nodes.forget(id, count)
    if (node === undefined || this.#nodes.get(id) !== undefined) return
    // Gone from JS, its name may be looked up in C again, unless the disk does not show it yet.
    if (node.cow || node.named) {
      const path = this.#nodes.path(node)
      this.#unmark(node, path !== undefined && this.#union.unwrittenSync(path))
    }
    this.#unmarkMade(node, true)
    this.#unprobe(node)
    if (!node.fast) return
    this.#session.fastDeny(id)
    this.#releaseAnchor(id) // only when its watch came too late (see #anchor)
  }

  /**
   * Marks `node`, the lower file `src` (see Union.copyBehindSource), shown as inode `ino`: its next
   * setattr that changes only mode, owner or times may be answered in C, which copies the file up
   * (native/fuse-ll-cow.c, #adoptCopy). `chmod -R` and `chown -R` of a layer's files are made of
   * them. A directory in the upper layer (only there, `source.sole`, or merging with lower ones) is
   * marked for its getattrs and its setattrs, made on it by path (tar x changes every directory it
   * made at its end), and a file there (`source.file` 'upper') for its getattrs, xattr reads, first open,
   * setattrs of mode, owner and times and an open for writing, all made on its host path (a
   * container started again reads, stats and changes the files it made before). Any other lower
   * file ('held': too big, or with other names) is marked for its getattrs and xattr reads
   * alone (a program's start asks for its security.capability). The mark goes before anything
   * else may change the node (#unmarkChanged).
   */
  #markCopyable(node: Node, source: CopySource | undefined, attr: Attr): void {
    if (source === undefined) return
    // A file never opened: C may answer its first open as well (native/fuse-ll-fast.c), and the
    // open that reaches JS instead says whether it is that first one (#replyOpen).
    const first = source.dst === undefined && source.file !== 'held' && !node.opened
    const busy = source.dst === undefined && this.#open.handleOf(node.id) !== undefined
    const kind = source.file !== 'held' ? source.file ?? 'lower' : this.#open.passesLower(attr.size, attr.mode) ? 'passed' : 'held'
    if (!this.#session.cowAllow(node.id, source.src, attr.ino, source.dst, source.sole ?? source.lone, first, busy, node.parent?.id, node.parent ? node.name : undefined, kind)) return
    node.cow = true
    // Its opens answered in C are counted as fast opens (#fastOpens).
    if (kind === 'passed') node.fast = true
    if (node.parent) node.named = true
    if (source.sole) this.#soleDirs.add(node)
    if (source.file === 'upper') this.#upperFiles.add(node)
    if (!first) return
    node.opened = true
    node.fast = true
  }

  /**
   * `node`, a file just made and open as `fh`, holds no security.capability: C answers the getxattr
   * of it that a chown and the first write of the file make (native/fuse-ll-cow.c, CAPS); and while
   * that open lives, the setattrs that change its mode, owner, times or size (tar x makes three per
   * file) and the setxattr of its access ACL (cp -a makes one per file) are made and answered in C
   * through a copy of the open's descriptor, and, for a file made with a name (`named`), its
   * getattrs (an O_TMPFILE file's attributes get no time to live until a link names it). Not with
   * ids mapped (C would have to map them), nor for a file made set-ID: whether a file has those
   * bits is JS's to know (its handles remember it), so a setattr giving them one goes to JS too.
   */
  #markMade(node: Node, fh: number, mode: number, named: boolean): void {
    let fd = -1
    try {
      if (!this.#options.ids && (mode & 0o6000) === 0) fd = this.#union.openFile(fh).fd
    } catch {
      // Answered already: without a descriptor, its setattrs simply stay JS's.
    }
    node.noCaps = this.#session.made(node.id, fh, fd, this.#options.attrTimeout, named)
    node.made = node.noCaps && fd >= 0
  }

  /** Before a setattr JS answers (one C left to it: a set-ID bit, ctime, a change queued behind a
   *  request for JS), whose change C would not know of: the node's setattrs come as requests
   *  again. With `all`, before a request that may give the node security.capability, or another
   *  name that could (link): its getxattrs too. */
  #unmarkMade(node: Node | undefined, all: boolean): void {
    if (!node || !(node.made || (all && node.noCaps))) return
    node.made = false
    if (all) node.noCaps = false
    this.#session.madeEnd(node.id, all)
  }

  /** `node`, the directory at `path` with attributes `attr`, as looked up or made: marked for its
   *  getattrs and setattrs where C may answer them (#markCopyable) and for the lookups in it
   *  (#markProbe). One C could not mark with its name keeps C's first lookups from its parent
   *  (#taint: they would answer that name with a new node). */
  #markDir(node: Node, path: string, attr: Attr): void {
    this.#markCopyable(node, this.#union.copyBehindSource(path, attr), attr)
    if (!node.named) this.#taint(node.parent)
    this.#markProbe(node, path)
  }

  /** `node`, the directory at `path`: the lookup of a name missing from all its layers is answered in
   *  C (native/fuse-ll-cow.c, fll_cow_lookup), every file made in it and every name probed there
   *  that is not. The mark goes before anything may put a name there that the disk does not hold
   *  yet, or move the directory (#unmarkChanged). */
  #markProbe(node: Node, path: string): void {
    const where = this.#union.probeDirsSync(path)
    node.positive = false
    if (!where || !this.#session.probeAllow(node.id, where.dirs)) return
    node.probe = true
    if (where.movable) this.#movableProbes.add(node)
    // And its first lookups of lower files and directories, unless it may hold a name C would find
    // otherwise than the union shows it: a node for it C does not know (#taint), or, the node or its
    // files forgotten meanwhile, a name not written yet.
    node.positive = !node.tainted && !this.#union.unwrittenInSync(path) && this.#session.positiveAllow(node.id, true)
  }

  /** Lookups in the node go to JS again. */
  #unprobe(node: Node | undefined): void {
    if (!node?.probe) return
    node.probe = false
    node.positive = false
    this.#movableProbes.delete(node)
    this.#session.probeDeny(node.id)
  }

  /**
   * The directory `dir` may hold a node for a lower file or directory that C does not know by its
   * name (its mark and name taken away while it still answers for it, or never given), or a name the
   * disk does not show as the union does yet (a copy not named, a rename's old name not whited out):
   * C's first lookups of names in it would answer that name with a new node, and the disk's object.
   * They end, for as long as the directory's node lives.
   */
  #taint(dir: Node | undefined): void {
    if (!dir || dir.tainted) return
    dir.tainted = true
    if (!dir.positive) return
    dir.positive = false
    this.#session.positiveAllow(dir.id, false)
  }

  /** A file looked up or listed by JS, with attributes `attr`: marked where C may answer for it
   *  (#markCopyable). One C could not mark with its name (C's first lookups, which answer lower
   *  files, would give it a second node), or a name not written yet (`unwritten`), keeps C from
   *  looking names up in its directory (#taint). A file with no `source` C answers nothing for. */
  #markFile(node: Node, attr: Attr, source: CopySource | undefined, unwritten: boolean): void {
    if (source !== undefined) this.#markCopyable(node, source, attr)
    if ((source !== undefined && !node.named) || unwritten) this.#taint(node.parent)
  }

  /** The node's setattrs go to JS again, and C forgets its name: with `taint`, as the node may still
   *  answer for it, C no longer looks files up in its directory (#taint). */
  #unmark(node: Node | undefined, taint = true): void {
    if (!node || !(node.cow || node.named)) return
    node.cow = false
    node.named = false
    this.#soleDirs.delete(node)
    this.#upperFiles.delete(node)
    this.#session.cowDeny(node.id)
    if (taint) this.#taint(node.parent)
  }

  /** A rename that moves a directory (or exchanges one) moves the host paths of everything marked
   *  under it. A directory only in the upper layer is renamed in place, so all directories beneath
   *  it are such directories, and all files beneath it are in the upper layer: the marks of both
   *  kinds, which C answers from their paths, all go (they come back at their next lookup or
   *  listing). One with lower layers is EXDEV (namespace.ts), or, with redirect_dir, has its
   *  tree's marks taken away whatever their kind (#unmarkLowerTrees). */
  #unmarkMovedDirs(r: Request & { op: 'rename' }): void {
    if (this.#union.redirectDir) this.#unmarkLowerTrees(r)
    if (this.#soleDirs.size === 0 && this.#movableProbes.size === 0 && this.#upperFiles.size === 0) return
    const union = this.#union
    const moves = union.isDirSync(this.#childPath(r.parent, r.name).path) ||
      ((r.flags & RENAME_EXCHANGE) !== 0 && union.isDirSync(this.#childPath(r.newparent, r.newname).path))
    if (!moves) return
    // (Not the root's: it never moves, nor has a directory above it that could.)
    const root = this.#nodes.root
    for (const node of [...this.#soleDirs]) if (node !== root) this.#unmark(node)
    for (const node of [...this.#movableProbes]) if (node !== root) this.#unprobe(node)
    // (The files in the upper layer, all of them: a file under the directory moves with it.)
    for (const node of [...this.#upperFiles]) this.#unmark(node)
  }

  /** With redirect_dir, a rename of a directory with lower layers copies its whole tree up first
   *  (namespace.ts, movableDir): the marks of all the nodes under it go, those of lower files and
   *  directories too, which C answers from their lower paths. The copies mark their directories
   *  again, as in the upper layer (onDirCopiedUp), at paths the move then changes, and a rename that
   *  waits for its copies lets other requests mark nodes there meanwhile: once it has moved, or been
   *  refused, the marks go again (#movedTrees), and the kernel is told that the nodes' attributes
   *  changed (the copies' ctimes, the links of hard-linked files and of directories that merged). */
  #unmarkLowerTrees(r: Request & { op: 'rename' }): void {
    this.#movingTrees.length = 0
    const names: Array<[number, string]> = [[r.parent, r.name]]
    if ((r.flags & RENAME_EXCHANGE) !== 0) names.push([r.newparent, r.newname])
    for (const [parentId, name] of names) {
      const parent = this.#nodes.get(parentId)
      const dir = parent && this.#nodes.child(parent, name)
      const path = dir && this.#nodes.path(dir)
      if (!dir || path === undefined || !this.#union.dirHasLowerSync(path)) continue
      this.#movingTrees.push(dir)
      this.#unmarkTree(dir)
    }
  }

  #unmarkTree(dir: Node): void {
    for (const node of [dir, ...this.#nodes.descendants(dir)]) {
      this.#unmark(node)
      this.#unprobe(node)
    }
  }

  /** After a rename that may have copied trees up (#unmarkLowerTrees), done or refused: their marks
   *  go again, and the kernel drops their nodes' attributes. */
  #movedTrees(): void {
    for (const dir of this.#movingTrees.splice(0)) {
      this.#unmarkTree(dir)
      for (const node of [dir, ...this.#nodes.descendants(dir)]) if (!node.attrsExpired && this.#nodes.get(node.id) === node) this.#invalidate(node)
    }
  }

  /** Before a request that may change a node or take its name: the node's mark goes (see
   *  #markCopyable). A request C could see coming is unmarked before C sees the next one. */
  #unmarkChanged(r: Request): void {
    switch (r.op) {
      case 'setxattr': case 'removexattr': case 'link':
        this.#unmarkMade(this.#nodes.get(r.ino), true)
        return this.#unmark(this.#nodes.get(r.ino))
      case 'setattr':
        this.#unmarkMade(this.#nodes.get(r.ino), false)
        return this.#unmark(this.#nodes.get(r.ino))
      case 'ioctl':
        return this.#unmark(this.#nodes.get(r.ino))
      case 'open':
        if ((r.flags & (O_WRONLY | O_RDWR | O_TRUNC)) !== 0) this.#unmark(this.#nodes.get(r.ino))
        return
      case 'unlink': case 'rmdir':
        return this.#unmarkChild(r.parent, r.name)
      case 'rename':
        this.#unmarkChild(r.parent, r.name)
        // The file a rename replaces loses its name for good, and the name then shows what moved
        // there, which C looks up as the union shows it: an upper file is JS's, and a lower file
        // renamed there keeps the directory's lookups from C until it is written (onMovePending).
        // So its directory stays C's for the first lookups of other files (sed -i and atomic
        // replaces rename over each file they change), unless the rename fails (#fail) or is an
        // exchange, where the file keeps a name.
        this.#unmarkChild(r.newparent, r.newname, (r.flags & RENAME_EXCHANGE) !== 0)
        return this.#unmarkMovedDirs(r)
      default:
    }
  }

  #unmarkChild(parentId: number, name: string, taint = true): void {
    const parent = this.#nodes.get(parentId)
    if (!parent) return
    const child = this.#nodes.child(parent, name)
    this.#unmark(child, taint)
    this.#unprobe(child)
    if (child?.made) this.#session.writerEnd(child.id)
  }

  /**
   * A setattr answered in C, which copied the node's lower file up and made the change on the copy
   * (see #markCopyable): the union takes the copy over, as if it had made it. Nothing came between
   * that answer and this. The reply gave the attributes no time to live, as #replyAttr gives those
   * of any copy not named yet. A lower directory's copy was named in C already, and C marked it
   * as one in the upper layer: the union only takes note (and onDirCopiedUp marks it so again).
   */
  #adoptCopy(r: Request & { op: 'setattr' }, copy: NonNullable<(Request & { op: 'setattr' })['copy']>): void {
    const node = this.#nodes.get(r.ino)
    const path = node && this.#nodes.path(node)
    try {
      if (!node || path === undefined) throw new Error(`node ${r.ino} has no name`)
      node.ctimeExpired = false
      if (copy.dir) {
        // Named already, and its attributes were given the usual time to live; C marked it again
        // at once, as one in the upper layer (and so does onDirCopiedUp): the mark stays. One C
        // copied up for a rename was answered with no attributes: the kernel is told (a merged
        // directory shows one link, and the copy's ctime).
        if (!copy.lifted) node.attrsExpired = false
        this.#union.adoptDirSync(path, copy.ino, copy.lifted)
        return
      }
      node.cow = false
      node.attrsExpired = true
      this.#adoptedFile(node, path, copy)
      this.#invalidateSiblings(node.ino, node.id)
    } catch (err) {
      if (path === undefined && !copy.dir) closeSync(copy.fd)
      this.#options.log(`layerfs: a setattr answered in C lost its copy-up: ${err instanceof Error ? err.message : String(err)}`)
    }
  }

  /**
   * An open for writing answered in C, which copied the node's lower file up and passed the open
   * through to the copy, as the file handle reserved for it (#giveOpenHandles), marking the file a
   * writer's (see Session.cowOpenFh): the union takes the copy over and opens it as `copy.fh`, and
   * the open is recorded as one JS would have passed through. Or, with `copy.upper`, one of a file
   * in the upper layer (#markCopyable's `upper`), which C opened as it is: the union takes C's
   * descriptor as that handle's. Nothing came between that answer and this. An open whose reply
   * never reached the caller is released at once (no release follows).
   */
  #adoptOpen(r: Request & { op: 'open' }, copy: NonNullable<(Request & { op: 'open' })['copy']>): void {
    this.#openHandlesGiven--
    const node = this.#nodes.get(r.ino)
    const path = node && this.#nodes.path(node)
    try {
      if (!node || path === undefined) {
        // (Nobody takes the fd: the copy, or C's open of the file, goes; the kernel's open keeps
        // its backing file.)
        closeSync(copy.fd)
        throw new Error(`node ${r.ino} has no name`)
      }
      node.opened = true
      node.made = !copy.unsent
      if (copy.upper) {
        // A file in the upper layer, opened as it is: C took its mark.
        node.cow = false
        this.#upperFiles.delete(node)
        this.#union.adoptUpperOpenSync(path, copy.fh, copy.fd)
      } else {
        this.#adoptedFile(node, path, copy)
        this.#union.adoptOpenSync(path, copy.fh, copy.bytes)
      }
    } catch (err) {
      this.#options.log(`layerfs: an open answered in C lost its copy-up: ${err instanceof Error ? err.message : String(err)}`)
    }
    // Whatever became of the copy, the kernel holds the open: its release closes the backing file.
    this.#open.adopted(r.ino, copy.fh, copy.backing)
    if (copy.unsent) this.#release(copy.fh)
    this.#giveOpenHandles()
  }

  /**
   * A rename of a lower file answered in C (Session.pendingDrop), which copied the file up and the
   * directories it needed, gave them their new times and took the file's mark: the union takes
   * the copy over as a rename it deferred itself, and tells C once it is written, which then
   * answers lookups of the new name again. Nothing came between that answer and this (a rename
   * the union cannot take is lost, as a deferred copy whose flush fails: Core.adoptMove).
   */
  #adoptMove(r: Request & { op: 'rename' }, copy: NonNullable<(Request & { op: 'rename' })['copy']>): void {
    // Both names are pending in C until the rename is written (fll_cow_rename, pending_pair).
    const written = (): void => {
      this.#session.pendingDrop(r.newparent, r.newname)
      this.#session.pendingDrop(r.parent, r.name)
    }
    let names: { parent: Node; path: string; newParent: Node; newPath: string } | undefined
    try {
      const { parent, path } = this.#childPath(r.parent, r.name)
      const { parent: newParent, path: newPath } = this.#childPath(r.newparent, r.newname)
      names = { parent, path, newParent, newPath }
    } catch (err) {
      closeSync(copy.fd)
      written()
      this.#options.log(`layerfs: a rename answered in C lost its copy-up: ${err instanceof Error ? err.message : String(err)}`)
      return
    }
    this.#union.adoptMoveSync(names.path, names.newPath, copy.fd, copy.bytes, copy.srcIno, written)
    this.#nodes.move(names.parent, r.name, names.newParent, r.newname)
    const moved = this.#nodes.child(names.newParent, r.newname)
    if (moved) {
      // (C took its mark and name.)
      moved.cow = false
      moved.named = false
      // As after a rename JS answers (#renamed): the kernel has dropped the moved file's ctime.
      moved.ctimeExpired = true
    }
  }

  /**
   * A link of a lower file answered in C (Session.pendingDrop), which copied the file up and the
   * directories it needed, gave the new name's directory its new times, made the new name a node of
   * its own (`copy.child`, from the ids given for its lookups), told the kernel that the file's node
   * changed, and took that node's mark: the union takes the copy and the link over as ones it
   * deferred itself (Union.adoptLinkSync), and tells C once the link is written (onLinkWritten),
   * which then answers lookups of the new name again. Nothing came between that answer and this.
   * The kernel holds the new node whatever becomes of the link; a link the union cannot take is
   * lost, as a deferred copy whose flush fails.
   */
  #adoptLink(r: Request & { op: 'link' }, copy: NonNullable<(Request & { op: 'link' })['copy']>): void {
    const source = this.#nodes.get(r.ino)
    const from = source && this.#nodes.path(source)
    const parent = this.#nodes.get(r.newparent)
    let taken = false
    try {
      if (!source || from === undefined || !parent) throw new Error(`node ${source ? r.newparent : r.ino} has no name`)
      const { path } = this.#childPath(r.newparent, r.newname)
      source.cow = false
      taken = true // (the union closes the copy's fd should it lose it)
      this.#union.adoptLinkSync(from, path, copy.fd, copy.bytes, copy.srcIno)
      if (copy.cold) this.#uncachedRead(source)
      else this.#cachedRead(source)
    } catch (err) {
      if (!taken) closeSync(copy.fd)
      this.#session.pendingDrop(r.newparent, r.newname)
      this.#options.log(`layerfs: a link answered in C lost its copy-up: ${err instanceof Error ? err.message : String(err)}`)
    }
    if (parent) {
      // Its attributes were given no time to live, as those of a name of a copy not named yet.
      this.#nodes.adopt(copy.child, parent, r.newname, source?.ino ?? 0).attrsExpired = true
    }
    if (--this.#lookupIdsLeft < LOOKUP_IDS / 4) this.#giveLookupIds()
    if (source) {
      this.#fastDenyIno(source.ino)
      source.attrsExpired = true
    }
  }

  /** The copy of the lower file `node` (at `path`) C made at a setattr or an open: the union takes
   *  it over. A copy that read its data from the disk is what a reader going through a directory's
   *  files uncached makes (chmod -R of a layer not in the page cache): the next ones are read ahead. */
  #adoptedFile(node: Node, path: string, copy: { fd: number; bytes: number; srcIno: number; cold: boolean; meta?: boolean }): void {
    node.cow = false
    this.#union.adoptCopySync(path, copy.fd, copy.bytes, copy.srcIno, copy.meta)
    // A metadata-only copy read none of the file's data.
    if (copy.meta) return
    if (copy.cold) this.#uncachedRead(node)
    else this.#cachedRead(node)
  }

  /** Keep C holding file handles for the opens for writing it may answer (Session.cowOpenFh). */
  #giveOpenHandles(): void {
    while (this.#openHandlesGiven < OPEN_HANDLES_GIVEN) {
      const fh = this.#union.reserveHandle()
      if (!this.#session.cowOpenFh(fh)) {
        this.#union.unreserveHandle(fh)
        return
      }
      this.#openHandlesGiven++
    }
  }

  /**
   * A request on a file opened in C (FAST_FH): the release of a node's last one closes the node's
   * anchor (false: nothing more to do); anything else is answered through the anchor, opened now
   * if need be.
   */
  #fromFastOpen(r: Request & { fh: number; ino: number }): boolean {
    if (r.op === 'release') {
      this.#releaseAnchor(r.ino)
      return false
    }
    r.fh = this.#anchor(this.#node(r.ino))
    return true
  }

  /** The node's anchor (see #anchors), opened if it has none: by its name, or, once that is gone,
   *  from one of the node's handles (a file opened by JS, unlinked, then opened again in C through
   *  /proc/PID/fd). */
  #anchor(node: Node): number {
    let fh = this.#anchors.get(node.id)
    if (fh !== undefined) return fh
    const path = this.#nodes.path(node)
    fh = path === undefined
      ? this.#union.reopenUnnamedSync(this.#handleOfUnnamed(node), O_RDONLY)
      : this.#union.tryOpen(path, O_RDONLY, true)!
    this.#open.anchored(node.id, fh, this.#union.openFile(fh))
    this.#anchors.set(node.id, fh)
    // Watched from now on. With no fast open left (never: the kernel releases a file only after its
    // last request is answered), the anchor stays until the node is forgotten.
    this.#session.fastWatch(node.id)
    return fh
  }

  #releaseAnchor(id: number): void {
    const fh = this.#anchors.get(id)
    if (fh === undefined) return
    this.#anchors.delete(id)
    this.#release(fh)
  }

  /** How many of the node's files are open through C (0 for a node never marked). */
  #fastOpens(node: Node): number {
    return node.fast ? this.#session.fastOpens(node.id) : 0
  }

  /** Before `node` loses its name: its files opened in C keep the data through the anchor. */
  #keepFastData(node: Node | undefined): void {
    if (node !== undefined && this.#fastOpens(node) > 0) this.#anchor(node)
  }

  /** Opens of the node (and of every name of its inode) go to JS again. */
  #fastDenyIno(ino: number): void {
    for (const node of this.#nodes.withIno(ino)) if (node.fast) this.#session.fastDeny(node.id)
  }

  #fail(r: Request, err: unknown): void {
    const errno = toErrno(err, r.op, () => describe(r), this.#options.log)
    // A file a failed rename would have replaced keeps its name, which C forgot (#unmarkChanged):
    // C must not look it up as a new node (#taint), before the kernel can ask again.
    if (r.op === 'rename') {
      const target = this.#nodes.get(r.newparent)
      if (target && this.#nodes.child(target, r.newname)) this.#taint(target)
      // A refused move may have copied some of a tree up (#movedTrees); and the host's own
      // refusal may have changed the directories' times (ext4 refuses a RENAME_WHITEOUT onto a
      // directory that is not empty after it has set the source directory's mtime), which the
      // kernel, after a failed rename, keeps as it had them (random namespace seed 3318). Told before
      // the caller has its answer, which lets it look again.
      this.#movedTrees()
      for (const id of new Set([r.parent, r.newparent])) {
        const dir = this.#nodes.get(id)
        if (dir && !dir.attrsExpired) this.#invalidate(dir)
      }
    }
    // One C answered already (a release, a copy-up's record): there is no one to tell.
    if (!r.answered) this.#session.replyErr(r.req, -errno)
  }

  /**
   * The requests the union can answer without waiting, answered here with no promise in between:
   * its read side (most of a walk, a build's stats and opens, cached reads) and every namespace
   * change and setattr whose copy-up moves no data, small writes. Returns false for the rest (an
   * open, link, rename or setattr that must copy file data up first on the thread pool, a read that
   * must wait for the disk there, big writes); #handle takes those.
   */
  #answerNow(r: Request): boolean {
    const union = this.#union
    const session = this.#session
    switch (r.op) {
      case 'lookup': {
        const { parent, path } = this.#childPath(r.parent, r.name)
        const attr = union.lookupSync(path)
        if (attr) {
          const node = this.#nodes.remember(parent, r.name, attr.ino)
          session.replyEntry(r.req, this.#entry(node, attr))
          if (this.#cow && (attr.mode & S_IFMT) === S_IFDIR) this.#markDir(node, path, attr)
          else if (this.#cow && (attr.mode & S_IFMT) === S_IFREG) this.#markFile(node, attr, union.copyBehindSource(path, attr), union.unwrittenSync(path))
        } else if (this.#options.negativeTimeout > 0) {
          // A negative entry: the kernel caches the absence; every creation comes through us.
          session.replyEntry(r.req, { ...this.#entry(undefined, zeroAttr()), entryTimeout: this.#options.negativeTimeout })
        } else {
          session.replyErr(r.req, 2 /* ENOENT */)
        }
        return true
      }
      case 'getattr': {
        const node = this.#node(r.ino)
        const path = this.#nodes.path(node)
        // With no name left: a directory removed while open answers what it was; a file unlinked
        // while open, through an open handle (the kernel gives one only for some getattrs: an fstat
        // comes without).
        const attr = path !== undefined ? union.getattrSync(path)
          : this.#removedDirs.get(node)?.attr ?? union.fgetattrSync(this.#handleOfUnnamed(node, r.fh), node.ino)
        this.#replyAttr(r.req, node, attr)
        return true
      }
      case 'readlink':
        session.replyReadlink(r.req, union.readlinkSync(this.#path(this.#node(r.ino))))
        return true
      case 'setattr': {
        // Only when nothing needs copying up, and a truncate only when no other name of a hard link
        // has the file open (see #dropSiblingPages); #handle takes the rest. The reply carries the
        // node's new attributes.
        if ((r.valid & SETATTR_SIZE) !== 0 && this.#siblingOpen(r.ino)) return false
        const node = this.#node(r.ino)
        // So does a change of owner or mode of a hard link's (see #dropSiblingNames).
        if ((r.valid & OWNER_OR_MODE) !== 0 && this.#nodes.shared(node.ino)) return false
        const path = this.#nodes.path(node)
        if (path === undefined) {
          this.#setattrUnnamed(r, node)
          return true
        }
        if (!this.#answering([r.ino], () => union.trySetattr(path, attrChange(r, this.#options.ids), r.fh, r.waiting === 0))) return false
        this.#replyChanged(r, path, union.getattrSync(path))
        return true
      }
      case 'open': {
        // A truncating open waits for other open names of a hard link to drop their pages (#handle).
        if ((r.flags & O_TRUNC) !== 0 && this.#siblingOpen(r.ino)) return false
        const node = this.#node(r.ino)
        const path = this.#nodes.path(node)
        if (path === undefined) {
          this.#opened(r, undefined, union.reopenUnnamedSync(this.#handleOfUnnamed(node), r.flags), r.waiting === 0)
          return true
        }
        const fh = union.tryOpen(path, r.flags, r.waiting === 0)
        if (fh === undefined) {
          this.#openTried.add(r) // (#handle takes it next, with nothing run between)
          return false
        }
        this.#opened(r, path, fh, r.waiting === 0)
        return true
      }
      case 'read': {
        // The reply copies the bytes out before this returns: one scratch buffer serves every read
        // answered here, and reads make no garbage.
        if (this.#readBuffer.length < r.size) this.#readBuffer = Buffer.allocUnsafeSlow(r.size)
        const buffer = this.#readBuffer
        // A small read may wait for the disk here only when no other request waits: with several
        // callers, the pool keeps several disk reads in flight.
        const n = union.tryRead(r.fh, buffer, r.size, r.offset, r.waiting === 0)
        if (n === undefined) return false
        session.replyBuf(r.req, buffer, n)
        return true
      }
      case 'write': {
        // A hard link open under another name must lose its pages before the reply: see #handle.
        if (this.#siblingOpen(r.ino)) return false
        const n = union.tryWrite(r.fh, r.data, r.data.length, r.offset)
        if (n === undefined) return false
        if (r.killSuidgid) this.#clearSetid(r.ino, r.ctx, undefined, r.fh)
        this.#invalidateSiblings(this.#nodes.get(r.ino)?.ino, r.ino)
        session.replyWrite(r.req, n)
        return true
      }
      case 'release':
        this.#release(r.fh)
        if (!r.answered) session.replyErr(r.req, 0)
        return true
      case 'fsync':
        // The flush delays nobody when no other request waits, and the pool's round trip is saved.
        if (r.waiting !== 0) return false
        union.fsyncSync(r.fh, r.datasync)
        session.replyErr(r.req, 0)
        return true
      case 'readdir':
      case 'readdirplus':
        return this.#readdir(r, true)
      case 'statfs':
        session.replyStatfs(r.req, union.statfsSync())
        return true
      case 'getxattr': {
        const node = this.#node(r.ino)
        const loop = node === this.#nodes.root && r.name === STATS_XATTR ? session.loopStats : undefined
        const value = loop !== undefined
          ? Buffer.from(JSON.stringify({
            ops: this.counts, ...union.stats(), nodes: this.#nodes.size,
            // Every open passed through, those C answered (loop.passOpens) included.
            passthrough: this.#open.policy, passedThrough: this.#open.passedThrough + loop.passOpens, killpriv: session.killpriv,
            loop, readAhead: { uncached: this.#uncachedOpens, started: this.#ahead.started },
            codeCache: codeCache()?.use,
          }))
          : this.#shownXattr(r.name, this.#byName(node, (path) => union.getxattrSync(path, r.name), (fh) => union.fgetxattrSync(fh, r.name), (removed) => removed.xattrs.get(r.name)))
        if (value === undefined) session.replyErr(r.req, ENODATA)
        else if (r.size === 0) session.replyXattr(r.req, value.length)
        else if (value.length > r.size) session.replyErr(r.req, 34 /* ERANGE */)
        else session.replyBuf(r.req, value, value.length)
        return true
      }
      case 'listxattr': {
        const all = this.#byName(this.#node(r.ino), (path) => union.listxattrSync(path), (fh) => union.flistxattrSync(fh), (removed) => [...removed.xattrs.keys()])
        // The kernel lists trusted.* names to CAP_SYS_ADMIN only, as the daemon's filesystem lists
        // them to it: a caller other than root does not see them (C answers only lists with none).
        const names = r.ctx.uid === 0 ? all : all.filter((n) => !n.startsWith('trusted.'))
        const value = hostBytes(names.map((n) => n + '\0').join(''))
        if (r.size === 0) session.replyXattr(r.req, value.length)
        else if (value.length > r.size) session.replyErr(r.req, 34)
        else session.replyBuf(r.req, value, value.length)
        return true
      }
      case 'mknod': {
        const { parent, path } = this.#childPath(r.parent, r.name)
        union.mknodSync(path, r.mode, r.rdev, ownerOf(r, this.#options.ids))
        this.#replyNewEntry(r.req, parent, r.name, path)
        return true
      }
      case 'mkdir': {
        const { parent, path } = this.#childPath(r.parent, r.name)
        union.mkdirSync(path, r.mode, ownerOf(r, this.#options.ids))
        const made = this.#replyNewEntry(r.req, parent, r.name, path)
        // Its getattrs, which follow every file made in it, are answered in C, and so are the
        // lookups before each (#markDir).
        if (this.#cow) this.#markDir(made.node, path, made.attr)
        return true
      }
      case 'symlink': {
        const { parent, path } = this.#childPath(r.parent, r.name)
        union.symlinkSync(r.target, path, ownerOf(r, this.#options.ids))
        this.#replyNewEntry(r.req, parent, r.name, path)
        return true
      }
      case 'create': {
        const { parent, path } = this.#childPath(r.parent, r.name)
        const fh = union.createSync(path, r.mode, ownerOf(r, this.#options.ids))
        let node: Node
        let attr: Attr
        try {
          attr = union.fgetattrSync(fh) // a made file: its own inode number, no second path walk
          node = this.#nodes.remember(parent, r.name, attr.ino)
        } catch (err) {
          union.releaseSync(fh)
          throw err
        }
        node.opened = true
        const backing = this.#open.opened(node.id, fh, union.openFile(fh), true, r.ctx.uid === 0) // a new node: never STALE
        if (!session.replyCreate(r.req, this.#entry(node, attr), fh, {}, backing)) this.#release(fh)
        else this.#markMade(node, fh, attr.mode, true)
        return true
      }
      case 'tmpfile': {
        const parent = this.#node(r.parent)
        const { fh, attr } = union.createUnnamedSync(this.#path(parent), r.mode, ownerOf(r, this.#options.ids))
        const node = this.#nodes.unnamed(attr.ino)
        node.opened = true
        const backing = this.#open.opened(node.id, fh, union.openFile(fh), true, r.ctx.uid === 0) // a new node: never STALE
        if (!session.replyCreate(r.req, this.#entry(node, attr), fh, {}, backing)) this.#release(fh)
        else this.#markMade(node, fh, attr.mode, false)
        return true
      }
      case 'link': {
        const source = this.#node(r.ino)
        const { parent, path } = this.#childPath(r.newparent, r.newname)
        // A file with no name (O_TMPFILE): linked through its open handle.
        const from = this.#nodes.path(source)
        if (from === undefined) union.linkUnnamedSync(this.#handleOfUnnamed(source), path)
        else if (!union.tryLink(from, path, r.waiting === 0)) return false
        this.#fastDenyIno(source.ino)
        // The file's number as shown now: a copy-up of a lower file with other names gave it the
        // copy's own (overlayfs keeps no link to the lower names), which its node may not know yet,
        // and the new name is found by it (#invalidateSiblings, #dropSiblingPages).
        const attr = union.getattrSync(path)
        this.#nodes.setIno(source, attr.ino)
        this.#linked(source)
        this.#replyNewEntry(r.req, parent, r.newname, path, attr)
        return true
      }
      case 'unlink': {
        const { parent, path } = this.#childPath(r.parent, r.name)
        const node = this.#nodes.byPath(path)
        this.#keepFastData(node)
        union.unlinkSync(path)
        this.#nodes.detach(parent, r.name)
        // The kernel drops the unlinked inode's link count itself; its other names (hard links)
        // it cannot know of.
        if (node) this.#invalidateSiblings(node.ino, node.id)
        session.replyErr(r.req, 0)
        return true
      }
      case 'rmdir': {
        const { parent, path } = this.#childPath(r.parent, r.name)
        const node = this.#nodes.byPath(path)
        const attr = node && union.getattrSync(path)
        const upper = node !== undefined && union.isUpperSync(path)
        const xattrs = node && this.#xattrsOf(path)
        union.rmdirSync(path)
        this.#nodes.detach(parent, r.name)
        // An upper directory is gone with its links; a lower one stays as it was, below the whiteout.
        if (node && attr && xattrs) this.#removedDirs.set(node, { attr: upper ? { ...attr, nlink: 0 } : attr, upper, xattrs })
        session.replyErr(r.req, 0)
        return true
      }
      case 'rename': {
        const names = this.#renameNames(r)
        // Once it succeeds, the kernel drops both directories' attributes (and so needs no word of
        // a directory copied up on the way: one per directory renamed in, under rename of lower files).
        if (!this.#answering([r.parent, r.newparent], () => union.tryRename(names.path, names.newPath, r.flags, r.waiting === 0))) return false
        this.#renamed(r, names)
        return true
      }
      case 'access':
        // default_permissions: the kernel has checked the mode bits already.
        session.replyErr(r.req, 0)
        return true
      default:
        return false
    }
  }

  /** An open of an existing file is done: an O_TRUNC one changed the file for its other names too,
   *  and is answered once those with a file open have dropped their pages (#dropSiblingPages).
   *  `path` undefined: a file with no name left, opened again (through /proc/PID/fd). */
  #opened(r: Request & { op: 'open' }, path: string | undefined, fh: number, alone: boolean): Promise<void> | undefined {
    const reply = (): void => this.#replyOpen(r.req, r.ino, fh, r.flags, alone, r.ctx.uid === 0, r.first, r.uncached === true)
    if ((r.flags & O_TRUNC) !== 0) {
      if (r.killSuidgid) this.#clearSetid(r.ino, r.ctx, path, fh)
      const drop = this.#dropSiblingPages(r.ino)
      if (drop !== undefined) return drop.then(reply)
    }
    reply()
    return undefined
  }

  /**
   * Passed through when it may be (see OpenFiles). Otherwise the kernel keeps the file's pages for
   * the next open: layers do not change under the mount and every write comes through the union;
   * but a hard-linked file's other names are other kernel inodes, with pages of their own, so not
   * for a file in the upper layer with several names. A lower one's names change nothing of each
   * other: a write through one copies that name up, apart from the rest (as in overlayfs, without
   * `index`), so its pages are kept (a layer's hard-linked programs, started again and again). An
   * open the caller never got (interrupted) is released here: no release follows.
   */
  #replyOpen(req: number, nodeId: number, fh: number, flags: number, alone: boolean, root: boolean, firstFromC: boolean, uncachedInC: boolean): void {
    const node = this.#nodes.get(nodeId)
    const first = node !== undefined && (firstFromC || !node.opened)
    if (node) node.opened = true
    const file = this.#union.openFile(fh)
    // Files opened in C are in the daemon's I/O mode, or pass through to their lower file (a mark
    // of kind 'passed'): the node stays in that mode while they are open. An open that reads that
    // file too (one with flags C leaves to JS, such as O_DSYNC) joins them, on C's backing id; any
    // other (an open for writing, whose copy-up moved the data) goes to a new node.
    const shared = node !== undefined && this.#fastOpens(node) > 0
    const writing = (flags & (O_WRONLY | O_RDWR)) !== 0
    const backing = !shared || !this.#session.fastPassing(nodeId)
      ? this.#open.opened(nodeId, fh, file, writing, root, shared)
      : !writing && !file.upper ? this.#open.joinedC(nodeId, fh) : STALE
    if (backing === STALE) {
      // The kernel looks the name up again and opens the node that replaces this one.
      this.#union.releaseSync(fh)
      if (node) {
        // Its files opened in C go on reading the lower data they pass through to, but their other
        // requests (an fstat) are answered from a file of the node's: the copy this open made, which
        // overlayfs would show them (#anchor). By its name they would reach whatever has it later
        // (nothing, after an unlink; a directory made there, a type the kernel refuses: EIO).
        try {
          this.#keepFastData(node)
        } catch {
          // Gone meanwhile: they answer as a node with no file of its own does.
        }
        if (this.#anchors.has(node.id) && node.parent) this.#nodes.detach(node.parent, node.name)
        else this.#nodes.retire(node)
        this.#unmark(node)
        if (node.fast) this.#session.fastDeny(nodeId)
      }
      this.#session.replyErr(req, ESTALE)
      return
    }
    const keepCache = backing === 0 && (file.singleLink || !file.upper)
    // Later opens for reading are answered in C while the kernel may keep the file's pages and such
    // an open would stay in the daemon's I/O mode (one that passes through must come here: the
    // modes cannot mix). A file that grows past the size that passes through stays with C.
    if (node !== undefined) {
      if (keepCache && !this.#open.passesReading(file)) node.fast = this.#session.fastAllow(nodeId) || node.fast
      else if (node.fast) this.#session.fastDeny(nodeId)
    }
    if (keepCache && first && node !== undefined && (flags & (O_WRONLY | O_RDWR | O_TRUNC)) === 0) this.#store(node, fh, file.size, alone, uncachedInC)
    if (!this.#session.replyOpen(req, fh, { keepCache }, backing)) {
      this.#release(fh)
      return
    }
    // C answers no open of the node beside this one (cowIdle, at its last release, says otherwise).
    if (node?.cow) this.#session.cowBusy(nodeId)
    if (node !== undefined && (flags & (O_WRONLY | O_RDWR)) !== 0) this.#markWriter(node, fh, file)
  }

  /**
   * `node`, just opened for writing as `fh`: while that open lives, its setattrs that change only
   * mode, owner, times or size are made through the open's descriptor and answered in C, as a made
   * file's are (#markMade). `touch` of a lower file is an open for writing (its copy-up), a
   * setattr of its times with that handle, and a release. Only for a file in the upper layer with
   * one link and no set-ID bit, and no ids mapped: JS's setattr reply then changes nothing else
   * (no other name to tell, no bits for killpriv to clear). A file still held by the open that made
   * it keeps that mark (C knows: `node.made` may outlive the release that ended it). The mark goes
   * when the file's name does (#unmarkChild): C shows a copy not named yet with one link.
   */
  #markWriter(node: Node, fh: number, file: ReturnType<Union['openFile']>): void {
    if (this.#options.ids || !file.upper || !file.singleLink || file.setid) return
    if (this.#session.writer(node.id, fh, file.fd, node.ino, this.#options.attrTimeout, file.unnamed)) node.made = true
  }

  /**
   * The first open of a small file for reading hands the kernel the file's bytes before its reply
   * (notify_store): the reads that follow find them in the page cache and cost no request, which
   * halves the round trips of reading a small file the first time. A lone request waits here for
   * the disk (one read of at most STORE_MAX); with others waiting, only bytes cached below go. A
   * file found uncached either way, or by C (`uncachedInC`: C started its read, which may have
   * ended since), has the next ones read ahead (#uncachedRead). Only at the node's first open:
   * until then the kernel holds none of its pages, so none is locked by an unanswered read or
   * write (the store would wait for it: deadlock) and none was written since.
   * A store that fails costs nothing: the kernel then asks with a read. The kernel takes the file's
   * atime afresh after each read it sends, and so it does here when this read changed it.
   */
  #store(node: Node, fh: number, size: number, alone: boolean, uncachedInC: boolean): void {
    if (size === 0 || size > STORE_MAX) return
    if (this.#readBuffer.length < size) this.#readBuffer = Buffer.allocUnsafeSlow(size)
    // C found it uncached and started its read, which may have ended by now.
    let uncached = uncachedInC
    if (uncached) this.#uncachedRead(node)
    let head
    try {
      head = this.#union.readHead(fh, this.#readBuffer, size, alone, () => {
        if (uncached) return
        uncached = true
        this.#uncachedRead(node)
      })
    } catch {
      return // the read that follows reports it
    }
    if (!head) return
    if (!uncached) this.#cachedRead(node)
    if (head.bytes > 0) this.#session.notifyStore(node.id, this.#readBuffer, head.bytes)
    if (head.atimeMoved) this.#invalidate(node)
  }

  /**
   * A first open, or a copy-up answered in C, found its file uncached: a reader going through the
   * directory's files uncached (grep -r, tar, cp -r; chmod -R, chown -R of a layer) has its next
   * ones read ahead on the thread pool (ReadAhead). Readers in parallel too: each of their requests
   * would otherwise wait for the disk in turn (reading every small file of the full fixture cold,
   * 8 in flight, took 7% less time with it, and an eighth less of the daemon's CPU).
   */
  #uncachedRead(node: Node): void {
    this.#uncachedOpens++
    const dir = node.parent
    if (dir) this.#ahead.uncached(dir.id, node.name, () => this.#nodes.path(dir))
  }

  /** A first open, or a copy-up answered in C, found its file cached: the reader reading ahead
   *  for, if any, goes on (ReadAhead). */
  #cachedRead(node: Node): void {
    this.#cachedOpens++
    const dir = node.parent
    if (dir) this.#ahead.cached(dir.id, node.name)
  }

  #release(fh: number): void {
    const idle = this.#open.released(fh)
    this.#union.releaseSync(fh)
    // Its next open for writing may be answered in C again (#adoptOpen).
    if (idle !== undefined && this.#nodes.get(idle)?.cow) this.#session.cowIdle(idle)
  }

  /** Everything that waits: big copy-ups and what follows them, big writes, uncached reads, fsync. */
  async #handle(r: Request): Promise<void> {
    const union = this.#union
    const session = this.#session
    switch (r.op) {
      case 'setattr': {
        const node = this.#node(r.ino)
        const path = this.#nodes.path(node)
        if (path === undefined) return await this.#setattrUnnamed(r, node)
        await union.setattr(path, attrChange(r, this.#options.ids), r.fh)
        await this.#replyChanged(r, path, await union.getattr(path))
        return
      }
      case 'link': {
        const source = this.#node(r.ino)
        const { parent, path } = this.#childPath(r.newparent, r.newname)
        await union.link(this.#path(source), path)
        this.#fastDenyIno(source.ino)
        this.#linked(source)
        this.#replyNewEntry(r.req, parent, r.newname, path)
        return
      }
      case 'rename': {
        const names = this.#renameNames(r)
        await union.rename(names.path, names.newPath, r.flags)
        this.#renamed(r, names)
        return
      }
      case 'open': {
        const node = this.#node(r.ino)
        const path = this.#nodes.path(node)
        const fh = path === undefined ? union.reopenUnnamedSync(this.#handleOfUnnamed(node), r.flags) : await union.open(path, r.flags, this.#openTried.delete(r))
        await this.#opened(r, path, fh, false)
        return
      }
      case 'readdir':
      case 'readdirplus': {
        // Its lower layers' listings, read on the pool (#readdir).
        const path = this.#nodes.path(this.#node(r.ino))
        if (path !== undefined) await union.readAhead(path)
        this.#readdir(r, false)
        return
      }
      case 'read': {
        const buffer = this.#takeBuffer(r.size)
        try {
          session.replyBuf(r.req, buffer, await union.read(r.fh, buffer, r.size, r.offset))
        } finally {
          this.#spareBuffers.push(buffer)
        }
        return
      }
      case 'write': {
        const n = await union.write(r.fh, r.data, r.data.length, r.offset)
        if (r.killSuidgid) this.#clearSetid(r.ino, r.ctx, undefined, r.fh)
        await this.#dropSiblingPages(r.ino)
        session.replyWrite(r.req, n)
        return
      }
      case 'fsync':
        await union.fsync(r.fh, r.datasync)
        session.replyErr(r.req, 0)
        return
      case 'fsyncdir':
        session.replyErr(r.req, 0)
        return
      case 'setxattr': {
        const value = this.#options.ids && ACL_XATTRS.has(r.name) ? this.#options.ids.storedAcl(r.value) : r.value
        const node = this.#node(r.ino)
        await this.#byName(node, (path) => union.setxattr(path, r.name, value, r.flags), async (fh) => union.fsetxattrSync(fh, r.name, value, r.flags),
          async (removed) => xattrRemoved(removed, r.name, value, r.flags))
        this.#invalidateSiblings(node.ino, r.ino)
        session.replyErr(r.req, 0)
        return
      }
      case 'removexattr': {
        const node = this.#node(r.ino)
        await this.#byName(node, (path) => union.removexattr(path, r.name), async (fh) => union.fremovexattrSync(fh, r.name),
          async (removed) => xattrRemoved(removed, r.name))
        this.#invalidateSiblings(node.ino, r.ino)
        session.replyErr(r.req, 0)
        return
      }
      case 'lseek':
        session.replyLseek(r.req, await union.seek(r.fh, r.offset, r.whence))
        return
      case 'ioctl': {
        // File attributes (lsattr, chattr), which the kernel asks for with these; nothing else.
        const node = this.#node(r.ino)
        if (r.cmd === FS_IOC_GETFLAGS || r.cmd === FS_IOC_FSGETXATTR) {
          session.replyIoctl(r.req, union.readFileAttrIoctl(this.#path(node), r.cmd, r.outSize))
        } else if (r.cmd === FS_IOC_SETFLAGS || r.cmd === FS_IOC_FSSETXATTR) {
          await union.writeFileAttrIoctl(this.#path(node), r.cmd, r.input ?? Buffer.alloc(0))
          this.#invalidate(node) // a new ctime
          session.replyIoctl(r.req, Buffer.alloc(0))
        } else {
          session.replyErr(r.req, ENOTTY)
        }
        return
      }
      case 'fallocate':
        // The kernel moves the size it caches itself. It marks no caller for clearing setuid and
        // setgid here, as it does writes: a caller other than root is taken to lack CAP_FSETID.
        await union.fallocate(r.fh, r.mode, r.offset, r.length)
        if (r.ctx.uid !== 0) this.#clearSetid(r.ino, r.ctx, undefined, r.fh)
        await this.#dropSiblingPages(r.ino)
        session.replyErr(r.req, 0)
        return
      default:
        session.replyErr(r.req, 38 /* ENOSYS */)
    }
  }

  #takeBuffer(size: number): Buffer {
    const spare = this.#spareBuffers.pop()
    return spare !== undefined && spare.length >= size ? spare : Buffer.allocUnsafeSlow(Math.max(size, 128 * 1024))
  }

  /** A rename's two names, and the inode of a file it may replace. */
  #renameNames(r: Request & { op: 'rename' }): RenameNames {
    const { parent, path } = this.#childPath(r.parent, r.name)
    const { parent: newParent, path: newPath } = this.#childPath(r.newparent, r.newname)
    const replaced = this.#nodes.byPath(newPath)
    this.#keepFastData(replaced)
    return { parent, path, newParent, newPath, replaced: replaced?.ino }
  }

  /** The node table follows a rename the union made; a replaced file's other names are told. */
  #renamed(r: Request & { op: 'rename' }, n: RenameNames): void {
    const exchange = (r.flags & RENAME_EXCHANGE) !== 0
    if (exchange) this.#nodes.exchange(n.parent, r.name, n.newParent, r.newname)
    else this.#nodes.move(n.parent, r.name, n.newParent, r.newname)
    // The kernel has dropped the ctime of what moved: naming a deferred copy there later moves only
    // its ctime (Union.onAttrChange), which then needs no invalidation.
    const moved = this.#nodes.child(n.newParent, r.newname)
    if (moved) moved.ctimeExpired = true
    const other = exchange ? this.#nodes.child(n.parent, r.name) : undefined
    if (other) other.ctimeExpired = true
    if (n.replaced !== undefined) this.#invalidateSiblings(n.replaced)
    this.#movedTrees()
    this.#session.replyErr(r.req, 0)
  }

  /** Answers the listing request (then true), or, with `mayWait`, leaves it to #handle (false)
   *  while the lower layers' listings of a new listing are read on the thread pool. */
  #readdir(r: Request & { op: 'readdir' | 'readdirplus' }, mayWait: boolean): boolean {
    const dir = this.#node(r.ino)
    if (this.#nodes.path(dir) === undefined && this.#removedDirs.has(dir)) {
      // Removed while open: empty, as the kernel lists a removed directory.
      if (r.op === 'readdir') this.#session.replyReaddir(r.req, r.size, [])
      else this.#session.replyReaddirPlus(r.req, r.size, [])
      return true
    }
    // The kernel reads a directory from offset 0 to the empty reply that ends it, caching what it
    // gets (cache_readdir), so a listing taken at offset 0 serves the rest of that pass, up to the
    // reply that gives its last entry (the empty read after it is answered in C: #listingGiven); a
    // rewind or a second reader starts a new one. An offset is a name's cookie (see listingOf), not
    // a place in one listing: a read continues after that name in whichever listing it meets.
    let list = r.offset === 0 ? undefined : this.#listings.get(r.ino)
    let fresh: string | undefined
    if (!list) {
      const path = this.#path(dir)
      fresh = path
      // A readdirplus reads every entry's inode: a directory the host has not cached waits for the
      // disk once per entry. While several threads call, its lower layers are read on the pool
      // (they never change), where several such reads are at the disk at once while this thread
      // answers other requests; the upper layer, which changes, is read at the reply
      // (ListingsAhead). A lone caller (find, tar, chmod -R) waits for its listing whichever
      // thread reads it, and the trip to the pool and back only adds to its wait: its listings are
      // read here, at the reply.
      if (mayWait && r.op === 'readdirplus' && !this.#session.soleCaller && this.#union.readAhead(path) !== undefined) return false
      list = listingOf(this.#union.readdirPlusSync(path, this.#cow, true))
      // A directory listed is marked for its lookups too (its entries are, below): the root, never an
      // entry, and one whose mark a rename took away.
      if (this.#cow && !dir.probe) this.#markProbe(dir, path)
      this.#listings.delete(r.ino)
      if (this.#listings.size >= MAX_LISTINGS) this.#listings.delete(this.#listings.keys().next().value!)
      this.#listings.set(r.ino, list)
    }
    const start = after(list.cookies, r.offset)
    if (start >= list.length && this.#listings.get(r.ino) === list) this.#listings.delete(r.ino)
    const slice = list.slice(start, start + Session.readdirCapacity(r.size, r.op === 'readdirplus'))
    if (r.op === 'readdir') {
      const fit = this.#session.replyReaddir(r.req, r.size, slice.map((e, i) => ({ name: e.name, ino: e.attr.ino, mode: e.attr.mode, next: list.cookies[start + i]! })))
      this.#listingGiven(r, list, start, fit)
      if (fresh !== undefined) this.#listed(r.ino, fresh, list)
      return true
    }
    const parent = this.#node(r.ino)
    // The kernel takes a reference for every entry it receives, except '.' and '..' (sent with node
    // id 0: attributes for d_ino only). Nodes are counted before the reply, since their ids go in it,
    // and un-counted if they did not fit.
    const counted: Array<Node | undefined> = []
    const entries = slice.map((e, i) => {
      const node = isDot(e.name) ? undefined : this.#nodes.remember(parent, e.name, e.attr.ino)
      counted.push(node)
      return { name: e.name, entry: this.#entry(node, e.attr), next: list.cookies[start + i]! }
    })
    const fit = this.#session.replyReaddirPlus(r.req, r.size, entries)
    // Its names not written yet, asked of the directory once (a listing is long, and has none most
    // of the time), of its files only when it has some (#markFile).
    const parentPath = this.#cow && !parent.tainted ? this.#nodes.path(parent) : undefined
    const unwrittenIn = parentPath !== undefined && this.#union.unwrittenInSync(parentPath)
    for (let i = 0; i < counted.length; i++) {
      const node = counted[i]
      if (!node) continue
      if (i >= fit) {
        this.#nodes.forget(node.id, 1)
        continue
      }
      const kind = slice[i]!.attr.mode & S_IFMT
      if (this.#cow && kind === S_IFREG) {
        const path = unwrittenIn ? this.#nodes.path(node) : undefined
        this.#markFile(node, slice[i]!.attr, slice[i]!.src, path !== undefined && this.#union.unwrittenSync(path))
      } else if (slice[i]!.src !== undefined) {
        this.#markCopyable(node, slice[i]!.src, slice[i]!.attr)
      }
      if (this.#cow && kind === S_IFDIR) {
        // (As #markDir: a directory C could not mark with its name.)
        if (!node.named) this.#taint(parent)
        const path = this.#nodes.path(node)
        if (path !== undefined) this.#markProbe(node, path)
      }
    }
    this.#listingGiven(r, list, start, fit)
    if (fresh !== undefined) this.#listed(r.ino, fresh, list)
    return true
  }

  /** A listing of the directory at `path` taken afresh: a reader that goes through files uncached
   *  has the directory's first files read ahead (ReadAhead.listed). */
  #listed(dir: number, path: string, list: DirEntry[]): void {
    this.#ahead.listed(dir, () => listingOrder(list, (name) => this.#union.filePathSync(path === '/' ? '/' + name : `${path}/${name}`), STORE_MAX))
  }

  /** After a reply of `fit` entries of `list`: when it gave the last one, the reader's next read,
   *  at the end, comes back empty. That read is answered in C (Session.dirEnd), as it would be
   *  from the listing, which goes now. */
  #listingGiven(r: Request & { op: 'readdir' | 'readdirplus' }, list: Listing, start: number, fit: number): void {
    if (fit === 0 || start + fit < list.length) return
    if (this.#listings.get(r.ino) === list) this.#listings.delete(r.ino)
    this.#session.dirEnd(r.ino, list.cookies[start + fit - 1]!)
  }

  /**
   * `named` with the node's path, or, for a file whose name is gone (unlinked while open), `unnamed`
   * with one of its open handles: what overlayfs does through the open file.
   */
  #byName<T>(node: Node, named: (path: string) => T, unnamed: (fh: number) => T, removedDir: (removed: RemovedDir) => T): T {
    const path = this.#nodes.path(node)
    if (path !== undefined) return named(path)
    const removed = this.#removedDirs.get(node)
    if (removed !== undefined) return removedDir(removed)
    return unnamed(this.#handleOfUnnamed(node))
  }

  /** The xattrs of the object at `path`, as stored, by name. */
  #xattrsOf(path: string): Map<string, Buffer> {
    const xattrs = new Map<string, Buffer>()
    for (const name of this.#union.listxattrSync(path)) {
      const value = this.#union.getxattrSync(path, name)
      if (value !== undefined) xattrs.set(name, value)
    }
    return xattrs
  }

  /** An open handle on a file with no name (it has one while the kernel can reach the node). */
  #handleOfUnnamed(node: Node, fh = this.#open.handleOf(node.id)): number {
    if (fh === undefined) throw Object.assign(new Error('name gone'), { code: 'ENOENT' })
    return fh
  }

  /** setattr of a file whose name is gone, through its open handle (the kernel's, for a truncate,
   *  else any of the node's). */
  #setattrUnnamed(r: Request & { op: 'setattr' }, node: Node): Promise<void> | undefined {
    const removed = this.#removedDirs.get(node)
    if (removed !== undefined) {
      this.#setattrRemoved(r, node, removed)
      return undefined
    }
    const fh = this.#handleOfUnnamed(node, r.fh)
    this.#union.fsetattrSync(fh, attrChange(r, this.#options.ids))
    let attr = this.#union.fgetattrSync(fh, node.ino)
    if (r.killSuidgid && (attr.mode & 0o6000) !== 0 && this.#clearSetid(r.ino, r.ctx, undefined, fh)) attr = this.#union.fgetattrSync(fh, node.ino)
    const reply = (): void => this.#replyAttr(r.req, node, attr)
    if ((r.valid & SETATTR_SIZE) !== 0) {
      const drop = this.#dropSiblingPages(r.ino)
      if (drop !== undefined) return drop.then(reply)
    } else {
      this.#invalidateSiblings(node.ino, r.ino)
    }
    reply()
    return undefined
  }

  /**
   * setattr of a directory removed while open. An upper one still exists on the host, unnamed, and
   * takes the change, as overlayfs lets it: the daemon holds no fd on it, so the change is made to
   * the attributes kept for it, which are all that can still be asked of it. A lower one would need
   * a copy-up, which needs its name: ENOTDIR, as overlayfs answers.
   */
  #setattrRemoved(r: Request & { op: 'setattr' }, node: Node, removed: RemovedDir): void {
    if (!removed.upper) throw Object.assign(new Error('a lower directory with no name left'), { code: 'ENOTDIR' })
    const change = attrChange(r, this.#options.ids)
    const now = Date.now()
    const [nowSec, nowNsec] = [Math.floor(now / 1000), (now % 1000) * 1e6]
    const attr = { ...removed.attr, ctimeSec: nowSec, ctimeNsec: nowNsec }
    if (change.mode !== undefined) attr.mode = (attr.mode & S_IFMT) | (change.mode & 0o7777)
    if (change.uid !== undefined) attr.uid = change.uid
    if (change.gid !== undefined) attr.gid = change.gid
    if (change.atime != null) [attr.atimeSec, attr.atimeNsec] = change.atime === 'now' ? [nowSec, nowNsec] : splitNs(change.atime)
    if (change.mtime != null) [attr.mtimeSec, attr.mtimeNsec] = change.mtime === 'now' ? [nowSec, nowNsec] : splitNs(change.mtime)
    removed.attr = attr
    this.#replyAttr(r.req, node, attr)
  }

  /** Reply to a setattr that is done, with the attributes it left (`attr`): clear set-ID bits first
   *  when the kernel asks (its killpriv; mostly the file has none to clear, and no syscall is
   *  spent), and tell the node's other names: a truncate is answered once those with a file open
   *  have dropped their pages (#dropSiblingPages). */
  #replyChanged(r: Request & { op: 'setattr' }, path: string, attr: Attr): Promise<void> | undefined {
    if (r.killSuidgid && (attr.mode & 0o6000) !== 0 && this.#clearSetid(r.ino, r.ctx, path, r.fh)) attr = this.#union.getattrSync(path)
    const reply = (): void => this.#replyAttr(r.req, this.#nodes.get(r.ino), attr)
    let waits: Array<Promise<void>> | undefined
    if ((r.valid & SETATTR_SIZE) !== 0) {
      const drop = this.#dropSiblingPages(r.ino)
      if (drop !== undefined) (waits ??= []).push(drop)
    } else {
      this.#invalidateSiblings(this.#nodes.get(r.ino)?.ino, r.ino)
    }
    if ((r.valid & OWNER_OR_MODE) !== 0) {
      const names = this.#dropSiblingNames(r.ino)
      if (names !== undefined) (waits ??= []).push(names)
    }
    if (waits !== undefined) return Promise.all(waits).then(reply)
    reply()
    return undefined
  }

  /**
   * After a change of owner or mode through one name of a hard-linked file. The kernel checks a
   * file's owner against the attributes it holds where it asks for none first (the sticky bit's
   * rule at an unlink or a rename, the owner's at a chmod, chown or utimes), and the other names
   * are other kernel inodes (one node per name), whose attributes an invalidation only marks
   * stale: an unlink of another name in a sticky directory, by the file's new owner, failed with
   * EPERM (found by the random scripts). So their names are dropped too, from the thread pool, and
   * the next path walk looks each up: the lookup's reply gives its inode the new attributes. The
   * reply waits for that, but at most SIBLING_NAMES_WAIT_MS: the kernel takes each name's
   * directory lock, which a process may hold while it waits for this inode's lock, held until the
   * reply (an unlink of this very name).
   */
  #dropSiblingNames(id: number): Promise<void> | undefined {
    const ino = this.#nodes.get(id)?.ino
    if (ino === undefined || !this.#nodes.shared(ino)) return undefined
    const drops: Array<Promise<number>> = []
    for (const node of this.#nodes.withIno(ino)) {
      if (node.id !== id && node.parent !== undefined) drops.push(this.#session.notifyInvalEntryAsync(node.parent.id, node.name))
    }
    if (drops.length === 0) return undefined
    return new Promise((resolve) => {
      const late = setTimeout(resolve, SIBLING_NAMES_WAIT_MS)
      void Promise.all(drops).then(() => {
        clearTimeout(late)
        resolve()
      })
    })
  }

  /**
   * What the kernel leaves to the daemon under killpriv v2 (see Request): after a truncate, O_TRUNC
   * open or write by a process without CAP_FSETID, setuid/setgid are cleared as the kernel would
   * clear them. The node's cached mode is dropped (a write's reply carries no attributes); callers
   * tell the file's other names, as after any change of its data. Whether the mode changed.
   */
  #clearSetid(nodeId: number, ctx: Ctx, path: string | undefined, fh: number | undefined): boolean {
    const node = this.#nodes.get(nodeId)
    const ids = this.#options.ids
    const changed = this.#union.clearSetidSync(path, fh, (gid) => inGroup(ctx, ids ? ids.shownGid(gid) : gid))
    if (changed && node) this.#invalidate(node)
    return changed
  }

  /**
   * Whether another name of node `id`'s inode (a hard link) has a file open: a change of the data
   * must then drop its pages from the thread pool before the reply (see #dropSiblingPages).
   */
  #siblingOpen(id: number): boolean {
    const ino = this.#nodes.get(id)?.ino
    if (ino === undefined || !this.#nodes.shared(ino)) return false
    for (const node of this.#nodes.withIno(ino)) if (node.id !== id && this.#hasOpenFiles(node)) return true
    return false
  }

  /** Whether files are open on `node`, by JS or in C: requests of theirs may be in flight. */
  #hasOpenFiles(node: Node): boolean {
    return this.#open.handleOf(node.id) !== undefined || this.#fastOpens(node) > 0
  }

  /**
   * #invalidateSiblings after a change of the data through node `id`, and the names with a file
   * open lose their cached pages as well, as overlayfs's one inode would show the new bytes to its
   * every open file (until 2026-12-02 they read their old pages until opened again). Dropping
   * pages may wait, in the kernel, for a request on that name still unanswered (libfuse warns of a
   * setattr of the inode; the kernel locks each page it drops), which only this thread answers: so
   * those invalidations go out from the thread pool, and the request that changed the data is
   * answered once they are done. Nothing to wait for (undefined) without such a name.
   */
  #dropSiblingPages(id: number): Promise<void> | undefined {
    const ino = this.#nodes.get(id)?.ino
    if (ino === undefined) return undefined
    let drops: Array<Promise<number>> | undefined
    for (const node of this.#nodes.withIno(ino)) {
      if (node.id === id) continue
      if (!this.#hasOpenFiles(node)) this.#session.notifyInvalInode(node.id, 0, 0)
      else (drops ??= []).push(this.#session.notifyInvalInodeAsync(node.id, 0, 0))
    }
    if (drops === undefined) return undefined
    const done = Promise.all(drops).then(() => undefined)
    this.#drops.add(done)
    return done.finally(() => this.#drops.delete(done))
  }

  /**
   * After a link to `source`: every name of its inode (the source, and other links it had) shows one
   * link more, and only that changed, so their attributes are dropped and their pages kept. The
   * kernel then holds none for the source, whose mark went with the request (#unmarkChanged), so
   * that only JS can give it new ones: naming its copy later (a deferred link's) needs no second
   * invalidation (Union.onAttrChange). `cp -al` of lower files sent three per file.
   */
  #linked(source: Node): void {
    for (const node of this.#nodes.withIno(source.ino)) this.#invalidate(node)
    if (!source.cow) source.attrsExpired = true
  }

  /**
   * Hard links: the other names of an inode are other kernel inodes (one node per name), so a change
   * through one name (nlink, size, times, data) must be announced to the others. Their attributes
   * are dropped, and their cached pages too where no file is open on them: a name may hold pages
   * from when it was the file's only one (kept across opens), and its next read must not find
   * them. Where a file is open on it, only the attributes here: dropping pages from this thread
   * could wait for a request on that name that only this thread answers (see #dropSiblingPages).
   */
  #invalidateSiblings(ino: number | undefined, except?: number): void {
    if (ino === undefined) return
    for (const node of this.#nodes.withIno(ino)) {
      if (node.id === except) continue
      if (!this.#hasOpenFiles(node)) this.#session.notifyInvalInode(node.id, 0, 0)
      else this.#invalidate(node)
    }
  }
}

/**
 * setxattr (`value`) or removexattr (none) on a directory removed while the kernel holds it, as
 * overlayfs does it: an upper directory still exists on the host and takes the change; a lower one
 * cannot be copied up without a name (ENOTDIR, as for its mode). The change is kept here, where the
 * only reader of the directory (its fd) reads it back.
 */
function xattrRemoved(removed: RemovedDir, name: string, value?: Buffer, flags = 0): void {
  const fail = (code: string, message: string): never => { throw Object.assign(new Error(message), { code }) }
  if (!removed.upper) fail('ENOTDIR', 'a lower directory with no name left')
  const present = removed.xattrs.has(name)
  if (value === undefined || flags & XATTR_REPLACE) {
    if (!present) fail('ENODATA', name)
  } else if (flags & XATTR_CREATE && present) {
    fail('EEXIST', name)
  }
  if (value === undefined) removed.xattrs.delete(name)
  else removed.xattrs.set(name, Buffer.from(value))
}

/** Whether the caller is in group `gid`: its fsgid, or one of its supplementary groups. */
function inGroup(ctx: Ctx, gid: number): boolean {
  if (ctx.gid === gid) return true
  try {
    const groups = /^Groups:(.*)$/m.exec(readFileSync(`/proc/${ctx.pid}/status`, 'utf8'))?.[1]
    return groups !== undefined && groups.split(/\s+/).some((g) => g !== '' && Number(g) === gid)
  } catch {
    return false // the caller is gone
  }
}

const ENODATA = 61
/** A setattr's bits that the kernel's checks of a file's owner read (see #dropSiblingNames). */
const OWNER_OR_MODE = SETATTR_MODE | SETATTR_UID | SETATTR_GID
/** How long a setattr's reply waits for the other names of its hard link to be dropped. */
const SIBLING_NAMES_WAIT_MS = 50
const ENOTTY = 25
// The file-attribute ioctls (linux/fs.h, 64-bit encodings), as the kernel passes them on.
const FS_IOC_GETFLAGS = 0x80086601
const FS_IOC_SETFLAGS = 0x40086602
const FS_IOC_FSGETXATTR = 0x801c581f
const FS_IOC_FSSETXATTR = 0x401c5820
const ESTALE = 116
const { O_RDONLY, O_WRONLY, O_RDWR, O_TRUNC, S_IFMT, S_IFREG, S_IFDIR } = constants
/** The biggest file whose bytes its first open stores in the kernel's page cache (see #store). */
const STORE_MAX = 64 * 1024

/** Listings kept between the reads of one pass; a reader that stops halfway leaves one behind. */
const MAX_LISTINGS = 256

/** A directory's entries as a listing gives them, each with its cookie (`cookies[i]`, the offset a
 *  read after entry i starts at), increasing. */
type Listing = DirEntry[] & { cookies: number[] }

/**
 * Entries in the order of their cookies: '.' and '..' first (1 and 2), then every other name by a
 * 52-bit hash of it (3 and up). A read at a cookie continues after that name in any listing of the
 * directory, taken when it may be. Cookies that indexed one listing (until 2026-12-05) shifted with
 * every name made or removed before them: a reader whose next read met a listing other than the
 * one its last read came from (another reader's, or one taken for it after the kernel's cache of
 * the directory served its first entries) skipped or repeated names that had not changed (found
 * by a stress run: two `ls` of a directory another process was changing). ext4 orders its
 * listings by a hash of the names for the same reason. Two names of one hash (about one chance in
 * a million among 100,000 names) would give the second one's read at the first one's cookie: the
 * second is left out of a pass whose read stops between them.
 */
function listingOf(entries: DirEntry[]): Listing {
  const keyed = entries.map((e) => ({ e, key: e.name === '.' ? 1 : e.name === '..' ? 2 : 3 + nameHash(e.name) }))
  keyed.sort((a, b) => a.key - b.key)
  const list = keyed.map((k) => k.e) as Listing
  list.cookies = keyed.map((k) => k.key)
  return list
}

/** The first index whose cookie is past `cookie` (0 for the listing's start). */
function after(cookies: number[], cookie: number): number {
  let lo = 0
  let hi = cookies.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (cookies[mid]! <= cookie) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** A 52-bit hash of a name's UTF-16 code units (two 32-bit FNV-1a with different bases). */
function nameHash(name: string): number {
  let a = 0x811c9dc5
  let b = 0x050c5d1f
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i)
    a = Math.imul(a ^ c, 0x01000193)
    b = Math.imul(b ^ c, 0x01000193) ^ (b >>> 13)
  }
  return (a >>> 0) * 0x100000 + ((b >>> 0) & 0xfffff)
}

interface RenameNames {
  parent: Node
  path: string
  newParent: Node
  newPath: string
  replaced: number | undefined
}

/** Who creates: new objects belong to the caller, stored as `ids` maps it. */
/** The creator of a new object, with the umask its mode still needs (FUSE_DONT_MASK; applying it
 *  again, where the kernel already did, changes nothing). */
function ownerOf(r: Request, ids: IdMap | undefined): Owner {
  const umask = r.ctx.umask
  return ids ? { uid: ids.storedUid(r.ctx.uid), gid: ids.storedGid(r.ctx.gid), umask } : { uid: r.ctx.uid, gid: r.ctx.gid, umask }
}

function isDot(name: string): boolean {
  return name === '.' || name === '..'
}

function zeroAttr(): Attr {
  return { ino: 0, mode: 0, nlink: 0, uid: 0, gid: 0, rdev: 0, size: 0, blksize: 0, blocks: 0, atimeSec: 0, atimeNsec: 0, mtimeSec: 0, mtimeNsec: 0, ctimeSec: 0, ctimeNsec: 0 }
}

function describe(r: Request): string {
  const fields = r as unknown as Record<string, unknown>
  return ['ino', 'parent', 'name', 'newname'].filter((k) => fields[k] !== undefined).map((k) => `${k}=${String(fields[k])}`).join(' ')
}
