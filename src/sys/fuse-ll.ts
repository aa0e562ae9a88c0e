// A libfuse3 low-level session driven from the libuv loop (native/fuse-ll*.c). C owns the FUSE
// session and reads /dev/fuse on this thread when the loop says it is readable; each kernel request
// is handed to `handler`, which answers it with exactly one reply* call (at once or later, from any
// async continuation). Only `forget` needs no reply: C has already answered it.
//
// Numbers cross the boundary in Float64Arrays, in the layouts of native/fuse-ll.h (the F, A and E
// constants below mirror them): objects would cost a lookup by name per field.
//
// The daemon must never make filesystem calls into its own mount from the JS thread and wait for
// them synchronously: the requests they cause can only be answered by this very thread.
import type { FileAttr } from './native.js'
import { loadAddon } from './addon.js'
import { type HostPath, hostBytes } from './names.js'

// FUSE_SET_ATTR_* bits of a setattr request's `valid`.
export const SETATTR_MODE = 1
export const SETATTR_UID = 2
export const SETATTR_GID = 4
export const SETATTR_SIZE = 8
export const SETATTR_ATIME = 16
export const SETATTR_MTIME = 32
export const SETATTR_ATIME_NOW = 128
export const SETATTR_MTIME_NOW = 256
export const SETATTR_CTIME = 1024
// rename flags
export const RENAME_NOREPLACE = 1
export const RENAME_EXCHANGE = 2

/** What a file marked for requests answered in C is (Session.cowAllow): a lower file C may copy up
 *  at a setattr; a file in the upper layer, changed where it is; a lower file C does not copy (too
 *  big, or with other names), whose getattrs and xattr reads alone C answers; or one of those whose
 *  opens for reading JS passes through, as C then does too. */
export type MarkedFile = 'lower' | 'upper' | 'held' | 'passed'
/** As native/fuse-ll.h numbers them (COW_FILE_*). */
const MARKED_FILE: Record<MarkedFile, number> = { lower: 0, upper: 1, held: 2, passed: 3 }

/** The caller. Shared between requests from the same caller: never changed once made. */
export interface Ctx {
  readonly uid: number
  readonly gid: number
  readonly pid: number
  /** The caller's umask for mknod/mkdir/create (the kernel has already applied it to `mode`); 0 otherwise. */
  readonly umask: number
}

/** What the kernel gets; times split in sec + nsec. */
export type Attr = FileAttr

export interface EntryOut {
  /** FUSE node id; 0 = negative entry (cached for entryTimeout). */
  ino: number
  generation: number
  attr: Attr
  attrTimeout: number
  entryTimeout: number
}

export interface OpenFlags {
  keepCache?: boolean
  directIo?: boolean
  cacheReaddir?: boolean
  nonseekable?: boolean
}

/**
 * killSuidgid (setattr, open, write): the caller lacks CAP_FSETID and the kernel, which leaves it to
 * the daemon (FUSE_HANDLE_KILLPRIV_V2), expects setuid, and setgid where the kernel would clear it, to
 * be cleared after this truncate, O_TRUNC open or write.
 */
export type Request = {
  req: number /* opaque id to pass back to a reply fn */
  ctx: Ctx
  /** Already answered in C (forget, release): JS only updates its state, never replies. opendir and
   *  flush are answered ENOSYS in C, which makes the kernel stop sending them (and releasedir). */
  answered?: boolean
} & (
  /** `answered` (`child` set): the lookup of a marked directory answered in C by node `child`
   *  (`name` empty), whose new kernel reference JS counts (see Session.cowAllow's `name`); or, with
   *  `shownIno`, the first lookup of a lower file `name`, answered by `child`, a new node from
   *  the ids JS reserved (see Session.lookupIds), shown as inode `shownIno`, found at `depth` in the
   *  directory's host paths (see Session.probeAllow); with `layers` too, of a lower directory, which
   *  merges the host paths of those bits (a bit each by its place among them, `depth` the first);
   *  with `held`, of a lower file too big for C to copy, its opens for reading JS's ('held') or
   *  passed through in C ('passed'). */
  | { op: 'lookup'; parent: number; name: string; child?: number; shownIno?: number; depth?: number; layers?: number; held?: 'held' | 'passed' }
  | { op: 'forget'; ino: number; nlookup: number } // already replied in C; forget_multi becomes several
  | { op: 'getattr'; ino: number; fh?: number }
  | {
      op: 'setattr'
      ino: number
      fh?: number
      valid: number
      mode: number
      uid: number
      gid: number
      size: number
      atimeSec: number
      atimeNsec: number
      mtimeSec: number
      mtimeNsec: number
      killSuidgid: boolean
      waiting: number
      /** `answered`: the copy-up C made and answered for (see Session.cowConfigure): of a file, its
       *  fd (-1: a metadata-only copy C named already), its bytes of data, the lower file's inode
       *  number, whether its data was read from the disk, and whether it is a metadata-only copy
       *  (`meta`, see cowConfigure); of a directory (`dir`), named already, the inode number it
       *  shows (`ino`, its lower one) when its copy recorded that as its origin, and whether it was
       *  copied up for a rename answered in C (`lifted`: no setattr asked for it). */
      copy?: { dir: false; fd: number; bytes: number; srcIno: number; cold: boolean; meta: boolean } | { dir: true; ino?: number; lifted: boolean }
    }
  | { op: 'readlink'; ino: number }
  | { op: 'mknod'; parent: number; name: string; mode: number; rdev: number }
  | { op: 'mkdir'; parent: number; name: string; mode: number }
  | { op: 'unlink' | 'rmdir'; parent: number; name: string }
  | { op: 'symlink'; target: string; parent: number; name: string }
  | {
      op: 'rename'; parent: number; name: string; newparent: number; newname: string; flags: number; waiting: number
      /** `answered`: the rename of a marked lower file C made and answered (see Session.pendingDrop):
       *  its copy's fd, bytes of data and lower inode number, and whether its data was read from
       *  the disk. */
      copy?: { fd: number; bytes: number; srcIno: number; cold: boolean }
    }
  | {
      op: 'link'; ino: number; newparent: number; newname: string; waiting: number
      /** `answered`: the link of a marked lower file C made and answered (see Session.pendingDrop):
       *  the new name's node id (`child`), the copy's fd, bytes of data and lower inode number, and
       *  whether its data was read from the disk. */
      copy?: { child: number; fd: number; bytes: number; srcIno: number; cold: boolean }
    }
  /** first: the node's first open, which C could have answered (see Session.cowAllow); uncached:
   *  C found that file uncached and started reading it (with `answered` and no `copy`, a first open
   *  C answered after reading its file from the disk). */
  | {
      op: 'open'; ino: number; flags: number; killSuidgid: boolean; waiting: number; first: boolean; uncached?: boolean
      /** `answered`: the copy-up C made and answered the open with (see Session.cowOpenFh): the
       *  file handle it gave, the copy's fd, its bytes of data, the lower file's inode number,
       *  whether its data was read from the disk, the backing id the open passes through to, and
       *  whether the reply never reached the caller (then no release follows). With `upper`, no
       *  copy: `fd` is C's open of the file itself, in the upper layer (Session.cowAllow's
       *  `upper`), and `bytes`, `srcIno` and `cold` say nothing. */
      copy?: { fh: number; fd: number; bytes: number; srcIno: number; cold: boolean; backing: number; unsent: boolean; upper: boolean }
    }
  | { op: 'create'; parent: number; name: string; mode: number; flags: number }
  /** An O_TMPFILE open in the directory `parent`: a new file with no name (answered as a create). */
  | { op: 'tmpfile'; parent: number; mode: number; flags: number }
  /** waiting (here and above): other requests read from the kernel and not answered yet (0: this
   *  one is alone). */
  | { op: 'read'; ino: number; fh: number; size: number; offset: number; waiting: number }
  | { op: 'write'; ino: number; fh: number; data: Buffer /* a copy owned by JS */; offset: number; killSuidgid: boolean }
  | { op: 'release'; ino: number; fh: number }
  | { op: 'fsync' | 'fsyncdir'; ino: number; fh: number; datasync: boolean; waiting: number }
  | { op: 'readdir' | 'readdirplus'; ino: number; size: number; offset: number } // no fh: no opendir
  | { op: 'statfs'; ino: number }
  | { op: 'setxattr'; ino: number; name: string; value: Buffer; flags: number }
  | { op: 'getxattr'; ino: number; name: string; size: number }
  | { op: 'listxattr'; ino: number; size: number }
  | { op: 'removexattr'; ino: number; name: string }
  | { op: 'access'; ino: number; mask: number }
  | { op: 'fallocate'; ino: number; fh: number; mode: number; offset: number; length: number }
  | { op: 'lseek'; ino: number; fh: number; offset: number; whence: number }
  /** Restricted ioctls only: `input` is what the caller's argument held, `outSize` the room for
   *  what it receives. */
  | { op: 'ioctl'; ino: number; cmd: number; input: Buffer | undefined; outSize: number }
)

