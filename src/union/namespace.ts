/**
 * Operations that change names: create, mkdir, mknod, symlink, link, unlink, rmdir, rename. Each is
 * one synchronous step (see core.ts) that leaves the resolver exact: the names it touched are set or
 * dropped. Only link and rename can wait, for a copy-up of file data before their step (linkNow and
 * renameNow say when).
 *
 * Where a lower layer still holds a removed name, a whiteout replaces it in the upper layer. Renames
 * of files copy up first and leave a whiteout behind when a lower layer holds the source name; a
 * directory that exists in a lower layer cannot be renamed (EXDEV, as overlayfs without redirect_dir:
 * tools such as mv then copy and delete), unless `redirect_dir=on` (or `metacopy=on`): its whole tree
 * is copied up first, and it then moves as a directory only in the upper layer does (movableDir).
 */
import { chmodSync, closeSync, constants, fchmodSync, fchownSync, lchownSync, linkSync, lstatSync, mkdirSync, openSync, renameSync, rmSync, symlinkSync, unlinkSync } from 'node:fs'
import { type Layer, splitPath } from '../layers/layer.js'
import { WHITEOUT_PREFIX, isWhiteoutMode, whiteoutTarget } from '../layers/whiteout.js'
import { byteLength, hostBytes, hostJoin, hostPath, type HostPath } from '../sys/names.js'
import { RENAME_EXCHANGE, RENAME_NOREPLACE, RENAME_WHITEOUT, ST, ST_FIELDS, lgetxattrSync, linkFdSync, listNamesSync, lsetxattrSync, lstatIfAny, lstatNumbers, mknodSync, renameat2Sync, stTimeNs, utimensatSync } from '../sys/native.js'
import { REDIRECT_XATTR } from './inode.js'
import { defaultAclOf } from './acl.js'
import type { Core, CopyUpWant } from './core.js'
import { type Entry, type Kind, NO_LAYERS, inUpper } from './entry.js'
import { fsError, isCode } from './errors.js'
import { mergedNames } from './readdir.js'
import { NAME_MAX } from './resolver.js'

const S_ISGID = 0o2000

/** Refuse names the layers reserve, and over-long ones. */
function checkNewName(rel: string): void {
  if (rel === '') throw fsError('EEXIST', '/')
  const name = splitPath(rel)[1]
  if (byteLength(name) > NAME_MAX) throw fsError('ENAMETOOLONG', rel)
  // `.wh.` names encode deletions in every layer: a file by that name would delete its sibling.
  if (name.startsWith(WHITEOUT_PREFIX)) throw fsError('EINVAL', `reserved name ${name}`)
}

/** Who creates: new objects belong to the caller, as on any filesystem. */
export interface Owner {
  uid: number
  gid: number
  /** The caller's umask, when the mode of a create has not been masked yet (the kernel sends it
   *  apart, FUSE_DONT_MASK): applied unless the parent directory has a default ACL, which then
   *  decides the new object's mode and ACLs, as POSIX has it. */
  umask?: number
}

/** The mode a new object is made with: `mode` with the owner's umask taken off, unless the
 *  directory has a default ACL (`acl`), which then decides, as POSIX has it. */
function maskedMode(mode: number, acl: Buffer | undefined, owner?: Owner): number {
  return acl === undefined && owner?.umask !== undefined ? mode & ~owner.umask : mode
}

/**
 * The owner to give an object the daemon (root) made for `owner` in the upper directory `dirPath`
 * (-1: as made). Made in place, the object has root's group or, in a set-group-ID directory, the
 * directory's (and a subdirectory its setgid bit): what the filesystem gives, and what a caller of
 * group root gets. Made aside in the work directory (over a whiteout), it got none of that from its
 * directory, so the directory is looked at then, as for a caller of another group. `inherits`: the
 * directory is set-group-ID.
 */
function newOwner(dirPath: HostPath, aside: boolean, owner?: Owner): { uid: number; gid: number; inherits: boolean } {
  const callerGid = owner?.gid ?? 0
  let gid = -1
  let inherits = false
  if (aside || callerGid !== 0) {
    const dir = lstatSync(dirPath)
    inherits = (dir.mode & S_ISGID) !== 0
    if (inherits ? aside : callerGid !== 0) gid = inherits ? dir.gid : callerGid
  }
  return { uid: owner !== undefined && owner.uid !== 0 ? owner.uid : -1, gid, inherits }
}

/** Common to every create: the name must be free, then the object is placed and recorded. `make`
 *  gets the path to make it at and the mode to give it: `mode`, with the owner's umask applied where
 *  that applies. `linked`: the object is an existing inode under a new name (link), which may carry
 *  an origin. */
