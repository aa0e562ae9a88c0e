// The low-level bridge (src/sys/fuse-ll.ts over native/fuse-ll*.c) seen through real syscalls: the
// memfs daemon serves a mount in a child process, this process uses it like any program would.
import { constants as fsc } from 'node:fs'
import { lstat, mkdir, open, readdir, readFile, readlink, rename, stat, statfs, symlink, unlink, utimes, writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import * as sys from '../../src/sys/native.js'
import { cleanup, type Daemon, opCounts, readWaits, sh, startDaemon, unavailable, waitForLine } from './harness.js'

const skip = unavailable()
if (skip) console.log(`skipping fuse-ll tests: ${skip}`)

const FIRST_INO = 2 ** 40 + 5

describe.skipIf(skip !== undefined)('fuse-ll session serving memfs', { timeout: 30_000 }, () => {
  let d: Daemon
  let m = ''
  beforeAll(async () => {
    d = await startDaemon({ allowOther: true, defaultPermissions: true })
    m = d.mnt
  }, 20_000)
  afterAll(async () => {
    if (d) await cleanup(d)
  }, 20_000)

  it('reads back written data when files are written, overwritten with O_TRUNC and appended', async () => {
    const p = join(m, 'data.txt')
    await writeFile(p, 'hello world')
    expect(await readFile(p, 'utf8')).toBe('hello world')
    await writeFile(p, 'bye') // O_TRUNC arrives in open flags (FUSE_CAP_ATOMIC_O_TRUNC)
    expect(await readFile(p, 'utf8')).toBe('bye')
    await writeFile(p, '!', { flag: 'a' })
    expect(await readFile(p, 'utf8')).toBe('bye!')
  })

  it('keeps large files intact when writes span several max_write chunks', async () => {
    const p = join(m, 'big.bin')
    const data = randomBytes(3 * 1024 * 1024 + 123)
    await writeFile(p, data)
    const back = await readFile(p)
    expect(back.length).toBe(data.length)
    expect(back.equals(data)).toBe(true)
    const h = await open(p, 'r')
    try {
      const part = Buffer.alloc(10)
      await h.read(part, 0, 10, 2 * 1024 * 1024 + 1)
      expect(part.equals(data.subarray(2 * 1024 * 1024 + 1, 2 * 1024 * 1024 + 11))).toBe(true)
    } finally {
      await h.close()
    }
  })

  it('reports 64-bit inode numbers intact when stat and readdir see nodes above 2^40', async () => {
    const p = join(m, 'ino-check')
    await writeFile(p, '')
    const st = await stat(p, { bigint: true })
    expect(st.ino >= BigInt(FIRST_INO)).toBe(true)
    // d_ino straight from getdents (no stat): Python's scandir exposes it as DirEntry.inode()
    const py = sh('python3', ['-c', 'import os,sys; print(next(e.inode() for e in os.scandir(sys.argv[1]) if e.name == "ino-check"))', m])
    if (py.code === 0) expect(BigInt(py.out.trim())).toBe(st.ino)
    const found = sh('find', [m, '-maxdepth', '1', '-name', 'ino-check', '-printf', '%i'])
    expect(found.out.trim()).toBe(String(st.ino))
  })

  it('lists names with their types when a directory holds files, dirs and symlinks', async () => {
    const dir = join(m, 'types')
    await mkdir(dir)
    await writeFile(join(dir, 'f'), 'x')
    await mkdir(join(dir, 'sub'))
    await symlink('f', join(dir, 'link'))
    const ents = await readdir(dir, { withFileTypes: true })
    const kinds = Object.fromEntries(ents.map((e) => [e.name, e.isFile() ? 'file' : e.isDirectory() ? 'dir' : e.isSymbolicLink() ? 'link' : '?']))
    expect(kinds).toEqual({ f: 'file', sub: 'dir', link: 'link' })
  })

  it('lists every entry exactly once when a directory needs several readdir buffers', async () => {
    const dir = join(m, 'many')
    await mkdir(dir)
    const names = Array.from({ length: 700 }, (_, i) => `entry-with-a-longish-name-${String(i).padStart(4, '0')}`)
    for (const n of names) await writeFile(join(dir, n), '')
    expect((await readdir(dir)).sort()).toEqual(names)
    // again: by now the kernel may use plain readdir instead of readdirplus
    expect((await readdir(dir)).sort()).toEqual(names)
    const ls = sh('ls', ['-f', dir])
    expect(ls.out.split('\n').filter((n) => n.startsWith('entry-')).length).toBe(700)
    const counts = await opCounts(d)
    expect(counts.readdirplus ?? 0).toBeGreaterThan(0)
  })

  it('delivers forget when unlinked inodes leave the kernel cache', async () => {
    const before = (await opCounts(d)).forget ?? 0
    for (let i = 0; i < 20; i++) {
      await writeFile(join(m, `gone-${i}`), 'x')
      await unlink(join(m, `gone-${i}`))
    }
    const deadline = Date.now() + 5000
    let after = before
    while (after === before && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50))
      after = (await opCounts(d)).forget ?? 0
    }
    expect(after).toBeGreaterThan(before)
  })

  it('tells each read how many other requests wait: none alone, some while others are unanswered', async () => {
    await writeFile(join(m, 'lone'), 'x'.repeat(100))
    for (let i = 0; i < 4; i++) await writeFile(join(m, `slow-${i}`), 'slow' + 'y'.repeat(100))
    await readWaits(d)
    expect((await readFile(join(m, 'lone'))).length).toBe(100)
    const alone = await readWaits(d)
    expect(alone.length).toBeGreaterThan(0)
    expect(alone.every((w) => w === 0)).toBe(true)
    // Each slow read stays unanswered for 200 ms: the reads that arrive meanwhile count it.
    await Promise.all([0, 1, 2, 3].map((i) => readFile(join(m, `slow-${i}`))))
    const busy = await readWaits(d)
    expect(busy.length).toBeGreaterThanOrEqual(4)
    expect(busy.every((w) => Number.isInteger(w) && w >= 0)).toBe(true)
    expect(Math.max(...busy)).toBeGreaterThanOrEqual(1)
  })

  it('drops a cached entry at once when the daemon calls notifyInvalEntry', async () => {
    await writeFile(join(m, 'oob'), 'x')
    await stat(join(m, 'oob')) // cached now (entry timeout 1 s)
    d.send('oob-unlink oob')
    expect(Number((await waitForLine(d, /^inval oob (-?\d+)$/))[1])).toBe(0)
    await expect(stat(join(m, 'oob'))).rejects.toMatchObject({ code: 'ENOENT' })
    // a name the kernel does not know: -ENOENT, which is normal
    d.send('oob-unlink never-seen')
    expect(Number((await waitForLine(d, /^inval never-seen (-?\d+)$/))[1])).toBe(-2)
  })

  it('stores nanosecond times when touch -m -d sets mtime and leaves atime alone (UTIME_OMIT)', async () => {
    const p = join(m, 'times')
    await writeFile(p, '')
    const before = await stat(p, { bigint: true })
    expect(sh('touch', ['-m', '-d', '2001-02-03 04:05:06.123456789 UTC', p]).code).toBe(0)
    const after = await stat(p, { bigint: true })
    expect(after.mtimeNs).toBe(981173106123456789n)
    expect(after.atimeNs).toBe(before.atimeNs)
    expect(sh('touch', ['-a', '-d', '1999-12-31 23:59:59.000000001 UTC', p]).code).toBe(0)
    expect((await stat(p, { bigint: true })).atimeNs).toBe(946684799000000001n)
  })

  it('sets the current time when touch uses UTIME_NOW, and whole seconds through utimes', async () => {
    const p = join(m, 'now')
    await writeFile(p, '')
    await utimes(p, 1000, 2000)
    let st = await stat(p, { bigint: true })
    expect([st.atimeNs, st.mtimeNs]).toEqual([1000n * 10n ** 9n, 2000n * 10n ** 9n])
    const t0 = BigInt(Date.now() - 2000) * 10n ** 6n
    expect(sh('touch', [p]).code).toBe(0)
    st = await stat(p, { bigint: true })
    expect(st.mtimeNs > t0 && st.atimeNs > t0).toBe(true)
  })

  it('truncates and chmods through setattr', async () => {
    const p = join(m, 'attrs')
    await writeFile(p, '0123456789')
    const h = await open(p, 'r+')
    try {
      await h.truncate(4) // ftruncate: setattr with fh
    } finally {
      await h.close()
    }
    expect(await readFile(p, 'utf8')).toBe('0123')
    expect(sh('chmod', ['0640', p]).code).toBe(0)
    expect((await stat(p)).mode & 0o7777).toBe(0o640)
  })

  it('honours RENAME_NOREPLACE and RENAME_EXCHANGE when renameat2 passes flags', async () => {
    const a = join(m, 'ren-a')
    const b = join(m, 'ren-b')
    await writeFile(a, 'A')
    await writeFile(b, 'B')
    await expect(Promise.resolve().then(() => sys.renameat2Sync(a, b, sys.RENAME_NOREPLACE))).rejects.toMatchObject({ code: 'EEXIST' })
    sys.renameat2Sync(a, b, sys.RENAME_EXCHANGE)
    expect([await readFile(a, 'utf8'), await readFile(b, 'utf8')]).toEqual(['B', 'A'])
    await rename(a, b)
    expect(await readFile(b, 'utf8')).toBe('B')
    await expect(lstat(a)).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('round-trips symlink targets and hard links', async () => {
    await symlink('some/where/../target', join(m, 'sl'))
    expect(await readlink(join(m, 'sl'))).toBe('some/where/../target')
    expect((await lstat(join(m, 'sl'))).isSymbolicLink()).toBe(true)
    await writeFile(join(m, 'hl-src'), 'same')
    expect(sh('ln', [join(m, 'hl-src'), join(m, 'hl-dst')]).code).toBe(0)
    const [s1, s2] = [await stat(join(m, 'hl-src')), await stat(join(m, 'hl-dst'))]
    expect(s1.ino).toBe(s2.ino)
    expect(s2.nlink).toBe(2)
  })

  it('stores, lists and removes xattrs when setfattr and getfattr are used', async () => {
    const p = join(m, 'xa')
    await writeFile(p, '')
    expect(sh('setfattr', ['-n', 'user.color', '-v', 'blue', p]).code).toBe(0)
    expect(sh('getfattr', ['--absolute-names', '--only-values', '-n', 'user.color', p]).out).toBe('blue')
    expect(sh('getfattr', ['--absolute-names', '-d', p]).out).toContain('user.color="blue"')
    await expect(sys.lsetxattr(p, 'user.color', 'red', sys.XATTR_CREATE)).rejects.toMatchObject({ code: 'EEXIST' })
    expect((await sys.lgetxattr(p, 'user.color'))?.toString()).toBe('blue')
    expect(await sys.llistxattr(p)).toEqual(['user.color'])
    await sys.lremovexattr(p, 'user.color')
    expect(await sys.lgetxattr(p, 'user.color')).toBeUndefined()
  })

  it('reports statfs numbers above 2^32 intact', async () => {
    const s = await statfs(m)
    expect(s.bsize).toBe(4096)
    expect(s.blocks).toBe(2 ** 33 + 3)
    expect(s.bfree).toBe(2 ** 32 + 1)
    expect(s.bavail).toBe(2 ** 32)
    expect(s.files).toBe(1_000_000)
  })

  it("passes the caller's uid and gid when another user creates a file with allow_other", async () => {
    const p = join(m, 'by-1000')
    const r = sh('setpriv', ['--reuid=1000', '--regid=1000', '--clear-groups', 'touch', p])
    expect(r.code, r.out).toBe(0)
    const st = await stat(p)
    expect([st.uid, st.gid]).toEqual([1000, 1000])
    // default_permissions: the kernel checks modes, so uid 1000 cannot write a root 0644 file
    await writeFile(join(m, 'root-only'), 'x', { mode: 0o644 })
    expect(sh('setpriv', ['--reuid=1000', '--regid=1000', '--clear-groups', 'sh', '-c', `echo y > ${join(m, 'root-only')}`]).code).not.toBe(0)
  })

  it('answers ENOENT for a missing name and EEXIST for O_EXCL on an existing one', async () => {
    await expect(stat(join(m, 'nope'))).rejects.toMatchObject({ code: 'ENOENT' })
    await writeFile(join(m, 'excl'), '')
    await expect(open(join(m, 'excl'), fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY)).rejects.toMatchObject({ code: 'EEXIST' })
  })
})
