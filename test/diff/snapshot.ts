// Snapshots taken after a scenario's ops:
//  - the merged view, walked through an OpTarget (lstat only, symlinks never followed);
//  - the upper layer, walked on the real filesystem after unmount, with whiteout/opaque encodings normalised
//    so that kernel format (char 0/0, trusted.overlay.opaque) and OCI format (.wh.NAME, .wh..wh..opq) compare.
import * as fs from 'node:fs/promises'
import { join, resolve } from 'node:path'
import {
  contentOf,
  errorCode,
  isUserXattr,
  Labeler,
  MNT_TOKEN,
  normStat,
  normTime,
  octal,
  rawStatOf,
  sha256,
  type Json,
  type NormContext,
  type OpTarget,
} from './ops.js'
import { defaultXattr, type XattrBackend } from './xattr.js'

export type Snapshot = Record<string, { [k: string]: Json }>

/** Root key in snapshots. */
export const ROOT = '.'

function xattrRecord(x: Record<string, Buffer> | undefined, keep: (n: string) => boolean): { [k: string]: Json } | undefined {
  if (x === undefined) return undefined
  const names = Object.keys(x).filter(keep).sort()
  if (names.length === 0) return undefined
  const out: { [k: string]: Json } = {}
  for (const n of names) out[n] = contentOf(x[n] as Buffer)
  return out
}

/**
 * The merged view: for each path (pre-order, names sorted) type, permission bits (with setuid/setgid/sticky),
 * uid, gid, size (files, symlinks), sha256 (files), link target, nlink, rdev (devices), inode and device
 * labels (from ctx, so they continue the op results' labels), user.* xattrs, and mtime (exact when before the
 * scenario start, else 'recent').
 */
export async function snapshotMerged(t: OpTarget, ctx: NormContext): Promise<Snapshot> {
  const snap: Snapshot = {}
  const order: string[] = []
  const walk = async (p: string): Promise<void> => {
    const key = p === '' ? ROOT : p
    order.push(p)
    let st
    try {
      st = await t.lstat(p)
    } catch (e) {
      snap[key] = { error: errorCode(e) }
      return
    }
    const entry = normStat(st, ctx)
    if (st.type === 'file') {
      try {
        entry.sha256 = sha256(await t.readFile(p))
      } catch (e) {
        entry.sha256 = { error: errorCode(e) }
      }
    } else if (st.type === 'symlink') {
      try {
        entry.target = await t.readlink(p)
      } catch (e) {
        entry.target = { error: errorCode(e) }
      }
    }
    snap[key] = entry
    if (st.type === 'dir') {
      let names: string[]
      try {
        names = (await t.readdir(p)).sort()
      } catch (e) {
        entry.readdir = { error: errorCode(e) }
        return
      }
      const seen = new Set<string>()
      for (const n of names) {
        if (seen.has(n)) {
          entry.duplicates = [...((entry.duplicates as string[] | undefined) ?? []), n]
          continue
        }
        seen.add(n)
        await walk(p === '' ? n : `${p}/${n}`)
      }
    }
  }
  await walk('')
  const xattrs = await t.lxattrs(order, '^user\\.')
  for (const p of order) {
    const x = xattrRecord(xattrs.get(p), isUserXattr)
    const e = snap[p === '' ? ROOT : p]
    if (x !== undefined && e !== undefined && !('error' in e)) e.xattrs = x
  }
  return snap
}

/** Private metadata a driver may keep in the upper layer: never compared. */
export function ignoredUpperXattr(name: string): boolean {
  return name.startsWith('trusted.overlay.') || name.startsWith('trusted.layerfs.') || name.startsWith('user.overlay.')
}

export interface UpperSnapshotOptions {
  startSec: number
  /** replaced by {{MNT}} in symlink targets */
  mnt?: string
  xattr?: XattrBackend
}

/**
 * The upper layer, read directly (after unmount). Whiteouts (char 0/0, or a `.wh.NAME` file) become
 * { whiteout: true } at NAME (nlink not compared: the kernel hard-links its whiteouts); opaque dirs
 * (trusted.overlay.opaque=y, user.overlay.opaque=y, or a `.wh..wh..opq` child) get opaque: true. Other
 * trusted.overlay.*, user.overlay.* and trusted.layerfs.* xattrs are ignored; all other xattrs are kept.
 * Files with nlink > 1 get a hard-link group label (link#N, first-seen order).
 */
export async function snapshotUpper(upperDir: string, o: UpperSnapshotOptions): Promise<Snapshot> {
  const root = resolve(upperDir)
  const xattr = o.xattr ?? defaultXattr
  const ctx: NormContext = { ino: new Labeler('link'), dev: new Labeler('dev'), startSec: o.startSec }
  const snap: Snapshot = {}
  const paths: string[] = []
  const abs = (p: string): string => (p === '' ? root : join(root, p))
  const walk = async (p: string): Promise<void> => {
    paths.push(p)
    const st = await fs.lstat(abs(p), { bigint: true })
    if (st.isDirectory()) for (const n of (await fs.readdir(abs(p))).sort()) await walk(p === '' ? n : `${p}/${n}`)
  }
  await walk('')
  const xattrs = await xattr.dumpMany(paths.map(abs), '-')
  const opaqueByOci = new Set<string>()
  for (const p of paths) {
    const st = rawStatOf(await fs.lstat(abs(p), { bigint: true }))
    const slash = p.lastIndexOf('/')
    const dir = slash < 0 ? '' : p.slice(0, slash)
    const base = p.slice(slash + 1)
    const x = xattrs.get(abs(p)) ?? {}
    if (st.type === 'char' && st.rdev === 0) {
      snap[p] = { whiteout: true }
      continue
    }
    if (st.type === 'file' && base === '.wh..wh..opq') {
      opaqueByOci.add(dir)
      continue
    }
    if (st.type === 'file' && base.startsWith('.wh.') && base.length > 4) {
      snap[(dir === '' ? '' : dir + '/') + base.slice(4)] = { whiteout: true }
      continue
    }
    const e: { [k: string]: Json } = { type: st.type, mode: octal(st.mode), uid: st.uid, gid: st.gid }
    if (st.type === 'file') {
      e.size = st.size
      e.sha256 = sha256(await fs.readFile(abs(p)))
      e.nlink = st.nlink
      if (st.nlink > 1) e.link = ctx.ino.label(st.ino)
    } else if (st.type === 'symlink') {
      const target = await fs.readlink(abs(p))
      e.target =
        o.mnt !== undefined && (target === o.mnt || target.startsWith(o.mnt + '/')) ? MNT_TOKEN + target.slice(o.mnt.length) : target
    } else if (st.type === 'char' || st.type === 'block') {
      e.rdev = normStat(st, ctx).rdev ?? null
    } else if (st.type === 'dir') {
      const ov = x['trusted.overlay.opaque'] ?? x['user.overlay.opaque']
      if (ov !== undefined && ov.toString() === 'y') e.opaque = true
    }
    if (st.type !== 'symlink') e.mtime = normTime(st.mtimeMs, ctx)
    const xr = xattrRecord(x, (n) => !ignoredUpperXattr(n))
    if (xr !== undefined) e.xattrs = xr
    snap[p === '' ? '.' : p] = e
  }
  for (const d of opaqueByOci) {
    const e = snap[d === '' ? '.' : d]
    if (e !== undefined) e.opaque = true
  }
  return snap
}
