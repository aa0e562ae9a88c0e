/**
 * Copy-up builds a copy of a lower object in the work directory: data (reflink, else the data extents
 * by copy_file_range, so holes stay holes), then owner, mode, xattrs and times, in that order (chown
 * clears set-ID bits, and every later change would bump the times). The caller renames the finished
 * copy into the upper layer in one synchronous step (see core.ts), so a crash or a full disk never leaves a
 * half-made file in the upper layer: at worst a stray temp file in the work directory, which is
 * cleared at the next mount. The staging runs as one native job (native/copy-up.c): done call by
 * call, the thread-pool round trips cost more than the copy of a small file. A copy that moves no
 * data (a directory, a symlink, an empty or metadata-only file), or little (a small file, when
 * copies are not fsync'd), runs on the calling thread (stageNow): that costs less than the hop to the
 * thread pool and back. The pool takes big files, and every copy that ends in an fsync: a disk flush
 * must not stall every other request, and several copy-ups' flushes then overlap.
 *
 * One copy-up per path at a time: concurrent openers share the one in flight (see core.ts).
 */
import { join } from 'node:path'
import { commitCopySync, stageCopy, stageCopySync, type StageOptions as CopyOptions } from '../sys/native.js'
import type { Kind } from './entry.js'

export interface StageOptions {
  /** Copy the file's bytes (false for an O_TRUNC open or a truncate to 0: an empty file). */
  data: boolean
  /** Inode number to record as the copy's origin; undefined for none. */
  origin: bigint | undefined
  /** A metadata-only copy (metacopy=on): same size, sparse, marked, data left below. */
  meta?: boolean
  /** Take the bytes from this host path instead of the source (completing a metacopy). */
  dataFrom?: string
}

export interface Staged {
  tmp: string
  bytes: number
}

export class Stager {
  readonly #dir: string
  readonly #fsync: boolean
  #seq = 0

  constructor(workDir: string, fsync: boolean) {
    this.#dir = workDir
    this.#fsync = fsync
  }

  /** Whether data copies are fsync'd before they are committed. */
  get syncsData(): boolean {
    return this.#fsync
  }

  /** A fresh name in the work directory. */
  tempPath(): string {
    return join(this.#dir, `#lfs-${process.pid}-${++this.#seq}`)
  }

  /** Build a copy of the host path `src` in the work directory, on the thread pool. */
  async stage(src: string, kind: Kind, options: StageOptions): Promise<Staged> {
    const tmp = this.tempPath()
    return { tmp, bytes: await stageCopy(src, tmp, kind, this.#options(kind, options)) }
  }

  /** stage, on the calling thread: for a copy that moves no file data, or little. */
  stageNow(src: string, kind: Kind, options: StageOptions): Staged {
    const tmp = this.tempPath()
    return { tmp, bytes: stageCopySync(src, tmp, kind, this.#options(kind, options)) }
  }

  #options(kind: Kind, options: StageOptions): CopyOptions {
    const fsync = this.#fsync && kind === 'file' && options.data && !options.meta
    return { data: options.data, fsync, origin: options.origin, meta: options.meta, dataFrom: options.dataFrom }
  }

  /** Move a finished copy into place; the parent directory keeps its times, as in overlayfs. */
  commit(tmp: string, target: string, parent: string): void {
    commitCopySync(tmp, target, parent)
  }
}
