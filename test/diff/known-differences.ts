// Deliberate (or accepted) differences between a driver and kernel overlayfs, per scenario.
//
// For a listed scenario+driver, everything else is still compared, and every listed part MUST differ: an
// entry that no longer matches anything fails the test as stale (delete it when the driver is fixed).
//   ops:    op indices (0-based) whose result may differ
//   fields: difference-key patterns (see compare.ts), '*' matches anything, a pattern covers its sub-keys:
//           'merged:d#nlink', 'upper:a/f', 'merged:*#nlink', 'upper:d#xattrs.user.x', 'op:*#nlink'
//   where:  optional predicate narrowing which matching differences are covered (e.g. only directories)
// scenario '*' makes a driver-wide entry: it applies to every scenario, and is stale only if it matched
// nothing in a full run of the suite.
import type { Difference } from './compare.js'
import type { DriverName } from './drivers.js'

export interface KnownDifference {
  scenario: string
  driver: DriverName
  ops?: number[]
  fields?: string[]
  where?: (d: Difference) => boolean
  why: string
}

/** helpers for `where` */
const typeIs = (d: Difference, t: string): boolean => {
  const c = d.ctxA as { type?: unknown; stat?: { type?: unknown } } | null | undefined
  return c?.type === t || c?.stat?.type === t
}
export const isDir = (d: Difference): boolean => typeIs(d, 'dir')

/** layerfs must match the kernel exactly: keep this empty unless a difference is a deliberate design choice.
 *  Both bridges serve the same union, so these hold for layerfs-fuse-native too. */
const layerfsDeliberate: Omit<KnownDifference, 'driver'>[] = [
  {
    scenario: 'rename onto another name of the same file, by a user who may not write in the directories',
    ops: [0],
    why: "overlayfs shows both names as one inode, and the kernel's rename of a file onto itself returns 0 before it checks any permission; layerfs shows each name as an inode of its own, so the kernel checks the caller's right to write in both directories first (EACCES). Done by root, the rename leaves both names, on both",
  },
  {
    scenario: 'SEEK_DATA and SEEK_HOLE find the holes of a sparse lower file, then of its copy',
    ops: [5],
    why: 'a copy-up keeps every hole of the lower file; the kernel copies each 1 MiB chunk that holds data whole, so its copy has data where the lower file had a hole',
  },
  {
    scenario: 'OCI .wh.name file in a lower layer',
    ops: [0, 1, 2],
    fields: ['merged:.#ino', 'merged:.wh.f', 'merged:f', 'merged:g#ino'],
    why: 'layerfs reads OCI whiteouts in every layer (image layer dirs come in both encodings); the kernel shows .wh.f and f as plain files',
  },
  {
    scenario: 'OCI .wh..wh..opq in a lower layer',
    ops: [0, 1],
    fields: ['merged:.#ino', 'merged:d#ino', 'merged:d#nlink', 'merged:d/.wh..wh..opq', 'merged:d/new#ino', 'merged:d/old'],
    why: 'layerfs reads the OCI opaque marker; the kernel shows it as a plain file and merges d/old through',
  },
]

/** A directory with lower layers moved under redirect_dir: overlayfs copies up the directory alone
 *  and records where its lower layers hold it (trusted.overlay.redirect), so it merges on (one link
 *  shown, whiteouts for names removed in it since); layerfs copies its whole tree up and moves a
 *  directory only in the upper layer (opaque where a lower layer could show through), which shows
 *  its own links, and an OCI layer can carry as it is (namespace.ts, movableDir). */
