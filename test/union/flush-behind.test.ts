// flushBehind: a chmod, chown or utimens that copies a small lower file up is answered before the
// copy is flushed and named (Core.#defer). Until then the copy answers for the entry from its fd;
// whatever needs the name links it first; a syncfs per batch flushes the rest, which are then named.
import { constants, existsSync, writeFileSync } from 'node:fs'
import { lstat, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { RENAME_NOREPLACE, XATTR_REPLACE, lgetxattr, lsetxattrSync } from '../../src/sys/native.js'
import type { Union } from '../../src/union/union.js'
import { OLD, type Stack, makeStack } from './fixture.js'

const lowerTree = {
  'd/': '',
  'd/a': 'alpha',
  'd/b': 'bravo',
  'd/c': 'charlie',
  'd/sub/': '',
  'd/sub/e': 'echo',
  'top': 'top file',
}

/** Wait (at most 5 s) until no copy waits for its flush. */
async function settled(union: Union): Promise<void> {
  for (let i = 0; i < 500 && union.stats().deferredCopies > 0; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  expect(union.stats().deferredCopies).toBe(0)
}

/** The stack a test opened: every copy named, then removed, after each test. */
let stack: Stack | undefined
afterEach(async () => {
  stack?.union.flush()
  await stack?.cleanup()
  stack = undefined
})

describe('flushBehind: copy-ups answered before their flush', () => {
  async function open(extra: Parameters<typeof makeStack>[2] = {}): Promise<Stack> {
    stack = await makeStack([lowerTree], {}, { flushBehind: true, ...extra })
    return stack
  }

  it('shows the change at once, and names the copy with its data and origin after the flush', async () => {
    const { union, upper, lowers } = await open()
    const before = await union.getattr('/d/a')
    expect(union.trySetattr('/d/a', { uid: 1234, gid: 2345 })).toBe(true)
    // Answered, not named yet: no await has let the flush finish.
    expect(existsSync(join(upper, 'd/a'))).toBe(false)
    expect(union.stats().deferredCopies).toBe(1)
    const shown = await union.getattr('/d/a')
    expect([shown.uid, shown.gid, shown.nlink, shown.size, shown.ino]).toEqual([1234, 2345, 1, 5, before.ino])
    expect(shown.mtimeSec).toBe(OLD.getTime() / 1000)
    const listed = union.readdirPlusSync('/d').find((e) => e.name === 'a')!
    expect([listed.attr.uid, listed.attr.ino]).toEqual([1234, before.ino])
    expect(union.lookupSync('/d/a')?.uid).toBe(1234)

    await settled(union)
    const st = await stat(join(upper, 'd/a'))
    expect([st.uid, st.gid, st.nlink, st.mtimeMs]).toEqual([1234, 2345, 1, OLD.getTime()])
    expect(await readFile(join(upper, 'd/a'), 'utf8')).toBe('alpha')
    expect((await lgetxattr(join(upper, 'd/a'), 'trusted.layerfs.origin')) !== undefined).toBe(true)
    expect((await union.getattr('/d/a')).ino).toBe(before.ino)
    // The lower file is untouched, and the copy counted once.
    expect((await stat(join(lowers[0]!, 'd/a'))).uid).toBe(0)
    expect(union.stats().copyUps.copyUps).toBe(2) // d, then d/a
  })

  it('renames a lower file over a file with other names at once: their link count drops with it', async () => {
    const s = await open()
    await s.union.releaseSync(s.union.createSync('/d/made', 0o644))
    await s.union.link('/d/made', '/linked')
    expect((await s.union.getattr('/linked')).nlink).toBe(2)
    await s.union.rename('/d/a', '/d/made', 0)
    expect((await s.union.getattr('/linked')).nlink).toBe(1)
    expect((await stat(join(s.upper, 'linked'))).nlink).toBe(1)
    expect((await s.union.getattr('/d/made')).size).toBe('alpha'.length)
    await settled(s.union)
  })

  it('batches: many copies, one flush, all named', async () => {
    const { union, upper } = await open()
    for (const name of ['a', 'b', 'c']) expect(union.trySetattr(`/d/${name}`, { mode: 0o600 })).toBe(true)
    const copiedDir = await stat(join(upper, 'd'), { bigint: true })
    expect(union.trySetattr('/top', { atime: 1_000_000_000_000_000_000n, mtime: 1_100_000_000_000_000_000n })).toBe(true)
    expect(union.stats().deferredCopies).toBe(4)
    await settled(union)
    for (const name of ['a', 'b', 'c']) expect((await stat(join(upper, 'd', name))).mode & 0o7777).toBe(0o600)
    // Named together, the three leave their directory the times it had, as one copy-up does.
    const dir = await stat(join(upper, 'd'), { bigint: true })
    expect([dir.atimeNs, dir.mtimeNs]).toEqual([copiedDir.atimeNs, copiedDir.mtimeNs])
    const top = await stat(join(upper, 'top'), { bigint: true })
    expect([top.atimeNs, top.mtimeNs]).toEqual([1_000_000_000_000_000_000n, 1_100_000_000_000_000_000n])
    expect(union.stats().copyUps.lostCopies).toBe(0)
  })

  it('sets and removes xattrs on the copy before it has a name, and names it with them', async () => {
    const { union, upper, lowers } = await open()
    lsetxattrSync(join(lowers[0]!, 'd/b'), 'user.lower', 'below')
    await union.setxattr('/d/a', 'user.k', Buffer.from('v1'))
    await union.removexattr('/d/b', 'user.lower')
    // Answered with neither copy named (a setfattr used to wait for a syncfs each).
    expect([existsSync(join(upper, 'd/a')), existsSync(join(upper, 'd/b'))]).toEqual([false, false])
    expect(union.stats().deferredCopies).toBe(2)
    expect(union.getxattrSync('/d/a', 'user.k')?.toString()).toBe('v1')
    expect(union.listxattrSync('/d/b')).toEqual([])
    // A second change of the same unnamed copy, and a removal of what it no longer has.
    await union.setxattr('/d/a', 'user.k', Buffer.from('v2'), XATTR_REPLACE)
    await expect(union.removexattr('/d/b', 'user.lower')).rejects.toMatchObject({ code: 'ENODATA' })
    await settled(union)
    expect((await lgetxattr(join(upper, 'd/a'), 'user.k'))?.toString()).toBe('v2')
    expect(await lgetxattr(join(upper, 'd/b'), 'user.lower')).toBeUndefined()
    expect(await readFile(join(upper, 'd/b'), 'utf8')).toBe('bravo')
    // The lower files keep theirs.
    expect((await lgetxattr(join(lowers[0]!, 'd/b'), 'user.lower'))?.toString()).toBe('below')
    expect(await lgetxattr(join(lowers[0]!, 'd/a'), 'user.k')).toBeUndefined()
  })

  it('opens, changes and reads the copy by its fd before it has a name; an fsync names it', async () => {
    const { union, upper } = await open()
    // A reader of the lower file, opened before any copy-up.
    const reader = await union.open('/d/a', constants.O_RDONLY)
    const fh = union.tryOpen('/d/a', constants.O_RDWR)
    expect(fh).toBeDefined()
    expect(existsSync(join(upper, 'd/a'))).toBe(false)
    expect(await union.write(fh!, Buffer.from('ALPHA!'), 6, 0)).toBe(6)
    // A second setattr goes to the copy too, and a truncate through the handle.
    expect(union.trySetattr('/d/a', { mode: 0o640, atime: 1_000_000_000_000_000_000n, mtime: null })).toBe(true)
    expect(union.trySetattr('/d/a', { size: 5 }, fh)).toBe(true)
    // xattrs are read through the fd (the kernel asks for security.capability before a write).
    expect(union.getxattrSync('/d/a', 'user.none')).toBeUndefined()
    expect(union.listxattrSync('/d/a')).toEqual([])
    expect(union.stats().deferredCopies).toBe(1)
    const shown = await union.getattr('/d/a')
    expect([shown.mode & 0o7777, shown.size, shown.atimeSec]).toEqual([0o640, 5, 1_000_000_000])
    // The lower file's reader was moved onto the copy: it sees the write.
    const buf = Buffer.alloc(16)
    expect(buf.subarray(0, await union.read(reader, buf, 16, 0)).toString()).toBe('ALPHA')
    union.fsyncSync(fh!, false)
    expect(union.stats().deferredCopies).toBe(0)
    expect(await readFile(join(upper, 'd/a'), 'utf8')).toBe('ALPHA')
    expect((await stat(join(upper, 'd/a'))).mode & 0o7777).toBe(0o640)
    await union.release(fh!)
    await union.release(reader)
  })

  it('gives each open of a copy without a name its own fd: shared, or reopened for O_APPEND and O_TRUNC', async () => {
    const { union, upper } = await open()
    expect(union.trySetattr('/d/b', { uid: 5 })).toBe(true)
    const plain = union.tryOpen('/d/b', constants.O_RDWR)!
    // An appender's writes land at the end whatever offset they name, as on its own description.
    const appender = union.tryOpen('/d/b', constants.O_WRONLY | constants.O_APPEND)!
    expect(await union.write(appender, Buffer.from('++'), 2, 0)).toBe(2)
    const buf = Buffer.alloc(16)
    expect(buf.subarray(0, await union.read(plain, buf, 16, 0)).toString()).toBe('bravo++')
    // Closing one open leaves the copy, and the others, open.
    await union.release(plain)
    expect(union.stats().deferredCopies).toBe(1)
    const reader = union.tryOpen('/d/b', constants.O_RDONLY)!
    expect(buf.subarray(0, await union.read(reader, buf, 16, 0)).toString()).toBe('bravo++')
    // O_TRUNC empties the copy at open.
    const truncating = union.tryOpen('/d/b', constants.O_WRONLY | constants.O_TRUNC)!
    expect((await union.getattr('/d/b')).size).toBe(0)
    await settled(union)
    expect(await readFile(join(upper, 'd/b'), 'utf8')).toBe('')
    // The opens outlive the copy's own fd, closed when it was named.
    expect(await union.write(truncating, Buffer.from('new'), 3, 0)).toBe(3)
    expect(buf.subarray(0, await union.read(reader, buf, 16, 0)).toString()).toBe('new')
    expect(await readFile(join(upper, 'd/b'), 'utf8')).toBe('new')
    for (const fh of [appender, reader, truncating]) await union.release(fh)
  })

  it.each([
    ['a hard link', 'd/a2', (u: Union) => { expect(u.tryLink('/d/a', '/d/a2')).toBe(true) }],
    ['a rename of it', 'd/moved', (u: Union) => { expect(u.tryRename('/d/a', '/d/moved')).toBe(true) }],
  ])('names the copy first for %s', async (_what, name, op) => {
    const { union, upper } = await open()
    expect(union.trySetattr('/d/a', { uid: 77 })).toBe(true)
    await op(union)
    expect(union.stats().deferredCopies).toBe(0)
    const named = join(upper, name)
    expect((await stat(named)).uid).toBe(77)
    expect(await readFile(named, 'utf8')).toBe('alpha')
  })

  it('answers links of small lower files before the flush, and links them on disk with their copies', async () => {
    const { union, upper } = await open()
    const before = await union.getattr('/d/a')
    for (const name of ['a', 'b', 'c']) expect(union.tryLink(`/d/${name}`, `/d/${name}.ln`)).toBe(true)
    expect(union.tryLink('/top', '/d/sub/top.ln')).toBe(true)
    // Answered with no name on disk: each name shows the copy, with the two links it will have.
    expect(union.stats().deferredCopies).toBe(4)
    expect(existsSync(join(upper, 'd/a.ln'))).toBe(false)
    for (const path of ['/d/a', '/d/a.ln']) {
      const st = await union.getattr(path)
      expect([st.nlink, st.ino, st.size]).toEqual([2, before.ino, 5])
    }
    // A change through one name shows through the other.
    expect(union.trySetattr('/d/b.ln', { mode: 0o600 })).toBe(true)
    expect((await union.getattr('/d/b')).mode & 0o7777).toBe(0o600)
    // A listing of the new name's directory writes its links first (the disk holds its names).
    expect(union.readdirPlusSync('/d/sub').map((e) => e.name).filter((n) => !n.startsWith('.')).sort()).toEqual(['e', 'top.ln'])
    expect((await stat(join(upper, 'd/sub/top.ln'))).nlink).toBe(2)
    await settled(union)
    for (const [name, text] of [['a', 'alpha'], ['b', 'bravo'], ['c', 'charlie']]) {
      expect(await readFile(join(upper, `d/${name}.ln`), 'utf8')).toBe(text)
      const [st, ln] = [await stat(join(upper, `d/${name}`)), await stat(join(upper, `d/${name}.ln`))]
      expect([st.nlink, st.ino]).toEqual([2, ln.ino])
    }
    expect((await stat(join(upper, 'd/b.ln'))).mode & 0o7777).toBe(0o600)
    expect((await union.getattr('/d/a.ln')).nlink).toBe(2)
    expect(union.stats().copyUps.lostCopies).toBe(0)
  })

  it('names the copy and its links first for an unlink or rename of either name', async () => {
    const { union, upper } = await open()
    expect(union.tryLink('/d/a', '/d/a.ln')).toBe(true)
    union.unlinkSync('/d/a')
    expect(union.stats().deferredCopies).toBe(0)
    // The lower file's name leaves a whiteout; the copy keeps the link's.
    expect([(await lstat(join(upper, 'd/a'))).isCharacterDevice(), (await stat(join(upper, 'd/a.ln'))).nlink]).toEqual([true, 1])
    expect(await readFile(join(upper, 'd/a.ln'), 'utf8')).toBe('alpha')
    expect(union.tryLink('/d/b', '/d/b.ln')).toBe(true)
    await union.rename('/d/b.ln', '/d/b.mv', 0)
    expect(union.stats().deferredCopies).toBe(0)
    expect((await stat(join(upper, 'd/b'))).ino).toBe((await stat(join(upper, 'd/b.mv'))).ino)
    expect(union.lookupSync('/d/b.ln')).toBeUndefined()
  })

  it('lets a link of a big lower file wait for its flush, which concurrent ones share', async () => {
    const { union, upper, lowers } = await open()
    for (const name of ['big1', 'big2', 'big3']) writeFileSync(join(lowers[0]!, 'd', name), Buffer.alloc(100_000, name.charCodeAt(3)))
    await Promise.all(['big1', 'big2', 'big3'].map((name) => union.link(`/d/${name}`, `/d/${name}.ln`)))
    expect(union.stats().deferredCopies).toBe(0)
    for (const name of ['big1', 'big2', 'big3']) {
      const [st, ln] = [await stat(join(upper, `d/${name}`)), await stat(join(upper, `d/${name}.ln`))]
      expect([st.nlink, st.ino, st.size]).toEqual([2, ln.ino, 100_000])
    }
    expect(union.stats().copyUps.lostCopies).toBe(0)
  })

  it('loses a link with its copy when the copy cannot be named', async () => {
    const { union, upper } = await open()
    const warned = new Promise<string>((resolve) => process.once('warning', (w) => resolve(w.message)))
    await union.link('/d/b', '/d/b2')
    expect(union.stats().deferredCopies).toBe(1)
    writeFileSync(join(upper, 'd/b'), 'intruder')
    await settled(union)
    expect(await warned).toMatch(/copy-up of \/d\/b was lost/)
    expect(union.lookupSync('/d/b2')).toBeUndefined()
    expect(existsSync(join(upper, 'd/b2'))).toBe(false)
    expect(union.stats().copyUps.lostCopies).toBe(1)
  })

  it('names the copy before an unlink, which then leaves a whiteout', async () => {
    const { union, upper } = await open()
    expect(union.trySetattr('/d/a', { uid: 77 })).toBe(true)
    union.unlinkSync('/d/a')
    expect(union.stats().deferredCopies).toBe(0)
    const st = await stat(join(upper, 'd/a'))
    expect(st.isCharacterDevice() && st.rdev === 0).toBe(true)
    expect(union.lookupSync('/d/a')).toBeUndefined()
  })

  it('names the copies below a directory before the directory is renamed or removed', async () => {
    const { union, upper } = await open()
    expect(union.trySetattr('/d/sub/e', { uid: 5 })).toBe(true)
    expect(union.trySetattr('/top', { uid: 6 })).toBe(true)
    // d exists in the lower layer: overlayfs without redirect_dir refuses to move it (EXDEV), but
    // only after the copies under it are named.
    expect(() => union.tryRename('/d', '/e')).toThrow(expect.objectContaining({ code: 'EXDEV' }))
    expect((await stat(join(upper, 'd/sub/e'))).uid).toBe(5)
    expect(union.stats().deferredCopies).toBe(1) // top is not under /d
    expect(() => union.rmdirSync('/d/sub')).toThrow(expect.objectContaining({ code: 'ENOTEMPTY' }))
    union.flush()
    expect((await stat(join(upper, 'top'))).uid).toBe(6)
  })

  it('keeps an unnamed copy for its name when the lookup cache evicts it', async () => {
    const many: Record<string, string> = { ...lowerTree }
    for (let i = 0; i < 100; i++) many[`many/f${i}`] = String(i)
    stack = await makeStack([many], {}, { flushBehind: true, cacheEntries: 16 })
    const { union } = stack
    expect(union.trySetattr('/d/a', { uid: 4321 })).toBe(true)
    for (let i = 0; i < 100; i++) expect(union.lookupSync(`/many/f${i}`)).toBeDefined()
    expect(union.stats().cache.size).toBeLessThanOrEqual(16)
    expect((await union.getattr('/d/a')).uid).toBe(4321)
    expect(union.readdirPlusSync('/d').find((e) => e.name === 'a')!.attr.uid).toBe(4321)
    await settled(union)
    expect((await union.getattr('/d/a')).uid).toBe(4321)
  })

  it('drops a copy it cannot name, and the lower file shows again', async () => {
    const { union, upper } = await open()
    expect(union.trySetattr('/d/b', { uid: 99 })).toBe(true)
    // Somebody writes the name in the upper layer behind the union's back: the link must fail.
    writeFileSync(join(upper, 'd/b'), 'intruder')
    const warned = new Promise<string>((resolve) => process.once('warning', (w) => resolve(w.message)))
    union.flush()
    expect(await warned).toMatch(/copy-up of \/d\/b was lost: EEXIST/)
    expect(union.stats().copyUps.lostCopies).toBe(1)
    expect(await readFile(join(upper, 'd/b'), 'utf8')).toBe('intruder')
    // The entry is looked up afresh: the union shows what the layers hold now.
    expect((await union.getattr('/d/b')).size).toBe('intruder'.length)
  })

  it('defers a big file copied on the thread pool, and a truncate of a lower file', async () => {
    const big = Buffer.alloc(100 * 1024, 7)
    stack = await makeStack([lowerTree], {}, { flushBehind: true })
    await writeFile(join(stack.lowers[0]!, 'big'), big)
    const { union, upper } = stack
    // Too big to copy on the calling thread: the pool copies it, and it waits for its flush too.
    expect(union.trySetattr('/big', { uid: 1 }, undefined, true)).toBe(false)
    await union.setattr('/big', { uid: 1 })
    expect((await union.getattr('/big')).uid).toBe(1)
    expect(union.trySetattr('/d/a', { size: 3, uid: 2 }, undefined, true)).toBe(true)
    expect((await union.getattr('/d/a')).size).toBe(3)
    await settled(union)
    expect((await stat(join(upper, 'big'))).uid).toBe(1)
    expect((await readFile(join(upper, 'big'))).equals(big)).toBe(true)
    expect(await readFile(join(upper, 'd/a'), 'utf8')).toBe('alp')
    expect((await stat(join(upper, 'd/a'))).uid).toBe(2)
  })

  it('copies up at once with volatile, or by default', async () => {
    stack = await makeStack([lowerTree], {}, { flushBehind: true })
    const { upper } = stack
    for (const options of [{ fsync: false }, { flushBehind: false }]) {
      const other = await stack.reopen(options)
      expect(other.trySetattr('/d/c', { uid: 3 }, undefined, true)).toBe(true)
      expect((await stat(join(upper, 'd/c'))).uid).toBe(3)
      expect(other.stats().deferredCopies).toBe(0)
      await rm(join(upper, 'd/c'))
    }
  })
})

describe('flushBehind: renames of lower files answered before their copy is flushed', () => {
  async function open(upperSpec: Parameters<typeof makeStack>[1] = {}): Promise<Stack> {
    stack = await makeStack([lowerTree], upperSpec, { flushBehind: true })
    for (const dir of ['d', 'd/sub']) await utimes(join(stack.lowers[0]!, dir), OLD, OLD)
    return stack
  }

  it('renames at once, and writes the rename with its whiteout once the copy is flushed', async () => {
    const { union, upper } = await open()
    const before = await union.getattr('/d/a')
    expect((await union.getattr('/d')).mtimeSec).toBe(OLD.getTime() / 1000)
    expect(union.tryRename('/d/a', '/d/sub/moved')).toBe(true)
    // Answered: nothing on disk yet, and the union shows the rename.
    expect(union.stats().deferredCopies).toBe(1)
    expect(existsSync(join(upper, 'd/sub/moved'))).toBe(false)
    expect(existsSync(join(upper, 'd/a'))).toBe(false)
    expect(union.lookupSync('/d/a')).toBeUndefined()
    const moved = await union.getattr('/d/sub/moved')
    expect([moved.ino, moved.size, moved.nlink, moved.mtimeSec]).toEqual([before.ino, 5, 1, OLD.getTime() / 1000])
    const fh = await union.open('/d/sub/moved', constants.O_RDONLY)
    const buf = Buffer.alloc(16)
    expect(buf.subarray(0, await union.read(fh, buf, 16, 0)).toString()).toBe('alpha')
    await union.release(fh)
    // Both directories changed now, as with a rename written at once, and keep those times.
    const dirs = [await union.getattr('/d'), await union.getattr('/d/sub')]
    for (const dir of dirs) expect(dir.mtimeSec).toBeGreaterThan(OLD.getTime() / 1000)

    await settled(union)
    expect(await readFile(join(upper, 'd/sub/moved'), 'utf8')).toBe('alpha')
    const whiteout = await stat(join(upper, 'd/a'))
    expect(whiteout.isCharacterDevice() && whiteout.rdev === 0).toBe(true)
    expect((await lgetxattr(join(upper, 'd/sub/moved'), 'trusted.layerfs.origin')) !== undefined).toBe(true)
    expect(union.lookupSync('/d/a')).toBeUndefined()
    expect((await union.getattr('/d/sub/moved')).ino).toBe(before.ino)
    const after = [await union.getattr('/d'), await union.getattr('/d/sub')]
    expect(after.map((dir) => [dir.mtimeSec, dir.mtimeNsec])).toEqual(dirs.map((dir) => [dir.mtimeSec, dir.mtimeNsec]))
    expect(union.stats().copyUps.lostCopies).toBe(0)
  })

  it('writes a batch of renames between two directories, which keep the times the renames gave them', async () => {
    const { union, upper } = await open()
    for (const name of ['a', 'b', 'c']) expect(union.tryRename(`/d/${name}`, `/d/sub/${name}2`)).toBe(true)
    expect(union.stats().deferredCopies).toBe(3)
    const answered = [await union.getattr('/d'), await union.getattr('/d/sub')].map((dir) => [dir.mtimeSec, dir.mtimeNsec])
    await settled(union)
    for (const name of ['a', 'b', 'c']) {
      expect(existsSync(join(upper, 'd/sub', `${name}2`))).toBe(true)
      expect((await stat(join(upper, 'd', name))).isCharacterDevice()).toBe(true)
    }
    const written = [await union.getattr('/d'), await union.getattr('/d/sub')].map((dir) => [dir.mtimeSec, dir.mtimeNsec])
    expect(written).toEqual(answered)
    expect(union.stats().copyUps.lostCopies).toBe(0)
  })

  it('writes a batch of links into another directory, which keeps the times the links gave it', async () => {
    const { union, upper } = await open()
    for (const name of ['a', 'b', 'c']) expect(union.tryLink(`/d/${name}`, `/d/sub/${name}.ln`)).toBe(true)
    const answered = [await union.getattr('/d'), await union.getattr('/d/sub')].map((dir) => [dir.mtimeSec, dir.mtimeNsec])
    await settled(union)
    for (const name of ['a', 'b', 'c']) {
      const [st, ln] = [await stat(join(upper, 'd', name)), await stat(join(upper, 'd/sub', `${name}.ln`))]
      expect([st.nlink, st.ino]).toEqual([2, ln.ino])
    }
    const written = [await union.getattr('/d'), await union.getattr('/d/sub')].map((dir) => [dir.mtimeSec, dir.mtimeNsec])
    expect(written).toEqual(answered)
    expect(union.stats().copyUps.lostCopies).toBe(0)
  })

  it('writes the rename first for whatever needs either name on disk', async () => {
    const { union, upper } = await open()
    // A create at the old name.
    expect(union.tryRename('/d/a', '/d/a2')).toBe(true)
    await union.release(await union.create('/d/a', 0o644))
    expect(await readFile(join(upper, 'd/a2'), 'utf8')).toBe('alpha')
    expect((await stat(join(upper, 'd/a'))).isFile()).toBe(true)
    // A listing of either directory.
    expect(union.tryRename('/d/b', '/d/sub/b2')).toBe(true)
    expect(union.readdirPlusSync('/d').map((e) => e.name)).toEqual(['.', '..', 'a', 'a2', 'c', 'sub'])
    expect(union.stats().deferredCopies).toBe(0)
    expect(await union.readdir('/d/sub')).toEqual(['b2', 'e'])
    // A rename of the new name.
    expect(union.tryRename('/d/c', '/d/c2')).toBe(true)
    expect(union.tryRename('/d/c2', '/d/c3')).toBe(true)
    expect(await readFile(join(upper, 'd/c3'), 'utf8')).toBe('charlie')
    expect(existsSync(join(upper, 'd/c2'))).toBe(false)
    // An unlink of the new name: the old one stays whited out.
    expect(union.tryRename('/d/sub/e', '/d/sub/e2')).toBe(true)
    union.unlinkSync('/d/sub/e2')
    expect(existsSync(join(upper, 'd/sub/e2'))).toBe(false)
    expect((await stat(join(upper, 'd/sub/e'))).isCharacterDevice()).toBe(true)
    // A directory above the old name, removed.
    expect(union.tryRename('/top', '/top2')).toBe(true)
    expect(union.stats().deferredCopies).toBe(1)
    union.unlinkSync('/top2')
    expect(await union.readdir('/')).toEqual(['d'])
    expect(union.stats().deferredCopies).toBe(0)
    expect(union.stats().copyUps.lostCopies).toBe(0)
  })

  it('replaces an upper file when written, and refuses what a rename refuses before copying', async () => {
    const { union, upper } = await open({ 'd/': '', 'd/new': 'older upper file' })
    expect(() => union.tryRename('/d/b', '/d/new', RENAME_NOREPLACE)).toThrow(expect.objectContaining({ code: 'EEXIST' }))
    expect(() => union.tryRename('/d/b', '/d/sub')).toThrow(expect.objectContaining({ code: 'EISDIR' }))
    expect(union.stats().copyUps.copyUps).toBe(0)
    expect(union.tryRename('/d/a', '/d/new')).toBe(true)
    expect((await union.getattr('/d/new')).size).toBe(5)
    expect(union.stats().deferredCopies).toBe(1)
    await settled(union)
    expect(await readFile(join(upper, 'd/new'), 'utf8')).toBe('alpha')
    expect(existsSync(join(upper, 'd/b'))).toBe(false)
  })

  it('loses a rename it cannot write: the lower file shows at its old name again', async () => {
    const { union, upper } = await open()
    expect(union.tryRename('/d/b', '/d/b2')).toBe(true)
    // Somebody writes the old name in the upper layer behind the union's back: the link must fail.
    writeFileSync(join(upper, 'd/b'), 'intruder')
    const warned = new Promise<string>((resolve) => process.once('warning', (w) => resolve(w.message)))
    union.flush()
    expect(await warned).toMatch(/copy-up of \/d\/b2 was lost: EEXIST/)
    expect(union.lookupSync('/d/b2')).toBeUndefined()
    expect((await union.getattr('/d/b')).size).toBe('intruder'.length)
    expect(existsSync(join(upper, 'd/b2'))).toBe(false)
  })

  it('renames the usual way without flush behind, or when the copy cannot wait', async () => {
    const big = Buffer.alloc(100 * 1024, 7)
    stack = await makeStack([lowerTree], {}, { flushBehind: false })
    await writeFile(join(stack.lowers[0]!, 'big'), big)
    const { union, upper } = stack
    await union.rename('/d/a', '/d/a2')
    expect(union.stats().deferredCopies).toBe(0)
    expect(await readFile(join(upper, 'd/a2'), 'utf8')).toBe('alpha')
    const behind = await stack.reopen({ flushBehind: true })
    // Too big to copy on the calling thread: the pool copies it, and the rename waits for its name.
    expect(behind.tryRename('/big', '/big2')).toBe(false)
    await behind.rename('/big', '/big2')
    expect(behind.stats().deferredCopies).toBe(0)
    expect((await readFile(join(upper, 'big2'))).equals(big)).toBe(true)
  })
})

describe('flushBehind with redirect_dir: a directory tree moved', () => {
  it('copies the tree a batch to a flush, and writes what came into it meanwhile before it moves', async () => {
    stack = await makeStack([lowerTree], {}, { flushBehind: true, redirectDir: true })
    const { union, upper } = stack
    // The move waits for its copies' flush; a lower file renamed into the tree meanwhile is a
    // rename written after its own copy's flush (Core.deferMove), at a name under the old path.
    const moving = union.rename('/d', '/e')
    expect(union.tryRename('/top', '/d/top', 0)).toBe(true)
    expect(union.stats().deferredCopies).toBeGreaterThan(0)
    await moving
    expect((await union.readdir('/')).sort()).toEqual(['e'])
    expect((await union.readdir('/e')).sort()).toEqual(['a', 'b', 'c', 'sub', 'top'])
    expect(await readFile(join(upper, 'e/top'), 'utf8')).toBe('top file')
    expect(await readFile(join(upper, 'e/sub/e'), 'utf8')).toBe('echo')
    expect(existsSync(join(upper, 'd/top'))).toBe(false)
    await settled(union)
    expect((await union.readdir('/e')).sort()).toEqual(['a', 'b', 'c', 'sub', 'top'])
  })
})
