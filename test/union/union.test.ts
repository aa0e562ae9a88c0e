import { execFileSync } from 'node:child_process'
import { closeSync, constants, fsyncSync, openSync, readdirSync, readlinkSync } from 'node:fs'
import { lstat, mkdir, readFile, readdir, rm, symlink, writeFile, truncate as truncatePath, open as openFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { RENAME_EXCHANGE, lgetxattr, lsetxattr } from '../../src/sys/native.js'
import { Union } from '../../src/union/union.js'
import { type LayerSpec, OLD, type Stack, makeStack } from './fixture.js'

const stacks: Stack[] = []
async function stack(...args: Parameters<typeof makeStack>): Promise<Stack> {
  const s = await makeStack(...args)
  stacks.push(s)
  return s
}
afterEach(async () => {
  while (stacks.length) await stacks.pop()!.cleanup()
})

async function readAll(union: Union, path: string): Promise<string> {
  const fh = await union.open(path, constants.O_RDONLY)
  const buf = Buffer.alloc(1 << 16)
  const n = await union.read(fh, buf, buf.length, 0)
  await union.release(fh)
  return buf.subarray(0, n).toString()
}

async function writeAt(union: Union, path: string, text: string, position: number, flags = constants.O_WRONLY): Promise<void> {
  const fh = await union.open(path, flags)
  await union.write(fh, Buffer.from(text), Buffer.byteLength(text), position)
  await union.release(fh)
}

/** A reader of /f opened before another opener writes 'new!' reads the new bytes (it was moved onto
 *  the copy the write made). */
async function expectReaderSeesLaterWrite(union: Union): Promise<void> {
  const reader = await union.open('/f', constants.O_RDONLY)
  await writeAt(union, '/f', 'new!', 0)
  const buf = Buffer.alloc(4)
  await union.read(reader, buf, 4, 0)
  await union.release(reader)
  expect(buf.toString()).toBe('new!')
}

// chattr's ioctls (linux/fs.h, 64-bit encodings) and the immutable flag.
const FS_IOC_GETFLAGS = 0x80086601
const FS_IOC_SETFLAGS = 0x40086602
const FS_IMMUTABLE_FL = 0x10

function flagsBuffer(flags: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32LE(flags)
  return b
}

/** Make `path` immutable through the union (chattr +i: copied up, the flag set on the copy). Returns
 *  what undoes it, or undefined, with the reason printed, where the flag cannot be set (no
 *  CAP_LINUX_IMMUTABLE, a filesystem without flags). */
async function makeImmutable(union: Union, path: string): Promise<(() => Promise<void>) | undefined> {
  const flags = union.readFileAttrIoctl(path, FS_IOC_GETFLAGS, 4).readUInt32LE(0)
  try {
    await union.writeFileAttrIoctl(path, FS_IOC_SETFLAGS, flagsBuffer(flags | FS_IMMUTABLE_FL))
  } catch (err) {
    console.log(`skipping an immutable-file test: ${(err as Error).message}`)
    return undefined
  }
  const undo = (): Promise<void> => union.writeFileAttrIoctl(path, FS_IOC_SETFLAGS, flagsBuffer(flags))
  if ((union.readFileAttrIoctl(path, FS_IOC_GETFLAGS, 4).readUInt32LE(0) & FS_IMMUTABLE_FL) === 0) {
    console.log('skipping an immutable-file test: the flag did not stick')
    await undo()
    return undefined
  }
  return undo
}

async function isCharWhiteout(path: string): Promise<boolean> {
  const st = await lstat(path)
  return st.isCharacterDevice() && st.rdev === 0
}

/** What the work directory's scratch area holds besides the one whiteout the union links its
 *  whiteouts to (a second would be a leftover too): temporary copies left behind show here. */
async function leftovers(work: string): Promise<string[]> {
  const names = await readdir(join(work, 'work'))
  const whiteouts: string[] = []
  const rest: string[] = []
  for (const name of names) ((await isCharWhiteout(join(work, 'work', name))) ? whiteouts : rest).push(name)
  return whiteouts.length > 1 ? names : rest
}

describe('lookup', () => {
  it('shows the topmost entry of a name', async () => {
    const { union } = await stack([{ f: 'top' }, { f: 'bottom', g: 'only-bottom' }])
    expect(await readAll(union, '/f')).toBe('top')
    expect(await readAll(union, '/g')).toBe('only-bottom')
  })

  it('answers a lookup with the attributes of the object it found, in whichever layer', async () => {
    const { union, upper, lowers } = await stack([{ 'a/': '', 'a/f': 'lower one', 'b/': '', 'b/g': 'l1' }, { 'b/g': 'hidden', 'b/h': 'bottom layer', s: '->a/f' }], { 'a/': '', 'a/u': 'upper file' })
    for (const [path, host] of [['/a/u', join(upper, 'a/u')], ['/a/f', join(lowers[0]!, 'a/f')], ['/b/g', join(lowers[0]!, 'b/g')], ['/b/h', join(lowers[1]!, 'b/h')], ['/s', join(lowers[1]!, 's')]] as const) {
      // The first lookup of each name (its parent looked up first, for /b/...) against lstat.
      const attr = union.lookupSync(path)!
      const st = await lstat(host)
      expect([attr.mode, attr.size, attr.mtimeSec, attr.nlink]).toEqual([st.mode, st.size, Math.floor(st.mtimeMs / 1000), st.nlink])
      expect(union.lookupSync(path)).toEqual(attr)
      expect(await union.getattr(path)).toEqual(attr)
    }
    expect(union.lookupSync('/b/nothing')).toBeUndefined()
  })

  it('lets a file in an upper layer hide a directory below', async () => {
    const { union } = await stack([{ d: 'file now' }, { 'd/': '', 'd/x': 'x' }])
    expect((await union.getattr('/d')).mode & constants.S_IFMT).toBe(constants.S_IFREG)
    await expect(union.getattr('/d/x')).rejects.toMatchObject({ code: 'ENOTDIR' })
  })

  it('merges directories down to the first opaque one', async () => {
    const { union } = await stack([{ 'd/a': 'a' }, { 'd/': 'OPAQUE', 'd/b': 'b' }, { 'd/c': 'hidden' }])
    expect(await union.readdir('/d')).toEqual(['a', 'b'])
    await expect(union.getattr('/d/c')).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('merges directories down to the first opaque one when their parent was listed first', async () => {
    // A listing primes its entries' lookups from the layers' listings (Resolver.prime): the walk
    // that reads the subdirectories' opacity then runs on names the listings give.
    const { union } = await stack([
      { 'd/a': 'a', 'm/.wh..wh..opq': '', 'm/new': 'n', 'solo/.wh..wh..opq': '', 'solo/s': 's' },
      { 'd/': 'OPAQUE', 'd/b': 'b', 'm/old': 'o' },
      { 'd/c': 'hidden', 'm/older': 'o2', 'u/under': 'hidden' },
    ], { 'u/': 'OPAQUE', 'u/x': 'x' })
    // readdirPlus primes; readdir alone does not.
    expect((await union.readdirPlus('/')).map((e) => e.name)).toEqual(['.', '..', 'd', 'm', 'solo', 'u'])
    expect(await union.readdir('/d')).toEqual(['a', 'b'])
    await expect(union.getattr('/d/c')).rejects.toMatchObject({ code: 'ENOENT' })
    expect(await union.readdir('/m')).toEqual(['new'])
    await expect(union.getattr('/m/old')).rejects.toMatchObject({ code: 'ENOENT' })
    expect(await union.readdir('/solo')).toEqual(['s'])
    expect(await union.readdir('/u')).toEqual(['x'])
    await expect(union.getattr('/u/under')).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('reads every whiteout encoding: char 0/0, .wh.NAME and .wh..wh..opq', async () => {
    const { union } = await stack([
      { gone1: 'WHITEOUT', '.wh.gone2': '', 'o/.wh..wh..opq': '', 'o/new': 'n' },
      { gone1: '1', gone2: '2', 'o/old': 'o', kept: 'k' },
    ])
    expect(await union.readdir('/')).toEqual(['kept', 'o'])
    expect(await union.readdir('/o')).toEqual(['new'])
    await expect(union.getattr('/gone2')).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('never lists or resolves marker names', async () => {
    const { union } = await stack([{ '.wh.x': '' }, { x: '1' }])
    await expect(union.getattr('/.wh.x')).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('reports nlink 1 for a merged directory and the real count otherwise', async () => {
    const { union } = await stack([{ 'm/a': '' }, { 'm/b': '', 'solo/sub/': '' }])
    expect((await union.getattr('/m')).nlink).toBe(1)
    expect((await union.getattr('/solo')).nlink).toBe(3)
  })

  it('refuses a 256-byte name with ENAMETOOLONG', async () => {
    const { union } = await stack([{ f: '' }])
    await expect(union.getattr('/' + 'n'.repeat(256))).rejects.toMatchObject({ code: 'ENAMETOOLONG' })
    await expect(union.mkdir('/' + 'n'.repeat(256), 0o755)).rejects.toMatchObject({ code: 'ENAMETOOLONG' })
  })

  it('renames to and from 255-byte names, whose .wh. markers could not exist', async () => {
    const long = 'l'.repeat(255)
    const { union } = await stack([{ f: 'data', [long]: 'long' }])
    await union.rename('/f', '/' + long.slice(0, 254) + 'x')
    await union.rename('/' + long, '/g')
    expect((await union.readdir('/')).sort()).toEqual(['g', long.slice(0, 254) + 'x'])
    expect((await union.getattr('/g')).size).toBe(4)
  })
})

describe('copy-up', () => {
  it('copies data, mode, owner, times and xattrs when a lower file is opened for writing', async () => {
    const s = await stack([{ 'd/f': 'hello' }])
    const lower = join(s.lowers[0]!, 'd/f')
    await lsetxattr(lower, 'user.tag', 'v1')
    const { chmod, chown } = await import('node:fs/promises')
    await chmod(lower, 0o640)
    await chown(lower, 1234, 5678)
    const { utimes } = await import('node:fs/promises')
    await utimes(lower, OLD, OLD)
    const fh = await s.union.open('/d/f', constants.O_RDONLY)
    await s.union.release(fh)
    await expect(lstat(join(s.upper, 'd/f'))).rejects.toMatchObject({ code: 'ENOENT' })
    await writeAt(s.union, '/d/f', 'J', 0)
    const st = await lstat(join(s.upper, 'd/f'))
    expect(await readFile(join(s.upper, 'd/f'), 'utf8')).toBe('Jello')
    expect(await readFile(lower, 'utf8')).toBe('hello')
    expect(st.mode & 0o7777).toBe(0o640)
    expect([st.uid, st.gid]).toEqual([1234, 5678])
    expect((await lgetxattr(join(s.upper, 'd/f'), 'user.tag'))?.toString()).toBe('v1')
    // The parent came up with its own attributes.
    const lowerDir = await lstat(join(s.lowers[0]!, 'd'))
    expect((await lstat(join(s.upper, 'd'))).mtimeMs).toBe(lowerDir.mtimeMs)
  })

  it('keeps the inode number across copy-up and across a reopen of the stack', async () => {
    const s = await stack([{ f: 'x' }])
    const before = (await s.union.getattr('/f')).ino
    await s.union.chmod('/f', 0o600)
    expect((await s.union.getattr('/f')).ino).toBe(before)
    const again = await s.reopen()
    expect((await again.getattr('/f')).ino).toBe(before)
  })

  it('copies no data for O_TRUNC', async () => {
    const s = await stack([{ f: 'x'.repeat(10000) }])
    const fh = await s.union.open('/f', constants.O_WRONLY | constants.O_TRUNC)
    await s.union.release(fh)
    expect((await lstat(join(s.upper, 'f'))).size).toBe(0)
    expect(s.union.stats().copyUps.copyUpBytes).toBe(0)
  })

  it('keeps holes in a sparse file', async () => {
    const s = await stack([{ f: '' }])
    const lower = join(s.lowers[0]!, 'f')
    const h = await openFile(lower, 'r+')
    await h.write('head', 0)
    await h.write('tail', 8 << 20)
    await h.close()
    await s.union.chmod('/f', 0o600)
    const copy = await lstat(join(s.upper, 'f'))
    expect(copy.size).toBe((8 << 20) + 4)
    expect(copy.blocks * 512).toBeLessThan(1 << 20)
    const fh = await s.union.open('/f', constants.O_RDONLY)
    const buf = Buffer.alloc(4)
    await s.union.read(fh, buf, 4, 8 << 20)
    await s.union.release(fh)
    expect(buf.toString()).toBe('tail')
  })

  it('runs one copy-up for concurrent writers of the same file', async () => {
    // Big enough for the thread pool: small files are copied at once, with nothing to share.
    const s = await stack([{ f: 'x'.repeat(100_000) }])
    const handles = await Promise.all([1, 2, 3, 4].map(() => s.union.open('/f', constants.O_RDWR)))
    for (const fh of handles) await s.union.release(fh)
    expect(s.union.stats().copyUps.copyUps).toBe(1)
  })

  it('copies a big file up once for an open whose tryOpen came first, as the FUSE bridge opens, beside plain opens', async () => {
    const s = await stack([{ f: 'x'.repeat(100_000), g: 'y'.repeat(100_000) }])
    // The bridge's way: tryOpen finds the copy must wait, then open(…, tried) waits for it.
    expect(s.union.tryOpen('/f', constants.O_RDWR)).toBeUndefined()
    const tried = s.union.open('/f', constants.O_RDWR, true)
    const plain = s.union.open('/f', constants.O_RDWR)
    const handles = await Promise.all([tried, plain])
    await s.union.write(handles[0]!, Buffer.from('new'), 3, 0)
    for (const fh of handles) await s.union.release(fh)
    expect(s.union.stats().copyUps.copyUps).toBe(1)
    expect((await readAll(s.union, '/f')).slice(0, 5)).toBe('newxx')
    // And alone, with nothing in flight.
    expect(s.union.tryOpen('/g', constants.O_WRONLY)).toBeUndefined()
    const fh = await s.union.open('/g', constants.O_WRONLY, true)
    await s.union.release(fh)
    expect(s.union.stats().copyUps.copyUps).toBe(2)
    expect((await s.union.getattr('/g')).size).toBe(100_000)
    expect(await readAll(s.union, '/g')).toBe('y'.repeat(65_536)) // (readAll reads 64 KiB)
  })

  for (const fsync of [true, false]) {
    // fsync'd copies are made unnamed (O_TMPFILE) and named when complete; unsynced ones by name.
    // A small file is copied on the calling thread, a big one on the thread pool.
    it(`copies data, owner, mode, xattrs and times (${fsync ? 'fsync' : 'volatile'}), leaving no temp file`, async () => {
      const s = await stack([{}], {}, { fsync })
      const { chown, chmod, utimes } = await import('node:fs/promises')
      const contents: Record<string, string> = { small: 'small data', big: 'x'.repeat(70_000) + 'end' }
      for (const [name, text] of Object.entries(contents)) {
        const lowerFile = join(s.lowers[0]!, name)
        await writeFile(lowerFile, text)
        await chown(lowerFile, 1234, 5678)
        await chmod(lowerFile, 0o4751)
        await lsetxattr(lowerFile, 'user.tag', name)
        await utimes(lowerFile, OLD, OLD)
      }
      const union = await s.reopen()
      for (const [name, text] of Object.entries(contents)) {
        // A change of metadata only, so that everything else must have come across unchanged.
        await union.setxattr(`/${name}`, 'user.more', Buffer.from('1'))
        const upperFile = join(s.upper, name)
        const st = await lstat(upperFile)
        expect([st.uid, st.gid, st.mode & 0o7777, st.mtimeMs]).toEqual([1234, 5678, 0o4751, OLD.getTime()])
        expect((await lgetxattr(upperFile, 'user.tag'))?.toString()).toBe(name)
        expect(await readFile(upperFile, 'utf8')).toBe(text)
      }
      expect(union.stats().copyUps.copyUps).toBe(2)
      expect(await readdir(join(s.work, 'work'))).toEqual([])
    })
  }

  it('leaves whiteouts where the name was free and over upper copies, no copy in the work dir', async () => {
    const s = await stack([{ a: 'lower a', b: 'lower b' }])
    await s.union.chmod('/b', 0o600) // b gets an upper copy, which its whiteout must replace
    await s.union.unlink('/a')
    await s.union.unlink('/b')
    for (const name of ['a', 'b']) {
      const st = await lstat(join(s.upper, name))
      expect(st.isCharacterDevice() && st.rdev === 0).toBe(true)
    }
    expect(await s.union.readdir('/')).toEqual([])
    expect(await leftovers(s.work)).toEqual([])
  })

  it('drops a data copy-up whose name was removed while it copied', async () => {
    const s = await stack([{ f: 'x'.repeat(100_000) }])
    const opening = s.union.open('/f', constants.O_RDWR)
    // The unlink is one synchronous step: it lands while the copy is still on the thread pool.
    s.union.unlinkSync('/f')
    await expect(opening).rejects.toMatchObject({ code: 'ENOENT' })
    const st = await lstat(join(s.upper, 'f'))
    expect(st.isCharacterDevice() && st.rdev === 0).toBe(true)
    await expect(s.union.getattr('/f')).rejects.toMatchObject({ code: 'ENOENT' })
    expect(await leftovers(s.work)).toEqual([])
  })

  it('keeps a name created while a copy of the same name was in flight', async () => {
    const s = await stack([{ f: 'x'.repeat(100_000) }])
    const opening = s.union.open('/f', constants.O_WRONLY)
    s.union.unlinkSync('/f')
    s.union.releaseSync(s.union.createSync('/f', 0o644))
    await expect(opening).resolves.toBeTypeOf('number')
    // The opener got the new file, which the stale copy did not replace.
    expect((await lstat(join(s.upper, 'f'))).size).toBe(0)
    expect(await leftovers(s.work)).toEqual([])
  })

  it('copies a small fsync\'d file at once only for a request that is alone, unnamed until complete', async () => {
    const s = await stack([{ 'd/f': 'small', 'd/g': 'small', big: 'x'.repeat(100_000) }])
    expect(s.union.trySetattr('/d/f', { mode: 0o600 })).toBe(false)
    expect(s.union.trySetattr('/d/f', { mode: 0o600 }, undefined, true)).toBe(true)
    expect(s.union.tryRename('/d/g', '/d/h', 0, true)).toBe(true)
    expect(s.union.trySetattr('/big', { mode: 0o600 }, undefined, true)).toBe(false)
    expect(await readAll(s.union, '/d/f')).toBe('small')
    expect(((await lstat(join(s.upper, 'd/f'))).mode & 0o777)).toBe(0o600)
    expect(await readAll(s.union, '/d/h')).toBe('small')
    // Made unnamed and linked straight to their names: no temporary name is left behind.
    expect(await readdir(join(s.work, 'work'))).toEqual([])
    expect((await readdir(join(s.upper, 'd'))).sort()).toEqual(['f', 'g', 'h'])
  })

  it('says when a change must wait for a data copy-up, and changes nothing then', async () => {
    const big = 'x'.repeat(100_000)
    const s = await stack([{ 'd/f': big, 'd/g': big, small: 'small' }])
    expect(s.union.trySetattr('/d/f', { mode: 0o600 })).toBe(false)
    expect(s.union.tryRename('/d/g', '/d/h')).toBe(false)
    expect(s.union.tryLink('/d/f', '/d/l')).toBe(false)
    expect(await readdir(s.upper)).toEqual([])
    // A rename of a directory, an O_TRUNC open and a create need no data: done at once.
    s.union.mkdirSync('/n', 0o755)
    expect(s.union.tryRename('/n', '/m')).toBe(true)
    const fh = s.union.tryOpen('/d/f', constants.O_WRONLY | constants.O_TRUNC)
    expect(fh).toBeTypeOf('number')
    s.union.releaseSync(fh!)
    expect(await readdir(s.upper)).toEqual(['d', 'm'])
    expect((await lstat(join(s.upper, 'd/f'))).size).toBe(0)
    // A small file waits too while copies are fsync'd (the flush belongs on the thread pool)...
    expect(s.union.trySetattr('/small', { mode: 0o600 })).toBe(false)
    // ...and is copied with its data at once when they are not.
    const volatile = await s.reopen({ fsync: false })
    expect(volatile.trySetattr('/small', { mode: 0o600 })).toBe(true)
    expect(await readFile(join(s.upper, 'small'), 'utf8')).toBe('small')
    expect(volatile.stats().copyUps.copyUpBytes).toBe(5)
  })

  it('moves a lower reader onto the copy once another opener writes', async () => {
    const s = await stack([{ f: 'old!' }])
    await expectReaderSeesLaterWrite(s.union)
  })

  it('opens a lower reader\'s fd at its first read, and reads it after the name is gone', async () => {
    const s = await stack([{ f: 'lower data', g: 'other' }])
    /** This process's fds on the lower layer's files. */
    const fds = (): number => readdirSync('/proc/self/fd').filter((n) => {
      try {
        return readlinkSync(`/proc/self/fd/${n}`).startsWith(s.lowers[0]!)
      } catch {
        return false // closed meanwhile (the listing's own fd)
      }
    }).length
    const before = fds()
    const readers = await Promise.all(Array.from({ length: 20 }, () => s.union.open('/f', constants.O_RDONLY)))
    expect(fds()).toBe(before) // a reader served from the kernel's page cache never needs one
    await s.union.unlink('/f')
    const buf = Buffer.alloc(64)
    expect(buf.subarray(0, await s.union.read(readers[0]!, buf, 64, 0)).toString()).toBe('lower data')
    expect(fds()).toBe(before + 1)
    for (const fh of readers) await s.union.release(fh)
    expect(fds()).toBe(before)
  })

  it('gives a copied-up link of a lower hard-link pair its own inode number', async () => {
    const s = await stack([{ a: 'shared' }])
    const { link } = await import('node:fs/promises')
    await link(join(s.lowers[0]!, 'a'), join(s.lowers[0]!, 'b'))
    const union = await s.reopen()
    expect((await union.getattr('/a')).ino).toBe((await union.getattr('/b')).ino)
    await writeAt(union, '/a', 'S', 0)
    expect((await union.getattr('/a')).ino).not.toBe((await union.getattr('/b')).ino)
    expect(await readAll(union, '/b')).toBe('shared')
  })
})

describe('whiteouts and opaque directories', () => {
  it('leaves a char 0/0 whiteout when a lower file is unlinked', async () => {
    const s = await stack([{ f: 'x', g: 'y' }])
    await s.union.unlink('/f')
    expect(await isCharWhiteout(join(s.upper, 'f'))).toBe(true)
    expect(await s.union.readdir('/')).toEqual(['g'])
  })

  it('makes the whiteouts of unlinks links of one inode, as overlayfs does, and removes it at close', async () => {
    const s = await stack([{ a: '1', b: '2', c: '3', d: '4' }])
    await s.union.chmod('/b', 0o600) // b gets an upper copy, which its whiteout replaces
    await s.union.unlink('/a')
    await s.union.unlink('/b')
    const [a, b] = [await lstat(join(s.upper, 'a')), await lstat(join(s.upper, 'b'))]
    expect(await isCharWhiteout(join(s.upper, 'b'))).toBe(true)
    expect(b.ino).toBe(a.ino)
    expect(b.nlink).toBe(3) // with the one in the work directory
    expect(await leftovers(s.work)).toEqual([])
    // Gone from the work directory (cleaned up by hand): the next whiteout makes another.
    for (const name of await readdir(join(s.work, 'work'))) await rm(join(s.work, 'work', name))
    await s.union.unlink('/c')
    await s.union.unlink('/d')
    const [c, d] = [await lstat(join(s.upper, 'c')), await lstat(join(s.upper, 'd'))]
    expect(await isCharWhiteout(join(s.upper, 'd'))).toBe(true)
    expect(c.ino).not.toBe(a.ino)
    expect(d.ino).toBe(c.ino)
    expect(await s.union.readdir('/')).toEqual([])
    await s.union.close()
    expect(await readdir(join(s.work, 'work'))).toEqual([])
    expect((await lstat(join(s.upper, 'd'))).nlink).toBe(2)
  })

  it('removes an upper-only file without a whiteout', async () => {
    const s = await stack([{ g: 'y' }])
    const fh = await s.union.create('/new', 0o644)
    await s.union.release(fh)
    await s.union.unlink('/new')
    expect(await readdir(s.upper)).toEqual([])
  })

  it('replaces a copied-up file by a whiteout on unlink', async () => {
    const s = await stack([{ f: 'x' }])
    await s.union.chmod('/f', 0o600)
    await s.union.unlink('/f')
    expect(await isCharWhiteout(join(s.upper, 'f'))).toBe(true)
  })

  it('refuses to replace an immutable upper file by a whiteout, and goes on making char 0/0 ones', async (ctx) => {
    const s = await stack([{ f: 'x', g: 'y' }])
    const undo = await makeImmutable(s.union, '/f')
    if (!undo) return ctx.skip()
    try {
      await expect(s.union.unlink('/f')).rejects.toMatchObject({ code: 'EPERM' })
      // Nothing half-done: no `.wh.f`, the file still shows.
      expect((await readdir(s.upper)).sort()).toEqual(['f'])
      expect(await readAll(s.union, '/f')).toBe('x')
      // The refusal was the file's, not the filesystem's: whiteouts are still device nodes.
      await s.union.unlink('/g')
      expect(await isCharWhiteout(join(s.upper, 'g'))).toBe(true)
    } finally {
      await undo()
    }
    await s.union.unlink('/f')
    expect(await isCharWhiteout(join(s.upper, 'f'))).toBe(true)
  })

  it('refuses to move an immutable directory into a merged one, and goes on marking opaque directories by xattr', async (ctx) => {
    const s = await stack([{ 'm/a': 'a', 'd/x': 'x' }])
    await s.union.mkdir('/n', 0o755)
    const undo = await makeImmutable(s.union, '/n')
    if (!undo) return ctx.skip()
    try {
      // A directory moved into a merged one is marked opaque first; this one refuses the mark.
      await expect(s.union.rename('/n', '/m/n')).rejects.toMatchObject({ code: 'EPERM' })
      expect(await s.union.readdir('/m')).toEqual(['a'])
    } finally {
      await undo()
    }
    // The refusal was the directory's: opaque directories still get trusted.overlay.opaque.
    await s.union.unlink('/d/x')
    await s.union.rmdir('/d')
    await s.union.mkdir('/d', 0o755)
    expect((await lgetxattr(join(s.upper, 'd'), 'trusted.overlay.opaque'))?.toString()).toBe('y')
    expect(await readdir(join(s.upper, 'd'))).toEqual([])
  })

  it('makes rmdir then mkdir of a lower directory opaque', async () => {
    const s = await stack([{ 'd/a': 'a', 'd/b': 'b' }])
    await s.union.unlink('/d/a')
    await s.union.unlink('/d/b')
    await s.union.rmdir('/d')
    expect(await isCharWhiteout(join(s.upper, 'd'))).toBe(true)
    await s.union.mkdir('/d', 0o755)
    expect((await lgetxattr(join(s.upper, 'd'), 'trusted.overlay.opaque'))?.toString()).toBe('y')
    expect(await s.union.readdir('/d')).toEqual([])
    expect((await s.union.getattr('/d')).nlink).toBe(2)
  })

  it('removes upper-only directories by setting them aside in the work directory, deleted once idle or at flush', async () => {
    const s = await stack([{ 'low/f': 'f' }])
    const scratch = join(s.work, 'work')
    for (const d of ['/new', '/new/a', '/new/b', '/low/sub']) await s.union.mkdir(d, 0o755)
    const aside = (): string[] => readdirSync(scratch).filter((name) => name.startsWith('#lfs-'))
    const before = aside().length
    // Not empty on disk: refused, as rmdir(2) refuses, and nothing is moved.
    await s.union.mknod('/new/b/f', 0o100644, 0)
    await expect(s.union.rmdir('/new/b')).rejects.toMatchObject({ code: 'ENOTEMPTY' })
    expect(aside().length).toBe(before)
    await s.union.unlink('/new/b/f')
    const parentLinks = (await lstat(join(s.upper, 'new'))).nlink
    for (const d of ['/new/a', '/new/b', '/low/sub']) await s.union.rmdir(d)
    // Gone from the upper layer and the merged view at once; waiting in the scratch area.
    expect(await readdir(join(s.upper, 'new'))).toEqual([])
    expect(await s.union.readdir('/new')).toEqual([])
    expect(await s.union.readdir('/low')).toEqual(['f'])
    expect((await lstat(join(s.upper, 'new'))).nlink).toBe(parentLinks - 2)
    expect(aside().length).toBe(before + 3)
    // A name removed can be made again at once.
    await s.union.mkdir('/new/a', 0o700)
    expect(((await lstat(join(s.upper, 'new', 'a'))).mode & 0o777).toString(8)).toBe('700')
    // Deleted once no rmdir came for a while.
    for (let i = 0; i < 100 && aside().length > before; i++) await new Promise((r) => setTimeout(r, 20))
    expect(aside().length).toBe(before)
    // Or at the flush a daemon makes as it exits.
    await s.union.rmdir('/new/a')
    await s.union.rmdir('/new')
    expect(aside().length).toBe(before + 2)
    s.union.flush()
    expect(aside().length).toBe(before)
  })

  it('warns of an upperdir and workdir another union holds, and leaves that union its scratch area', async () => {
    const s = await stack([{ f: 'lower' }])
    const scratch = join(s.work, 'work')
    await writeFile(join(scratch, '#lfs-in-use'), 'a copy being made')
    const warnings: string[] = []
    const second = await s.reopen({ onWarning: (w) => warnings.push(w) })
    expect(warnings).toEqual([
      expect.stringMatching(/^upperdir .*upper is in use by another layerfs mount/),
      expect.stringMatching(/^workdir .*work is in use by another layerfs mount/),
    ])
    expect(readdirSync(scratch)).toContain('#lfs-in-use')
    await second.close()
    await s.union.close()
    // Both closed: the next union claims the directories and empties the scratch area.
    const third = await s.reopen({ onWarning: (w) => warnings.push(w) })
    expect(warnings).toHaveLength(2)
    expect(readdirSync(scratch)).toEqual([])
    await third.close()
  })

  it('close names deferred copies, deletes what waits, and lets go of every descriptor', async () => {
    const s = await stack([{ 'big': 'x'.repeat(4096), 'small': 'lower', 'd/': '' }], {}, { flushBehind: true })
    const held = (): string[] => readdirSync('/proc/self/fd').flatMap((fd) => {
      try {
        const target = readlinkSync(`/proc/self/fd/${fd}`)
        return target.startsWith(s.dir) ? [target] : []
      } catch {
        return [] // the directory's own descriptor, closed by now
      }
    })
    // Its claims on the upperdir and workdir (see Union.open).
    expect(held().sort()).toEqual([s.upper, s.work])
    // A copy answered before its flush, a handle never released, a directory set aside.
    await s.union.chmod('/small', 0o600)
    const fh = await s.union.open('/big', constants.O_RDONLY)
    expect(await s.union.read(fh, Buffer.alloc(8), 8, 0)).toBe(8)
    await s.union.mkdir('/new', 0o755)
    await s.union.rmdir('/new')
    expect(held().length).toBeGreaterThan(2)
    await s.union.close()
    expect(held()).toEqual([])
    expect(((await lstat(join(s.upper, 'small'))).mode & 0o777).toString(8)).toBe('600')
    expect(readdirSync(join(s.work, 'work')).filter((name) => name.startsWith('#lfs-'))).toEqual([])
  })

  it('refuses rmdir of a directory with visible children', async () => {
    const s = await stack([{ 'd/a': 'a' }])
    await expect(s.union.rmdir('/d')).rejects.toMatchObject({ code: 'ENOTEMPTY' })
  })

  it('creates a file over a whiteout without the lower file showing through', async () => {
    const s = await stack([{ f: 'lower' }])
    await s.union.unlink('/f')
    const fh = await s.union.create('/f', 0o600)
    await s.union.release(fh)
    expect((await s.union.getattr('/f')).size).toBe(0)
    expect((await lstat(join(s.upper, 'f'))).isFile()).toBe(true)
  })

  it('refuses names starting with .wh.', async () => {
    const s = await stack([{}])
    await expect(s.union.create('/.wh.x', 0o644)).rejects.toMatchObject({ code: 'EINVAL' })
  })

  it('falls back to a .wh. file where the upper already uses them, and reads it back', async () => {
    const s = await stack([{ f: 'x' }], { '.wh.g': '' })
    expect(await s.union.readdir('/')).toEqual(['f'])
  })
})

describe('rename', () => {
  it('moves a lower file, leaving a whiteout at the source', async () => {
    const s = await stack([{ a: 'A' }])
    await s.union.rename('/a', '/b')
    expect(await readAll(s.union, '/b')).toBe('A')
    expect(await isCharWhiteout(join(s.upper, 'a'))).toBe(true)
    await expect(s.union.getattr('/a')).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('returns EXDEV for a directory that exists in a lower layer', async () => {
    const s = await stack([{ 'd/x': '' }])
    await expect(s.union.rename('/d', '/e')).rejects.toMatchObject({ code: 'EXDEV' })
  })

  it('moves a directory that lives only in the upper layer', async () => {
    const s = await stack([{}])
    await s.union.mkdir('/d', 0o755)
    await s.union.mkdir('/d/sub', 0o755)
    await s.union.rename('/d', '/e')
    expect(await s.union.readdir('/e')).toEqual(['sub'])
    await expect(s.union.getattr('/d/sub')).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('honours RENAME_NOREPLACE and RENAME_EXCHANGE', async () => {
    const s = await stack([{ a: 'A', b: 'B' }])
    await expect(s.union.rename('/a', '/b', 1)).rejects.toMatchObject({ code: 'EEXIST' })
    await s.union.rename('/a', '/b', 2)
    expect(await readAll(s.union, '/a')).toBe('B')
    expect(await readAll(s.union, '/b')).toBe('A')
  })

  it('makes a directory moved onto a whited-out lower directory opaque', async () => {
    const s = await stack([{ 'old/x': 'x' }])
    await s.union.unlink('/old/x')
    await s.union.rmdir('/old')
    await s.union.mkdir('/fresh', 0o755)
    await s.union.rename('/fresh', '/old')
    expect(await s.union.readdir('/old')).toEqual([])
  })
})

describe('links and special files', () => {
  it('hard-links a lower file after copying it up', async () => {
    const s = await stack([{ f: 'x' }])
    await s.union.link('/f', '/g')
    const [f, g] = [await s.union.getattr('/f'), await s.union.getattr('/g')]
    expect(f.ino).toBe(g.ino)
    expect(f.nlink).toBe(2)
  })

  it('creates fifos and symlinks in the upper layer', async () => {
    const s = await stack([{}])
    await s.union.mknod('/p', constants.S_IFIFO | 0o644, 0)
    await s.union.symlink('target', '/l')
    expect((await lstat(join(s.upper, 'p'))).isFIFO()).toBe(true)
    expect(await s.union.readlink('/l')).toBe('target')
  })
})

describe('xattrs', () => {
  it('hides and refuses the private overlay namespaces', async () => {
    const s = await stack([{ 'o/': 'OPAQUE', 'o/x': '' }, {}])
    expect(await s.union.listxattr('/o')).toEqual([])
    await expect(s.union.getxattr('/o', 'trusted.overlay.opaque')).rejects.toMatchObject({ code: 'ENODATA' })
    await expect(s.union.setxattr('/o', 'trusted.layerfs.origin', Buffer.from('1'))).rejects.toMatchObject({ code: 'EOPNOTSUPP' })
  })

  it('removes a missing xattr with ENODATA and no copy-up', async () => {
    const s = await stack([{ f: '' }])
    await expect(s.union.removexattr('/f', 'user.none')).rejects.toMatchObject({ code: 'ENODATA' })
    expect(await readdir(s.upper)).toEqual([])
  })
})

describe('lookup cache', () => {
  it('stays exact through create, unlink and rename', async () => {
    const s = await stack([{ a: 'A' }])
    await expect(s.union.getattr('/n')).rejects.toMatchObject({ code: 'ENOENT' })
    const fh = await s.union.create('/n', 0o644)
    await s.union.release(fh)
    expect((await s.union.getattr('/n')).size).toBe(0)
    await s.union.rename('/n', '/m')
    await expect(s.union.getattr('/n')).rejects.toMatchObject({ code: 'ENOENT' })
    await s.union.unlink('/a')
    await expect(s.union.getattr('/a')).rejects.toMatchObject({ code: 'ENOENT' })
    const stats = s.union.stats().cache
    expect(stats.hits + stats.negativeHits).toBeGreaterThan(0)
  })

  it('knows, after a miss, whether the upper layer holds a whiteout there: a create replaces it', async () => {
    const s = await stack([{ 'd/x': 'X', 'd/y/a': 'A', 'd/z': 'Z' }], { 'd/x': 'WHITEOUT', 'd/.wh.y': '', 'd/.wh.z': '' })
    for (const name of ['x', 'y', 'z', 'w']) await expect(s.union.getattr(`/d/${name}`)).rejects.toMatchObject({ code: 'ENOENT' })
    await s.union.release(await s.union.create('/d/x', 0o600))
    await s.union.mkdir('/d/y', 0o755)
    await s.union.symlink('t', '/d/z')
    await s.union.mkdir('/d/w', 0o755)
    expect((await lstat(join(s.upper, 'd/x'))).isFile()).toBe(true)
    expect((await s.union.getattr('/d/x')).size).toBe(0)
    expect(await s.union.readdir('/d/y')).toEqual([])
    expect((await lgetxattr(join(s.upper, 'd/y'), 'trusted.overlay.opaque'))?.toString()).toBe('y')
    expect(await s.union.readlink('/d/z')).toBe('t')
    // The markers went with the names they hid; the fresh name had none and gets no opaque mark.
    expect(readdirSync(join(s.upper, 'd')).sort()).toEqual(['w', 'x', 'y', 'z'])
    expect(await lgetxattr(join(s.upper, 'd/w'), 'trusted.overlay.opaque')).toBeUndefined()
  })

  it('makes a name in a directory only the upper layer holds without probing it first, and falls back when the host has it', async () => {
    const s = await stack([{ x: 'X', 'o/hidden': 'H' }], { 'u/old': 'O', 'u/wo': 'WHITEOUT', 'o/': 'OPAQUE' })
    await s.union.getattr('/u')
    await s.union.getattr('/o')
    const misses = s.union.stats().cache.misses
    await s.union.release(await s.union.create('/u/new', 0o600))
    await s.union.mkdir('/u/dir', 0o755)
    await s.union.symlink('t', '/u/link')
    await s.union.release(await s.union.create('/o/hidden', 0o600))
    // None of those names was probed before it was made: the host call found each free.
    expect(s.union.stats().cache.misses).toBe(misses)
    // Names the cache does not know but the host holds: the make fails, and the usual way decides.
    await expect(s.union.create('/u/old', 0o600)).rejects.toMatchObject({ code: 'EEXIST' })
    await expect(s.union.mkdir('/u/old', 0o755)).rejects.toMatchObject({ code: 'EEXIST' })
    await expect(s.union.symlink('t', '/u/old')).rejects.toMatchObject({ code: 'EEXIST' })
    expect(await readAll(s.union, '/u/old')).toBe('O')
    // A whiteout there hides nothing, and is replaced.
    await s.union.release(await s.union.create('/u/wo', 0o600))
    expect((await lstat(join(s.upper, 'u/wo'))).isFile()).toBe(true)
    expect((await s.union.getattr('/o/hidden')).size).toBe(0)
    expect((await s.union.readdir('/u')).sort()).toEqual(['dir', 'link', 'new', 'old', 'wo'])
    expect(await s.union.readlink('/u/link')).toBe('t')
    expect((await s.union.getattr('/u/dir')).mode & constants.S_IFMT).toBe(constants.S_IFDIR)
  })

  it('stays bounded by its size', async () => {
    const spec: Record<string, string> = {}
    for (let i = 0; i < 200; i++) spec[`f${i}`] = ''
    const s = await stack([spec], {}, { cacheEntries: 50 })
    for (let i = 0; i < 200; i++) await s.union.getattr(`/f${i}`)
    expect(s.union.stats().cache.size).toBeLessThanOrEqual(50)
  })
})

describe('read-only and bad stacks', () => {
  it('answers EROFS to writes without an upper layer', async () => {
    const s = await stack([{ f: 'x' }])
    const ro = await Union.open({ lowers: s.lowers })
    await expect(ro.open('/f', constants.O_WRONLY)).rejects.toMatchObject({ code: 'EROFS' })
    await expect(ro.unlink('/f')).rejects.toMatchObject({ code: 'EROFS' })
  })

  it('names a missing lower directory', async () => {
    await expect(Union.open({ lowers: ['/nonexistent/layer'] })).rejects.toThrow(/lower layer \/nonexistent\/layer: no such directory/)
  })

  it('follows a layer given as a symlink, as overlayfs does (containers-storage names lowers so)', async () => {
    const s = await stack([{ f: 'lower' }])
    const dir = join(s.upper, '..')
    const links = { lower: join(dir, 'l-lower'), upper: join(dir, 'l-upper'), file: join(dir, 'l-file'), dangling: join(dir, 'l-gone') }
    await symlink(s.lowers[0]!, links.lower)
    await symlink(s.upper, links.upper)
    await writeFile(join(dir, 'plain'), '')
    await symlink(join(dir, 'plain'), links.file)
    await symlink(join(dir, 'nothing'), links.dangling)
    const work = join(dir, 'work2')
    await mkdir(work)
    const u = await Union.open({ lowers: [links.lower], upper: links.upper, work })
    expect(await readFile(join(s.lowers[0]!, 'f'), 'utf8')).toBe('lower')
    const fh = await u.open('/f', constants.O_WRONLY | constants.O_TRUNC)
    await u.write(fh, Buffer.from('upper'), 5, 0)
    await u.release(fh)
    expect(await readFile(join(s.upper, 'f'), 'utf8')).toBe('upper')
    await expect(Union.open({ lowers: [links.file] })).rejects.toThrow(/lower layer .*l-file: not a directory/)
    await expect(Union.open({ lowers: [links.dangling] })).rejects.toThrow(/lower layer .*l-gone: no such directory/)
    // The same directory reached through a link is still the same directory.
    await expect(Union.open({ lowers: [s.upper], upper: links.upper, work })).rejects.toThrow(/both a lower layer and the upperdir/)
  })

  it('refuses an upperdir without a workdir', async () => {
    const s = await stack([{}])
    await expect(Union.open({ lowers: s.lowers, upper: s.upper })).rejects.toThrow(/workdir/)
  })

  it('loses nothing when a truncate-extended file is written', async () => {
    const s = await stack([{ f: 'abc' }])
    await s.union.truncate('/f', 10)
    expect((await lstat(join(s.upper, 'f'))).size).toBe(10)
    expect((await readFile(join(s.upper, 'f'))).subarray(0, 3).toString()).toBe('abc')
    await writeFile(join(s.dir, 'unused'), '')
    await truncatePath(join(s.dir, 'unused'), 0)
  })
})

describe('xattr escaping', () => {
  it('stores trusted.overlay.* set through the union escaped, and shows it back unescaped', async () => {
    const s = await stack([{ f: 'x' }])
    await s.union.setxattr('/f', 'trusted.overlay.opaque', Buffer.from('y'))
    expect((await lgetxattr(join(s.upper, 'f'), 'trusted.overlay.overlay.opaque'))?.toString()).toBe('y')
    expect(await lgetxattr(join(s.upper, 'f'), 'trusted.overlay.opaque')).toBeUndefined()
    expect(await s.union.listxattr('/f')).toContain('trusted.overlay.opaque')
    expect((await s.union.getxattr('/f', 'trusted.overlay.opaque')).toString()).toBe('y')
  })

  it('does not read an escaped opaque xattr as a marker', async () => {
    const s = await stack([{ 'd/x': '' }, { 'd/y': '' }])
    await s.union.setxattr('/d', 'trusted.overlay.opaque', Buffer.from('y'))
    const again = await s.reopen()
    expect(await again.readdir('/d')).toEqual(['x', 'y'])
  })
})

describe('ownership', () => {
  it('gives new objects to the caller, and a set-group-ID directory its group', async () => {
    const s = await stack([{}])
    const fh = await s.union.create('/f', 0o644, { uid: 1000, gid: 1000 })
    await s.union.release(fh)
    expect([(await s.union.getattr('/f')).uid, (await s.union.getattr('/f')).gid]).toEqual([1000, 1000])
    await s.union.mkdir('/shared', 0o2775, { uid: 0, gid: 50 })
    await s.union.mkdir('/shared/sub', 0o755, { uid: 1000, gid: 1000 })
    const sub = await s.union.getattr('/shared/sub')
    expect([sub.uid, sub.gid]).toEqual([1000, 50])
  })

  it('refuses to create a whiteout device through the union', async () => {
    const s = await stack([{}])
    await expect(s.union.mknod('/w', constants.S_IFCHR | 0o644, 0)).rejects.toMatchObject({ code: 'EPERM' })
  })
})

describe('lookups answered from the names of lower directories', () => {
  const layers: LayerSpec[] = [
    { 'd/top': 'a', 'd/.wh.gone': '', 'd/char': 'WHITEOUT', 'd/sub/': '', 'd/link': '->top' },
    { 'd/gone': 'hidden', 'd/char': 'hidden too', 'd/low': 'b', 'd/sub/inner': 'c', 'd/top': 'shadowed' },
  ]
  const names = ['top', 'gone', 'char', 'low', 'sub', 'link', 'absent', '.wh.gone', 'sub/inner', 'sub/nothing']

  /** Each name's answer (its mode, or the error code), in a union whose lookups are all misses. */
  async function answers(union: Union): Promise<Record<string, number | string>> {
    const out: Record<string, number | string> = {}
    for (const name of names) out[name] = await union.getattr(`/d/${name}`).then((a) => a.mode, (e: { code: string }) => e.code)
    return out
  }

  it('gives the answers of name-by-name probes, once a directory has been probed twice', async () => {
    const s = await stack(layers)
    // Warm: two lookups in /d make the resolver read the lower directories' names; each later
    // lookup is checked against a fresh union that probes name by name (one lookup per union).
    await s.union.getattr('/d/x1').catch(() => undefined)
    await s.union.getattr('/d/x2').catch(() => undefined)
    expect(s.union.stats().cache.lowerDirs).toBeGreaterThanOrEqual(2)
    const warm = await answers(s.union)
    const cold: Record<string, number | string> = {}
    for (const name of names) {
      const fresh = await s.reopen()
      cold[name] = await fresh.getattr(`/d/${name}`).then((a) => a.mode, (e: { code: string }) => e.code)
    }
    expect(warm).toEqual(cold)
    expect(warm).toMatchObject({ gone: 'ENOENT', char: 'ENOENT', absent: 'ENOENT', '.wh.gone': 'ENOENT', 'sub/nothing': 'ENOENT' })
    expect(await readAll(s.union, '/d/top')).toBe('a')
    expect(await readAll(s.union, '/d/low')).toBe('b')
    // A name made after the directory was read is found (the upper layer is always probed).
    await s.union.mkdir('/d/made', 0o755)
    expect((await s.union.getattr('/d/made')).mode & constants.S_IFMT).toBe(constants.S_IFDIR)
    await s.union.unlink('/d/low')
    await expect(s.union.getattr('/d/low')).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('reads a lower directory only once, and never one probed a single time', async () => {
    const s = await stack(layers)
    await s.union.getattr('/d/x1').catch(() => undefined)
    expect(s.union.stats().cache.lowerDirs).toBe(0)
    await s.union.getattr('/d/x2').catch(() => undefined)
    const read = s.union.stats().cache.lowerDirs
    expect(read).toBe(2) // /d in both lower layers
    for (let i = 3; i < 50; i++) await s.union.getattr(`/d/x${i}`).catch(() => undefined)
    expect(s.union.stats().cache.lowerDirs).toBe(read)
    // Lower layers must not change under a mount; a name added behind its back after the read is
    // not seen, which shows that the lookups came from memory.
    await writeFile(join(s.lowers[1]!, 'd', 'late'), '')
    await expect(s.union.getattr('/d/late')).rejects.toMatchObject({ code: 'ENOENT' })
    expect((await (await s.reopen()).getattr('/d/late')).size).toBe(0)
  })

  it('reads no lower directory for names found there, only after two found missing', async () => {
    const s = await stack([{ 'f/a': '1', 'f/b': '2', 'f/c': '3', 'f/d': '4' }])
    for (const name of ['a', 'b', 'c', 'd']) expect((await s.union.getattr(`/f/${name}`)).size).toBe(1)
    expect(s.union.stats().cache.lowerDirs).toBe(0)
    await expect(s.union.getattr('/f/x1')).rejects.toMatchObject({ code: 'ENOENT' })
    expect(s.union.stats().cache.lowerDirs).toBe(0)
    await expect(s.union.getattr('/f/x2')).rejects.toMatchObject({ code: 'ENOENT' })
    expect(s.union.stats().cache.lowerDirs).toBe(1)
  })
})

describe('readdir priming the lookup cache', () => {
  it('answers the lookups of listed children from the listings, with the same results', async () => {
    const layers: LayerSpec[] = [
      { 'd/top': 'a', '.wh.x': '', 'd/.wh.gone': '', 'd/sub/': '' },
      { 'd/gone': 'hidden', 'd/low': 'b', 'd/sub/inner': 'c', x: 'x' },
    ]
    const s = await stack(layers)
    const listed = await s.union.readdirPlus('/d')
    const missesAfterListing = s.union.stats().cache.misses
    for (const name of ['top', 'low', 'sub']) await s.union.getattr(`/d/${name}`)
    expect(s.union.stats().cache.misses).toBe(missesAfterListing)
    await expect(s.union.getattr('/d/gone')).rejects.toMatchObject({ code: 'ENOENT' })
    expect(listed.map((e) => e.name)).toEqual(['.', '..', 'low', 'sub', 'top'])
    // The same answers as a fresh stack that never listed: kinds, and the merged directory below.
    const fresh = await s.reopen()
    for (const name of ['top', 'low', 'sub']) {
      expect((await s.union.getattr(`/d/${name}`)).mode).toBe((await fresh.getattr(`/d/${name}`)).mode)
    }
    expect(await s.union.readdir('/d/sub')).toEqual(['inner'])
  })
})

describe('metacopy (metadata-only copy-up)', () => {
  it('copies up metadata only for chmod, keeping the data below until a write', async () => {
    const s = await stack([{ 'd/f': 'lower bytes' }], {}, { metacopy: true })
    await s.union.chmod('/d/f', 0o600)
    const upperFile = join(s.upper, 'd/f')
    const st = await lstat(upperFile)
    expect([st.mode & 0o7777, st.size, st.blocks]).toEqual([0o600, 11, 0])
    expect(await lgetxattr(upperFile, 'trusted.overlay.metacopy')).toBeDefined()
    expect(await readAll(s.union, '/d/f')).toBe('lower bytes')
    expect(s.union.stats().copyUps.copyUpBytes).toBe(0)
    // A write completes the copy: the bytes come up, the chmod stays, the mark goes.
    await writeAt(s.union, '/d/f', 'L', 0)
    expect(await readFile(upperFile, 'utf8')).toBe('Lower bytes')
    expect((await lstat(upperFile)).mode & 0o7777).toBe(0o600)
    expect(await lgetxattr(upperFile, 'trusted.overlay.metacopy')).toBeUndefined()
  })

  it('finds the data of a renamed metadata-only copy through its redirect, also after a remount', async () => {
    const s = await stack([{ a: 'data of a' }], {}, { metacopy: true })
    await s.union.chown('/a', 1000, 1000)
    await s.union.rename('/a', '/b')
    expect((await lgetxattr(join(s.upper, 'b'), 'trusted.overlay.redirect'))?.toString()).toBe('/a')
    const again = await s.reopen()
    expect(await readAll(again, '/b')).toBe('data of a')
    await expect(again.getattr('/a')).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('gives a copy with no name left its data when its size changes, and moves every reader onto it', async () => {
    const s = await stack([{ f: 'lower bytes' }], {}, { metacopy: true })
    await s.union.chmod('/f', 0o600)
    const [a, b] = [await s.union.open('/f', constants.O_RDONLY), await s.union.open('/f', constants.O_RDONLY)]
    const read = async (fh: number): Promise<string> => {
      const buf = Buffer.alloc(64)
      return buf.subarray(0, await s.union.read(fh, buf, 64, 0)).toString()
    }
    expect([await read(a), await read(b)]).toEqual(['lower bytes', 'lower bytes'])
    await s.union.unlink('/f')
    // A reopen for writing (through /proc) needs the data above as much as a truncate does.
    const c = s.union.reopenUnnamedSync(b, constants.O_RDONLY)
    s.union.fsetattrSync(a, { size: 5 })
    expect([await read(a), await read(b), await read(c)]).toEqual(['lower', 'lower', 'lower'])
    expect(s.union.fgetattrSync(b, 0).mode & 0o7777).toBe(0o600)
    expect(await readFile(join(s.lowers[0]!, 'f'), 'utf8')).toBe('lower bytes')
    const w = s.union.reopenUnnamedSync(c, constants.O_RDWR)
    await s.union.write(w, Buffer.from('L'), 1, 0)
    expect([await read(a), await read(c)]).toEqual(['Lower', 'Lower'])
    for (const fh of [a, b, c, w]) await s.union.release(fh)
  })

  it('opens a lower file with no name left again for reading only', async () => {
    const s = await stack([{ f: 'lower bytes' }])
    const a = await s.union.open('/f', constants.O_RDONLY)
    await s.union.unlink('/f')
    expect(() => s.union.reopenUnnamedSync(a, constants.O_RDWR)).toThrow(expect.objectContaining({ code: 'EEXIST' }))
    expect(() => s.union.reopenUnnamedSync(a, constants.O_RDONLY | constants.O_TRUNC)).toThrow(expect.objectContaining({ code: 'EEXIST' }))
    const b = s.union.reopenUnnamedSync(a, constants.O_RDONLY)
    const buf = Buffer.alloc(64)
    expect(buf.subarray(0, await s.union.read(b, buf, 64, 0)).toString()).toBe('lower bytes')
    for (const fh of [a, b]) await s.union.release(fh)
  })

  it('moves a reader of the lower data onto the completed copy', async () => {
    const s = await stack([{ f: 'old!' }], {}, { metacopy: true })
    await s.union.utimens('/f', 0n, 0n)
    await expectReaderSeesLaterWrite(s.union)
  })

  it('moves readers of a renamed metadata-only copy onto its data when it follows, by the name the file has then', async () => {
    const s = await stack([{ f: 'lower f', g: 'lower g', h: 'lower h', 'k/x': 'lower x' }], {}, { metacopy: true })
    const read = async (fh: number): Promise<string> => {
      const buf = Buffer.alloc(64)
      return buf.subarray(0, await s.union.read(fh, buf, 64, 0)).toString()
    }
    const [f, g, h] = [await s.union.open('/f', constants.O_RDONLY), await s.union.open('/g', constants.O_RDONLY), await s.union.open('/h', constants.O_RDONLY)]
    // A rename (a metadata-only copy, its data read at the old name), then a directory of its own
    // moved; an exchange of two; and a file replaced by a rename over it.
    await s.union.mkdir('/m', 0o755)
    await s.union.rename('/f', '/m/f2')
    await s.union.rename('/m', '/n')
    await s.union.chmod('/g', 0o600)
    await s.union.chmod('/k/x', 0o600)
    await s.union.rename('/g', '/k/x', RENAME_EXCHANGE)
    await s.union.rename('/k/x', '/h')
    expect([await read(f), await read(g), await read(h)]).toEqual(['lower f', 'lower g', 'lower h'])
    await writeAt(s.union, '/n/f2', 'F', 0)
    await writeAt(s.union, '/h', 'G', 0)
    await writeAt(s.union, '/g', 'X', 0)
    // f and g read their files' new bytes; h's file is gone (replaced): its reader keeps it.
    expect([await read(f), await read(g), await read(h)]).toEqual(['Fower f', 'Gower g', 'lower h'])
    expect(await readAll(s.union, '/g')).toBe('Xower x')
    for (const fh of [f, g, h]) await s.union.release(fh)
  })

  it('copies up metadata only without waiting', async () => {
    const s = await stack([{ f: 'lower bytes' }], {}, { metacopy: true })
    expect(s.union.trySetattr('/f', { mode: 0o600 })).toBe(true)
    expect(s.union.tryRename('/f', '/g')).toBe(true)
    expect(await readAll(s.union, '/g')).toBe('lower bytes')
    expect(s.union.stats().copyUps.copyUpBytes).toBe(0)
  })

  it('truncates a metadata-only copy to 0 by dropping the lower data', async () => {
    const s = await stack([{ f: 'lower bytes' }], {}, { metacopy: true })
    await s.union.chmod('/f', 0o600)
    await s.union.truncate('/f', 0)
    expect(await readAll(s.union, '/f')).toBe('')
    expect((await s.union.getattr('/f')).size).toBe(0)
    expect(await lgetxattr(join(s.upper, 'f'), 'trusted.overlay.metacopy')).toBeUndefined()
    expect((await lstat(join(s.upper, 'f'))).mode & 0o7777).toBe(0o600)
  })

  it('makes an empty file on O_TRUNC without reading the lower data', async () => {
    const s = await stack([{ f: 'x'.repeat(5000) }], {}, { metacopy: true })
    await s.union.chmod('/f', 0o640)
    const fh = await s.union.open('/f', constants.O_WRONLY | constants.O_TRUNC)
    await s.union.release(fh)
    const st = await lstat(join(s.upper, 'f'))
    expect([st.size, st.mode & 0o7777]).toEqual([0, 0o640])
  })
})

describe('a read waiting for the thread pool', () => {
  it('keeps its descriptor while a copy-up moves the reader to the copy', async () => {
    const s = await stack([{ f: 'the lower bytes', g: 'another file' }])
    const lowerF = join(s.lowers[0]!, 'f')
    const fh = await s.union.open('/f', constants.O_RDONLY)
    // Out of the page cache, so that the read goes to the pool (GNU dd: count=0 drops the file's pages).
    const fd = openSync(lowerF, 'r')
    fsyncSync(fd)
    closeSync(fd)
    execFileSync('dd', [`if=${lowerF}`, 'iflag=nocache', 'count=0', 'status=none'])
    // Every pool thread waits in the open of a FIFO, so the read waits in the queue until they go.
    const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4)
    const fifos = Array.from({ length: threads }, (_, i) => join(s.dir, `fifo${i}`))
    for (const fifo of fifos) execFileSync('mkfifo', [fifo])
    const blocked = fifos.map((fifo) => openFile(fifo, 'r'))
    await new Promise((resolve) => setTimeout(resolve, 100))
    const buf = Buffer.alloc(64)
    const reading = s.union.read(fh, buf, buf.length, 0)
    // The copy-up (of a small file: at once) moves the reader to the copy; the number of the fd
    // it read from is free now unless the read still holds it, and the next open would get it.
    expect(s.union.trySetattr('/f', { mode: 0o600 }, undefined, true)).toBe(true)
    const other = openSync(join(s.lowers[0]!, 'g'), 'r')
    try {
      await unblock(fifos)
      const n = await reading
      expect(buf.subarray(0, n).toString()).toBe('the lower bytes')
    } finally {
      await unblock(fifos)
      for (const handle of await Promise.all(blocked)) await handle.close()
      closeSync(other)
      await s.union.release(fh)
    }
    expect((await s.union.getattr('/f')).mode & 0o777).toBe(0o600)
  })
})

/** Let the opens of `fifos` for reading end: open each for writing (retried while its reader has
 *  not come yet), then close it. */
async function unblock(fifos: string[]): Promise<void> {
  for (const fifo of fifos) {
    for (let tries = 0; ; tries++) {
      try {
        closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK))
        break
      } catch (err) {
        if ((err as { code?: string }).code !== 'ENXIO' || tries >= 100) throw err
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    }
  }
}
