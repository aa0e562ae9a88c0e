/**
 * fuse-overlayfs's id mapping (`uidmapping=`, `gidmapping=`, `squash_to_root`, `squash_to_uid=`,
 * `squash_to_gid=`), which containers-storage passes to its mount program when a container's user
 * namespace differs from the storage's: files keep their ids on disk, and the mount shows them
 * shifted, so that no file needs a chown per namespace.
 *
 * A mapping is written as a user namespace's uid_map on one line: `INSIDE:OUTSIDE:COUNT`, repeated
 * (`0:100000:65536` or `0:1000:1:1:110000:65536`). An id on disk is an inside id; the mount shows
 * the outside id it maps to, and an id coming in (a chown, the creator of a new file) maps back.
 * An id with no mapping is the overflow id, 65534, in either direction. Squashing shows every
 * object as owned by one uid or gid, and changes nothing on disk.
 *
 * The union knows nothing of this: the bridge maps the attributes it sends and the ids it is sent.
 */
import type { Attr } from '../union/attrs.js'

/** The id the kernel shows for one it cannot map. */
export const OVERFLOW_ID = 65534

export interface IdRange {
  inside: number
  outside: number
  count: number
}

/** `INSIDE:OUTSIDE:COUNT[:INSIDE:OUTSIDE:COUNT...]`; throws an Error naming what is wrong. Empty
 *  fields are skipped, as fuse-overlayfs skips them: containers-storage writes `:0:100000:65536`. */
export function parseIdRanges(value: string): IdRange[] {
  const parts = value.split(':').filter((p) => p !== '')
  if (parts.length === 0 || parts.length % 3 !== 0) throw new Error(`expected INSIDE:OUTSIDE:COUNT triples, got ${JSON.stringify(value)}`)
  const ranges: IdRange[] = []
  for (let i = 0; i < parts.length; i += 3) {
    const [inside, outside, count] = parts.slice(i, i + 3).map((p) => (/^\d+$/.test(p) ? Number(p) : NaN)) as [number, number, number]
    if (![inside, outside, count].every((n) => Number.isSafeInteger(n) && n <= 0xffffffff) || count === 0) {
      throw new Error(`bad range ${parts.slice(i, i + 3).join(':')}: three ids, the count at least 1`)
    }
    ranges.push({ inside, outside, count })
  }
  return ranges
}

export class IdMap {
  readonly #uids: IdRange[]
  readonly #gids: IdRange[]
  readonly #squashUid: number | undefined
  readonly #squashGid: number | undefined

  constructor(options: { uids?: IdRange[]; gids?: IdRange[]; squashUid?: number; squashGid?: number }) {
    this.#uids = options.uids ?? []
    this.#gids = options.gids ?? []
    this.#squashUid = options.squashUid
    this.#squashGid = options.squashGid
  }

  /** The attributes as the mount shows them: ids mapped out, or squashed. */
  present(attr: Attr): Attr {
    return { ...attr, uid: this.#squashUid ?? outward(this.#uids, attr.uid), gid: this.#squashGid ?? outward(this.#gids, attr.gid) }
  }

  /** The gid on disk as the mount shows it (what a caller's groups are compared with). */
  shownGid(gid: number): number {
    return this.#squashGid ?? outward(this.#gids, gid)
  }

  /** An owner sent by the kernel (a chown, a creator) as it is stored. */
  storedUid(uid: number): number {
    return inward(this.#uids, uid)
  }

  storedGid(gid: number): number {
    return inward(this.#gids, gid)
  }

  /** A POSIX ACL xattr (see ACL_XATTRS) as the mount shows it: its named users and groups mapped
   *  out (a squash changes owners only). */
  presentAcl(value: Buffer): Buffer {
    return mapAcl(value, (uid) => outward(this.#uids, uid), (gid) => outward(this.#gids, gid))
  }

  /** A POSIX ACL xattr sent by the kernel (setfacl) as it is stored. */
  storedAcl(value: Buffer): Buffer {
    return mapAcl(value, (uid) => inward(this.#uids, uid), (gid) => inward(this.#gids, gid))
  }
}

/** The xattrs that hold POSIX ACLs; the kernel reads them to enforce ACLs (FUSE_POSIX_ACL). */
export const ACL_XATTRS: ReadonlySet<string> = new Set(['system.posix_acl_access', 'system.posix_acl_default'])

/** ACL entry tags whose entry names an id (ACL_USER, ACL_GROUP). */
const ACL_USER = 0x02
const ACL_GROUP = 0x08

/** The ACL xattr `value` (a 4-byte version header, then 8-byte entries: tag and permissions, 16 bits
 *  each, and an id, 32 bits, little-endian) with its users' and groups' ids mapped. */
function mapAcl(value: Buffer, user: (id: number) => number, group: (id: number) => number): Buffer {
  const out = Buffer.from(value)
  for (let at = 4; at + 8 <= out.length; at += 8) {
    const tag = out.readUInt16LE(at)
    if (tag === ACL_USER) out.writeUInt32LE(user(out.readUInt32LE(at + 4)), at + 4)
    else if (tag === ACL_GROUP) out.writeUInt32LE(group(out.readUInt32LE(at + 4)), at + 4)
  }
  return out
}

/** With no ranges, ids pass as they are (a squash alone, or only one of the two mappings). */
function outward(ranges: IdRange[], id: number): number {
  if (ranges.length === 0) return id
  for (const r of ranges) if (id >= r.inside && id - r.inside < r.count) return r.outside + (id - r.inside)
  return OVERFLOW_ID
}

function inward(ranges: IdRange[], id: number): number {
  if (ranges.length === 0) return id
  for (const r of ranges) if (id >= r.outside && id - r.outside < r.count) return r.inside + (id - r.outside)
  return OVERFLOW_ID
}