export type Op = Request['op']

export interface MountOptions {
  fsname: string
  subtype: string
  allowOther: boolean
  defaultPermissions: boolean
  readOnly: boolean
  /** conn->max_write, default 1 MiB (libfuse3 caps it there). */
  maxWrite?: number
  /** Only lowers the kernel's proposal. */
  maxReadahead?: number
  /** libfuse's -d: every request logged to stderr. */
  debug?: boolean
  /** Busy-poll /dev/fuse for this many microseconds after every request is answered (0: never). */
  spinUs?: number
  /** Ask the kernel for FUSE passthrough at INIT (see backingOpen). */
  passthrough?: boolean
  /** Ask the kernel to enforce POSIX ACLs (FUSE_POSIX_ACL), read and written as system.posix_acl_*
   *  xattrs. */
  posixAcl?: boolean
  /** mount(8) flags for the mount itself (suid, dev, noexec, ...): libfuse mounts nosuid,nodev
   *  unless told otherwise. */
  kernelFlags?: string[]
}

export interface StatfsOut {
  bsize: number
  frsize: number
  blocks: number
  bfree: number
  bavail: number
  files: number
  ffree: number
  namemax: number
}

export interface DirEntry {
  name: string
  ino: number
  mode: number
  /** Offset of the NEXT entry: what a later readdir with this offset continues from. */
  next: number
}

export interface DirEntryPlus {
  name: string
  entry: EntryOut
  next: number
}

// Request fields (FLL_F_*), in the array C fills before each onRequest call.
const F = {
  REQ: 0, UID: 1, GID: 2, PID: 3, UMASK: 4, INO: 5, PARENT: 6, NEWPARENT: 7, FH: 8, HAS_FH: 9, NLOOKUP: 10,
  RDEV: 11, SIZE: 12, OFFSET: 13, MODE: 14, FLAGS: 15, VALID: 16, MASK: 17, DATASYNC: 18, ST_MODE: 19,
  ST_UID: 20, ST_GID: 21, ST_SIZE: 22, ATIME: 23, ATIME_NS: 24, MTIME: 25, MTIME_NS: 26, ANSWERED: 27,
  WAITING: 28, KILL_SUIDGID: 29, COUNT: 30,
} as const
// What the kernel granted at INIT (FLL_GRANTED_*).
/** The `valid` of a record of a first open C answered after reading its file from the disk
 *  (native/fuse-ll.h: FLL_OPEN_UNCACHED, fuse-ll-fast.c: tell_uncached). */
const OPEN_UNCACHED = 8
/** The `flags` of a record of a lookup C answered (native/fuse-ll-cow.c, COW_LOOKUP_*): a new node
 *  (file_lookup, lower_dir_lookup), a directory with the host paths it merges, a file JS copies up
 *  whose opens for reading are JS's (held) or passed through in C (passed). */
const LOOKUP_NEW = 1
const LOOKUP_DIR = 2
const LOOKUP_HELD = 4
const LOOKUP_PASSED = 8
const GRANTED_PASSTHROUGH = 1
const GRANTED_KILLPRIV = 2
// Reply layouts (FLL_A_*, FLL_E_*): an attr, an entry (attr + 4), readdirplus (entry + next), readdir.
const ATTR_LEN = 15
const E = { NODE: 15, GENERATION: 16, ATTR_TIMEOUT: 17, ENTRY_TIMEOUT: 18 } as const
const ENTRY_LEN = ATTR_LEN + 4
const DIRPLUS_LEN = ENTRY_LEN + 1
const DIR_LEN = 3
// The smallest packed entries (a one-byte name): bounds how many entries one reply can take.
const MIN_DIRENT = 32
const MIN_DIRENTPLUS = 160

