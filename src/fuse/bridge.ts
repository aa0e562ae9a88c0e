/**
 * The kernel bridge over fuse-native (libfuse 2, path-based high-level API). The only module that
 * knows FUSE: it turns requests into Union calls and errors into negative errno numbers, and it owns
 * the mount options.
 *
 * What fuse-native's defaults lack, and why we set it:
 * - use_ino, readdir_ino: st_ino and d_ino are the union's (stable across copy-up), not libfuse's;
 * - hard_remove: unlink really unlinks; libfuse 2 would otherwise rename open files to .fuse_hidden*,
 *   names the union would have to copy up and white out;
 * - no per-op timeout: a copy-up of a large file must never be answered with ETIMEDOUT;
 * - big_writes, max_write/max_read: 128 KiB requests instead of 4 KiB ones;
 * - default_permissions (the kernel checks modes) and, as root, allow_other.
 * fuse-native carries times in milliseconds and st_ino in 32 bits, and no rename flags: the limits of
 * this bridge, listed in the README.
 */
import Fuse from 'fuse-native'
import type { TimeNs } from '../sys/native.js'
import type { Attr, Union } from '../union/union.js'
import { fsError } from '../union/errors.js'
import { toErrno } from './errno.js'
import { STATS_XATTR } from './stats-xattr.js'
import type { PassthroughPolicy } from './open-files.js'
import type { IdMap } from './id-map.js'

export interface BridgeOptions {
  fsname: string
  allowOther: boolean
  entryTimeout: number
  attrTimeout: number
  negativeTimeout: number
  /** bridge=ll only: busy-poll /dev/fuse this long (µs) after answering everything. */
  spinUs?: number
  /** bridge=ll only: which files the kernel reads and writes itself (default 'on'; see OpenFiles). */
  passthrough?: PassthroughPolicy
  /** bridge=ll only: POSIX ACLs enforced by the kernel (default true). */
  acl?: boolean
  /** bridge=ll only: ids shown shifted or squashed (fuse-overlayfs's uidmapping and squash_to_*). */
  ids?: IdMap
  /** mount(8) flags for the mount itself: suid, dev, noexec, ... (libfuse mounts nosuid,nodev
   *  unless told otherwise). */
  kernelFlags?: string[]
  debug: boolean
  log: (line: string) => void
}

export type OpCounts = Record<string, number>

class LayerFuse extends Fuse {
  readonly #extra: string[]

  constructor(mnt: string, ops: Record<string, (...args: any[]) => void>, extra: string[]) {
    super(mnt, ops, { timeout: false })
    this.#extra = extra
  }

  override _fuseOptions(): string {
    return '-o' + this.#extra.join(',')
  }
}

const ms = (sec: number, nsec: number): number => sec * 1000 + Math.floor(nsec / 1_000_000)

/** What fuse-native wants from getattr: numbers, times in ms. */
function toStat(attr: Attr): Record<string, number> {
  return {
    mode: attr.mode, uid: attr.uid, gid: attr.gid, size: attr.size, dev: 0, nlink: attr.nlink,
    ino: attr.ino, rdev: attr.rdev, blksize: attr.blksize, blocks: attr.blocks,
    atime: ms(attr.atimeSec, attr.atimeNsec), mtime: ms(attr.mtimeSec, attr.mtimeNsec), ctime: ms(attr.ctimeSec, attr.ctimeNsec),
  }
}

/**
 * fuse-native turns libfuse's timespec into milliseconds and so maps both UTIME_NOW and UTIME_OMIT
 * (tv_sec 0, tv_nsec 2^30-1 / 2^30-2) to exactly 1073 ms. A real time of 1970-01-01T00:00:01.073 is the
 * only thing lost by reading 1073 as "special": when both are special it is touch(1) (now, now); when
 * one is, the caller set the other alone and this one is left unchanged.
 */
const UTIME_SPECIAL_MS = 1073
function utimeArgs(atimeMs: number, mtimeMs: number): [TimeNs, TimeNs] {
  const a = atimeMs === UTIME_SPECIAL_MS
  const m = mtimeMs === UTIME_SPECIAL_MS
  if (a && m) return ['now', 'now']
  const ns = (ms: number): bigint => BigInt(Math.round(ms * 1e6))
  return [a ? null : ns(atimeMs), m ? null : ns(mtimeMs)]
}

