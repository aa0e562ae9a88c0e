// Unique temporary directories for tests: mkdtemp under os.tmpdir() with the `layerfs-` prefix, and a
// removal that refuses to recurse into a directory that still has something mounted inside it (removing
// through a live mount would delete the lower/upper layers of somebody else's test, or hang on a dead FUSE
// connection).
import { mkdtemp, rm } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

export const TMP_PREFIX = 'layerfs-'

/** Create a fresh, empty, uniquely-named directory under os.tmpdir(). */
export async function makeTempDir(label = ''): Promise<string> {
  const safe = label.replace(/[^A-Za-z0-9_.-]+/g, '-').slice(0, 40)
  return mkdtemp(join(tmpdir(), TMP_PREFIX + (safe ? safe + '-' : '')))
}

/** Mount points (decoded) currently listed in /proc/self/mountinfo. */
export function currentMountPoints(): string[] {
  let text: string
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8')
  } catch {
    return []
  }
  const out: string[] = []
  for (const line of text.split('\n')) {
    const f = line.split(' ')
    if (f.length > 4 && f[4] !== undefined) out.push(decodeMountPath(f[4]))
  }
  return out
}

/** /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo octal. */
export function decodeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)))
}

/** Mount points at or below `dir`. */
export function mountsUnder(dir: string): string[] {
  const d = resolve(dir)
  return currentMountPoints().filter((m) => m === d || m.startsWith(d + '/'))
}

/** Remove a temporary directory tree. Throws (and removes nothing) if a mount is still live inside it. */
export async function removeTempDir(dir: string): Promise<void> {
  const live = mountsUnder(dir)
  if (live.length > 0) throw new Error(`refusing to remove ${dir}: still mounted: ${live.join(', ')}`)
  await rm(dir, { recursive: true, force: true, maxRetries: 3 })
}

/** A set of temp dirs created together and removed together. */
export class TempDirs {
  private readonly dirs: string[] = []
  async make(label = ''): Promise<string> {
    const d = await makeTempDir(label)
    this.dirs.push(d)
    return d
  }
  /** Remove all; collects errors and throws the first after trying every directory. */
  async removeAll(): Promise<void> {
    let first: unknown
    while (this.dirs.length > 0) {
      const d = this.dirs.pop() as string
      try {
        await removeTempDir(d)
      } catch (e) {
        first ??= e
      }
    }
    if (first !== undefined) throw first
  }
}