function createEntry(core: Core, rel: string, kind: Kind, mode: number, make: (path: HostPath, mode: number) => void, owner?: Owner, linked = false): Entry {
  const parent = checkParent(core, rel)
  const upper = core.requireUpper()
  // In a directory only the upper layer holds, the name is free when the host call that makes it
  // (an exclusive open, mkdir, mknod, symlink, link) finds it free: no lstat first, which would only
  // ask the same question (cp -a and tar x make every file in such a directory). Anything there
  // (a whiteout included) fails that call with EEXIST, and the create then takes the usual way.
  let atOnce = !linked && soleUpper(parent, upper) && !core.resolver.isCached(rel)
  if (!atOnce && core.resolver.resolve(rel)) throw fsError('EEXIST', rel)
  const parentPath = splitPath(rel)[0]
  core.ensureUpperDir(parent)
  // The upper parent has the visible directory's ACLs (a copy-up copies them).
  const acl = linked ? undefined : defaultAclIn(parent, upper)
  const newMode = maskedMode(mode, acl, owner)
  const place = (path: HostPath, aside: boolean): void => {
    make(path, newMode)
    // A new name for an existing inode keeps its owner, wherever the name was made.
    if (linked) return
    const { uid, gid, inherits } = newOwner(upper.path(parentPath), aside, owner)
    if (uid !== -1 || gid !== -1) lchownSync(path, uid, gid)
    if (inherits && aside && kind === 'dir') chmodSync(path, (lstatSync(path).mode & 0o7777) | S_ISGID)
  }
  if (atOnce) {
    try {
      place(upper.path(rel), false)
    } catch (err) {
      if (!isCode(err, 'EEXIST') || core.resolver.resolve(rel)) throw err
      atOnce = false
    }
  }
  const overWhiteout = atOnce ? false : core.place(rel, kind === 'dir', place, acl)
  // Made over a whiteout, whether a lower layer still has the name is looked up when it matters (a
  // removal leaves a whiteout only then, as in overlayfs): a whiteout may hide nothing any more.
  const entry: Entry = { path: rel, kind, layer: upper, dirLayers: kind === 'dir' ? [upper] : NO_LAYERS, lowerHas: overWhiteout ? undefined : false }
  if (!linked) {
    entry.originless = true
    entry.metacopy = false
  }
  core.resolver.set(rel, entry)
  if (kind === 'dir') core.resolver.madeUpperDir(rel)
  return entry
}

/**
 * The default ACL of the directory `dir` in the upper layer `upper`, read once while `dir` is
 * there: a build or an untar makes thousands of files in a few directories, and each lgetxattr
 * walked the whole path again. The memo stays exact, since the union alone writes the upper layer:
 * a default ACL changes only by a setxattr or removexattr through it (attrs.ts drops the memo
 * there; C answers neither for directories), a copy-up copies the one the lower directory had
 * before anything is made in it, and a directory made, renamed or removed is another entry.
 */
function defaultAclIn(dir: Entry, upper: Layer): Buffer | undefined {
  if (dir.layer !== upper) return defaultAclOf(upper.path(dir.path))
  if (dir.defaultAcl === undefined) dir.defaultAcl = defaultAclOf(upper.path(dir.path)) ?? null
  return dir.defaultAcl ?? undefined
}

/** A new name must be allowed, in a directory, and not taken. */
function checkFree(core: Core, rel: string): void {
  checkParent(core, rel)
  if (core.resolver.resolve(rel)) throw fsError('EEXIST', rel)
}

/** A new name must be allowed, and in a directory: that directory. */
function checkParent(core: Core, rel: string): Entry {
  checkNewName(rel)
  const parent = core.resolver.get(splitPath(rel)[0])
  if (parent.kind !== 'dir') throw fsError('ENOTDIR', parent.path)
  return parent
}

/** Whether the directory `dir` is in the upper layer `upper` alone (made there, opaque, or none of
 *  the layers below holds it): what is there is all it holds. */
function soleUpper(dir: Entry, upper: Layer): boolean {
  return dir.dirLayers.length === 1 && dir.dirLayers[0] === upper
}

/** Create and open a regular file; returns the open fd (O_RDWR). */
export function create(core: Core, rel: string, mode: number, owner?: Owner): { fd: number; entry: Entry } {
  let fd = -1
  const entry = createEntry(core, rel, 'file', mode, (path, mode) => {
    fd = openSync(path, constants.O_CREAT | constants.O_EXCL | constants.O_RDWR, mode & 0o7777)
    if (mode & core.umask) fchmodSync(fd, mode & 0o7777)
  }, owner)
  return { fd, entry }
}

