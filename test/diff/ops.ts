// Operations as data, an OpTarget interface (one method per op kind) and the runner that turns each op's
// outcome into a JSON-able, filesystem-independent result: values, 'ok', or { error: 'ECODE' }.
//
// FsTarget drives a mounted directory with node:fs/promises; another target (e.g. the in-process union
// object) can implement OpTarget and run the very same scenarios. Paths in ops are relative to the root.
import { constants as C } from 'node:fs'
import * as fs from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { createHash } from 'node:crypto'
import { ErrnoError, describeCmd, runCmd, runOrErrno } from '../helpers/exec.js'
import { defaultXattr, type XattrBackend } from './xattr.js'
import { RENAME_EXCHANGE, RENAME_NOREPLACE, RENAME_WHITEOUT, renameat2Sync, seekData, seekHole } from '../../src/sys/native.js'

// ---------------------------------------------------------------------------------------------------------
// ops

/** A node flag string ('r', 'r+', 'w', 'wx', 'a', 'ax', 'w+', 'a+' ...) or a list of O_* names. */
export type OpenFlags = string | string[]

export interface OpenSpec {
  /** creation mode (default 0o644) */
  mode?: number
  /** data to write after opening */
  write?: string
  /** position for the write (pwrite); default: the current position */
  at?: number
  /** read the whole file (from offset 0) through the fd after the write */
  read?: boolean
  /** fstat the fd (after the write) */
  stat?: boolean
}

/** What `asUser` runs: a write by a process without CAP_FSETID (so the kernel kills setuid/setgid). */
/** open(2)'s O_TMPFILE on Linux (__O_TMPFILE | O_DIRECTORY); node:fs does not export it. */
const O_TMPFILE = 0o20000000 | fs.constants.O_DIRECTORY

export type RemovedDirStep = 'nlink' | 'mode' | 'list' | 'listxattr' | 'chmod' | 'chown' | 'utimes' | 'getxattr' | 'setxattr' | 'removexattr'

export type RenameFlag = 'noreplace' | 'exchange' | 'whiteout'

/** Steps of heldOpen: through the file held open ('read' its first bytes, its 'size'), or a change
 *  through the other name ('write' over its start, 'append', 'truncate' to 2 bytes, an O_TRUNC
 *  open 'otrunc' that writes one byte, 'unlink' it, 'mkdir' a directory there), or 'renameTo': the
 *  held name renamed to the other. */
export type HeldStep = 'read' | 'size' | 'write' | 'append' | 'truncate' | 'otrunc' | 'unlink' | 'mkdir' | 'renameTo'
/** Steps of mmap, on one descriptor of the file (opened 'r' or 'r+') and the one shared map of it
 *  that 'share' makes (the whole file; writable when the descriptor is): 'shareWritable' asks for a
 *  writable shared map whatever the descriptor ('ok' or its errno); 'private' writes 'PRV' into a
 *  private map and gives what that map then holds; 'exec' maps it private and executable; 'poke'
 *  writes 'MAP' at the shared map's start, 'pokeEnd' 'END' at its end; 'peek' gives its first 32
 *  bytes; 'msync'; 'pwrite' writes 'PW' at 4 through the descriptor; 'otherRead' reads 32 bytes
 *  through a second open, 'otherWrite' writes 'OW' at 8 through one; 'grow' truncates the file to
 *  8 KiB and maps it again, 'shrink' to 2 bytes; 'size' is the descriptor's fstat; 'touched' whether
 *  its mtime is past the fixtures' (2001). */
export type MmapStep = 'share' | 'shareWritable' | 'private' | 'exec' | 'poke' | 'pokeEnd' | 'peek' | 'msync' | 'pwrite' | 'otherRead' | 'otherWrite' | 'grow' | 'shrink' | 'size' | 'touched'

export type UnlinkedStep = 'mode' | 'ftruncate' | 'truncate' | 'reopen' | 'reopenRead' | 'fchmod' | 'fchown' | 'futimes' | 'setxattr' | 'getxattr' | 'listxattr' | 'removexattr' | 'read'

export type UserOp =
  | ['appendFile', string, string]
  | ['truncate', string, number]
  | ['openTrunc', string, string]
  | ['readFile', string]
  /** a new file or directory, made with this umask */
  | ['create' | 'mkdir', string, number]
  | ['unlink', string, '']
  /** to the second path */
  | ['rename', string, string]
  | ['chmod', string, number]