const MOVED = 'a directory with lower layers moves with its tree copied up (layerfs) rather than with a redirect to its lower layers (overlayfs): the same names and contents, its own link count instead of a merged directory\'s 1, and an upper layer holding the whole tree'
const movedDirs: Omit<KnownDifference, 'driver'>[] = [
  {
    scenario: 'redirect_dir: rename a lower directory, then change what moved',
    fields: ['merged:d/e2#nlink', 'merged:d/e2/sub#nlink', 'upper:d/e2#opaque', 'upper:d/e2/f', 'upper:d/e2/h', 'upper:d/e2/sub/k'],
    why: MOVED,
  },
  {
    scenario: 'redirect_dir: rename a merged directory into another directory',
    fields: ['merged:b/d#nlink', 'upper:b/d#opaque', 'upper:b/d/gone', 'upper:b/d/x'],
    why: MOVED,
  },
  {
    scenario: 'redirect_dir: a lower directory renamed onto a non-empty one, then onto an empty one',
    fields: ['merged:empty#nlink', 'upper:empty#opaque', 'upper:empty/f'],
    why: MOVED,
  },
  {
    scenario: 'redirect_dir: exchange two lower directories',
    fields: ['merged:p/a#nlink', 'merged:q/b#nlink', 'upper:p/a#opaque', 'upper:p/a/y', 'upper:p/a/z', 'upper:p/a/z/w', 'upper:q/b#opaque', 'upper:q/b/x'],
    why: MOVED,
  },
  {
    scenario: 'metacopy: a directory of metadata-only copies moves, and their data follows',
    fields: ['merged:e#nlink', 'merged:s2#nlink', 'upper:e#opaque', 'upper:e/s', 'upper:s2#opaque'],
    why: MOVED,
  },
  {
    scenario: 'redirect_dir: a listed lower tree, changed, moved, then changed again',
    fields: ['merged:e#nlink', 'merged:e/s#nlink', 'merged:e/s/t#nlink', 'upper:e#opaque', 'upper:e/f', 'upper:e/s/t/u'],
    why: MOVED,
  },
  {
    scenario: 'redirect_dir: exchange a lower directory with a lower file',
    fields: ['merged:q/f#nlink', 'upper:q/f#opaque', 'upper:q/f/s', 'upper:q/f/s/y', 'upper:q/f/x'],
    why: MOVED,
  },
]

const layerfs: KnownDifference[] = [...layerfsDeliberate, ...movedDirs].map((k) => ({ ...k, driver: 'layerfs' as const }))

const FN = 'layerfs-fuse-native' as const

// What layerfs's second bridge cannot carry: libfuse 2's high-level API and the fuse-native package
// over it (fuse-native 2.2.6). The default bridge (native/fuse-ll-*.c, libfuse 3's low-level API)
// was built for these.
const TMPFILE = 'libfuse 2 has no create without a name: O_TMPFILE gets EOPNOTSUPP'
const UNLINKED = 'fuse-native calls every operation by path, and a file unlinked or a directory removed while open has none left: what its descriptor asks fails with ENOENT'
const IDS = "fuse-native does not pass the caller's uid and gid: new objects are the daemon's (root's)"
const KILL = "over libfuse 2 (no killpriv) the kernel clears set-ID bits itself before a write, by a rule that keeps setgid without group execute; overlayfs's upper filesystem drops it for a writer outside the file's group"
const MTIME = 'fuse-native hands utimens the access time twice, so the modification time a utimes asks for is lost'
const DIRS = 'fuse-native hands utimens the access time twice (a set mtime is lost), and libfuse 2 cannot ask for FUSE_POSIX_ACL: the kernel applies the umask to a new file in a directory with a default ACL, which narrows the inherited mask'
const ACL = "libfuse 2 cannot ask for FUSE_POSIX_ACL: the kernel checks mode bits only (ACL entries grant and deny nothing) and applies the umask itself; and fuse-native does not pass the caller's ids (new objects are root's)"
const RENAME = 'libfuse 2 has no rename flags: renameat2 with RENAME_NOREPLACE, RENAME_EXCHANGE or RENAME_WHITEOUT gets EINVAL'
const FALLOC = 'fuse-native has no fallocate: EOPNOTSUPP'
const SEEK = 'fuse-native has no lseek: the kernel answers SEEK_DATA and SEEK_HOLE itself (data up to the size, no holes)'
const IOCTL = 'fuse-native has no ioctl: lsattr and chattr get EOPNOTSUPP'

/** A utimes of `path` (op `op`) whose mtime fuse-native lost: its result and the mtime shown and stored. */
const mtimeLost = (scenario: string, op: number, path: string): KnownDifference =>
  ({ scenario, driver: FN, ops: [op], fields: [`merged:${path}#mtime`, `upper:${path}#mtime`], why: MTIME })