export function mkdir(core: Core, rel: string, mode: number, owner?: Owner): void {
  const entry = createEntry(core, rel, 'dir', mode, (path, mode) => {
    mkdirSync(path, { mode: mode & 0o7777 })
    // The setgid a directory inherits from its parent is the filesystem's to give, and stays.
    if (mode & core.umask) chmodSync(path, (mode & 0o7777) | (lstatSync(path).mode & S_ISGID))
  }, owner)
  // With metacopy on, overlayfs (its redirect_dir on) marks every directory made in a merged one
  // opaque: no lower layer has the name (else this would be EEXIST, or made over a whiteout,
  // opaque already), so the mark changes nothing shown, and the upper layer is as overlayfs's.
  if (core.metacopy && entry.lowerHas === false && core.resolver.get(splitPath(rel)[0]).dirLayers.length > 1) {
    core.markOpaque(core.requireUpper().path(rel))
  }
}

export function mknod(core: Core, rel: string, mode: number, rdev: number, owner?: Owner): void {
  const type = mode & constants.S_IFMT
  // A char device 0/0 is how the upper layer spells "deleted": it cannot be made through the mount.
  if (type === constants.S_IFCHR && rdev === 0) throw fsError('EPERM', 'whiteout device')
  const kind: Kind = type === constants.S_IFREG || type === 0 ? 'file' : 'special'
  createEntry(core, rel, kind, mode, (path, mode) => {
    if (kind === 'file') closeSync(openSync(path, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, mode & 0o7777))
    else mknodSync(path, mode, rdev)
    if (mode & core.umask) chmodSync(path, mode & 0o7777)
  }, owner)
}

export function symlink(core: Core, target: string, rel: string, owner?: Owner): void {
  createEntry(core, rel, 'symlink', 0o777, (path) => symlinkSync(hostPath(target), path), owner)
}

/** O_TMPFILE: Linux's flag, with the O_DIRECTORY it implies. */
const O_TMPFILE = 0o20000000 | constants.O_DIRECTORY

/**
 * O_TMPFILE: a new regular file with no name, in the upper copy of the directory `dirRel`, which
 * gives it its group and default ACL as it would a named file made there. Returns its fd (O_RDWR).
 */
export function createUnnamed(core: Core, dirRel: string, mode: number, owner?: Owner): number {
  const dir = core.resolver.get(dirRel)
  if (dir.kind !== 'dir') throw fsError('ENOTDIR', dirRel)
  core.ensureUpperDir(dir)
  const upper = core.requireUpper()
  const dirPath = upper.path(dirRel)
  const newMode = maskedMode(mode, defaultAclIn(dir, upper), owner)
  const fd = openSync(dirPath, O_TMPFILE | constants.O_RDWR, newMode & 0o7777)
  try {
    if (newMode & core.umask) fchmodSync(fd, newMode & 0o7777)
    const { uid, gid } = newOwner(dirPath, false, owner)
    if (uid !== -1 || gid !== -1) fchownSync(fd, uid, gid)
  } catch (err) {
    closeSync(fd)
    throw err
  }
  return fd
}

/** linkat of a file with no name (an O_TMPFILE file, or an unlinked one with other names) open as
 *  `fd`, to the new name `rel`. */
export function linkUnnamed(core: Core, fd: number, rel: string): void {
  const entry = createEntry(core, rel, 'file', 0, (path) => linkFdSync(fd, path), undefined, true)
  entry.originless = true
  entry.metacopy = false
}

/** link at once: false when the source must have its data copied up first (core.copyUp).
 *  `outside`: a link answered outside the union, taken over (Union.adoptLinkSync; Core.deferLink). */
export function linkNow(core: Core, fromRel: string, rel: string, alone = false, outside = false): boolean {
  const source = core.resolver.get(fromRel)
  if (source.kind === 'dir') throw fsError('EPERM', 'hard link to a directory')
  core.requireUpper()
  checkFree(core, rel)
  // A small lower file's copy may wait for its flush, and the new name with it (Core.deferLink).
  // With metacopy on, a metadata-only copy, as overlayfs makes one: its data is found by the
  // redirect both names share, as overlayfs records it.
  const copied = core.copyUpNow(fromRel, linkWant(core), alone, undefined, !inUpper(source))
  if (!copied) return false
  keepDataReachable(core, copied)
  if (copied.staged !== undefined) {
    if (core.deferLink(copied, rel, outside)) return true
    core.settle(copied.path) // named, after an fsync of its own, then linked by name
  }
  const upper = core.requireUpper()
  createEntry(core, rel, copied.kind, 0, (path) => linkSync(upper.path(copied.path), path), undefined, true)
  // Both names now share one inode: a memoised nlink-dependent answer for the source is stale.
  core.resolver.invalidate(fromRel)
  // Written: its maker may answer lookups of the name from the disk again.
  if (outside) core.onLinkWritten?.('/' + rel)
  return true
}

