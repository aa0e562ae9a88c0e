/**
 * Attributes: what getattr reports, and the metadata changes (chmod, chown, utimens, truncate,
 * xattrs). Any change to a lower object copies it up first; reading never does.
 *
 * st_ino follows overlayfs on one filesystem: the real inode of the visible object, or for a copy-up
 * the inode it was copied from (see inode.ts). A merged directory (more than one contributing layer)
 * reports nlink 1, as overlayfs does: counting subdirectories across layers is not worth it, and 1 tells
 * find(1) not to rely on the count.
 */
import { chmodSync, closeSync, constants, fchmodSync, fchownSync, fstatSync, ftruncateSync, lchownSync, openSync, truncateSync } from 'node:fs'
import {
  type CopyChange, type FileAttr, ST, ST_FIELDS, dupFdSync, fgetxattrSync, fillCopyFdSync, fremovexattrSync, fsetxattrSync, ioctlPathSync, flistxattrSync, fstatNumbers,
  lgetxattrSync, llistxattrSync, lremovexattrSync, lsetxattrSync, lstatNumbers, futimensSync, utimensatSync, type TimeNs,
} from '../sys/native.js'
import type { Core, CopyUpWant, Fold } from './core.js'
import { DEFAULT_ACL } from './acl.js'
import { type Entry, inUpper } from './entry.js'
import { fsError, isCode } from './errors.js'
import type { Handle } from './handles.js'
import { fromStoredXattr, readOrigin, toStoredXattr } from './inode.js'

/** What getattr reports: the attributes as the kernel takes them. */
export type Attr = FileAttr

/** lstat's numbers, for attrOf: one array, refilled by every call (it is read before the next). */
const scratch = new Float64Array(ST_FIELDS)

/** The attributes of an entry. Synchronous underneath: an lstat of a cached inode costs a few
 *  microseconds, a thread-pool round trip several times that, and getattr is the hottest operation. */
export function attrOf(entry: Entry): Attr {
  if (entry.staged === undefined) return attrFrom(entry, lstatNumbers(entry.layer.path(entry.path), scratch), 0)
  // A copy not named yet (Core.#defer): its own numbers, with the links it is about to get.
  const st = fstatNumbers(entry.staged, scratch)
  const attr = attrOfNumbers(st, 0, inoOf(entry, st[ST.INO]!), entry.stagedNames ?? 1)
  attr.unnamed = true
  return attr
}

/** The attributes of an entry from its lstat numbers at `at` in `st` (native ST layout): from
 *  attrOf's lstat, or from the listing of its directory (readdirplus). */
export function attrFrom(entry: Entry, st: Float64Array, at: number): Attr {
  const nlink = entry.kind === 'dir' && entry.dirLayers.length > 1 ? 1 : st[at + ST.NLINK]!
  return attrOfNumbers(st, at, inoOf(entry, st[at + ST.INO]!), nlink)
}

/** The attributes in the stat numbers at `at` in `st`, with st_ino `ino` and link count `nlink`
 *  (the union's, which may differ from the layer file's). */
export function attrOfNumbers(st: Float64Array, at: number, ino: number, nlink: number): Attr {
  return {
    ino,
    mode: st[at + ST.MODE]!,
    nlink,
    uid: st[at + ST.UID]!,
    gid: st[at + ST.GID]!,
    rdev: st[at + ST.RDEV]!,
    size: st[at + ST.SIZE]!,
    blksize: st[at + ST.BLKSIZE]!,
    blocks: st[at + ST.BLOCKS]!,
    atimeSec: st[at + ST.ATIME]!,
    atimeNsec: st[at + ST.ATIME_NS]!,
    mtimeSec: st[at + ST.MTIME]!,
    mtimeNsec: st[at + ST.MTIME_NS]!,
    ctimeSec: st[at + ST.CTIME]!,
    ctimeNsec: st[at + ST.CTIME_NS]!,
  }
}

/** The st_ino attrOf gives `entry`, with no lstat where the origin of a copy in the upper layer
 *  tells it. */
export function shownIno(entry: Entry): number {
  return originIno(entry) ?? attrOf(entry).ino
}