const layerfsFuseNative: KnownDifference[] = [
  // (fuse-native has no lseek at all: SEEK_HOLE's own entry below covers that scenario)
  ...[...layerfsDeliberate, ...movedDirs].filter((k) => !k.scenario.startsWith('SEEK_DATA') && !k.scenario.includes('exchange') && !k.scenario.includes('listed lower tree')).map((k) => ({ ...k, driver: FN })),
  { ...movedDirs.find((k) => k.scenario.includes('listed lower tree'))!, driver: FN },
  mtimeLost('redirect_dir: a listed lower tree, changed, moved, then changed again', 15, 'e/s/i'),
  {
    scenario: 'redirect_dir: exchange a lower directory with a lower file',
    driver: FN,
    ops: [0, 3, 4, 5],
    fields: ['merged:p#mtime', 'merged:p#nlink', 'merged:p/d#mode', 'merged:p/d#nlink', 'merged:p/d#sha256', 'merged:p/d#size', 'merged:p/d#type', 'merged:p/d/s', 'merged:p/d/s/y', 'merged:p/d/x', 'merged:q#ino', 'merged:q#mtime', 'merged:q#nlink', 'merged:q/f#ino', 'merged:q/f#mode', 'merged:q/f#sha256', 'merged:q/f#size', 'merged:q/f#type', 'merged:q/f/s', 'merged:q/f/s/y', 'merged:q/f/x', 'upper:p', 'upper:p/d', 'upper:q', 'upper:q/f'],
    why: RENAME,
  },
  {
    scenario: 'redirect_dir: exchange two lower directories',
    driver: FN,
    ops: [0, 1, 2, 3, 4],
    fields: ['merged:p#mtime', 'merged:p#nlink', 'merged:p/a#nlink', 'merged:q/b#nlink', 'merged:p/a/x', 'merged:p/a/y', 'merged:p/a/z', 'merged:p/a/z/w', 'merged:q#ino', 'merged:q#mtime', 'merged:q#nlink', 'merged:q/b#ino', 'merged:q/b/x', 'merged:q/b/y', 'merged:q/b/z', 'merged:q/b/z/w', 'upper:p', 'upper:p/a', 'upper:q', 'upper:q/b'],
    why: RENAME,
  },
  {
    scenario: 'O_TMPFILE files, linked in lower and upper directories and over a whiteout',
    driver: FN,
    ops: [1, 2, 4, 5, 7, 8, 9, 10],
    fields: ['merged:.#ino', 'merged:d#ino', 'merged:d/gone', 'merged:d/keep#ino', 'merged:d/second', 'merged:e#ino', 'merged:e#mtime', 'merged:e#nlink', 'merged:e/t', 'merged:n#ino', 'upper:d/gone#gid', 'upper:d/gone#link', 'upper:d/gone#mode', 'upper:d/gone#mtime', 'upper:d/gone#nlink', 'upper:d/gone#sha256', 'upper:d/gone#size', 'upper:d/gone#type', 'upper:d/gone#uid', 'upper:d/gone#whiteout', 'upper:d/second', 'upper:e', 'upper:e/t'],
    why: TMPFILE,
  },
  {
    scenario: 'POSIX ACLs grant and deny access to lower files and directories',
    driver: FN,
    ops: [0, 1, 2, 3, 8, 10],
    fields: ['merged:d#mtime', 'merged:d#nlink', 'merged:d/y', 'merged:f#ino', 'merged:g#ino', 'merged:h#ino', 'merged:h#mtime', 'merged:h#sha256', 'merged:h#size', 'upper:d', 'upper:d/y', 'upper:h#mtime', 'upper:h#sha256', 'upper:h#size'],
    why: ACL,
  },
  {
    scenario: 'SEEK_DATA and SEEK_HOLE find the holes of a sparse lower file, then of its copy',
    driver: FN,
    ops: [1, 2, 6, 7],
    why: SEEK,
  },
  {
    scenario: 'a directory removed while open is still there, with no links and nothing in it',
    driver: FN,
    ops: [1],
    why: UNLINKED,
  },
  {
    scenario: 'a directory removed while open keeps its xattrs',
    driver: FN,
    ops: [0, 1],
    why: UNLINKED,
  },
  {
    scenario: 'a file unlinked while open keeps changing through its descriptor',
    driver: FN,
    ops: [1, 2, 4, 5],
    why: UNLINKED,
  },
  {
    scenario: 'a big lower file held open for reading, written through another open, removed, its name reused',
    driver: FN,
    ops: [0],
    why: UNLINKED,
  },
  mtimeLost('a listed tree changed files first, as chown -R does', 25, 't/y'),
  mtimeLost('times after 2262, on lower, copied-up and new files', 6, 'a'),
  mtimeLost('chmod -R order: each directory changed, listed, then its files', 10, 'd/g'),
  {
    scenario: 'a removed upper directory takes changes through its fd, a removed lower one refuses them',
    driver: FN,
    ops: [0, 1],
    why: UNLINKED,
  },
  {
    scenario: 'an exchange that moves a directory into a merged directory makes it opaque',
    driver: FN,
    ops: [0, 2],
    fields: ['merged:m#mtime', 'merged:m/f#mode', 'merged:m/f#nlink', 'merged:m/f#sha256', 'merged:m/f#size', 'merged:m/f#type', 'merged:m/f/x', 'merged:m/low#ino', 'merged:solo#ino', 'merged:solo#mtime', 'merged:solo#nlink', 'merged:solo/d#ino', 'merged:solo/d#mode', 'merged:solo/d#nlink', 'merged:solo/d#sha256', 'merged:solo/d#size', 'merged:solo/d#type', 'merged:solo/d/x', 'upper:m#mtime', 'upper:m/f#mode', 'upper:m/f#nlink', 'upper:m/f#opaque', 'upper:m/f#sha256', 'upper:m/f#size', 'upper:m/f#type', 'upper:m/f/x', 'upper:solo#mtime', 'upper:solo/d#mode', 'upper:solo/d#nlink', 'upper:solo/d#sha256', 'upper:solo/d#size', 'upper:solo/d#type', 'upper:solo/d/x'],
    why: RENAME,
  },
  {
    scenario: 'append by a user clears setuid and setgid of a lower file',
    driver: FN,
    ops: [6],
    fields: ['merged:h#mode', 'upper:h#mode'],
    why: KILL,
  },
  {
    scenario: 'chattr and lsattr: the flags of lower objects, set on their copies; an immutable file refuses changes',
    driver: FN,
    ops: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15],
    fields: ['merged:d/moved', 'merged:f#ino', 'upper:d/moved', 'upper:f'],
    why: IOCTL,
  },
  {
    scenario: 'after a chown or chmod through one name, the new owner removes and renames the others in a sticky directory',
    driver: FN,
    ops: [6, 9, 12, 13, 15],
    fields: ['merged:s#mtime', 'merged:s/a', 'merged:s/b#nlink', 'merged:s/e', 'merged:s/f', 'upper:s#mtime', 'upper:s/a', 'upper:s/b#link', 'upper:s/b#nlink', 'upper:s/c#link', 'upper:s/d#link', 'upper:s/e', 'upper:s/f'],
    why: "libfuse 2's high-level API gives each name of a hard link a node of its own, and fuse-native cannot tell the kernel to drop a name: the kernel checks the sticky bit's rule against the owner it holds for the other names until their attribute timeout, and refuses the new owner (EPERM)",
  },
  {
    scenario: 'a name held open reads what a write, append or truncate through another name made',
    driver: FN,
    ops: [2],
    why: "libfuse 2's high-level API gives each name of a hard link a node of its own, and fuse-native cannot tell the kernel to drop pages: a file open under one name reads its old pages after a write through another, until a size change or a new open drops them",
  },
  {
    scenario: 'chmod, open, unlink: the open file reads the lower data and takes changes',
    driver: FN,
    ops: [3, 4, 5],
    why: UNLINKED,
  },
  {
    scenario: 'direct I/O reads and writes lower, copied-up and new files',
    driver: FN,
    ops: [6],
    fields: ['merged:d/new#gid', 'merged:d/new#uid', 'upper:d/new#gid', 'upper:d/new#uid'],
    why: IDS,
  },
  mtimeLost('every file of a listed tree changed, hard-linked and big ones among them', 13, 'a/s2'),
  {
    scenario: 'fallocate lower files: allocate past the end, keep the size, punch a hole, zero a range',
    driver: FN,
    ops: [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11],
    fields: ['merged:d/g#mtime', 'merged:d/g#sha256', 'merged:f#mtime', 'merged:f#sha256', 'merged:f#size', 'upper:d/g#mtime', 'upper:d/g#sha256', 'upper:f#mtime', 'upper:f#sha256', 'upper:f#size'],
    why: FALLOC,
  },
  {
    scenario: 'lchown and lutimes on a lower symlink',
    driver: FN,
    ops: [2],
    fields: ['merged:l#mtime'],
    why: MTIME,
  },
  {
    scenario: 'listed directories changed: modes, owners, times, set-ID, xattrs, ACLs, merged and opaque ones',
    driver: FN,
    ops: [10, 26, 34],
    fields: ['merged:a/d1#mtime', 'merged:a/d3#mtime', 'merged:a/d5/new#mode', 'upper:a/d1#mtime', 'upper:a/d3#mtime', 'upper:a/d5/new#mode', 'upper:a/d5/new#xattrs.system.posix_acl_access.sha256'],
    why: DIRS,
  },
  mtimeLost('listed files removed and made again, or renamed, then changed', 17, 'd/h'),
  mtimeLost('listed files written, given an xattr or a link, then changed', 17, 'd/t'),
  {
    scenario: 'new objects inherit a default ACL, and the umask applies only without one',
    driver: FN,
    ops: [9, 10, 11, 12, 13, 14, 15],
    fields: ['merged:d/gone#gid', 'merged:d/gone#mode', 'merged:d/gone#uid', 'merged:d/gonedir#gid', 'merged:d/gonedir#mode', 'merged:d/gonedir#uid', 'merged:d/new#gid', 'merged:d/new#mode', 'merged:d/new#uid', 'merged:d/new77#gid', 'merged:d/new77#mode', 'merged:d/new77#uid', 'merged:d/sub#gid', 'merged:d/sub#mode', 'merged:d/sub#uid', 'merged:e/plain#gid', 'merged:e/plain#uid', 'merged:e/plaindir#gid', 'merged:e/plaindir#uid', 'upper:d/gone#gid', 'upper:d/gone#mode', 'upper:d/gone#uid', 'upper:d/gone#xattrs.system.posix_acl_access.sha256', 'upper:d/gonedir#gid', 'upper:d/gonedir#mode', 'upper:d/gonedir#uid', 'upper:d/gonedir#xattrs.system.posix_acl_access.sha256', 'upper:d/new#gid', 'upper:d/new#mode', 'upper:d/new#uid', 'upper:d/new#xattrs.system.posix_acl_access.sha256', 'upper:d/new77#gid', 'upper:d/new77#mode', 'upper:d/new77#uid', 'upper:d/new77#xattrs.system.posix_acl_access.sha256', 'upper:d/sub#gid', 'upper:d/sub#mode', 'upper:d/sub#uid', 'upper:d/sub#xattrs.system.posix_acl_access.sha256', 'upper:e/plain#gid', 'upper:e/plain#uid', 'upper:e/plaindir#gid', 'upper:e/plaindir#uid'],
    why: ACL,
  },
  {
    scenario: 'a default ACL set, changed and removed between creates in the same directory',
    driver: FN,
    ops: [15, 16, 17, 18, 19, 21, 22, 23],
    fields: ['merged:e/a#gid', 'merged:e/a#uid', 'merged:e/b#gid', 'merged:e/b#mode', 'merged:e/b#uid', 'merged:e/c#gid', 'merged:e/c#mode', 'merged:e/c#uid', 'merged:e/d#gid', 'merged:e/d#uid', 'merged:e/sub#gid', 'merged:e/sub#mode', 'merged:e/sub#uid', 'merged:n/a#gid', 'merged:n/a#uid', 'merged:n/b#gid', 'merged:n/b#mode', 'merged:n/b#uid', 'merged:n/c#gid', 'merged:n/c#uid', 'upper:e/a#gid', 'upper:e/a#uid', 'upper:e/b#gid', 'upper:e/b#mode', 'upper:e/b#uid', 'upper:e/b#xattrs.system.posix_acl_access.sha256', 'upper:e/c#gid', 'upper:e/c#mode', 'upper:e/c#uid', 'upper:e/c#xattrs.system.posix_acl_access.sha256', 'upper:e/d#gid', 'upper:e/d#uid', 'upper:e/sub#gid', 'upper:e/sub#mode', 'upper:e/sub#uid', 'upper:e/sub#xattrs.system.posix_acl_access.sha256', 'upper:n/a#gid', 'upper:n/a#uid', 'upper:n/b#gid', 'upper:n/b#mode', 'upper:n/b#uid', 'upper:n/b#xattrs.system.posix_acl_access.sha256', 'upper:n/c#gid', 'upper:n/c#uid'],
    why: ACL,
  },
  {
    scenario: 'rename between two names of one upper file does nothing',
    driver: FN,
    ops: [4],
    why: RENAME,
  },
  {
    scenario: 'renameat2 with RENAME_NOREPLACE, RENAME_EXCHANGE and RENAME_WHITEOUT',
    driver: FN,
    ops: [4, 5, 6, 7, 9, 10, 12, 13, 14, 15, 16, 17],
    fields: ['merged:.#mtime', 'merged:a', 'merged:b#ino', 'merged:b#sha256', 'merged:c#ino', 'merged:c#sha256', 'merged:d#ino', 'merged:d/x#ino', 'merged:e#ino', 'merged:e/y#ino', 'merged:f#ino', 'merged:new', 'merged:u#sha256', 'merged:v#sha256', 'upper:.#mtime', 'upper:a', 'upper:b', 'upper:c', 'upper:new', 'upper:u#sha256', 'upper:v#sha256'],
    why: RENAME,
  },
  mtimeLost('utimes a lower dir', 1, 'd'),
  mtimeLost('utimes a lower file', 1, 'f'),
]