export async function link(core: Core, fromRel: string, rel: string): Promise<void> {
  while (!linkNow(core, fromRel, rel)) await core.copyUp(fromRel, linkWant(core))
}

/** What a link needs of its source's copy-up: its data, or with metacopy on its metadata alone. */
function linkWant(core: Core): CopyUpWant {
  return core.metacopy ? 'meta' : true
}

export function unlink(core: Core, rel: string): void {
  const entry = core.resolver.get(rel)
  if (entry.kind === 'dir') throw fsError('EISDIR', rel)
  const upper = core.requireUpper()
  if (core.resolver.lowerHas(entry)) {
    core.ensureUpperDir(core.resolver.get(splitPath(rel)[0]))
    core.whiteout(rel)
    core.resolver.set(rel, undefined)
  } else {
    unlinkSync(upper.path(rel))
    core.resolver.setFree(rel)
  }
}

export function rmdir(core: Core, rel: string): void {
  const entry = core.resolver.get(rel)
  if (entry.kind !== 'dir') throw fsError('ENOTDIR', rel)
  if (rel === '') throw fsError('EBUSY', '/')
  const upper = core.requireUpper()
  const lowerHas = core.resolver.lowerHas(entry)
  // Nothing below to hide and nothing inside: the directory simply goes (most rmdirs, as in rm -rf
  // of what was made through the mount). Otherwise the merged view decides whether it is empty.
  if (!lowerHas && inUpper(entry) && core.trash.removeDir(upper.path(rel))) {
    core.resolver.setFree(rel)
    return
  }
  if (mergedNames(entry).length > 0) throw fsError('ENOTEMPTY', rel)
  if (inUpper(entry)) {
    // The upper copy can still hold whiteouts of its lower children: move it aside, whole.
    const aside = core.stager.tempPath()
    renameSync(upper.path(rel), aside)
    if (lowerHas) core.whiteout(rel)
    rmSync(aside, { recursive: true, force: true })
  } else {
    core.ensureUpperDir(core.resolver.get(splitPath(rel)[0]))
    core.whiteout(rel)
  }
  // The directory was empty, so all the cache can hold below it is "no such name", which stays
  // true: a directory made here later starts empty (opaque over a whiteout), and one renamed here
  // clears the cache below its new name. So only the name itself changes (no O(cache) sweep per rmdir,
  // which rm -rf of a big tree would pay once per directory).
  core.resolver.set(rel, undefined)
}

/** rename at once: false when a file involved must have its data copied up first (renameCopyUps). */
export function renameNow(core: Core, fromRel: string, toRel: string, flags: number, alone = false): boolean {
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) throw fsError('EINVAL', 'rename flags')
  if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE)) throw fsError('EINVAL', 'rename flags')
  if (fromRel === '' || toRel === '') throw fsError('EBUSY', '/')
  core.requireUpper()
  const source = core.resolver.get(fromRel)
  if (toRel.startsWith(fromRel + '/')) throw fsError('EINVAL', 'a directory cannot move into itself')
  checkNewName(toRel)
  const target = core.resolver.resolve(toRel)
  refuseEarly(core, source, target, toRel, flags)
  // A name renamed to itself, or to another name of the same file: rename(2) does nothing (the
  // kernel's VFS answers it before overlayfs sees it; through FUSE, each name is an inode of its own).
  if (fromRel === toRel || sameUpperFile(core, source, target)) return true
  if (!(flags & RENAME_EXCHANGE) && movedBehind(core, source, toRel)) return true
  // A rename changes no data: with metacopy on, the bytes stay below (see keepDataReachable).
  const copies = renameCopyUps(core, source, toRel, flags)
  // A tree's files are copied as flush behind copies them, a batch to a syncfs (see rename).
  if (copiesTreeBehind(core, source, toRel, flags) && copies.some((rel) => filesToCopy(core.resolver.get(rel)))) return false
  for (const rel of copies) if (!core.copyUpNow(rel, 'meta', alone)) return false
  // A copy made in a tree while its rename waited (a chmod in it, say) may wait for its flush yet:
  // named before the move, as Union.rename names what is below both names first.
  if (source.kind === 'dir') core.settle(fromRel, true)
  if (flags & RENAME_EXCHANGE) core.settle(toRel, true)
  const from = core.resolver.get(fromRel)
  const to = core.resolver.resolve(toRel)
  if (flags & RENAME_EXCHANGE) exchangeEntries(core, from, to)
  else if (to && (flags & RENAME_NOREPLACE)) throw fsError('EEXIST', toRel)
  else move(core, from, to, toRel)
  return true
}

