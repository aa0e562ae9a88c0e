/**
 * The union's shared state and the machinery every operation builds on: the layer stack, the resolver
 * (node table + lookup cache), the namespace lock, copy-up and whiteout writing.
 *
 * Locking: `lock` serialises every change to the upper layer's namespace (the commit of a copy-up, a
 * create, an unlink, a rename). Methods named `...Locked` expect the caller to hold it. Lookups, reads
 * and writes never take it. A data copy-up runs outside the lock, in the work directory, and commits
 * under it after checking that the name still means what it meant when the copy began.
 */
import { constants, lstatSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { Layer, joinPath, splitPath } from '../layers/layer.js'
import { OPAQUE_XATTRS, WHITEOUT_PREFIX, isWhiteoutStat } from '../layers/whiteout.js'
import { RENAME_EXCHANGE, lgetxattrSync, lsetxattr, mknod, renameat2 } from '../sys/native.js'
import { METACOPY_XATTR, REDIRECT_XATTR, readOrigin } from './inode.js'
import { type Entry, inUpper } from './entry.js'
import { fsError, isCode } from './errors.js'
import { Handles } from './handles.js'
import { Mutex } from './mutex.js'
import { Resolver } from './resolver.js'
import { Stager } from './copy-up.js'

export interface Counters {
  copyUps: number
  copyUpBytes: number
  copyUpMs: number
  whiteouts: number
}

export class Core {
  readonly layers: Layer[]
  readonly upper: Layer | undefined
  readonly resolver: Resolver
  readonly lock = new Mutex()
  readonly handles = new Handles()
  readonly counters: Counters = { copyUps: 0, copyUpBytes: 0, copyUpMs: 0, whiteouts: 0 }
  readonly #stager: Stager | undefined
  /** Data copy-ups in flight, by path: concurrent openers of one file share one copy. */
  readonly #inflight = new Map<string, Promise<Entry>>()
  /** See Union.onAttrChange. */
  onAttrChange: ((path: string) => void) | undefined
  /** Whether mknod of a char 0/0 works here; false after the first EPERM (then `.wh.` files). */
  #mknodWhiteouts = true

  /** Copy up metadata only for metadata changes (metacopy=on). */
  readonly metacopy: boolean

  constructor(layers: Layer[], stager: Stager | undefined, cacheEntries: number, metacopy = false) {
    this.metacopy = metacopy
    this.layers = layers
    this.upper = layers[0]?.writable ? layers[0] : undefined
    this.#stager = stager
    this.resolver = new Resolver(layers, cacheEntries)
  }

  requireUpper(): Layer {
    if (!this.upper) throw fsError('EROFS', 'no upper layer')
    return this.upper
  }

  get stager(): Stager {
    if (!this.#stager) throw fsError('EROFS', 'no work directory')
    return this.#stager
  }

  /** Make sure the directory `dir` exists in the upper layer, copying it (and its parents) up. */
  async ensureUpperDirLocked(dir: Entry): Promise<void> {
    if (inUpper(dir)) return
    const upper = this.requireUpper()
    const [parentPath] = splitPath(dir.path)
    await this.ensureUpperDirLocked(this.resolver.get(parentPath))
    const src = dir.layer.path(dir.path)
    const st = lstatSync(src, { bigint: true })
    const staged = await this.stager.stage(src, 'dir', { data: false, origin: st.ino })
    await this.#commit(staged.tmp, dir.path)
    dir.layer = upper
    dir.dirLayers = [upper, ...dir.dirLayers]
    dir.ino = undefined
    dir.lowerHas = true
    this.resolver.set(dir.path, dir)
    this.counters.copyUps++
    this.onAttrChange?.('/' + dir.path)
  }

  /**
   * Copy `rel` up and return its upper entry. `want`: true copies the data too; false makes an empty
   * file (O_TRUNC, truncate to 0); 'meta' is for changes of metadata only (chmod, chown, utimens,
   * xattrs, rename): with metacopy on, a file is then copied up without its bytes, which stay in the
   * lower layer until a write needs them (overlayfs's metacopy, in the kernel's on-disk format).
   * An upper metadata-only copy asked for its data (or for an empty file) is completed here.
   */
  async copyUp(rel: string, want: boolean | 'meta'): Promise<Entry> {
    for (;;) {
      const entry = this.resolver.get(rel)
      const complete = inUpper(entry) && want !== 'meta' && this.isMetacopy(entry)
      if (inUpper(entry) && !complete) return entry
      this.requireUpper()
      const running = this.#inflight.get(rel)
      if (running) {
        await running.catch(() => undefined)
        continue
      }
      const job = entry.kind === 'dir'
        ? this.lock.run(async () => {
          await this.ensureUpperDirLocked(entry)
          return entry
        })
        : complete ? this.#complete(entry, want === true) : this.#copyUpObject(entry, want)
      this.#inflight.set(rel, job)
      try {
        return await job
      } finally {
        this.#inflight.delete(rel)
      }
    }
  }

  /** Is this upper file a metadata-only copy whose data is still below? (Memoised on the entry.) */
  isMetacopy(entry: Entry): boolean {
    if (entry.kind !== 'file' || !inUpper(entry)) return false
    entry.metacopy ??= lgetxattrSync(entry.layer.path(entry.path), METACOPY_XATTR) !== undefined
    return entry.metacopy
  }

  /** The host path of a metadata-only copy's data: the lower file at its redirect (set when the copy
   *  was renamed), else at its own path, as overlayfs finds it. */
  dataSource(entry: Entry): string {
    const redirect = lgetxattrSync(entry.layer.path(entry.path), REDIRECT_XATTR)?.toString()
    const rel = redirect !== undefined ? redirect.replace(/^\/+/, '') : entry.path
    for (const layer of this.layers) {
      if (layer.writable) continue
      const path = layer.path(rel)
      if (lstatSync(path, { throwIfNoEntry: false })?.isFile()) return path
    }
    throw fsError('EIO', `${entry.path}: the lower data of a metadata-only copy is gone`)
  }

  async #copyUpObject(entry: Entry, want: boolean | 'meta'): Promise<Entry> {
    const upper = this.requireUpper()
    const rel = entry.path
    const started = performance.now()
    // The parent usually is in the upper layer already: then there is nothing to lock for.
    const parent = this.resolver.get(splitPath(rel)[0])
    if (!inUpper(parent)) await this.lock.run(async () => this.ensureUpperDirLocked(this.resolver.get(splitPath(rel)[0])))
    const src = entry.layer.path(rel)
    const st = lstatSync(src, { bigint: true })
    // A lower file with several links loses them in the copy: it must not keep their inode number.
    const origin = st.nlink === 1n ? st.ino : undefined
    const meta = want === 'meta' && this.metacopy && entry.kind === 'file'
    const staged = await this.stager.stage(src, entry.kind, { data: want !== false && !meta, origin, meta })
    return this.lock.run(async () => {
      const current = this.resolver.resolve(rel)
      if (!current || current.layer !== entry.layer || current.kind !== entry.kind) {
        // Removed, replaced or copied up while we copied: our copy is stale.
        rmSync(staged.tmp, { force: true })
        if (current && inUpper(current)) return current
        throw fsError('ENOENT', rel)
      }
      await this.#commit(staged.tmp, rel)
      current.layer = upper
      current.ino = origin === undefined ? undefined : Number(origin)
      current.lowerHas = true
      current.metacopy = meta
      this.resolver.set(rel, current)
      // A metadata-only copy leaves readers on the lower data, which is still the file's.
      if (!meta) this.handles.promote(rel, upper.path(rel))
      this.counters.copyUps++
      this.counters.copyUpBytes += staged.bytes
      this.counters.copyUpMs += performance.now() - started
      this.onAttrChange?.('/' + rel)
      return current
    })
  }

  /** Give a metadata-only copy its data (or make it empty): a new copy with the upper file's
   *  metadata and the lower bytes, renamed over it. */
  async #complete(entry: Entry, withData: boolean): Promise<Entry> {
    const upper = this.requireUpper()
    const rel = entry.path
    const started = performance.now()
    const path = upper.path(rel)
    const origin = readOrigin(path)
    const staged = await this.stager.stage(path, 'file', {
      data: withData, origin: origin === undefined ? undefined : BigInt(origin), dataFrom: withData ? this.dataSource(entry) : undefined,
    })
    return this.lock.run(async () => {
      const current = this.resolver.resolve(rel)
      if (current !== entry || !this.isMetacopy(current)) {
        rmSync(staged.tmp, { force: true })
        if (current) return current
        throw fsError('ENOENT', rel)
      }
      await this.#commit(staged.tmp, rel)
      current.metacopy = false
      this.resolver.set(rel, current)
      this.handles.promote(rel, path)
      this.counters.copyUps++
      this.counters.copyUpBytes += staged.bytes
      this.counters.copyUpMs += performance.now() - started
      this.onAttrChange?.('/' + rel)
      return current
    })
  }

  /** Move a finished copy into place. A copy-up is no change to the parent directory as users see
   *  it, so the parent keeps its times, as overlayfs keeps them. */
  async #commit(tmp: string, rel: string): Promise<void> {
    const upper = this.requireUpper()
    await this.stager.commit(tmp, upper.path(rel), upper.path(splitPath(rel)[0]))
  }

  /** Leave a whiteout at `rel` in the upper layer, replacing whatever non-directory is there. The
   *  parent must already be in the upper layer. */
  async whiteoutLocked(rel: string): Promise<void> {
    const upper = this.requireUpper()
    const target = upper.path(rel)
    if (this.#mknodWhiteouts) {
      const tmp = this.stager.tempPath()
      try {
        await mknod(tmp, constants.S_IFCHR, 0)
        renameSync(tmp, target)
        this.counters.whiteouts++
        return
      } catch (err) {
        rmSync(tmp, { force: true })
        if (!isCode(err, 'EPERM', 'EOPNOTSUPP')) throw err
        this.#mknodWhiteouts = false
      }
    }
    const [dir, name] = splitPath(rel)
    writeFileSync(upper.path(joinPath(dir, WHITEOUT_PREFIX + name)), '', { mode: 0o600 })
    rmSync(target, { force: true })
    this.counters.whiteouts++
  }

  /**
   * Create a new object at `rel` in the upper layer with `make(hostPath)`. When the upper layer holds a
   * whiteout there, the object is made in the work directory and moved over it, so the name is never
   * missing and never shows the lower object; a directory made over a whiteout is opaque, since the
   * lower directory it replaces must not show through. Returns whether a whiteout was replaced.
   */
  async placeLocked(rel: string, isDir: boolean, make: (path: string) => Promise<void>): Promise<boolean> {
    const upper = this.requireUpper()
    const [dir, name] = splitPath(rel)
    await this.ensureUpperDirLocked(this.resolver.get(dir))
    const target = upper.path(rel)
    const marker = upper.path(joinPath(dir, WHITEOUT_PREFIX + name))
    const charWhiteout = isWhiteoutAt(target)
    const markerWhiteout = !charWhiteout && existsAt(marker)
    if (!charWhiteout && !markerWhiteout) {
      await make(target)
      return false
    }
    const tmp = this.stager.tempPath()
    await make(tmp)
    try {
      if (isDir) await lsetxattr(tmp, OPAQUE_XATTRS[0], 'y')
      if (isDir && charWhiteout) {
        await exchange(tmp, target)
        rmSync(tmp, { force: true })
      } else {
        renameSync(tmp, target)
      }
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true })
      throw err
    }
    if (markerWhiteout) unlinkSync(marker)
    return true
  }
}

/** Swap two paths atomically; where renameat2 is missing, fall back to remove-then-rename. */
async function exchange(a: string, b: string): Promise<void> {
  try {
    await renameat2(a, b, RENAME_EXCHANGE)
  } catch (err) {
    if (!isCode(err, 'EINVAL', 'ENOSYS')) throw err
    rmSync(b, { force: true })
    renameSync(a, b)
  }
}

// Synchronous probes of the upper layer on the create path, for the reason given in resolver.ts.
function isWhiteoutAt(path: string): boolean {
  const st = lstatSync(path, { throwIfNoEntry: false })
  return st !== undefined && isWhiteoutStat(st)
}

function existsAt(path: string): boolean {
  try {
    return lstatSync(path, { throwIfNoEntry: false }) !== undefined
  } catch (err) {
    if (isCode(err, 'ENAMETOOLONG')) return false
    throw err
  }
}