const FO = 'fuse-overlayfs' as const

/** Observed behaviour of fuse-overlayfs 1.10 (Debian 12), our competitor. */
const fuseOverlayfs: KnownDifference[] = [
  // ---- driver-wide ----
  {
    scenario: '*',
    driver: FO,
    fields: ['merged:*#nlink', 'op:*#nlink'],
    where: (d) => isDir(d) && d.a === 1,
    why: 'the kernel reports st_nlink = 1 for a merged directory; fuse-overlayfs reports a real link count',
  },
  {
    scenario: '*',
    driver: FO,
    fields: ['merged:*#mtime', 'upper:*#mtime', 'op:*#mtime'],
    where: (d) => isDir(d) && typeof d.a === 'number' && d.b === 'recent',
    why: 'the kernel restores the parent directory times after linking a copied-up entry into it; fuse-overlayfs leaves the parent mtime at "now"',
  },
  {
    scenario: '*',
    driver: FO,
    fields: ['upper:*#xattrs.user.fuseoverlayfs.origin'],
    why: 'fuse-overlayfs records the origin of copied-up files in a user.fuseoverlayfs.origin xattr in the upper layer',
  },
  {
    scenario: '*',
    driver: FO,
    fields: ['upper:*.wh..opq'],
    why: 'besides trusted.overlay.opaque, fuse-overlayfs marks opaque dirs with a .wh..wh..opq file and a char 0/0 named .wh..opq',
  },

  // ---- per scenario ----
  {
    scenario: 'rm -r then mkdir makes an opaque dir',
    driver: FO,
    ops: [3, 5, 6],
    fields: ['merged:d/old', 'merged:.#ino', 'merged:d#ino', 'merged:d/new#ino'],
    why: 'BUG in fuse-overlayfs: after rm -r + mkdir, a lookup by name still finds the old lower child d/old (a stale node; readdir hides it at first, then shows it once d/new is created; gone after remount). The ino labels shift because d/old is seen first.',
  },
  {
    scenario: 'rmdir an empty merged dir over a non-empty lower (all whited out) then mkdir',
    driver: FO,
    ops: [5],
    fields: ['merged:.#ino', 'merged:d#ino'],
    why: 'BUG in fuse-overlayfs (same as above): lstat d/a finds the whited-out, then rmdir-ed lower child after mkdir d; labels shift',
  },
  {
    scenario: 'OCI .wh.name file in a lower layer',
    driver: FO,
    ops: [0, 1, 2],
    fields: ['merged:.wh.f', 'merged:f', 'merged:.#ino', 'merged:g#ino'],
    why: 'fuse-overlayfs interprets OCI .wh.NAME files in lower layers as whiteouts; kernel overlayfs shows them as plain files and hides nothing',
  },
  {
    scenario: 'OCI .wh..wh..opq in a lower layer',
    driver: FO,
    ops: [0, 1],
    fields: ['merged:d/.wh..wh..opq', 'merged:d/old', 'merged:.#ino', 'merged:d#ino', 'merged:d/new#ino'],
    why: 'fuse-overlayfs interprets an OCI .wh..wh..opq marker as opaque; kernel overlayfs shows it as a plain file and merges the dir',
  },
  {
    scenario: 'rename between two hard links of one lower inode',
    driver: FO,
    ops: [1, 2],
    fields: ['merged:a', 'merged:.#ino', 'merged:.#mtime', 'merged:b#ino', 'merged:b#nlink', 'upper:.#mtime', 'upper:a', 'upper:b'],
    why: 'fuse-overlayfs treats rename(a, b) of two links to one lower inode as the POSIX no-op; the kernel (index=off) treats them as distinct overlay inodes: b is copied up, a whited out',
  },
  {
    scenario: 'lower hard-link pair, then write to one',
    driver: FO,
    ops: [3, 4, 5],
    fields: ['merged:.#ino', 'merged:a#ino', 'merged:a#nlink', 'merged:b#mtime', 'merged:b#sha256', 'merged:b#size'],
    why: 'fuse-overlayfs keeps lower hard links together on copy-up (b sees the write, same st_ino, nlink 2); the kernel with index=off breaks the link: a gets the upper inode number and nlink 1, b keeps the old data',
  },
  {
    scenario: 'overlay private xattrs through the mount',
    driver: FO,
    ops: [1, 2],
    why: 'kernel >= 6.7 escapes trusted.overlay.* set through the mount (stored as trusted.overlay.overlay.*) and reads it back; fuse-overlayfs refuses with EPERM',
  },
  {
    scenario: 'lower fifo: stat and chmod (special file copy-up)',
    driver: FO,
    ops: [1, 2],
    fields: ['merged:p#type', 'merged:p#size', 'merged:p#sha256', 'upper:p#type', 'upper:p#size', 'upper:p#sha256', 'upper:p#nlink'],
    why: 'BUG in fuse-overlayfs: copying up a fifo fails with EIO and leaves an empty regular file in its place (upper and merged)',
  },
  {
    scenario: 'lower char device',
    driver: FO,
    ops: [1, 2],
    fields: ['merged:dev/null#type', 'merged:dev/null#size', 'merged:dev/null#sha256', 'merged:dev/null#rdev', 'upper:dev/null#type', 'upper:dev/null#size', 'upper:dev/null#sha256', 'upper:dev/null#nlink', 'upper:dev/null#rdev'],
    why: 'BUG in fuse-overlayfs: copying up a char device fails with EIO and leaves an empty regular file in its place',
  },
  {
    scenario: 'mknod of a 0/0 char device through the mount',
    driver: FO,
    ops: [0],
    fields: ['upper:d'],
    why: 'the kernel refuses to create a whiteout-like char 0/0 through the mount (EPERM); fuse-overlayfs copies up the parent and returns ENOENT',
  },
  {
    scenario: 'ENAMETOOLONG for a 256-byte name',
    driver: FO,
    ops: [2, 3],
    fields: ['merged:d#mtime', 'merged:d/n*', 'upper:d', 'upper:d/n*'],
    why: 'fuse-overlayfs limits names to 251 bytes (room for a .wh. prefix), so a 255-byte name fails with ENAMETOOLONG',
  },
  {
    scenario: 'statfs name max',
    driver: FO,
    ops: [0],
    why: 'fuse-overlayfs reports f_namemax 251 (255 minus the .wh. prefix); the kernel reports the upper fs value, 255',
  },
  {
    scenario: 'lookup of a 256-byte name',
    driver: FO,
    ops: [0],
    why: 'the kernel rejects a lookup of a name longer than its namelen with ENAMETOOLONG; fuse-overlayfs answers ENOENT',
  },
  {
    scenario: 'read-only mount (no upper layer)',
    driver: FO,
    ops: [2],
    why: 'access(W_OK) on a read-only fuse-overlayfs mount succeeds (the writes themselves fail with EROFS); the kernel answers EROFS',
  },
  {
    scenario: 'create a/b/c/d/new where a/b/c/d exist only in a lower',
    driver: FO,
    fields: ['merged:a/b/c#mode', 'upper:a/b/c#mode'],
    why: 'BUG in fuse-overlayfs: a copied-up parent dir loses its setgid bit (2775 -> 0775)',
  },
  {
    scenario: 'creates in a setgid directory inherit its group (and a subdirectory its setgid)',
    driver: FO,
    ops: [9, 10, 11, 16, 17],
    fields: ['merged:*#gid', 'merged:*#mode', 'upper:*#gid', 'upper:*#mode', 'upper:*#opaque'],
    why: 'BUG in fuse-overlayfs: what is created in a setgid dir gets the daemon\'s group, a subdir no setgid (and the copied-up dir itself loses its own); new dirs are marked opaque',
  },
  {
    scenario: 'deep copy-up with the dirs spread over two lowers',
    driver: FO,
    fields: ['upper:a/b/c/n#opaque'],
    why: 'fuse-overlayfs marks every new dir created in a merged dir as opaque; the kernel only when it replaces a whiteout',
  },
  {
    scenario: 'a directory removed while open is still there, with no links and nothing in it',
    driver: FO,
    ops: [1],
    fields: ['upper:nd'],
    why: 'fuse-overlayfs shows a removed directory with its two links, and leaves a whiteout for a directory that only the upper layer had',
  },
  {
    scenario: 'a directory removed while open keeps its xattrs',
    driver: FO,
    ops: [1],
    why: 'fuse-overlayfs takes xattr changes on a removed lower directory; the kernel refuses them (ENOTDIR), as it refuses a chmod',
  },
  {
    scenario: 'a file unlinked while open keeps changing through its descriptor',
    driver: FO,
    ops: [5],
    why: 'fuse-overlayfs changes an unlinked lower file through a read-only descriptor (chmod, times, xattrs, truncate; an open for writing through /proc, whose writes land on a copy the descriptor then reads); the kernel refuses them with EEXIST: the copy-up needs a name',
  },
  {
    scenario: 'a name held open reads what a write, append or truncate through another name made',
    driver: FO,
    ops: [4, 7],
    fields: ['merged:l1#nlink', 'merged:l2#ino', 'merged:l2#mtime', 'merged:l2#sha256', 'upper:l1', 'upper:l2'],
    why: 'fuse-overlayfs keeps lower hard links together on copy-up (the other name sees the write); the kernel with index=off breaks the link',
  },
  {
    scenario: 'chattr and lsattr: the flags of lower objects, set on their copies; an immutable file refuses changes',
    driver: FO,
    ops: [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15],
    fields: ['merged:d/moved', 'merged:f#ino', 'upper:d/moved', 'upper:f'],
    why: 'fuse-overlayfs sets no file flags (EOPNOTSUPP), so nothing becomes immutable and what the kernel refuses goes through',
  },
]

export const KNOWN_DIFFERENCES: KnownDifference[] = [...layerfs, ...layerfsFuseNative, ...fuseOverlayfs]
