/**
 * Image analysis for `layerfs inspect` (the questions `dive` answers): per-layer added / modified /
 * deleted counts and bytes, wasted bytes (lower-layer file bytes hidden by later layers, which the
 * image ships but no container sees), and an efficiency score = 1 − wasted / all file bytes.
 * Directories are not counted as changes; files, symlinks and special files are.
 */
import { walkLayer } from './layer-walk.js'
import { applyLayer, type LayerChange, type Tree } from './merged-tree.js'
import type { ImageLayer, OpenedImage } from './open-image.js'

export interface LayerReport {
  index: number
  diffId: string | undefined
  digest: string | undefined
  size: number
  createdBy: string
  empty: boolean
  added: { count: number; bytes: number }
  modified: { count: number; bytes: number }
  deleted: { count: number; bytes: number }
}

export interface WastedPath {
  path: string
  /** Times the path was replaced or deleted. */
  count: number
  bytes: number
}

export interface ImageReport {
  names: string[]
  configDigest: string
  totalBytes: number
  wastedBytes: number
  efficiency: number
  layers: LayerReport[]
  wasted: WastedPath[]
}

export interface Replay {
  tree: Tree
  changes: LayerChange[][]
}

/** Applies layers [0, upTo] (history indexes) and returns the merged tree and each layer's changes. */
export async function replayLayers(layers: readonly ImageLayer[], upTo = layers.length - 1): Promise<Replay> {
  const tree: Tree = new Map()
  const changes: LayerChange[][] = []
  for (const l of layers) {
    if (l.index > upTo) break
    changes.push(l.dir ? applyLayer(tree, await walkLayer(l.dir), l.index) : [])
  }
  return { tree, changes }
}

export async function analyzeImage(img: OpenedImage): Promise<ImageReport> {
  const { changes } = await replayLayers(img.layers)
  const wasted = new Map<string, WastedPath>()
  let totalBytes = 0
  let wastedBytes = 0
  const layers = img.layers.map((l, i): LayerReport => {
    const r: LayerReport = {
      index: l.index, diffId: l.diffId, digest: l.digest, size: l.size, createdBy: l.createdBy, empty: l.empty,
      added: { count: 0, bytes: 0 }, modified: { count: 0, bytes: 0 }, deleted: { count: 0, bytes: 0 },
    }
    totalBytes += l.size
    for (const c of changes[i] ?? []) {
      if (c.kind === 'dir') continue
      const bucket = r[c.action]
      bucket.count++
      bucket.bytes += c.size
      if (c.hidden > 0) {
        wastedBytes += c.hidden
        const w = wasted.get(c.path) ?? { path: c.path, count: 0, bytes: 0 }
        w.count++
        w.bytes += c.hidden
        wasted.set(c.path, w)
      }
    }
    return r
  })
  return {
    names: img.names,
    configDigest: img.configDigest,
    totalBytes,
    wastedBytes,
    efficiency: totalBytes === 0 ? 1 : 1 - wastedBytes / totalBytes,
    layers,
    wasted: [...wasted.values()].sort((a, b) => b.bytes - a.bytes || (a.path < b.path ? -1 : 1)),
  }
}