type Handle = object
interface Addon {
  fuseLlOpNames(): Op[]
  fuseLlCreate(
    onRequest: (kind: number, name: string | undefined, name2: string | undefined, data: Buffer | undefined) => void,
    onEvent: (kind: 'init' | 'exit', reason: string) => void,
    fields: Float64Array,
  ): Handle
  fuseLlMount(h: Handle, mountpoint: string, options: Omit<MountOptions, 'kernelFlags'> & { kernelFlags?: string }): void
  fuseLlUnmount(h: Handle): void
  fuseLlShutdown(h: Handle): void
  fuseLlReplyErr(h: Handle, req: number, errno: number): void
  fuseLlReplyEntry(h: Handle, req: number, entry: Float64Array): void
  fuseLlReplyCreate(h: Handle, req: number, entry: Float64Array, fh: number, open: number, backing: number): number
  fuseLlReplyAttr(h: Handle, req: number, attr: Float64Array, timeout: number): void
  fuseLlReplyReadlink(h: Handle, req: number, target: string): void
  fuseLlReplyOpen(h: Handle, req: number, fh: number, open: number, backing: number): number
  fuseLlGranted(h: Handle): number
  fuseLlLoopStats(h: Handle): number[]
  fuseLlSoleCaller(h: Handle): boolean
  fuseLlCowConfigure(h: Handle, workDir: string | Buffer, maxSize: number, attrTimeout: number, exactModes: boolean, negativeTimeout: number, entryTimeout: number, passLowerMin: number, meta: boolean): void
  fuseLlCowRoom(h: Handle, room: number): void
  fuseLlCowOpenFh(h: Handle, fh: number): number
  fuseLlCowAllow(h: Handle, node: number, src: string | Buffer, shownIno: number, dst?: string | Buffer, sole?: boolean, first?: boolean, busy?: boolean, parent?: number, name?: string | Buffer, kind?: number): number
  fuseLlCowIdle(h: Handle, node: number): void
  fuseLlCowBusy(h: Handle, node: number): void
  fuseLlCowDeny(h: Handle, node: number): void
  fuseLlPendingDrop(h: Handle, parent: number, name: string | Buffer): void
  fuseLlPendingAdd(h: Handle, parent: number, name: string | Buffer): boolean
  fuseLlMade(h: Handle, node: number, fh: number, fd: number, attrTimeout: number, named: boolean, shown?: number): number
  fuseLlMadeEnd(h: Handle, node: number, all: boolean, writer: boolean): void
  fuseLlProbeAllow(h: Handle, node: number, paths: string | Buffer): number
  fuseLlProbeDeny(h: Handle, node: number): void
  fuseLlPositiveAllow(h: Handle, node: number, on: boolean): number
  fuseLlLookupIds(h: Handle, first: number, count: number): void
  fuseLlFastAllow(h: Handle, node: number): number
  fuseLlFastDeny(h: Handle, node: number): number
  fuseLlFastOpens(h: Handle, node: number): number
  fuseLlFastPassing(h: Handle, node: number): number
  fuseLlFastJoin(h: Handle, node: number): number
  fuseLlFastLeave(h: Handle, node: number): void
  fuseLlFastWatch(h: Handle, node: number): number
  fuseLlDirEnd(h: Handle, node: number, offset: number): number
  fuseLlBackingOpen(h: Handle, fd: number): number
  fuseLlBackingClose(h: Handle, id: number): number
  fuseLlReplyWrite(h: Handle, req: number, count: number): void
  fuseLlReplyLseek(h: Handle, req: number, offset: number): void
  fuseLlReplyIoctl(h: Handle, req: number, output: Buffer): void
  fuseLlReplyBuf(h: Handle, req: number, data: Uint8Array, length: number): void
  fuseLlReplyXattr(h: Handle, req: number, size: number): void
  fuseLlReplyStatfs(h: Handle, req: number, st: StatfsOut): void
  fuseLlReplyReaddir(h: Handle, req: number, size: number, names: string[], nums: Float64Array): number
  fuseLlReplyReaddirPlus(h: Handle, req: number, size: number, names: string[], nums: Float64Array): number
  fuseLlNotifyInvalInode(h: Handle, ino: number, offset: number, length: number): number
  fuseLlNotifyInvalInodeAsync(h: Handle, ino: number, offset: number, length: number): Promise<number>
  fuseLlNotifyInvalEntry(h: Handle, parent: number, name: string): number
  fuseLlNotifyInvalEntryAsync(h: Handle, parent: number, name: string): Promise<number>
  fuseLlNotifyStore(h: Handle, ino: number, data: Uint8Array, length: number): number
}

function native(): Addon {
  const addon = loadAddon<Addon>()
  if (typeof addon.fuseLlCreate !== 'function') throw new Error('the layerfs addon was built without the FUSE bridge')
  return addon
}

const EIO = 5

function putAttr(a: Float64Array, at: number, attr: Attr): void {
  a[at] = attr.ino
  a[at + 1] = attr.mode
  a[at + 2] = attr.nlink
  a[at + 3] = attr.uid
  a[at + 4] = attr.gid
  a[at + 5] = attr.rdev
  a[at + 6] = attr.size
  a[at + 7] = attr.blksize
  a[at + 8] = attr.blocks
  a[at + 9] = attr.atimeSec
  a[at + 10] = attr.atimeNsec
  a[at + 11] = attr.mtimeSec
  a[at + 12] = attr.mtimeNsec
  a[at + 13] = attr.ctimeSec
  a[at + 14] = attr.ctimeNsec
}

function putEntry(a: Float64Array, at: number, e: EntryOut): void {
  putAttr(a, at, e.attr)
  a[at + E.NODE] = e.ino
  a[at + E.GENERATION] = e.generation
  a[at + E.ATTR_TIMEOUT] = e.attrTimeout
  a[at + E.ENTRY_TIMEOUT] = e.entryTimeout
}

function openBits(o: OpenFlags | undefined): number {
  if (!o) return 0
  return (o.keepCache ? 1 : 0) | (o.directIo ? 2 : 0) | (o.cacheReaddir ? 4 : 0) | (o.nonseekable ? 8 : 0)
}

/** The last callers seen: the threads calling at a time are few, and each request of theirs then
 *  shares its Ctx instead of making one. */
const recentCallers: Ctx[] = []
let nextCaller = 0
const CALLERS_KEPT = 8

function ctxOf(uid: number, gid: number, pid: number, umask: number): Ctx {
  for (const c of recentCallers) if (c.pid === pid && c.uid === uid && c.gid === gid && c.umask === umask) return c
  const ctx = { uid, gid, pid, umask }
  recentCallers[nextCaller++ % CALLERS_KEPT] = ctx
  return ctx
}

/** The copy an answered setattr carries (see fuse-ll-cow.c: flags 1, its data came from the disk; 2,
 *  a directory; 4, one whose copy records its origin, the inode number in the offset; 8, one copied
 *  up for a rename; 16, a metadata-only copy of a file; 32, one named already, with no fd). */