export type Op =
  | ['writeFile', string, string]
  | ['appendFile', string, string]
  | ['open', string, OpenFlags, OpenSpec?]
  /** open(dir, O_TMPFILE | O_RDWR, mode), write `content`, then link it (ln -L /proc/PID/fd/N) at
   *  each name: its link count after each step */
  | ['tmpfile', string, number, string, string[]]
  /** open a directory, remove it, then ask through the open fd: its link count, mode, listing
   *  (through /proc/PID/fd/N) and xattr names; or change it (through /proc/PID/fd/N: mode 0701,
   *  owner 1000:1001, times 1e9 s) and read the change back */
  | ['removedDir', string, RemovedDirStep[]]
  /** open, unlink, then each step through the open file (xattrs through /proc/PID/fd/N): what each
   *  step left (size, mode, owner, mtime, value, names) or its errno */
  | ['unlinkedFd', string, OpenFlags, UnlinkedStep[]]
  /** open the first path for reading and keep it open while the steps change the file through the
   *  second (a hard link's other name): what each step gave, or its errno */
  | ['heldOpen', string, string, HeldStep[]]
  /** memory maps of the file (see MmapStep): what each step gave, or its errno */
  | ['mmap', string, 'r' | 'r+', MmapStep[]]
  /** offsets past 2^53 (JS's exact integers) and up to 2^63-1, on a descriptor opened 'r+': pwrite,
   *  pread, ftruncate, truncate by path, fallocate, SEEK_DATA and SEEK_HOLE; each one's result or
   *  errno, then the file's size */
  | ['hugeOffsets', string]
  | ['truncate', string, number]
  | ['unlink', string]
  | ['rmdir', string]
  | ['rm', string]
  | ['mkdir', string, number?]
  | ['rename', string, string]
  /** renameat2(2) with RENAME_* flags: 'noreplace', 'exchange', 'whiteout' */
  | ['renameat2', string, string, RenameFlag]
  | ['link', string, string]
  | ['symlink', string, string]
  | ['readlink', string]
  | ['realpath', string]
  | ['chmod', string, number]
  | ['chown', string, number, number]
  | ['lchown', string, number, number]
  | ['utimes', string, number, number]
  | ['lutimes', string, number, number]
  | ['stat', string]
  | ['lstat', string]
  | ['readFile', string]
  | ['readdir', string]
  | ['access', string, number]
  | ['setxattr', string, string, string]
  | ['getxattr', string, string]
  | ['listxattr', string]
  | ['removexattr', string, string]
  | ['mkfifo', string]
  | ['mknod', string, 'c' | 'b', number, number]
  /** fallocate(1): allocate (growing the file), keep the size, punch a hole or zero a range */
  | ['fallocate', string, FallocateMode, number, number]
  /** lseek(2) with SEEK_DATA or SEEK_HOLE on a read-only descriptor: the offset it lands on */
  | ['seek', string, 'data' | 'hole', number]
  /** setfacl with its options ('-m u:1000:r', '-x u:1000', '-b'); getfacl: every entry, ids numeric */
  | ['setfacl', string, string]
  | ['getfacl', string]
  /** dd(1) with direct I/O on both sides (O_DIRECT, page-aligned buffers): the first `blocks` 4 KiB
   *  blocks of the first file over the start of the second (not truncated), as `uid` when given */
  | ['ddDirect', string, string, number, number?]
  /** chattr(1) with a change such as '+A' or '-i'; lsattr(1) -d: the flags it shows */
  | ['chattr', string, string]
  | ['lsattr', string]
  /** an ioctl no file attribute answers (TCGETS, as isatty(3) asks it): its errno */
  | ['ttyIoctl', string]
  | ['statfsNameMax']
  /** create a file whose name is `n` bytes long in `dir` (composite: target.writeFile) */
  | ['createLongName', string, number]
  /** run a write as uid:gid with these supplementary groups (default none), without capabilities */
  | ['asUser', number, number, UserOp, number[]?]

export type FallocateMode = 'allocate' | 'keep-size' | 'punch-hole' | 'zero-range'

export type FileType = 'file' | 'dir' | 'symlink' | 'fifo' | 'char' | 'block' | 'socket' | 'unknown'

/** What a target reports for stat/lstat, before normalisation. */
export interface RawStat {
  type: FileType
  /** full st_mode */
  mode: number
  uid: number
  gid: number
  size: number
  nlink: number
  ino: bigint | number
  dev: bigint | number
  rdev: number
  mtimeMs: number
}

