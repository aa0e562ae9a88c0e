/**
 * Open files and their I/O. Opening for writing (or with O_TRUNC) copies the file up first; an
 * O_TRUNC open copies no data. Reads and writes are positional on the handle's fd.
 */
import { closeSync, constants, fchmodSync, fstatSync, ftruncateSync, openSync } from 'node:fs'
import { ST, ST_FIELDS, dupFdSync, fallocate as fallocateFd, firstPageCached, fstatNumbers as fstatNumbersOf, lstatNumbers, seekData, seekHole } from '../sys/native.js'
import type { HostPath } from '../sys/names.js'
import { type Core, stagedPath } from './core.js'
import { type Entry, type FileShape, inUpper } from './entry.js'
import { fsError, isCode } from './errors.js'
import { Handle } from './handles.js'
import { fsyncFd, fsyncFdSync, pread, preadCached, preadSmall, preadSync, pwrite, pwriteNow } from './fd-io.js'
import { type Attr, attrOfNumbers, completeUnnamed } from './attrs.js'
import { type Owner, create as createFile, createUnnamed as createUnnamedFile, linkUnnamed as linkUnnamedFile } from './namespace.js'

const WRITE_FLAGS = constants.O_WRONLY | constants.O_RDWR
/** Flags that describe creation, which open() never performs (FUSE sends create for that). */
const CREATE_FLAGS = constants.O_CREAT | constants.O_EXCL | constants.O_NOCTTY
/**
 * Flags a host fd does not take from the caller. O_DIRECT: the kernel keeps its promise itself (it
 * sends a direct reader's and writer's I/O to the daemon uncached, and a passthrough file's goes
 * straight to the backing file, direct), while the daemon's own reads and writes use its buffers,
 * whose addresses (and the caller's offsets and sizes, which FUSE does not check) the host
 * filesystem's direct I/O would refuse: EINVAL for every read and write of a direct opener, as
 * databases open their files.
 */
const HOST_DROPS = CREATE_FLAGS | constants.O_DIRECT

/**
 * Open without waiting: a read-only open, any open of a complete upper file, and an open for
 * writing whose copy-up moves no data (O_TRUNC). The fh, or undefined when `open` must copy data up.
 */
export function tryOpen(core: Core, rel: string, flags: number, alone = false): number | undefined {
  const entry = core.resolver.get(rel)
  if (entry.kind === 'dir' && (flags & WRITE_FLAGS)) throw fsError('EISDIR', rel)
  const writing = (flags & WRITE_FLAGS) !== 0 || (flags & constants.O_TRUNC) !== 0
  if (!writing) return openEntry(core, rel, entry, false, flags)
  const upper = core.copyUpNow(rel, copyUpWant(flags), alone, undefined, true)
  return upper && openEntry(core, rel, upper, true, flags)
}

/** An open, waiting for a copy-up when it must. `tried`: the caller's tryOpen of the same open just
 *  returned undefined, with nothing run since; its attempt to copy on the calling thread is not made
 *  again, nor copyUp's first (each lstat'ed the lower file and asked the stager for a small copy: a
 *  big file's first open for writing made three such attempts). */
export async function open(core: Core, rel: string, flags: number, tried = false): Promise<number> {
  if (!tried) {
    const fh = tryOpen(core, rel, flags)
    if (fh !== undefined) return fh
  }
  return openEntry(core, rel, await core.copyUp(rel, copyUpWant(flags), true, true), true, flags)
}

/** An O_TRUNC open needs none of the old bytes. */
function copyUpWant(flags: number): boolean {
  return (flags & constants.O_TRUNC) === 0
}

function openEntry(core: Core, rel: string, entry: Entry, writing: boolean, flags: number): number {
  const openFlags = (flags & ~HOST_DROPS) | constants.O_NOFOLLOW
  // A reader of a lower file opens it at its first read (see Handle): by its layer, so that the
  // reader of a warm file, who never reads through us, costs no host path either.
  if (!inUpper(entry)) {
    entry.shape ??= shape(lstatNumbers(entry.layer.path(rel), shapeStat))
    return core.handles.add(new Handle(-1, rel, false, entry.shape, entry.layer, openFlags))
  }
  // A metadata-only copy is read from its lower data; a later completion moves the reader over.
  // The copy itself is held open too: its attributes and xattrs are the file's, and stay reachable
  // through the handle when the name goes (Handle.meta).
  if (!writing && core.isMetacopy(entry)) {
    const source = core.dataSource(entry)
    const meta = openMeta(entry.layer.path(rel))
    const metaShape = { ...shape(meta < 0 ? lstatNumbers(entry.layer.path(rel), shapeStat) : fstatNumbersOf(meta, shapeStat)), dev: lstatNumbers(source, shapeStat)[ST.DEV]! }
    const handle = new Handle(-1, rel, false, metaShape, source, openFlags)
    handle.meta = meta
    return core.handles.add(handle)
  }
  // A copy with no name yet is opened through its fd (Core.defer), and has no link until its flush
  // names it.
  if (entry.staged !== undefined) return core.handles.add(stagedHandle(openStaged(entry.staged, openFlags), rel, entry.stagedNames ?? 1))
  return core.handles.add(upperHandle(openSync(entry.layer.path(rel), openFlags), rel))
}