/** The st_ino of `entry`, whose own inode number is `stIno`: its origin's, if it records one. */
function inoOf(entry: Entry, stIno: number): number {
  return originIno(entry) ?? (entry.ino = stIno)
}

/** The inode number `entry` shows when it is known without an lstat: kept from before, or the
 *  origin a copy in the upper layer records (then kept). */
function originIno(entry: Entry): number | undefined {
  if (entry.ino !== undefined) return entry.ino
  if (!entry.layer.writable || entry.originless) return undefined
  const origin = readOrigin(entry.layer.path(entry.path))
  if (origin !== undefined) entry.ino = origin
  return origin
}

/** The changes of one setattr; absent fields stay as they are. */
export interface AttrChange extends CopyChange {
  size?: number
}

/**
 * Apply `change` at once when its copy-up moves no data (the object is in the upper layer already,
 * or a directory, or metacopy is on and the data is not touched): true when done, false when
 * setattr must copy the data up first. In setattr's order: mode, owner, size, times. `truncateFd`
 * truncates through an open handle instead of the path.
 */
export function trySetattr(core: Core, rel: string, change: AttrChange, truncateFd?: (size: number) => void, alone = false): boolean {
  const current = core.resolver.get(rel)
  if (change.size !== undefined && !truncateFd && current.kind === 'dir') throw fsError('EISDIR', rel)
  const fold = inUpper(current) ? undefined : foldOf(change)
  const entry = core.copyUpNow(rel, copyUpWant(change, truncateFd), alone, fold, true)
  if (!entry) return false
  // By name, or, for a copy not named yet (Core.defer), through the copy's fd.
  const fd = entry.staged
  const path = entry.layer.path(rel)
  const folded = fold?.applied === true
  if (change.mode !== undefined && !folded) {
    if (fd === undefined) chmodSync(path, change.mode & 0o7777)
    else fchmodSync(fd, change.mode & 0o7777)
  }
  if ((change.uid !== undefined || change.gid !== undefined) && !folded) {
    if (fd === undefined) lchownSync(path, change.uid ?? -1, change.gid ?? -1)
    else fchownSync(fd, change.uid ?? -1, change.gid ?? -1)
  }
  if (change.size !== undefined) {
    if (truncateFd) truncateFd(change.size)
    else if (fd === undefined) truncateSync(path, change.size)
    else ftruncateSync(fd, change.size)
  }
  if ((change.atime != null || change.mtime != null) && !(folded && change.size === undefined)) {
    if (fd === undefined) utimensatSync(path, change.atime ?? null, change.mtime ?? null, true)
    else futimensSync(fd, change.atime ?? null, change.mtime ?? null)
  }
  return true
}

/**
 * Files with no name left (unlinked while open) are changed and read through an open handle, as
 * overlayfs changes them through the open file. Only a file in the upper layer can change: a lower
 * one would need copying up, which takes a name (overlayfs answers EEXIST). A metadata-only copy's
 * metadata is in the upper layer (Handle.meta), its data is not: `data` asks for the data.
 */
function unnamedFd(core: Core, fh: number, changing: boolean, data = false): number {
  const handle = core.handles.get(fh)
  if (!handle) throw fsError('EBADF', `handle ${fh}`)
  if (handle.meta >= 0 && !data) return handle.meta
  if (changing && !handle.upper) throw fsError('EEXIST', 'a lower file with no name left')
  return handle.fd
}

/** setattr of a file with no name, through the open handle `fh`, in setattr's order. */
export function fsetattr(core: Core, fh: number, change: AttrChange): void {
  // A size change needs the data in the upper layer: checked, or copied there, before anything
  // changes.
  if (change.size !== undefined) {
    const handle = core.handles.get(fh)
    if (handle && handle.meta >= 0) completeUnnamed(core, handle)
    unnamedFd(core, fh, true, true)
  }
  const fd = unnamedFd(core, fh, true)
  if (change.mode !== undefined) fchmodSync(fd, change.mode & 0o7777)
  if (change.uid !== undefined || change.gid !== undefined) fchownSync(fd, change.uid ?? -1, change.gid ?? -1)
  if (change.size !== undefined) truncateOpen(unnamedFd(core, fh, true, true), change.size)
  if (change.atime != null || change.mtime != null) futimensSync(fd, change.atime ?? null, change.mtime ?? null)
}

