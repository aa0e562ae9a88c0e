// The layer-building DSL and the scenario type.
//
// A layer is a plain object of path -> entry:
//   'a/f': 'text'                                   regular file with contents
//   'a/f': { file: 'text', mode, uid, gid, mtime, xattrs: { 'user.k': 'v' }, size }   (size: extend, sparse)
//   'a':   { dir: true, mode, uid, gid, mtime, xattrs }
//   'a/l': { symlink: 'target' }                    ('{{MNT}}' in a target is replaced by the mount point)
//   'a/h': { hardlink: 'other/path' }               (another path of the same layer)
//   'a/p': { fifo: true }
//   'a/c': { chardev: [1, 3] }
//   'a/w': { whiteout: true }                       kernel format: char device 0/0
//   'a':   { opaque: true, ... }                    dir with trusted.overlay.opaque=y
//   OCI forms are plain names: 'a/.wh.name': '' , 'a/.wh..wh..opq': ''
//   '' (or '.'): { dir: true, mode, ... }           attributes of the layer root itself
// Parent directories are created implicitly (0755, root:root). Every timestamp defaults to FIXTURE_TIME, a
// fixed past date, so times can be compared exactly.
import * as fs from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { runOrErrno } from '../helpers/exec.js'
import { MNT_TOKEN, type Op } from './ops.js'
import { defaultXattr, type XattrBackend } from './xattr.js'

/** 2001-02-03T04:05:06Z */
export const FIXTURE_TIME = Date.UTC(2001, 1, 3, 4, 5, 6) / 1000

interface Attrs {
  mode?: number
  uid?: number
  gid?: number
  /** seconds */
  mtime?: number
  /** seconds; defaults to mtime */
  atime?: number
  xattrs?: Record<string, string>
  /** POSIX ACL entries, as setfacl -m takes them ('u:1000:r,d:u:1000:rwx') */
  acl?: string
}

export type Entry =
  | string
  | (Attrs & { file: string; size?: number })
  | (Attrs & { dir: true })
  | (Attrs & { opaque: true })
  | (Attrs & { symlink: string })
  | { hardlink: string }
  | (Attrs & { fifo: true })
  | (Attrs & { chardev: [number, number] })
  | { whiteout: true }

export type Layer = Record<string, Entry>

export interface Scenario {
  name: string
  /** filled in by the group helper in scenarios.ts */
  group?: string
  /** [0] = topmost lower layer */
  layers: Layer[]
  /** initial contents of the upper layer (default: empty) */
  upper?: Layer
  /** mount without an upper layer (read-only) */
  readonly?: boolean
  /** extra mount options for both mounts (e.g. metacopy=on) */
  options?: string[]
  ops: Op[]
  note?: string
}

function norm(p: string): string {
  return p.replace(/^\/+|\/+$/g, '').replace(/\/+/g, '/')
}

function depth(p: string): number {
  return p === '' ? 0 : p.split('/').length
}

export interface BuildOptions {
  /** mount point, substituted for {{MNT}} in symlink targets */
  mnt?: string
  xattr?: XattrBackend
}

/** Create `layer` inside the existing, empty directory `root`. */
export async function buildLayer(root: string, layer: Layer, o: BuildOptions = {}): Promise<void> {
  const xattr = o.xattr ?? defaultXattr
  const entries = new Map<string, Entry>()
  for (const [k, v] of Object.entries(layer)) {
    const p = norm(k === '.' ? '' : k)
    if (entries.has(p)) throw new Error(`duplicate layer path ${JSON.stringify(k)}`)
    entries.set(p, v)
  }
  // implicit parents
  for (const p of [...entries.keys()]) {
    for (let d = dirname(p); d !== '.' && d !== ''; d = dirname(d)) if (!entries.has(d)) entries.set(d, { dir: true })
  }
  if (!entries.has('')) entries.set('', { dir: true })
  const paths = [...entries.keys()].sort((a, b) => depth(a) - depth(b) || (a < b ? -1 : a > b ? 1 : 0))
  const abs = (p: string): string => (p === '' ? root : join(root, p))
  const attrsOf = new Map<string, Attrs & { kind: string }>()

  // 1. create (hard links last)
  for (const p of paths) {
    const e = entries.get(p) as Entry
    const a = abs(p)
    if (typeof e === 'string') {
      await fs.writeFile(a, e)
      attrsOf.set(p, { kind: 'file' })
    } else if ('file' in e) {
      await fs.writeFile(a, e.file)
      if (e.size !== undefined) await fs.truncate(a, e.size)
      attrsOf.set(p, { ...e, kind: 'file' })
    } else if ('dir' in e || 'opaque' in e) {
      if (p !== '') await fs.mkdir(a)
      attrsOf.set(p, { ...e, kind: 'dir' })
    } else if ('symlink' in e) {
      await fs.symlink(o.mnt !== undefined ? e.symlink.split(MNT_TOKEN).join(o.mnt) : e.symlink, a)
      attrsOf.set(p, { ...e, kind: 'symlink' })
    } else if ('fifo' in e) {
      await runOrErrno('mkfifo', ['--', a])
      attrsOf.set(p, { ...e, kind: 'fifo' })
    } else if ('chardev' in e) {
      await runOrErrno('mknod', ['--', a, 'c', String(e.chardev[0]), String(e.chardev[1])])
      attrsOf.set(p, { ...e, kind: 'char' })
    } else if ('whiteout' in e) {
      await runOrErrno('mknod', ['--', a, 'c', '0', '0'])
      attrsOf.set(p, { kind: 'whiteout' })
    }
  }
  for (const p of paths) {
    const e = entries.get(p) as Entry
    if (typeof e === 'object' && 'hardlink' in e) await fs.link(abs(norm(e.hardlink)), abs(p))
  }

  // 2. owner, then mode (chown clears setuid/setgid), then xattrs
  for (const p of paths) {
    const a = attrsOf.get(p)
    if (a === undefined) continue
    const e = entries.get(p) as Entry
    if (a.uid !== undefined || a.gid !== undefined) await fs.lchown(abs(p), a.uid ?? 0, a.gid ?? 0)
    if (a.kind !== 'symlink' && a.kind !== 'whiteout') {
      const def = a.kind === 'dir' ? 0o755 : 0o644
      await fs.chmod(abs(p), a.mode ?? def)
    }
    if (typeof e === 'object' && 'opaque' in e) await xattr.set(abs(p), 'trusted.overlay.opaque', 'y', { noFollow: true })
    for (const [n, v] of Object.entries(a.xattrs ?? {})) await xattr.set(abs(p), n, v, { noFollow: true })
    if (a.acl !== undefined) await runOrErrno('setfacl', ['-m', a.acl, '--', abs(p)])
  }

  // 3. times, deepest first (creating children changes a directory's mtime)
  for (const p of [...paths].reverse()) {
    const a = attrsOf.get(p)
    if (a === undefined) continue
    const m = a.mtime ?? FIXTURE_TIME
    await fs.lutimes(abs(p), a.atime ?? m, m)
  }
}