/**
 * The refusals of a rename that need nothing copied up to be found, made before anything is: a
 * refused rename leaves no copy behind, as in overlayfs, whose VFS checks the kinds of the two
 * names (and RENAME_NOREPLACE) and which checks that the directories can move before it copies up.
 * move and exchangeEntries check all of it again, after their copy-ups.
 */
function refuseEarly(core: Core, from: Entry, to: Entry | undefined, toRel: string, flags: number): void {
  if (flags & RENAME_EXCHANGE) {
    if (!to) throw fsError('ENOENT', toRel)
    if (from.kind === 'dir') movableDir(core, from)
    if (to.kind === 'dir') movableDir(core, to)
    return
  }
  if (to && (flags & RENAME_NOREPLACE)) throw fsError('EEXIST', toRel)
  if (to?.kind === 'dir' && from.kind !== 'dir') throw fsError('EISDIR', toRel)
  // A directory with lower layers has its whole tree copied up before it moves (redirect_dir): all
  // that refuses the move refuses it before that, in overlayfs's order (move checks it again). A
  // directory it would replace that is not empty refuses it too: only in the upper layer, the
  // host's rename would, after the copies. (A directory renamed to its own name stays, as rename(2)
  // leaves it.)
  if (from.kind === 'dir' && hasLower(from) && from.path !== toRel) {
    if (to && to.kind !== 'dir') throw fsError('ENOTDIR', toRel)
    movableDir(core, from)
    if (to && mergedNames(to).length > 0) throw fsError('ENOTEMPTY', toRel)
  }
}

/** Whether `a` and `b` are two names (hard links) of one file of the upper layer. */
function sameUpperFile(core: Core, a: Entry, b: Entry | undefined): boolean {
  if (!b || a.kind === 'dir' || b.kind === 'dir' || !inUpper(a) || !inUpper(b) || a.staged !== undefined || b.staged !== undefined) return false
  const upper = core.requireUpper()
  const st = lstatNumbers(upper.path(a.path), probeStat)
  const [ino, dev] = [st[ST.INO], st[ST.DEV]]
  lstatNumbers(upper.path(b.path), probeStat)
  return probeStat[ST.INO] === ino && probeStat[ST.DEV] === dev
}

/** The names a rename copies up first: the files it moves, and a directory with lower layers (which
 *  moves only with redirect_dir, movableDir) with everything under it. */
function renameCopyUps(core: Core, source: Entry, toRel: string, flags: number): string[] {
  const names: string[] = []
  const add = (entry: Entry): void => {
    if (entry.kind !== 'dir') names.push(entry.path)
    else if (hasLower(entry)) treeCopyUps(core, entry, names)
  }
  add(source)
  if (flags & RENAME_EXCHANGE) add(core.resolver.get(toRel))
  return names
}

/** A file (not a directory) renameCopyUps lists that is not in the upper layer yet: the file an
 *  exchange swaps with a directory is listed whether it is or not (copyUpNow returns it as it is). */
function filesToCopy(entry: Entry): boolean {
  return entry.kind !== 'dir' && !inUpper(entry)
}

/** A directory that merges with a lower one, or is only below. */
export function hasLower(dir: Entry): boolean {
  return !inUpper(dir) || dir.dirLayers.length > 1
}

/** The names under the directory `dir` (itself first) that are not in the upper layer yet, each
 *  directory before its names: what makes it a directory only in the upper layer, as the union
 *  shows it. Below a directory only in the upper layer there is nothing to copy. */
function treeCopyUps(core: Core, dir: Entry, names: string[]): void {
  if (!inUpper(dir)) names.push(dir.path)
  for (const name of mergedNames(dir)) {
    const child = core.resolver.get(dir.path === '' ? name : `${dir.path}/${name}`)
    if (child.kind === 'dir') {
      if (hasLower(child)) treeCopyUps(core, child, names)
    } else if (!inUpper(child)) {
      names.push(child.path)
    }
  }
}

export async function rename(core: Core, fromRel: string, toRel: string, flags: number): Promise<void> {
  while (!renameNow(core, fromRel, toRel, flags)) {
    const source = core.resolver.get(fromRel)
    const behind = copiesTreeBehind(core, source, toRel, flags)
    const named: Array<Promise<void>> = []
    for (const rel of renameCopyUps(core, source, toRel, flags)) {
      try {
        const entry = await core.copyUp(rel, 'meta', behind)
        if (!behind) continue
        // Named once a syncfs has written its batch (Core.#defer): one flush for hundreds of
        // copies, where a copy made now is flushed alone (a tree move took four times as long).
        named.push(core.whenNamed(entry))
        if (core.deferredCopies >= TREE_BATCH) await Promise.all(named.splice(0))
      } catch (err) {
        // Removed meanwhile from a tree being copied up (redirect_dir): renameNow looks again.
        if (!isCode(err, 'ENOENT') || core.resolver.resolve(rel) !== undefined) throw err
      }
    }
    await Promise.all(named)
  }
}

