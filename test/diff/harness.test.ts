// Unit tests of the differential harness itself (no mounts): the layer DSL, upper-layer normalisation of
// whiteout/opaque encodings, difference keys and the known-differences judge.
import { lstat, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { TempDirs } from '../helpers/tmp.js'
import { diffRuns, keyPattern, type RunResult } from './compare.js'
import { judge } from './harness.js'
import { isDir, type KnownDifference } from './known-differences.js'
import { FsTarget, newNormContext, runOps } from './ops.js'
import { snapshotMerged, snapshotUpper } from './snapshot.js'
import { buildLayer, FIXTURE_TIME } from './spec.js'

const root = typeof process.getuid === 'function' && process.getuid() === 0
if (!root) console.warn('[diff harness] skipped: not running as root (fixtures need mknod and trusted.* xattrs)')

describe.skipIf(!root)('differential harness', () => {
  const tmp = new TempDirs()
  afterEach(() => tmp.removeAll())

  it('keyPattern covers sub-keys at the right boundaries only', () => {
    expect(keyPattern('merged:a').test('merged:a')).toBe(true)
    expect(keyPattern('merged:a').test('merged:a#nlink')).toBe(true)
    expect(keyPattern('merged:a').test('merged:a/b')).toBe(false)
    expect(keyPattern('merged:a').test('merged:a.txt')).toBe(false)
    expect(keyPattern('merged:a#xattrs').test('merged:a#xattrs.user.k')).toBe(true)
    expect(keyPattern('merged:*#nlink').test('merged:x/y#nlink')).toBe(true)
    expect(keyPattern('op:1').test('op:12')).toBe(false)
    expect(keyPattern('op:1').test('op:1#ino')).toBe(true)
  })

  it('judge: explains, flags unexplained and stale parts, honours where', () => {
    const a: RunResult = { ops: ['ok', { error: 'ENOENT' }], merged: { d: { type: 'dir', nlink: 1 }, f: { type: 'file', nlink: 1 } }, upper: {} }
    const b: RunResult = { ops: ['ok', 'ok'], merged: { d: { type: 'dir', nlink: 2 }, f: { type: 'file', nlink: 2 } }, upper: {} }
    const diffs = diffRuns(a, b)
    expect(diffs.map((d) => d.key)).toEqual(['op:1', 'merged:d#nlink', 'merged:f#nlink'])
    const known: KnownDifference[] = [
      { scenario: 's', driver: 'layerfs', ops: [1, 0], why: '' },
      { scenario: 's', driver: 'layerfs', fields: ['merged:*#nlink'], where: isDir, why: '' },
    ]
    const v = judge(diffs, known)
    expect(v.explained.map((d) => d.key)).toEqual(['op:1', 'merged:d#nlink'])
    expect(v.unexplained.map((d) => d.key)).toEqual(['merged:f#nlink'])
    expect(v.stale).toEqual(['ops: 0'])
  })

  it('buildLayer creates entries with fixed times, modes, owners, links and xattrs', async () => {
    const dir = await tmp.make('layer')
    await buildLayer(dir, {
      'a/f': { file: 'x', mode: 0o640, uid: 7, gid: 8, xattrs: { 'user.k': 'v' } },
      'a/h': { hardlink: 'a/f' },
      'a/l': { symlink: '{{MNT}}/a/f' },
      p: { fifo: true },
      w: { whiteout: true },
      o: { opaque: true },
      s: { file: 'ab', size: 4096 },
    }, { mnt: '/the/mnt' })
    const f = await lstat(join(dir, 'a/f'))
    expect([f.mode & 0o7777, f.uid, f.gid, f.nlink, f.mtimeMs / 1000]).toEqual([0o640, 7, 8, 2, FIXTURE_TIME])
    expect((await lstat(join(dir, 'a'))).mtimeMs / 1000).toBe(FIXTURE_TIME)
    expect((await lstat(dir)).mtimeMs / 1000).toBe(FIXTURE_TIME)
    expect((await lstat(join(dir, 'p'))).isFIFO()).toBe(true)
    const w = await lstat(join(dir, 'w'))
    expect([w.isCharacterDevice(), w.rdev]).toEqual([true, 0])
    expect((await readFile(join(dir, 's'))).length).toBe(4096)
    const t = new FsTarget(dir)
    const ctx = newNormContext(Math.floor(Date.now() / 1000))
    expect(await runOps(t, [['readlink', 'a/l'], ['getxattr', 'a/f', 'user.k'], ['getxattr', 'o', 'trusted.overlay.opaque']], ctx)).toEqual([
      '/the/mnt/a/f',
      'v',
      'y',
    ])
    const snap = await snapshotMerged(t, ctx)
    expect(snap['a/h']?.ino).toBe(snap['a/f']?.ino)
    expect(snap['a/f']?.xattrs).toEqual({ 'user.k': 'v' })
  })

  it('snapshotUpper normalises kernel and OCI whiteout/opaque encodings and ignores private xattrs', async () => {
    const kernelStyle = await tmp.make('upper-k')
    const ociStyle = await tmp.make('upper-o')
    await buildLayer(kernelStyle, {
      'd/gone': { whiteout: true },
      o: { opaque: true, xattrs: { 'trusted.overlay.origin': 'x', 'user.keep': '1' } },
      'o/f': { file: 'f', xattrs: { 'trusted.layerfs.meta': 'private', 'trusted.other': 't' } },
    })
    await buildLayer(ociStyle, {
      'd/.wh.gone': '',
      o: { dir: true, xattrs: { 'user.keep': '1' } },
      'o/.wh..wh..opq': '',
      'o/f': { file: 'f', xattrs: { 'trusted.other': 't' } },
    })
    const start = Math.floor(Date.now() / 1000)
    const a = await snapshotUpper(kernelStyle, { startSec: start })
    const b = await snapshotUpper(ociStyle, { startSec: start })
    expect(a).toEqual(b)
    expect(a['d/gone']).toEqual({ whiteout: true })
    expect(a.o).toMatchObject({ type: 'dir', opaque: true, xattrs: { 'user.keep': '1' } })
    expect(a['o/f']?.xattrs).toEqual({ 'trusted.other': 't' })
  })
})
