/**
 * Operations that change names: create, mkdir, mknod, symlink, link, unlink, rmdir, rename. Each runs
 * under the namespace lock and leaves the resolver exact: the names it touched are set or dropped.
 *
 * Where a lower layer still holds a removed name, a whiteout replaces it in the upper layer. Renames
 * of files copy up first and leave a whiteout behind when a lower layer holds the source name; a
 * directory that exists in a lower layer cannot be renamed (EXDEV, as overlayfs without redirect_dir):
 * tools such as mv then copy and delete.
 */
import { chmodSync, closeSync, constants, fchmodSync, lchownSync, linkSync, lstatSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, symlinkSync, unlinkSync } from 'node:fs'
import { joinPath, splitPath } from '../layers/layer.js'
import { OPAQUE_XATTRS, WHITEOUT_PREFIX } from '../layers/whiteout.js'
import { RENAME_EXCHANGE, RENAME_NOREPLACE, RENAME_WHITEOUT, lgetxattrSync, lsetxattr, mknod as makeNode, renameat2 } from '../sys/native.js'
import { REDIRECT_XATTR } from './inode.js'
import type { Core } from './core.js'
import { type Entry, type Kind, NO_LAYERS, inUpper } from './entry.js'
import { fsError, isCode } from './errors.js'
import { mergedNames } from './readdir.js'
import { NAME_MAX } from './resolver.js'

const S_ISGID = 0o2000

/** Refuse names the layers reserve, and over-long ones. */
function checkNewName(rel: string): void {
  if (rel === '') throw fsError('EEXIST', '/')
  const name = splitPath(rel)[1]
  if (Buffer.byteLength(name) > NAME_MAX) throw fsError('ENAMETOOLONG', rel)
  // `.wh.` names encode deletions in every layer: a file by that name would delete its sibling.
  if (name.startsWith(WHITEOUT_PREFIX)) throw fsError('EINVAL', `reserved name ${name}`)
}

/** Who creates: new objects belong to the caller, as on any filesystem. */
export interface Owner {
  uid: number
  gid: number
}

/** Common to every create: the name must be free, then the object is placed and recorded. */
async function createLocked(core: Core, rel: string, kind: Kind, make: (path: string) => Promise<void>, owner?: Owner): Promise<Entry> {
  checkNewName(rel)
  const parentPath = splitPath(rel)[0]
  const parent = core.resolver.get(parentPath)
  if (parent.kind !== 'dir') throw fsError('ENOTDIR', parent.path)
  if (core.resolver.resolve(rel)) throw fsError('EEXIST', rel)
  const upper = core.requireUpper()
  const place = owner === undefined ? make : async (path: string): Promise<void> => {
    await make(path)
    // A set-group-ID directory hands its group down, as the filesystem itself would have.
    const dir = lstatSync(upper.path(parentPath))
    const gid = dir.mode & S_ISGID ? dir.gid : owner.gid
    // The daemon runs as root: what it makes is root's unless the caller is somebody else.
    if (owner.uid !== 0 || gid !== 0) lchownSync(path, owner.uid, gid)
  }
  const overWhiteout = await core.placeLocked(rel, kind === 'dir', place)
  const entry: Entry = { path: rel, kind, layer: upper, dirLayers: kind === 'dir' ? [upper] : NO_LAYERS, lowerHas: overWhiteout }
  core.resolver.set(rel, entry)
  return entry
}

/** Create and open a regular file; returns the open fd (O_RDWR). */
export async function create(core: Core, rel: string, mode: number, owner?: Owner): Promise<{ fd: number; entry: Entry }> {
  let fd = -1
  const entry = await core.lock.run(() => createLocked(core, rel, 'file', async (path) => {
    fd = openSync(path, constants.O_CREAT | constants.O_EXCL | constants.O_RDWR, mode & 0o7777)
    // The kernel applied the caller's umask already; the daemon's own must not apply again.
    fchmodSync(fd, mode & 0o7777)
  }, owner))
  return { fd, entry }
}

export async function mkdir(core: Core, rel: string, mode: number, owner?: Owner): Promise<void> {
  await core.lock.run(() => createLocked(core, rel, 'dir', async (path) => {
    mkdirSync(path, { mode: mode & 0o7777 })
    chmodSync(path, mode & 0o7777)
  }, owner))
}

export async function mknod(core: Core, rel: string, mode: number, rdev: number, owner?: Owner): Promise<void> {
  const type = mode & constants.S_IFMT
  // A char device 0/0 is how the upper layer spells "deleted": it cannot be made through the mount.
  if (type === constants.S_IFCHR && rdev === 0) throw fsError('EPERM', 'whiteout device')
  const kind: Kind = type === constants.S_IFREG || type === 0 ? 'file' : 'special'
  await core.lock.run(() => createLocked(core, rel, kind, async (path) => {
    if (kind === 'file') closeSync(openSync(path, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, mode & 0o7777))
    else await makeNode(path, mode, rdev)
    chmodSync(path, mode & 0o7777)
  }, owner))
}