function answeredCopy(f: Float64Array): NonNullable<(Request & { op: 'setattr' })['copy']> {
  const flags = f[F.FLAGS]!
  if (flags & 2) return { dir: true, ino: flags & 4 ? f[F.OFFSET]! : undefined, lifted: (flags & 8) !== 0 }
  const named = (flags & 32) !== 0
  return { dir: false, fd: named ? -1 : f[F.FH]!, bytes: f[F.SIZE]!, srcIno: f[F.OFFSET]!, cold: (flags & 1) !== 0, meta: (flags & 16) !== 0 }
}

/** The Request for a record: which fields an op carries follows native/fuse-ll-ops.c. */
function decode(op: Op, f: Float64Array, name: string | undefined, name2: string | undefined, data: Buffer | undefined): Request {
  const req = f[F.REQ]!
  const ctx = ctxOf(f[F.UID]!, f[F.GID]!, f[F.PID]!, f[F.UMASK]!)
  const ino = f[F.INO]!
  const fh = f[F.HAS_FH] ? f[F.FH]! : undefined
  switch (op) {
    case 'lookup':
      if (f[F.ANSWERED] === 1) {
        const flags = f[F.FLAGS]!
        if (flags & LOOKUP_NEW) {
          const found = { req, ctx, op, parent: f[F.PARENT]!, name: name!, child: ino, shownIno: f[F.OFFSET]!, depth: f[F.SIZE]!, answered: true } as const
          if (flags & LOOKUP_DIR) return { ...found, layers: f[F.RDEV]! }
          if (flags & (LOOKUP_HELD | LOOKUP_PASSED)) return { ...found, held: flags & LOOKUP_PASSED ? 'passed' : 'held' }
          return found
        }
        return { req, ctx, op, parent: f[F.PARENT]!, name: '', child: ino, answered: true }
      }
      return { req, ctx, op, parent: f[F.PARENT]!, name: name! }
    case 'unlink': case 'rmdir':
      return { req, ctx, op, parent: f[F.PARENT]!, name: name! }
    case 'mknod':
      return { req, ctx, op, parent: f[F.PARENT]!, name: name!, mode: f[F.MODE]!, rdev: f[F.RDEV]! }
    case 'mkdir':
      return { req, ctx, op, parent: f[F.PARENT]!, name: name!, mode: f[F.MODE]! }
    case 'create':
      return { req, ctx, op, parent: f[F.PARENT]!, name: name!, mode: f[F.MODE]!, flags: f[F.FLAGS]! }
    case 'tmpfile':
      return { req, ctx, op, parent: f[F.PARENT]!, mode: f[F.MODE]!, flags: f[F.FLAGS]! }
    case 'symlink':
      return { req, ctx, op, target: name2!, parent: f[F.PARENT]!, name: name! }
    case 'rename':
      if (f[F.ANSWERED] === 1) {
        const copy = { fd: f[F.FH]!, bytes: f[F.SIZE]!, srcIno: f[F.OFFSET]!, cold: (f[F.VALID]! & 1) !== 0 }
        return { req, ctx, op, parent: f[F.PARENT]!, name: name!, newparent: f[F.NEWPARENT]!, newname: name2!, flags: f[F.FLAGS]!, waiting: 0, answered: true, copy }
      }
      return { req, ctx, op, parent: f[F.PARENT]!, name: name!, newparent: f[F.NEWPARENT]!, newname: name2!, flags: f[F.FLAGS]!, waiting: f[F.WAITING]! }
    case 'link':
      if (f[F.ANSWERED] === 1) {
        const copy = { child: f[F.RDEV]!, fd: f[F.FH]!, bytes: f[F.SIZE]!, srcIno: f[F.OFFSET]!, cold: (f[F.VALID]! & 1) !== 0 }
        return { req, ctx, op, ino, newparent: f[F.NEWPARENT]!, newname: name2!, waiting: 0, answered: true, copy }
      }
      return { req, ctx, op, ino, newparent: f[F.NEWPARENT]!, newname: name2!, waiting: f[F.WAITING]! }
    case 'forget':
      return { req, ctx, op, ino, nlookup: f[F.NLOOKUP]!, answered: true }
    case 'getattr':
      return { req, ctx, op, ino, fh }
    case 'setattr':
      return {
        req, ctx, op, ino, fh, valid: f[F.VALID]!, mode: f[F.ST_MODE]!, uid: f[F.ST_UID]!, gid: f[F.ST_GID]!,
        size: f[F.ST_SIZE]!, atimeSec: f[F.ATIME]!, atimeNsec: f[F.ATIME_NS]!, mtimeSec: f[F.MTIME]!, mtimeNsec: f[F.MTIME_NS]!,
        killSuidgid: f[F.KILL_SUIDGID] === 1, waiting: f[F.WAITING]!,
        ...(f[F.ANSWERED] === 1 ? { answered: true, copy: answeredCopy(f) } : {}),
      }
    case 'readlink': case 'statfs':
      return { req, ctx, op, ino }
    case 'open':
      if (f[F.ANSWERED] === 1 && f[F.VALID] === OPEN_UNCACHED) return { req, ctx, op, ino, flags: 0, killSuidgid: false, waiting: 0, first: false, uncached: true, answered: true }
      if (f[F.ANSWERED] === 1) {
        const copy = { fh: f[F.FH]!, fd: f[F.RDEV]!, bytes: f[F.SIZE]!, srcIno: f[F.OFFSET]!, cold: (f[F.VALID]! & 1) !== 0, backing: f[F.MODE]!, unsent: (f[F.VALID]! & 2) !== 0, upper: (f[F.VALID]! & 4) !== 0 }
        return { req, ctx, op, ino, flags: f[F.FLAGS]!, killSuidgid: false, waiting: 0, first: false, answered: true, copy }
      }
      return { req, ctx, op, ino, flags: f[F.FLAGS]!, killSuidgid: f[F.KILL_SUIDGID] === 1, waiting: f[F.WAITING]!, first: (f[F.SIZE]! & 1) !== 0, uncached: (f[F.SIZE]! & 2) !== 0 }
    case 'read':
      return { req, ctx, op, ino, fh: f[F.FH]!, size: f[F.SIZE]!, offset: f[F.OFFSET]!, waiting: f[F.WAITING]! }
    case 'readdir': case 'readdirplus':
      return { req, ctx, op, ino, size: f[F.SIZE]!, offset: f[F.OFFSET]! }
    case 'write':
      return { req, ctx, op, ino, fh: f[F.FH]!, data: data!, offset: f[F.OFFSET]!, killSuidgid: f[F.KILL_SUIDGID] === 1 }
    case 'release':
      return { req, ctx, op, ino, fh: f[F.FH]!, answered: f[F.ANSWERED] === 1 }
    case 'fsync': case 'fsyncdir':
      return { req, ctx, op, ino, fh: f[F.FH]!, datasync: f[F.DATASYNC] === 1, waiting: f[F.WAITING]! }
    case 'setxattr':
      return { req, ctx, op, ino, name: name!, value: data!, flags: f[F.FLAGS]! }
    case 'getxattr':
      return { req, ctx, op, ino, name: name!, size: f[F.SIZE]! }
    case 'listxattr':
      return { req, ctx, op, ino, size: f[F.SIZE]! }
    case 'removexattr':
      return { req, ctx, op, ino, name: name! }
    case 'access':
      return { req, ctx, op, ino, mask: f[F.MASK]! }
    case 'fallocate':
      return { req, ctx, op, ino, fh: f[F.FH]!, mode: f[F.MODE]!, offset: f[F.OFFSET]!, length: f[F.SIZE]! }
    case 'lseek':
      return { req, ctx, op, ino, fh: f[F.FH]!, offset: f[F.OFFSET]!, whence: f[F.MODE]! }
    case 'ioctl':
      return { req, ctx, op, ino, cmd: f[F.MODE]!, input: data, outSize: f[F.OFFSET]! }
  }
}

