/**
 * Reads an unpacked layer (or a container upper dir) as a list of changes, with both whiteout
 * encodings normalised: a char 0/0 device or a `.wh.NAME` file becomes a whiteout of NAME, and a
 * directory with `trusted/user.overlay.opaque=y` or a `.wh..wh..opq` child becomes opaque. Marker
 * files themselves are never listed. Paths are absolute within the image (`/etc/passwd`), sorted.
 * Names are kept byte for byte, escaped where they are not UTF-8 (sys/names.ts).
 */
import type { Stats } from 'node:fs'
import { lstat, readdir, readlink } from 'node:fs/promises'
import { join } from 'node:path'
import { OPAQUE_MARKER, hasOpaqueXattr, isWhiteoutStat, whiteoutTarget } from '../layers/whiteout.js'
import { hostPath, nameFromBytes, type HostPath } from '../sys/names.js'

export type EntryKind = 'file' | 'dir' | 'symlink' | 'fifo' | 'char' | 'block' | 'socket'

export interface LayerEntry {
  path: string
  kind: EntryKind | 'whiteout'
  /** Absolute host path of the entry (for whiteouts: of the marker). */
  hostPath: HostPath
  /** Bytes counted for the entry: regular file size, 0 for the rest (and for extra hard links). */
  size: number
  opaque: boolean
  stat: Stats | undefined
  linkTarget: string | undefined
}

export function kindOf(st: Stats): EntryKind {
  if (st.isFile()) return 'file'
  if (st.isDirectory()) return 'dir'
  if (st.isSymbolicLink()) return 'symlink'
  if (st.isFIFO()) return 'fifo'
  if (st.isCharacterDevice()) return 'char'
  if (st.isBlockDevice()) return 'block'
  return 'socket'
}

/** A directory's names, byte for byte. */
export async function listNames(dir: HostPath): Promise<string[]> {
  return (await readdir(dir, { encoding: 'buffer' })).map(nameFromBytes)
}

export async function walkLayer(root: string): Promise<LayerEntry[]> {
  const out: LayerEntry[] = []
  const seenInodes = new Set<number>()
  async function visit(dir: string, rel: string): Promise<void> {
    const names = (await listNames(hostPath(dir))).sort()
    for (const name of names) {
      if (name === OPAQUE_MARKER) continue
      const hostName = join(dir, name)
      const host = hostPath(hostName)
      const target = whiteoutTarget(name)
      const st = await lstat(host)
      if (target !== undefined) {
        out.push({ path: `${rel}/${target}`, kind: 'whiteout', hostPath: host, size: 0, opaque: false, stat: st, linkTarget: undefined })
        continue
      }
      const path = `${rel}/${name}`
      if (isWhiteoutStat(st)) {
        out.push({ path, kind: 'whiteout', hostPath: host, size: 0, opaque: false, stat: st, linkTarget: undefined })
        continue
      }
      const kind = kindOf(st)
      let size = 0
      if (kind === 'file' && !(st.nlink > 1 && seenInodes.has(st.ino))) {
        size = st.size
        if (st.nlink > 1) seenInodes.add(st.ino)
      }
      const entry: LayerEntry = { path, kind, hostPath: host, size, opaque: false, stat: st, linkTarget: undefined }
      if (kind === 'symlink') entry.linkTarget = nameFromBytes(await readlink(host, { encoding: 'buffer' }))
      out.push(entry)
      if (kind === 'dir') {
        entry.opaque = (await readdir(host)).includes(OPAQUE_MARKER) || hasOpaqueXattr(host)
        await visit(hostName, path)
      }
    }
  }
  await visit(root, '')
  return out
}
