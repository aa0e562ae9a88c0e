// The native addon (src/sys/native.ts over native/*.c), checked against the real kernel: these run
// as root on ext4, where trusted.* xattrs, whiteout renames and device nodes are all permitted.
import { closeSync, constants as fsc } from 'node:fs'
import { link, lstat, mkdir, mkdtemp, open, readdir, readFile, rm, stat, symlink, truncate, writeFile } from 'node:fs/promises'
import { constants as osc, tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import * as names from '../src/sys/names.js'
import * as sys from '../src/sys/native.js'

let dir = ''
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'layerfs-sys-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

async function file(name: string, content: string | Buffer = ''): Promise<string> {
  const p = join(dir, name)
  await writeFile(p, content)
  return p
}

async function withFd<T>(path: string, flags: string, fn: (fd: number) => Promise<T>): Promise<T> {
  const h = await open(path, flags)
  try {
    return await fn(h.fd)
  } finally {
    await h.close()
  }
}

/** The rejection of `p`, failing the test if it resolves. */
async function rejection(p: Promise<unknown>): Promise<sys.SysError> {
  return p.then(
    () => expect.fail('expected a rejection'),
    (e: unknown) => e as sys.SysError,
  )
}

describe('makedev', () => {
  it('encodes like the kernel when compared with /dev/null', async () => {
    expect(sys.makedev(1, 3)).toBe((await stat('/dev/null')).rdev)
    expect(sys.makedev(0, 0)).toBe(0)
  })

  it('uses the split 64-bit layout when numbers exceed 8 bits', () => {
    // glibc: major bits 0-11 at 8, 12-31 at 44; minor bits 0-7 at 0, 8-31 at 20.
    expect(sys.makedev(0x1234, 0x56789)).toBe(0x1000_5672_3489) // glibc makedev(0x1234, 0x56789)
  })
})

describe('major', () => {
  it('extracts the major number when given a stat rdev', async () => {
    expect(sys.major((await stat('/dev/null')).rdev)).toBe(1)
  })

  it('round-trips makedev when numbers exceed 8 bits', () => {
    expect(sys.major(sys.makedev(0x1234, 0x56789))).toBe(0x1234)
  })
})

describe('minor', () => {
  it('extracts the minor number when given a stat rdev', async () => {
    expect(sys.minor((await stat('/dev/null')).rdev)).toBe(3)
  })

  it('round-trips makedev when numbers exceed 8 bits', () => {
    expect(sys.minor(sys.makedev(0x1234, 0x56789))).toBe(0x56789)
  })
})

describe('lgetxattr', () => {
  it('resolves undefined when the attribute is absent', async () => {
    const p = await file('f')
    expect(await sys.lgetxattr(p, 'user.missing')).toBeUndefined()
  })

  it('returns a large value whole when it exceeds any small first guess', async () => {
    const p = await file('f')
    const big = Buffer.alloc(3000, 0)
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff
    await sys.lsetxattr(p, 'user.big', big)
    const got = await sys.lgetxattr(p, 'user.big')
    expect(got?.length).toBe(3000)
    expect(got?.equals(big)).toBe(true)
  })

  it('returns values whole, small and large', async () => {
    const p = await file('f')
    for (const size of [1, 255, 256, 257]) {
      const value = Buffer.alloc(size, size & 0xff)
      await sys.lsetxattr(p, `user.s${size}`, value)
      expect((await sys.lgetxattr(p, `user.s${size}`))?.equals(value)).toBe(true)
    }
    // A list of names longer than that comes whole too.
    const names = (await sys.llistxattr(p)).sort()
    expect(names).toEqual(['user.s1', 'user.s255', 'user.s256', 'user.s257'])
    for (let i = 0; i < 40; i++) await sys.lsetxattr(p, `user.${'n'.repeat(20)}${i}`, 'v')
    expect(await sys.llistxattr(p)).toHaveLength(44)
  })

  it('reads values and name lists past the one-call size (4 KiB) whole, on tmpfs', async (ctx) => {
    // ext4 keeps all of a file's xattrs in one 4 KiB block; tmpfs takes bigger ones.
    const shm = await mkdtemp('/dev/shm/layerfs-sys-').catch(() => undefined)
    if (shm === undefined) return ctx.skip('no /dev/shm')
    try {
      const p = join(shm, 'f')
      await writeFile(p, '')
      const big = Buffer.alloc(10_000)
      for (let i = 0; i < big.length; i++) big[i] = (i * 13) & 0xff
      try {
        await sys.lsetxattr(p, 'user.big', big)
      } catch (err) {
        console.warn(`skipping the tmpfs xattr test: ${String(err)}`)
        return ctx.skip()
      }
      expect((await sys.lgetxattr(p, 'user.big'))?.equals(big)).toBe(true)
      const many = Array.from({ length: 200 }, (_, i) => `user.${'m'.repeat(30)}${i}`)
      for (const name of many) await sys.lsetxattr(p, name, '1')
      expect((await sys.llistxattr(p)).sort()).toEqual([...many, 'user.big'].sort())
    } finally {
      await rm(shm, { recursive: true, force: true })
    }
  })

  it('returns an empty Buffer when the value is empty', async () => {
    const p = await file('f')
    await sys.lsetxattr(p, 'user.empty', Buffer.alloc(0))
    const got = await sys.lgetxattr(p, 'user.empty')
    expect(Buffer.isBuffer(got)).toBe(true)
    expect(got?.length).toBe(0)
  })

  it('reads the symlink itself when the target has a different value', async () => {
    const target = await file('target')
    const link = join(dir, 'link')
    await symlink(target, link)
    await sys.lsetxattr(target, 'trusted.who', 'target')
    await sys.lsetxattr(link, 'trusted.who', 'link')
    expect((await sys.lgetxattr(link, 'trusted.who'))?.toString()).toBe('link')
    expect((await sys.lgetxattr(target, 'trusted.who'))?.toString()).toBe('target')
  })

  it('rejects with code, errno, syscall and path when the file is missing', async () => {
    const p = join(dir, 'nope')
    const e = await rejection(sys.lgetxattr(p, 'user.a'))
    expect(e).toBeInstanceOf(Error)
    expect(e.code).toBe('ENOENT')
    expect(e.errno).toBe(-osc.errno.ENOENT)
    expect(e.syscall).toBe('lgetxattr')
    expect(e.path).toBe(p)
    expect(e.message).toBe(`ENOENT: no such file or directory, lgetxattr '${p}'`)
  })

  it('throws a TypeError instead of truncating when the path contains a NUL byte', async () => {
    const p = await file('a')
    await sys.lsetxattr(p, 'user.a', '1')
    await expect(sys.lgetxattr(`${p}\0b`, 'user.a')).rejects.toThrow(TypeError)
  })
})

describe('lsetxattr', () => {
  it('round-trips a string value in the user. namespace', async () => {
    const p = await file('f')
    await sys.lsetxattr(p, 'user.greeting', 'héllo')
    expect((await sys.lgetxattr(p, 'user.greeting'))?.toString('utf8')).toBe('héllo')
  })

  it('round-trips binary values in the trusted. namespace', async () => {
    const p = await file('f')
    const v = Buffer.from([0, 1, 2, 255, 0])
    await sys.lsetxattr(p, 'trusted.overlay.opaque', v)
    expect((await sys.lgetxattr(p, 'trusted.overlay.opaque'))?.equals(v)).toBe(true)
  })

  it('replaces an existing value when flags are 0', async () => {
    const p = await file('f')
    await sys.lsetxattr(p, 'user.a', 'first')
    await sys.lsetxattr(p, 'user.a', 'second')
    expect((await sys.lgetxattr(p, 'user.a'))?.toString()).toBe('second')
  })

  it('rejects EEXIST with XATTR_CREATE when the attribute exists', async () => {
    const p = await file('f')
    await sys.lsetxattr(p, 'user.a', '1')
    const e = await rejection(sys.lsetxattr(p, 'user.a', '2', sys.XATTR_CREATE))
    expect(e.code).toBe('EEXIST')
    expect((await sys.lgetxattr(p, 'user.a'))?.toString()).toBe('1')
  })

  it('rejects ENODATA with XATTR_REPLACE when the attribute is absent', async () => {
    const p = await file('f')
    const e = await rejection(sys.lsetxattr(p, 'user.a', '2', sys.XATTR_REPLACE))
    expect(e.code).toBe('ENODATA')
    expect(e.syscall).toBe('lsetxattr')
    expect(await sys.lgetxattr(p, 'user.a')).toBeUndefined()
  })

  it('sets trusted.* on the symlink, not its target, when given a symlink', async () => {
    const target = await file('target')
    const link = join(dir, 'link')
    await symlink(target, link)
    await sys.lsetxattr(link, 'trusted.mark', 'x')
    expect(await sys.llistxattr(link)).toContain('trusted.mark')
    expect(await sys.lgetxattr(target, 'trusted.mark')).toBeUndefined()
  })

  it('rejects EPERM for user.* when given a symlink', async () => {
    const target = await file('target')
    const link = join(dir, 'link')
    await symlink(target, link)
    const e = await rejection(sys.lsetxattr(link, 'user.mark', 'x'))
    expect(e.code).toBe('EPERM')
    expect(e.path).toBe(link)
    expect(await sys.lgetxattr(target, 'user.mark')).toBeUndefined()
  })
})

describe('llistxattr', () => {
  it('returns [] when the file has no attributes', async () => {
    const p = await file('f')
    expect(await sys.llistxattr(p)).toEqual([])
  })

  it('lists names from both namespaces when set', async () => {
    const p = await file('f')
    await sys.lsetxattr(p, 'user.one', '1')
    await sys.lsetxattr(p, 'trusted.two', '2')
    expect((await sys.llistxattr(p)).sort()).toEqual(['trusted.two', 'user.one'])
  })

  it('rejects ENOENT with the path when the file is missing', async () => {
    const p = join(dir, 'nope')
    const e = await rejection(sys.llistxattr(p))
    expect(e.code).toBe('ENOENT')
    expect(e.syscall).toBe('llistxattr')
    expect(e.path).toBe(p)
  })
})

describe('lremovexattr', () => {
  it('removes the attribute when present', async () => {
    const p = await file('f')
    await sys.lsetxattr(p, 'user.a', '1')
    await sys.lsetxattr(p, 'trusted.b', '2')
    await sys.lremovexattr(p, 'user.a')
    await sys.lremovexattr(p, 'trusted.b')
    expect(await sys.lgetxattr(p, 'user.a')).toBeUndefined()
    expect(await sys.llistxattr(p)).toEqual([])
  })

  it('rejects ENODATA when the attribute is absent', async () => {
    const p = await file('f')
    const e = await rejection(sys.lremovexattr(p, 'user.a'))
    expect(e.code).toBe('ENODATA')
    expect(e.errno).toBe(-osc.errno.ENODATA)
    expect(e.syscall).toBe('lremovexattr')
  })
})

describe('fgetxattr', () => {
  it('reads a value set by path when given an fd', async () => {
    const p = await file('f')
    await sys.lsetxattr(p, 'user.a', 'via-path')
    const got = await withFd(p, 'r', (fd) => sys.fgetxattr(fd, 'user.a'))
    expect(got?.toString()).toBe('via-path')
  })

  it('resolves undefined when the attribute is absent', async () => {
    const p = await file('f')
    expect(await withFd(p, 'r', (fd) => sys.fgetxattr(fd, 'user.none'))).toBeUndefined()
  })

  it('rejects EBADF without a path when the fd is invalid', async () => {
    const e = await rejection(sys.fgetxattr(-1, 'user.a'))
    expect(e.code).toBe('EBADF')
    expect(e.syscall).toBe('fgetxattr')
    expect(e.path).toBeUndefined()
    expect(e.message).toBe('EBADF: bad file descriptor, fgetxattr')
  })
})

describe('fsetxattr', () => {
  it('sets a value readable by path when given an fd', async () => {
    const p = await file('f')
    await withFd(p, 'r', (fd) => sys.fsetxattr(fd, 'trusted.t', Buffer.from('fd')))
    expect((await sys.lgetxattr(p, 'trusted.t'))?.toString()).toBe('fd')
  })

  it('rejects EEXIST with XATTR_CREATE when the attribute exists', async () => {
    const p = await file('f')
    await sys.lsetxattr(p, 'user.a', '1')
    const e = await rejection(withFd(p, 'r', (fd) => sys.fsetxattr(fd, 'user.a', '2', sys.XATTR_CREATE)))
    expect(e.code).toBe('EEXIST')
    expect(e.syscall).toBe('fsetxattr')
  })
})

describe('flistxattr', () => {
  it('lists names when given an fd', async () => {
    const p = await file('f')
    await sys.lsetxattr(p, 'user.x', '1')
    await sys.lsetxattr(p, 'user.y', '2')
    expect((await withFd(p, 'r', (fd) => sys.flistxattr(fd))).sort()).toEqual(['user.x', 'user.y'])
  })

  it('returns [] when the file has no attributes', async () => {
    const p = await file('f')
    expect(await withFd(p, 'r', (fd) => sys.flistxattr(fd))).toEqual([])
  })
})

describe('mknod', () => {
  it('creates a char 0/0 device (a whiteout) when given S_IFCHR and dev 0', async () => {
    const p = join(dir, 'wh')
    await sys.mknod(p, fsc.S_IFCHR | 0o600, sys.makedev(0, 0))
    const st = await lstat(p)
    expect(st.isCharacterDevice()).toBe(true)
    expect(st.rdev).toBe(0)
  })

  it('creates a char device with the given numbers when dev is non-zero', async () => {
    const p = join(dir, 'null')
    await sys.mknod(p, fsc.S_IFCHR | 0o600, sys.makedev(1, 3))
    const st = await lstat(p)
    expect(st.isCharacterDevice()).toBe(true)
    expect(sys.major(st.rdev)).toBe(1)
    expect(sys.minor(st.rdev)).toBe(3)
  })

  it('creates a fifo with the permission bits when given S_IFIFO', async () => {
    const p = join(dir, 'fifo')
    await sys.mknod(p, fsc.S_IFIFO | 0o600, 0)
    const st = await lstat(p)
    expect(st.isFIFO()).toBe(true)
    expect(st.mode & 0o777).toBe(0o600)
  })

  it('creates an empty regular file when given S_IFREG', async () => {
    const p = join(dir, 'reg')
    await sys.mknod(p, fsc.S_IFREG | 0o600, 0)
    const st = await lstat(p)
    expect(st.isFile()).toBe(true)
    expect(st.size).toBe(0)
  })

  it('rejects EEXIST with the path when the name exists', async () => {
    const p = await file('taken')
    const e = await rejection(sys.mknod(p, fsc.S_IFIFO | 0o600, 0))
    expect(e.code).toBe('EEXIST')
    expect(e.syscall).toBe('mknod')
    expect(e.path).toBe(p)
  })
})

describe('renameat2Sync', () => {
  it('moves the file when flags are 0', async () => {
    const a = await file('a', 'A')
    const b = join(dir, 'b')
    sys.renameat2Sync(a, b, 0)
    expect(await readFile(b, 'utf8')).toBe('A')
    await expect(lstat(a)).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('rejects EEXIST with path and dest when RENAME_NOREPLACE meets an existing target', async () => {
    const a = await file('a', 'A')
    const b = await file('b', 'B')
    const e = await rejection(Promise.resolve().then(() => sys.renameat2Sync(a, b, sys.RENAME_NOREPLACE)))
    expect(e.code).toBe('EEXIST')
    expect(e.errno).toBe(-osc.errno.EEXIST)
    expect(e.syscall).toBe('renameat2')
    expect(e.path).toBe(a)
    expect(e.dest).toBe(b)
    expect(e.message).toBe(`EEXIST: file already exists, renameat2 '${a}' -> '${b}'`)
    expect(await readFile(b, 'utf8')).toBe('B')
  })

  it('swaps the two files when given RENAME_EXCHANGE', async () => {
    const a = await file('a', 'A')
    const b = await file('b', 'B')
    sys.renameat2Sync(a, b, sys.RENAME_EXCHANGE)
    expect(await readFile(a, 'utf8')).toBe('B')
    expect(await readFile(b, 'utf8')).toBe('A')
  })

  it('leaves a char 0/0 at the source when given RENAME_WHITEOUT', async () => {
    const a = await file('a', 'A')
    const b = join(dir, 'b')
    sys.renameat2Sync(a, b, sys.RENAME_WHITEOUT)
    expect(await readFile(b, 'utf8')).toBe('A')
    const st = await lstat(a)
    expect(st.isCharacterDevice()).toBe(true)
    expect(st.rdev).toBe(0)
  })
})

describe('utimensat', () => {
  it('sets mtime with nanosecond precision and leaves atime alone when atime is null', async () => {
    const p = await file('f')
    const before = await lstat(p, { bigint: true })
    const mtime = 1_600_000_000_123_456_789n
    await sys.utimensat(p, null, mtime, false)
    const after = await lstat(p, { bigint: true })
    expect(after.mtimeNs).toBe(mtime)
    expect(after.atimeNs).toBe(before.atimeNs)
  })

  it('leaves mtime alone when mtime is null', async () => {
    const p = await file('f')
    await sys.utimensat(p, 1n, 2n, false)
    await sys.utimensat(p, 1_000_000_000_000_000_001n, null, false)
    const st = await lstat(p, { bigint: true })
    expect(st.atimeNs).toBe(1_000_000_000_000_000_001n)
    expect(st.mtimeNs).toBe(2n)
  })

  it('stores times before 1970 when given a negative ns count', async () => {
    const p = await file('f')
    await sys.utimensat(p, null, -1_500_000_000n, false)
    expect((await lstat(p, { bigint: true })).mtimeNs).toBe(-1_500_000_000n)
  })

  it('uses the current time when given now', async () => {
    const p = await file('f')
    await sys.utimensat(p, 0n, 0n, false)
    const t0 = BigInt(Date.now() - 5_000) * 1_000_000n
    await sys.utimensat(p, 'now', 'now', false)
    const st = await lstat(p, { bigint: true })
    expect(st.mtimeNs > t0).toBe(true)
    expect(st.atimeNs > t0).toBe(true)
  })

  it('changes the symlink and not its target when nofollow is true', async () => {
    const target = await file('target')
    const link = join(dir, 'link')
    await symlink(target, link)
    await sys.utimensat(target, 5n, 5n, false)
    await sys.utimensat(link, 7_000_000_007n, 7_000_000_007n, true)
    expect((await lstat(link, { bigint: true })).mtimeNs).toBe(7_000_000_007n)
    expect((await lstat(target, { bigint: true })).mtimeNs).toBe(5n)
  })

  it('changes the target when nofollow is false', async () => {
    const target = await file('target')
    const link = join(dir, 'link')
    await symlink(target, link)
    await sys.utimensat(link, null, 9_000_000_009n, false)
    expect((await lstat(target, { bigint: true })).mtimeNs).toBe(9_000_000_009n)
    expect((await lstat(link, { bigint: true })).mtimeNs).not.toBe(9_000_000_009n)
  })

  it('rejects ENOENT with the path when the file is missing', async () => {
    const p = join(dir, 'nope')
    const e = await rejection(sys.utimensat(p, 0n, 0n, true))
    expect(e.code).toBe('ENOENT')
    expect(e.syscall).toBe('utimensat')
    expect(e.path).toBe(p)
  })
})

describe('futimens', () => {
  it('sets times with nanosecond precision through an fd and honours null', async () => {
    const p = await file('f')
    await sys.utimensat(p, 11n, 22n, false)
    await withFd(p, 'r+', (fd) => sys.futimens(fd, null, 1_700_000_000_000_000_333n))
    const st = await lstat(p, { bigint: true })
    expect(st.mtimeNs).toBe(1_700_000_000_000_000_333n)
    expect(st.atimeNs).toBe(11n)
  })

  it('rejects EBADF when the fd is invalid', async () => {
    const e = await rejection(sys.futimens(-1, 0n, 0n))
    expect(e.code).toBe('EBADF')
    expect(e.syscall).toBe('futimens')
  })
})

const MiB = 1024 * 1024

/** 4 MiB file: data at [0, 4096) and [1 MiB + 8192, +4096), holes elsewhere. */
async function sparse(): Promise<string> {
  const p = join(dir, 'sparse')
  const h = await open(p, 'w')
  try {
    await h.write(Buffer.alloc(4096, 1), 0, 4096, 0)
    await h.write(Buffer.alloc(4096, 2), 0, 4096, MiB + 8192)
  } finally {
    await h.close()
  }
  await truncate(p, 4 * MiB)
  return p
}

describe('seekData', () => {
  it('finds data at the offset when the offset is in data', async () => {
    const p = await sparse()
    expect(await withFd(p, 'r', (fd) => sys.seekData(fd, 0))).toBe(0)
  })

  it('skips the hole to the next data when the offset is in a hole', async () => {
    const p = await sparse()
    expect(await withFd(p, 'r', (fd) => sys.seekData(fd, 8192))).toBe(MiB + 8192)
  })

  it('resolves -1 when only a hole follows the offset', async () => {
    const p = await sparse()
    expect(await withFd(p, 'r', (fd) => sys.seekData(fd, 2 * MiB))).toBe(-1)
  })

  it('rejects EBADF when the fd is invalid', async () => {
    const e = await rejection(sys.seekData(-1, 0))
    expect(e.code).toBe('EBADF')
    expect(e.syscall).toBe('lseek')
  })

  it('throws a RangeError when the offset is not an integer', async () => {
    const p = await sparse()
    await expect(withFd(p, 'r', (fd) => sys.seekData(fd, 1.5))).rejects.toThrow(RangeError)
  })
})

describe('seekHole', () => {
  it('finds the end of the first data extent when the offset is in data', async () => {
    const p = await sparse()
    expect(await withFd(p, 'r', (fd) => sys.seekHole(fd, 0))).toBe(4096)
  })

  it('returns the offset itself when the offset is in a hole', async () => {
    const p = await sparse()
    expect(await withFd(p, 'r', (fd) => sys.seekHole(fd, 8192))).toBe(8192)
  })

  it('treats EOF as a hole when the last data is followed by a hole', async () => {
    const p = await sparse()
    const h = await withFd(p, 'r', (fd) => sys.seekHole(fd, MiB + 8192))
    expect(h).toBe(MiB + 8192 + 4096)
  })

  it('rejects ENXIO when the offset is past EOF', async () => {
    const p = await sparse()
    const e = await rejection(withFd(p, 'r', (fd) => sys.seekHole(fd, 5 * MiB)))
    expect(e.code).toBe('ENXIO')
  })
})

describe('copyFileRange', () => {
  it('copies the requested bytes between explicit offsets', async () => {
    const src = await file('src', 'hello, world')
    const dst = await file('dst', '............')
    const n = await withFd(src, 'r', (fin) => withFd(dst, 'r+', (fout) => sys.copyFileRange(fin, 7, fout, 2, 5)))
    expect(n).toBe(5)
    expect(await readFile(dst, 'utf8')).toBe('..world.....')
  })

  it('copies a whole large file when looped until 0', async () => {
    const data = Buffer.alloc(3 * MiB + 123)
    for (let i = 0; i < data.length; i += 4096) data[i] = (i / 4096) & 0xff
    const src = await file('src', data)
    const dst = await file('dst')
    await withFd(src, 'r', (fin) =>
      withFd(dst, 'r+', async (fout) => {
        let off = 0
        for (;;) {
          const n = await sys.copyFileRange(fin, off, fout, off, data.length)
          if (n === 0) break
          off += n
        }
      }),
    )
    expect((await readFile(dst)).equals(data)).toBe(true)
  })

  it('returns 0 when the input offset is at EOF', async () => {
    const src = await file('src', 'abc')
    const dst = await file('dst')
    expect(await withFd(src, 'r', (fin) => withFd(dst, 'r+', (fout) => sys.copyFileRange(fin, 3, fout, 0, 10)))).toBe(0)
  })

  it('rejects EBADF when an fd is invalid', async () => {
    const src = await file('src', 'abc')
    const e = await rejection(withFd(src, 'r', (fin) => sys.copyFileRange(fin, 0, -1, 0, 3)))
    expect(e.code).toBe('EBADF')
    expect(e.syscall).toBe('copy_file_range')
  })
})

describe('ficlone', () => {
  it('rejects with an errno code when the filesystem cannot reflink (ext4)', async () => {
    const src = await file('src', 'data')
    const dst = await file('dst')
    const e = await rejection(withFd(src, 'r', (fin) => withFd(dst, 'r+', (fout) => sys.ficlone(fin, fout))))
    expect(e).toBeInstanceOf(Error)
    expect(e.code).toMatch(/^E[A-Z]+$/)
    expect(['ENOTSUP', 'EOPNOTSUPP', 'EXDEV', 'EINVAL']).toContain(e.code)
    expect(e.errno).toBeLessThan(0)
    expect(e.syscall).toBe('ioctl')
    expect(await readFile(dst, 'utf8')).toBe('')
  })

  it('rejects EBADF when the source fd is invalid', async () => {
    const dst = await file('dst')
    const e = await rejection(withFd(dst, 'r+', (fout) => sys.ficlone(-1, fout)))
    expect(e.code).toBe('EBADF')
  })
})

/** What an lstat array must hold for `path`, from node:fs's nanosecond Stats. */
async function expectedNumbers(path: string): Promise<number[]> {
  const st = await lstat(path, { bigint: true })
  const sec = (ns: bigint): number => Number(ns / 1_000_000_000n)
  const nsec = (ns: bigint): number => Number(ns % 1_000_000_000n)
  return [
    Number(st.ino), Number(st.mode), Number(st.nlink), Number(st.uid), Number(st.gid), Number(st.rdev),
    Number(st.size), Number(st.blksize), Number(st.blocks),
    sec(st.atimeNs), nsec(st.atimeNs), sec(st.mtimeNs), nsec(st.mtimeNs), sec(st.ctimeNs), nsec(st.ctimeNs), Number(st.dev),
  ]
}

describe('lstatInto', () => {
  it('fills the numbers of a file, a symlink itself and a device, with nanosecond times', async () => {
    const f = await file('f', 'hello')
    await sys.utimensat(f, 1_700_000_000_123_456_789n, 1_600_000_000_000_000_001n, true)
    const link = join(dir, 'l')
    await symlink('f', link)
    const dev = join(dir, 'c')
    sys.mknodSync(dev, fsc.S_IFCHR | 0o600, sys.makedev(1, 3))
    const out = new Float64Array(sys.ST_FIELDS)
    for (const path of [f, link, dev, dir]) {
      expect(sys.lstatInto(path, out)).toBe(0)
      expect([...out]).toEqual(await expectedNumbers(path))
    }
    expect(sys.lstatInto(f, out)).toBe(0)
    expect([out[sys.ST.ATIME], out[sys.ST.ATIME_NS], out[sys.ST.MTIME_NS]]).toEqual([1_700_000_000, 123_456_789, 1])
  })

  it('returns the errno instead of throwing, and leaves the array alone', async () => {
    const f = await file('f')
    const out = new Float64Array(sys.ST_FIELDS).fill(7)
    expect(sys.lstatInto(join(dir, 'missing'), out)).toBe(osc.errno.ENOENT)
    expect(sys.lstatInto(join(f, 'below'), out)).toBe(osc.errno.ENOTDIR)
    expect(sys.lstatInto(join(dir, 'x'.repeat(5000)), out)).toBe(osc.errno.ENAMETOOLONG)
    expect(sys.lstatInto(`${f}\0/etc/passwd`, out)).toBe(osc.errno.EINVAL)
    expect([...out]).toEqual(new Array(sys.ST_FIELDS).fill(7))
    expect(() => sys.lstatInto(f, new Float64Array(4))).toThrow(TypeError)
    expect(() => sys.lstatNumbers(join(dir, 'missing'), out)).toThrow(expect.objectContaining({ code: 'ENOENT', syscall: 'lstat' }))
  })
})

describe('fstatNumbers', () => {
  it('fills the numbers of an open file, and throws like node:fs for a closed descriptor', async () => {
    const f = await file('f', 'hello')
    await sys.utimensat(f, 5_000_000_007n, 6_000_000_008n, true)
    const out = new Float64Array(sys.ST_FIELDS)
    await withFd(f, 'r', async (fd) => {
      expect([...sys.fstatNumbers(fd, out)]).toEqual(await expectedNumbers(f))
    })
    expect([out[sys.ST.ATIME], out[sys.ST.ATIME_NS], out[sys.ST.MTIME_NS]]).toEqual([5, 7, 8])
    expect(() => sys.fstatNumbers(1_000_000, out)).toThrow(expect.objectContaining({ code: 'EBADF', syscall: 'fstat' }))
  })
})

describe('stageSmallUnnamedSync', () => {
  const ORIGIN = 'trusted.layerfs.origin'
  const openFds = async (): Promise<number> => (await readdir('/proc/self/fd')).length

  it('copies a small file with one link unnamed, its own inode the origin, with one lstat handed back', async () => {
    const f = await file('small', 'hello')
    await sys.utimensat(f, 1_700_000_000_000_000_001n, 1_600_000_000_000_000_002n, true)
    const st = new Float64Array(sys.ST_FIELDS)
    // Taken before the copy reads the file (and moves its atime).
    const expected = await expectedNumbers(f)
    const copy = sys.stageSmallUnnamedSync(f, dir, 64, st, { data: true, fsync: false, change: { mode: 0o600 } })
    expect(copy).toBeDefined()
    try {
      expect([...st]).toEqual(expected)
      expect(copy!.bytes).toBe(5)
      const fd = copy!.fd
      expect(sys.fgetxattrSync(fd, ORIGIN)?.toString()).toBe(String((await lstat(f, { bigint: true })).ino))
      const numbers = sys.fstatNumbers(fd, new Float64Array(sys.ST_FIELDS))
      expect(numbers[sys.ST.MODE]! & 0o7777).toBe(0o600)
      expect([numbers[sys.ST.MTIME], numbers[sys.ST.MTIME_NS], numbers[sys.ST.NLINK]]).toEqual([1_600_000_000, 2, 0])
    } finally {
      closeSync(copy!.fd)
    }
  })

  it('declines a file with other links, a bigger file and a directory, making nothing, the lstat handed back', async () => {
    const linked = await file('linked', 'x')
    await link(linked, join(dir, 'second'))
    const big = await file('big', 'y'.repeat(65))
    const before = await openFds()
    const entries = await readdir(dir)
    for (const path of [linked, big, dir]) {
      const st = new Float64Array(sys.ST_FIELDS)
      expect(sys.stageSmallUnnamedSync(path, dir, 64, st, { data: true, fsync: false })).toBeUndefined()
      expect([...st]).toEqual(await expectedNumbers(path))
    }
    expect(await openFds()).toBe(before)
    expect(await readdir(dir)).toEqual(entries)
    expect(() => sys.stageSmallUnnamedSync(join(dir, 'missing'), dir, 64, new Float64Array(sys.ST_FIELDS), { data: true, fsync: false }))
      .toThrow(expect.objectContaining({ code: 'ENOENT' }))
  })

  it("records a directory's own inode as its origin ('own'), and none for a file with other links", async () => {
    await mkdir(join(dir, 'd'))
    const expected = await expectedNumbers(join(dir, 'd'))
    const st = new Float64Array(sys.ST_FIELDS)
    sys.stageCopySync(join(dir, 'd'), join(dir, 'd-copy'), 'dir', { data: false, fsync: false, origin: 'own' }, st)
    expect(sys.lgetxattrSync(join(dir, 'd-copy'), ORIGIN)?.toString()).toBe(String((await lstat(join(dir, 'd'), { bigint: true })).ino))
    // The numbers of the source, as the copy's own lstat read them.
    expect([...st]).toEqual(expected)
    const linked = await file('linked', 'x')
    await link(linked, join(dir, 'second'))
    sys.stageCopySync(linked, join(dir, 'linked-copy'), 'file', { data: true, fsync: false, origin: 'own' })
    expect(sys.lgetxattrSync(join(dir, 'linked-copy'), ORIGIN)).toBeUndefined()
    expect(await readFile(join(dir, 'linked-copy'), 'utf8')).toBe('x')
    // Unnamed, empty (no data asked): origin and numbers alike.
    const single = await file('single', 'abc')
    const before = await expectedNumbers(single)
    const empty = sys.stageCopyUnnamedSync(single, dir, { data: false, fsync: false, origin: 'own' }, st)
    try {
      expect(sys.fgetxattrSync(empty.fd, ORIGIN)?.toString()).toBe(String((await lstat(single, { bigint: true })).ino))
      expect(sys.fstatNumbers(empty.fd, new Float64Array(sys.ST_FIELDS))[sys.ST.SIZE]).toBe(0)
      expect([...st]).toEqual(before)
    } finally {
      closeSync(empty.fd)
    }
    expect(() => sys.stageCopySync(single, join(dir, 'bad'), 'file', { data: false, fsync: false }, new Float64Array(4))).toThrow(/Float64Array of 16/)
  })
})

describe('listDirSync', () => {
  it('lists every name but . and .., each with its lstat numbers', async () => {
    const names = ['a', 'b', 'née', 'new\nline', '.hidden', 'x'.repeat(255)]
    for (const n of names) await file(n, n)
    await symlink('a', join(dir, 'link'))
    sys.mknodSync(join(dir, 'wh'), fsc.S_IFCHR, 0)
    const { names: listed, numbers } = sys.listDirSync(dir, true)
    expect([...listed].sort()).toEqual([...names, 'link', 'wh'].sort())
    expect(numbers.length).toBe(listed.length * sys.ST_FIELDS)
    for (let i = 0; i < listed.length; i++) {
      const at = i * sys.ST_FIELDS
      expect([...numbers.subarray(at, at + sys.ST_FIELDS)]).toEqual(await expectedNumbers(join(dir, listed[i]!)))
    }
  })

  it('without stats gives each kind from the directory, and a char device (a whiteout?) in full', async () => {
    await file('f', 'x')
    await mkdir(join(dir, 'd'))
    await symlink('f', join(dir, 'l'))
    sys.mknodSync(join(dir, 'wh'), fsc.S_IFCHR, 0)
    sys.mknodSync(join(dir, 'null'), fsc.S_IFCHR | 0o600, sys.makedev(1, 3))
    const { names, numbers } = sys.listDirSync(dir, false)
    expect([...names].sort()).toEqual(['d', 'f', 'l', 'null', 'wh'])
    for (let i = 0; i < names.length; i++) {
      const at = i * sys.ST_FIELDS
      const path = join(dir, names[i]!)
      const expected = await expectedNumbers(path)
      if (names[i] === 'wh' || names[i] === 'null') {
        expect([...numbers.subarray(at, at + sys.ST_FIELDS)]).toEqual(expected)
      } else {
        expect(numbers[at + sys.ST.MODE]).toBe(expected[sys.ST.MODE]! & fsc.S_IFMT)
        expect(numbers[at + sys.ST.INO]).toBe(0) // not stat'ed
      }
    }
  })

  it('lists an empty directory as nothing, and throws like node:fs for what is not one', async () => {
    const f = await file('f')
    const empty = join(dir, 'empty')
    await mkdir(empty)
    expect(sys.listDirSync(empty, true)).toEqual({ names: [], numbers: new Float64Array(0) })
    expect(() => sys.listDirSync(join(dir, 'missing'), false)).toThrow(expect.objectContaining({ code: 'ENOENT', path: join(dir, 'missing') }))
    expect(() => sys.listDirSync(f, false)).toThrow(expect.objectContaining({ code: 'ENOTDIR' }))
  })
})

describe('listNamesSync', () => {
  it('lists the names alone, whiteouts and names that are not UTF-8 among them, and throws like node:fs', async () => {
    await file('f', 'x')
    await mkdir(join(dir, 'd'))
    sys.mknodSync(join(dir, 'wh'), fsc.S_IFCHR, 0)
    await writeFile(Buffer.concat([Buffer.from(dir + '/'), Buffer.from('6ce9', 'hex')]), '')
    expect([...sys.listNamesSync(dir)].sort()).toEqual(['d', 'f', 'l\udce9', 'wh'])
    expect(() => sys.listNamesSync(join(dir, 'missing'))).toThrow(expect.objectContaining({ code: 'ENOENT' }))
    expect(() => sys.listNamesSync(join(dir, 'f'))).toThrow(expect.objectContaining({ code: 'ENOTDIR' }))
  })
})

describe('names that are not UTF-8', () => {
  const bytesOf = (hex: string): Buffer => Buffer.from(hex, 'hex')

  it('decodes valid UTF-8 as itself and escapes each other byte as U+DC00 + byte', () => {
    expect(names.nameFromBytes(Buffer.from('café ✓ 😀'))).toBe('café ✓ 😀')
    expect(names.nameFromBytes(bytesOf('636166e9'))).toBe('caf\udce9') // Latin-1 é
    expect(names.nameFromBytes(bytesOf('eda080'))).toBe('\udced\udca0\udc80') // a surrogate in UTF-8 form
    expect(names.nameFromBytes(bytesOf('c0af'))).toBe('\udcc0\udcaf') // overlong '/'
    expect(names.nameFromBytes(bytesOf('f09f98'))).toBe('\udcf0\udc9f\udc98') // cut short
    expect(names.nameFromBytes(bytesOf('f4908080'))).toBe('\udcf4\udc90\udc80\udc80') // past U+10FFFF
  })

  it('keeps a literal U+FFFD apart from the byte that used to be replaced by it', () => {
    const literal = names.nameFromBytes(Buffer.from('a\ufffd'))
    const latin = names.nameFromBytes(bytesOf('61e9'))
    expect(literal).not.toBe(latin)
    expect(names.hostBytes(literal)).toEqual(Buffer.from('a\ufffd'))
    expect(names.hostBytes(latin)).toEqual(bytesOf('61e9'))
  })

  it('round-trips random bytes, and escapes exactly the names TextDecoder refuses', () => {
    const strict = new TextDecoder('utf-8', { fatal: true })
    let seed = 7
    const random = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32
    for (let i = 0; i < 20_000; i++) {
      const bytes = Buffer.from(Array.from({ length: 1 + Math.floor(random() * 10) }, () => (random() < 0.5 ? 0x80 + Math.floor(random() * 128) : 1 + Math.floor(random() * 255))))
      const name = names.nameFromBytes(bytes)
      expect(names.hostBytes(name)).toEqual(bytes)
      let valid = true
      try {
        expect(strict.decode(bytes)).toBe(name)
      } catch {
        valid = false
      }
      expect(name.isWellFormed()).toBe(valid)
    }
  })

  it('gives host calls a string when the name is UTF-8, and its bytes otherwise', () => {
    expect(names.hostPath('/a/café')).toBe('/a/café')
    expect(names.hostPath('/a/caf\udce9')).toEqual(bytesOf('2f612f636166e9'))
    expect(names.hostJoin(bytesOf('2fe9'), 'x\udcff')).toEqual(bytesOf('2fe92f78ff'))
    expect(names.byteLength('\udce9'.repeat(255))).toBe(255)
  })

  it('creates, lists, stats and reads back a Latin-1 name through the addon', async () => {
    const latin = names.nameFromBytes(bytesOf('6ce9'))
    await writeFile(Buffer.concat([Buffer.from(dir + '/'), bytesOf('6ce9')]), 'x')
    expect(sys.listDirSync(dir, false).names).toEqual([latin])
    const out = new Float64Array(sys.ST_FIELDS)
    expect(sys.lstatInto(names.hostJoin(dir, latin), out)).toBe(0)
    expect(out[sys.ST.SIZE]).toBe(1)
    await symlink(bytesOf('74e9'), join(dir, 'ln'))
    expect(sys.readlinkSync(join(dir, 'ln'))).toBe('t\udce9')
  })
})

describe('mallocThresholdsSync', () => {
  it('sets the daemon\'s thresholds, and takes only whole byte counts', () => {
    // In the test's process: the daemon's own values, which it sets at start (mount.ts).
    expect(() => sys.mallocThresholdsSync(1 << 20, 4 << 20)).not.toThrow()
    expect(() => sys.mallocThresholdsSync(1.5, 4 << 20)).toThrow(RangeError)
  })
})
