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
import { lgetxattr } from '../sys/native.js'
import { isCode } from './errors.js'

export const ORIGIN_XATTR = 'trusted.layerfs.origin'

/** xattrs that belong to the union machinery, never to the user: hidden from listxattr, refused to
 *  get/set/remove through the mount, and never copied up. */
export function isPrivateXattr(name: string): boolean {
  return name.startsWith('trusted.overlay.') || name.startsWith('user.overlay.') || name.startsWith('trusted.layerfs.')
}

export function encodeOrigin(ino: bigint | number): string {
  return String(ino)
}

/** The origin inode recorded on an upper object, if any. */
export async function readOrigin(path: string): Promise<number | undefined> {
  try {
    const value = await lgetxattr(path, ORIGIN_XATTR)
    if (!value) return undefined
    const ino = Number(value.toString('latin1'))
    return Number.isSafeInteger(ino) && ino > 0 ? ino : undefined
  } catch (err) {
    if (isCode(err, 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EACCES')) return undefined
    throw err
  }
}
