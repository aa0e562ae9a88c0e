// A tiny in-memory filesystem over src/sys/fuse-ll.ts, run as a CHILD process by the tests: a FUSE
// daemon must never serve requests caused by its own thread, so the test process makes the real
// syscalls and this process answers them.
//
//   node test/fuse-ll/memfs-daemon.mjs <mountpoint> [options-json]
//
// Prints `ready` once mounted (INIT done) and `exit <reason>` when the session ends, then exits 0.
// Commands on stdin, one a line:
//   unmount            session.unmount() (stdin closing, i.e. the test runner went away, does too)
//   stats              prints `stats {"<op>": count, ...}`
//   waits              prints `waits [n, ...]`: each read's `waiting` since the last `waits`
//   process-exit       process.exit(3) while mounted (the session must still unmount)
//   oob-unlink <name>  removes /<name> behind the kernel's back, then notifyInvalEntry(1, name):
//                      prints `inval <name> <result>` Node ids start at 2^40 + 5 and file handles at 2^33 + 7 so that 64-bit values
// are exercised end to end. Plain JS (imports the compiled dist/) because tsx is not installed.
import { createInterface } from 'node:readline'
import {
  RENAME_EXCHANGE, RENAME_NOREPLACE, SETATTR_ATIME, SETATTR_ATIME_NOW, SETATTR_GID, SETATTR_MODE,
  SETATTR_MTIME, SETATTR_MTIME_NOW, SETATTR_SIZE, SETATTR_UID, Session,
} from '../../dist/src/sys/fuse-ll.js'

const [mountpoint, optJson] = process.argv.slice(2)
if (!mountpoint) {
  console.error('usage: memfs-daemon.mjs <mountpoint> [options-json]')
  process.exit(2)
}
const options = {
  fsname: 'memfs', subtype: 'memfs', allowOther: false, defaultPermissions: false, readOnly: false,
  ...(optJson ? JSON.parse(optJson) : {}),
}

const E = { ENOENT: 2, EIO: 5, EEXIST: 17, ENOTDIR: 20, EISDIR: 21, EINVAL: 22, ERANGE: 34, ENOTEMPTY: 39, ENODATA: 61 }
const S_IFMT = 0o170000, S_IFDIR = 0o040000, S_IFREG = 0o100000, S_IFLNK = 0o120000
const O_TRUNC = 0o1000
const XATTR_CREATE = 1, XATTR_REPLACE = 2
const TIMEOUT = 1 // seconds of kernel attr/entry caching

function now() {
  const ms = Date.now()
  return { sec: Math.floor(ms / 1000), nsec: (ms % 1000) * 1e6 }
}

const nodes = new Map()
let nextIno = 2 ** 40 + 5
let nextFh = 2 ** 33 + 7

function newNode(mode, ctx, extra = {}) {
  const t = now()
  const n = {
    ino: nodes.size === 0 ? 1 : nextIno++, mode, uid: ctx.uid, gid: ctx.gid, nlink: (mode & S_IFMT) === S_IFDIR ? 2 : 1,
    rdev: 0, data: Buffer.alloc(0), target: '', children: new Map(), xattrs: new Map(),
    atime: t, mtime: t, ctime: t, ...extra,
  }
  nodes.set(n.ino, n)
  return n
}
newNode(S_IFDIR | 0o777, { uid: 0, gid: 0 })

function attr(n) {
  const size = (n.mode & S_IFMT) === S_IFLNK ? Buffer.byteLength(n.target) : (n.mode & S_IFMT) === S_IFDIR ? 4096 : n.data.length
  return {
    ino: n.ino, mode: n.mode, nlink: n.nlink, uid: n.uid, gid: n.gid, rdev: n.rdev, size, blksize: 4096,
    blocks: Math.ceil(size / 512), atimeSec: n.atime.sec, atimeNsec: n.atime.nsec, mtimeSec: n.mtime.sec,
    mtimeNsec: n.mtime.nsec, ctimeSec: n.ctime.sec, ctimeNsec: n.ctime.nsec,
  }
}
const entry = (n) => ({ ino: n.ino, generation: 1, attr: attr(n), attrTimeout: TIMEOUT, entryTimeout: TIMEOUT })
const isDir = (n) => (n.mode & S_IFMT) === S_IFDIR

class FsError extends Error {
  constructor(errno) {
    super(`errno ${errno}`)
    this.errno = errno
  }
}
function get(ino) {
  const n = nodes.get(ino)
  if (!n) throw new FsError(E.ENOENT)
  return n
}
function dir(ino) {
  const n = get(ino)
  if (!isDir(n)) throw new FsError(E.ENOTDIR)
  return n
}
function child(parent, name) {
  const ino = dir(parent).children.get(name)
  return ino === undefined ? undefined : get(ino)
}
function add(parent, name, n) {
  const p = dir(parent)
  if (p.children.has(name)) throw new FsError(E.EEXIST)
  p.children.set(name, n.ino)
  if (isDir(n)) p.nlink++
  p.mtime = p.ctime = now()
}
function drop(parent, name) {
  const p = dir(parent)
  const n = child(parent, name)
  if (!n) throw new FsError(E.ENOENT)
  p.children.delete(name)
  if (isDir(n)) p.nlink--
  n.nlink -= isDir(n) ? 2 : 1
  p.mtime = p.ctime = n.ctime = now()
  return n
}
const opened = new Map() // fh → ino