/** The file handle of the opens answered in C (see Session.fastAllow); JS's own are small numbers. */
export const FAST_FH = 2 ** 52

/** What the event loop answered in C, and its busy-polls, by name: in the order of
 *  native/fuse-ll-session.c's loopStats. */
export const LOOP_STATS = [
  'spins', 'spinsSkipped', 'spinCallers', 'fastOpens', 'cowSetattrs', 'cowGetattrs', 'dirEnds', 'cowGetxattrs',
  'cowListxattrs', 'cowLookups', 'firstOpens', 'madeSetxattrs', 'cowOpens', 'cowDirLookups', 'cowRenames', 'cowSetxattrs',
  'cowFileLookups', 'lowerDirsRead', 'cowLinks', 'passOpens', 'firstOpensUncached', 'cowDirFirstLookups',
] as const

export type LoopStats = Record<(typeof LOOP_STATS)[number], number>

const FIRST_OPENS = LOOP_STATS.indexOf('firstOpens')

export class Session {
  readonly #n: Addon
  readonly #h: Handle
  #mounting: { resolve: () => void; reject: (e: Error) => void } | undefined
  #state: 'idle' | 'mounted' | 'ended' = 'idle'
  // process.exit() skips native cleanup: end the session synchronously then, or the mount is left
  // dead (ENOTCONN) behind the exited process.
  readonly #onProcessExit = (): void => this.#n.fuseLlShutdown(this.#h)
  /** Scratch for reply numbers, grown on demand (replies are synchronous: one buffer serves all). */
  #nums = new Float64Array(64 * DIRPLUS_LEN)

