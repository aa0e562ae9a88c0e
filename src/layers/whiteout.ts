/**
 * Whiteouts and opaque directories: how a layer says "this name is gone" and "nothing below shows
 * through here".
 *
 * Two encodings exist and layerfs reads both everywhere (lower and upper layers alike):
 * - kernel overlayfs: a whiteout is a character device 0/0; an opaque directory carries the xattr
 *   `trusted.overlay.opaque=y` (or `user.overlay.opaque=y` for unprivileged "userxattr" mounts);
 * - OCI / AUFS image layers: a whiteout is an empty file `.wh.NAME` beside NAME, and an opaque
 *   directory contains `.wh..wh..opq`.
 * layerfs writes the kernel form (so the upper layer mounts with kernel overlayfs too) and falls back to
 * `.wh.NAME` files when mknod is not permitted.
 */
import { type BigIntStats, type Stats, constants } from 'node:fs'
import type { HostPath } from '../sys/names.js'
import { ST, ST_FIELDS, lgetxattrSync, llistxattrSync, lstatIfAny } from '../sys/native.js'

export const WHITEOUT_PREFIX = '.wh.'
export const OPAQUE_MARKER = '.wh..wh..opq'
export const OPAQUE_XATTRS = ['trusted.overlay.opaque', 'user.overlay.opaque'] as const

/** A char device 0/0 is a kernel-format whiteout. */
export function isWhiteoutStat(st: Stats | BigIntStats): boolean {
  return st.isCharacterDevice() && Number(st.rdev) === 0
}

/** isWhiteoutStat from an lstat's mode and rdev numbers. */
export function isWhiteoutMode(mode: number, rdev: number): boolean {
  return (mode & constants.S_IFMT) === constants.S_IFCHR && rdev === 0
}

/** Whether a kernel-format whiteout is at `path` (an upper layer's name, probed). */
export function whiteoutAt(path: HostPath): boolean {
  return lstatIfAny(path, probeStat) && isWhiteoutMode(probeStat[ST.MODE]!, probeStat[ST.RDEV]!)
}

/** Whether there is anything at `path`, the name of a `.wh.` marker: a marker whose name would be
 *  too long for the filesystem cannot be there. */
export function markerAt(path: HostPath): boolean {
  try {
    return lstatIfAny(path, probeStat)
  } catch (err) {
    if (isErrno(err, 'ENAMETOOLONG')) return false
    throw err
  }
}

/** The probes' lstat numbers: one array, read before the next probe. */
const probeStat = new Float64Array(ST_FIELDS)

/** `.wh.NAME` → `NAME`; undefined for ordinary names and for the opaque marker itself. */
export function whiteoutTarget(name: string): string | undefined {
  if (!name.startsWith(WHITEOUT_PREFIX) || name === OPAQUE_MARKER) return undefined
  const target = name.slice(WHITEOUT_PREFIX.length)
  return target.length > 0 ? target : undefined
}

/** True for names a layer uses as markers: they never appear in the merged view. */
export function isMarkerName(name: string): boolean {
  return name.startsWith(WHITEOUT_PREFIX)
}

/** True when the xattr value marks an opaque directory ('y'). */
export function isOpaqueValue(value: Buffer | undefined): boolean {
  return value !== undefined && value.length >= 1 && value[0] === 0x79 /* 'y' */
}

/** True when a directory is opaque by its xattr (either namespace). The `.wh..wh..opq` child is the
 *  caller's to check, since it usually has the directory listing at hand. Synchronous: it sits on
 *  the lookup path, where a thread-pool hop would cost more than the read (see lgetxattrSync). One
 *  listing of the directory's xattr names, and a read only of a marker it lists: most directories
 *  hold none (a copied-up one an origin), and a read per name had cost each directory of a lookup
 *  walk two syscalls a layer. */
export function hasOpaqueXattr(dirPath: HostPath): boolean {
  let names: string[]
  try {
    names = llistxattrSync(dirPath)
  } catch (err) {
    if (isErrno(err, 'ENOTSUP', 'EOPNOTSUPP')) return false // no xattrs on this filesystem
    throw err
  }
  for (const name of OPAQUE_XATTRS) {
    if (!names.includes(name)) continue
    try {
      if (isOpaqueValue(lgetxattrSync(dirPath, name))) return true
    } catch (err) {
      // user.* xattrs are refused on some file types; an unreadable marker is an absent one.
      if (!isErrno(err, 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EACCES')) throw err
    }
  }
  return false
}

export function isErrno(err: unknown, ...codes: string[]): boolean {
  return typeof err === 'object' && err !== null && codes.includes((err as { code?: string }).code ?? '')
}
