/**
 * An entry is what a path resolves to in the merged view: its kind, the layer that shows it, and, for
 * a directory, every layer whose same-named directory merges into it. Entries are the node table; the
 * resolver caches them, and every namespace change updates or drops exactly the entries it touches.
 */
import { type BigIntStats, type Stats, constants } from 'node:fs'
import type { Layer } from '../layers/layer.js'

export type Kind = 'file' | 'dir' | 'symlink' | 'special'

export interface Entry {
  readonly path: string
  kind: Kind
  /** The layer whose object is visible (for a directory: the topmost contributing one). */
  layer: Layer
  /** Directories only: contributing layers, topmost first, down to the first opaque one. */
  dirLayers: Layer[]
  /** Memoised st_ino (see inode.ts); dropped when the entry moves to another layer. */
  ino?: number
  /** Made through the mount (create, mkdir, mknod, symlink): it carries no origin, its inode number
   *  is its own. */
  originless?: boolean
  /** Memoised: a lower layer holds this name, so removing it needs a whiteout. */
  lowerHas?: boolean
  /** Memoised: an upper file that is a metadata-only copy (its data is still in a lower layer). */
  metacopy?: boolean
  /** Memoised for lower files (which never change): whether the file has one name, and its size. */
  shape?: FileShape
  /** A copy-up made but not named yet (see Core.defer): the open fd of the unnamed copy, which
   *  answers for the entry's attributes until the copy is flushed and linked to its name. */
  staged?: number
  /** With `staged`: the names the copy will have when it is, when links were made to it meanwhile
   *  (Core.deferLink); one otherwise. */
  stagedNames?: number
  /** Directories in the upper layer: memoised default ACL of the upper directory (null: none),
   *  read at the first object made in it (see namespace.defaultAclIn) and dropped when the union
   *  sets or removes it. */
  defaultAcl?: Buffer | null
}

export interface FileShape {
  singleLink: boolean
  size: number
  /** setuid or setgid */
  setid: boolean
  /** st_dev: the filesystem holding the data */
  dev: number
}

/** The dirLayers of every non-directory: one shared empty list instead of one per cached entry. */
export const NO_LAYERS: Layer[] = []

export function kindOf(st: Stats | BigIntStats): Kind {
  if (st.isFile()) return 'file'
  if (st.isDirectory()) return 'dir'
  if (st.isSymbolicLink()) return 'symlink'
  return 'special'
}

/** kindOf from an lstat's mode number. */
export function kindOfMode(mode: number): Kind {
  switch (mode & constants.S_IFMT) {
    case constants.S_IFREG: return 'file'
    case constants.S_IFDIR: return 'dir'
    case constants.S_IFLNK: return 'symlink'
    default: return 'special'
  }
}

/** True when the entry has a copy in the writable layer. */
export function inUpper(entry: Entry): boolean {
  return entry.layer.writable
}
