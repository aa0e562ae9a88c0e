/**
 * Open files. A FUSE file handle maps to one host fd. A handle opened read-only on a lower file is
 * "promoted" when that file is copied up: it is reopened on the upper copy, so a reader never goes on
 * seeing old bytes after another opener has written new ones (as overlayfs does since Linux 4.19).
 *
 * A read-only handle on a lower layer's file opens its fd at the first use, not at open: lower files
 * never change, so the same file is opened then, and a reader the kernel serves from its page cache
 * (a warm small file: its pages are kept across opens) never needs the fd at all. That saves an open
 * and a close per such open. An error opening it (only EMFILE or ENOMEM can happen to a file the
 * resolver has seen) then surfaces at that first use.
 */
import type { HostPath } from '../sys/names.js'
import { closeSync, constants, openSync } from 'node:fs'

export interface HandleInit {
  /** The open fd, or -1 with `source` and `flags`: opened at the first use. */
  fd: number
  source?: HostPath
  flags?: number
  /** Merged-view path at open time; used only to find lower handles on copy-up. */
  path: string
  upper: boolean
  /** The file had one name when opened (its pages can be kept across opens). */
  singleLink: boolean
  /** Its size when opened. */
  size: number
  /** It was setuid or setgid when opened. */
  setid: boolean
  /** st_dev of the file its data is read from. */
  dev: number
}

export class Handle {
  #fd: number
  readonly #source: HostPath
  readonly #flags: number
  readonly path: string
  upper: boolean
  readonly singleLink: boolean
  readonly size: number
  readonly setid: boolean
  readonly dev: number

  constructor(init: HandleInit) {
    this.#fd = init.fd
    this.#source = init.source ?? ''
    this.#flags = init.flags ?? constants.O_RDONLY
    this.path = init.path
    this.upper = init.upper
    this.singleLink = init.singleLink
    this.size = init.size
    this.setid = init.setid
    this.dev = init.dev
  }

  /** The host fd, opened now if this is its first use. */
  get fd(): number {
    if (this.#fd < 0) this.#fd = openSync(this.#source, this.#flags)
    return this.#fd
  }

  /** Move to another file's fd (the upper copy), closing the old one if it was open. */
  switchTo(fd: number): void {
    if (this.#fd >= 0) closeSync(this.#fd)
    this.#fd = fd
    this.upper = true
  }

  close(): void {
    if (this.#fd >= 0) closeSync(this.#fd)
    this.#fd = -1
  }
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

  /** `path` was copied up to `upperPath`: move its lower readers onto the copy. `follow`: upperPath
   *  is a /proc/self/fd link to a copy without a name yet (Core.defer). */
  promote(path: string, upperPath: HostPath, follow = false): void {
    const readers = this.#lower.get(path)
    if (!readers) return
    this.#lower.delete(path)
    for (const handle of readers) handle.switchTo(openSync(upperPath, constants.O_RDONLY | (follow ? 0 : constants.O_NOFOLLOW)))
  }

  #dropLower(handle: Handle): void {
    if (handle.upper) return
    const set = this.#lower.get(handle.path)
    set?.delete(handle)
    if (set?.size === 0) this.#lower.delete(handle.path)
  }
}
