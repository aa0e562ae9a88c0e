// Typed access to the layerfs_native addon (native/*.c): the Linux calls node:fs lacks. This is the
// only module that loads the addon. Every call returns a Promise; failures reject with a Node-style
// errno Error (code, errno < 0, syscall, path, dest), with the same errno names and messages as
// node:fs, so callers can treat both alike. Metadata calls (xattrs, mknod, renames, times, copies
// without data) run on the calling thread: on a local filesystem they take microseconds, and a
// thread-pool round trip costs tens (two cross-CPU wakeups, each dear on a VM). Calls that move
// data (copy-up of a file's bytes, copy_file_range, hole seeks) run on the thread pool.
import { constants as osConstants } from 'node:os'
import { getSystemErrorMap } from 'node:util'
import { loadAddon } from './addon.js'
import { hostBytes, pathString, type HostPath } from './names.js'

export const RENAME_NOREPLACE = 1
export const RENAME_EXCHANGE = 2
export const RENAME_WHITEOUT = 4
export const XATTR_CREATE = 1
export const XATTR_REPLACE = 2

/** A time for utimensat/futimens: ns since the epoch, null to leave it unchanged, 'now' for the current time. */
export type TimeNs = bigint | null | 'now'

/** A rejected call: the fields Node sets on fs errors, always present except path/dest. */
export interface SysError extends Error {
  code: string
  errno: number
  syscall: string
  path?: string
  dest?: string
}

/** A copy's own change, as the addon takes it: uid, gid, mode (-1: none), atime, mtime (null: none). */
type ChangeArgs = [number, number, number, TimeNs, TimeNs]

/** The addon's functions: synchronous ones return their value or throw a raw {errno, syscall}. */
interface Addon {
  lstatInto(path: HostPath, out: Float64Array): number
  fstatInto(fd: number, out: Float64Array): number
  /** flags: LIST_STATS, LIST_NAMES (native/stat.c) */
  listDir(path: HostPath, flags: number): [string[], Float64Array]
  listDirAsync(path: HostPath, flags: number): Promise<[string[], Float64Array]>
  /** undefined: no such attribute (ENODATA, not thrown) */
  lgetxattr(path: HostPath, name: string): Buffer | undefined
  stageCopy(src: HostPath, tmp: HostPath, kind: number, flags: number, origin: string, dataFrom: Uint8Array, ...change: ChangeArgs): Promise<number>
  stageCopySync(src: HostPath, tmp: HostPath, kind: number, flags: number, origin: string, dataFrom: Uint8Array, ...rest: [...ChangeArgs, Float64Array?]): number
  commitCopy(tmp: HostPath, target: HostPath, parent: HostPath): void
  copyDirSync(src: HostPath, dir: HostPath, target: HostPath, st: Float64Array, ...change: ChangeArgs): number
  stageCopyUnnamed(src: HostPath, dir: HostPath, flags: number, origin: string, dataFrom: Uint8Array, ...change: ChangeArgs): Promise<[number, number]>
  stageCopyUnnamedSync(src: HostPath, dir: HostPath, flags: number, origin: string, dataFrom: Uint8Array, ...rest: [...ChangeArgs, Float64Array?]): [number, number]
  stageSmallUnnamedSync(src: HostPath, dir: HostPath, flags: number, maxSize: number, st: Float64Array, dataFrom: Uint8Array, ...change: ChangeArgs): [number, number]
  linkCopy(fd: number, target: HostPath, parent: HostPath): void
  fillCopy(path: HostPath, dataFrom: Uint8Array, flags: number): Promise<number>
  fillCopySync(path: HostPath, dataFrom: Uint8Array, flags: number): number
  fillCopyFdSync(fd: number, dataFd: number, flags: number): number
  linkFd(fd: number, target: HostPath): void
  fgetxattr(fd: number, name: string): Buffer | undefined
  lsetxattr(path: HostPath, name: string, value: Uint8Array, flags: number): void
  fsetxattr(fd: number, name: string, value: Uint8Array, flags: number): void
  llistxattr(path: HostPath): string[]
  flistxattr(fd: number): string[]
  lremovexattr(path: HostPath, name: string): void
  fremovexattr(fd: number, name: string): void
  mknod(path: HostPath, mode: number, dev: number): void
  readlink(path: HostPath): string
  renameat2(from: HostPath, to: HostPath, flags: number): void
  utimensat(path: HostPath, atime: TimeNs, mtime: TimeNs, nofollow: boolean): void
  futimens(fd: number, atime: TimeNs, mtime: TimeNs): void
  dupFd(fd: number): number
  flockNowait(fd: number): number | undefined
  setsid(): number
  mallocThresholds(mmap: number, trim: number): void
  ioctlPath(path: HostPath, cmd: number, arg: Uint8Array): Buffer
  preadNowait(fd: number, buffer: Buffer, length: number, position: number): number
  firstPageCached(fd: number): number
  pwriteNowait(fd: number, buffer: Buffer, length: number, position: number): number
  prefetch(paths: Uint8Array, maxSize: number): Promise<number>
  seekData(fd: number, offset: number): Promise<number>
  seekHole(fd: number, offset: number): Promise<number>
  copyFileRange(fdIn: number, offIn: number, fdOut: number, offOut: number, len: number): Promise<number>
  ficlone(fdIn: number, fdOut: number): Promise<void>
  syncfs(fd: number): Promise<void>
  fallocate(fd: number, mode: number, offset: number, length: number): Promise<void>
}