/** How many copies of a tree wait for their flush at most before the move waits for them (Core
 *  holds up to 512). */
const TREE_BATCH = 256

/** Whether the rename copies up a directory's tree (redirect_dir), and its copies may wait for
 *  their flush (flush behind): made unnamed, flushed by the batch, then named (rename). Not
 *  metadata-only copies (metacopy), which have no data to flush. */
function copiesTreeBehind(core: Core, source: Entry, toRel: string, flags: number): boolean {
  if (!core.flushBehind || !core.redirectDir || core.metacopy) return false
  const dirs = [source, ...(flags & RENAME_EXCHANGE ? [core.resolver.resolve(toRel)] : [])]
  return dirs.some((entry) => entry?.kind === 'dir' && hasLower(entry))
}

/**
 * Rename a lower file without waiting for the flush of its copy (flush behind: Core.deferMove),
 * when it can be: true if done (refuseEarly has made its refusals). The directories show the
 * change at once (new mtimes now, kept when the rename is written: finishMove).
 */
function movedBehind(core: Core, from: Entry, toRel: string): boolean {
  if (!core.flushBehind || from.kind !== 'file' || inUpper(from)) return false
  // A file it replaces that has other names: their link count drops when the rename is made, and
  // the kernel is told at the reply (ll-bridge.ts, #renamed), so it is made now.
  const replaced = core.resolver.resolve(toRel)
  if (replaced && replaced.kind === 'file' && inUpper(replaced) && (lstatSync(core.requireUpper().path(toRel), { throwIfNoEntry: false })?.nlink ?? 1) > 1) return false
  const fromDir = splitPath(from.path)[0]
  const toDir = splitPath(toRel)[0]
  core.ensureUpperDir(core.resolver.get(toDir))
  if (!core.deferMove(from, toRel, (dirTimes) => finishMove(core, from.path, toRel, dirTimes))) return false
  const upper = core.requireUpper()
  utimensatSync(upper.path(fromDir), null, 'now', true)
  if (toDir !== fromDir) utimensatSync(upper.path(toDir), null, 'now', true)
  return true
}

/** Take over the rename of the lower file `fromRel` to `toRel` made outside the union, as
 *  movedBehind makes one (Core.adoptMove). */
export function adoptMove(core: Core, fromRel: string, toRel: string, fd: number, bytes: number, srcIno: number, onWritten: () => void): void {
  core.adoptMove(fromRel, toRel, fd, bytes, srcIno, (dirTimes) => finishMove(core, fromRel, toRel, dirTimes), onWritten)
}

/** Write a deferred rename, its copy linked at the old name: as move would, but the directories keep
 *  the times they took when it was answered (or since); without `dirTimes` the caller sees to that. */
function finishMove(core: Core, fromRel: string, toRel: string, dirTimes: boolean): void {
  const upper = core.requireUpper()
  const dirs = dirTimes ? [...new Set([splitPath(fromRel)[0], splitPath(toRel)[0]])].map((dir) => upper.path(dir)) : []
  const mtimes = dirs.map((dir) => stTimeNs(lstatNumbers(dir, probeStat), ST.MTIME))
  renameWithWhiteout(core, upper.path(fromRel), upper.path(toRel), fromRel)
  removeMarker(core, toRel)
  dirs.forEach((dir, i) => utimensatSync(dir, null, mtimes[i]!, true))
}

/**
 * Only a directory whose contents live wholly in the upper layer can move by a plain rename: one
 * that merges with a lower directory, or is only below, cannot (EXDEV, as overlayfs without
 * redirect_dir). One that merges with nothing moves, even where a lower layer has the name (an
 * opaque directory made over a removed one, a directory over a whiteout): the move leaves a
 * whiteout there (see move), as overlayfs does.
 *
 * With redirect_dir on (core.redirectDir, as overlayfs's `redirect_dir=on`, which `metacopy=on`
 * turns on) one with lower layers moves too, once the rename has copied up everything under it
 * (renameCopyUps) and made it opaque (detachTree): its upper copy is the whole of it, wherever it
 * goes. Overlayfs copies up
 * the directory alone and records where its lower layers hold it (trusted.overlay.redirect); the
 * view is the same, and the upper layer stays one that an OCI layer (layerfs commit, a naive diff)
 * represents as it is: the new directory whole, a whiteout at the old name.
 */
