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
