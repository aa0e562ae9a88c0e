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
 *
 * A handle on a copy not named yet that the FUSE bridge opened in C (Handles.lend) borrows the
 * copy's own fd and takes one of its own at its first use: `touch` of a lower file opens it,
 * changes its times and closes it, all answered in C or passed through, and its handle is never
 * used. The copy's fd closes when the copy is named (Core.#name), which first gives each handle
 * still borrowing it an fd of its own (Handles.ownLent).
 */
import type { HostPath } from '../sys/names.js'
import { closeSync, constants, openSync } from 'node:fs'
import { Layer } from '../layers/layer.js'
import { dupFdSync } from '../sys/native.js'
import { fsError } from './errors.js'

/** What a handle keeps of its file's shape when opened (see FileShape). */
export interface HandleShape {
  /** The file had one name when opened (its pages can be kept across opens). */
  singleLink: boolean
  /** Its size when opened. */
  size: number
  /** It was setuid or setgid when opened. */
  setid: boolean
  /** st_dev of the file its data is read from. */
  dev: number
  /** A copy not named yet when opened (Core.defer): on the host it has no link until its flush
   *  names it. */
  unnamed?: boolean
}

export class Handle {
  #fd: number
  /** What to open at the first use: a host path, or the layer holding the file at `path`. */
  readonly #source: HostPath | Layer
  readonly #flags: number
  /** Merged-view path at open time (with `source`, where to open it). */
  readonly path: string
  /** A lower handle's name now, by which a copy-up finds it (Handles.promote): `path`, until a
   *  rename moves the file (its data still below, a metadata-only copy's) or replaces it (NO_NAME). */
  named: string
  upper: boolean
  /** Shared with the entry for a lower file (its shape never changes): nothing copied per open. */
  readonly #shape: HandleShape
  /** For a reader of a metadata-only copy (its data read from below): an fd on the copy itself, or
   *  -1. Through it, the file's attributes and xattrs are read and changed once it has no name. */
  meta = -1
  /** The fds withFd operations use, with how many use each. */
  #busy: Map<number, number> | undefined
  /** An fd this handle borrows (Handles.lend), and the handles that borrow it with this one. */
  #lent: { fd: number; borrowers: Set<Handle> } | undefined
  /** It borrowed an fd and could not take its own when that closed (Handles.ownLent). */
  #broken = false

  /** `fd`: the open fd, or -1 with `source` and `flags`, to be opened at the first use. */
  constructor(fd: number, path: string, upper: boolean, shape: HandleShape, source: HostPath | Layer = '', flags: number = constants.O_RDONLY) {
    this.#fd = fd
    this.#source = source
    this.#flags = flags
    this.path = path
    this.named = path
    this.upper = upper
    this.#shape = shape
  }

  get singleLink(): boolean {
    return this.#shape.singleLink
  }

  get size(): number {
    return this.#shape.size
  }

  get setid(): boolean {
    return this.#shape.setid
  }

  get dev(): number {
    return this.#shape.dev
  }

  get unnamed(): boolean {
    return this.#shape.unnamed === true
  }

