/**
 * Which open files the kernel reads and writes itself (FUSE passthrough, Linux 6.9+).
 *
 * A passthrough open names a backing file; the kernel then sends no read or write for that file
 * and does the I/O on the backing file: no request, no copy through the daemon, and the layer's own
 * page cache (a lower file's pages are shared with every other mount of that layer; an executable
 * or library is mapped straight from it). The kernel holds each inode in one I/O mode while it has
 * open files: either every open file passes through, all to the same backing file, or none does; an
 * open reply that breaks this fails the caller's open with EIO. So the mode is chosen per node at its
 * first open and kept until its last release. The opens for reading of a big lower file that C
 * answered (native/fuse-ll-fast.c, pass_open) pass through to a backing id of C's: an open here
 * beside them joins them on that id (joinedC), which C keeps until the node's files here are closed.
 *
 * Which files pass through (the `passthrough` mount option):
 * - 'on' (default): files opened for writing by root, and files of at least 1 MiB opened for
 *   reading; never an upper file with several names (writes the daemon never sees would leave the
 *   other names' page caches stale), and never a setuid or setgid file: a passthrough write goes to
 *   the backing file with the daemon's credentials, so the kernel would not clear those bits for an
 *   unprivileged writer, and with killpriv v2 (ll-bridge.ts) the daemon never hears of the write.
 *   For that reason, too, a file another user opens for writing stays with the daemon: the file may
 *   be made setuid while it is open (a chmod by its owner or root), and each of that user's writes
 *   must then clear the bit, as the kernel clears it. Root's writes never clear it (CAP_FSETID).
 * - 'upper': the same, but only complete upper copies. Lower files stay with the daemon, which moves
 *   their readers over to the upper copy when the file is copied up (as overlayfs does since 4.19).
 * - 'off': none.
 * A small file read through the daemon costs one read request when cold and none when warm (its
 * pages are kept across opens), while passing it through costs two ioctls per open and, since the
 * kernel then drops its cached atime after every read, a getattr at the next stat. A write through
 * the daemon is one request each; a big read, one per 128 KiB, and page-cache reads through FUSE are
 * slower than the backing filesystem's own.
 *
 * A lower file's data moves when it is copied up, but its passthrough files cannot change backing
 * file. So a node that passes through to a lower file is retired once its data has moved: the next
 * open of it is answered ESTALE, which makes the kernel look the name up again (LOOKUP_REVAL) and
 * open the fresh node, backed by the upper copy. Files opened before the copy-up go on reading the
 * lower data, as with overlayfs before 4.19 and with fuse-overlayfs (the README lists this).
 *
 * Writes that pass through bypass the node's FUSE page cache; the pages it cached before are dropped
 * by the kernel when the passthrough open is answered (its reply never asks to keep them), and none
 * are cached while the node passes through.
 *
 * The counts here can only run ahead of the kernel's (an open is counted when answered, and the
 * kernel ends its use of a file before it sends the release), so a node the kernel still holds in one
 * mode is never answered in the other.
 */
import type { Session } from '../sys/fuse-ll.js'

export type PassthroughPolicy = 'on' | 'upper' | 'off'

export interface OpenFile {
  fd: number
  /** The complete upper copy (false: a lower file, or the lower data of a metadata-only copy). */
  upper: boolean
  singleLink: boolean
  /** When opened. */
  size: number
  /** setuid or setgid when opened */
  setid: boolean
  /** st_dev of its data's filesystem */
  dev: number
}

/** Files opened only for reading pass through from this size on. */
export const PASSTHROUGH_READ_MIN = 1 << 20

interface Mode {
  /** The backing id every open file of the node passes through to; 0: none does. */
  backing: number
  /** Whether that backing file is the upper copy. */
  upper: boolean
  /** The backing id is C's, joined (Session.fastJoin): left with fastLeave, not closed. */
  joined?: true
  /** The node's open files: most nodes have one, kept bare. */
  fhs: number | number[]
}