/**
 * Give a metadata-only copy with no name left its data, as overlayfs does before such a file's size
 * changes (a truncate through /proc/PID/fd): the lower bytes are written into the copy itself,
 * reached through the handle's descriptor on it, as Core gives a named one its data (fillCopy), its
 * markers are removed, and every handle on it reads the copy from then on. The lower file's holes
 * stay holes. A failure (a full disk) leaves the copy marked and the handles on the lower bytes, as
 * they were.
 */
export function completeUnnamed(core: Core, handle: Handle): void {
  const copy = openSync(`/proc/self/fd/${handle.meta}`, constants.O_RDWR)
  try {
    // No name, so nothing to keep across a crash: no flush.
    fillCopyFdSync(copy, handle.fd, false)
  } catch (err) {
    closeSync(copy)
    throw err
  }
  const { dev, ino } = fstatSync(copy)
  const others = core.handles.filter((h) => h !== handle && h.meta >= 0 && sameFile(fstatSync(h.meta), dev, ino))
  handle.switchTo(copy)
  for (const other of others) other.switchTo(dupFdSync(copy))
}

/** ftruncate through `fd`, or through a descriptor open for writing on the same file where `fd` is
 *  open for reading only (the kernel's truncate by path of a file with no name, /proc/PID/fd/N,
 *  names one of its handles, whatever its mode). */
function truncateOpen(fd: number, size: number): void {
  try {
    ftruncateSync(fd, size)
  } catch (err) {
    if (!isCode(err, 'EINVAL', 'EBADF')) throw err
    const writable = openSync(`/proc/self/fd/${fd}`, constants.O_WRONLY)
    try {
      ftruncateSync(writable, size)
    } finally {
      closeSync(writable)
    }
  }
}

function sameFile(st: { dev: number; ino: number }, dev: number, ino: number): boolean {
  return st.dev === dev && st.ino === ino
}


/** Copy `size` bytes from `from` to `to` (same offsets), skipping chunks that are all zeros. */

export function fgetxattr(core: Core, fh: number, name: string): Buffer | undefined {
  return fgetxattrSync(unnamedFd(core, fh, false), stored(name))
}

export function flistxattr(core: Core, fh: number): string[] {
  return flistxattrSync(unnamedFd(core, fh, false)).flatMap((name) => fromStoredXattr(name) ?? [])
}

export function fsetxattr(core: Core, fh: number, name: string, value: Buffer, flags: number): void {
  fsetxattrSync(unnamedFd(core, fh, true), stored(name), value, flags)
}

export function fremovexattr(core: Core, fh: number, name: string): void {
  // Removing what is not there fails before any question of copying up, as by name.
  if (fgetxattr(core, fh, name) === undefined) throw fsError('ENODATA', name)
  fremovexattrSync(unnamedFd(core, fh, true), stored(name))
}

/** The part of a change a copy-up can make on the copy: mode and owner, and the times unless a
 *  truncate comes after them (it would move the mtime again). */
function foldOf(change: AttrChange): Fold {
  const { mode, uid, gid } = change
  const timed = change.size === undefined
  return { change: { mode: mode === undefined ? undefined : mode & 0o7777, uid, gid, atime: timed ? change.atime : null, mtime: timed ? change.mtime : null }, applied: false }
}

/** What a change needs copied up: metadata only, or the data too when the size grows or shrinks to
 *  a non-zero length (truncating to 0 needs none of the old bytes; an open handle has them). */
function copyUpWant(change: AttrChange, truncateFd: unknown): CopyUpWant {
  return change.size === undefined || truncateFd ? 'meta' : change.size > 0
}

/** setattr: copies up what the change needs, then applies it. */
export async function setattr(core: Core, rel: string, change: AttrChange, truncateFd?: (size: number) => void): Promise<void> {
  // A copy-up leaves the object in the upper layer with what the change needs, so the second try
  // applies; the loop only covers a copy-up that lost a race with another change of the name.
  while (!trySetattr(core, rel, change, truncateFd)) await core.copyUp(rel, copyUpWant(change, truncateFd), true)
}