export async function symlink(core: Core, target: string, rel: string, owner?: Owner): Promise<void> {
  await core.lock.run(() => createLocked(core, rel, 'symlink', async (path) => symlinkSync(target, path), owner))
}

export async function link(core: Core, fromRel: string, rel: string): Promise<void> {
  const source = core.resolver.get(fromRel)
  if (source.kind === 'dir') throw fsError('EPERM', 'hard link to a directory')
  core.requireUpper()
  const copied = await core.copyUp(fromRel, true)
  await core.lock.run(async () => {
    const upper = core.requireUpper()
    await createLocked(core, rel, copied.kind, async (path) => linkSync(upper.path(copied.path), path))
    // Both names now share one inode: a memoised nlink-dependent answer for the source is stale.
    core.resolver.invalidate(fromRel)
  })
}

export async function unlink(core: Core, rel: string): Promise<void> {
  await core.lock.run(async () => {
    const entry = core.resolver.get(rel)
    if (entry.kind === 'dir') throw fsError('EISDIR', rel)
    const upper = core.requireUpper()
    if (core.resolver.lowerHas(entry)) {
      await core.ensureUpperDirLocked(core.resolver.get(splitPath(rel)[0]))
      await core.whiteoutLocked(rel)
    } else {
      unlinkSync(upper.path(rel))
    }
    core.resolver.set(rel, undefined)
  })
}

export async function rmdir(core: Core, rel: string): Promise<void> {
  await core.lock.run(async () => {
    const entry = core.resolver.get(rel)
    if (entry.kind !== 'dir') throw fsError('ENOTDIR', rel)
    if (rel === '') throw fsError('EBUSY', '/')
    const upper = core.requireUpper()
    if (mergedNames(entry).length > 0) throw fsError('ENOTEMPTY', rel)
    const lowerHas = core.resolver.lowerHas(entry)
    if (inUpper(entry)) {
      // The upper copy can still hold whiteouts of its lower children: move it aside, whole.
      const aside = core.stager.tempPath()
      renameSync(upper.path(rel), aside)
      if (lowerHas) await core.whiteoutLocked(rel)
      rmSync(aside, { recursive: true, force: true })
    } else {
      await core.ensureUpperDirLocked(core.resolver.get(splitPath(rel)[0]))
      await core.whiteoutLocked(rel)
    }
    core.resolver.invalidateTree(rel)
    core.resolver.set(rel, undefined)
  })
}

export async function rename(core: Core, fromRel: string, toRel: string, flags: number): Promise<void> {
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) throw fsError('EINVAL', 'rename flags')
  if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE)) throw fsError('EINVAL', 'rename flags')
  if (fromRel === '' || toRel === '') throw fsError('EBUSY', '/')
  core.requireUpper()
  const source = core.resolver.get(fromRel)
  if (toRel.startsWith(fromRel + '/')) throw fsError('EINVAL', 'a directory cannot move into itself')
  checkNewName(toRel)
  // Copy-ups happen before taking the lock: they can take long and commit under it themselves.
  // A rename changes no data: with metacopy on, the bytes stay below (see keepDataReachable).
  if (source.kind !== 'dir') await core.copyUp(fromRel, 'meta')
  if (flags & RENAME_EXCHANGE) {
    const target = core.resolver.get(toRel)
    if (target.kind !== 'dir') await core.copyUp(toRel, 'meta')
  }
  await core.lock.run(async () => {
    const from = core.resolver.get(fromRel)
    const to = core.resolver.resolve(toRel)
    if (fromRel === toRel) return
    if (flags & RENAME_EXCHANGE) return exchangeLocked(core, from, to)
    if (to && (flags & RENAME_NOREPLACE)) throw fsError('EEXIST', toRel)
    await moveLocked(core, from, to, toRel)
  })
}

async function movableDir(core: Core, dir: Entry): Promise<void> {
  // Only a directory that lives wholly in the upper layer can move by a plain rename.
  if (!inUpper(dir) || dir.dirLayers.length > 1 || (core.resolver.lowerHas(dir))) {
    throw fsError('EXDEV', `${dir.path} has lower layers`)
  }
}