export interface OpTarget {
  /** Human-readable name for messages. */
  readonly name: string
  writeFile(p: string, data: string): Promise<void>
  appendFile(p: string, data: string): Promise<void>
  /** Open, optionally write/read/fstat, close. */
  open(p: string, flags: OpenFlags, spec: OpenSpec): Promise<{ read?: Buffer; stat?: RawStat }>
  unlinkedFd(p: string, flags: OpenFlags, steps: UnlinkedStep[]): Promise<string[]>
  heldOpen(held: string, other: string, steps: HeldStep[]): Promise<string[]>
  mmap(p: string, flags: 'r' | 'r+', steps: MmapStep[]): Promise<string[]>
  hugeOffsets(p: string): Promise<string[]>
  tmpfile(dir: string, mode: number, content: string, names: string[]): Promise<number[]>
  removedDir(p: string, steps: RemovedDirStep[]): Promise<string[]>
  truncate(p: string, len: number): Promise<void>
  unlink(p: string): Promise<void>
  rmdir(p: string): Promise<void>
  /** Recursive removal (rm -r, no -f). */
  rm(p: string): Promise<void>
  mkdir(p: string, mode: number): Promise<void>
  rename(from: string, to: string): Promise<void>
  renameat2(from: string, to: string, flag: RenameFlag): Promise<void>
  link(existing: string, p: string): Promise<void>
  symlink(target: string, p: string): Promise<void>
  readlink(p: string): Promise<string>
  /** Resolve symlinks; returns a path relative to the root ('' for the root), or throws. */
  realpath(p: string): Promise<string>
  chmod(p: string, mode: number): Promise<void>
  chown(p: string, uid: number, gid: number): Promise<void>
  lchown(p: string, uid: number, gid: number): Promise<void>
  utimes(p: string, atimeSec: number, mtimeSec: number): Promise<void>
  lutimes(p: string, atimeSec: number, mtimeSec: number): Promise<void>
  stat(p: string): Promise<RawStat>
  lstat(p: string): Promise<RawStat>
  readFile(p: string): Promise<Buffer>
  /** Entry names, in whatever order the fs returns them (duplicates kept). */
  readdir(p: string): Promise<string[]>
  access(p: string, mode: number): Promise<void>
  setxattr(p: string, name: string, value: Buffer): Promise<void>
  getxattr(p: string, name: string): Promise<Buffer>
  listxattr(p: string): Promise<string[]>
  removexattr(p: string, name: string): Promise<void>
  /** Attributes of a path, never following a symlink (for snapshots); names filtered by the getfattr regex. */
  lxattrs(paths: string[], pattern: string): Promise<Map<string, Record<string, Buffer>>>
  mkfifo(p: string): Promise<void>
  mknod(p: string, type: 'c' | 'b', major: number, minor: number): Promise<void>
  fallocate(p: string, mode: FallocateMode, offset: number, length: number): Promise<void>
  seek(p: string, whence: 'data' | 'hole', offset: number): Promise<number>
  setfacl(p: string, spec: string): Promise<void>
  getfacl(p: string): Promise<string>
  ddDirect(src: string, dst: string, blocks: number, uid?: number): Promise<void>
  chattr(p: string, change: string): Promise<void>
  lsattr(p: string): Promise<string>
  ttyIoctl(p: string): Promise<void>
  statfsNameMax(): Promise<number>
  asUser(uid: number, gid: number, op: UserOp, groups: number[]): Promise<void>
}

// ---------------------------------------------------------------------------------------------------------
// FsTarget: a mounted directory

/** Placeholder for the mount point in symlink targets (fixtures and ops), so absolute links compare. */
export const MNT_TOKEN = '{{MNT}}'

function typeOf(mode: number): FileType {
  switch (mode & C.S_IFMT) {
    case C.S_IFREG:
      return 'file'
    case C.S_IFDIR:
      return 'dir'
    case C.S_IFLNK:
      return 'symlink'
    case C.S_IFIFO:
      return 'fifo'
    case C.S_IFCHR:
      return 'char'
    case C.S_IFBLK:
      return 'block'
    case C.S_IFSOCK:
      return 'socket'
    default:
      return 'unknown'
  }
}

export function rawStatOf(st: import('node:fs').BigIntStats): RawStat {
  const mode = Number(st.mode)
  return {
    type: typeOf(mode),
    mode,
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: Number(st.size),
    nlink: Number(st.nlink),
    ino: st.ino,
    dev: st.dev,
    rdev: Number(st.rdev),
    mtimeMs: Number(st.mtimeNs / 1_000_000n),
  }
}

function openFlags(flags: OpenFlags): string | number {
  if (typeof flags === 'string') return flags
  let n = 0
  for (const f of flags) {
    const v = (C as unknown as Record<string, number | undefined>)[f]
    if (v === undefined) throw new Error(`unknown open flag ${f}`)
    n |= v
  }
  return n
}

export class FsTarget implements OpTarget {
  readonly name: string
  readonly root: string
  constructor(
    root: string,
    private readonly xattr: XattrBackend = defaultXattr,
  ) {
    this.root = resolve(root)
    this.name = `fs:${this.root}`
  }
  private abs(p: string): string {
    return p === '' || p === '.' ? this.root : join(this.root, p)
  }
  private subst(target: string): string {
    return target.split(MNT_TOKEN).join(this.root)
  }
  private unsubst(target: string): string {
    return target === this.root || target.startsWith(this.root + '/') ? MNT_TOKEN + target.slice(this.root.length) : target
  }