/** opened(): the node's data has moved away from its backing file; answer ESTALE. */
export const STALE = -1

const EPERM = 1
const SETID = 0o6000
const EOPNOTSUPP = 95
const ELOOP = 40

export class OpenFiles {
  readonly #session: Session
  /** By node id: the nodes with open files. */
  readonly #modes = new Map<number, Mode>()
  /** Filesystems (st_dev) that refused to back a file because they are stacked (ELOOP). */
  readonly #stacked = new Set<number>()
  /** fh → node id. */
  readonly #nodes = new Map<number, number>()
  /** The bridge's own handles among them (its anchors, ll-bridge.ts): files the kernel never saw. */
  readonly #own = new Set<number>()
  #policy: PassthroughPolicy
  /** Opens answered with a passthrough file since the mount (for stats). */
  passedThrough = 0

  constructor(session: Session, policy: PassthroughPolicy) {
    this.#session = session
    this.#policy = policy
  }

  /** The policy in force: 'off' when the kernel did not grant passthrough or refuses backing files. */
  get policy(): PassthroughPolicy {
    return this.#session.passthrough ? this.#policy : 'off'
  }

  /**
   * Records a new open of `node` as `fh` (`writing`: opened for writing; `root`: by uid 0; `shared`:
   * the node has files open that the daemon reads, which it cannot see here): the
   * backing id to answer it with (0: through the daemon), or STALE, when the node passes through to
   * a lower file that has since been copied up (the open is not recorded; answer ESTALE and retire
   * the node).
   */
  opened(node: number, fh: number, file: OpenFile, writing: boolean, root = true, shared = false): number {
    const mode = this.#modes.get(node)
    if (mode) {
      if (mode.backing && mode.upper !== file.upper) return STALE
      if (typeof mode.fhs === 'number') mode.fhs = [mode.fhs, fh]
      else mode.fhs.push(fh)
      this.#nodes.set(fh, node)
      return mode.backing
    }
    const backing = !shared && this.#passes(file, writing, root) ? this.#register(file) : 0
    this.#modes.set(node, { backing, upper: file.upper, fhs: fh })
    this.#nodes.set(fh, node)
    if (backing) this.passedThrough++
    return backing
  }

  /**
   * Records a new open of `node` as `fh` for reading its lower file while the node's opens answered
   * in C pass through to it (Session.fastPassing): the kernel holds the node in that mode, to that
   * backing file, so this open joins them (Session.fastJoin, once for all of the node's files here).
   * The backing id to answer it with, or STALE when C's opens have just ended (then the open goes
   * to a new node as any the node cannot take).
   */
  joinedC(node: number, fh: number): number {
    const mode = this.#modes.get(node)
    if (!mode?.joined) {
      // What the node had here could only be its anchor (ll-bridge.ts), which the kernel never saw.
      if (mode && mode.backing > 0) return STALE
      const backing = this.#session.fastJoin(node)
      if (backing <= 0) return STALE
      this.passedThrough++ // (counted as opened() counts: once per mode)
      if (!mode) {
        this.#modes.set(node, { backing, upper: false, fhs: fh, joined: true })
        this.#nodes.set(fh, node)
        return backing
      }
      mode.backing = backing
      mode.joined = true
    }
    if (typeof mode.fhs === 'number') mode.fhs = [mode.fhs, fh]
    else mode.fhs.push(fh)
    this.#nodes.set(fh, node)
    return mode.backing
  }

  /** Records the open of `node` as `fh` that C answered passing through to `backing` while the
   *  node had no open file (Session.cowOpenFh): a copy with one link, written by root, as opened()
   *  passes one. */
  adopted(node: number, fh: number, backing: number): void {
    this.#nodes.set(fh, node)
    this.passedThrough++
    const mode = this.#modes.get(node)
    if (!mode) {
      this.#modes.set(node, { backing, upper: true, fhs: fh })
      return
    }
    // Never while C keeps to its rule (the node had no open file); should it break, the open is
    // counted with the others and its backing id goes (the kernel's file keeps the backing file).
    if (typeof mode.fhs === 'number') mode.fhs = [mode.fhs, fh]
    else mode.fhs.push(fh)
    if (backing !== mode.backing) this.#session.backingClose(backing)
  }

