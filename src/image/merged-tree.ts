/**
 * The merged view of an image, computed from layer walks applied bottom to top with overlay
 * semantics: a whiteout removes the path and everything under it, an opaque directory hides what
 * lower layers had under it, a non-directory replaces a directory with its subtree.
 * applyLayer reports what each layer did, which is what `inspect` and `which` print.
 */
import type { LayerEntry } from './layer-walk.js'

export interface TreeNode {
  entry: LayerEntry
  /** Index (in OpenedImage.layers) of the layer that provides the entry. */
  layer: number
}

export type Tree = Map<string, TreeNode>

export interface LayerChange {
  path: string
  action: 'added' | 'modified' | 'deleted'
  /** For added/modified: new size; for deleted: size that was removed. */
  size: number
  /** Bytes of lower entries this change hid (replaced or deleted). */
  hidden: number
  kind: string
}

function isUnder(path: string, dir: string): boolean {
  return path.startsWith(dir === '/' ? '/' : `${dir}/`)
}

/** Removes `path`'s descendants (and the path itself when `self`), returning what was removed. */
function removeSubtree(tree: Tree, path: string, self: boolean): TreeNode[] {
  const removed: TreeNode[] = []
  for (const [p, node] of tree) {
    if ((self && p === path) || isUnder(p, path)) {
      removed.push(node)
      tree.delete(p)
    }
  }
  return removed
}

export function applyLayer(tree: Tree, entries: readonly LayerEntry[], layer: number): LayerChange[] {
  const changes: LayerChange[] = []
  for (const e of entries) {
    if (e.kind === 'whiteout') {
      for (const gone of removeSubtree(tree, e.path, true)) {
        changes.push({ path: gone.entry.path, action: 'deleted', size: gone.entry.size, hidden: gone.entry.size, kind: gone.entry.kind })
      }
      continue
    }
    const old = tree.get(e.path)
    const hiddenNodes: TreeNode[] = []
    if (e.opaque) hiddenNodes.push(...removeSubtree(tree, e.path, false))
    if (old && old.entry.kind === 'dir' && e.kind !== 'dir') hiddenNodes.push(...removeSubtree(tree, e.path, false))
    for (const h of hiddenNodes) {
      changes.push({ path: h.entry.path, action: 'deleted', size: h.entry.size, hidden: h.entry.size, kind: h.entry.kind })
    }
    tree.set(e.path, { entry: e, layer })
    // A directory that merely carries changes below it is not a change of its own.
    if (e.kind === 'dir' && old?.entry.kind === 'dir') continue
    changes.push({ path: e.path, action: old ? 'modified' : 'added', size: e.size, hidden: old?.entry.size ?? 0, kind: e.kind })
  }
  return changes
}

/** Entries directly inside `dir` in the merged tree, sorted by name. */
export function childrenOf(tree: Tree, dir: string): TreeNode[] {
  const prefix = dir === '/' ? '/' : `${dir}/`
  const out: TreeNode[] = []
  for (const [p, node] of tree) {
    if (p.startsWith(prefix) && !p.slice(prefix.length).includes('/') && p.length > prefix.length) out.push(node)
  }
  return out.sort((a, b) => (a.entry.path < b.entry.path ? -1 : 1))
}

/** `/a/./b/` → `/a/b`; `..` resolved lexically, never above `/`. */
export function normalizeImagePath(p: string): string {
  const parts: string[] = []
  for (const c of p.split('/')) {
    if (c === '' || c === '.') continue
    if (c === '..') parts.pop()
    else parts.push(c)
  }
  return '/' + parts.join('/')
}