export function chmod(core: Core, rel: string, mode: number): Promise<void> {
  return setattr(core, rel, { mode })
}

export function chown(core: Core, rel: string, uid: number, gid: number): Promise<void> {
  return setattr(core, rel, { uid, gid })
}

export function utimens(core: Core, rel: string, atime: TimeNs, mtime: TimeNs): Promise<void> {
  return setattr(core, rel, { atime, mtime })
}

export function truncate(core: Core, rel: string, size: number): Promise<void> {
  return setattr(core, rel, { size })
}

function stored(name: string): string {
  const real = toStoredXattr(name)
  if (real === undefined) throw fsError('EOPNOTSUPP', name)
  return real
}

/** The value, or undefined when there is no such attribute (the kernel asks for
 *  security.capability before every write: absence is the common answer, not an error). */
export function getxattr(core: Core, rel: string, name: string): Buffer | undefined {
  const real = stored(name)
  const entry = core.resolver.get(rel)
  // A copy not named yet (Core.defer) answers through its fd: the kernel asks for
  // security.capability before the first write through a handle on it.
  return entry.staged !== undefined ? fgetxattrSync(entry.staged, real) : lgetxattrSync(entry.layer.path(rel), real)
}

export function listxattr(core: Core, rel: string): string[] {
  const entry = core.resolver.get(rel)
  try {
    const names: string[] = []
    for (const name of entry.staged !== undefined ? flistxattrSync(entry.staged) : llistxattrSync(entry.layer.path(rel))) {
      const shown = fromStoredXattr(name)
      if (shown !== undefined) names.push(shown)
    }
    return names
  } catch (err) {
    if (isCode(err, 'ENOTSUP', 'EOPNOTSUPP')) return []
    throw err
  }
}

/** The upper object an xattr change applies to, copied up first: a small file's copy may stay
 *  unnamed until its flush (Core.defer), changed through its fd as setattr changes it. Waiting for
 *  its name cost every `setfattr` of a lower file a syncfs. */
async function xattrTarget(core: Core, rel: string): Promise<Entry> {
  return core.copyUpNow(rel, 'meta', false, undefined, true) ?? await core.copyUp(rel, 'meta', true)
}

export async function setxattr(core: Core, rel: string, name: string, value: Buffer, flags: number): Promise<void> {
  const real = stored(name)
  const entry = await xattrTarget(core, rel)
  // xattrTarget's entry is the resolver's: a directory's remembered default ACL goes with it.
  if (real === DEFAULT_ACL) entry.defaultAcl = undefined
  if (entry.staged !== undefined) fsetxattrSync(entry.staged, real, value, flags)
  else lsetxattrSync(entry.layer.path(rel), real, value, flags)
}

/** An ioctl that reads file attributes (FS_IOC_GETFLAGS, FS_IOC_FSGETXATTR: what lsattr shows), on
 *  the visible object, in whichever layer: its argument, `size` bytes, as the ioctl filled it. */
export function readFileAttrIoctl(core: Core, rel: string, cmd: number, size: number): Buffer {
  return ioctlPathSync(core.resolver.get(rel).layer.path(rel), cmd, Buffer.alloc(size))
}

/** An ioctl that changes them (FS_IOC_SETFLAGS, FS_IOC_FSSETXATTR: chattr), on the upper copy, as
 *  overlayfs changes them (it keeps the immutable and append-only flags in an xattr instead). */
export async function writeFileAttrIoctl(core: Core, rel: string, cmd: number, arg: Buffer): Promise<void> {
  const entry = core.copyUpNow(rel, 'meta') ?? await core.copyUp(rel, 'meta')
  ioctlPathSync(entry.layer.path(rel), cmd, arg)
}

export async function removexattr(core: Core, rel: string, name: string): Promise<void> {
  const real = stored(name)
  // Removing what is not there fails without a copy-up, as in overlayfs.
  if (getxattr(core, rel, name) === undefined) throw fsError('ENODATA', name)
  const entry = await xattrTarget(core, rel)
  if (real === DEFAULT_ACL) entry.defaultAcl = undefined
  if (entry.staged !== undefined) fremovexattrSync(entry.staged, real)
  else lremovexattrSync(entry.layer.path(rel), real)
}