  writeFile(p: string, data: string): Promise<void> {
    return fs.writeFile(this.abs(p), data)
  }
  appendFile(p: string, data: string): Promise<void> {
    return fs.appendFile(this.abs(p), data)
  }
  async open(p: string, flags: OpenFlags, spec: OpenSpec): Promise<{ read?: Buffer; stat?: RawStat }> {
    const fh = await fs.open(this.abs(p), openFlags(flags), spec.mode ?? 0o644)
    try {
      const out: { read?: Buffer; stat?: RawStat } = {}
      if (spec.write !== undefined) {
        const buf = Buffer.from(spec.write)
        await fh.write(buf, 0, buf.length, spec.at ?? null)
      }
      if (spec.read) {
        const st = await fh.stat()
        const buf = Buffer.alloc(Number(st.size))
        const { bytesRead } = await fh.read(buf, 0, buf.length, 0)
        out.read = buf.subarray(0, bytesRead)
      }
      if (spec.stat) out.stat = rawStatOf(await fh.stat({ bigint: true }))
      return out
    } finally {
      await fh.close()
    }
  }
  truncate(p: string, len: number): Promise<void> {
    return fs.truncate(this.abs(p), len)
  }
  removedDir(p: string, steps: RemovedDirStep[]): Promise<string[]> {
    return this.#afterRemoval(p, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY, fs.rmdir, steps, async (fh, proc, step) => {
      if (step === 'nlink') return String((await fh.stat()).nlink)
      if (step === 'mode') return (await fh.stat()).mode.toString(8)
      if (step === 'list') return (await fs.readdir(proc)).join(',')
      if (step === 'chmod') {
        await fs.chmod(proc, 0o701)
        return (await fh.stat()).mode.toString(8)
      }
      if (step === 'chown') {
        await fs.chown(proc, 1000, 1001)
        const st = await fh.stat()
        return `${st.uid}:${st.gid}`
      }
      if (step === 'utimes') {
        await fs.utimes(proc, 1e9, 1e9)
        return String((await fh.stat()).mtimeMs)
      }
      if (step === 'getxattr') return (await this.xattr.get(proc, 'user.x')).toString()
      if (step === 'setxattr') {
        await this.xattr.set(proc, 'user.new', 'v')
        return (await this.xattr.get(proc, 'user.new')).toString()
      }
      if (step === 'removexattr') await this.xattr.remove(proc, 'user.x')
      return (await this.xattr.list(proc)).filter((n) => n.startsWith('user.')).sort().join(',')
    })
  }
  /** Open `p`, `remove` its name, then run each step through the open file (also reachable as
   *  /proc/PID/fd/N): what each gave, or its errno. */
  async #afterRemoval<S>(
    p: string, flags: string | number, remove: (path: string) => Promise<void>, steps: S[],
    run: (fh: fs.FileHandle, proc: string, step: S) => Promise<string>,
  ): Promise<string[]> {
    const fh = await fs.open(this.abs(p), flags)
    const proc = `/proc/${process.pid}/fd/${fh.fd}`
    const out: string[] = []
    try {
      await remove(this.abs(p))
      for (const step of steps) {
        try {
          out.push(await run(fh, proc, step))
        } catch (e) {
          out.push(String((e as { code?: string }).code ?? e))
        }
      }
    } finally {
      await fh.close()
    }
    return out
  }
  async tmpfile(dir: string, mode: number, content: string, names: string[]): Promise<number[]> {
    const fh = await fs.open(this.abs(dir), O_TMPFILE | fs.constants.O_RDWR, mode)
    try {
      await fh.write(content)
      const nlinks = [Number((await fh.stat()).nlink)]
      for (const name of names) {
        await runOrErrno('ln', ['-L', `/proc/${process.pid}/fd/${fh.fd}`, this.abs(name)])
        nlinks.push(Number((await fh.stat()).nlink))
      }
      return nlinks
    } finally {
      await fh.close()
    }
  }
  async heldOpen(held: string, other: string, steps: HeldStep[]): Promise<string[]> {
    const fh = await fs.open(this.abs(held), 'r')
    const out: string[] = []
    try {
      for (const step of steps) {
        try {
          out.push(step === 'renameTo' ? (await fs.rename(this.abs(held), this.abs(other)), 'ok') : await this.#heldStep(fh, this.abs(other), step))
        } catch (e) {
          out.push(String((e as { code?: string }).code ?? e))
        }
      }
    } finally {
      await fh.close()
    }
    return out
  }
  async mmap(p: string, flags: 'r' | 'r+', steps: MmapStep[]): Promise<string[]> {
    // Node has no mmap: one Python process runs every step, on one descriptor.
    const out = await runOrErrno('python3', ['-c', MMAP_SCRIPT, this.abs(p), flags, ...steps])
    return JSON.parse(out) as string[]
  }
  async hugeOffsets(p: string): Promise<string[]> {
    const out = await runOrErrno('python3', ['-c', HUGE_OFFSETS_SCRIPT, this.abs(p)])
    return JSON.parse(out) as string[]
  }
  async #heldStep(fh: fs.FileHandle, other: string, step: Exclude<HeldStep, 'renameTo'>): Promise<string> {
    switch (step) {
      case 'read': {
        const buf = Buffer.alloc(64)
        const { bytesRead } = await fh.read(buf, 0, 64, 0)
        return buf.subarray(0, bytesRead).toString()
      }
      case 'size':
        return String((await fh.stat()).size)
      case 'write':
        await fs.writeFile(other, 'NEW', { flag: 'r+' })
        return 'ok'
      case 'append':
        await fs.appendFile(other, '+')
        return 'ok'
      case 'truncate':
        await fs.truncate(other, 2)
        return 'ok'
      case 'otrunc':
        await fs.writeFile(other, 'T')
        return 'ok'
      case 'unlink':
        await fs.unlink(other)
        return 'ok'
      case 'mkdir':
        await fs.mkdir(other)
        return 'ok'
    }
  }
  unlinkedFd(p: string, flags: OpenFlags, steps: UnlinkedStep[]): Promise<string[]> {
    return this.#afterRemoval(p, openFlags(flags), fs.unlink, steps, (fh, proc, step) => this.#unlinkedStep(fh, proc, step))
  }
  async #unlinkedStep(fh: fs.FileHandle, proc: string, step: UnlinkedStep): Promise<string> {
    switch (step) {
      case 'mode':
        return ((await fh.stat()).mode & 0o7777).toString(8)
      case 'ftruncate':
        await fh.truncate(3)
        return String((await fh.stat()).size)
      case 'truncate':
        // truncate(2) by path, through /proc: possible on a descriptor open for reading only. (Node's
        // fs.truncate opens the file and truncates the descriptor.)
        await runOrErrno('python3', ['-c', 'import os, sys; os.truncate(sys.argv[1], 5)', proc])
        return String((await fh.stat()).size)
      case 'reopen': {
        // Opened again for writing through /proc, whatever the first descriptor's mode.
        const again = await fs.open(proc, 'r+')
        try {
          await again.write('XY', 0)
        } finally {
          await again.close()
        }
        return String((await fh.stat()).size)
      }
      case 'reopenRead': {
        const again = await fs.open(proc, 'r')
        try {
          const buf = Buffer.alloc(64)
          const { bytesRead } = await again.read(buf, 0, 64, 0)
          return buf.subarray(0, bytesRead).toString()
        } finally {
          await again.close()
        }
      }
      case 'fchmod':
        await fh.chmod(0o600)
        return ((await fh.stat()).mode & 0o7777).toString(8)
      case 'fchown':
        await fh.chown(1000, 1001)
        return `${(await fh.stat()).uid}:${(await fh.stat()).gid}`
      case 'futimes':
        await fh.utimes(1, 2)
        return String((await fh.stat()).mtimeMs)
      case 'setxattr':
        await this.xattr.set(proc, 'user.new', 'v')
        return 'ok'
      case 'getxattr':
        return (await this.xattr.get(proc, 'user.x')).toString()
      case 'listxattr':
        return (await this.xattr.list(proc)).filter((n) => n.startsWith('user.')).sort().join(',')
      case 'removexattr':
        await this.xattr.remove(proc, 'user.x')
        return 'ok'
      case 'read': {
        const buf = Buffer.alloc(64)
        const { bytesRead } = await fh.read(buf, 0, 64, 0)
        return buf.subarray(0, bytesRead).toString()
      }
    }
  }
  unlink(p: string): Promise<void> {
    return fs.unlink(this.abs(p))
  }
  rmdir(p: string): Promise<void> {
    return fs.rmdir(this.abs(p))
  }
  rm(p: string): Promise<void> {
    return fs.rm(this.abs(p), { recursive: true })
  }
  async mkdir(p: string, mode: number): Promise<void> {
    await fs.mkdir(this.abs(p), { mode })
  }
  rename(from: string, to: string): Promise<void> {
    return fs.rename(this.abs(from), this.abs(to))
  }
  async renameat2(from: string, to: string, flag: RenameFlag): Promise<void> {
    const flags = { noreplace: RENAME_NOREPLACE, exchange: RENAME_EXCHANGE, whiteout: RENAME_WHITEOUT }[flag]
    renameat2Sync(this.abs(from), this.abs(to), flags)
  }
  link(existing: string, p: string): Promise<void> {
    return fs.link(this.abs(existing), this.abs(p))
  }
  symlink(target: string, p: string): Promise<void> {
    return fs.symlink(this.subst(target), this.abs(p))
  }
  async readlink(p: string): Promise<string> {
    return this.unsubst(await fs.readlink(this.abs(p)))
  }
  async realpath(p: string): Promise<string> {
    const r = await fs.realpath(this.abs(p))
    if (r === this.root) return ''
    return r.startsWith(this.root + '/') ? r.slice(this.root.length + 1) : `(outside) ${r}`
  }
  chmod(p: string, mode: number): Promise<void> {
    return fs.chmod(this.abs(p), mode)
  }
  chown(p: string, uid: number, gid: number): Promise<void> {
    return fs.chown(this.abs(p), uid, gid)
  }
  lchown(p: string, uid: number, gid: number): Promise<void> {
    return fs.lchown(this.abs(p), uid, gid)
  }
  utimes(p: string, a: number, m: number): Promise<void> {
    return fs.utimes(this.abs(p), a, m)
  }
  lutimes(p: string, a: number, m: number): Promise<void> {
    return fs.lutimes(this.abs(p), a, m)
  }
  async stat(p: string): Promise<RawStat> {
    return rawStatOf(await fs.stat(this.abs(p), { bigint: true }))
  }
  async lstat(p: string): Promise<RawStat> {
    return rawStatOf(await fs.lstat(this.abs(p), { bigint: true }))
  }
  readFile(p: string): Promise<Buffer> {
    return fs.readFile(this.abs(p))
  }
  readdir(p: string): Promise<string[]> {
    return fs.readdir(this.abs(p))
  }
  access(p: string, mode: number): Promise<void> {
    return fs.access(this.abs(p), mode)
  }
  setxattr(p: string, name: string, value: Buffer): Promise<void> {
    return this.xattr.set(this.abs(p), name, value)
  }
  getxattr(p: string, name: string): Promise<Buffer> {
    return this.xattr.get(this.abs(p), name)
  }
  listxattr(p: string): Promise<string[]> {
    return this.xattr.list(this.abs(p))
  }
  removexattr(p: string, name: string): Promise<void> {
    return this.xattr.remove(this.abs(p), name)
  }
  async lxattrs(paths: string[], pattern: string): Promise<Map<string, Record<string, Buffer>>> {
    const dump = await this.xattr.dumpMany(paths.map((p) => this.abs(p)), pattern)
    return new Map(paths.map((p) => [p, dump.get(this.abs(p)) ?? {}]))
  }
  async mkfifo(p: string): Promise<void> {
    await runOrErrno('mkfifo', ['--', this.abs(p)])
  }
  async fallocate(p: string, mode: FallocateMode, offset: number, length: number): Promise<void> {
    const flag = { 'allocate': [], 'keep-size': ['--keep-size'], 'punch-hole': ['--punch-hole'], 'zero-range': ['--zero-range'] }[mode]
    await runOrErrno('fallocate', [...flag, '--offset', String(offset), '--length', String(length), '--', this.abs(p)])
  }

  async seek(p: string, whence: 'data' | 'hole', offset: number): Promise<number> {
    const fh = await fs.open(this.abs(p), 'r')
    try {
      if (whence === 'hole') return await seekHole(fh.fd, offset)
      const at = await seekData(fh.fd, offset)
      if (at < 0) throw new ErrnoError('ENXIO', `lseek SEEK_DATA ${p} ${offset}`)
      return at
    } finally {
      await fh.close()
    }
  }

  async setfacl(p: string, spec: string): Promise<void> {
    await runOrErrno('setfacl', [...spec.split(' '), '--', this.abs(p)])
  }

  async getfacl(p: string): Promise<string> {
    return (await runOrErrno('getfacl', ['--omit-header', '--numeric', '--absolute-names', '--', this.abs(p)])).trim()
  }

  async ddDirect(src: string, dst: string, blocks: number, uid?: number): Promise<void> {
    const dd = ['dd', `if=${this.abs(src)}`, `of=${this.abs(dst)}`, 'bs=4096', `count=${blocks}`, 'iflag=direct', 'oflag=direct', 'conv=notrunc', 'status=none']
    const as = uid === undefined ? [] : ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups']
    const [cmd, ...args] = [...as, ...dd]
    await runOrErrno(cmd!, args)
  }

  async chattr(p: string, change: string): Promise<void> {
    await runOrErrno('chattr', [change, '--', this.abs(p)])
  }

  async ttyIoctl(p: string): Promise<void> {
    await runOrErrno('python3', ['-c', 'import fcntl, os, sys, termios; fcntl.ioctl(os.open(sys.argv[1], os.O_RDONLY), termios.TCGETS, bytes(64))', this.abs(p)])
  }
  async lsattr(p: string): Promise<string> {
    return (await runOrErrno('lsattr', ['-d', '--', this.abs(p)])).split(' ')[0]!
  }

  async mknod(p: string, type: 'c' | 'b', major: number, minor: number): Promise<void> {
    await runOrErrno('mknod', ['--', this.abs(p), type, String(major), String(minor)])
  }
  async statfsNameMax(): Promise<number> {
    return Number((await runOrErrno('stat', ['-f', '-c', '%l', this.root])).trim())
  }
  async asUser(uid: number, gid: number, op: UserOp, groups: number[]): Promise<void> {
    const ids = [`--reuid=${uid}`, `--regid=${gid}`, groups.length ? `--groups=${groups.join(',')}` : '--clear-groups']
    const arg = op[0] === 'rename' ? this.abs(op[2]) : String(op[2])
    const r = await runCmd('setpriv', [...ids, process.execPath, '-e', USER_OP_SCRIPT, op[0], this.abs(op[1]), arg])
    if (r.code === 0 && !r.timedOut) return
    const code = r.stderr.trim()
    throw new ErrnoError(/^E[A-Z]+$/.test(code) ? code : 'EUNKNOWN', describeCmd(r))
  }
}

