/**
 * Confinement of tar entry names to a layer root.
 *
 * Invariants: a name with a `..` component is refused (never "cleaned" into something else); a leading
 * `/` or `./` is dropped (Docker and containerd do the same); parents are walked one component at a
 * time with lstat and a symlink on the way is refused, so no entry is ever created through a symlink,
 * whoever planted it. Missing parents are created as plain 0755 directories. Names are union strings
 * (sys/names.ts): bytes that are not UTF-8 are escaped, and go to the host as themselves.
 */
import { lstat, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { ImageError } from './errors.js'
import { isErrno } from '../layers/whiteout.js'
import { hostPath } from '../sys/names.js'

/** Entry name → path components inside the root ([] is the root itself). */
export function entryComponents(name: string): string[] {
  if (name.includes('\0')) throw new ImageError(`entry name contains a NUL byte: '${name}'`)
  const parts = name.split('/').filter((p) => p !== '' && p !== '.')
  if (parts.includes('..')) throw new ImageError(`entry '${name}' points outside the layer root ('..')`)
  return parts
}

/**
 * Makes sure every parent of `parts` exists as a real directory under root, and returns the parent's
 * absolute path. `create: false` refuses missing parents instead (for hard-link sources).
 */
export async function safeParent(root: string, parts: readonly string[], name: string, create = true): Promise<string> {
  let cur = root
  for (let i = 0; i < parts.length - 1; i++) {
    const comp = parts[i] as string
    const next = join(cur, comp)
    try {
      const st = await lstat(hostPath(next))
      if (st.isSymbolicLink()) {
        throw new ImageError(`entry '${name}' goes through the symlink '${parts.slice(0, i + 1).join('/')}'`)
      }
      if (!st.isDirectory()) {
        throw new ImageError(`entry '${name}' goes through '${parts.slice(0, i + 1).join('/')}', which is not a directory`)
      }
    } catch (err) {
      if (!isErrno(err, 'ENOENT') || !create) throw err
      await mkdir(hostPath(next), { mode: 0o755 })
    }
    cur = next
  }
  return cur
}

/** Absolute path of an existing entry inside root, reached without following any symlink on the way. */
export async function safeExisting(root: string, name: string): Promise<string> {
  const parts = entryComponents(name)
  if (parts.length === 0) throw new ImageError(`hard link to the layer root itself: '${name}'`)
  try {
    const parent = await safeParent(root, parts, name, false)
    const target = join(parent, parts[parts.length - 1] as string)
    await lstat(hostPath(target))
    return target
  } catch (err) {
    if (isErrno(err, 'ENOENT', 'ENOTDIR')) throw new ImageError(`hard link target '${name}' does not exist in the layer`)
    throw err
  }
}