function movableDir(core: Core, dir: Entry): void {
  if (hasLower(dir) && !core.redirectDir) throw fsError('EXDEV', `${dir.path} has lower layers`)
}

/**
 * Before a directory with lower layers moves (redirect_dir), its tree copied up: the metadata-only
 * copies in it record where their data is below (keepDataReachable); it is made opaque, which
 * changes nothing shown (all it shows is in the upper layer now), wherever the move then takes it,
 * or leaves it should the host refuse; and the whiteouts and markers under it go, which hide
 * nothing then, and which overlayfs would list in a directory that merges with nothing.
 */
function detachTree(core: Core, dir: Entry): void {
  keepTreeDataReachable(core, dir)
  const path = core.requireUpper().path(dir.path)
  core.markOpaque(path)
  removeWhiteouts(path)
  core.resolver.invalidateTree(dir.path)
}

function keepTreeDataReachable(core: Core, dir: Entry): void {
  if (!core.metacopy) return
  for (const name of mergedNames(dir)) {
    const child = core.resolver.get(dir.path === '' ? name : `${dir.path}/${name}`)
    if (child.kind === 'dir') keepTreeDataReachable(core, child)
    else keepDataReachable(core, child)
  }
}

/** Remove the whiteouts (character devices 0/0, `.wh.NAME` markers) in the upper directory `dir`
 *  and the directories below it, each directory keeping its times (nothing it shows changed). */
function removeWhiteouts(dir: HostPath): void {
  let times: { atime: bigint; mtime: bigint } | undefined
  for (const name of readdirSafe(dir)) {
    const path = hostJoin(dir, name)
    if (!lstatIfAny(path, probeStat)) continue
    const mode = probeStat[ST.MODE]!
    if (isWhiteoutMode(mode, probeStat[ST.RDEV]!) || (whiteoutTarget(name) !== undefined && (mode & constants.S_IFMT) !== constants.S_IFDIR)) {
      if (!times && lstatIfAny(dir, probeStat)) times = { atime: stTimeNs(probeStat, ST.ATIME), mtime: stTimeNs(probeStat, ST.MTIME) }
      unlinkSync(path)
    } else if ((mode & constants.S_IFMT) === constants.S_IFDIR) {
      removeWhiteouts(path)
    }
  }
  if (times) utimensatSync(dir, times.atime, times.mtime, true)
}

function move(core: Core, from: Entry, to: Entry | undefined, toRel: string): void {
  const upper = core.requireUpper()
  // In overlayfs's order: the kinds (the VFS checks them), whether the directory may move, then
  // whether the one it replaces is empty: overlayfs checks a merged (or lower) one itself, and
  // leaves one only in the upper layer to the host's rename, after it has made a moved directory
  // opaque (below): a rename that then fails keeps that mark, as in overlayfs.
  if (to) {
    if (to.kind === 'dir' && from.kind !== 'dir') throw fsError('EISDIR', toRel)
    if (to.kind !== 'dir' && from.kind === 'dir') throw fsError('ENOTDIR', toRel)
  }
  if (from.kind === 'dir') movableDir(core, from)
  const toMerged = to !== undefined && hasLower(to)
  if (to?.kind === 'dir' && toMerged && mergedNames(to).length > 0) throw fsError('ENOTEMPTY', toRel)
  if (!inUpper(from)) throw fsError('ENOENT', from.path) // lost a race with an unlink
  keepDataReachable(core, from)
  if (from.kind === 'dir' && hasLower(from)) detachTree(core, from)
  core.ensureUpperDir(core.resolver.get(splitPath(toRel)[0]))
  const toPath = upper.path(toRel)
  const sourceHasLower = core.resolver.lowerHas(from)
  // A lower layer holds the target name (visibly, or under an upper whiteout): a directory moved there
  // must not let that lower directory's children show through it.
  const targetHasLower = to ? core.resolver.lowerHas(to) : hiddenByUpperWhiteout(core, toRel)
  // What a merged directory it replaces still holds in the upper layer (whiteouts, markers) goes;
  // one only in the upper layer must be empty on the host (its rename fails otherwise).
  if (to?.kind === 'dir' && inUpper(to) && toMerged) clearMarkers(toPath)
  const toParent = core.resolver.get(splitPath(toRel)[0])
  // Moved where a lower layer may hold (or later show) the name, a directory must not merge with it:
  // overlayfs marks it opaque whenever it lands in a merged directory.
  if (from.kind === 'dir' && (targetHasLower || toParent.dirLayers.length > 1)) {
    core.markOpaque(upper.path(from.path))
  }
  if (from.kind === 'dir' && !to && targetHasLower) {
    // rename(2) cannot put a directory over the whiteout (a char device): swap, then drop the whiteout.
    renameat2Sync(upper.path(from.path), toPath, RENAME_EXCHANGE)
    if (!sourceHasLower) unlinkSync(upper.path(from.path))
  } else if (sourceHasLower) {
    renameWithWhiteout(core, upper.path(from.path), toPath, from.path)
  } else {
    renameSync(upper.path(from.path), toPath)
  }
  removeMarker(core, toRel)
  // Readers of a metadata-only copy still read its lower data: a copy-up of its data at the new
  // name moves them to the copy.
  core.handles.moveLower(from.path, toRel, false, from.kind === 'dir' || to?.kind === 'dir')
  if (from.kind === 'dir' || to?.kind === 'dir') {
    core.resolver.invalidateTree(from.path)
    core.resolver.invalidateTree(toRel)
  } else {
    core.resolver.invalidate(from.path)
    core.resolver.invalidate(toRel)
  }
  core.resolver.set(from.path, undefined)
}