function native(): Addon {
  return loadAddon<Addon>()
}

// ---- lstat without Stats objects ----

/** A file's attributes as the kernel takes them (struct fuse_attr): times in seconds and
 *  nanoseconds. The union reports them (getattr, readdirplus) and the FUSE session sends them. */
export interface FileAttr {
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
  /** The attributes of a copy-up not named yet (Core.#defer): the copy's own, but its ctime moves
   *  when it is named. */
  unnamed?: true
}

/** The slots of an lstatInto array (native/stat.c): times in seconds and nanoseconds. */
export const ST = {
  INO: 0, MODE: 1, NLINK: 2, UID: 3, GID: 4, RDEV: 5, SIZE: 6, BLKSIZE: 7, BLOCKS: 8,
  ATIME: 9, ATIME_NS: 10, MTIME: 11, MTIME_NS: 12, CTIME: 13, CTIME_NS: 14, DEV: 15,
} as const
export const ST_FIELDS = 16

/** A time of an lstatInto array, in ns since the epoch: `slot` is ST.ATIME, ST.MTIME or ST.CTIME
 *  (its nanoseconds follow it). */
export function stTimeNs(st: Float64Array, slot: number): bigint {
  return BigInt(st[slot]!) * 1_000_000_000n + BigInt(st[slot + 1]!)
}

/**
 * lstat `path` into `out` (slots ST.*, a Float64Array of ST_FIELDS): 0, or the errno (ENOENT for an
 * absent name). No Stats object, no BigInt, no exception: for getattr, lookup and readdirplus, where
 * node:fs's nanosecond Stats cost more than the syscall. On the calling thread.
 */
export function lstatInto(path: HostPath, out: Float64Array): number {
  return native().lstatInto(path, out)
}

/** lstatInto for a name that may well be absent: true when `out` holds its numbers, false when
 *  there is nothing there (ENOENT, or ENOTDIR: a parent is not a directory, as node:fs's
 *  throwIfNoEntry has it); other errors throw like node:fs's. */
export function lstatIfAny(path: HostPath, out: Float64Array): boolean {
  const errno = native().lstatInto(path, out)
  if (errno === 0) return true
  if (errno === ENOENT || errno === ENOTDIR) return false
  throw sysError(errno, 'lstat', path)
}

/** lstatInto, throwing an Error like node:fs's when it fails. */
export function lstatNumbers(path: HostPath, out: Float64Array): Float64Array {
  const errno = native().lstatInto(path, out)
  if (errno !== 0) throw sysError(errno, 'lstat', path)
  return out
}

