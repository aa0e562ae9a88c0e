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

/** layerfs must match the kernel exactly: keep this empty unless a difference is a deliberate design choice. */
const layerfs: KnownDifference[] = [
  {
    scenario: 'SEEK_DATA and SEEK_HOLE find the holes of a sparse lower file, then of its copy',
    driver: 'layerfs',
    ops: [5],
    why: 'a copy-up keeps every hole of the lower file; the kernel copies each 1 MiB chunk that holds data whole, so its copy has data where the lower file had a hole',
  },
  {
    scenario: 'OCI .wh.name file in a lower layer',
    driver: 'layerfs',
    ops: [0, 1, 2],
    fields: ['merged:.#ino', 'merged:.wh.f', 'merged:f', 'merged:g#ino'],
    why: 'layerfs reads OCI whiteouts in every layer (image layer dirs come in both encodings); the kernel shows .wh.f and f as plain files',
  },
  {
    scenario: 'OCI .wh..wh..opq in a lower layer',
    driver: 'layerfs',
    ops: [0, 1],
    fields: ['merged:.#ino', 'merged:d#ino', 'merged:d#nlink', 'merged:d/.wh..wh..opq', 'merged:d/new#ino', 'merged:d/old'],
    why: 'layerfs reads the OCI opaque marker; the kernel shows it as a plain file and merges d/old through',
  },
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
]

export const KNOWN_DIFFERENCES: KnownDifference[] = [...layerfs, ...fuseOverlayfs]
