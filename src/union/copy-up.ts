/**
 * Copy-up builds a copy of a lower object in the work directory: data (see data-copy.ts), then owner,
 * mode, xattrs and times, in that order (chown clears setuid bits, and every later change would bump
 * the times). The caller renames the finished copy into the upper layer under the namespace lock, so a
 * crash or a full disk never leaves a half-made file in the upper layer: at worst a stray temp file in
 * the work directory, which is cleared at the next mount.
 *
 * One copy-up per path at a time: concurrent openers share the one in flight (see union.ts).
 */
import { constants, type BigIntStats } from 'node:fs'
import { chmod, lchown, mkdir, readlink, rm, symlink } from 'node:fs/promises'
import { join } from 'node:path'
import { llistxattr, lgetxattr, lsetxattr, mknod, utimensat } from '../sys/native.js'
import { copyData } from './data-copy.js'
import type { Kind } from './entry.js'
import { isCode } from './errors.js'
import { closeFd, fsyncFd, openFd } from './fd-io.js'
import { ORIGIN_XATTR, encodeOrigin, isPrivateXattr } from './inode.js'

export interface StageOptions {
  /** Copy the file's bytes (false for an O_TRUNC open or a truncate to 0: metadata only). */
  data: boolean
  /** Inode number to record as the copy's origin; undefined for none. */
  origin: bigint | undefined
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

  /** Build a copy of `src` (lstat'ed as `st`) in the work directory. */
  async stage(src: string, st: BigIntStats, kind: Kind, options: StageOptions): Promise<Staged> {
    const tmp = this.tempPath()
    try {
      const bytes = await this.#make(src, tmp, st, kind, options.data)
      await copyAttributes(src, tmp, st, kind, options.origin)
      return { tmp, bytes }
    } catch (err) {
      await rm(tmp, { force: true, recursive: true }).catch(() => undefined)
      throw err
    }
  }

  /** The object itself, with its data when asked: a directory is made empty (children stay below). */
  async #make(src: string, tmp: string, st: BigIntStats, kind: Kind, data: boolean): Promise<number> {
    switch (kind) {
      case 'dir':
        await mkdir(tmp, { mode: 0o700 })
        return 0
      case 'symlink':
        await symlink(await readlink(src), tmp)
        return 0
      case 'special':
        await mknod(tmp, Number(st.mode), Number(st.rdev))
        return 0
      case 'file': {
        const out = await openFd(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600)
        try {
          let bytes = 0
          if (data && st.size > 0n) {
            const input = await openFd(src, constants.O_RDONLY | constants.O_NOFOLLOW)
            try {
              bytes = await copyData(input, out, Number(st.size))
            } finally {
              await closeFd(input)
            }
          }
          if (this.#fsync) await fsyncFd(out, false)
          return bytes
        } finally {
          await closeFd(out)
        }
      }
    }
  }
}

/** Owner, mode, xattrs, origin and times of `src` onto `dst` (both host paths; never follows links). */
export async function copyAttributes(src: string, dst: string, st: BigIntStats, kind: Kind, origin: bigint | undefined): Promise<void> {
  try {
    await lchown(dst, Number(st.uid), Number(st.gid))
  } catch (err) {
    // Unprivileged daemons cannot give files away; the copy stays the daemon's.
    if (!isCode(err, 'EPERM')) throw err
  }
  if (kind !== 'symlink') await chmod(dst, Number(st.mode & 0o7777n))
  await copyXattrs(src, dst)
  if (origin !== undefined) {
    try {
      await lsetxattr(dst, ORIGIN_XATTR, encodeOrigin(origin))
    } catch (err) {
      if (!isCode(err, 'EPERM', 'ENOTSUP', 'EOPNOTSUPP')) throw err
    }
  }
  await utimensat(dst, st.atimeNs, st.mtimeNs, true)
}

async function copyXattrs(src: string, dst: string): Promise<void> {
  let names: string[]
  try {
    names = await llistxattr(src)
  } catch (err) {
    if (isCode(err, 'ENOTSUP', 'EOPNOTSUPP')) return
    throw err
  }
  for (const name of names) {
    if (isPrivateXattr(name)) continue
    const value = await lgetxattr(src, name)
    if (value === undefined) continue
    try {
      await lsetxattr(dst, name, value)
    } catch (err) {
      // A namespace the upper filesystem does not take (or user.* on a symlink) is dropped, as the
      // kernel does for xattrs it cannot copy.
      if (!isCode(err, 'ENOTSUP', 'EOPNOTSUPP', 'EPERM')) throw err
    }
  }
}