  /** Records the bridge's own handle `fh` of `node` (an anchor, for requests on files opened in
   *  C), in the node's mode as a file the daemon reads: the kernel never sees it. */
  anchored(node: number, fh: number, file: OpenFile): void {
    this.opened(node, fh, file, false, true, true)
    this.#own.add(fh)
  }

  /** The handle is closed (or its open never reached the caller): the node, when that was its
   *  last open file. */
  released(fh: number): number | undefined {
    const node = this.#nodes.get(fh)
    if (node === undefined) return undefined
    this.#nodes.delete(fh)
    this.#own.delete(fh)
    const mode = this.#modes.get(node)
    if (mode === undefined) return undefined
    if (typeof mode.fhs !== 'number') {
      mode.fhs.splice(mode.fhs.indexOf(fh), 1)
      if (mode.fhs.length === 1) mode.fhs = mode.fhs[0]!
      this.#leaveIfOwn(node, mode)
      return undefined
    }
    this.#modes.delete(node)
    if (mode.joined) this.#session.fastLeave(node)
    else if (mode.backing) this.#session.backingClose(mode.backing)
    return node
  }

  /** A node whose files joined C's is left when only the bridge's own handles remain: they keep
   *  no file of the kernel's in that mode, and C closes its backing id (and ends the anchor, at
   *  its own last release) only once none of the node's files count for it. */
  #leaveIfOwn(node: number, mode: Mode): void {
    if (!mode.joined) return
    const fhs = typeof mode.fhs === 'number' ? [mode.fhs] : mode.fhs
    if (!fhs.every((fh) => this.#own.has(fh))) return
    this.#session.fastLeave(node)
    mode.joined = undefined
    mode.backing = 0
  }

  /** Whether the node's open files pass through (none of their I/O reaches the daemon). */
  passesThrough(node: number): boolean {
    return (this.#modes.get(node)?.backing ?? 0) > 0
  }

  /** One of the node's open files, if it has any: what is left of a file unlinked while open. */
  handleOf(node: number): number | undefined {
    const mode = this.#modes.get(node)
    return mode === undefined ? undefined : typeof mode.fhs === 'number' ? mode.fhs : mode.fhs[0]
  }

  /** Whether an open of `file` for reading alone would pass through (now: it may change size). */
  passesReading(file: OpenFile): boolean {
    return this.policy !== 'off' && this.#passes(file, false, true)
  }

  /** Whether an open for reading of a lower file of `size` bytes and mode `mode` would pass through
   *  (C's opens of it then pass through too: Session.cowAllow's 'passed'). */
  passesLower(size: number, mode: number): boolean {
    return this.policy === 'on' && size >= PASSTHROUGH_READ_MIN && (mode & SETID) === 0
  }

  #passes(file: OpenFile, writing: boolean, root: boolean): boolean {
    if (this.#policy === 'off' || file.setid || (writing && !root) || (!writing && file.size < PASSTHROUGH_READ_MIN)) return false
    return file.upper ? file.singleLink : this.#policy === 'on'
  }

  #register(file: OpenFile): number {
    if (this.#stacked.has(file.dev)) return 0
    const id = this.#session.backingOpen(file.fd)
    if (id > 0) return id
    // Not granted at INIT, or not allowed to this process: no file will pass through. A filesystem
    // that is itself stacked (a layer on overlayfs: ELOOP) can back none of its files; other
    // failures concern this file only.
    if (id === -EOPNOTSUPP || id === -EPERM) this.#policy = 'off'
    else if (id === -ELOOP) this.#stacked.add(file.dev)
    return 0
  }
}
