import { renameSync, rmdir, rmdirSync } from 'node:fs'
import type { HostPath } from '../sys/names.js'
import { listNamesSync } from '../sys/native.js'
import { isCode } from './errors.js'

/** How long after the last directory set aside the rest are removed. */
const IDLE_MS = 250
/** At most this many wait; beyond, an rmdir is made at once. */
const PENDING_MAX = 8192

/**
 * Directories removed from the upper layer, set aside and deleted when the daemon is idle. On this
 * machine's ext4 (mounted with `discard`) an rmdir costs about 200 µs and a rename 12: `rm -rf` of
 * a tree made through the mount paid the rmdir in every request. An empty upper directory is
 * renamed into the work directory's scratch area instead (its name is gone at once, as after an
 * rmdir, and its parent's link count and times change the same way), and removed on the thread
 * pool once no directory was set aside for IDLE_MS, or at the daemon's exit; the scratch area is
 * emptied at every mount besides. fuse-overlayfs renames removed directories into its work
 * directory too (and leaves them there until its next mount).
 */
export class Trash {
  readonly #tempPath: () => HostPath
  readonly #pending: HostPath[] = []
  #timer: NodeJS.Timeout | undefined
  /** The deletion running on the thread pool. */
  #draining: Promise<void> | undefined

  /** `tempPath`: a fresh name in the scratch area, on the upper layer's filesystem. */
  constructor(tempPath: () => HostPath) {
    this.#tempPath = tempPath
  }

  /** Directories waiting to be deleted. */
  get pending(): number {
    return this.#pending.length
  }

  /** Removes the directory at `path` as rmdir(2) would, throwing its errors; false, leaving it, when
   *  it is not empty. */
  removeDir(path: HostPath): boolean {
    if (this.#pending.length >= PENDING_MAX) return removedIfEmpty(path)
    let names: string[]
    try {
      names = listNamesSync(path)
    } catch (err) {
      // Unreadable (a directory of mode 0, to a daemon without CAP_DAC_OVERRIDE): rmdir needs no
      // read permission on it, so it goes the usual way.
      if (isCode(err, 'EACCES', 'EPERM')) return removedIfEmpty(path)
      throw err
    }
    if (names.length > 0) return false
    const aside = this.#tempPath()
    try {
      renameSync(path, aside)
    } catch (err) {
      // Moving a directory to another parent rewrites its '..': it needs write permission on the
      // directory itself, which rmdir does not (a directory of mode 0555, to a daemon without
      // CAP_DAC_OVERRIDE).
      if (isCode(err, 'EACCES', 'EPERM')) return removedIfEmpty(path)
      throw err
    }
    this.#pending.push(aside)
    if (this.#timer) this.#timer.refresh()
    else this.#timer = setTimeout(() => this.#drain(), IDLE_MS).unref()
    return true
  }

  /** Deletes what waits, now, and lets a deletion running on the thread pool end (Union.close). */
  async close(): Promise<void> {
    this.emptySync()
    await this.#draining
  }

  /** Deletes what waits, now (the daemon's exit). */
  emptySync(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    for (const path of this.#pending.splice(0)) {
      try {
        rmdirSync(path)
      } catch {
        // left to the next mount, which empties the scratch area
      }
    }
  }

  #drain(): void {
    this.#timer = undefined
    this.#draining ??= (async () => {
      for (let path = this.#pending.shift(); path !== undefined; path = this.#pending.shift()) {
        await new Promise<void>((done) => rmdir(path, () => done())) // an error: left to the next mount
      }
    })().finally(() => { this.#draining = undefined })
  }
}

/** rmdir, false when the directory still holds something (to a user, perhaps only whiteouts). */
export function removedIfEmpty(path: HostPath): boolean {
  try {
    rmdirSync(path)
    return true
  } catch (err) {
    if (isCode(err, 'ENOTEMPTY', 'EEXIST')) return false
    throw err
  }
}
