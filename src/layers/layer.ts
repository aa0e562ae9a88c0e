import { hostPath, type HostPath } from '../sys/names.js'

/**
 * A layer is a host directory: read-only (a lower) or writable (the upper). The union addresses
 * entries by a path relative to the layer root without a leading slash ('' is the root itself);
 * this module is the only place that turns such a path into a host path.
 */
export class Layer {
  /** Absolute host path of the layer's root directory. */
  readonly root: string
  /** Position in the stack: 0 is the topmost (the upper when there is one). */
  readonly index: number
  readonly writable: boolean

  constructor(root: string, index: number, writable: boolean) {
    this.root = root
    this.index = index
    this.writable = writable
  }

  /** `rel` is already normal (no '.', '..' or doubled slashes: names come from the kernel), so a
   *  concatenation does what path.join would, at a fraction of its cost on the hottest path. A
   *  string, unless `rel` carries bytes that are not UTF-8 (see sys/names.ts). */
  path(rel: string): HostPath {
    return rel === '' ? this.root : hostPath(`${this.root}/${rel}`)
  }

  toString(): string {
    return `${this.writable ? 'upper' : 'lower'}#${this.index}(${this.root})`
  }
}

/** 'a/b/c' → ['a/b', 'c']; 'c' → ['', 'c']. */
export function splitPath(rel: string): [string, string] {
  const slash = rel.lastIndexOf('/')
  return slash < 0 ? ['', rel] : [rel.slice(0, slash), rel.slice(slash + 1)]
}

export function joinPath(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`
}

/** '/a/b' (as FUSE gives it) → 'a/b'; '/' → ''. */
export function relPath(fusePath: string): string {
  let start = 0
  while (start < fusePath.length && fusePath[start] === '/') start++
  return fusePath.slice(start)
}