/** What `mmap` runs: argv = [path, 'r' | 'r+', ...steps]; prints each step's result (bytes as
 *  Latin-1 text) or errno name, as a JSON array. */
const MMAP_SCRIPT = `
import errno, json, mmap, os, sys
path, flags, steps = sys.argv[1], sys.argv[2], sys.argv[3:]
writable = flags == 'r+'
fd = os.open(path, os.O_RDWR if writable else os.O_RDONLY)
shared = None
def share():
    global shared
    if shared is not None: shared.close()
    prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
    shared = mmap.mmap(fd, 0, mmap.MAP_SHARED, prot)
def text(b): return bytes(b).decode('latin-1')
def other_read():
    o = os.open(path, os.O_RDONLY)
    try: return text(os.pread(o, 32, 0))
    finally: os.close(o)
def other_write():
    o = os.open(path, os.O_WRONLY)
    try: os.pwrite(o, b'OW', 8); return 'ok'
    finally: os.close(o)
def step(s):
    if s == 'share': share(); return 'ok'
    if s == 'shareWritable':
        mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE).close(); return 'ok'
    if s == 'private':
        m = mmap.mmap(fd, 0, mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_WRITE)
        m[0:3] = b'PRV'; got = text(m[0:32]); m.close(); return got
    if s == 'exec':
        m = mmap.mmap(fd, 0, mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_EXEC)
        got = text(m[0:32]); m.close(); return got
    if shared is None and s in ('poke', 'pokeEnd', 'peek', 'msync'): return 'unmapped'
    if s == 'poke': shared[0:3] = b'MAP'; return 'ok'
    if s == 'pokeEnd': shared[len(shared) - 3:] = b'END'; return 'ok'
    if s == 'peek': return text(shared[0:32])
    if s == 'msync': shared.flush(); return 'ok'
    if s == 'pwrite': os.pwrite(fd, b'PW', 4); return 'ok'
    if s == 'otherRead': return other_read()
    if s == 'otherWrite': return other_write()
    if s == 'grow': os.ftruncate(fd, 8192); share(); return 'ok'
    if s == 'shrink': os.ftruncate(fd, 2); return 'ok'
    if s == 'size': return str(os.fstat(fd).st_size)
    if s == 'touched': return str(os.fstat(fd).st_mtime > 1e9 + 1e8)
    raise KeyError('no such step: ' + s)
out = []
for s in steps:
    try: out.append(step(s))
    except OSError as e: out.append(errno.errorcode.get(e.errno, str(e.errno)))
    except ValueError: out.append('empty')  # Python maps no empty file
print(json.dumps(out))
`

