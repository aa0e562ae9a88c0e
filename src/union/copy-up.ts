/**
 * Copy-up builds a copy of a lower object in the work directory: data (reflink, else the data extents
 * by copy_file_range, so holes stay holes), then owner, mode, xattrs and times, in that order (chown
 * clears set-ID bits, and every later change would bump the times). The caller renames the finished
 * copy into the upper layer under the namespace lock, so a crash or a full disk never leaves a
 * half-made file in the upper layer: at worst a stray temp file in the work directory, which is
 * cleared at the next mount. The staging runs as one native job (native/copy-up.c): done call by
 * call, the thread-pool round trips cost more than the copy of a small file.
 *
 * One copy-up per path at a time: concurrent openers share the one in flight (see core.ts).
 */
import { join } from 'node:path'
import { commitCopy, stageCopy } from '../sys/native.js'
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

  /** A fresh name in the work directory. */
  tempPath(): string {
    return join(this.#dir, `#lfs-${process.pid}-${++this.#seq}`)
  }

  /** Build a copy of the host path `src` in the work directory. */
  async stage(src: string, kind: Kind, options: StageOptions): Promise<Staged> {
    const tmp = this.tempPath()
    const fsync = this.#fsync && kind === 'file' && options.data && !options.meta
    const bytes = await stageCopy(src, tmp, kind, { data: options.data, fsync, origin: options.origin, meta: options.meta, dataFrom: options.dataFrom })
    return { tmp, bytes }
  }

  /** Move a finished copy into place; the parent directory keeps its times, as in overlayfs. */
  commit(tmp: string, target: string, parent: string): Promise<void> {
    return commitCopy(tmp, target, parent)
  }
}