/** A handle on `fd`, open on `rel`'s file in the upper layer, named. */
function upperHandle(fd: number, rel: string): Handle {
  return new Handle(fd, rel, true, shape(fstatNumbersOf(fd, shapeStat)))
}

/** The open of `rel`'s copy not named yet, of `size` bytes, that the FUSE bridge answered itself
 *  (Session.cowOpenFh) after the union adopted the copy (Core.adoptCopy): its handle, under the
 *  number `fh` reserved for it. The handle borrows the copy's own fd (Handles.lend) rather than
 *  taking a dup of it as openEntry's do, so an open the kernel closes without sending the daemon
 *  anything but its release (touch) costs no dup, fstat or close. The bridge passes only a copy
 *  with one link and no set-ID bit through. */
export function adoptOpen(core: Core, rel: string, fh: number, size: number): void {
  const entry = core.resolver.get(rel)
  if (entry.staged === undefined) throw fsError('ESTALE', `/${rel} has no copy to open`)
  const handle = new Handle(-1, rel, true, { singleLink: true, size, setid: false, dev: core.upperDev, unnamed: true })
  core.handles.fill(fh, handle)
  core.handles.lend(handle, entry.staged)
}

/** The open for writing of `rel`, a file in the upper layer, that the FUSE bridge answered itself
 *  (Session.cowAllow's `upper`) on `fd`, its own descriptor of the file, made as openEntry makes
 *  one: its handle, under the number `fh` reserved for it, holding `fd` (closed if it cannot). */
export function adoptUpperOpen(core: Core, rel: string, fh: number, fd: number): void {
  const entry = core.resolver.get(rel)
  if (entry.kind !== 'file' || !inUpper(entry) || entry.staged !== undefined) {
    closeSync(fd)
    throw fsError('ESTALE', `/${rel} is no file of the upper layer`)
  }
  core.handles.fill(fh, upperHandle(fd, rel))
}

/** A handle on `fd`, open on the copy of `rel` not named yet (Core.defer): `names` links to come
 *  (one, unless links were made to it meanwhile: Core.deferLink). */
function stagedHandle(fd: number, rel: string, names = 1): Handle {
  return new Handle(fd, rel, true, { ...shape(fstatNumbersOf(fd, shapeStat)), singleLink: names === 1, unnamed: true })
}

/** Open flags that act at open (O_TRUNC) or that the host fd must carry itself (the daemon's own
 *  writes append or sync as the caller asked). */
const OWN_DESCRIPTION = constants.O_TRUNC | constants.O_APPEND | constants.O_SYNC | constants.O_DSYNC

/**
 * An fd for an open of a copy with no name yet (Core.defer). Usually another fd on the copy's own
 * open file description (made read-write): the union's I/O is positional and a passthrough open
 * gets a backing file of its own from the kernel, so sharing the offset and flags changes nothing,
 * and a dup costs a microsecond where a reopen through /proc/self/fd costs ten. With the flags
 * above, the copy is reopened through /proc with them.
 */
function openStaged(staged: number, flags: number): number {
  return (flags & OWN_DESCRIPTION) === 0 ? dupFdSync(staged) : openSync(stagedPath(staged), flags & ~constants.O_NOFOLLOW)
}

const shapeStat = new Float64Array(ST_FIELDS)

/** An fd on a metadata-only copy, or -1 where the daemon may not open it (a rootless daemon and a
 *  file it may not read): its changes are then refused once it has no name, as before. */
function openMeta(path: HostPath): number {
  try {
    return openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW)
  } catch (err) {
    if (isCode(err, 'EACCES', 'EPERM')) return -1
    throw err
  }
}

function shape(st: Float64Array): FileShape {
  return { singleLink: st[ST.NLINK] === 1, size: st[ST.SIZE]!, setid: (st[ST.MODE]! & SETID) !== 0, dev: st[ST.DEV]! }
}

/** Mode bits node's fs.constants lacks. */
const S_ISUID = 0o4000
const S_ISGID = 0o2000
const SETID = S_ISUID | S_ISGID