/** fstat into `out`, as lstatNumbers; throws like node:fs when it fails. */
export function fstatNumbers(fd: number, out: Float64Array): Float64Array {
  const errno = native().fstatInto(fd, out)
  if (errno !== 0) throw sysError(errno, 'fstat')
  return out
}

/** listDir's flags (native/stat.c). */
const LIST_STATS = 1
const LIST_NAMES = 2

/**
 * A directory's entries ('.' and '..' left out) with their numbers, ST_FIELDS per name in the same
 * order (an entry removed between the readdir and its stat is left out). With `stats`, each entry's
 * lstat numbers; without, only the file type bits of ST.MODE, from the directory itself (a char
 * device, which may be a whiteout, and any entry whose type the filesystem does not record are
 * stat'ed: their numbers are all there). On the calling thread.
 */
export function listDirSync(path: HostPath, stats: boolean): { names: string[]; numbers: Float64Array } {
  const [names, numbers] = callSync((n) => n.listDir(path, stats ? LIST_STATS : 0), path)
  return { names, numbers }
}

/** listDirSync on the thread pool. */
export async function listDir(path: HostPath, stats: boolean): Promise<{ names: string[]; numbers: Float64Array }> {
  const [names, numbers] = await call((n) => n.listDirAsync(path, stats ? LIST_STATS : 0), path)
  return { names, numbers }
}

/** A directory's names ('.' and '..' left out), with no stat of any entry. On the calling thread. */
export function listNamesSync(path: HostPath): string[] {
  return callSync((n) => n.listDir(path, LIST_NAMES), path)[0]
}

// ---- errors ----

const errnoNames = new Map<number, string>()
for (const [name, value] of Object.entries(osConstants.errno)) if (!errnoNames.has(value)) errnoNames.set(value, name)
const systemErrors = getSystemErrorMap()

function isRaw(e: unknown): e is { errno: number; syscall: string } {
  return typeof e === 'object' && e !== null && !(e instanceof Error) && typeof (e as { errno?: unknown }).errno === 'number'
}

/** Turns the addon's plain {errno, syscall} rejection into an Error shaped like node:fs's. */
function sysError(errno: number, syscall: string, hostPath?: HostPath, hostDest?: HostPath): SysError {
  const path = hostPath === undefined ? undefined : pathString(hostPath)
  const dest = hostDest === undefined ? undefined : pathString(hostDest)
  const [code, text] = systemErrors.get(-errno) ?? [errnoNames.get(errno) ?? `E${errno}`, 'unknown error']
  let message = `${code}: ${text}, ${syscall}`
  if (path !== undefined) message += ` '${path}'`
  if (dest !== undefined) message += ` -> '${dest}'`
  const err = new Error(message) as SysError
  err.errno = -errno
  err.code = code
  err.syscall = syscall
  if (path !== undefined) err.path = path
  if (dest !== undefined) err.dest = dest
  return err
}

// Awaiting here (not a .catch) keeps the caller's frames in the async stack trace of the Error.
// `absent` maps one errno to a value: the calls where an error code just means "nothing there".
async function call<T>(
  start: (n: Addon) => T | Promise<T>,
  path?: HostPath,
  dest?: HostPath,
  absent?: { errno: number; value: T },
): Promise<T> {
  try {
    return await start(native())
  } catch (e) {
    if (!isRaw(e)) throw e
    if (absent && e.errno === absent.errno) return absent.value
    throw sysError(e.errno, e.syscall, path, dest)
  }
}

/** call() for synchronous callers: the value, or the same Error thrown. */
function callSync<T>(run: (n: Addon) => T, path?: HostPath, dest?: HostPath): T {
  try {
    return run(native())
  } catch (e) {
    throw isRaw(e) ? sysError(e.errno, e.syscall, path, dest) : e
  }
}

const NUL = Buffer.alloc(1)

function bytes(value: Buffer | string): Buffer {
  return typeof value === 'string' ? Buffer.from(value, 'utf8') : value
}