/** What `hugeOffsets` runs: argv = [path]; prints each call's result or errno name as a JSON array. */
const HUGE_OFFSETS_SCRIPT = `
import errno, json, os, sys
path = sys.argv[1]
fd = os.open(path, os.O_RDWR)
out = []
def call(f):
    try: out.append(str(f()))
    except OSError as e: out.append(errno.errorcode.get(e.errno, str(e.errno)))
for off in (2**53 - 8, 2**53, 2**60, 2**63 - 2):
    call(lambda: os.pwrite(fd, b'#', off))
    call(lambda: len(os.pread(fd, 4, off)))
for size in (2**53, 2**62):
    call(lambda: os.ftruncate(fd, size))
    call(lambda: os.truncate(path, size))
call(lambda: os.posix_fallocate(fd, 2**53, 4096))
call(lambda: os.lseek(fd, 2**63 - 1, os.SEEK_DATA))
call(lambda: os.lseek(fd, 2**63 - 1, os.SEEK_HOLE))
out.append(str(os.fstat(fd).st_size))
out.append(os.pread(fd, 64, 0).decode('latin-1'))
print(json.dumps(out))
`

/** The child `asUser` runs: argv = [kind, absolute path, argument]; prints the errno code when it fails. */
const USER_OP_SCRIPT = `
const fs = require('node:fs')
const [kind, path, arg] = process.argv.slice(1)
try {
  if (kind === 'appendFile') fs.appendFileSync(path, arg)
  else if (kind === 'truncate') fs.truncateSync(path, Number(arg))
  else if (kind === 'openTrunc') fs.writeFileSync(path, arg, { flag: 'w' })
  else if (kind === 'readFile') fs.readFileSync(path)
  else if (kind === 'create') { process.umask(Number(arg)); fs.writeFileSync(path, 'new', { flag: 'wx', mode: 0o666 }) }
  else if (kind === 'mkdir') { process.umask(Number(arg)); fs.mkdirSync(path, 0o777) }
  else if (kind === 'unlink') fs.unlinkSync(path)
  else if (kind === 'rename') fs.renameSync(path, arg)
  else if (kind === 'chmod') fs.chmodSync(path, Number(arg))
  else throw Object.assign(new Error(kind), { code: 'EINVAL' })
} catch (e) {
  process.stderr.write(String(e.code))
  process.exit(1)
}`