export function create(core: Core, rel: string, mode: number, owner?: Owner): number {
  const { fd } = createFile(core, rel, mode, owner)
  const setid = (mode & SETID) !== 0
  return core.handles.add(new Handle(fd, rel, true, { singleLink: true, size: 0, setid, dev: core.upperDev }))
}

/** O_TMPFILE in the directory `dirRel` (see namespace.createUnnamed): the handle, and the file's
 *  attributes with its real inode number and one link, which the kernel takes away itself. */
export function createUnnamed(core: Core, dirRel: string, mode: number, owner?: Owner): { fh: number; attr: Attr } {
  const fd = createUnnamedFile(core, dirRel, mode, owner)
  const setid = (mode & SETID) !== 0
  const fh = core.handles.add(new Handle(fd, '', true, { singleLink: true, size: 0, setid, dev: core.upperDev }))
  const st = fstatNumbersOf(fd, shapeStat)
  return { fh, attr: attrOfNumbers(st, 0, st[ST.INO]!, 1) }
}

/** linkat of the file with no name open as `fh` to `rel`. Only an upper file: a lower one would need
 *  a copy-up, which needs a name (EEXIST, as overlayfs answers changes to such a file). */
export function linkUnnamed(core: Core, fh: number, rel: string): void {
  const h = handle(core, fh)
  if (!h.upper) throw fsError('EEXIST', 'a lower file with no name left')
  linkUnnamedFile(core, h.fd, rel)
}

/**
 * Open again a file whose name is gone, from one of its open handles (`fh`), as an open of
 * /proc/PID/fd/N asks: overlayfs opens the same file again. An upper file opens as any would; a
 * metadata-only copy opened for writing or truncating takes its data first (see
 * attrs.completeUnnamed); a lower file opens for reading only (writing it would need a copy-up,
 * which needs a name: EEXIST, as overlayfs answers).
 */
export function reopenUnnamed(core: Core, fh: number, flags: number): number {
  const h = handle(core, fh)
  const writing = (flags & WRITE_FLAGS) !== 0 || (flags & constants.O_TRUNC) !== 0
  if (writing && h.meta >= 0) completeUnnamed(core, h)
  if (writing && !h.upper) throw fsError('EEXIST', 'a lower file with no name left')
  const fd = openSync(`/proc/self/fd/${h.fd}`, flags & ~HOST_DROPS)
  try {
    const data = shape(fstatNumbersOf(fd, shapeStat))
    if (h.meta < 0) return core.handles.add(new Handle(fd, h.path, h.upper, data))
    // A reader of a metadata-only copy: the data from below, the rest from the copy (see openEntry).
    const meta = openSync(`/proc/self/fd/${h.meta}`, constants.O_RDONLY)
    const reader = new Handle(fd, h.path, false, { ...shape(fstatNumbersOf(meta, shapeStat)), dev: data.dev })
    reader.meta = meta
    return core.handles.add(reader)
  } catch (err) {
    closeSync(fd)
    throw err
  }
}

/** What the FUSE bridge needs to know about an open handle's file to choose how the kernel does
 *  its I/O (see OpenFiles in src/fuse). */
export function openFile(core: Core, fh: number): Handle {
  return handle(core, fh)
}

function handle(core: Core, fh: number): Handle {
  const h = core.handles.get(fh)
  if (!h) throw fsError('EBADF', `handle ${fh}`)
  return h
}

/** read when the page cache has the bytes, or when it is a small read and `waitForDisk` allows
 *  waiting for it here (the count); else undefined: call read then. */
export function tryRead(core: Core, fh: number, buffer: Buffer, length: number, position: number, waitForDisk: boolean): number | undefined {
  const fd = handle(core, fh).fd
  return preadCached(fd, buffer, length, position) ?? (waitForDisk ? preadSmall(fd, buffer, length, position) : undefined)
}

/** What readHead read: the byte count, and whether this read moved the file's atime. */
export interface Head {
  bytes: number
  atimeMoved: boolean
}

/** The first `length` bytes of an open file: from the page cache, or, when `waitForDisk`, from the
 *  disk on the calling thread; undefined when they are not cached and may not be waited for.
 *  `uncached` is called when they are not (before the wait, if any). */
export function readHead(core: Core, fh: number, buffer: Buffer, length: number, waitForDisk: boolean, uncached: () => void): Head | undefined {
  const fd = handle(core, fh).fd
  const before = fstatNumbersOf(fd, headStat)
  const atimeSec = before[ST.ATIME]
  const atimeNsec = before[ST.ATIME_NS]
  // When it may wait, whether it must is asked without reading first (see firstPageCached).
  let bytes = waitForDisk && firstPageCached(fd) === false ? undefined : preadCached(fd, buffer, length, 0)
  if (bytes === undefined) {
    uncached()
    if (!waitForDisk) return undefined
    bytes = preadSync(fd, buffer, length, 0)
  }
  const after = fstatNumbersOf(fd, headStat)
  return { bytes, atimeMoved: after[ST.ATIME] !== atimeSec || after[ST.ATIME_NS] !== atimeNsec }
}

