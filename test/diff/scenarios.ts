// The differential scenarios. Each runs on kernel overlayfs and on the driver under test; op results, the
// merged view and the upper layer must match. Layers: [0] is the topmost lower. See spec.ts for the DSL and
// ops.ts for the ops. Timestamps in fixtures default to FIXTURE_TIME (2001-02-03).
import type { Scenario } from './spec.js'

function group(name: string, list: Scenario[]): Scenario[] {
  return list.map((s) => ({ ...s, group: name }))
}

/** Fixed times used by utimes ops (seconds). */
const T1 = 1_000_000_000 // 2001-09-09
const T2 = 1_100_000_000 // 2004-11-09

const F_OK = 0
const X_OK = 1
const W_OK = 2
const R_OK = 4

export const SCENARIOS: Scenario[] = [
  ...group('open/create/truncate', [
    {
      // O_TMPFILE: a file with no name until linkat gives it one (FUSE_TMPFILE, Linux 6.1+).
      name: 'O_TMPFILE files, linked in lower and upper directories and over a whiteout',
      layers: [{ 'd/gone': 'x', 'd/keep': 'k', e: { dir: true, mode: 0o2775, gid: 50 } }],
      ops: [
        ['unlink', 'd/gone'],
        ['tmpfile', 'd', 0o640, 'unnamed data', ['d/gone', 'd/second']],
        ['tmpfile', 'e', 0o600, 'setgid dir', ['e/t']],
        ['mkdir', 'n', 0o755],
        ['tmpfile', 'n', 0o644, 'never linked', []],
        ['tmpfile', 'd', 0o644, 'taken', ['d/keep']],
        ['readdir', 'n'],
        ['readFile', 'd/gone'],
        ['stat', 'd/gone'],
        ['stat', 'd/second'],
        ['stat', 'e/t'],
        ['readFile', 'd/keep'],
      ],
    },
    {
      // SQLite's temporary files, tmpfile(3) where O_TMPFILE is refused: opened, unlinked, then
      // truncated, chmod'ed and so on through the descriptor.
      name: 'a file unlinked while open keeps changing through its descriptor',
      layers: [{ rw: { file: 'lower rw', xattrs: { 'user.x': '1' } }, ro: { file: 'lower ro', xattrs: { 'user.x': '2' } } }],
      ops: [
        ['writeFile', 'new', 'hello'],
        ['unlinkedFd', 'new', 'r+', ['ftruncate', 'fchmod', 'fchown', 'futimes', 'setxattr', 'listxattr', 'read', 'reopen', 'read']],
        ['unlinkedFd', 'rw', 'r+', ['getxattr', 'ftruncate', 'fchmod', 'fchown', 'futimes', 'setxattr', 'removexattr', 'listxattr', 'read']],
        // Opened for reading only, then truncated by path and opened again for writing through /proc.
        ['writeFile', 'new2', 'hello again'],
        ['unlinkedFd', 'new2', 'r', ['reopenRead', 'truncate', 'read', 'reopen', 'read', 'reopenRead']],
        // Read-only on a lower file: reading works, a change would need a copy-up (overlayfs: EEXIST).
        ['unlinkedFd', 'ro', 'r', ['getxattr', 'listxattr', 'read', 'fchmod', 'futimes', 'setxattr', 'truncate', 'reopen', 'reopenRead']],
        ['readdir', ''],
      ],
    },
    {
      // Databases open their files O_DIRECT: every read and write of such an opener must work, the
      // daemon's own (a user's, or with passthrough off) as well as a passthrough file's.
      name: 'direct I/O reads and writes lower, copied-up and new files',
      layers: [{ src: 'ab'.repeat(8192), dst: { file: 'cd'.repeat(4096), mode: 0o666 }, 'd/u': { file: 'ef'.repeat(4096), mode: 0o666 }, d: { dir: true, mode: 0o777 } }],
      ops: [
        ['ddDirect', 'src', 'dst', 2],
        ['readFile', 'dst'],
        ['ddDirect', 'src', 'd/u', 3, 1000],
        ['readFile', 'd/u'],
        ['ddDirect', 'dst', 'd/new', 1, 1000],
        ['readFile', 'd/new'],
        ['stat', 'd/new'],
        ['ddDirect', 'src', 'out', 4],
        ['readFile', 'out'],
      ],
    },
    {
      name: 'O_TRUNC on a lower file',
      layers: [{ 'a/f': 'hello lower' }],
      ops: [['open', 'a/f', 'w', { write: 'new' }], ['readFile', 'a/f'], ['stat', 'a/f'], ['stat', 'a']],
    },
    {
      name: 'O_APPEND on a lower file',
      layers: [{ 'a/f': { file: 'hello', mode: 0o640, uid: 1000, gid: 1000 } }],
      ops: [['stat', 'a/f'], ['open', 'a/f', 'a', { write: ' more' }], ['readFile', 'a/f'], ['stat', 'a/f']],
    },
    {
      name: 'write at an offset into a lower file',
      layers: [{ f: '0123456789' }],
      ops: [['open', 'f', 'r+', { write: 'XY', at: 3, read: true }], ['readFile', 'f'], ['stat', 'f']],
    },
    {
      name: 'pwrite past the end of a lower file (hole)',
      layers: [{ f: 'abc' }],
      ops: [['open', 'f', 'r+', { write: 'Z', at: 10, stat: true }], ['readFile', 'f']],
    },
    {
      name: 'create a new file in a lower-only dir (parent copy-up)',
      layers: [{ d: { dir: true, mode: 0o750, uid: 1000, gid: 1000, xattrs: { 'user.d': '1' } }, 'd/sub/g': 'x' }],
      ops: [['writeFile', 'd/new', 'n'], ['stat', 'd'], ['readdir', 'd'], ['stat', 'd/new']],
    },
    {
      name: 'O_EXCL on an existing lower file',
      layers: [{ f: 'lower' }],
      ops: [['open', 'f', 'wx', { write: 'nope' }], ['readFile', 'f'], ['open', 'g', 'wx', { write: 'yes' }], ['readFile', 'g']],
    },
    {
      name: 'open O_WRONLY|O_CREAT on a lower file without writing copies up',
      layers: [{ f: 'keep me' }],
      ops: [['open', 'f', ['O_WRONLY', 'O_CREAT']], ['readFile', 'f'], ['stat', 'f']],
    },
    {
      name: 'open read-only does not copy up',
      layers: [{ 'd/f': 'ro' }],
      ops: [['open', 'd/f', 'r', { read: true, stat: true }], ['readFile', 'd/f']],
    },
    {
      name: 'truncate a lower file shorter',
      layers: [{ f: 'abcdefgh' }],
      ops: [['truncate', 'f', 2], ['readFile', 'f'], ['stat', 'f']],
    },
    {
      name: 'truncate a lower file larger (sparse)',
      layers: [{ f: { file: 'abc', mode: 0o600 } }],
      ops: [['truncate', 'f', 100_000], ['stat', 'f'], ['readFile', 'f']],
    },
    {
      name: 'fallocate lower files: allocate past the end, keep the size, punch a hole, zero a range',
      layers: [{ f: 'abcdefghij', d: { dir: true }, 'd/g': 'lower g' }],
      ops: [
        ['fallocate', 'f', 'allocate', 0, 100_000], ['stat', 'f'], ['readFile', 'f'],
        ['fallocate', 'd/g', 'keep-size', 0, 1 << 20], ['stat', 'd/g'], ['readFile', 'd/g'],
        ['fallocate', 'f', 'punch-hole', 0, 4096], ['readFile', 'f'], ['stat', 'f'],
        ['fallocate', 'd/g', 'zero-range', 2, 3], ['readFile', 'd/g'], ['stat', 'd/g'],
        ['fallocate', 'd', 'allocate', 0, 10],
      ],
    },
    {
      name: 'SEEK_DATA and SEEK_HOLE find the holes of a sparse lower file, then of its copy',
      layers: [{ f: { file: 'head', size: 2 << 20 } }],
      ops: [
        ['seek', 'f', 'data', 0], ['seek', 'f', 'hole', 0], ['seek', 'f', 'data', 65536], ['seek', 'f', 'hole', 3 << 20],
        ['open', 'f', 'r+', { write: 'middle', at: 1 << 20 }],
        ['seek', 'f', 'data', 65536], ['seek', 'f', 'hole', 1 << 20], ['seek', 'f', 'data', (1 << 20) + 65536],
      ],
    },
    {
      name: 'O_RDWR|O_CREAT|O_TRUNC with fstat keeps the inode number',
      layers: [{ f: 'old' }],
      ops: [['stat', 'f'], ['open', 'f', 'w+', { write: 'new', read: true, stat: true }], ['stat', 'f']],
    },
    {
      name: 'writes then re-read',
      layers: [{ d: { dir: true } }],
      ops: [
        ['writeFile', 'd/n', 'one'],
        ['appendFile', 'd/n', ' two'],
        ['readFile', 'd/n'],
        ['open', 'd/n', 'r+', { write: 'ONE', at: 0 }],
        ['readFile', 'd/n'],
        ['writeFile', 'd/n', 'x'],
        ['readFile', 'd/n'],
        ['stat', 'd/n'],
      ],
    },
    {
      name: 'open a file as a directory, and a directory for writing',
      layers: [{ f: 'x', d: { dir: true } }],
      ops: [['open', 'f', ['O_RDONLY', 'O_DIRECTORY']], ['open', 'd', 'r+'], ['open', 'missing/x', 'w']],
    },
  ]),

  ...group('setattrs answered in C', [
    // A file the kernel has listed (readdirplus) or looked up is marked, and its next chmod, chown or
    // utimes is copied up and answered in C (native/fuse-ll-cow.c). Anything that changes the file or
    // its name first takes the mark away: the setattr must then see what that left, not the file
    // below.
    {
      name: 'listed files removed and made again, or renamed, then changed',
      layers: [{ 'd/f': 'lower f', 'd/g': 'lower g', 'd/k': 'lower k' }],
      ops: [
        ['readdir', 'd'],
        ['unlink', 'd/f'], ['writeFile', 'd/f', 'new f'], ['chmod', 'd/f', 0o600], ['readFile', 'd/f'], ['stat', 'd/f'],
        ['rename', 'd/g', 'd/h'], ['chmod', 'd/h', 0o640], ['readFile', 'd/h'], ['stat', 'd/g'],
        ['writeFile', 'd/g', 'new g'], ['chown', 'd/g', 1000, 1000], ['readFile', 'd/g'], ['stat', 'd/g'],
        ['rename', 'd/k', 'd/h'], ['utimes', 'd/h', T1, T2], ['readFile', 'd/h'], ['stat', 'd/h'],
        ['readdir', 'd'],
      ],
    },
    {
      name: 'listed files written, given an xattr or a link, then changed',
      layers: [{ 'd/f': 'lower f', 'd/g': { file: 'lower g', xattrs: { 'user.kept': 'yes' } }, 'd/l': 'lower l', 'd/t': 'lower t' }],
      ops: [
        ['readdir', 'd'],
        ['appendFile', 'd/f', '!'], ['chmod', 'd/f', 0o600], ['readFile', 'd/f'], ['stat', 'd/f'],
        ['setxattr', 'd/g', 'user.k', 'v'], ['chown', 'd/g', 1000, 1000], ['getxattr', 'd/g', 'user.k'],
        ['getxattr', 'd/g', 'user.kept'], ['stat', 'd/g'],
        ['link', 'd/l', 'd/l2'], ['chmod', 'd/l', 0o640], ['stat', 'd/l2'], ['readFile', 'd/l2'],
        ['truncate', 'd/t', 2], ['utimes', 'd/t', T1, T2], ['readFile', 'd/t'], ['stat', 'd/t'],
      ],
    },
    {
      name: 'every file of a listed tree changed, hard-linked and big ones among them',
      layers: [{
        'a/s1': { file: 'small one', mode: 0o755, xattrs: { 'user.k': 'v' } }, 'a/s2': { file: 'small two', uid: 1000, gid: 1000 },
        'a/big': { file: 'big', size: 100_000 }, 'a/h1': 'linked', 'a/h2': { hardlink: 'a/h1' }, 'a/b/c/deep': 'deep',
        'a/b/e': { file: '', mode: 0o4755 }, 'a/sym': { symlink: 's1' },
      }, { 'a/s3': 'from the lowest layer', 'a/s1': 'hidden' }],
      ops: [
        ['readdir', 'a'], ['readdir', 'a/b'], ['readdir', 'a/b/c'],
        ['chmod', 'a/s1', 0o700], ['chown', 'a/s2', 0, 0], ['chmod', 'a/s3', 0o600], ['chmod', 'a/big', 0o600],
        ['chmod', 'a/h1', 0o600], ['chown', 'a/b/c/deep', 1000, 1000], ['chmod', 'a/b/e', 0o4700],
        ['utimes', 'a/s2', T1, T2], ['lchown', 'a/sym', 1000, 1000],
        ['stat', 'a/s1'], ['stat', 'a/s2'], ['stat', 'a/s3'], ['stat', 'a/big'], ['stat', 'a/h1'], ['stat', 'a/h2'],
        ['stat', 'a/b/c/deep'], ['stat', 'a/b/e'], ['lstat', 'a/sym'], ['getxattr', 'a/s1', 'user.k'],
        ['readFile', 'a/s1'], ['readFile', 'a/s3'], ['readFile', 'a/big'], ['readFile', 'a/h2'], ['readFile', 'a/b/c/deep'],
      ],
    },
    // A lower directory listed or looked up in a directory of the upper layer is marked too, and its
    // change copies it up and names it in C; whatever JS did there since (a create in it, a removal)
    // leaves its name taken, and the change then goes to the union.
    {
      name: 'listed directories changed: modes, owners, times, set-ID, xattrs, ACLs, merged and opaque ones',
      layers: [{
        'a/d1': { dir: true, mode: 0o750, uid: 1000, gid: 1000, xattrs: { 'user.k': 'v' } }, 'a/d1/f': 'f',
        'a/d2': { dir: true, mode: 0o2775 }, 'a/d2/sub/g': 'g',
        'a/d3': { opaque: true }, 'a/d3/h': 'h',
        'a/d4/one': 'from the top layer',
        'a/d5': { dir: true, acl: 'u:1000:r-x,d:u:1000:rwx' },
      }, { 'a/d3/hidden': 'hidden by the opaque d3', 'a/d4/two': 'from the lowest layer' }],
      ops: [
        ['chmod', 'a', 0o750], ['readdir', 'a'],
        ['chmod', 'a/d1', 0o700], ['chown', 'a/d2', 1000, 1000], ['utimes', 'a/d3', T1, T2], ['chmod', 'a/d4', 0o2775],
        ['chmod', 'a/d5', 0o700],
        ['stat', 'a'], ['stat', 'a/d1'], ['stat', 'a/d2'], ['stat', 'a/d3'], ['stat', 'a/d4'], ['stat', 'a/d5'],
        ['getxattr', 'a/d1', 'user.k'], ['getfacl', 'a/d5'],
        ['readdir', 'a/d1'], ['readdir', 'a/d2'], ['readdir', 'a/d3'], ['readdir', 'a/d4'], ['readdir', 'a/d2/sub'],
        ['chmod', 'a/d2/sub', 0o711], ['stat', 'a/d2/sub'], ['readFile', 'a/d2/sub/g'], ['readFile', 'a/d4/two'],
        ['writeFile', 'a/d1/new', 'x'], ['writeFile', 'a/d5/new', 'x'], ['getfacl', 'a/d5/new'], ['readdir', 'a/d1'],
        ['stat', 'a/d1'], ['stat', 'a'],
        // Copied up now: changed again on the copy.
        ['chown', 'a/d1', 1000, 1000], ['utimes', 'a/d1', T2, T1], ['chmod', 'a/d5', 0o750], ['getfacl', 'a/d5'],
        ['stat', 'a/d1'], ['stat', 'a/d5'], ['stat', 'a'],
      ],
    },
    {
      name: 'a listed tree changed files first, as chown -R does',
      layers: [{ 't/x/f': 'f', 't/x/g': 'g', 't/x/s': { dir: true, mode: 0o2755 }, 't/y/h': 'h', 't/y/z/i': 'i' }],
      ops: [
        ['readdir', 't'], ['readdir', 't/x'], ['chown', 't/x/f', 1000, 1000], ['chown', 't/x/g', 1000, 1000],
        ['readdir', 't/x/s'], ['chown', 't/x/s', 1000, 1000], ['chown', 't/x', 1000, 1000],
        ['readdir', 't/y'], ['readdir', 't/y/z'], ['chown', 't/y/z/i', 1000, 1000], ['chown', 't/y/z', 1000, 1000],
        ['chown', 't/y/h', 1000, 1000], ['chown', 't/y', 1000, 1000], ['chown', 't', 1000, 1000],
        ['stat', 't'], ['stat', 't/x'], ['stat', 't/x/s'], ['stat', 't/y'], ['stat', 't/y/z'], ['stat', 't/x/f'], ['stat', 't/y/z/i'],
        ['chmod', 't/x', 0o700], ['utimes', 't/y', T1, T2], ['chmod', 't/x/s', 0o3775],
        ['stat', 't/x'], ['stat', 't/y'], ['stat', 't/x/s'], ['stat', 't'], ['readdir', 't/x'],
      ],
    },
    {
      name: 'listed directories copied up, removed or made again before their change',
      layers: [{ 'a/d1/f': 'f', 'a/d2/f': 'f', 'a/d3/f': 'f', 'a/d4/f': 'f', 'a/d5/f': 'f', 'a/d5/g': 'g', 'a/d6/f': 'f' }],
      ops: [
        ['chmod', 'a', 0o755], ['readdir', 'a'],
        ['writeFile', 'a/d1/new', 'x'], ['chmod', 'a/d1', 0o700],
        // Copied up by a create, and empty again in the upper layer: its copy must stay.
        ['writeFile', 'a/d6/new', 'x'], ['unlink', 'a/d6/new'], ['chmod', 'a/d6', 0o700], ['stat', 'a/d6'], ['readdir', 'a/d6'],
        ['rm', 'a/d2'], ['mkdir', 'a/d2'], ['chmod', 'a/d2', 0o700], ['readdir', 'a/d2'],
        ['setxattr', 'a/d3', 'user.k', 'v'], ['chmod', 'a/d3', 0o711], ['getxattr', 'a/d3', 'user.k'],
        ['rename', 'a/d4', 'a/d7'], ['chmod', 'a/d4', 0o750],
        ['unlink', 'a/d5/f'], ['chown', 'a/d5', 1000, 1000], ['readdir', 'a/d5'],
        ['stat', 'a/d1'], ['stat', 'a/d2'], ['stat', 'a/d3'], ['stat', 'a/d4'], ['stat', 'a/d5'],
        ['readdir', 'a/d1'], ['readdir', 'a'], ['stat', 'a'],
      ],
    },
  ]),

  ...group('redirect_dir=on', [
    // Directories with lower layers move (overlayfs records where their lower layers hold them,
    // trusted.overlay.redirect; layerfs copies their trees up first): the views must agree.
    {
      name: 'redirect_dir: rename a lower directory, then change what moved',
      layers: [{ 'd/f': 'top f', 'd/sub/g': 'g' }, { 'd/f': 'below f', 'd/h': 'h', 'd/sub/k': 'k' }],
      options: ['redirect_dir=on'],
      ops: [
        ['rename', 'd', 'e'], ['readdir', ''], ['readdir', 'e'], ['readdir', 'e/sub'], ['readFile', 'e/f'], ['readFile', 'e/h'],
        ['stat', 'd'], ['stat', 'e/f'], ['stat', 'e/sub/k'],
        ['unlink', 'e/h'], ['appendFile', 'e/sub/g', ' more'], ['mkdir', 'd', 0o755], ['writeFile', 'd/f', 'new d'],
        ['rename', 'e', 'd/e2'], ['readdir', 'd'], ['readdir', 'd/e2'], ['readFile', 'd/e2/sub/g'], ['readdir', 'd/e2/sub'],
      ],
    },
    {
      name: 'redirect_dir: rename a merged directory into another directory',
      layers: [{ 'a/d/x': 'x', 'a/d/gone': 'gone', 'b/y': 'y' }],
      upper: { a: { dir: true }, 'a/d': { dir: true }, 'a/d/up': 'up', 'a/d/gone': { whiteout: true } },
      options: ['redirect_dir=on'],
      ops: [['rename', 'a/d', 'b/d'], ['readdir', 'a'], ['readdir', 'b'], ['readdir', 'b/d'], ['readFile', 'b/d/x'], ['stat', 'b/d/x'], ['stat', 'a/d']],
    },
    {
      // overlayfs refuses a target that is not empty before it copies anything up; one that merges
      // and shows nothing is replaced.
      name: 'redirect_dir: a lower directory renamed onto a non-empty one, then onto an empty one',
      layers: [{ 'low/f': 'in low', 'full/g': 'in full', 'empty/gone': 'gone' }],
      upper: { empty: { dir: true }, 'empty/gone': { whiteout: true } },
      options: ['redirect_dir=on'],
      ops: [['rename', 'low', 'full'], ['readdir', ''], ['rename', 'low', 'empty'], ['readdir', ''], ['readdir', 'empty'], ['rename', 'full', 'low/f']],
    },
    {
      name: 'redirect_dir: exchange two lower directories',
      layers: [{ 'p/a/x': 'ax', 'q/b/y': 'by', 'q/b/z/w': 'bzw' }],
      options: ['redirect_dir=on'],
      ops: [['renameat2', 'p/a', 'q/b', 'exchange'], ['readdir', 'p/a'], ['readdir', 'q/b'], ['readFile', 'q/b/x'], ['readFile', 'p/a/z/w'], ['readdir', 'p'], ['readdir', 'q']],
    },
    {
      // An exchange of a directory with lower layers and a file: the file is copied up with the
      // tree (before 2026-12-05, with flush behind, the rename waited for it for ever).
      name: 'redirect_dir: exchange a lower directory with a lower file',
      layers: [{ 'p/d/x': 'dx', 'p/d/s/y': 'dsy', 'q/f': 'file' }],
      options: ['redirect_dir=on'],
      ops: [['renameat2', 'p/d', 'q/f', 'exchange'], ['readdir', 'p'], ['readdir', 'q'], ['readFile', 'p/d'], ['readdir', 'q/f'], ['readFile', 'q/f/s/y']],
    },
    {
      // Listed first, its files and directories are marked for C's setattrs, lookups and renames by
      // their lower paths: the move takes those marks away, and the changes after it land in the copies.
      name: 'redirect_dir: a listed lower tree, changed, moved, then changed again',
      layers: [{ 'd/f': 'f', 'd/g': 'g', 'd/s/h': 'h', 'd/s/i': 'i', 'd/s/t/u': 'u' }],
      options: ['redirect_dir=on'],
      ops: [
        ['readdir', 'd'], ['readdir', 'd/s'], ['stat', 'd/f'], ['stat', 'd/s/t'], ['chmod', 'd/g', 0o600], ['rename', 'd', 'e'],
        ['chmod', 'e/f', 0o640], ['chmod', 'e/s/h', 0o600], ['utimes', 'e/s/i', T1, T2], ['rename', 'e/f', 'e/f2'], ['chmod', 'e/s/t', 0o700],
        ['stat', 'd'], ['readdir', 'e'], ['readdir', 'e/s'], ['stat', 'e/s/h'], ['stat', 'e/s/i'], ['readFile', 'e/f2'], ['readdir', 'e/s/t'], ['readdir', ''],
      ],
    },
    {
      // With metacopy, a file changed by chmod keeps its bytes below; moved with its directory, it
      // still reads them, and a write then copies them up.
      name: 'metacopy: a directory of metadata-only copies moves, and their data follows',
      layers: [{ 'd/f': 'lower bytes', 'd/s/g': 'deep bytes' }],
      options: ['metacopy=on'],
      ops: [
        ['chmod', 'd/f', 0o600], ['chmod', 'd/s/g', 0o640], ['rename', 'd', 'e'], ['readFile', 'e/f'], ['readFile', 'e/s/g'],
        ['appendFile', 'e/f', ' and more'], ['readFile', 'e/f'], ['stat', 'e/f'], ['rename', 'e/s', 's2'], ['readFile', 's2/g'], ['readdir', ''],
      ],
    },
  ]),

  ...group('metacopy=on', [
    // Metadata changes copy up metadata only (the data stays below until written); every later change
    // must see the lower bytes, as overlayfs does.
    {
      name: 'chmod, then read the data from below',
      layers: [{ 'a/f': { file: 'lower data', mode: 0o644 } }],
      options: ['metacopy=on'],
      ops: [['chmod', 'a/f', 0o600], ['stat', 'a/f'], ['readFile', 'a/f'], ['stat', 'a']],
    },
    {
      name: 'chown, then append',
      layers: [{ f: 'lower data' }],
      options: ['metacopy=on'],
      ops: [['chown', 'f', 1000, 1000], ['appendFile', 'f', ' and more'], ['readFile', 'f'], ['stat', 'f']],
    },
    {
      name: 'chmod, then truncate to 0 and to 3',
      layers: [{ f: 'lower data', g: 'other lower data' }],
      options: ['metacopy=on'],
      ops: [['chmod', 'f', 0o600], ['truncate', 'f', 0], ['readFile', 'f'], ['stat', 'f'],
        ['chmod', 'g', 0o600], ['truncate', 'g', 3], ['readFile', 'g'], ['stat', 'g']],
    },
    {
      name: 'utimes, then open O_TRUNC',
      layers: [{ f: 'lower data' }],
      options: ['metacopy=on'],
      ops: [['utimes', 'f', T1, T2], ['open', 'f', 'w', { write: 'new' }], ['readFile', 'f'], ['stat', 'f']],
    },
    {
      name: 'chmod, rename, then write through the new name',
      layers: [{ 'a/f': 'lower data' }],
      options: ['metacopy=on'],
      ops: [['chmod', 'a/f', 0o600], ['rename', 'a/f', 'a/g'], ['readFile', 'a/g'], ['appendFile', 'a/g', '!'],
        ['readFile', 'a/g'], ['stat', 'a/g'], ['readdir', 'a']],
    },
    {
      name: 'setxattr, then read and remove',
      layers: [{ f: 'lower data' }],
      options: ['metacopy=on'],
      ops: [['setxattr', 'f', 'user.k', 'v'], ['readFile', 'f'], ['unlink', 'f'], ['readdir', '']],
    },
    {
      // chown -R's order: each directory listed, its files changed, then the directory itself. The
      // first file of a lower directory copies that directory (and the lower ones above it) up
      // first; a listed file's change is made and named without JS (native/fuse-ll-cow.c).
      name: 'chown -R order: files listed and changed before their directories',
      layers: [{ 't/a/b/g': { file: 'ggg', mode: 0o755 }, 't/a/f1': 'lower one', 't/a/f2': { file: 'two', xattrs: { 'user.k': 'v' } }, 't/h': 'h', 't/s': { file: 's', mode: 0o4755 } },
        { 't/a/f1': 'hidden', 't/a/old': 'o' }],
      options: ['metacopy=on'],
      ops: [['readdir', 't'], ['readdir', 't/a'], ['readdir', 't/a/b'],
        ['chown', 't/a/b/g', 1000, 1000], ['chown', 't/a/b', 1000, 1000], ['chown', 't/a/f1', 1000, 1000],
        ['chown', 't/a/f2', 1000, 1000], ['chown', 't/a/old', 1000, 1000], ['chown', 't/a', 1000, 1000],
        ['chown', 't/h', 1000, 1000], ['chown', 't/s', 1000, 1000], ['chown', 't', 1000, 1000],
        ['stat', 't/a/b/g'], ['stat', 't/a/f1'], ['stat', 't/s'], ['stat', 't/a'], ['getxattr', 't/a/f2', 'user.k'],
        ['readFile', 't/a/b/g'], ['readFile', 't/a/f1'], ['readFile', 't/a/old'],
        ['appendFile', 't/a/f1', '+'], ['readFile', 't/a/f1'], ['rename', 't/a/f2', 't/a/f3'], ['readFile', 't/a/f3'],
        ['truncate', 't/h', 0], ['stat', 't/h'], ['readdir', 't/a']],
    },
    {
      // chmod -R's order: a directory changed before it is listed, then its files.
      name: 'chmod -R order: each directory changed, listed, then its files',
      layers: [{ 'd/e/f': 'deep data', 'd/g': { file: 'gg', mode: 0o600 }, 'd/e/big': { file: 'big head', size: 200 << 10 } }],
      options: ['metacopy=on'],
      ops: [['chmod', 'd', 0o750], ['readdir', 'd'], ['chmod', 'd/e', 0o750], ['readdir', 'd/e'], ['chmod', 'd/e/f', 0o640],
        ['chmod', 'd/e/big', 0o640], ['chmod', 'd/g', 0o640], ['utimes', 'd/g', T1, T2],
        ['stat', 'd/e/f'], ['stat', 'd/e/big'], ['stat', 'd/g'], ['stat', 'd/e'], ['readFile', 'd/e/f'], ['readFile', 'd/e/big'],
        ['open', 'd/e/f', 'r+', { write: 'D' }], ['readFile', 'd/e/f'], ['stat', 'd/e/f']],
    },
    {
      // A reader opened on the lower file, which a rename then copies up (metadata only, its data
      // found through the redirect), reads what a write through the new name puts in the copy, as
      // overlayfs's readers do; and so do later opens (no pages of the lower bytes left behind).
      name: 'a reader of a file renamed (metadata only), then written, reads the new bytes',
      layers: [{ f: 'lower data', small: 'abc', 'd/h': 'hole then' }],
      options: ['metacopy=on'],
      ops: [['heldOpen', 'f', 'g', ['read', 'renameTo', 'read', 'append', 'read', 'size', 'write', 'read']], ['readFile', 'g'],
        ['heldOpen', 'small', 'small2', ['renameTo', 'truncate', 'read', 'size']], ['readFile', 'small2'],
        ['heldOpen', 'd/h', 'd/h2', ['read', 'renameTo', 'otrunc', 'read', 'size']], ['readFile', 'd/h2']],
    },
    {
      // Found by the random scripts run with metacopy=on (io seed 2612): a lower file with another
      // name records no origin, so it shows its copy's own number, which must stay when its data
      // follows (overlayfs writes the data into the copy itself).
      name: 'a lower hard link copied up metadata only keeps its number when its data follows',
      layers: [{ y: 'one', x: { hardlink: 'y' }, big: { file: 'lower head', size: 2 << 20 }, big2: { hardlink: 'big' } }],
      options: ['metacopy=on'],
      ops: [['chmod', 'y', 0o600], ['stat', 'y'], ['appendFile', 'y', ' two'], ['stat', 'y'], ['readFile', 'y'], ['stat', 'x'],
        ['chmod', 'big', 0o600], ['stat', 'big'], ['open', 'big', 'r+', { write: 'W', at: 1 << 20 }], ['stat', 'big'], ['readFile', 'big'],
        ['chown', 'x', 1000, 1000], ['open', 'x', ['O_WRONLY', 'O_TRUNC'], { write: 'new' }], ['stat', 'x'], ['readFile', 'x']],
    },
    {
      // Found by the random scripts run with metacopy=on (io seed 3200): overlayfs writes the data
      // into the copy, which moves its mtime, even when the open that asked for it writes nothing.
      name: 'an open for writing alone gives a metadata-only copy its data and a new mtime',
      layers: [{ f: 'lower data', g: 'more lower data', h: '' }],
      options: ['metacopy=on'],
      ops: [['chmod', 'f', 0o600], ['chmod', 'g', 0o600], ['chmod', 'h', 0o600], ['stat', 'f'],
        ['open', 'f', 'r+', { read: false }], ['stat', 'f'], ['appendFile', 'g', ''], ['stat', 'g'], ['readFile', 'g'],
        ['open', 'h', 'r+', { read: false }], ['stat', 'h']],
    },
    {
      // Found by the random scripts run with metacopy=on (namespace seed 3043): a link copies its
      // source up metadata only, as overlayfs does, the data found by the redirect both names share.
      name: 'a link copies a lower file up metadata only, its data found from both names',
      layers: [{ x: 'lower x', 'd/f': 'lower f', 'd/e': { dir: true } }],
      options: ['metacopy=on'],
      ops: [['link', 'x', 'd/y'], ['readFile', 'd/y'], ['stat', 'x'], ['link', 'd/f', 'd/e/g'], ['rename', 'd/f', 'd/h'],
        ['readFile', 'd/e/g'], ['readFile', 'd/h'], ['appendFile', 'd/y', '+'], ['readFile', 'x'], ['stat', 'd/y'],
        ['unlink', 'd/e/g'], ['readFile', 'd/h'], ['readdir', 'd']],
    },
    {
      // Found by the random scripts run with metacopy=on (namespace seed 3000): overlayfs, its
      // redirect_dir on, marks a directory made in a merged one opaque (nothing below has its name).
      name: 'a directory made in a merged one is opaque in the upper layer, as overlayfs marks it',
      layers: [{ d: { dir: true }, 'd/f': 'lower f' }, { d: { dir: true }, e: { dir: true } }],
      options: ['metacopy=on'],
      ops: [['mkdir', 'n'], ['mkdir', 'd/m'], ['mkdir', 'n/k'], ['mkdir', 'e/j'], ['writeFile', 'd/m/g', 'g'], ['readdir', 'd'], ['readdir', 'd/m']],
    },
    {
      // A metadata-only copy unlinked while open: its data is still the lower file's, until a size
      // change (a truncate by path, through /proc, of one open read-only) copies it into the copy.
      name: 'chmod, open, unlink: the open file reads the lower data and takes changes',
      layers: [{ ro: { file: 'lower ro', xattrs: { 'user.x': '1' } }, rw: { file: 'lower rw', xattrs: { 'user.x': '2' } }, big: { file: 'lower big data'.repeat(10_000) } }],
      options: ['metacopy=on'],
      ops: [
        ['chmod', 'ro', 0o640], ['chmod', 'rw', 0o640], ['chmod', 'big', 0o640],
        ['unlinkedFd', 'ro', 'r', ['mode', 'getxattr', 'listxattr', 'read', 'fchmod', 'futimes', 'setxattr', 'listxattr', 'read', 'reopenRead', 'truncate', 'read', 'mode', 'listxattr']],
        ['unlinkedFd', 'big', 'r', ['read', 'reopenRead', 'reopen', 'read', 'fchmod', 'mode', 'truncate', 'read']],
        ['unlinkedFd', 'rw', 'r+', ['mode', 'getxattr', 'read', 'fchmod', 'setxattr', 'ftruncate', 'read', 'listxattr']],
        ['readdir', ''],
      ],
    },
  ]),
  ...group('big files', [
    {
      // Offsets JS cannot hold exactly (past 2^53): the daemon wrote such a byte at the file's
      // current position (Node takes an offset it cannot hold as "no offset"), and failed truncates
      // and seeks with EIO; a filesystem refuses them as past its biggest file (found by probing
      // beside kernel overlayfs, 2026-12-05). A lower file (copied up at the open) and a new one.
      name: 'writes, reads, truncates and seeks at offsets past 2^53',
      layers: [{ lower: 'lowerdata' }],
      ops: [['hugeOffsets', 'lower'], ['readFile', 'lower'], ['writeFile', 'new', 'newdata'], ['hugeOffsets', 'new'], ['readFile', 'new']],
    },
    {
      // Past 2262 a time no longer fits in an int64 of nanoseconds (ext4 keeps times to 2446).
      name: 'times after 2262, on lower, copied-up and new files',
      layers: [{ a: 'lower', b: 'lower b' }],
      ops: [
        ['utimes', 'a', 10_000_000_000, 10_000_000_005], ['chmod', 'b', 0o600], ['utimes', 'b', 11_000_000_000, 11_000_000_000],
        ['utimes', 'b', 12_000_000_000, 12_000_000_000], ['writeFile', 'n', 'x'], ['utimes', 'n', 13_000_000_000, 13_000_000_000],
        ['stat', 'a'], ['stat', 'b'], ['stat', 'n'],
      ],
    },
    // Files of 1 MiB and more, which layerfs lets the kernel read and write itself (FUSE passthrough):
    // lower reads from the lower file, then the copy-up and the writes to the upper copy.
    {
      name: 'read a big lower file, write into it, read it again',
      layers: [{ 'a/big': { file: 'head of a big file', size: 3 << 20 } }],
      ops: [['readFile', 'a/big'], ['open', 'a/big', 'r+', { write: 'XYZ', at: 2 << 20, read: true, stat: true }],
        ['readFile', 'a/big'], ['stat', 'a/big'], ['stat', 'a']],
    },
    {
      name: 'append to a big lower file',
      layers: [{ big: { file: 'start', size: 2 << 20, mode: 0o640, uid: 1000, gid: 1000 } }],
      ops: [['appendFile', 'big', 'tail'], ['readFile', 'big'], ['stat', 'big']],
    },
    {
      name: 'truncate a big lower file, then read and extend it',
      layers: [{ big: { file: 'twelve bytes', size: 2 << 20 } }],
      ops: [['readFile', 'big'], ['truncate', 'big', 7], ['readFile', 'big'], ['stat', 'big'],
        ['open', 'big', 'r+', { write: 'END', at: (1 << 20) + 5, stat: true }], ['readFile', 'big']],
    },
    {
      name: 'write a big new file, then rename and read it',
      layers: [{ d: { dir: true } }],
      ops: [['writeFile', 'd/new', 'n'.repeat(3 << 19)], ['rename', 'd/new', 'd/moved'], ['readFile', 'd/moved'],
        ['stat', 'd/moved'], ['readdir', 'd']],
    },
    {
      // Found by a stress run: a big lower file's opens for reading pass through to it (answered in
      // C), and a write through another open copies it up; those files still answer an fstat after
      // the name is removed, and after a directory takes the name. (Their reads stay on the lower
      // bytes: a deliberate difference, see README.)
      name: 'a big lower file held open for reading, written through another open, removed, its name reused',
      layers: [{ big: { file: 'lower head', size: 2 << 20 } }],
      ops: [['heldOpen', 'big', 'big', ['size', 'write', 'size', 'unlink', 'size', 'mkdir', 'size']], ['stat', 'big'], ['readdir', '']],
    },
    {
      name: 'chmod a big lower file (metadata only), read it, then write',
      layers: [{ big: { file: 'lower head', size: 2 << 20 } }],
      options: ['metacopy=on'],
      ops: [['chmod', 'big', 0o600], ['readFile', 'big'], ['stat', 'big'],
        ['open', 'big', 'r+', { write: 'W', at: 1 << 20 }], ['readFile', 'big'], ['stat', 'big']],
    },
  ]),
  ...group('unprivileged writers', [
    // A write, truncate or O_TRUNC open by a process without CAP_FSETID clears setuid, and setgid when the
    // group may execute; root's keep them. (layerfs clears them itself: the kernel tells it when to.)
    {
      name: 'append by a user clears setuid and setgid of a lower file',
      layers: [{ f: { file: 'x', mode: 0o6777 }, g: { file: 'x', mode: 0o2777 }, h: { file: 'x', mode: 0o2767 } }],
      ops: [['asUser', 1000, 1000, ['appendFile', 'f', 'y']], ['stat', 'f'], ['readFile', 'f'],
        ['asUser', 1000, 1000, ['appendFile', 'g', 'y']], ['stat', 'g'],
        ['asUser', 1000, 1000, ['appendFile', 'h', 'y']], ['stat', 'h']],
    },
    {
      name: 'setgid without group execute stays for a writer in the group',
      layers: [{ f: { file: 'x', mode: 0o2767 }, g: { file: 'x', mode: 0o2767, gid: 1000 } }],
      ops: [['asUser', 1000, 1000, ['appendFile', 'f', 'y'], [0]], ['stat', 'f'],
        ['asUser', 1000, 1000, ['appendFile', 'g', 'y']], ['stat', 'g']],
    },
    {
      name: 'append by root keeps setuid',
      layers: [{ f: { file: 'x', mode: 0o6777 } }],
      ops: [['appendFile', 'f', 'y'], ['stat', 'f']],
    },
    {
      name: 'truncate and O_TRUNC open by a user clear setuid',
      layers: [{ f: { file: 'xyz', mode: 0o4777 }, g: { file: 'xyz', mode: 0o6777 } }],
      ops: [['asUser', 1000, 1000, ['truncate', 'f', 1]], ['stat', 'f'], ['readFile', 'f'],
        ['asUser', 1000, 1000, ['openTrunc', 'g', 'new']], ['stat', 'g'], ['readFile', 'g']],
    },
    {
      name: 'an upper file made setuid again between two writes by a user',
      layers: [{ d: { dir: true, mode: 0o777 } }],
      ops: [['writeFile', 'd/f', 'x'], ['chmod', 'd/f', 0o6777], ['asUser', 1000, 1000, ['appendFile', 'd/f', 'y']],
        ['stat', 'd/f'], ['chmod', 'd/f', 0o4777], ['asUser', 1000, 1000, ['appendFile', 'd/f', 'z']], ['stat', 'd/f'],
        ['readFile', 'd/f']],
    },
    {
      name: 'append by a user clears setuid of a big lower file',
      layers: [{ big: { file: 'start', size: 2 << 20, mode: 0o4777 } }],
      ops: [['asUser', 1000, 1000, ['appendFile', 'big', 'tail']], ['stat', 'big'], ['readFile', 'big']],
    },
    {
      name: 'write by the owner clears its own setuid, chown by root clears it too',
      layers: [{ f: { file: 'x', mode: 0o4755, uid: 1000, gid: 1000 } }],
      ops: [['asUser', 1000, 1000, ['appendFile', 'f', 'y']], ['stat', 'f'], ['chown', 'f', 1000, 1000], ['stat', 'f']],
    },
  ]),
  ...group('symlinks', [
    {
      name: 'write through a lower symlink to a lower file',
      layers: [{ 'a/f': 'data', 'a/l': { symlink: 'f' } }],
      ops: [['writeFile', 'a/l', 'new'], ['readlink', 'a/l'], ['readFile', 'a/f'], ['lstat', 'a/l'], ['stat', 'a/l']],
    },
    {
      name: 'symlink pointing to a dir',
      layers: [{ 'd/x': 'x', ld: { symlink: 'd' } }],
      ops: [['readdir', 'ld'], ['writeFile', 'ld/new', 'n'], ['stat', 'ld'], ['lstat', 'ld'], ['realpath', 'ld/new']],
    },
    {
      name: 'dangling symlink, then create through it',
      layers: [{ l: { symlink: 'missing' } }],
      ops: [['stat', 'l'], ['lstat', 'l'], ['readlink', 'l'], ['writeFile', 'l', 'created'], ['readFile', 'missing'], ['readdir', '']],
    },
    {
      name: 'relative symlink across dirs',
      layers: [{ 'a/b/l': { symlink: '../../t/f' }, 't/f': 'T' }],
      ops: [['readFile', 'a/b/l'], ['realpath', 'a/b/l'], ['appendFile', 'a/b/l', '+']],
    },
    {
      name: 'absolute symlink inside the mount',
      layers: [{ l: { symlink: '{{MNT}}/t/f' }, 't/f': 'T' }],
      ops: [['readlink', 'l'], ['readFile', 'l'], ['realpath', 'l'], ['appendFile', 'l', '+'], ['readFile', 't/f']],
    },
    {
      name: 'create symlinks on the mount',
      layers: [{ 'a/f': 'A' }],
      ops: [
        ['symlink', 'a/f', 'rel'],
        ['symlink', '{{MNT}}/a/f', 'a/abs'],
        ['readlink', 'rel'],
        ['readlink', 'a/abs'],
        ['lstat', 'rel'],
        ['readFile', 'a/abs'],
        ['symlink', 'x', 'a/f'],
      ],
    },
    {
      name: 'lchown and lutimes on a lower symlink',
      layers: [{ l: { symlink: 'f', uid: 5, gid: 6 }, f: 'x' }],
      ops: [['lchown', 'l', 1000, 1000], ['lutimes', 'l', T1, T2], ['lstat', 'l'], ['stat', 'f']],
    },
    {
      name: 'chmod through a symlink copies up the target only',
      layers: [{ l: { symlink: 'd/f' }, 'd/f': 'x' }],
      ops: [['chmod', 'l', 0o600], ['stat', 'l'], ['lstat', 'l']],
    },
    {
      name: 'O_NOFOLLOW on a symlink, and a symlink loop',
      layers: [{ l: { symlink: 'f' }, f: 'x', loop1: { symlink: 'loop2' }, loop2: { symlink: 'loop1' } }],
      ops: [['open', 'l', ['O_RDONLY', 'O_NOFOLLOW']], ['stat', 'loop1'], ['writeFile', 'loop1', 'x'], ['lstat', 'loop2']],
    },
    {
      name: 'unlink a lower symlink keeps its target',
      layers: [{ l: { symlink: 'f' }, f: 'x' }],
      ops: [['unlink', 'l'], ['readFile', 'f'], ['lstat', 'l'], ['readdir', '']],
    },
  ]),

  ...group('unlink/rmdir', [
    {
      name: 'unlink a lower file leaves a whiteout',
      layers: [{ 'd/f': 'x', 'd/g': 'y' }],
      ops: [['unlink', 'd/f'], ['readdir', 'd'], ['lstat', 'd/f'], ['readFile', 'd/f']],
    },
    {
      name: 'unlink an upper-only file leaves no whiteout',
      layers: [{ 'd/g': 'lower' }],
      upper: { 'd/f': 'upper' },
      ops: [['unlink', 'd/f'], ['readdir', 'd']],
    },
    {
      name: 'unlink a file present in upper and lower leaves a whiteout',
      layers: [{ f: 'lower' }],
      upper: { f: 'upper' },
      ops: [['readFile', 'f'], ['unlink', 'f'], ['lstat', 'f'], ['readdir', '']],
    },
    {
      name: 'unlink a file created in the session leaves no whiteout',
      layers: [{ d: { dir: true } }],
      ops: [['writeFile', 'd/n', 'x'], ['unlink', 'd/n'], ['readdir', 'd']],
    },
    {
      name: 'rmdir a merged empty dir',
      layers: [{ d: { dir: true } }],
      upper: { d: { dir: true } },
      ops: [['stat', 'd'], ['rmdir', 'd'], ['lstat', 'd'], ['readdir', '']],
    },
    {
      name: 'rmdir a non-empty lower dir fails with ENOTEMPTY',
      layers: [{ 'd/f': 'x', e: { dir: true } }],
      ops: [['rmdir', 'd'], ['readdir', 'd'], ['rmdir', 'e'], ['readdir', '']],
    },
    {
      name: 'rmdir a dir whose lower children are all whited out',
      layers: [{ 'd/a': 'a', 'd/b': 'b' }],
      ops: [['unlink', 'd/a'], ['unlink', 'd/b'], ['readdir', 'd'], ['rmdir', 'd'], ['lstat', 'd']],
    },
    {
      name: 'rm -r of a lower tree',
      layers: [{ 't/a/b/f': 'f', 't/a/g': 'g', 't/l': { symlink: 'a' }, 't/e': { dir: true }, keep: 'k' }],
      ops: [['rm', 't'], ['lstat', 't'], ['readdir', '']],
    },
    {
      name: 'unlink a dir and rmdir a file',
      layers: [{ d: { dir: true }, f: 'x' }],
      ops: [['unlink', 'd'], ['rmdir', 'f'], ['rmdir', 'missing'], ['unlink', 'missing']],
    },
    {
      name: 'names hidden by a whiteout are ENOENT',
      layers: [{ f: 'x' }],
      ops: [['unlink', 'f'], ['unlink', 'f'], ['stat', 'f'], ['chmod', 'f', 0o600], ['rmdir', 'f'], ['rename', 'f', 'g']],
    },
  ]),

  ...group('rmdir then mkdir (opaque)', [
    {
      // A shell's working directory, an fd opendir(3) holds: removed, it is still there, empty.
      name: 'a directory removed while open is still there, with no links and nothing in it',
      layers: [{ keep: 'k' }],
      ops: [
        ['mkdir', 'nd', 0o750],
        ['removedDir', 'nd', ['nlink', 'mode', 'list', 'listxattr', 'chmod', 'chown', 'utimes']],
        ['readdir', ''],
      ],
    },
    {
      // Removed, a directory of the upper layer still exists on the host and takes changes; a lower
      // one is the lower directory, under a whiteout, and cannot be copied up without a name.
      name: 'a removed upper directory takes changes through its fd, a removed lower one refuses them',
      layers: [{ low: { dir: true, mode: 0o755 } }],
      upper: { up: { dir: true, mode: 0o750 } },
      ops: [
        ['removedDir', 'up', ['nlink', 'mode', 'chmod', 'chown', 'utimes', 'list']],
        ['removedDir', 'low', ['nlink', 'mode', 'chmod', 'chown', 'utimes']],
        ['readdir', ''],
      ],
    },
    {
      // Its xattrs stay readable through the fd; an upper one takes new ones, a lower one none.
      name: 'a directory removed while open keeps its xattrs',
      layers: [{ low: { dir: true, mode: 0o755, xattrs: { 'user.x': 'lower' } } }],
      upper: { up: { dir: true, mode: 0o750, xattrs: { 'user.x': 'upper' } } },
      ops: [
        ['removedDir', 'up', ['getxattr', 'listxattr', 'setxattr', 'listxattr', 'removexattr', 'listxattr', 'getxattr']],
        ['removedDir', 'low', ['getxattr', 'listxattr', 'setxattr', 'removexattr', 'listxattr']],
        ['readdir', ''],
      ],
    },
    {
      name: 'rm -r then mkdir makes an opaque dir',
      layers: [{ 'd/old': 'o', 'd/sub/x': 'x' }],
      ops: [['rm', 'd'], ['mkdir', 'd', 0o700], ['readdir', 'd'], ['lstat', 'd/old'], ['writeFile', 'd/new', 'n'], ['readdir', 'd'], ['stat', 'd']],
    },
    {
      name: 'unlink a lower file then mkdir at its name',
      layers: [{ x: 'file' }],
      ops: [['unlink', 'x'], ['mkdir', 'x'], ['stat', 'x'], ['readdir', 'x']],
    },
    {
      name: 'rmdir a lower dir then create a file at its name',
      layers: [{ d: { dir: true } }],
      ops: [['rmdir', 'd'], ['writeFile', 'd', 'now a file'], ['stat', 'd'], ['readFile', 'd']],
    },
    {
      name: 'rmdir an empty merged dir over a non-empty lower (all whited out) then mkdir',
      layers: [{ 'd/a': 'a' }, { 'd/b': 'b' }],
      ops: [['unlink', 'd/a'], ['unlink', 'd/b'], ['rmdir', 'd'], ['mkdir', 'd'], ['readdir', 'd'], ['lstat', 'd/a']],
    },
    {
      // What was looked up below a removed dir (found or not) must not survive into its successor.
      name: 'names seen below a removed dir stay gone in the dir made or moved there next',
      layers: [{ 'l/a': 'a', 'l/b/c': 'c', keep: 'k' }],
      ops: [
        ['mkdir', 'u'], ['writeFile', 'u/f', 'f'], ['lstat', 'u/x'], ['unlink', 'u/f'], ['rmdir', 'u'],
        ['mkdir', 'u'], ['lstat', 'u/f'], ['lstat', 'u/x'], ['writeFile', 'u/x', 'x'], ['readdir', 'u'],
        ['mkdir', 'v'], ['writeFile', 'v/f', 'moved'], ['unlink', 'u/x'], ['rmdir', 'u'], ['rename', 'v', 'u'],
        ['readFile', 'u/f'], ['readdir', 'u'],
        ['readFile', 'l/a'], ['lstat', 'l/b/c'], ['rm', 'l'], ['lstat', 'l/a'], ['mkdir', 'l'], ['lstat', 'l/a'],
        ['lstat', 'l/b'], ['readdir', 'l'], ['writeFile', 'l/a', 'new'], ['readFile', 'l/a'],
      ],
    },
  ]),

  ...group('whiteout/opaque encodings in layers', [
    {
      name: 'char 0/0 whiteout in a middle layer hides the lower entry',
      layers: [{ top: 't' }, { f: { whiteout: true }, d: { whiteout: true } }, { f: 'bottom', g: 'g', 'd/x': 'x' }],
      ops: [['readdir', ''], ['stat', 'f'], ['stat', 'd'], ['writeFile', 'f', 'new'], ['readFile', 'f']],
    },
    {
      name: 'OCI .wh.name file in a lower layer',
      layers: [{ '.wh.f': '' }, { f: 'bottom', g: 'g' }],
      note: 'kernel overlayfs does not interpret OCI whiteouts: both names are visible',
      ops: [['readdir', ''], ['stat', 'f'], ['lstat', '.wh.f']],
    },
    {
      name: 'OCI .wh..wh..opq in a lower layer',
      layers: [{ 'd/.wh..wh..opq': '', 'd/new': 'n' }, { 'd/old': 'o' }],
      note: 'kernel overlayfs does not interpret OCI opaque markers',
      ops: [['readdir', 'd'], ['stat', 'd/old']],
    },
    {
      name: 'trusted.overlay.opaque dir in a middle layer',
      layers: [{ 'd/top': 't' }, { d: { opaque: true }, 'd/mid': 'm' }, { 'd/bottom': 'b' }],
      ops: [['readdir', 'd'], ['stat', 'd/bottom'], ['getxattr', 'd', 'trusted.overlay.opaque'], ['listxattr', 'd']],
    },
    {
      name: 'a file in an upper lower layer above a dir',
      layers: [{ x: 'file' }, { 'x/child': 'c' }],
      ops: [['lstat', 'x'], ['stat', 'x/child'], ['readdir', '']],
    },
    {
      name: 'a dir in an upper lower layer above a file',
      layers: [{ 'x/child': 'c' }, { x: 'file', 'y/a': 'a' }],
      ops: [['lstat', 'x'], ['readdir', 'x'], ['writeFile', 'x/new', 'n'], ['readdir', 'x']],
    },
    {
      name: 'whiteout in the initial upper layer',
      layers: [{ f: 'lower', d: { dir: true } }],
      upper: { f: { whiteout: true } },
      ops: [['readdir', ''], ['stat', 'f'], ['writeFile', 'f', 'fresh'], ['readFile', 'f'], ['stat', 'f']],
    },
    {
      name: 'opaque dir in the initial upper layer',
      layers: [{ 'd/old': 'o' }],
      upper: { d: { opaque: true }, 'd/mine': 'm' },
      ops: [['readdir', 'd'], ['stat', 'd/old'], ['unlink', 'd/mine'], ['readdir', 'd']],
    },
    {
      name: 'whiteout in the bottom layer hides nothing and shows nothing',
      layers: [{ a: 'a' }, { w: { whiteout: true }, b: 'b' }],
      ops: [['readdir', ''], ['lstat', 'w'], ['writeFile', 'w', 'x'], ['readdir', '']],
    },
    {
      name: 'unlink a child of an opaque lower dir',
      layers: [{ d: { opaque: true }, 'd/a': 'a' }, { 'd/b': 'b' }],
      ops: [['readdir', 'd'], ['unlink', 'd/a'], ['readdir', 'd'], ['stat', 'd/b']],
    },
  ]),

  ...group('rename', [
    {
      name: 'rename a lower file to a new name',
      layers: [{ a: 'A' }],
      ops: [['stat', 'a'], ['rename', 'a', 'b'], ['stat', 'b'], ['lstat', 'a'], ['readFile', 'b']],
    },
    {
      name: 'rename a lower file over another lower file',
      layers: [{ a: 'A', b: 'B' }],
      ops: [['rename', 'a', 'b'], ['readFile', 'b'], ['readdir', '']],
    },
    {
      name: 'rename an upper file over a lower file',
      layers: [{ old: 'lower' }],
      ops: [['writeFile', 'n', 'new'], ['rename', 'n', 'old'], ['readFile', 'old'], ['readdir', '']],
    },
    {
      name: 'rename a lower file into another lower-only dir',
      layers: [{ 'a/f': 'F', 'b/g': 'G' }],
      ops: [['rename', 'a/f', 'b/f'], ['readdir', 'a'], ['readdir', 'b'], ['stat', 'b']],
    },
    {
      // renameat2(2): NOREPLACE refuses a taken name; EXCHANGE swaps two names, each of which may
      // be lower, upper or a directory; WHITEOUT is the kernel's own (overlayfs refuses it).
      name: 'renameat2 with RENAME_NOREPLACE, RENAME_EXCHANGE and RENAME_WHITEOUT',
      layers: [{ a: 'lower a', b: 'lower b', c: 'lower c', 'd/x': 'in d', 'e/y': 'in e', f: 'lower f' }],
      upper: { u: 'upper u', v: 'upper v' },
      ops: [
        ['renameat2', 'a', 'b', 'noreplace'],
        ['renameat2', 'a', 'a', 'noreplace'],
        ['renameat2', 'a', 'd', 'noreplace'],
        ['rename', 'a', 'd'],
        ['renameat2', 'a', 'new', 'noreplace'],
        ['renameat2', 'b', 'c', 'exchange'],
        ['renameat2', 'u', 'c', 'exchange'],
        ['renameat2', 'u', 'v', 'exchange'],
        ['renameat2', 'u', 'missing', 'exchange'],
        ['renameat2', 'f', 'd', 'exchange'],
        ['renameat2', 'd', 'e', 'exchange'],
        ['renameat2', 'v', 'w', 'whiteout'],
        ['readFile', 'b'], ['readFile', 'c'], ['readFile', 'u'], ['readFile', 'v'], ['readFile', 'new'],
        ['readdir', ''], ['readdir', 'd'], ['readdir', 'e'],
      ],
    },
    {
      // Found by the random scripts (random.test.ts). overlayfs first refuses to move a directory
      // that is (or merges with) a lower one (EXDEV), then a non-empty target (ENOTEMPTY).
      name: 'rename of a lower directory onto a non-empty one is EXDEV',
      layers: [{ 'low/f': 'in low', 'full/g': 'in full' }],
      upper: { up: { dir: true }, 'up/h': 'in up' },
      ops: [['rename', 'low', 'full'], ['rename', 'up', 'full'], ['readdir', ''], ['readdir', 'full']],
    },
    {
      // A directory that merges with nothing moves, though a lower layer has its name (a file there,
      // whited out; or a directory it was made opaque over): a whiteout stays behind.
      name: 'an upper directory over a lower name moves, leaving a whiteout',
      layers: [{ f: 'lower file', 'd/x': 'lower x' }],
      ops: [
        ['unlink', 'f'], ['mkdir', 'f', 0o755], ['writeFile', 'f/in', 'new'], ['rename', 'f', 'g'],
        ['rm', 'd'], ['mkdir', 'd', 0o755], ['rename', 'd', 'e'],
        ['readdir', ''], ['readdir', 'g'], ['stat', 'f'], ['stat', 'd'],
      ],
    },
    {
      // RENAME_EXCHANGE moving an upper-only directory into a merged directory makes it opaque, as a
      // plain rename there does.
      name: 'an exchange that moves a directory into a merged directory makes it opaque',
      layers: [{ 'm/low': 'lower' }],
      upper: { m: { dir: true }, 'm/f': 'upper f', 'solo/d': { dir: true }, 'solo/d/x': 'x' },
      ops: [['renameat2', 'm/f', 'solo/d', 'exchange'], ['readdir', 'm'], ['readdir', 'm/f'], ['readdir', 'solo']],
    },
    {
      // Renaming a directory over a directory only the upper layer holds: overlayfs leaves its
      // emptiness to the host's rename, after it has made the moved directory opaque (it lands in a
      // merged directory), so a rename refused ENOTEMPTY keeps that mark; over an empty one it moves.
      // (Random users script, seed 6969: layerfs refused before marking it.)
      name: 'a directory renamed over a non-empty one only the upper layer holds: ENOTEMPTY, and made opaque',
      layers: [{ 'm/low': 'lower', 'full/old': 'hidden' }],
      upper: { m: { dir: true }, 'm/d': { dir: true }, 'm/d/x': 'x', 'm/e': { dir: true }, full: { opaque: true }, 'full/kept': 'kept', 'solo/empty': { dir: true } },
      ops: [['rename', 'm/d', 'full'], ['readdir', 'full'], ['readdir', 'm/d'], ['rename', 'm/e', 'solo/empty'], ['readdir', 'solo']],
    },
    {
      // ext4 refuses a rename with RENAME_WHITEOUT onto a directory that is not empty after it has
      // set the source directory's mtime, and overlayfs shows that: the kernel keeps the attributes
      // it had after a failed rename, so layerfs tells it (random namespace seed 3318).
      name: 'a directory over a lower one renamed onto a non-empty directory: refused, its parent\'s new mtime shown',
      layers: [{ 'p/a/old': 'hidden' }],
      upper: { p: { dir: true }, 'p/a': { opaque: true }, 'p/a/x': 'x', 'p/b': { dir: true }, 'p/b/y': 'y' },
      ops: [['stat', 'p'], ['rename', 'p/a', 'p/b'], ['stat', 'p'], ['readdir', 'p']],
    },
    {
      // An upper layer may hold a whiteout that hides nothing (the lower layer changed since): a
      // file made over it and removed again leaves no whiteout, since no lower layer has the name.
      name: 'a file made over a whiteout that hides nothing leaves none when removed',
      layers: [{ 'd/other': 'lower' }],
      upper: { d: { dir: true }, 'd/stale': { whiteout: true }, 'd/stale2': { whiteout: true } },
      ops: [['writeFile', 'd/stale', 'new'], ['unlink', 'd/stale'], ['mkdir', 'd/stale2', 0o755], ['rmdir', 'd/stale2'], ['readdir', 'd']],
    },
    {
      name: 'rename to the same name is a no-op',
      layers: [{ 'a/f': 'F' }],
      ops: [['rename', 'a/f', 'a/f'], ['readFile', 'a/f']],
    },
    {
      name: 'rename a merged dir',
      layers: [{ 'd/x': 'x' }],
      upper: { 'd/y': 'y' },
      note: 'with redirect_dir=off (the default here) the kernel returns EXDEV',
      ops: [['rename', 'd', 'e'], ['readdir', '']],
    },
    {
      name: 'rename a lower-only dir',
      layers: [{ 'd/x': 'x' }],
      ops: [['rename', 'd', 'e'], ['readdir', '']],
    },
    {
      name: 'rename an upper-only dir',
      layers: [{ keep: 'k' }],
      ops: [['mkdir', 'n'], ['writeFile', 'n/x', 'x'], ['rename', 'n', 'm'], ['readdir', 'm'], ['readdir', '']],
    },
    {
      name: 'rename an upper-only dir over an empty lower dir',
      layers: [{ e: { dir: true } }],
      ops: [['mkdir', 'n'], ['writeFile', 'n/x', 'x'], ['rename', 'n', 'e'], ['readdir', 'e'], ['stat', 'e']],
    },
    {
      name: 'rename a file over a dir and a dir over a file',
      layers: [{ f: 'x', d: { dir: true }, e: { dir: true } }],
      ops: [['rename', 'f', 'd'], ['rename', 'e', 'f'], ['readdir', '']],
    },
    {
      name: 'rename between two hard links of one lower inode',
      layers: [{ a: 'A', b: { hardlink: 'a' } }],
      ops: [['rename', 'a', 'b'], ['readdir', ''], ['stat', 'a']],
    },
    {
      // Found by the random scripts. Two names of one upper file: rename(2) does nothing and
      // succeeds, as POSIX has it (through FUSE each name is an inode of its own, so the daemon is
      // asked; it removed the source name from its view while the disk kept it).
      name: 'rename between two names of one upper file does nothing',
      layers: [{ d: { dir: true } }],
      upper: { x: 'upper x' },
      ops: [
        ['link', 'x', 'd/x'], ['rename', 'x', 'd/x'], ['readdir', ''], ['readFile', 'x'],
        ['renameat2', 'd/x', 'x', 'exchange'], ['readFile', 'd/x'],
        ['writeFile', 'n', 'new'], ['link', 'n', 'd/n'], ['rename', 'd/n', 'n'], ['readdir', 'd'], ['appendFile', 'n', '!'], ['readFile', 'd/n'],
      ],
    },
  ]),

  ...group('renames answered in C', [
    // A lower file looked up or listed is marked with its name, and its rename to a name missing
    // from every layer of a directory marked for its lookups is copied up and answered in C
    // (native/fuse-ll-cow.c, fll_cow_rename), the lower directories above it copied up first; the
    // rename reaches the disk after the copy's flush. Whatever comes after must find it done.
    {
      name: 'lower files renamed in place and into deeper lower directories, then read, listed and changed',
      layers: [
        { 'a/b/c/f': 'f', 'a/b/c/g': 'g', 'a/b/h': 'h', 'x/y/z/keep': 'k', top: 't', 'n/o/p': 'p' },
        { 'a/b/c/deep': 'deep', 'x/y/other': 'o' },
      ],
      ops: [
        ['stat', 'a/b/c/f'], ['stat', 'a/b/c/g'], ['stat', 'a/b/h'], ['stat', 'top'], ['stat', 'a/b/c/deep'],
        ['readdir', 'x/y/z'], ['stat', 'n/o/p'], ['readdir', 'n/o'],
        ['rename', 'a/b/c/f', 'a/b/c/f2'],
        ['rename', 'a/b/c/g', 'x/y/z/g'],
        ['rename', 'a/b/c/deep', 'a/b/c/deep2'],
        ['rename', 'top', 'a/top'],
        ['rename', 'n/o/p', 'n/o/q'],
        ['readFile', 'a/b/c/f2'], ['stat', 'a/b/c/f'], ['stat', 'a/b/c/f2'], ['readdir', 'a/b/c'], ['readdir', 'x/y/z'],
        ['readdir', ''], ['readdir', 'a'], ['readdir', 'n/o'], ['readFile', 'n/o/q'],
        ['rename', 'a/b/c/f2', 'a/b/c/f3'],
        ['chmod', 'x/y/z/g', 0o600], ['appendFile', 'a/top', '!'], ['readFile', 'a/top'],
        ['unlink', 'a/b/c/deep2'], ['writeFile', 'a/b/c/deep', 'new'], ['readFile', 'a/b/c/deep'],
        ['stat', 'a/b/h'], ['rename', 'a/b/h', 'a/b/c/f'],
        ['readdir', 'a/b/c'], ['readdir', 'a/b'], ['readFile', 'a/b/c/f'], ['readFile', 'a/b/c/f3'],
      ],
    },
    {
      // The new name is on no disk until the flush: a second rename onto it, or a lookup of it, must
      // still find it; the old name shows nothing, though the lower file is still there.
      name: 'lower files renamed onto a name another rename gave, onto a whiteout and onto a name renamed away',
      layers: [{ 'd/a': 'a', 'd/b': 'b', 'd/c': 'c', 'd/gone': 'g', 'd/e': 'e', 'd/s/t': 't' }],
      ops: [
        ['readdir', 'd'], ['readdir', 'd/s'],
        ['rename', 'd/a', 'd/n'],
        ['stat', 'd/n'],
        ['rename', 'd/b', 'd/n'],
        ['readFile', 'd/n'],
        ['unlink', 'd/gone'],
        ['rename', 'd/c', 'd/gone'],
        ['rename', 'd/e', 'd/a'],
        ['rename', 'd/s/t', 'd/t'],
        ['readdir', 'd'], ['readdir', 'd/s'], ['readFile', 'd/gone'], ['readFile', 'd/a'], ['readFile', 'd/t'],
        ['stat', 'd/b'], ['stat', 'd/e'], ['stat', 'd/c'],
      ],
    },
    {
      // A file whose lower directory merges with a directory of a second layer, renamed into a
      // directory of that second layer only; and a hard-linked lower file and one too big to copy
      // at once, which go to the union.
      name: 'lower files renamed across merged directories, a hard-linked one and a big one',
      layers: [{ 'm/f': 'f', 'm/g': 'g', 'm/l': 'l', 'm/l2': { hardlink: 'm/l' }, 'm/big': 'big lower file'.repeat(10_000) }, { 'm/h': 'h', 'only/x': 'x' }],
      ops: [
        ['readdir', 'm'], ['readdir', 'only'],
        ['rename', 'm/f', 'only/f'], ['rename', 'm/h', 'm/h2'], ['rename', 'm/l', 'only/l'], ['rename', 'm/big', 'only/big'],
        ['readdir', 'm'], ['readdir', 'only'], ['readFile', 'only/f'], ['readFile', 'm/h2'], ['readFile', 'only/l'], ['stat', 'm/l2'],
        ['readFile', 'only/big'], ['stat', 'm/big'],
      ],
    },
  ]),

  ...group('hard links', [
    {
      // Found by the random scripts (users seed 1357). A deliberate difference: overlayfs's one
      // inode makes the rename a no-op before any permission check; layerfs's names are inodes of
      // their own, and the kernel checks the caller's right to write in both directories first.
      name: 'rename onto another name of the same file, by a user who may not write in the directories',
      layers: [{ d: { dir: true } }],
      upper: { d: { dir: true }, c: { file: 'one file', mode: 0o644 }, 'd/x': { hardlink: 'c' } },
      ops: [['asUser', 1001, 1001, ['rename', 'c', 'd/x'], []], ['rename', 'c', 'd/x'], ['readdir', ''], ['readdir', 'd'], ['readFile', 'c']],
    },
    {
      // Found by the random scripts (users seed 1121, 60 operations). The kernel checks the sticky
      // bit's rule against the owner it holds for the name unlinked, without asking; layerfs shows
      // each name as a kernel inode of its own, so a chown through one name must reach the others'.
      name: 'after a chown or chmod through one name, the new owner removes and renames the others in a sticky directory',
      layers: [{ s: { dir: true, mode: 0o1777 } }],
      upper: {
        s: { dir: true, mode: 0o1777 },
        's/a': { file: 'pair', mode: 0o600 }, 's/b': { hardlink: 's/a' },
        's/c': { file: 'trio', mode: 0o600 }, 's/d': { hardlink: 's/c' }, 's/e': { hardlink: 's/c' },
      },
      ops: [
        ['lstat', 's/a'], ['lstat', 's/b'], ['lstat', 's/c'], ['lstat', 's/d'], ['lstat', 's/e'],
        ['chown', 's/b', 1000, 1000],
        ['asUser', 1000, 1000, ['unlink', 's/a', ''], []],
        ['chown', 's/c', 1001, 1001], ['chmod', 's/d', 0o640],
        ['asUser', 1001, 1001, ['rename', 's/e', 's/f'], []],
        ['asUser', 1001, 1001, ['chmod', 's/d', 0o600], []],
        ['asUser', 1000, 1000, ['unlink', 's/d', ''], []],
        ['readdir', 's'], ['lstat', 's/b'], ['lstat', 's/d'], ['lstat', 's/f'],
      ],
    },
    {
      name: 'link a lower file',
      layers: [{ f: 'x' }],
      ops: [['stat', 'f'], ['link', 'f', 'g'], ['stat', 'f'], ['stat', 'g'], ['appendFile', 'g', 'y'], ['readFile', 'f']],
    },
    {
      name: 'link an upper file',
      layers: [{ d: { dir: true } }],
      ops: [['writeFile', 'd/f', 'x'], ['link', 'd/f', 'g'], ['stat', 'g'], ['unlink', 'd/f'], ['stat', 'g']],
    },
    {
      name: 'lower hard-link pair, then write to one',
      layers: [{ a: 'shared', b: { hardlink: 'a' } }],
      ops: [['stat', 'a'], ['stat', 'b'], ['writeFile', 'a', 'changed'], ['stat', 'a'], ['stat', 'b'], ['readFile', 'b']],
    },
    {
      name: 'link a lower file into a lower-only dir',
      layers: [{ f: 'x', 'deep/er/d': { dir: true, mode: 0o711 } }],
      ops: [['link', 'f', 'deep/er/d/g'], ['stat', 'deep/er/d'], ['stat', 'deep/er/d/g']],
    },
    {
      name: 'O_TRUNC open through one name of an upper hard-link pair',
      layers: [{ d: { dir: true } }],
      ops: [['writeFile', 'd/a', 'hello'], ['link', 'd/a', 'd/b'], ['stat', 'd/b'], ['open', 'd/a', ['O_WRONLY', 'O_TRUNC']],
        ['stat', 'd/b'], ['readFile', 'd/b']],
    },
    {
      // Found by the random scripts (io seed 2848): a copy-up of a lower file with another name
      // gives the copy a number of its own (the lower link is not kept), and a link made of it
      // later must be found by that number when the first name is written: the new name showed
      // the size and bytes of before the write.
      name: 'a link of a copied-up lower hard link sees the writes through the first name',
      layers: [{ y: 'one', x: { hardlink: 'y' }, 'a/c': { dir: true } }],
      ops: [['open', 'y', ['O_RDWR', 'O_CREAT'], { write: 'three' }], ['link', 'y', 'a/c/b'], ['appendFile', 'y', 'one'],
        ['readFile', 'a/c/b'], ['stat', 'a/c/b'], ['appendFile', 'a/c/b', '+'], ['readFile', 'y'], ['unlink', 'y'],
        ['mmap', 'a/c/b', 'r+', ['share', 'peek']], ['readFile', 'a/c/b'], ['readFile', 'x']],
    },
    {
      // One inode in overlayfs: a file open under one name reads what was written through another,
      // at once. layerfs shows each name as an inode of its own to the kernel, which drops the
      // pages of the open name before the change is answered. A lower pair copies one name up and
      // parts (overlayfs without index).
      name: 'a name held open reads what a write, append or truncate through another name made',
      layers: [{ l1: 'lower link pair', l2: { hardlink: 'l1' }, 'd/x': '' }],
      ops: [
        ['writeFile', 'd/a', 'hello world'], ['link', 'd/a', 'd/b'],
        ['heldOpen', 'd/b', 'd/a', ['read', 'write', 'read', 'size', 'append', 'read', 'size', 'truncate', 'read', 'size', 'otrunc', 'read', 'size']],
        // Opened again: the kernel keeps no pages of a hard-linked file across opens.
        ['heldOpen', 'd/b', 'd/a', ['read', 'write', 'read']],
        ['heldOpen', 'l2', 'l1', ['read', 'write', 'read', 'size']],
        ['readFile', 'd/b'], ['readFile', 'l1'], ['readFile', 'l2'],
      ],
    },
    {
      // Found by the random scripts. A name read while it was the file's only one keeps its pages
      // across opens; a link makes another name (another kernel inode), and a write through that
      // one must not leave the first showing the old bytes once it is the only name again.
      name: 'a write through a new link reaches the name that cached the file alone',
      layers: [{ f: 'lower data' }],
      ops: [
        ['open', 'f', 'r+', { write: 'A', at: 0, read: true }], ['readFile', 'f'],
        ['link', 'f', 'g'], ['open', 'g', 'r+', { write: 'BBBB', at: 2, read: true }], ['unlink', 'g'], ['readFile', 'f'],
        ['link', 'f', 'h'], ['appendFile', 'h', '!'], ['unlink', 'h'], ['readFile', 'f'],
      ],
    },
    {
      name: 'link a dir, and link onto an existing name',
      layers: [{ d: { dir: true }, f: 'x', g: 'y' }],
      ops: [['link', 'd', 'd2'], ['link', 'f', 'g'], ['link', 'missing', 'h']],
    },
  ]),

  ...group('attributes', [
    {
      name: 'chattr and lsattr: the flags of lower objects, set on their copies; an immutable file refuses changes',
      layers: [{ f: 'x', d: { dir: true }, 'd/g': 'g', 'd/h': 'h' }],
      ops: [
        ['lsattr', 'f'], ['lsattr', 'd'], ['chattr', 'f', '+A'], ['lsattr', 'f'], ['chattr', 'd', '+d'], ['lsattr', 'd'],
        ['chattr', 'd/g', '+i'], ['lsattr', 'd/g'], ['unlink', 'd/g'], ['appendFile', 'd/g', 'more'], ['rename', 'd/g', 'd/moved'],
        ['chmod', 'd/g', 0o600], ['unlink', 'd/h'], ['chattr', 'd/g', '-i'], ['unlink', 'd/g'], ['readdir', 'd'],
        // Any other ioctl is not the file's to answer: ENOTTY (layerfs answered EIO until 2026-12-02).
        ['ttyIoctl', 'f'], ['ttyIoctl', 'd'],
      ],
    },
    {
      name: 'chmod a lower file keeps data and times',
      layers: [{ 'd/f': { file: 'data', mode: 0o644, mtime: T1 } }],
      ops: [['chmod', 'd/f', 0o600], ['stat', 'd/f'], ['readFile', 'd/f']],
    },
    {
      name: 'chown a lower file',
      layers: [{ f: { file: 'data', uid: 1, gid: 2 } }],
      ops: [['chown', 'f', 1000, 1001], ['stat', 'f']],
    },
    {
      name: 'utimes a lower file',
      layers: [{ f: 'data' }],
      ops: [['utimes', 'f', T1, T2], ['stat', 'f'], ['readFile', 'f']],
    },
    {
      name: 'setuid/setgid/sticky bits',
      layers: [{ f: { file: 'x', mode: 0o4755 }, g: { file: 'y', mode: 0o2755 }, d: { dir: true, mode: 0o1777 } }],
      ops: [['stat', 'f'], ['chmod', 'g', 0o6750], ['stat', 'g'], ['stat', 'd'], ['chmod', 'd', 0o3775], ['stat', 'd']],
    },
    {
      name: 'chown of a setuid lower file',
      layers: [{ f: { file: 'x', mode: 0o6755 } }],
      ops: [['chown', 'f', 1000, 1000], ['stat', 'f']],
    },
    {
      // The filesystem, not the caller, decides: a subdirectory inherits setgid and the group, a file the group.
      name: 'creates in a setgid directory inherit its group (and a subdirectory its setgid)',
      layers: [{ d: { dir: true, mode: 0o2775, gid: 50 }, 'd/old': 'old', 'd/gone': { dir: true }, 'd/gone2': 'x' }],
      ops: [
        ['mkdir', 'd/sub', 0o755],
        ['mkdir', 'd/sub/deeper', 0o700],
        ['writeFile', 'd/f', 'f'],
        ['mkfifo', 'd/p'],
        ['symlink', 'old', 'd/l'],
        ['mkdir', 'e', 0o755],
        ['chown', 'e', 0, 60],
        ['chmod', 'e', 0o2750],
        ['mkdir', 'e/sub', 0o777],
        ['stat', 'd/sub'],
        ['stat', 'd/sub/deeper'],
        ['stat', 'e/sub'],
        // made over a whiteout: built in the work directory, but it must come out the same
        ['rmdir', 'd/gone'],
        ['mkdir', 'd/gone', 0o755],
        ['unlink', 'd/gone2'],
        ['mkdir', 'd/gone2', 0o755],
        ['stat', 'd/gone'],
        ['stat', 'd/gone2'],
      ],
    },
    {
      // A hard link is no new inode: over a whiteout (made aside in the work directory) too, the
      // file keeps its group.
      name: 'a hard link into a setgid directory keeps the file\'s group',
      layers: [{ d: { dir: true, mode: 0o2775, gid: 50 }, 'd/gone': 'x', f: { file: 'f', gid: 60 }, g: { file: 'g', gid: 70 } }],
      ops: [
        ['link', 'f', 'd/f'],
        ['unlink', 'd/gone'],
        ['link', 'g', 'd/gone'],
        ['stat', 'd/f'],
        ['stat', 'd/gone'],
        ['stat', 'g'],
      ],
    },
    {
      name: 'chmod a lower dir keeps its lower children visible',
      layers: [{ 'd/a': 'a', 'd/e/b': 'b' }],
      ops: [['chmod', 'd', 0o700], ['stat', 'd'], ['readdir', 'd'], ['writeFile', 'd/c', 'c'], ['readdir', 'd']],
    },
    {
      name: 'utimes a lower dir',
      layers: [{ 'd/a': 'a' }],
      ops: [['utimes', 'd', T1, T2], ['stat', 'd']],
    },
    {
      name: 'data copy-up preserves mode, owner, times and xattrs',
      layers: [{ f: { file: 'data', mode: 0o640, uid: 1000, gid: 100, mtime: T1, xattrs: { 'user.a': '1', 'trusted.t': 'T' } } }],
      ops: [['appendFile', 'f', '+more'], ['stat', 'f'], ['listxattr', 'f'], ['getxattr', 'f', 'trusted.t']],
    },
  ]),

  ...group('xattrs', [
    {
      name: 'setxattr on a lower file copies it up',
      layers: [{ 'd/f': 'x' }],
      ops: [['setxattr', 'd/f', 'user.k', 'v'], ['getxattr', 'd/f', 'user.k'], ['listxattr', 'd/f'], ['readFile', 'd/f']],
    },
    {
      name: 'listxattr of a lower file with several xattrs',
      layers: [{ f: { file: 'x', xattrs: { 'user.b': '2', 'user.a': '1', 'user.c': '' } } }],
      ops: [['listxattr', 'f'], ['getxattr', 'f', 'user.c'], ['getxattr', 'f', 'user.missing']],
    },
    {
      name: 'removexattr on a lower file',
      layers: [{ f: { file: 'x', xattrs: { 'user.a': '1', 'user.b': '2' } } }],
      ops: [['removexattr', 'f', 'user.a'], ['listxattr', 'f'], ['removexattr', 'f', 'user.a'], ['getxattr', 'f', 'user.a']],
    },
    {
      name: 'setxattr on a lower dir',
      layers: [{ 'd/x': 'x' }],
      ops: [['setxattr', 'd', 'user.dir', 'yes'], ['listxattr', 'd'], ['readdir', 'd']],
    },
    {
      name: 'overlay private xattrs through the mount',
      layers: [{ d: { opaque: true }, 'd/x': 'x', f: 'f' }],
      ops: [
        ['getxattr', 'd', 'trusted.overlay.opaque'],
        ['setxattr', 'f', 'trusted.overlay.opaque', 'y'],
        ['getxattr', 'f', 'trusted.overlay.opaque'],
        ['setxattr', 'f', 'trusted.other', 'ok'],
        ['getxattr', 'f', 'trusted.other'],
      ],
    },
    {
      name: 'user xattr on a symlink',
      layers: [{ l: { symlink: 'f' }, f: 'x' }],
      ops: [['setxattr', 'l', 'user.via', 'link'], ['getxattr', 'f', 'user.via'], ['listxattr', 'l']],
    },
  ]),

  ...group('special files', [
    {
      name: 'mkfifo on the mount',
      layers: [{ d: { dir: true } }],
      ops: [['mkfifo', 'd/p'], ['lstat', 'd/p'], ['readdir', 'd']],
    },
    {
      name: 'lower fifo: stat and chmod (special file copy-up)',
      layers: [{ p: { fifo: true, mode: 0o640, uid: 7 } }],
      ops: [['lstat', 'p'], ['chmod', 'p', 0o600], ['lstat', 'p']],
    },
    {
      name: 'mknod of a 0/0 char device through the mount',
      layers: [{ d: { dir: true } }],
      ops: [['mknod', 'd/w', 'c', 0, 0], ['lstat', 'd/w'], ['readdir', 'd']],
    },
    {
      name: 'lower char device',
      layers: [{ 'dev/null': { chardev: [1, 3], mode: 0o666 } }],
      ops: [['lstat', 'dev/null'], ['chown', 'dev/null', 5, 5], ['lstat', 'dev/null']],
    },
  ]),

  ...group('names', [
    {
      name: 'ENAMETOOLONG for a 256-byte name',
      layers: [{ d: { dir: true } }],
      ops: [['createLongName', '', 256], ['createLongName', 'd', 256], ['createLongName', 'd', 255], ['readdir', 'd']],
    },
    {
      name: 'statfs name max',
      layers: [{ f: 'x' }],
      ops: [['statfsNameMax']],
    },
    {
      name: 'lookup of a 256-byte name',
      layers: [{ f: 'x' }],
      ops: [['stat', 'n'.repeat(256)], ['lstat', 'd/' + 'n'.repeat(300)]],
    },
  ]),

  ...group('three layers', [
    {
      name: 'three layers: the topmost entry wins',
      layers: [{ f: 'top' }, { f: 'mid', g: 'mid-g' }, { f: 'bottom', g: 'bottom-g', h: 'bottom-h' }],
      ops: [['readFile', 'f'], ['readFile', 'g'], ['readFile', 'h'], ['readdir', ''], ['appendFile', 'h', '!'], ['readFile', 'h']],
    },
    {
      name: 'three layers: a dir merged across all of them',
      layers: [{ 'd/a': 'a' }, { 'd/b': 'b', 'd/s/x': 'x' }, { 'd/c': 'c', 'd/s/y': 'y', 'd/a': 'old a' }],
      ops: [['readdir', 'd'], ['readdir', 'd/s'], ['readFile', 'd/a'], ['stat', 'd'], ['writeFile', 'd/s/z', 'z'], ['readdir', 'd/s']],
    },
    {
      name: 'three layers: copy-up from the bottom layer',
      layers: [{ 'a/x': 'x' }, { 'a/b/y': 'y' }, { 'a/b/c/f': { file: 'deep', mode: 0o600, uid: 3 } }],
      ops: [['chmod', 'a/b/c/f', 0o644], ['stat', 'a/b/c/f'], ['stat', 'a/b/c'], ['stat', 'a/b'], ['readdir', 'a/b']],
    },
    {
      name: 'three layers: opaque in the middle, then rm -r',
      layers: [{ 'd/top': 't' }, { d: { opaque: true }, 'd/mid': 'm' }, { 'd/bottom': 'b' }],
      ops: [['rm', 'd'], ['readdir', ''], ['mkdir', 'd'], ['readdir', 'd']],
    },
  ]),

  ...group('readdir', [
    {
      name: 'readdir merges and dedups',
      layers: [{ 'd/a': '1', 'd/b': '1' }, { 'd/b': '2', 'd/c': '2', 'd/s/x': '2' }],
      upper: { 'd/c': 'u', 'd/u': 'u' },
      ops: [['readdir', 'd'], ['readdir', 'd/s']],
    },
    {
      name: 'readdir hides whiteouts created in the session',
      layers: [{ 'd/a': 'a', 'd/b': 'b', 'd/c': { dir: true } }],
      ops: [['unlink', 'd/a'], ['rmdir', 'd/c'], ['readdir', 'd'], ['writeFile', 'd/a', 'again'], ['readdir', 'd']],
    },
    {
      name: 'readdir of a large merged root',
      layers: [
        Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`f${i}`, `top ${i}`])),
        Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`f${i + 20}`, `low ${i}`])),
      ],
      ops: [['readdir', ''], ['unlink', 'f30'], ['unlink', 'f55'], ['readdir', '']],
    },
    {
      name: 'readdir of a dir that is a whiteout-hidden name',
      layers: [{ 'd/x': 'x' }],
      ops: [['rm', 'd'], ['readdir', 'd'], ['mkdir', 'd'], ['readdir', 'd']],
    },
  ]),

  ...group('access', [
    {
      // default_permissions alone checks mode bits only: an ACL that denies would be ignored.
      name: 'POSIX ACLs grant and deny access to lower files and directories',
      layers: [{
        f: { file: 'secret', mode: 0o600, acl: 'u:1000:r' },
        g: { file: 'open', mode: 0o644, acl: 'u:1000:-' },
        d: { dir: true, mode: 0o700, acl: 'u:1000:rwx' },
        'd/x': { file: 'in', mode: 0o644 },
        h: { file: 'h', mode: 0o600 },
      }],
      ops: [
        ['asUser', 1000, 1000, ['readFile', 'f']],
        ['asUser', 1000, 1000, ['readFile', 'g']],
        ['asUser', 1000, 1000, ['readFile', 'd/x']],
        ['asUser', 1000, 1000, ['create', 'd/y', 0o022]],
        ['getfacl', 'f'],
        ['getfacl', 'd'],
        // set through the mount (a copy-up), then enforced
        ['asUser', 1000, 1000, ['appendFile', 'h', '+']],
        ['setfacl', 'h', '-m u:1000:rw'],
        ['asUser', 1000, 1000, ['appendFile', 'h', '+']],
        ['getfacl', 'h'],
        ['readFile', 'h'],
        ['setfacl', 'f', '-m u:1000:-'],
        ['asUser', 1000, 1000, ['readFile', 'f']],
      ],
    },
    {
      // A chmod of a file with an ACL changes its mask and other entries; made while the file is
      // copied up, after the ACL is copied.
      name: 'chmod and setfacl of lower objects with ACLs',
      layers: [{
        f: { file: 'secret', mode: 0o660, acl: 'u:1000:rw' },
        d: { dir: true, mode: 0o755, acl: 'u:1000:rwx,d:u:1000:rx' },
      }],
      ops: [
        ['chmod', 'f', 0o604],
        ['stat', 'f'],
        ['getfacl', 'f'],
        ['asUser', 1000, 1000, ['readFile', 'f']],
        ['setfacl', 'f', '-x u:1000'],
        ['stat', 'f'],
        ['getfacl', 'f'],
        ['setfacl', 'd', '-m m::r'],
        ['stat', 'd'],
        ['setfacl', 'd', '-b'],
        ['getfacl', 'd'],
        ['rename', 'f', 'd/f2'],
        ['getfacl', 'd/f2'],
      ],
    },
    {
      // POSIX: with a default ACL on the parent, the new object's mode and ACLs come from it, and
      // the umask does not apply. Over a whiteout too (made aside in the work directory).
      name: 'new objects inherit a default ACL, and the umask applies only without one',
      layers: [{
        d: { dir: true, mode: 0o777, acl: 'd:u:1000:rwx,d:g::r-x,d:o::---' },
        'd/gone': 'x',
        'd/gonedir': { dir: true },
        e: { dir: true, mode: 0o777 },
      }],
      ops: [
        ['asUser', 1000, 1000, ['create', 'd/new', 0o022]],
        ['asUser', 1000, 1000, ['create', 'd/new77', 0o077]],
        ['asUser', 1000, 1000, ['mkdir', 'd/sub', 0o022]],
        ['unlink', 'd/gone'],
        ['asUser', 1000, 1000, ['create', 'd/gone', 0o022]],
        ['rmdir', 'd/gonedir'],
        ['asUser', 1000, 1000, ['mkdir', 'd/gonedir', 0o022]],
        ['asUser', 1000, 1000, ['create', 'e/plain', 0o027]],
        ['asUser', 1000, 1000, ['mkdir', 'e/plaindir', 0o077]],
        ['getfacl', 'd/new'],
        ['getfacl', 'd/new77'],
        ['getfacl', 'd/sub'],
        ['getfacl', 'd/gone'],
        ['getfacl', 'd/gonedir'],
        ['stat', 'e/plain'],
        ['stat', 'e/plaindir'],
      ],
    },
    {
      // A directory's default ACL is read once and remembered (namespace.defaultAclIn): set, changed
      // or removed between two objects made in it, the next one follows, in a lower directory and
      // in one made through the mount.
      name: 'a default ACL set, changed and removed between creates in the same directory',
      layers: [{ e: { dir: true, mode: 0o777 }, 'e/old': 'x' }],
      ops: [
        ['asUser', 1000, 1000, ['create', 'e/a', 0o077]],
        ['setfacl', 'e', '-d -m u:1000:rwx,g::r-x,o::r-x'],
        ['asUser', 1000, 1000, ['create', 'e/b', 0o077]],
        ['asUser', 1000, 1000, ['mkdir', 'e/sub', 0o077]],
        ['setfacl', 'e', '-d -m o::---'],
        ['asUser', 1000, 1000, ['create', 'e/c', 0o022]],
        ['setfacl', 'e', '-k'],
        ['asUser', 1000, 1000, ['create', 'e/d', 0o077]],
        ['mkdir', 'n', 0o777],
        ['chmod', 'n', 0o777],
        ['asUser', 1000, 1000, ['create', 'n/a', 0o022]],
        ['setfacl', 'n', '-d -m u:1000:rwx,g::---,o::---'],
        ['asUser', 1000, 1000, ['create', 'n/b', 0o022]],
        ['setfacl', 'n', '-b'],
        ['asUser', 1000, 1000, ['create', 'n/c', 0o022]],
        ['stat', 'e/a'], ['getfacl', 'e/b'], ['getfacl', 'e/sub'], ['getfacl', 'e/c'], ['stat', 'e/d'], ['getfacl', 'e/d'],
        ['stat', 'n/a'], ['getfacl', 'n/b'], ['stat', 'n/c'], ['getfacl', 'n/c'],
      ],
    },
    {
      name: 'access checks on lower files',
      layers: [{ f: { file: 'x', mode: 0o644 }, x: { file: 'x', mode: 0o755 }, n: { file: 'x', mode: 0o000 } }],
      ops: [
        ['access', 'f', X_OK],
        ['access', 'x', X_OK],
        ['access', 'f', W_OK],
        ['access', 'n', R_OK | W_OK],
        ['access', 'n', X_OK],
        ['access', 'missing', F_OK],
      ],
    },
    {
      name: 'read-only mount (no upper layer)',
      layers: [{ 'd/f': 'x', g: 'g' }, { h: 'h' }],
      readonly: true,
      ops: [
        ['readdir', ''],
        ['readFile', 'd/f'],
        ['access', 'd/f', W_OK],
        ['writeFile', 'd/f', 'y'],
        ['writeFile', 'new', 'y'],
        ['unlink', 'g'],
        ['mkdir', 'e'],
        ['chmod', 'g', 0o600],
        ['setxattr', 'g', 'user.x', '1'],
      ],
    },
  ]),

  ...group('deep copy-up', [
    {
      name: 'create a/b/c/d/new where a/b/c/d exist only in a lower',
      layers: [
        {
          a: { dir: true, mode: 0o751, uid: 1000, gid: 1000, mtime: T1, xattrs: { 'user.level': 'a' } },
          'a/b': { dir: true, mode: 0o700, uid: 2000, gid: 2000, mtime: T2, xattrs: { 'user.level': 'b', 'trusted.t': 'b' } },
          'a/b/c': { dir: true, mode: 0o2775, uid: 3000, gid: 3000 },
          'a/b/c/d': { dir: true, mode: 0o1777, xattrs: { 'user.level': 'd' } },
          'a/b/c/d/old': 'old',
          'a/side': 'side',
        },
      ],
      ops: [['writeFile', 'a/b/c/d/new', 'new'], ['stat', 'a'], ['stat', 'a/b'], ['stat', 'a/b/c'], ['stat', 'a/b/c/d'], ['listxattr', 'a/b']],
    },
    {
      name: 'deep copy-up with the dirs spread over two lowers',
      layers: [{ 'a/b': { dir: true, mode: 0o711 } }, { a: { dir: true, mode: 0o750, uid: 9 }, 'a/b/c': { dir: true, mode: 0o700 } }],
      ops: [['mkdir', 'a/b/c/n'], ['stat', 'a'], ['stat', 'a/b'], ['stat', 'a/b/c'], ['readdir', 'a/b/c']],
    },
    {
      name: 'chmod a deep lower file copies up its parents only',
      layers: [{ 'p/q/r/f': 'f', 'p/q/r/g': 'g', 'p/q/s/h': 'h' }],
      ops: [['chmod', 'p/q/r/f', 0o600], ['readdir', 'p/q'], ['stat', 'p/q/r']],
    },
  ]),
  ...group('memory maps', [
    // Programs map their files: loaders, databases (LMDB, SQLite's WAL index), compilers. A FUSE
    // file is mapped through the kernel's pages of its node, or, passed through, of the backing file.
    {
      name: 'a shared map writes a lower file opened for writing (copied up at the open)',
      layers: [{ 'd/a': 'lower a 0123456789abcdef' }],
      ops: [
        ['mmap', 'd/a', 'r+', ['share', 'peek', 'poke', 'peek', 'otherRead', 'msync', 'size', 'touched']],
        ['readFile', 'd/a'], ['stat', 'd/a'], ['stat', 'd'],
      ],
    },
    {
      name: 'maps of a lower file opened for reading copy nothing up',
      layers: [{ a: 'lower a 0123456789abcdef', 'x/b': 'lower b' }],
      ops: [
        ['mmap', 'a', 'r', ['share', 'peek', 'shareWritable', 'private', 'exec', 'peek', 'otherRead', 'size']],
        ['mmap', 'x/b', 'r', ['exec', 'private']],
        ['readFile', 'a'], ['stat', 'a'], ['readdir', 'x'],
      ],
    },
    {
      name: 'a private map of a lower file opened for writing changes nothing but copies it up',
      layers: [{ p: 'private lower file' }],
      ops: [['mmap', 'p', 'r+', ['private', 'share', 'peek']], ['readFile', 'p'], ['stat', 'p']],
    },
    {
      name: 'a new file grown and written through a map, and read through another open',
      layers: [{ d: { dir: true } }],
      ops: [
        ['writeFile', 'd/n', 'start'],
        ['mmap', 'd/n', 'r+', ['share', 'grow', 'pokeEnd', 'poke', 'peek', 'otherRead', 'size', 'msync', 'touched']],
        ['readFile', 'd/n'], ['stat', 'd/n'],
      ],
    },
    {
      name: 'a map of a file in the upper layer follows writes and truncation through other opens',
      layers: [{ u: 'copied up 0123456789' }],
      ops: [
        ['writeFile', 'n', 'new file 0123456789'],
        ['mmap', 'n', 'r+', ['share', 'pwrite', 'peek', 'otherWrite', 'peek', 'poke', 'otherRead', 'shrink', 'size', 'peek']],
        ['readFile', 'n'],
        ['chmod', 'u', 0o600],
        ['mmap', 'u', 'r+', ['share', 'otherWrite', 'peek', 'pwrite', 'otherRead', 'poke', 'msync']],
        ['readFile', 'u'], ['stat', 'u'],
      ],
    },
    {
      name: 'a shared map writes a big lower file (passed through) at both ends',
      layers: [{ big: { file: 'big lower head', size: 2 << 20 } }],
      ops: [
        ['mmap', 'big', 'r+', ['share', 'peek', 'poke', 'pokeEnd', 'msync', 'otherRead', 'size', 'touched']],
        ['readFile', 'big'], ['stat', 'big'],
      ],
    },
  ]),
]