const counts = {}
/** What each read request said of the others waiting (r.waiting), since the last `waits`. */
let readWaits = []

const fs = new Session(
  (r) => {
    counts[r.op] = (counts[r.op] ?? 0) + 1
    try {
      serve(r)
    } catch (e) {
      if (e instanceof FsError) fs.replyErr(r.req, e.errno)
      else throw e
    }
  },
  (reason) => {
    process.stdout.write(`exit ${reason}\n`)
    rl.close()
  },
)

function serve(r) {
  switch (r.op) {
    case 'lookup': {
      const n = child(r.parent, r.name)
      if (!n) return fs.replyErr(r.req, E.ENOENT)
      return fs.replyEntry(r.req, entry(n))
    }
    case 'forget':
      return
    case 'getattr':
      return fs.replyAttr(r.req, attr(get(r.ino)), TIMEOUT)
    case 'setattr': {
      const n = get(r.ino)
      const t = now()
      if (r.valid & SETATTR_MODE) n.mode = (n.mode & S_IFMT) | (r.mode & 0o7777)
      if (r.valid & SETATTR_UID) n.uid = r.uid
      if (r.valid & SETATTR_GID) n.gid = r.gid
      if (r.valid & SETATTR_SIZE) {
        const d = Buffer.alloc(r.size)
        n.data.copy(d, 0, 0, Math.min(r.size, n.data.length))
        n.data = d
        n.mtime = t
      }
      if (r.valid & SETATTR_ATIME_NOW) n.atime = t
      else if (r.valid & SETATTR_ATIME) n.atime = { sec: r.atimeSec, nsec: r.atimeNsec }
      if (r.valid & SETATTR_MTIME_NOW) n.mtime = t
      else if (r.valid & SETATTR_MTIME) n.mtime = { sec: r.mtimeSec, nsec: r.mtimeNsec }
      n.ctime = t
      return fs.replyAttr(r.req, attr(n), TIMEOUT)
    }
    case 'readlink':
      return fs.replyReadlink(r.req, get(r.ino).target)
    case 'mknod': case 'mkdir': case 'symlink': {
      if (child(r.parent, r.name)) throw new FsError(E.EEXIST)
      const mode = r.op === 'mkdir' ? S_IFDIR | r.mode : r.op === 'symlink' ? S_IFLNK | 0o777 : r.mode
      const n = newNode(mode, r.ctx, r.op === 'symlink' ? { target: r.target } : { rdev: r.op === 'mknod' ? r.rdev : 0 })
      add(r.parent, r.name, n)
      return fs.replyEntry(r.req, entry(n))
    }
    case 'create': {
      if (child(r.parent, r.name)) throw new FsError(E.EEXIST)
      const n = newNode(S_IFREG | (r.mode & 0o7777), r.ctx)
      add(r.parent, r.name, n)
      const fh = nextFh++
      opened.set(fh, n.ino)
      return fs.replyCreate(r.req, entry(n), fh, {})
    }
    case 'unlink': case 'rmdir': {
      const n = child(r.parent, r.name)
      if (!n) throw new FsError(E.ENOENT)
      if (r.op === 'rmdir' && !isDir(n)) throw new FsError(E.ENOTDIR)
      if (r.op === 'unlink' && isDir(n)) throw new FsError(E.EISDIR)
      if (r.op === 'rmdir' && n.children.size) throw new FsError(E.ENOTEMPTY)
      drop(r.parent, r.name)
      return fs.replyErr(r.req, 0)
    }
    case 'rename': {
      const src = child(r.parent, r.name)
      if (!src) throw new FsError(E.ENOENT)
      const dst = child(r.newparent, r.newname)
      if (r.flags & RENAME_EXCHANGE) {
        if (!dst) throw new FsError(E.ENOENT)
        dir(r.parent).children.set(r.name, dst.ino)
        dir(r.newparent).children.set(r.newname, src.ino)
        return fs.replyErr(r.req, 0)
      }
      if (dst) {
        if (r.flags & RENAME_NOREPLACE) throw new FsError(E.EEXIST)
        if (isDir(dst) && dst.children.size) throw new FsError(E.ENOTEMPTY)
        drop(r.newparent, r.newname)
      }
      dir(r.parent).children.delete(r.name)
      if (isDir(src)) dir(r.parent).nlink--
      add(r.newparent, r.newname, src)
      src.ctime = now()
      return fs.replyErr(r.req, 0)
    }
    case 'link': {
      const n = get(r.ino)
      add(r.newparent, r.newname, n)
      n.nlink++
      n.ctime = now()
      return fs.replyEntry(r.req, entry(n))
    }
    case 'open': case 'opendir': {
      const n = get(r.ino)
      if (r.op === 'open' && r.flags & O_TRUNC) {
        n.data = Buffer.alloc(0)
        n.mtime = n.ctime = now()
      }
      const fh = nextFh++
      opened.set(fh, n.ino)
      return fs.replyOpen(r.req, fh, {})
    }
    case 'read': {
      if (opened.get(r.fh) !== r.ino) throw new FsError(E.EIO) // the fh must round-trip intact
      const d = get(r.ino).data.subarray(r.offset, r.offset + r.size)
      readWaits.push(r.waiting)
      // A file whose data starts with `slow` is answered late: its read stays unanswered meanwhile.
      if (d.subarray(0, 4).toString() === 'slow') return void setTimeout(() => fs.replyBuf(r.req, d, d.length), 200)
      return fs.replyBuf(r.req, d, d.length)
    }
    case 'write': {
      if (opened.get(r.fh) !== r.ino) throw new FsError(E.EIO)
      const n = get(r.ino)
      const end = r.offset + r.data.length
      if (end > n.data.length) {
        const d = Buffer.alloc(end)
        n.data.copy(d)
        n.data = d
      }
      r.data.copy(n.data, r.offset)
      n.mtime = n.ctime = now()
      return fs.replyWrite(r.req, r.data.length)
    }
    case 'release': case 'releasedir':
      opened.delete(r.fh)
      return r.answered ? undefined : fs.replyErr(r.req, 0)
    case 'flush': case 'fsync': case 'fsyncdir': case 'access':
      return fs.replyErr(r.req, 0)
    case 'readdir': case 'readdirplus': {
      const d = dir(r.ino)
      const all = [
        ['.', d],
        ['..', d], // good enough for a test fs: the parent is not tracked
        ...[...d.children].map(([name, ino]) => [name, get(ino)]),
      ]
      const rest = all.slice(r.offset).map(([name, n], i) => ({ name, n, next: r.offset + i + 1 }))
      if (r.op === 'readdir') {
        return fs.replyReaddir(r.req, r.size, rest.map(({ name, n, next }) => ({ name, ino: n.ino, mode: n.mode, next })))
      }
      // '.' and '..' carry no lookup (node id 0), as in libfuse's passthrough_ll
      const plus = rest.map(({ name, n, next }) => ({
        name, next, entry: name === '.' || name === '..' ? { ...entry(n), ino: 0 } : entry(n),
      }))
      fs.replyReaddirPlus(r.req, r.size, plus)
      return
    }
    case 'statfs':
      return fs.replyStatfs(r.req, {
        bsize: 4096, frsize: 4096, blocks: 2 ** 33 + 3, bfree: 2 ** 32 + 1, bavail: 2 ** 32, files: 1_000_000, ffree: 999_000, namemax: 255,
      })
    case 'setxattr': {
      const n = get(r.ino)
      if (r.flags & XATTR_CREATE && n.xattrs.has(r.name)) throw new FsError(E.EEXIST)
      if (r.flags & XATTR_REPLACE && !n.xattrs.has(r.name)) throw new FsError(E.ENODATA)
      n.xattrs.set(r.name, Buffer.from(r.value))
      n.ctime = now()
      return fs.replyErr(r.req, 0)
    }
    case 'getxattr': {
      const v = get(r.ino).xattrs.get(r.name)
      if (!v) throw new FsError(E.ENODATA)
      if (r.size === 0) return fs.replyXattr(r.req, v.length)
      if (r.size < v.length) throw new FsError(E.ERANGE)
      return fs.replyBuf(r.req, v, v.length)
    }
    case 'listxattr': {
      const list = Buffer.from([...get(r.ino).xattrs.keys()].map((k) => k + '\0').join(''))
      if (r.size === 0) return fs.replyXattr(r.req, list.length)
      if (r.size < list.length) throw new FsError(E.ERANGE)
      return fs.replyBuf(r.req, list, list.length)
    }
    case 'removexattr': {
      const n = get(r.ino)
      if (!n.xattrs.delete(r.name)) throw new FsError(E.ENODATA)
      return fs.replyErr(r.req, 0)
    }
    default:
      throw new FsError(E.EINVAL)
  }
}

const rl = createInterface({ input: process.stdin })
rl.on('line', (line) => {
  const [cmd, arg = ''] = line.trim().split(' ')
  if (cmd === 'unmount') fs.unmount()
  else if (cmd === 'process-exit') process.exit(3)
  else if (cmd === 'stats') process.stdout.write(`stats ${JSON.stringify(counts)}\n`)
  else if (cmd === 'waits') {
    process.stdout.write(`waits ${JSON.stringify(readWaits)}\n`)
    readWaits = []
  }
  else if (cmd === 'oob-unlink') {
    if (child(1, arg)) drop(1, arg)
    // From a stdin callback, never from a request handler: the kernel takes the directory lock.
    process.stdout.write(`inval ${arg} ${fs.notifyInvalEntry(1, arg)}\n`)
  }
})
rl.on('close', () => fs.unmount())

try {
  await fs.mount(mountpoint, options)
} catch (e) {
  process.stderr.write(`mount failed: ${e.message}\n`)
  process.exit(1)
}
process.stdout.write('ready\n')
