/**
 * Open files. A FUSE file handle maps to one host fd. A handle opened read-only on a lower file is
 * "promoted" when that file is copied up: it is reopened on the upper copy, so a reader never goes on
 * seeing old bytes after another opener has written new ones (as overlayfs does since Linux 4.19).
 */
import { closeSync, constants, openSync } from 'node:fs'

export interface Handle {
  fd: number
  /** Merged-view path at open time; used only to find lower handles on copy-up. */
  readonly path: string
  upper: boolean
  /** The file had one name when opened (its pages can be kept across opens). */
  readonly singleLink: boolean
  /** Its size when opened. */
  readonly size: number
  /** It was setuid or setgid when opened. */
  readonly setid: boolean
}

export class Handles {
  readonly #open = new Map<number, Handle>()
  /** Lower read-only handles by path. */
  readonly #lower = new Map<string, Set<Handle>>()
  #next = 1

  add(handle: Handle): number {
    const fh = this.#next++
    this.#open.set(fh, handle)
    if (!handle.upper) {
      let set = this.#lower.get(handle.path)
      if (!set) this.#lower.set(handle.path, (set = new Set()))
      set.add(handle)
    }
    return fh
  }

  get(fh: number): Handle | undefined {
    return this.#open.get(fh)
  }

  get size(): number {
    return this.#open.size
  }

  /** Forget `fh` and return its handle (the caller closes the fd). */
  remove(fh: number): Handle | undefined {
    const handle = this.#open.get(fh)
    if (!handle) return undefined
    this.#open.delete(fh)
    this.#dropLower(handle)
    return handle
  }

  /** `path` was copied up to `upperPath`: move its lower readers onto the copy. */
  promote(path: string, upperPath: string): void {
    const readers = this.#lower.get(path)
    if (!readers) return
    this.#lower.delete(path)
    for (const handle of readers) {
      const fd = openSync(upperPath, constants.O_RDONLY | constants.O_NOFOLLOW)
      const old = handle.fd
      handle.fd = fd
      handle.upper = true
      closeSync(old)
    }
  }

  #dropLower(handle: Handle): void {
    if (handle.upper) return
    const set = this.#lower.get(handle.path)
    set?.delete(handle)
    if (set?.size === 0) this.#lower.delete(handle.path)
  }
}