const ENXIO = osConstants.errno.ENXIO
const ENOENT = osConstants.errno.ENOENT
const ENOTDIR = osConstants.errno.ENOTDIR
const EOPNOTSUPP = osConstants.errno.EOPNOTSUPP

// ---- device numbers ----
// Same encoding as glibc's <sys/sysmacros.h> (and node:fs Stats.rdev); BigInt because the layout
// spans 64 bits and JS bitwise operators truncate to 32.

export function makedev(major: number, minor: number): number {
  const ma = BigInt(major)
  const mi = BigInt(minor)
  return Number(((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn))
}

export function major(dev: number): number {
  const d = BigInt(dev)
  return Number(((d >> 32n) & 0xfffff000n) | ((d >> 8n) & 0xfffn))
}

export function minor(dev: number): number {
  const d = BigInt(dev)
  return Number(((d >> 12n) & 0xffffff00n) | (d & 0xffn))
}

// ---- extended attributes (never following symlinks) ----

/** The attribute's value, or undefined when the file has no such attribute (ENODATA). */
export function lgetxattr(path: HostPath, name: string): Promise<Buffer | undefined> {
  return call((n) => n.lgetxattr(path, name), path)
}

/** lgetxattr for synchronous callers (the lookup path). */
export function lgetxattrSync(path: HostPath, name: string): Buffer | undefined {
  return callSync((n) => n.lgetxattr(path, name), path)
}

export function fgetxattr(fd: number, name: string): Promise<Buffer | undefined> {
  return call((n) => n.fgetxattr(fd, name))
}

export function fgetxattrSync(fd: number, name: string): Buffer | undefined {
  return callSync((n) => n.fgetxattr(fd, name))
}

/** flags: 0, XATTR_CREATE (EEXIST if present) or XATTR_REPLACE (ENODATA if absent). */
export function lsetxattr(path: HostPath, name: string, value: Buffer | string, flags = 0): Promise<void> {
  return call((n) => n.lsetxattr(path, name, bytes(value), flags), path)
}

export function lsetxattrSync(path: HostPath, name: string, value: Buffer | string, flags = 0): void {
  callSync((n) => n.lsetxattr(path, name, bytes(value), flags), path)
}

export function fsetxattr(fd: number, name: string, value: Buffer | string, flags = 0): Promise<void> {
  return call((n) => n.fsetxattr(fd, name, bytes(value), flags))
}

/** Attribute names the caller may see (trusted.* only as root); [] when there are none. */
export function llistxattr(path: HostPath): Promise<string[]> {
  return call((n) => n.llistxattr(path), path)
}

export function llistxattrSync(path: HostPath): string[] {
  return callSync((n) => n.llistxattr(path), path)
}

export function flistxattr(fd: number): Promise<string[]> {
  return call((n) => n.flistxattr(fd))
}

export function flistxattrSync(fd: number): string[] {
  return callSync((n) => n.flistxattr(fd))
}

export function lremovexattr(path: HostPath, name: string): Promise<void> {
  return call((n) => n.lremovexattr(path, name), path)
}

export function lremovexattrSync(path: HostPath, name: string): void {
  callSync((n) => n.lremovexattr(path, name), path)
}

export function fsetxattrSync(fd: number, name: string, value: Buffer | string, flags = 0): void {
  callSync((n) => n.fsetxattr(fd, name, bytes(value), flags))
}

export function fremovexattrSync(fd: number, name: string): void {
  callSync((n) => n.fremovexattr(fd, name))
}

// ---- directory entries ----

/**
 * mknod(2): mode carries the type (S_IFCHR, S_IFBLK, S_IFIFO, S_IFREG, S_IFSOCK) and permission
 * bits; dev is a makedev() number for device nodes. As with mknod(2), the process umask is applied
 * to the permission bits: chmod afterwards when exact bits matter.
 */
export function mknod(path: HostPath, mode: number, dev: number): Promise<void> {
  return call((n) => n.mknod(path, mode, dev), path)
}

export function mknodSync(path: HostPath, mode: number, dev: number): void {
  callSync((n) => n.mknod(path, mode, dev), path)
}

/** A symlink's target, its bytes kept (escaped where they are not UTF-8: see names.ts), where
 *  node:fs's readlink would replace them. On the calling thread. */
export function readlinkSync(path: HostPath): string {
  return callSync((n) => n.readlink(path), path)
}

/** rename with RENAME_NOREPLACE, RENAME_EXCHANGE or RENAME_WHITEOUT (0 = plain rename). */
export function renameat2Sync(from: HostPath, to: HostPath, flags: number): void {
  callSync((n) => n.renameat2(from, to, flags), from, to)
}

/** Sets atime/mtime in ns since the epoch; null leaves one unchanged; nofollow stamps a symlink itself. */
export function utimensat(path: HostPath, atimeNs: TimeNs, mtimeNs: TimeNs, nofollow: boolean): Promise<void> {
  return call((n) => n.utimensat(path, atimeNs, mtimeNs, nofollow), path)
}

export function utimensatSync(path: HostPath, atimeNs: TimeNs, mtimeNs: TimeNs, nofollow: boolean): void {
  callSync((n) => n.utimensat(path, atimeNs, mtimeNs, nofollow), path)
}

export function futimens(fd: number, atimeNs: TimeNs, mtimeNs: TimeNs): Promise<void> {
  return call((n) => n.futimens(fd, atimeNs, mtimeNs))
}

export function futimensSync(fd: number, atimeNs: TimeNs, mtimeNs: TimeNs): void {
  callSync((n) => n.futimens(fd, atimeNs, mtimeNs))
}

/** ioctl(2) with a struct argument (`cmd` says its size and direction: FS_IOC_GETFLAGS and the like)
 *  on a fresh descriptor of the object at `path` (a final symlink not followed): the argument as the
 *  ioctl left it. On the calling thread. */
export function ioctlPathSync(path: HostPath, cmd: number, arg: Uint8Array): Buffer {
  return callSync((n) => n.ioctlPath(path, cmd, arg), path)
}

/** fcntl(F_DUPFD_CLOEXEC): another fd on the same open file description (offset and status flags
 *  shared). On the calling thread. */
export function dupFdSync(fd: number): number {
  return callSync((n) => n.dupFd(fd))
}

/** flock(2) LOCK_EX | LOCK_NB: true once the open file `fd` holds the lock, false when another open
 *  file (another process's) holds it. On the calling thread. */
export function flockNowaitSync(fd: number): boolean {
  return callSync((n) => n.flockNowait(fd)) !== undefined
}

/** setsid(2): the calling process leads a new session, with no controlling terminal. */
export function setsidSync(): number {
  return callSync((n) => n.setsid())
}

/** glibc malloc's mmap and trim thresholds (mallopt M_MMAP_THRESHOLD, M_TRIM_THRESHOLD), in bytes,
 *  fixed from now on (they no longer adjust themselves). */
export function mallocThresholdsSync(mmap: number, trim: number): void {
  callSync((n) => n.mallocThresholds(mmap, trim))
}

// ---- file data ----

/**
 * Starts reading the regular files at `paths` of at most `maxSize` bytes into the page cache, on the
 * thread pool (readahead(2) of each whole file); paths that fail are skipped, files whose first
 * page is cached are left alone. How many were read or found cached, and how many of them were not
 * cached (their first page) when it began.
 */
export async function prefetch(paths: HostPath[], maxSize: number): Promise<{ read: number; cold: number }> {
  const n = await call((a) => a.prefetch(Buffer.concat(paths.flatMap((p) => [hostBytes(p), NUL])), maxSize))
  return { read: n % PREFETCH_COLD, cold: Math.floor(n / PREFETCH_COLD) }
}

/** native/data.c's PREFETCH_COLD: the multiple of the cold files' count in prefetch's number. */
const PREFETCH_COLD = 65536

/** lseek(SEEK_DATA): start of the first data at or after offset, or -1 when only a hole follows (ENXIO). */
export function seekData(fd: number, offset: number): Promise<number> {
  return call((n) => n.seekData(fd, offset), undefined, undefined, { errno: ENXIO, value: -1 })
}

/** lseek(SEEK_HOLE): start of the first hole at or after offset (EOF counts as one); ENXIO past EOF. */
export function seekHole(fd: number, offset: number): Promise<number> {
  return call((n) => n.seekHole(fd, offset))
}

/** One copy_file_range(2) with explicit offsets (file positions untouched); bytes copied, 0 at EOF. */
export function copyFileRange(fdIn: number, offIn: number, fdOut: number, offOut: number, len: number): Promise<number> {
  return call((n) => n.copyFileRange(fdIn, offIn, fdOut, offOut, len))
}

/** ioctl(FICLONE): makes fdOut share fdIn's extents; rejects as the filesystem says (ENOTSUP, EXDEV, EINVAL...). */
export function ficlone(fdIn: number, fdOut: number): Promise<void> {
  return call((n) => n.ficlone(fdIn, fdOut))
}

/** syncfs(2) on the thread pool: flush everything the filesystem holding `fd` has not written yet,
 *  and wait for it; rejects with the first writeback error the filesystem saw since `fd` opened. */
export function syncfs(fd: number): Promise<void> {
  return call((n) => n.syncfs(fd))
}

/** fallocate(2): `mode` is FALLOC_FL_* (0 allocates, growing the file), on the thread pool. */
export function fallocate(fd: number, mode: number, offset: number, length: number): Promise<void> {
  return call((n) => n.fallocate(fd, mode, offset, length))
}

// ---- copy-up (native/copy-up.c) ----

export type CopyKind = 'file' | 'dir' | 'symlink' | 'special'
const COPY_KINDS: Record<CopyKind, number> = { file: 0, dir: 1, symlink: 2, special: 3 }

export interface StageOptions {
  /** Copy a regular file's bytes (false: the copy is an empty file, for O_TRUNC). */
  data: boolean
  /** fsync the copy before it can become visible. */
  fsync: boolean
  /** Inode number to record in trusted.layerfs.origin; 'own': the source's, as the copy reads it
   *  (none for a file with other links). */
  origin?: bigint | 'own'
  /** Metadata only (overlayfs metacopy): a sparse file of the same size marked
   *  trusted.overlay.metacopy; its data stays in the lower file. */
  meta?: boolean
  /** Where the data comes from when it is not `src` (completing a metacopy: data from the lower
   *  file, everything else from the upper one). */
  dataFrom?: HostPath
  /** The caller's own change, made on the copy before it is named (a setattr that copies up): the
   *  mode and times replace the copied ones, and the chown comes after mode and xattrs, so that it
   *  clears set-ID bits and security.capability as a chown of the named file would. */
  change?: CopyChange
  /** An unnamed copy may be made with its mode from the start (see Stager.exactModes). */
  exactMode?: boolean
}

/** A metadata change made as part of a copy (see StageOptions.change); absent fields stay. */
export interface CopyChange {
  mode?: number
  uid?: number
  gid?: number
  atime?: TimeNs
  mtime?: TimeNs
}

/**
 * Build a copy of `src` at `tmp` in one native job, on the thread pool: the object (with its data
 * when asked: reflink, else copy_file_range over data extents, else read/write; holes kept), owner,
 * mode, xattrs except the union's private ones, origin, times, and an fsync when asked. Resolves to
 * the bytes of data copied; on failure `tmp` is gone.
 */
export function stageCopy(src: HostPath, tmp: HostPath, kind: CopyKind, options: StageOptions): Promise<number> {
  const args = stageArgs(options)
  return call((n) => n.stageCopy(src, tmp, COPY_KINDS[kind], args.flags, args.origin, args.dataFrom, ...args.change), src, tmp)
}

/** stageCopy on the calling thread: for copies that move no file data, or little. `st`, when
 *  given, receives src's lstat numbers (ST layout): with origin 'own', the copy-up's only lstat. */
export function stageCopySync(src: HostPath, tmp: HostPath, kind: CopyKind, options: StageOptions, st?: Float64Array): number {
  const args = stageArgs(options)
  return callSync((n) => n.stageCopySync(src, tmp, COPY_KINDS[kind], args.flags, args.origin, args.dataFrom, ...args.change, st), src, tmp)
}

/** A regular file's copy as stageCopy makes it, but unnamed (O_TMPFILE in `dir`, on the target's
 *  filesystem): its fd, for linkCopySync to name. Fails with EOPNOTSUPP (or EISDIR, EINVAL) where the
 *  filesystem has no O_TMPFILE. */
export async function stageCopyUnnamed(src: HostPath, dir: HostPath, options: StageOptions): Promise<{ fd: number; bytes: number }> {
  const args = stageArgs(options)
  const [bytes, fd] = await call((n) => n.stageCopyUnnamed(src, dir, args.flags | UNNAMED, args.origin, args.dataFrom, ...args.change), src, dir)
  return { fd, bytes }
}

/** stageCopyUnnamed on the calling thread; `st` as for stageCopySync. */
export function stageCopyUnnamedSync(src: HostPath, dir: HostPath, options: StageOptions, st?: Float64Array): { fd: number; bytes: number } {
  const args = stageArgs(options)
  const [bytes, fd] = callSync((n) => n.stageCopyUnnamedSync(src, dir, args.flags | UNNAMED, args.origin, args.dataFrom, ...args.change, st), src, dir)
  return { fd, bytes }
}

/**
 * stageCopyUnnamedSync for a small lower file, with the copy-up's one lstat: the copy when `src` is
 * a regular file with one link and at most `maxSize` bytes (its own inode recorded as the origin,
 * whatever `options.origin` says), else undefined, nothing made. Either way, once it did not throw
 * for the lstat, `st` holds src's lstat numbers (ST layout), for the caller's decision.
 */
export function stageSmallUnnamedSync(src: HostPath, dir: HostPath, maxSize: number, st: Float64Array, options: StageOptions): { fd: number; bytes: number } | undefined {
  const args = stageArgs(options)
  const [bytes, fd] = callSync((n) => n.stageSmallUnnamedSync(src, dir, args.flags, maxSize, st, args.dataFrom, ...args.change), src, dir)
  return fd < 0 ? undefined : { fd, bytes }
}

/** Name an unnamed copy `target` (which must be free), give `parent` back its times, and close the
 *  fd, whatever happens. On the calling thread. */
export function linkCopySync(fd: number, target: HostPath, parent: HostPath): void {
  callSync((n) => n.linkCopy(fd, target, parent), target, parent)
}

/** Give the O_TMPFILE file open as `fd` the name `target` (linkat by fd, else through /proc); the
 *  fd stays open. On the calling thread. */
export function linkFdSync(fd: number, target: HostPath): void {
  callSync((n) => n.linkFd(fd, target), target)
}

/**
 * Give the metadata-only copy at `path` its data in place, as overlayfs does (its inode stays, its
 * mtime moves to now as the data is written): the bytes of `dataFrom` (none: made empty) written at
 * their offsets, an fsync when asked, then its metacopy and redirect marks removed, last, so that a
 * failure at any point leaves it reading from below as before. On the thread pool; resolves to the
 * bytes written.
 */
export function fillCopy(path: HostPath, dataFrom: HostPath | undefined, fsync: boolean): Promise<number> {
  return call((n) => n.fillCopy(path, fillFrom(dataFrom), fsync ? 2 : 0), path)
}

/** fillCopy on the calling thread. */
export function fillCopySync(path: HostPath, dataFrom: HostPath | undefined, fsync: boolean): number {
  return callSync((n) => n.fillCopySync(path, fillFrom(dataFrom), fsync ? 2 : 0), path)
}

/** fillCopySync of the copy open for writing as `fd` (one with no name left), with the bytes of the
 *  file open as `dataFd`. */
export function fillCopyFdSync(fd: number, dataFd: number, fsync: boolean): number {
  return callSync((n) => n.fillCopyFdSync(fd, dataFd, fsync ? 2 : 0))
}

function fillFrom(dataFrom: HostPath | undefined): Uint8Array {
  return dataFrom === undefined ? new Uint8Array(0) : Buffer.concat([hostBytes(dataFrom), NUL])
}

const UNNAMED = 8
const OWN_ORIGIN = 32
const EXACT_MODE = 64

function stageArgs(options: StageOptions): { flags: number; origin: string; dataFrom: Uint8Array; change: ChangeArgs } {
  return {
    flags: (options.data ? 1 : 0) | (options.fsync ? 2 : 0) | (options.meta ? 4 : 0) | (options.origin === 'own' ? OWN_ORIGIN : 0) |
      (options.exactMode ? EXACT_MODE : 0),
    origin: options.origin === undefined || options.origin === 'own' ? '' : String(options.origin),
    dataFrom: options.dataFrom === undefined ? new Uint8Array(0) : Buffer.concat([hostBytes(options.dataFrom), NUL]),
    change: changeArgs(options.change),
  }
}

function changeArgs(change: CopyChange | undefined): ChangeArgs {
  return change === undefined ? NO_CHANGE : [change.uid ?? -1, change.gid ?? -1, change.mode ?? -1, change.atime ?? null, change.mtime ?? null]
}

const NO_CHANGE: ChangeArgs = [-1, -1, -1, null, null]

/**
 * Copy the directory `src` up to `target`, which must not exist, on the calling thread: made under
 * a temporary name in the work directory `dir` as stageCopySync makes one (its own inode recorded
 * as its origin, `change` made on it), renamed into place, and its parent given back its times; on
 * failure nothing is left. `st` receives src's lstat numbers (ST layout). Returns whether the
 * origin was recorded (not where the filesystem refuses trusted xattrs).
 */
export function copyDirSync(src: HostPath, dir: HostPath, target: HostPath, st: Float64Array, change?: CopyChange): boolean {
  return callSync((n) => n.copyDirSync(src, dir, target, st, ...changeArgs(change)), src, target) === 1
}

/** rename(tmp, target), then give `parent` back the times it had before. On the calling thread. */
export function commitCopySync(tmp: HostPath, target: HostPath, parent: HostPath): void {
  callSync((n) => n.commitCopy(tmp, target, parent), tmp, target)
}

// ---- reads and writes that never wait ----

/** Whether the first page of the open file `fd` is in the page cache, asked without reading it
 *  (cachestat(2)); undefined where that cannot be told (see first_page_cached in native/data.c for
 *  why a read that may not wait is no such probe). */
export function firstPageCached(fd: number): boolean | undefined {
  const cached = native().firstPageCached(fd)
  return cached < 0 ? undefined : cached === 1
}

/**
 * pread/pwrite with RWF_NOWAIT on the calling thread: bytes transferred (possibly fewer than asked),
 * or undefined when nothing could be done without waiting (data not cached, a filesystem that
 * cannot promise it) or on any error. The caller then goes to the thread pool, which reports errors.
 */
export function preadNowait(fd: number, buffer: Buffer, length: number, position: number): number | undefined {
  const n = native().preadNowait(fd, buffer, length, position)
  return n < 0 ? undefined : n
}

export function pwriteNowait(fd: number, buffer: Buffer, length: number, position: number): number | undefined {
  const n = native().pwriteNowait(fd, buffer, length, position)
  if (n === -EOPNOTSUPP) nowaitWritesRefused = true
  return n < 0 ? undefined : n
}

/** Set once a filesystem refused RWF_NOWAIT for a write (ext4 does, for every buffered write). One
 *  flag serves the union: all its writes go to the upper layer, one filesystem. */
let nowaitWritesRefused = false

/** Whether pwriteNowait is worth trying: false after a filesystem said it never promises that. */
export function nowaitWritesWork(): boolean {
  return !nowaitWritesRefused
}
