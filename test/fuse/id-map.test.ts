// The id mapping's parsing and arithmetic (the mount test compares the whole with fuse-overlayfs).
import { describe, expect, it } from 'vitest'
import { IdMap, OVERFLOW_ID, parseIdRanges } from '../../src/fuse/id-map.js'
import type { Attr } from '../../src/union/attrs.js'

const attr = (uid: number, gid: number): Attr => ({
  ino: 1, mode: 0o100644, nlink: 1, uid, gid, rdev: 0, size: 0, blksize: 4096, blocks: 0,
  atimeSec: 0, atimeNsec: 0, mtimeSec: 0, mtimeNsec: 0, ctimeSec: 0, ctimeNsec: 0,
})

describe('id ranges', () => {
  it('reads uid_map-style triples, with the empty fields containers-storage writes', () => {
    expect(parseIdRanges('0:100000:65536')).toEqual([{ inside: 0, outside: 100000, count: 65536 }])
    expect(parseIdRanges(':0:1000:1:1:110000:65536')).toEqual([
      { inside: 0, outside: 1000, count: 1 }, { inside: 1, outside: 110000, count: 65536 },
    ])
  })

  it('refuses what is not triples of ids with a count', () => {
    for (const bad of ['', ':', '0:1', '0:1:2:3', '0:x:1', '0:1:0', '-1:0:1', '0:4294967296:1']) {
      expect(() => parseIdRanges(bad), bad).toThrow()
    }
  })
})

describe('IdMap', () => {
  const map = new IdMap({ uids: parseIdRanges('0:1000:1:1:110000:65536'), gids: parseIdRanges('0:2000:10') })

  it('shows ids on disk shifted, and the overflow id for what has no mapping', () => {
    expect(map.present(attr(0, 0))).toMatchObject({ uid: 1000, gid: 2000 })
    expect(map.present(attr(65536, 9))).toMatchObject({ uid: 175535, gid: 2009 })
    expect(map.present(attr(65537, 10))).toMatchObject({ uid: OVERFLOW_ID, gid: OVERFLOW_ID })
    expect(map.shownGid(3)).toBe(2003)
  })

  it('stores ids sent in mapped back, the inverse of what it shows', () => {
    for (const uid of [0, 1, 500, 65536]) expect(map.storedUid(map.present(attr(uid, 0)).uid)).toBe(uid)
    expect(map.storedUid(999)).toBe(OVERFLOW_ID)
    expect(map.storedGid(2005)).toBe(5)
  })

  it('squashes what it shows, and passes ids through where a kind has no ranges', () => {
    const squash = new IdMap({ squashUid: 0, squashGid: 42 })
    expect(squash.present(attr(7, 8))).toMatchObject({ uid: 0, gid: 42 })
    expect([squash.storedUid(7), squash.storedGid(8)]).toEqual([7, 8])
    const uidsOnly = new IdMap({ uids: parseIdRanges('0:100:10') })
    expect(uidsOnly.present(attr(1, 1))).toMatchObject({ uid: 101, gid: 1 })
  })
})

describe('POSIX ACLs under an id mapping', () => {
  const map = new IdMap({ uids: parseIdRanges('0:100000:65536'), gids: parseIdRanges('0:200000:65536') })

  /** An ACL xattr: version 2, then (tag, perm, id) entries. */
  function acl(entries: [tag: number, perm: number, id: number][]): Buffer {
    const b = Buffer.alloc(4 + 8 * entries.length)
    b.writeUInt32LE(2, 0)
    entries.forEach(([tag, perm, id], i) => {
      b.writeUInt16LE(tag, 4 + 8 * i)
      b.writeUInt16LE(perm, 6 + 8 * i)
      b.writeUInt32LE(id, 8 + 8 * i)
    })
    return b
  }
  const UNDEFINED_ID = 0xffffffff

  it('shows named users and groups mapped out, and leaves the owner, mask and other entries alone', () => {
    const stored = acl([[0x01, 6, UNDEFINED_ID], [0x02, 4, 1000], [0x04, 4, UNDEFINED_ID], [0x08, 5, 50], [0x10, 7, UNDEFINED_ID], [0x20, 0, UNDEFINED_ID]])
    const shown = map.presentAcl(stored)
    expect(shown).toEqual(acl([[0x01, 6, UNDEFINED_ID], [0x02, 4, 101000], [0x04, 4, UNDEFINED_ID], [0x08, 5, 200050], [0x10, 7, UNDEFINED_ID], [0x20, 0, UNDEFINED_ID]]))
    expect(map.storedAcl(shown)).toEqual(stored)
    expect(stored.readUInt32LE(16)).toBe(1000) // the value read from the layer is not changed in place
  })

  it('maps an id outside every range to the overflow id', () => {
    expect(map.presentAcl(acl([[0x02, 4, 70000]])).readUInt32LE(8)).toBe(OVERFLOW_ID)
    expect(map.storedAcl(acl([[0x08, 4, 5]])).readUInt32LE(8)).toBe(OVERFLOW_ID)
  })
})