function renameWithWhiteout(core: Core, fromPath: HostPath, toPath: HostPath, fromRel: string): void {
  try {
    renameat2Sync(fromPath, toPath, RENAME_WHITEOUT)
    core.counters.whiteouts++
  } catch (err) {
    if (!isCode(err, 'EINVAL', 'EPERM', 'ENOSYS', 'EOPNOTSUPP')) throw err
    renameSync(fromPath, toPath)
    core.whiteout(fromRel)
  }
}

function exchangeEntries(core: Core, from: Entry, to: Entry | undefined): void {
  if (!to) throw fsError('ENOENT', 'exchange target')
  if (from.kind === 'dir') movableDir(core, from)
  if (to.kind === 'dir') movableDir(core, to)
  if (!inUpper(from) || !inUpper(to)) throw fsError('ENOENT', 'exchange raced a removal')
  for (const entry of [from, to]) {
    keepDataReachable(core, entry)
    if (entry.kind === 'dir' && hasLower(entry)) detachTree(core, entry)
  }
  const upper = core.requireUpper()
  // A directory that lands in a merged directory is made opaque, as move does it (overlayfs too).
  const mergedParent = (rel: string): boolean => core.resolver.get(splitPath(rel)[0]).dirLayers.length > 1
  if (from.kind === 'dir' && mergedParent(to.path)) core.markOpaque(upper.path(from.path))
  if (to.kind === 'dir' && mergedParent(from.path)) core.markOpaque(upper.path(to.path))
  renameat2Sync(upper.path(from.path), upper.path(to.path), RENAME_EXCHANGE)
  core.handles.moveLower(from.path, to.path, true, from.kind === 'dir' || to.kind === 'dir')
  core.resolver.invalidateTree(from.path)
  core.resolver.invalidateTree(to.path)
}

/** A metadata-only copy finds its data at its own path below: before it moves, it records that path
 *  as its redirect (overlayfs's trusted.overlay.redirect, an absolute path), once. */
function keepDataReachable(core: Core, entry: Entry): void {
  if (!core.isMetacopy(entry)) return
  const path = core.requireUpper().path(entry.path)
  if (lgetxattrSync(path, REDIRECT_XATTR) === undefined) lsetxattrSync(path, REDIRECT_XATTR, hostBytes('/' + entry.path))
}

function hiddenByUpperWhiteout(core: Core, rel: string): boolean {
  const upper = core.requireUpper()
  const [dir, name] = splitPath(rel)
  if (lstatIfAny(upper.path(rel), probeStat)) return isWhiteoutMode(probeStat[ST.MODE]!, probeStat[ST.RDEV]!)
  return core.resolver.upperMarker(dir, name) !== undefined
}

/** hiddenByUpperWhiteout's lstat numbers. */
const probeStat = new Float64Array(ST_FIELDS)

/** Remove the whiteouts and markers an (empty-looking) upper directory still holds. */
function clearMarkers(dirPath: HostPath): void {
  for (const name of readdirSafe(dirPath)) rmSync(hostJoin(dirPath, name), { recursive: true, force: true })
}

/** A `.wh.NAME` marker beside a name that now exists in the upper layer is obsolete. (Looked for
 *  first: an unlink of the usual absent marker would cost an exception.) */
function removeMarker(core: Core, rel: string): void {
  const marker = core.resolver.upperMarker(...splitPath(rel))
  if (marker) unlinkSync(marker)
}

function readdirSafe(path: HostPath): string[] {
  try {
    return listNamesSync(path)
  } catch (err) {
    if (isCode(err, 'ENOENT', 'ENOTDIR')) return []
    throw err
  }
}
