/**
 * Copy-up builds a copy of a lower object: data (reflink, else the data extents by copy_file_range,
 * so holes stay holes), then owner, mode, xattrs and times, in that order (chown clears set-ID bits,
 * and every later change would bump the times). The caller names the finished copy in the upper
 * layer in one synchronous step (see core.ts), so a crash or a full disk never leaves a half-made
 * file there. A regular file is made unnamed (O_TMPFILE, in the work directory) and linked straight
 * to its name: a crash leaves nothing at all. Anything else (and every file where the filesystem
 * has no O_TMPFILE) is built in the work directory under a temporary name and renamed into place:
 * at worst a stray temp file there, cleared at the next mount.
 *
 * The staging runs as one native job (native/copy-up.c): done call by call, the thread-pool round
 * trips cost more than the copy of a small file. A copy that moves no data (a directory, a symlink,
 * an empty or metadata-only file), or little (a small file, when copies are not fsync'd or no other
 * request waits), runs on the calling thread (stageNow): that costs less than the hop to the thread
 * pool and back. The pool takes big files, and copies that end in an fsync while other requests
 * wait: a disk flush must not stall them, and several copy-ups' flushes then overlap.
 *
 * One copy-up per path at a time: concurrent openers share the one in flight (see core.ts).
 */
import { closeSync, constants, fsyncSync, openSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import type { HostPath } from '../sys/names.js'
import {
  type CopyChange, type StageOptions as CopyOptions, commitCopySync, copyDirSync, fillCopy, fillCopySync, linkCopySync, linkFdSync, stageCopy, stageCopySync, stageCopyUnnamed, stageCopyUnnamedSync, stageSmallUnnamedSync,
} from '../sys/native.js'
import { defaultAclOf } from './acl.js'
import type { Kind } from './entry.js'
import { isCode } from './errors.js'

export interface StageOptions {
  /** Copy the file's bytes (false for an O_TRUNC open or a truncate to 0: an empty file). */
  data: boolean
  /** Inode number to record as the copy's origin; undefined for none; 'own': the source's, as the
   *  copy's lstat reads it (none for a file with other links). */
  origin: bigint | 'own' | undefined
  /** A metadata-only copy (metacopy=on): same size, sparse, marked, data left below. */
  meta?: boolean
  /** Take the bytes from this host path instead of the source (completing a metacopy). */
  dataFrom?: HostPath
  /** The caller's metadata change, made on the copy before it is named (see native StageOptions). */
  change?: CopyChange
  /** Leave the copy's data unflushed even when copies are fsync'd: the caller flushes it before
   *  naming it (Core.defer). */
  unflushed?: boolean
}

/** A finished copy: named `tmp` in the work directory, or unnamed and held open by `fd`. */
export type Staged = { tmp: string; fd?: undefined; bytes: number } | { tmp?: undefined; fd: number; bytes: number }

export class Stager {
  readonly #dir: string
  readonly #fsync: boolean
  #seq = 0
  /** Whether the upper filesystem makes unnamed files (O_TMPFILE); false after it first refused. */
  #unnamed = true
  /** The process umask is 0, as in the daemon (set by the union that uses this stager): see
   *  exactModes. */
  umaskZero = false
  /** The work directory has a default ACL, which decides a new file's mode in place of the umask. */
  readonly #defaultAcl: boolean

  constructor(workDir: string, fsync: boolean) {
    this.#dir = workDir
    this.#fsync = fsync
    this.#defaultAcl = defaultAclOf(workDir) !== undefined
  }

  /** Whether a file made here gets exactly the mode it is made with: an unnamed copy then has its
   *  mode from the start, and needs no chmod after (native/copy-up.c, STAGE_EXACT_MODE). */
  get exactModes(): boolean {
    return this.umaskZero && !this.#defaultAcl
  }

  /** Whether data copies are fsync'd before they are committed. */
  get syncsData(): boolean {
    return this.#fsync
  }

  /** Where copies are made. */
  get dir(): string {
    return this.#dir
  }

  /** Whether files are copied unnamed (O_TMPFILE) here, so far. */
  get unnamed(): boolean {
    return this.#unnamed
  }

  /** A fresh name in the work directory. */
  tempPath(): string {
    return join(this.#dir, `#lfs-${process.pid}-${++this.#seq}`)
  }

  /**
   * Build a copy of the host path `src`, on the thread pool. A regular file whose target name is free
   * (`linkable`) is made unnamed, with O_TMPFILE in the work directory, and commit links it straight
   * to its name: no temporary name to make and rename away, and a crash leaves nothing behind.
   * (The work directory, not the target's: inodes allocated there, in one block group whose inode
   * table stays cached, came out 15-20% faster on copy-up-heavy workloads than inodes spread over
   * the upper directories' groups.) Anything else is built in the work directory under a temporary
   * name and renamed into place.
   */
  async stage(src: HostPath, kind: Kind, options: StageOptions, linkable = false): Promise<Staged> {
    if (kind === 'file' && linkable && this.#unnamed) {
      try {
        return await stageCopyUnnamed(src, this.#dir, this.#options(kind, options))
      } catch (err) {
        this.#noUnnamed(err)
      }
    }
    const tmp = this.tempPath()
    return { tmp, bytes: await stageCopy(src, tmp, kind, this.#options(kind, options)) }
  }

  /** stage, on the calling thread: for a copy that moves no file data, or little. `st`, when given,
   *  receives the source's lstat numbers (see stageCopySync). */
  stageNow(src: HostPath, kind: Kind, options: StageOptions, linkable = false, st?: Float64Array): Staged {
    if (kind === 'file' && linkable && this.#unnamed) {
      try {
        return stageCopyUnnamedSync(src, this.#dir, this.#options(kind, options), st)
      } catch (err) {
        this.#noUnnamed(err)
      }
    }
    const tmp = this.tempPath()
    return { tmp, bytes: stageCopySync(src, tmp, kind, this.#options(kind, options), st) }
  }

  /** Copy the directory `src` up to `target` (free), named at once, on the calling thread: as
   *  stageNow and commit make one (its own origin, `change` on it), in one call. `st` receives the
   *  source's lstat numbers; returns whether the origin was recorded. */
  copyDirNow(src: HostPath, target: HostPath, change: CopyChange | undefined, st: Float64Array): boolean {
    return copyDirSync(src, this.#dir, target, st, change)
  }

  /** stageNow of a small regular file with one link, unnamed, taking the source's lstat into `st`
   *  (stageSmallUnnamedSync): undefined when the file is not one, or the filesystem refused
   *  O_TMPFILE (remembered). `st` is filled either way, unless this throws. */
  stageSmallNow(src: HostPath, maxSize: number, st: Float64Array, options: StageOptions): Staged | undefined {
    try {
      return stageSmallUnnamedSync(src, this.#dir, maxSize, st, this.#options('file', options))
    } catch (err) {
      this.#noUnnamed(err)
      return undefined
    }
  }

  /** A refusal of O_TMPFILE means "not here": remembered, and the named way taken. */
  #noUnnamed(err: unknown): void {
    if (!isCode(err, 'EOPNOTSUPP', 'EISDIR', 'EINVAL')) throw err
    this.#unnamed = false
  }

  #options(kind: Kind, options: StageOptions): CopyOptions {
    const fsync = this.#fsync && kind === 'file' && options.data && !options.meta && !options.unflushed
    return { data: options.data, fsync, origin: options.origin, meta: options.meta, dataFrom: options.dataFrom, change: options.change, exactMode: this.exactModes }
  }

  /** fsync a copy made by name with `unflushed`. */
  flush(staged: Staged): void {
    if (staged.tmp === undefined) return fsyncSync(staged.fd)
    const fd = openSync(staged.tmp, constants.O_RDONLY | constants.O_NOFOLLOW)
    try {
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
  }

  /** Move a finished copy into place; the parent directory keeps its times, as in overlayfs. Without
   *  `parent` the caller puts its times back (an unnamed copy only). */
  commit(staged: Staged, target: HostPath, parent: HostPath | undefined): void {
    if (staged.fd === undefined) return commitCopySync(staged.tmp, target, parent!)
    if (parent !== undefined) return linkCopySync(staged.fd, target, parent)
    try {
      linkFdSync(staged.fd, target)
    } finally {
      closeSync(staged.fd)
    }
  }

  /** Give the metadata-only copy `path` its data in place, the bytes of `dataFrom` (none: made
   *  empty), fsync'd when copies are (see fillCopy): on the thread pool, and on the calling thread.
   *  The bytes written. */
  fill(path: HostPath, dataFrom: HostPath | undefined): Promise<number> {
    return fillCopy(path, dataFrom, this.#fsync)
  }

  fillNow(path: HostPath, dataFrom: HostPath | undefined): number {
    return fillCopySync(path, dataFrom, this.#fsync)
  }

  /** Drop a copy that is not wanted after all (the name changed while it was made). */
  discard(staged: Staged): void {
    if (staged.fd !== undefined) closeSync(staged.fd)
    else rmSync(staged.tmp, { recursive: true, force: true })
  }
}