/** readHead's fstat numbers: one array, read before the next fstat. */
const headStat = new Float64Array(ST_FIELDS)

export function read(core: Core, fh: number, buffer: Buffer, length: number, position: number): Promise<number> {
  return handle(core, fh).withFd((fd) => pread(fd, buffer, length, position))
}

export function write(core: Core, fh: number, buffer: Buffer, length: number, position: number): Promise<number> {
  return pwrite(handle(core, fh).fd, buffer, length, position)
}

/** write when it can be done without waiting (see pwriteNow): the count, else undefined. */
export function tryWrite(core: Core, fh: number, buffer: Buffer, length: number, position: number): number | undefined {
  return pwriteNow(handle(core, fh).fd, buffer, length, position)
}

export function ftruncateNow(core: Core, fh: number, size: number): void {
  ftruncateSync(handle(core, fh).fd, size)
}

export async function ftruncate(core: Core, fh: number, size: number): Promise<void> {
  ftruncateNow(core, fh, size)
}

/** lseek(2) with SEEK_DATA (3) or SEEK_HOLE (4) on an open file: where the data or the hole at or
 *  after `offset` starts; ENXIO when no data follows, or `offset` is past the end. */
export async function seek(core: Core, fh: number, offset: number, whence: number): Promise<number> {
  const h = handle(core, fh)
  if (whence === SEEK_HOLE) return seekHole(h.fd, offset)
  if (whence !== SEEK_DATA) throw fsError('EINVAL', `lseek whence ${whence}`)
  const at = await h.withFd((fd) => seekData(fd, offset))
  if (at < 0) throw fsError('ENXIO', 'no data at or after the offset')
  return at
}

const SEEK_DATA = 3
const SEEK_HOLE = 4

/** fallocate(2) on an open file, which was copied up when it was opened for writing. */
export function fallocate(core: Core, fh: number, mode: number, offset: number, length: number): Promise<void> {
  return fallocateFd(handle(core, fh).fd, mode, offset, length)
}

/** The stat numbers of an open handle (native ST layout; the array is reused by the next call):
 *  for a file whose name is gone (unlinked while open). */
export function fstatNumbers(core: Core, fh: number): Float64Array {
  const h = handle(core, fh)
  return fstatNumbersOf(h.meta >= 0 ? h.meta : h.fd, handleStat)
}

const handleStat = new Float64Array(ST_FIELDS)

/**
 * Clear setuid, and setgid where the kernel would, as after a write, truncate or O_TRUNC open by a
 * process without CAP_FSETID. Whether the mode changed.
 */
export function clearSetid(core: Core, fh: number, inGroup: (gid: number) => boolean): boolean {
  const fd = handle(core, fh).fd
  const st = fstatSync(fd)
  const mode = modeWithoutSetid(st.mode, st.gid, inGroup)
  if (mode === (st.mode & 0o7777)) return false
  fchmodSync(fd, mode)
  return true
}

/**
 * The kernel's rule (setattr_should_drop_suidgid) for a regular file written by a process without
 * CAP_FSETID: setuid goes; setgid goes when the group may execute the file (without that, the bit
 * marks mandatory locking) or when the writer is not in the file's group. Permission bits of `mode`.
 */
export function modeWithoutSetid(mode: number, gid: number, inGroup: (gid: number) => boolean): number {
  let bits = mode & 0o7777
  if ((mode & constants.S_IFMT) !== constants.S_IFREG) return bits
  bits &= ~S_ISUID
  if ((bits & S_ISGID) && ((bits & constants.S_IXGRP) || !inGroup(gid))) bits &= ~S_ISGID
  return bits
}

/** fsync makes the file durable by its name: a copy not named yet (Core.defer) is named first. */
export function fsyncSync(core: Core, fh: number, dataOnly: boolean): void {
  const h = handle(core, fh)
  core.settle(h.path)
  fsyncFdSync(h.fd, dataOnly)
}

export function fsync(core: Core, fh: number, dataOnly: boolean): Promise<void> {
  const h = handle(core, fh)
  core.settle(h.path)
  return h.withFd((fd) => fsyncFd(fd, dataOnly))
}

export function release(core: Core, fh: number): void {
  core.handles.remove(fh)?.close()
}
