/**
 * Unpacks one uncompressed layer tar into a directory, safely, keeping whiteouts as markers so the
 * directory can serve as an overlay lower layer.
 *
 * Invariants: nothing is created outside `root` (see safe-path.ts); a symlink is created but never
 * followed; a hard link may only point at an entry already inside root, and not at a name a whiteout
 * deleted; device nodes are made only when `devices` is set (skipped and counted otherwise); an entry
 * declaring more than `maxEntrySize` bytes fails the whole layer. Whiteouts: `kernel` turns `.wh.NAME`
 * into a char 0/0 device and `.wh..wh..opq` into `trusted.overlay.opaque=y`; `marker` keeps the `.wh.`
 * files as they are; a whiteout of `.` or `..` is refused in both.
 * A directory's own metadata (owner, mode, xattrs, times) is applied last, deepest first, to the
 * directory still there at the end: creating children changes its times, and a mode without the
 * owner's write bit (0555, as images ship /usr/bin) would keep an unprivileged unpacker from making
 * them. Until then it is the unpacker's, mode 0700.
 */
import { constants, type Stats } from 'node:fs'
import { chmod, lchown, link, lstat, lutimes, mkdir, open, rm, symlink } from 'node:fs/promises'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { OPAQUE_MARKER, WHITEOUT_PREFIX, isErrno } from '../layers/whiteout.js'
import { hostPath, type HostPath } from '../sys/names.js'
import { lsetxattr, makedev, mknod } from '../sys/native.js'
import { ImageError, errorMessage } from './errors.js'
import { paxXattrs } from './pax.js'
import { entryComponents, safeExisting, safeParent } from './safe-path.js'
import { readTar, type TarHeader } from './tar-reader.js'

export type WhiteoutFormat = 'kernel' | 'marker'

export interface UnpackOptions {
  whiteouts: WhiteoutFormat
  /** Create block/char devices (needs CAP_MKNOD). */
  devices: boolean
  /** Apply the entries' uid/gid (needs root). */
  chown: boolean
  /** Largest declared size of one entry, in bytes. */
  maxEntrySize: number
  /** For error messages. */
  what: string
}

export interface UnpackStats {
  entries: number
  /** Sum of regular file sizes. */
  bytes: number
  skippedDevices: number
  skippedXattrs: number
}

export const DEFAULT_MAX_ENTRY_SIZE = 64 * 1024 ** 3

/** The directories whose entries the layer holds, by path under root: their headers, to apply at the
 *  end. */
type DirHeaders = Map<string, TarHeader>

export async function unpackLayer(tarStream: Readable, root: string, opts: UnpackOptions): Promise<UnpackStats> {
  const stats: UnpackStats = { entries: 0, bytes: 0, skippedDevices: 0, skippedXattrs: 0 }
  const dirs: DirHeaders = new Map()
  await readTar(
    tarStream,
    async (header, body) => {
      stats.entries++
      await unpackEntry(root, header, body, opts, stats, dirs)
    },
    { what: opts.what },
  )
  // Deepest first, so that a child's metadata does not disturb its parent's afterwards (its times),
  // and the parent is still the unpacker's to write in while its children get theirs.
  const order = [...dirs.entries()].sort((a, b) => b[0].length - a[0].length)
  for (const [dir, h] of order) {
    const target = hostPath(dir)
    try {
      // A directory removed by a later entry took its header along (forget): what is there is its own.
      await applyMetadata(target, h, (h.mode ?? 0o755) & 0o7777, opts, stats)
      const mtime = mtimeOf(h)
      await lutimes(target, mtime, mtime)
    } catch (err) {
      throw err instanceof ImageError ? err : new ImageError(`${opts.what}: directory '${h.name}': ${errorMessage(err)}`, { cause: err })
    }
  }
  return stats
}

/** Drops the headers of `path` and of every directory below it: a later entry removed them. */
function forget(dirs: DirHeaders, path: string): void {
  const below = path + '/'
  for (const d of dirs.keys()) if (d === path || d.startsWith(below)) dirs.delete(d)
}

/** Removes what is at `target` (path under root `path`), and the headers of directories in it. */
async function removeEntry(dirs: DirHeaders, path: string, target: HostPath, wasDir: boolean): Promise<void> {
  await rm(target, { recursive: true, force: true })
  if (wasDir) forget(dirs, path)
}

