// A libfuse3 low-level session driven from the libuv loop (native/fuse-ll*.c). C owns the FUSE
// session and a thread running fuse_session_loop; each kernel request is copied into a record and
// handed to `handler` on the JS thread, which answers it later with exactly one reply* call (any
// time, from any async continuation). Only `forget` needs no reply: C has already answered it.
//
// The daemon must never make filesystem calls into its own mount from the JS thread and wait for
// them synchronously: the requests they cause can only be answered by this very thread.
import { loadAddon } from './addon.js'

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

export interface Ctx {
  uid: number
  gid: number
  pid: number
  /** The caller's umask for mknod/mkdir/create (the kernel has already applied it to `mode`); 0 otherwise. */
  umask: number
}

/** What the kernel gets; times split in sec + nsec. */
export interface Attr {
  ino: number
  mode: number
  nlink: number
  uid: number
  gid: number
  rdev: number
  size: number
  blksize: number
  blocks: number
  atimeSec: number
  atimeNsec: number
  mtimeSec: number
  mtimeNsec: number
  ctimeSec: number
  ctimeNsec: number
}

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

export type Request = {
  req: number /* opaque id to pass back to a reply fn */
  ctx: Ctx
  /** Already answered in C (forget, release): JS only updates its state, never replies. opendir and
   *  flush are answered ENOSYS in C, which makes the kernel stop sending them (and releasedir). */
  answered?: boolean
} & (
  | { op: 'lookup'; parent: number; name: string }
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
    }
  | { op: 'readlink'; ino: number }
  | { op: 'mknod'; parent: number; name: string; mode: number; rdev: number }
  | { op: 'mkdir'; parent: number; name: string; mode: number }
  | { op: 'unlink' | 'rmdir'; parent: number; name: string }
  | { op: 'symlink'; target: string; parent: number; name: string }
  | { op: 'rename'; parent: number; name: string; newparent: number; newname: string; flags: number }
  | { op: 'link'; ino: number; newparent: number; newname: string }
  | { op: 'open'; ino: number; flags: number }
  | { op: 'create'; parent: number; name: string; mode: number; flags: number }
  | { op: 'read'; ino: number; fh: number; size: number; offset: number }
  | { op: 'write'; ino: number; fh: number; data: Buffer /* a copy owned by JS */; offset: number }
  | { op: 'release'; ino: number; fh: number }
  | { op: 'fsync' | 'fsyncdir'; ino: number; fh: number; datasync: boolean }
  | { op: 'readdir' | 'readdirplus'; ino: number; size: number; offset: number } // no fh: no opendir
  | { op: 'statfs'; ino: number }
  | { op: 'setxattr'; ino: number; name: string; value: Buffer; flags: number }
  | { op: 'getxattr'; ino: number; name: string; size: number }
  | { op: 'listxattr'; ino: number; size: number }
  | { op: 'removexattr'; ino: number; name: string }
  | { op: 'access'; ino: number; mask: number }
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

type Handle = object
interface Addon {
  fuseLlCreate(onRequest: (r: Request) => void, onEvent: (kind: 'init' | 'exit', reason: string) => void): Handle
  fuseLlMount(h: Handle, mountpoint: string, options: MountOptions): void
  fuseLlUnmount(h: Handle): void
  fuseLlShutdown(h: Handle): void
  fuseLlReplyErr(h: Handle, req: number, errno: number): void
  fuseLlReplyEntry(h: Handle, req: number, e: EntryOut): void
  fuseLlReplyCreate(h: Handle, req: number, e: EntryOut, fh: number, open: OpenFlags): void
  fuseLlReplyAttr(h: Handle, req: number, attr: Attr, timeout: number): void
  fuseLlReplyReadlink(h: Handle, req: number, target: string): void
  fuseLlReplyOpen(h: Handle, req: number, fh: number, open: OpenFlags): void
  fuseLlReplyWrite(h: Handle, req: number, count: number): void
  fuseLlReplyBuf(h: Handle, req: number, data: Uint8Array, length: number): void
  fuseLlReplyXattr(h: Handle, req: number, size: number): void
  fuseLlReplyStatfs(h: Handle, req: number, st: StatfsOut): void
  fuseLlReplyReaddir(h: Handle, req: number, size: number, entries: DirEntry[]): number
  fuseLlReplyReaddirPlus(h: Handle, req: number, size: number, entries: DirEntryPlus[]): number
  fuseLlNotifyInvalInode(h: Handle, ino: number, offset: number, length: number): number
  fuseLlNotifyInvalEntry(h: Handle, parent: number, name: string): number
}