export function createBridge(union: Union, mountpoint: string, options: BridgeOptions): { fuse: Fuse; counts: OpCounts } {
  const counts: OpCounts = {}
  const fail = (op: string, path: string, err: unknown): number => toErrno(err, op, path, options.log)

  /** Run an op whose callback takes (errno, value). */
  function reply<T>(op: string, path: string, cb: (err: number, value?: any) => void, fn: () => Promise<T>, map?: (value: T) => unknown): void {
    counts[op] = (counts[op] ?? 0) + 1
    fn().then(
      (value) => cb(0, map ? map(value) : value),
      (err: unknown) => cb(fail(op, path, err)),
    )
  }

  /** Whether an offset (or an offset plus a length) is one JS holds exactly. */
  const exact = (n: number): boolean => n >= 0 && n <= Number.MAX_SAFE_INTEGER

  /** Run an op whose callback takes a byte count or a negative errno (read, write). */
  function bytes(op: string, path: string, cb: (n: number) => void, fn: () => Promise<number>): void {
    counts[op] = (counts[op] ?? 0) + 1
    fn().then(cb, (err: unknown) => cb(fail(op, path, err)))
  }

  const ops: Record<string, (...args: any[]) => void> = {
    init: (cb) => cb(0),
    getattr: (path: string, cb) => reply('getattr', path, cb, () => union.getattr(path), toStat),
    readdir: (path: string, cb) => {
      counts.readdir = (counts.readdir ?? 0) + 1
      union.readdirPlus(path).then(
        (list) => cb(0, list.map((e) => e.name), list.map((e) => toStat(e.attr))),
        (err: unknown) => cb(fail('readdir', path, err)),
      )
    },
    readlink: (path: string, cb) => reply('readlink', path, cb, () => union.readlink(path)),
    open: (path: string, flags: number, cb) => reply('open', path, cb, () => union.open(path, flags)),
    create: (path: string, mode: number, cb) => reply('create', path, cb, () => union.create(path, mode)),
    // Past 2^53 an offset is no longer an exact number here: no file is that big (a read finds its
    // end), and none may become so (EFBIG), as the default bridge answers in C (fuse-ll-ops.c).
    read: (path: string, fh: number, buf: Buffer, len: number, pos: number, cb) =>
      bytes('read', path, cb, () => (exact(pos + len) ? union.read(fh, buf, len, pos) : Promise.resolve(0))),
    write: (path: string, fh: number, buf: Buffer, len: number, pos: number, cb) =>
      bytes('write', path, cb, () => (exact(pos + len) ? union.write(fh, buf, len, pos) : Promise.reject(fsError('EFBIG')))),
    release: (path: string, fh: number, cb) => reply('release', path, cb, () => union.release(fh)),
    flush: (_path: string, _fh: number, cb) => cb(0),
    fsync: (path: string, datasync: number, fh: number, cb) => reply('fsync', path, cb, () => union.fsync(fh, datasync !== 0)),
    truncate: (path: string, size: number, cb) =>
      reply('truncate', path, cb, () => (exact(size) ? union.truncate(path, size) : Promise.reject(fsError('EFBIG')))),
    ftruncate: (path: string, fh: number, size: number, cb) =>
      reply('ftruncate', path, cb, () => (exact(size) ? union.ftruncate(fh, size) : Promise.reject(fsError('EFBIG')))),
    chmod: (path: string, mode: number, cb) => reply('chmod', path, cb, () => union.chmod(path, mode)),
    chown: (path: string, uid: number, gid: number, cb) => reply('chown', path, cb, () => union.chown(path, uid, gid)),
    utimens: (path: string, atime: number, mtime: number, cb) =>
      reply('utimens', path, cb, () => union.utimens(path, ...utimeArgs(atime, mtime))),
    mknod: (path: string, mode: number, dev: number, cb) => reply('mknod', path, cb, () => union.mknod(path, mode, dev)),
    mkdir: (path: string, mode: number, cb) => reply('mkdir', path, cb, () => union.mkdir(path, mode)),
    symlink: (target: string, path: string, cb) => reply('symlink', path, cb, () => union.symlink(target, path)),
    link: (existing: string, path: string, cb) => reply('link', path, cb, () => union.link(existing, path)),
    unlink: (path: string, cb) => reply('unlink', path, cb, () => union.unlink(path)),
    rmdir: (path: string, cb) => reply('rmdir', path, cb, () => union.rmdir(path)),
    rename: (from: string, to: string, cb) => reply('rename', from, cb, () => union.rename(from, to, 0)),
    statfs: (path: string, cb) => reply('statfs', path, cb, () => union.statfs()),
    getxattr: (path: string, name: string, _position: number, cb) => {
      if (path === '/' && name === STATS_XATTR) {
        counts.getxattr = (counts.getxattr ?? 0) + 1
        return cb(0, Buffer.from(JSON.stringify({ ops: counts, ...union.stats() })))
      }
      reply('getxattr', path, cb, () => union.getxattr(path, name))
    },
    listxattr: (path: string, cb) => reply('listxattr', path, cb, () => union.listxattr(path)),
    setxattr: (path: string, name: string, value: Buffer, _position: number, flags: number, cb) =>
      reply('setxattr', path, cb, () => union.setxattr(path, name, Buffer.from(value), flags)),
    removexattr: (path: string, name: string, cb) => reply('removexattr', path, cb, () => union.removexattr(path, name)),
  }

  const mountOptions = [
    `fsname=${options.fsname.replace(/[,\\]/g, '_')}`, 'subtype=layerfs',
    'use_ino', 'readdir_ino', 'hard_remove', 'default_permissions',
    'big_writes', 'max_write=131072', 'max_read=131072',
    `entry_timeout=${options.entryTimeout}`, `attr_timeout=${options.attrTimeout}`,
    `negative_timeout=${options.negativeTimeout}`,
  ]
  if (options.allowOther) mountOptions.push('allow_other')
  // Without an upper layer the kernel itself must answer EROFS (access(W_OK) included).
  if (union.readOnly) mountOptions.push('ro')
  mountOptions.push(...(options.kernelFlags ?? []))
  if (options.debug) mountOptions.push('debug')
  return { fuse: new LayerFuse(mountpoint, ops, mountOptions), counts }
}