  /** The host fd, opened now if this is its first use (a dup of the one it borrows, if it does). */
  get fd(): number {
    if (this.#fd < 0) {
      if (this.#lent) this.own()
      else if (this.#broken) throw fsError('EBADF', `${this.path}: its copy's fd could not be kept`)
      else {
        const source = this.#source
        this.#fd = openSync(source instanceof Layer ? source.path(this.path) : source, this.#flags)
      }
    }
    return this.#fd
  }

  /** Borrow `fd` (see Handles.lend), with the other handles in `borrowers`. */
  borrow(fd: number, borrowers: Set<Handle>): void {
    borrowers.add(this)
    this.#lent = { fd, borrowers }
  }

  /** Take an fd of its own in place of the one it borrows. */
  own(): void {
    const lent = this.#lent
    if (!lent) return
    this.#fd = dupFdSync(lent.fd)
    this.#unborrow()
  }

  /** Stop borrowing, without an fd of its own: the next use fails (EBADF). */
  disown(): void {
    this.#unborrow()
    this.#broken = true
  }

  #unborrow(): void {
    this.#lent?.borrowers.delete(this)
    this.#lent = undefined
  }

  /**
   * Run `io` with the host fd; it stays open until `io` ends, whatever happens to the handle
   * meanwhile. A copy-up that moves the handle to its copy (switchTo), or a close, would close it at
   * once, and another open could get its number back before a thread of the pool reads it: that
   * read would take another file's bytes. Such a close waits for the last `io` on the fd.
   */
  async withFd<T>(io: (fd: number) => Promise<T>): Promise<T> {
    const fd = this.fd
    const busy = (this.#busy ??= new Map())
    busy.set(fd, (busy.get(fd) ?? 0) + 1)
    try {
      return await io(fd)
    } finally {
      const left = busy.get(fd)! - 1
      if (left > 0) busy.set(fd, left)
      else {
        busy.delete(fd)
        if (fd !== this.#fd) closeSync(fd)
      }
    }
  }

  /** Move to another file's fd (the upper copy), closing the old one if it was open. */
  switchTo(fd: number): void {
    this.#unborrow()
    this.#closeFd()
    this.#fd = fd
    this.upper = true
    this.#closeMeta()
  }

  close(): void {
    this.#unborrow()
    this.#closeFd()
    this.#fd = -1
    this.#closeMeta()
  }

  /** Close the fd, unless an operation still uses it (see withFd: its end closes it). */
  #closeFd(): void {
    if (this.#fd >= 0 && !this.#busy?.has(this.#fd)) closeSync(this.#fd)
  }

  #closeMeta(): void {
    if (this.meta >= 0) closeSync(this.meta)
    this.meta = -1
  }
}

/** File handles are `generation × SLOTS + slot`, the generation counting the slot's uses: slots are
 *  reused, handle numbers never, so a stale one (kept by work that outlived its release) finds
 *  nothing. */
const SLOTS = 2 ** 20

/**
 * The open handles, in a table of slots: an open and its release allocate nothing here (a Map
 * keyed by ever-growing numbers rehashes as it churns, which the garbage collector pays for on
 * every open of a small file).
 */
export class Handles {
  readonly #slots: Array<Handle | undefined> = []
  readonly #generations: number[] = []
  readonly #free: number[] = []
  #size = 0
  /** Lower read-only handles by path: most paths have one, kept bare. */
  readonly #lower = new Map<string, Handle | Handle[]>()
  /** The handles that borrow each lent fd (lend). */
  readonly #lent = new Map<number, Set<Handle>>()

  add(handle: Handle): number {
    const slot = this.#free.pop() ?? this.#slots.length
    if (slot === SLOTS) throw fsError('EMFILE', `${SLOTS} files open`)
    const generation = (this.#generations[slot] ?? 0) + 1
    this.#generations[slot] = generation
    this.#slots[slot] = handle
    this.#size++
    if (!handle.upper) this.#addLower(handle)
    return generation * SLOTS + slot
  }

  /** A file handle number for a handle that comes later (fill): one the FUSE bridge's C side may
   *  answer an open with (see Session.cowOpenFh). Until filled it holds nothing. */
  reserve(): number {
    const slot = this.#free.pop() ?? this.#slots.length
    if (slot === SLOTS) throw fsError('EMFILE', `${SLOTS} files open`)
    const generation = (this.#generations[slot] ?? 0) + 1
    this.#generations[slot] = generation
    this.#slots[slot] = undefined
    return generation * SLOTS + slot
  }

  /** Let `handle` (not used yet) borrow `fd`, which stays open until ownLent(fd): the handle takes a
   *  dup of it at its first use, and not before. */
  lend(handle: Handle, fd: number): void {
    let borrowers = this.#lent.get(fd)
    if (!borrowers) this.#lent.set(fd, (borrowers = new Set()))
    handle.borrow(fd, borrowers)
  }

  /** `fd` is about to close: every handle that still borrows it takes a dup of its own now. One
   *  that cannot (EMFILE) is left with none, and fails its next use. */
  ownLent(fd: number): void {
    const borrowers = this.#lent.get(fd)
    if (!borrowers) return
    this.#lent.delete(fd)
    for (const handle of [...borrowers]) {
      try {
        handle.own()
      } catch {
        handle.disown()
      }
    }
  }

  /** The handle a reserved number stands for from now on (an upper file's). */
  fill(fh: number, handle: Handle): void {
    const slot = fh % SLOTS
    if (this.#generations[slot] !== (fh - slot) / SLOTS || this.#slots[slot] !== undefined) throw fsError('EBADF', `file handle ${fh} is not reserved`)
    if (!handle.upper) throw fsError('EINVAL', 'a reserved file handle is for an upper file')
    this.#slots[slot] = handle
    this.#size++
  }

  /** A reserved number that will not be filled is free again. */
  unreserve(fh: number): void {
    const slot = fh % SLOTS
    if (this.#generations[slot] === (fh - slot) / SLOTS && this.#slots[slot] === undefined) this.#free.push(slot)
  }

  get(fh: number): Handle | undefined {
    const slot = fh % SLOTS
    return this.#generations[slot] === (fh - slot) / SLOTS ? this.#slots[slot] : undefined
  }

  get size(): number {
    return this.#size
  }

  /** Forget `fh` and return its handle (the caller closes the fd). */
  remove(fh: number): Handle | undefined {
    const handle = this.get(fh)
    if (!handle) return undefined
    const slot = fh % SLOTS
    this.#slots[slot] = undefined
    this.#free.push(slot)
    this.#size--
    this.#dropLower(handle)
    return handle
  }

  /** The open handles that `test` accepts. */
  filter(test: (handle: Handle) => boolean): Handle[] {
    return this.#slots.filter((handle): handle is Handle => handle !== undefined && test(handle))
  }

  /** Close every handle still open, and forget them all (the union is closing). */
  closeAll(): void {
    this.#slots.forEach((handle, slot) => {
      if (!handle) return
      handle.close()
      this.#slots[slot] = undefined
      this.#free.push(slot)
    })
    this.#size = 0
    this.#lower.clear()
  }

  /** `path` was copied up to `upperPath`: move its lower readers onto the copy. `follow`: upperPath
   *  is a /proc/self/fd link to a copy without a name yet (Core.defer). */
  promote(path: string, upperPath: HostPath, follow = false): void {
    const readers = this.#lower.get(path)
    if (!readers) return
    this.#lower.delete(path)
    for (const handle of Array.isArray(readers) ? readers : [readers]) {
      handle.switchTo(openSync(upperPath, constants.O_RDONLY | (follow ? 0 : constants.O_NOFOLLOW)))
    }
  }

  /**
   * A rename moved what was at `from` (a file, or a directory and what is under it) to `to`, or,
   * `exchange`, swapped the two: the lower readers of what moved (a metadata-only copy's, whose
   * data is still read at the old name) are found by the new name from now on, for promote; those
   * of what `to` held, which no name shows any more, by none. `trees`: either may be a directory.
   */
  moveLower(from: string, to: string, exchange = false, trees = true): void {
    if (this.#lower.size === 0) return
    const moved: Array<[string, Handle[]]> = []
    // Two files: their own names alone (no walk over every reader at each rename).
    const keys = trees ? this.#lower.keys() : [from, to].filter((key) => this.#lower.has(key))
    for (const key of [...keys]) {
      const readers = this.#lower.get(key)!
      const fromRest = below(key, from)
      const toRest = fromRest === undefined ? below(key, to) : undefined
      if (fromRest === undefined && toRest === undefined) continue
      this.#lower.delete(key)
      const list = Array.isArray(readers) ? readers : [readers]
      if (fromRest !== undefined) moved.push([to + fromRest, list])
      else if (exchange) moved.push([from + toRest!, list])
      else for (const handle of list) handle.named = NO_NAME
    }
    for (const [name, list] of moved) {
      for (const handle of list) {
        handle.named = name
        this.#addLower(handle)
      }
    }
  }

  #addLower(handle: Handle): void {
    const known = this.#lower.get(handle.named)
    if (known === undefined) this.#lower.set(handle.named, handle)
    else if (Array.isArray(known)) known.push(handle)
    else this.#lower.set(handle.named, [known, handle])
  }

  #dropLower(handle: Handle): void {
    if (handle.upper) return
    const known = this.#lower.get(handle.named)
    if (known === handle) this.#lower.delete(handle.named)
    else if (Array.isArray(known)) {
      const at = known.indexOf(handle)
      if (at >= 0) known.splice(at, 1)
      if (known.length === 1) this.#lower.set(handle.named, known[0]!)
    }
  }
}

/** The name of a lower reader whose file no name shows any more (see Handles.moveLower). */
const NO_NAME = '\0'

/** What follows `dir` in `path` ('' for `dir` itself, '/x' for `dir/x`), or undefined when `path`
 *  is not `dir` or under it. */
function below(path: string, dir: string): string | undefined {
  if (path === dir) return ''
  return path.length > dir.length && path.startsWith(dir) && path[dir.length] === '/' ? path.slice(dir.length) : undefined
}