// ---------------------------------------------------------------------------------------------------------
// normalisation

/** Replaces raw identifiers (inode numbers, device numbers) by labels in first-seen order: ino#1, ino#2 ... */
export class Labeler {
  private readonly map = new Map<string, string>()
  constructor(private readonly prefix: string) {}
  label(key: bigint | number | string): string {
    const k = String(key)
    let l = this.map.get(k)
    if (l === undefined) {
      l = `${this.prefix}#${this.map.size + 1}`
      this.map.set(k, l)
    }
    return l
  }
}

export interface NormContext {
  ino: Labeler
  dev: Labeler
  /** Unix seconds at the scenario's start: fixture times lie before it, anything at or after it is 'recent'. */
  startSec: number
}

export function newNormContext(startSec: number): NormContext {
  return { ino: new Labeler('ino'), dev: new Labeler('dev'), startSec }
}

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json }

export function normTime(ms: number, ctx: NormContext): number | 'recent' {
  const s = Math.floor(ms / 1000)
  const now = Date.now() / 1000
  return s >= ctx.startSec - 1 && s <= now + 3600 ? 'recent' : s
}

export function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0')
}

export interface StatResult {
  [k: string]: Json
}

export function normStat(st: RawStat, ctx: NormContext): StatResult {
  const r: StatResult = { type: st.type, mode: octal(st.mode), uid: st.uid, gid: st.gid }
  if (st.type === 'file' || st.type === 'symlink') r.size = st.size
  r.nlink = st.nlink
  if (st.type === 'char' || st.type === 'block') r.rdev = `${Math.floor(st.rdev / 256) & 0xfff}:${(st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00)}`
  r.ino = ctx.ino.label(st.ino)
  r.dev = ctx.dev.label(st.dev)
  r.mtime = normTime(st.mtimeMs, ctx)
  return r
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex')
}

/** File contents in a result: the text itself when short and printable, else size and hash. */
export function contentOf(b: Buffer): Json {
  const s = b.toString('utf8')
  if (b.length <= 200 && Buffer.from(s).equals(b) && !/[\0-\x08\x0e-\x1f]/.test(s)) return s
  return { size: b.length, sha256: sha256(b) }
}

const ERRNO_ALIASES: Record<string, string> = { ENOTSUP: 'EOPNOTSUPP' }