async function unpackEntry(
  root: string,
  h: TarHeader,
  body: Readable,
  opts: UnpackOptions,
  stats: UnpackStats,
  dirs: DirHeaders,
): Promise<void> {
  const parts = entryComponents(h.name)
  const size = h.size ?? 0
  if (size > opts.maxEntrySize) {
    throw new ImageError(`entry '${h.name}' declares ${size} bytes, over the limit of ${opts.maxEntrySize}`)
  }
  if (parts.length === 0) return // "./" itself: the layer root keeps the store's own metadata
  const parent = await safeParent(root, parts, h.name)
  const base = parts[parts.length - 1] as string
  const mode = (h.mode ?? 0o644) & 0o7777

  if (base === OPAQUE_MARKER && opts.whiteouts === 'kernel') {
    await lsetxattr(hostPath(parent), 'trusted.overlay.opaque', Buffer.from('y'))
    return
  }
  if (base === WHITEOUT_PREFIX + '.' || base === WHITEOUT_PREFIX + '..') {
    throw new ImageError(`${opts.what}: whiteout '${h.name}' deletes '${base.slice(WHITEOUT_PREFIX.length)}'`)
  }
  if (base.startsWith(WHITEOUT_PREFIX) && base !== OPAQUE_MARKER && opts.whiteouts === 'kernel') {
    const victim = base.slice(WHITEOUT_PREFIX.length)
    // AUFS-internal names (.wh..wh.plnk etc.) carry nothing an overlay needs.
    if (victim.startsWith(WHITEOUT_PREFIX) || victim === '') return
    const path = join(parent, victim)
    const target = hostPath(path)
    const was = await lstatOrUndefined(target)
    await removeEntry(dirs, path, target, was?.isDirectory() === true)
    await mknod(target, constants.S_IFCHR | 0o000, makedev(0, 0))
    return
  }

  const path = join(parent, base)
  const target = hostPath(path)
  const existing = await lstatOrUndefined(target)
  if (existing && !(existing.isDirectory() && h.type === 'directory')) {
    await removeEntry(dirs, path, target, existing.isDirectory())
  }

  switch (h.type) {
    case 'file':
    case 'contiguous-file': {
      const fh = await open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)
      try {
        let written = 0
        for await (const chunk of body) written += (await fh.write(chunk as Buffer)).bytesWritten
        if (written !== size) throw new ImageError(`entry '${h.name}' is truncated`)
      } finally {
        await fh.close()
      }
      stats.bytes += size
      break
    }
    case 'directory':
      if (!existing?.isDirectory()) await mkdir(target, { mode: 0o700 })
      dirs.set(path, h)
      return // its metadata comes last (unpackLayer)
    case 'symlink':
      if (!h.linkname) throw new ImageError(`symlink '${h.name}' has no target`)
      await symlink(hostPath(h.linkname), target)
      break
    case 'link': {
      const source = hostPath(await safeExisting(root, h.linkname ?? ''))
      const st = await lstat(source)
      if (st.isDirectory()) throw new ImageError(`hard link '${h.name}' points at a directory`)
      if (opts.whiteouts === 'kernel' && st.isCharacterDevice() && st.rdev === 0) {
        throw new ImageError(`hard link target '${h.linkname}' does not exist in the layer (a whiteout deleted it)`)
      }
      await link(source, target)
      return // a hard link shares its inode's metadata: touching it would rewrite the source's
    }
    case 'fifo':
      await mknod(target, constants.S_IFIFO | mode, 0)
      break
    case 'character-device':
    case 'block-device': {
      if (!opts.devices) {
        stats.skippedDevices++
        return
      }
      const kind = h.type === 'block-device' ? constants.S_IFBLK : constants.S_IFCHR
      await mknod(target, kind | mode, makedev(h.devmajor ?? 0, h.devminor ?? 0))
      break
    }
    default:
      throw new ImageError(`entry '${h.name}' has an unsupported type '${h.type ?? 'unknown to tar-stream'}'`)
  }

  await applyMetadata(target, h, mode, opts, stats)
  const mtime = mtimeOf(h)
  await lutimes(target, mtime, mtime)
}

/** The entry's mtime: its PAX record where it has one (times before 1970 or past 2242, fractions of
 *  a second), else the header's field. */
function mtimeOf(h: TarHeader): Date {
  const pax = h.pax?.mtime
  if (pax !== undefined && /^-?[0-9]+(\.[0-9]+)?$/.test(pax)) return new Date(Number(pax) * 1000)
  return h.mtime ?? new Date(0)
}

async function lstatOrUndefined(target: HostPath): Promise<Stats | undefined> {
  try {
    return await lstat(target)
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined
    throw err
  }
}

async function applyMetadata(target: HostPath, h: TarHeader, mode: number, opts: UnpackOptions, stats: UnpackStats): Promise<void> {
  // PAX uid/gid hold ids over the header fields' 6-7 octal digits; tar-stream leaves them in `pax`.
  const id = (key: 'uid' | 'gid', field: number | undefined) => (h.pax?.[key] && /^[0-9]+$/.test(h.pax[key]) ? Number(h.pax[key]) : field ?? 0)
  if (opts.chown) await lchown(target, id('uid', h.uid), id('gid', h.gid))
  // chmod after chown: chown clears set-id bits. Symlinks have no mode of their own on Linux.
  if (h.type !== 'symlink') await chmod(target, mode)
  for (const [name, value] of paxXattrs(h.paxRaw ?? h.pax)) {
    try {
      await lsetxattr(target, name, value)
    } catch (err) {
      // Unprivileged stores cannot hold trusted.*/security.* names; the file itself is still right.
      if (!isErrno(err, 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EACCES')) throw err
      stats.skippedXattrs++
    }
  }
}