  constructor(handler: (r: Request) => void, onExit: (reason: string) => void) {
    this.#n = native()
    const ops = this.#n.fuseLlOpNames()
    const fields = new Float64Array(F.COUNT)
    const onRequest = (kind: number, name: string | undefined, name2: string | undefined, data: Buffer | undefined): void => {
      const r = decode(ops[kind]!, fields, name, name2, data)
      try {
        handler(r)
      } catch (e) {
        // A throwing handler must not leave the kernel (and the calling process) waiting forever.
        if (!r.answered) {
          try {
            this.#n.fuseLlReplyErr(this.#h, r.req, EIO)
          } catch {
            // already replied before throwing
          }
        }
        throw e // reported as an uncaught exception
      }
    }
    const onEvent = (kind: 'init' | 'exit', reason: string): void => {
      const pending = this.#mounting
      this.#mounting = undefined
      if (kind === 'init') {
        pending?.resolve()
        return
      }
      this.#state = 'ended'
      process.removeListener('exit', this.#onProcessExit)
      pending?.reject(new Error(`FUSE session ended before INIT: ${reason}`))
      onExit(reason)
    }
    this.#h = this.#n.fuseLlCreate(onRequest, onEvent, fields)
  }

  /**
   * Mounts (fuse_session_new + fuse_session_mount, then watches /dev/fuse from the loop). Throws at once on
   * failure (bad options, mount point missing or not a directory, no permission); the promise
   * resolves once the kernel's INIT has been processed. A session mounts once.
   */
  mount(mountpoint: string, options: MountOptions): Promise<void> {
    if (this.#state !== 'idle') throw new Error('FUSE session already mounted once')
    const done = new Promise<void>((resolve, reject) => {
      this.#mounting = { resolve, reject }
    })
    try {
      this.#n.fuseLlMount(this.#h, mountpoint, { ...options, kernelFlags: options.kernelFlags?.join(',') })
    } catch (e) {
      this.#mounting = undefined
      throw e
    }
    this.#state = 'mounted'
    process.once('exit', this.#onProcessExit)
    return done
  }

  /** Ends the session (closes /dev/fuse, unmounts lazily); onExit follows from a later callback. Idempotent. */
  unmount(): void {
    this.#n.fuseLlUnmount(this.#h)
  }

  /** errno positive (2 = ENOENT); 0 = success without data. */
  replyErr(req: number, errno: number): void {
    this.#n.fuseLlReplyErr(this.#h, req, errno)
  }

  #scratch(length: number): Float64Array {
    if (this.#nums.length < length) this.#nums = new Float64Array(Math.max(length, this.#nums.length * 2))
    return this.#nums
  }

  replyEntry(req: number, e: EntryOut): void {
    const nums = this.#nums
    putEntry(nums, 0, e)
    this.#n.fuseLlReplyEntry(this.#h, req, nums)
  }

  /** Like replyOpen, for a create. */
  replyCreate(req: number, e: EntryOut, fh: number, open: OpenFlags, backing = 0): boolean {
    const nums = this.#nums
    putEntry(nums, 0, e)
    return this.#n.fuseLlReplyCreate(this.#h, req, nums, fh, openBits(open), backing) === 0
  }

  replyAttr(req: number, attr: Attr, timeout: number): void {
    const nums = this.#nums
    putAttr(nums, 0, attr)
    this.#n.fuseLlReplyAttr(this.#h, req, nums, timeout)
  }

  replyReadlink(req: number, target: string): void {
    this.#n.fuseLlReplyReadlink(this.#h, req, target)
  }

  /**
   * `backing`: a backing id (see backingOpen) the kernel passes the file's reads and writes to, 0 for
   * none. False when the reply was not delivered (the open was interrupted, or the session ended):
   * the kernel has no such open file and will never release it, so the caller must.
   */
  replyOpen(req: number, fh: number, open: OpenFlags, backing = 0): boolean {
    return this.#n.fuseLlReplyOpen(this.#h, req, fh, openBits(open), backing) === 0
  }

  /** Whether the kernel granted FUSE passthrough at INIT (mount option `passthrough`). */
  get passthrough(): boolean {
    return (this.#n.fuseLlGranted(this.#h) & GRANTED_PASSTHROUGH) !== 0
  }

  /** The busy-polls of /dev/fuse (MountOptions.spinUs) run so far, those skipped because more
   *  threads than `spinCallers` sent the last requests, and that limit; and the requests answered
   *  in C, by kind (LOOP_STATS). */
  get loopStats(): LoopStats {
    const values = this.#n.fuseLlLoopStats(this.#h)
    return Object.fromEntries(LOOP_STATS.map((name, i) => [name, values[i] ?? 0])) as LoopStats
  }

  /** Whether one thread sent all of the last requests (16; all of them, before that many came). */
  get soleCaller(): boolean {
    return this.#n.fuseLlSoleCaller(this.#h)
  }

  /** loopStats.firstOpens alone: first opens answered in C, their bytes stored. */
  get firstOpens(): number {
    return this.#n.fuseLlLoopStats(this.#h)[FIRST_OPENS] ?? 0
  }

  /**
   * Setattrs answered in C (native/fuse-ll-cow.c): a setattr changing only the mode, owner or times
   * of a node marked with cowAllow copies its lower file up in C, into `workDir` (O_TMPFILE), and
   * is answered there; JS then gets it as an answered setattr carrying the copy (Request's `copy`).
   * Only files of at most `maxSize` bytes, and only while cowRoom allows. A marked directory is
   * copied up and named in C, and its attributes given `attrTimeout` seconds to live. `exactModes`:
   * a copy may be made with its mode from the start (see Stager.exactModes). A name missing from a
   * directory marked with probeAllow is answered in C too, as a negative entry living
   * `negativeTimeout` seconds (0: ENOENT); and the lookup of a marked directory by the name
   * cowAllow gave it, as an entry living `entryTimeout` seconds. A lower file looked up in C of
   * `passLowerMin` bytes or more (0: none) passes through when opened for reading, while the kernel
   * grants passthrough (see cowAllow's 'passed'). With `meta` (metacopy on), a setattr's copy is a
   * metadata-only one, which C names at once where its directory is in the upper layer (else JS
   * when it takes it), and takes no room; the renames, links and setxattrs of lower files are JS's.
   */
  cowConfigure(workDir: string | Buffer, maxSize: number, attrTimeout: number, exactModes: boolean, negativeTimeout: number, entryTimeout: number, passLowerMin: number, meta: boolean): void {
    this.#n.fuseLlCowConfigure(this.#h, workDir, maxSize, attrTimeout, exactModes, negativeTimeout, entryTimeout, passLowerMin, meta)
  }

  /** How many more copies C may make before it is told again. */
  cowRoom(room: number): void {
    this.#n.fuseLlCowRoom(this.#h, room)
  }

  /**
   * Opens for writing answered in C (native/fuse-ll-cow.c, fll_cow_open): an open of a node marked
   * with cowAllow (a small lower file) while no file of it is open (see cowIdle), for writing, by
   * root, with none of O_TRUNC, O_APPEND, O_DIRECT, O_SYNC, O_DSYNC, is copied up as a setattr's
   * would be and answered passing through to the copy, with a file handle JS reserved and gave
   * here, the file marked a writer's (see writer). JS then gets it as an answered open carrying the
   * copy (Request's `copy`). False when C holds enough handles already, or answers no such open
   * any more (it could not register a backing file: JS's own opens find out why).
   */
  cowOpenFh(fh: number): boolean {
    return this.#n.fuseLlCowOpenFh(this.#h, fh) === 1
  }

  /** Mark `node`, the lower file `src` (a host path), shown with inode number `shownIno`: its next
   *  setattr may be answered in C. With `dst`, `src` is a lower directory and `dst` the host path
   *  its copy is to take in the upper layer, its getattrs answered in C too (with `sole`, it is in
   *  `src`'s layer only: its own link count); with `sole` and `src` '', `dst` is a directory only
   *  in the upper layer, whose getattrs, and setattrs changing only mode, owner or times, are
   *  answered in C. With `first` (a file no open of which was answered yet), its first open for reading may
   *  be answered in C too, its bytes stored in the kernel's page cache (native/fuse-ll-fast.c); an
   *  open that comes to JS instead carries `first` then. The node's directory is node `parent`:
   *  while C holds that one marked as a directory in the upper layer, adopting a file's copy
   *  copies no directory up, so a lower directory's setattr may still be answered in C behind it.
   *  A directory's lookups by `name` in `parent` are answered in C while it is marked; JS then
   *  gets an answered lookup naming it, and counts the kernel's reference. A file (no `dst`) is
   *  of `kind` (see MarkedFile): with 'upper', `src` is the file itself, in the upper layer, whose
   *  getattrs, xattr reads, first open, setattrs of mode, owner and times and an open for writing
   *  may be answered in C, and nothing copies it; with 'held', a lower file C does not copy, whose
   *  getattrs and xattr reads may be answered there (no `first`); with 'passed', one of those that
   *  JS passes through when opened for reading: C's opens of it for reading pass through too (see
   *  fastPassing), and count as fast opens. False when not configured or out of memory. */
  cowAllow(node: number, src: string | Buffer, shownIno: number, dst?: string | Buffer, sole?: boolean, first = false, busy = false, parent = 0, name?: string | Buffer, kind: MarkedFile = 'lower'): boolean {
    return this.#n.fuseLlCowAllow(this.#h, node, src, shownIno, dst, sole, first, busy, parent, name, MARKED_FILE[kind]) === 1
  }

  /** JS holds no open file of `node` any more: an open of it for writing may be answered in C
   *  (see cowOpenFh). C holds it busy from its mark with `busy` on, or from any open that went to
   *  JS. */
  cowIdle(node: number): void {
    this.#n.fuseLlCowIdle(this.#h, node)
  }

  /** JS holds an open file of `node` it answered: no open of it is answered in C until cowIdle
   *  (a cowIdle delivered just before that open, for JS's earlier files, may have said otherwise). */
  cowBusy(node: number): void {
    this.#n.fuseLlCowBusy(this.#h, node)
  }

  /** Mark `node`, a directory copied up to the host path `upperPath` that merges with a lower one,
   *  shown with inode number `shownIno`: its setattrs changing only mode, owner or times may be
   *  made on `upperPath` and answered in C, with no request, and its lookups by `name` in `parent`
   *  (see cowAllow). False when not configured or out of memory. */
  cowAllowUpperDir(node: number, upperPath: string | Buffer, shownIno: number, parent = 0, name?: string | Buffer): boolean {
    return this.#n.fuseLlCowAllow(this.#h, node, '', shownIno, upperPath, undefined, false, false, parent, name) === 1
  }

  /** The node's setattrs come as requests again. */
  cowDeny(node: number): void {
    this.#n.fuseLlCowDeny(this.#h, node)
  }

  /**
   * Renames answered in C (native/fuse-ll-cow.c, fll_cow_rename): the rename of a node marked as a
   * lower file (found by the `name` cowAllow gave it) to a name missing from every layer of a
   * directory marked with probeAllow is made there as the union defers one (the copy made, both
   * directories in the upper layer, the rename written after the copy's flush), and JS gets it as
   * an answered rename carrying the copy (Request's `copy`). Both names stay out of C's answers to
   * lookups until JS says the rename is on the disk: pendingDrop(parent, name) for each of them,
   * once per such rename.
   */
  pendingDrop(parent: number, name: string): void {
    this.#n.fuseLlPendingDrop(this.#h, parent, name)
  }

  /** A name JS gave the directory node `parent` before the disk has it (a deferred link): kept out
   *  of C's answers to lookups, as a rename's new name above, until pendingDrop. False when C did
   *  not take it (out of memory): the caller keeps the directory from C's lookups instead. */
  pendingAdd(parent: number, name: string): boolean {
    return this.#n.fuseLlPendingAdd(this.#h, parent, name)
  }

  /**
   * `node` is a file the daemon made, open as its file handle `fh` on the host descriptor `fd`
   * (-1: none to change it through): it holds no security.capability, so its getxattr of that
   * name is answered in C with no request; and while that open lives, its setattrs that change
   * only mode (no set-ID bit), owner or times are made through the descriptor and answered in C,
   * the attributes given `attrTimeout` seconds, and so are the setxattrs of its access ACL; with
   * `named` (made with a name, not O_TMPFILE), its getattrs too. False when out of memory.
   */
  made(node: number, fh: number, fd: number, attrTimeout: number, named: boolean): boolean {
    return this.#n.fuseLlMade(this.#h, node, fh, fd, attrTimeout, named) === 1
  }

  /**
   * `node`, a file with one link and no set-ID bit that the daemon did not make, is open for
   * writing as `fh` on the host descriptor `fd`: while that open lives, its setattrs that change
   * only mode (no set-ID bit), owner or times are made through the descriptor and answered in C,
   * with st_ino `shown` and `attrTimeout` seconds to live; with `unnamed` (a copy not named yet),
   * with one link and no time to live, as such a copy shows. Its capability and xattrs stay JS's.
   * A file the open that made it still holds keeps that mark (true: the node has one). False when
   * out of memory, or the descriptor could not be copied.
   */
  writer(node: number, fh: number, fd: number, shown: number, attrTimeout: number, unnamed: boolean): boolean {
    return this.#n.fuseLlMade(this.#h, node, fh, fd, attrTimeout, !unnamed, shown) === 1
  }

  /** The node's setattrs come as requests again; with `all`, its getxattrs too. */
  madeEnd(node: number, all: boolean): void {
    this.#n.fuseLlMadeEnd(this.#h, node, all, false)
  }

  /** As madeEnd(node, false), when the node's mark is a writer's (see writer). */
  writerEnd(node: number): void {
    this.#n.fuseLlMadeEnd(this.#h, node, false, true)
  }

  /** `node`, a directory, is at the host paths `dirs`, in every layer a name in it could be in: the
   *  lookup of a name missing from all of them is answered in C (when cowConfigure was called), as
   *  a missing name. False when out of memory. */
  probeAllow(node: number, dirs: readonly HostPath[]): boolean {
    const joined = dirs.every((dir) => typeof dir === 'string')
      ? dirs.map((dir) => `${dir}\0`).join('')
      : Buffer.concat(dirs.flatMap((dir) => [hostBytes(dir), Buffer.alloc(1)]))
    return this.#n.fuseLlProbeAllow(this.#h, node, joined) === 1
  }

  /** Lookups in `node` come as requests again. */
  probeDeny(node: number): void {
    this.#n.fuseLlProbeDeny(this.#h, node)
  }

  /**
   * Whether the first lookup of a lower file or directory found in `node`, a directory marked with
   * probeAllow, may be answered in C (`on`), as a new node (native/fuse-ll-cow.c, file_lookup,
   * lower_dir_lookup): a regular file with one link or a directory, in a lower layer, missing from
   * the upper one and hidden by no `.wh.` file above it, whose name no node C knows of holds (a node
   * marked with cowAllow and a `name`), and that is not pending. It is marked as cowAllow marks a
   * lower file (its name; of at most cowConfigure's `maxSize` bytes, its first open; bigger, held
   * or passed) or directory, and JS gets an answered lookup with the new node's id and inode number
   * (and a directory's layers). False when not on, or `node` is not marked with probeAllow; a
   * probeAllow or probeDeny of the node takes it away.
   */
  positiveAllow(node: number, on: boolean): boolean {
    return this.#n.fuseLlPositiveAllow(this.#h, node, on) === 1
  }

  /** The node ids from `first` to `first + count - 1` are C's to give to the files it looks up
   *  (see positiveAllow), in place of those it was given before. */
  lookupIds(first: number, count: number): void {
    this.#n.fuseLlLookupIds(this.#h, first, count)
  }

  /**
   * Opens answered in C (native/fuse-ll-fast.c): from now on, an open of `node` for reading only is
   * answered without a request, with keep_cache and the file handle FAST_FH. False when out of
   * memory (its opens then keep coming).
   */
  fastAllow(node: number): boolean {
    return this.#n.fuseLlFastAllow(this.#h, node) === 1
  }

  /** Opens of `node` come as requests again. Returns its fast opens still open. */
  fastDeny(node: number): number {
    return this.#n.fuseLlFastDeny(this.#h, node)
  }

  /** The listing of the directory `node` just given ends at `offset`: the read there, which ends
   *  the reader's pass, is answered in C, empty (native/fuse-ll-fast.c). False when out of memory. */
  dirEnd(node: number, offset: number): boolean {
    return this.#n.fuseLlDirEnd(this.#h, node, offset) === 1
  }

  /** How many fast opens of `node` are open. */
  fastOpens(node: number): number {
    return this.#n.fuseLlFastOpens(this.#h, node)
  }

  /** Whether the fast opens of `node` open now pass through (a lower file marked 'passed', see
   *  cowAllow): the kernel then holds the node in that mode, to their backing file, until they are
   *  released, and an open JS answers otherwise fails. */
  fastPassing(node: number): boolean {
    return this.#n.fuseLlFastPassing(this.#h, node) === 1
  }

  /** The backing id the fast opens of `node` pass through to (0: they do not, or there are none),
   *  for JS's own files of it to pass through to as well: C keeps it until fastLeave. */
  fastJoin(node: number): number {
    return this.#n.fuseLlFastJoin(this.#h, node)
  }

  /** JS's files of `node` that joined its fast opens (fastJoin) are all closed. */
  fastLeave(node: number): void {
    this.#n.fuseLlFastLeave(this.#h, node)
  }

  /** Hands the release of the last fast open of `node` (open now) to JS, as a release request
   *  (answered, fh FAST_FH). Returns the node's fast opens. */
  fastWatch(node: number): number {
    return this.#n.fuseLlFastWatch(this.#h, node)
  }

  /** Whether the kernel granted FUSE_HANDLE_KILLPRIV_V2 at INIT (see Request's killSuidgid). */
  get killpriv(): boolean {
    return (this.#n.fuseLlGranted(this.#h) & GRANTED_KILLPRIV) !== 0
  }

  /**
   * Registers an open fd as a backing file for passthrough opens: its id (> 0), or -errno
   * (-EOPNOTSUPP when the kernel did not grant passthrough at INIT, -EPERM without CAP_SYS_ADMIN,
   * -ELOOP for a file on a stacked filesystem). The fd may be closed afterwards.
   */
  backingOpen(fd: number): number {
    return this.#n.fuseLlBackingOpen(this.#h, fd)
  }

  /** Drops a backing id; files opened with it keep their backing file. 0 or -errno. */
  backingClose(id: number): number {
    return this.#n.fuseLlBackingClose(this.#h, id)
  }

  replyWrite(req: number, count: number): void {
    this.#n.fuseLlReplyWrite(this.#h, req, count)
  }

  /** A successful ioctl: `output` is what the caller's argument receives (empty: nothing). */
  replyIoctl(req: number, output: Buffer): void {
    this.#n.fuseLlReplyIoctl(this.#h, req, output)
  }

  /** Where an lseek with SEEK_DATA or SEEK_HOLE landed. */
  replyLseek(req: number, offset: number): void {
    this.#n.fuseLlReplyLseek(this.#h, req, offset)
  }

  /** Read data or a getxattr/listxattr value: the first `length` bytes of `data`. */
  replyBuf(req: number, data: Uint8Array, length: number): void {
    this.#n.fuseLlReplyBuf(this.#h, req, data, length)
  }

  /** The size probe answer (getxattr/listxattr with size 0). */
  replyXattr(req: number, size: number): void {
    this.#n.fuseLlReplyXattr(this.#h, req, size)
  }

  replyStatfs(req: number, st: StatfsOut): void {
    this.#n.fuseLlReplyStatfs(this.#h, req, st)
  }

  /** The most entries one reply of `size` bytes can take: pass no more than this many. */
  static readdirCapacity(size: number, plus: boolean): number {
    return Math.floor(size / (plus ? MIN_DIRENTPLUS : MIN_DIRENT)) + 1
  }

  /** Packs entries (from entries[0]) into at most `size` bytes, replies, and returns how many fit. */
  replyReaddir(req: number, size: number, entries: DirEntry[]): number {
    const n = Math.min(entries.length, Session.readdirCapacity(size, false))
    const nums = this.#scratch(n * DIR_LEN)
    const names: string[] = []
    for (let i = 0; i < n; i++) {
      const e = entries[i]!
      names.push(e.name)
      nums[i * DIR_LEN] = e.ino
      nums[i * DIR_LEN + 1] = e.mode
      nums[i * DIR_LEN + 2] = e.next
    }
    return this.#n.fuseLlReplyReaddir(this.#h, req, size, names, nums)
  }

  /** As replyReaddir; only the returned count of entries got a lookup reference in the kernel. */
  replyReaddirPlus(req: number, size: number, entries: DirEntryPlus[]): number {
    const n = Math.min(entries.length, Session.readdirCapacity(size, true))
    const nums = this.#scratch(n * DIRPLUS_LEN)
    const names: string[] = []
    for (let i = 0; i < n; i++) {
      const e = entries[i]!
      names.push(e.name)
      putEntry(nums, i * DIRPLUS_LEN, e.entry)
      nums[i * DIRPLUS_LEN + ENTRY_LEN] = e.next
    }
    return this.#n.fuseLlReplyReaddirPlus(this.#h, req, size, names, nums)
  }

  /**
   * 0 or -errno (-ENOENT: the kernel has no such inode cached, normal). Synchronous in the kernel:
   * never invalidate an inode an unanswered read/write request is working on (deadlock).
   */
  notifyInvalInode(ino: number, offset: number, length: number): number {
    return this.#n.fuseLlNotifyInvalInode(this.#h, ino, offset, length)
  }

  /**
   * notifyInvalInode, sent from the thread pool: a promise of 0 or -errno, never rejected. The
   * kernel may wait in it for pages that requests on the inode hold, until JS answers them: for
   * dropping the pages of an inode that may have requests in flight (the open names of a hard link
   * written through another).
   */
  notifyInvalInodeAsync(ino: number, offset: number, length: number): Promise<number> {
    return this.#n.fuseLlNotifyInvalInodeAsync(this.#h, ino, offset, length)
  }

  /** 0 or -errno. Takes the parent's lock in the kernel: not while a request on that directory is unanswered. */
  notifyInvalEntry(parent: number, name: string): number {
    return this.#n.fuseLlNotifyInvalEntry(this.#h, parent, name)
  }

  /** notifyInvalEntry, sent from the thread pool: a promise of 0 or -errno. The kernel waits for
   *  the parent's lock there, which a request waiting for this thread may hold. */
  notifyInvalEntryAsync(parent: number, name: string): Promise<number> {
    return this.#n.fuseLlNotifyInvalEntryAsync(this.#h, parent, name)
  }

  /**
   * Puts the first `length` bytes of `data` into the kernel's page cache of `ino` as its bytes from
   * offset 0 (and its size, if that was smaller): reads of them then need no request. 0 or -errno
   * (-ENOENT: the kernel has no such inode cached). Synchronous in the kernel, which locks each
   * page it fills: never for an inode with a read or write request unanswered (deadlock), nor one
   * with pages written that the daemon has not seen.
   */
  notifyStore(ino: number, data: Uint8Array, length: number): number {
    return this.#n.fuseLlNotifyStore(this.#h, ino, data, length)
  }
}
