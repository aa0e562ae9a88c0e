/**
 * `docker diff` for an upper dir: A (added), C (changed), D (deleted) per path, sorted. With the lower
 * layers known, an entry is C when the merged lower tree had it and A otherwise, a whiteout is D only
 * when it hides something, and an opaque directory also deletes what lower layers had under it.
 * Without them, present entries are A and whiteouts D.
 */
import { refuseRedirect } from './layer-pack.js'
import { walkLayer } from './layer-walk.js'
import { applyLayer, type Tree } from './merged-tree.js'

export interface Change {
  kind: 'A' | 'C' | 'D'
  path: string
}

/** Merged tree of plain layer dirs given topmost first (the overlay lowerdir order). */
export async function lowerTree(lowerDirs: readonly string[]): Promise<Tree> {
  const tree: Tree = new Map()
  const bottomUp = [...lowerDirs].reverse()
  for (const [i, dir] of bottomUp.entries()) applyLayer(tree, await walkLayer(dir), i)
  return tree
}

export async function diffUpper(upper: string, lower: Tree | undefined): Promise<Change[]> {
  const out = new Map<string, Change['kind']>()
  for (const e of await walkLayer(upper)) {
    if (e.kind === 'whiteout') {
      if (!lower || lower.has(e.path)) out.set(e.path, 'D')
      continue
    }
    if (e.kind === 'dir') await refuseRedirect(e.hostPath, e.path.slice(1))
    if (!lower) {
      out.set(e.path, 'A')
      continue
    }
    out.set(e.path, lower.has(e.path) ? 'C' : 'A')
    if (e.opaque) {
      const prefix = `${e.path}/`
      for (const p of lower.keys()) if (p.startsWith(prefix) && !out.has(p)) out.set(p, 'D')
    }
  }
  // An opaque dir's own children may be listed after its D marks: a present child wins.
  return [...out].map(([path, kind]) => ({ path, kind })).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
}