async function moveLocked(core: Core, from: Entry, to: Entry | undefined, toRel: string): Promise<void> {
  const upper = core.requireUpper()
  if (to) {
    if (to.kind === 'dir' && from.kind !== 'dir') throw fsError('EISDIR', toRel)
    if (to.kind !== 'dir' && from.kind === 'dir') throw fsError('ENOTDIR', toRel)
    if (to.kind === 'dir' && mergedNames(to).length > 0) throw fsError('ENOTEMPTY', toRel)
  }
  if (from.kind === 'dir') await movableDir(core, from)
  if (!inUpper(from)) throw fsError('ENOENT', from.path) // lost a race with an unlink
  await keepDataReachable(core, from)
  await core.ensureUpperDirLocked(core.resolver.get(splitPath(toRel)[0]))
  const toPath = upper.path(toRel)
  const sourceHasLower = core.resolver.lowerHas(from)
  // A lower layer holds the target name (visibly, or under an upper whiteout): a directory moved there
  // must not let that lower directory's children show through it.
  const targetHasLower = to ? core.resolver.lowerHas(to) : await hiddenByUpperWhiteout(core, toRel)
  if (to?.kind === 'dir' && inUpper(to)) await clearMarkers(toPath)
  const toParent = core.resolver.get(splitPath(toRel)[0])
  // Moved where a lower layer may hold (or later show) the name, a directory must not merge with it:
  // overlayfs marks it opaque whenever it lands in a merged directory.
  if (from.kind === 'dir' && (targetHasLower || toParent.dirLayers.length > 1)) {
    await lsetxattr(upper.path(from.path), OPAQUE_XATTRS[0], 'y')
  }
  if (from.kind === 'dir' && !to && targetHasLower) {
    // rename(2) cannot put a directory over the whiteout (a char device): swap, then drop the whiteout.
    await renameat2(upper.path(from.path), toPath, RENAME_EXCHANGE)
    if (!sourceHasLower) unlinkSync(upper.path(from.path))
  } else if (sourceHasLower) {
    await renameWithWhiteout(core, upper.path(from.path), toPath, from.path)
  } else {
    renameSync(upper.path(from.path), toPath)
  }
  await removeMarker(core, toRel)
  if (from.kind === 'dir' || to?.kind === 'dir') {
    core.resolver.invalidateTree(from.path)
    core.resolver.invalidateTree(toRel)
  } else {
    core.resolver.invalidate(from.path)
    core.resolver.invalidate(toRel)
  }
  core.resolver.set(from.path, undefined)
}

async function renameWithWhiteout(core: Core, fromPath: string, toPath: string, fromRel: string): Promise<void> {
  try {
    await renameat2(fromPath, toPath, RENAME_WHITEOUT)
    core.counters.whiteouts++
  } catch (err) {
    if (!isCode(err, 'EINVAL', 'EPERM', 'ENOSYS', 'EOPNOTSUPP')) throw err
    renameSync(fromPath, toPath)
    await core.whiteoutLocked(fromRel)
  }
}

async function exchangeLocked(core: Core, from: Entry, to: Entry | undefined): Promise<void> {
  if (!to) throw fsError('ENOENT', 'exchange target')
  if (from.kind === 'dir') await movableDir(core, from)
  if (to.kind === 'dir') await movableDir(core, to)
  if (!inUpper(from) || !inUpper(to)) throw fsError('ENOENT', 'exchange raced a removal')
  await keepDataReachable(core, from)
  await keepDataReachable(core, to)
  const upper = core.requireUpper()
  await renameat2(upper.path(from.path), upper.path(to.path), RENAME_EXCHANGE)
  core.resolver.invalidateTree(from.path)
  core.resolver.invalidateTree(to.path)
}

/** A metadata-only copy finds its data at its own path below: before it moves, it records that path
 *  as its redirect (overlayfs's trusted.overlay.redirect, an absolute path), once. */
async function keepDataReachable(core: Core, entry: Entry): Promise<void> {
  if (!core.isMetacopy(entry)) return
  const path = core.requireUpper().path(entry.path)
  if (lgetxattrSync(path, REDIRECT_XATTR) === undefined) await lsetxattr(path, REDIRECT_XATTR, '/' + entry.path)
}

async function hiddenByUpperWhiteout(core: Core, rel: string): Promise<boolean> {
  const upper = core.requireUpper()
  const [dir, name] = splitPath(rel)
  try {
    const st = lstatSync(upper.path(rel))
    return st.isCharacterDevice() && st.rdev === 0
  } catch (err) {
    if (!isCode(err, 'ENOENT', 'ENOTDIR')) throw err
  }
  return (await readdirSafe(upper.path(dir))).includes(WHITEOUT_PREFIX + name)
}

/** Remove the whiteouts and markers an (empty-looking) upper directory still holds. */
async function clearMarkers(dirPath: string): Promise<void> {
  for (const name of await readdirSafe(dirPath)) rmSync(`${dirPath}/${name}`, { recursive: true, force: true })
}

/** A `.wh.NAME` marker beside a name that now exists in the upper layer is obsolete. */
async function removeMarker(core: Core, rel: string): Promise<void> {
  const [dir, name] = splitPath(rel)
  rmSync(core.requireUpper().path(joinPath(dir, WHITEOUT_PREFIX + name)), { force: true })
}

async function readdirSafe(path: string): Promise<string[]> {
  try {
    return readdirSync(path)
  } catch (err) {
    if (isCode(err, 'ENOENT', 'ENOTDIR')) return []
    throw err
  }
}