export function errorCode(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code
  if (typeof code === 'string') return ERRNO_ALIASES[code] ?? code
  throw e // not a filesystem error: a bug in the harness, let it surface
}

export const isUserXattr = (n: string): boolean => n.startsWith('user.')

/** Run one op against a target; never throws for filesystem errors. */
export async function runOp(t: OpTarget, op: Op, ctx: NormContext): Promise<Json> {
  try {
    switch (op[0]) {
      case 'writeFile':
        await t.writeFile(op[1], op[2])
        return 'ok'
      case 'appendFile':
        await t.appendFile(op[1], op[2])
        return 'ok'
      case 'open': {
        const r = await t.open(op[1], op[2], op[3] ?? {})
        if (r.read === undefined && r.stat === undefined) return 'ok'
        const out: { [k: string]: Json } = {}
        if (r.read !== undefined) out.read = contentOf(r.read)
        if (r.stat !== undefined) out.stat = normStat(r.stat, ctx)
        return out
      }
      case 'truncate':
        await t.truncate(op[1], op[2])
        return 'ok'
      case 'tmpfile':
        return await t.tmpfile(op[1], op[2], op[3], op[4])
      case 'removedDir':
        return await t.removedDir(op[1], op[2])
      case 'unlinkedFd':
        return await t.unlinkedFd(op[1], op[2], op[3])
      case 'heldOpen':
        return await t.heldOpen(op[1], op[2], op[3])
      case 'mmap':
        return await t.mmap(op[1], op[2], op[3])
      case 'hugeOffsets':
        return await t.hugeOffsets(op[1])
      case 'unlink':
        await t.unlink(op[1])
        return 'ok'
      case 'rmdir':
        await t.rmdir(op[1])
        return 'ok'
      case 'rm':
        await t.rm(op[1])
        return 'ok'
      case 'mkdir':
        await t.mkdir(op[1], op[2] ?? 0o755)
        return 'ok'
      case 'rename':
        await t.rename(op[1], op[2])
        return 'ok'
      case 'renameat2':
        await t.renameat2(op[1], op[2], op[3])
        return 'ok'
      case 'link':
        await t.link(op[1], op[2])
        return 'ok'
      case 'symlink':
        await t.symlink(op[1], op[2])
        return 'ok'
      case 'readlink':
        return await t.readlink(op[1])
      case 'realpath':
        return await t.realpath(op[1])
      case 'chmod':
        await t.chmod(op[1], op[2])
        return 'ok'
      case 'chown':
        await t.chown(op[1], op[2], op[3])
        return 'ok'
      case 'lchown':
        await t.lchown(op[1], op[2], op[3])
        return 'ok'
      case 'utimes':
        await t.utimes(op[1], op[2], op[3])
        return 'ok'
      case 'lutimes':
        await t.lutimes(op[1], op[2], op[3])
        return 'ok'
      case 'stat':
        return normStat(await t.stat(op[1]), ctx)
      case 'lstat':
        return normStat(await t.lstat(op[1]), ctx)
      case 'readFile':
        return contentOf(await t.readFile(op[1]))
      case 'readdir':
        return (await t.readdir(op[1])).sort()
      case 'access':
        await t.access(op[1], op[2])
        return 'ok'
      case 'setxattr':
        await t.setxattr(op[1], op[2], Buffer.from(op[3]))
        return 'ok'
      case 'getxattr':
        return contentOf(await t.getxattr(op[1], op[2]))
      case 'listxattr':
        return (await t.listxattr(op[1])).filter(isUserXattr).sort()
      case 'removexattr':
        await t.removexattr(op[1], op[2])
        return 'ok'
      case 'mkfifo':
        await t.mkfifo(op[1])
        return 'ok'
      case 'mknod':
        await t.mknod(op[1], op[2], op[3], op[4])
        return 'ok'
      case 'fallocate':
        await t.fallocate(op[1], op[2], op[3], op[4])
        return 'ok'
      case 'seek':
        return await t.seek(op[1], op[2], op[3])
      case 'setfacl':
        await t.setfacl(op[1], op[2])
        return 'ok'
      case 'getfacl':
        return await t.getfacl(op[1])
      case 'ddDirect':
        await t.ddDirect(op[1], op[2], op[3], op[4])
        return 'ok'
      case 'chattr':
        await t.chattr(op[1], op[2])
        return 'ok'
      case 'lsattr':
        return await t.lsattr(op[1])
      case 'ttyIoctl':
        await t.ttyIoctl(op[1])
        return 'ok'
      case 'statfsNameMax':
        return await t.statfsNameMax()
      case 'asUser':
        await t.asUser(op[1], op[2], op[3], op[4] ?? [])
        return 'ok'
      case 'createLongName': {
        const dir = op[1] === '' || op[1] === '.' ? '' : op[1] + '/'
        await t.writeFile(dir + 'n'.repeat(op[2]), 'long')
        return 'ok'
      }
      default: {
        const never: never = op
        throw new Error(`unknown op ${JSON.stringify(never)}`)
      }
    }
  } catch (e) {
    return { error: errorCode(e) }
  }
}

export async function runOps(t: OpTarget, ops: Op[], ctx: NormContext): Promise<Json[]> {
  const out: Json[] = []
  for (const op of ops) out.push(await runOp(t, op, ctx))
  return out
}

export { ErrnoError }
