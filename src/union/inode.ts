/**
 * Inode numbers and the union's private xattrs.
 *
 * When every layer lives on one filesystem (the usual case, and what kernel overlayfs calls "samefs"),
 * st_ino is the real inode number of the visible object. A copy-up creates a new inode, so the copy
 * records where it came from in `trusted.layerfs.origin`, and st_ino keeps reporting the original:
 * a file's inode number survives copy-up and remount. As in overlayfs (without index=on) a lower file
 * with several hard links gets no origin: its links are broken by copy-up, so the copy must not claim
 * the inode number its old siblings still show.
 */
import type { HostPath } from '../sys/names.js'
import { lgetxattrSync } from '../sys/native.js'
import { isCode } from './errors.js'

export const ORIGIN_XATTR = 'trusted.layerfs.origin'
/** overlayfs's marks of a metadata-only copy and of where a renamed one's data lives. */
export const METACOPY_XATTR = 'trusted.overlay.metacopy'
export const REDIRECT_XATTR = 'trusted.overlay.redirect'

const OVERLAY = 'trusted.overlay.'
const ESCAPED = 'trusted.overlay.overlay.'
const OWN = 'trusted.layerfs.'

/** xattrs that belong to the union machinery (overlay markers, our origin): hidden from listxattr and
 *  never copied up. An escaped overlay name (see toStoredXattr) is the user's, not ours. */
export function isPrivateXattr(name: string): boolean {
  return (name.startsWith(OVERLAY) && !name.startsWith(ESCAPED)) || name.startsWith(OWN)
}

/** The name a user's xattr is stored under. As overlayfs does (Linux 6.7+), `trusted.overlay.X` set
 *  through the mount is stored escaped as `trusted.overlay.overlay.X`, so a user (or a nested overlay)
 *  can keep such xattrs without them being read as markers of this union. Our own namespace is
 *  refused: undefined. */
export function toStoredXattr(name: string): string | undefined {
  if (name.startsWith(OWN)) return undefined
  return name.startsWith(OVERLAY) ? ESCAPED + name.slice(OVERLAY.length) : name
}

/** The name a stored xattr shows under, or undefined for a private one. */
export function fromStoredXattr(name: string): string | undefined {
  if (name.startsWith(ESCAPED)) return OVERLAY + name.slice(ESCAPED.length)
  return isPrivateXattr(name) ? undefined : name
}

export function encodeOrigin(ino: bigint | number): string {
  return String(ino)
}

/** The origin inode recorded on an upper object, if any (synchronous: it is on the getattr path). */
export function readOrigin(path: HostPath): number | undefined {
  try {
    const value = lgetxattrSync(path, ORIGIN_XATTR)
    if (!value) return undefined
    const ino = Number(value.toString('latin1'))
    return Number.isSafeInteger(ino) && ino > 0 ? ino : undefined
  } catch (err) {
    if (isCode(err, 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EACCES')) return undefined
    throw err
  }
}