function native(): Addon {
  const addon = loadAddon<Addon>()
  if (typeof addon.fuseLlCreate !== 'function') throw new Error('the layerfs addon was built without the FUSE bridge')
  return addon
}

const EIO = 5

export class Session {
  readonly #n: Addon
  readonly #h: Handle
  #mounting: { resolve: () => void; reject: (e: Error) => void } | undefined
  #state: 'idle' | 'mounted' | 'ended' = 'idle'
  // process.exit() skips native cleanup: end the session synchronously then, or the mount is left
  // dead (ENOTCONN) behind the exited process.
  readonly #onProcessExit = (): void => this.#n.fuseLlShutdown(this.#h)

  constructor(handler: (r: Request) => void, onExit: (reason: string) => void) {
    this.#n = native()
    const onRequest = (r: Request): void => {
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
    this.#h = this.#n.fuseLlCreate(onRequest, onEvent)
  }

  /**
   * Mounts (fuse_session_new + fuse_session_mount, then starts the loop thread). Throws at once on
   * failure (bad options, mount point missing or not a directory, no permission); the promise
   * resolves once the kernel's INIT has been processed. A session mounts once.
   */
  mount(mountpoint: string, options: MountOptions): Promise<void> {
    if (this.#state !== 'idle') throw new Error('FUSE session already mounted once')
    const done = new Promise<void>((resolve, reject) => {
      this.#mounting = { resolve, reject }
    })
    try {
      this.#n.fuseLlMount(this.#h, mountpoint, options)
    } catch (e) {
      this.#mounting = undefined
      throw e
    }
    this.#state = 'mounted'
    process.once('exit', this.#onProcessExit)
    return done
  }

  /** Ends the session (fuse_session_exit + unmount); onExit follows once the loop thread is done. Idempotent. */
  unmount(): void {
    this.#n.fuseLlUnmount(this.#h)
  }

  /** errno positive (2 = ENOENT); 0 = success without data. */
  replyErr(req: number, errno: number): void {
    this.#n.fuseLlReplyErr(this.#h, req, errno)
  }

  replyEntry(req: number, e: EntryOut): void {
    this.#n.fuseLlReplyEntry(this.#h, req, e)
  }

  replyCreate(req: number, e: EntryOut, fh: number, open: OpenFlags): void {
    this.#n.fuseLlReplyCreate(this.#h, req, e, fh, open)
  }

  replyAttr(req: number, attr: Attr, timeout: number): void {
    this.#n.fuseLlReplyAttr(this.#h, req, attr, timeout)
  }

  replyReadlink(req: number, target: string): void {
    this.#n.fuseLlReplyReadlink(this.#h, req, target)
  }

  replyOpen(req: number, fh: number, open: OpenFlags): void {
    this.#n.fuseLlReplyOpen(this.#h, req, fh, open)
  }

  replyWrite(req: number, count: number): void {
    this.#n.fuseLlReplyWrite(this.#h, req, count)
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

  /** Packs entries (from entries[0]) into at most `size` bytes, replies, and returns how many fit. */
  replyReaddir(req: number, size: number, entries: DirEntry[]): number {
    return this.#n.fuseLlReplyReaddir(this.#h, req, size, entries)
  }

  /** As replyReaddir; only the returned count of entries got a lookup reference in the kernel. */
  replyReaddirPlus(req: number, size: number, entries: DirEntryPlus[]): number {
    return this.#n.fuseLlReplyReaddirPlus(this.#h, req, size, entries)
  }

  /**
   * 0 or -errno (-ENOENT: the kernel has no such inode cached, normal). Synchronous in the kernel:
   * never invalidate an inode an unanswered read/write request is working on (deadlock).
   */
  notifyInvalInode(ino: number, offset: number, length: number): number {
    return this.#n.fuseLlNotifyInvalInode(this.#h, ino, offset, length)
  }

  /** 0 or -errno. Takes the parent's lock in the kernel: not while a request on that directory is unanswered. */
  notifyInvalEntry(parent: number, name: string): number {
    return this.#n.fuseLlNotifyInvalEntry(this.#h, parent, name)
  }
}
