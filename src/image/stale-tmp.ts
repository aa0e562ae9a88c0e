/**
 * Work dirs under `STORE/tmp/` and their cleanup. A work dir is named `<kind>-<pid>-<random>` by the
 * process that owns it, so one left by a crashed import can be told from one in use:
 *   - named with the pid of a process that no longer runs: removed;
 *   - named with a running pid (this process included): kept, however old, since a live import of a
 *     big layer may take hours (a pid reused by an unrelated process keeps its dir until that ends);
 *   - without a pid (older layerfs versions, strays): removed once older than `maxAgeMs`.
 * Pids are only meaningful inside one pid namespace; a store shared across containers should not be
 * swept by two namespaces' imports at once.
 */
import { chmod, lstat, readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { isErrno } from '../layers/whiteout.js'

export const STALE_TMP_AGE_MS = 60 * 60 * 1000

/** The mkdtemp prefix for a work dir of this process. */
export function workDirPrefix(parent: string, kind: string): string {
  return join(parent, `${kind}-${process.pid}-`)
}

function pidRuns(pid: number): boolean {
  if (pid === process.pid) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return !isErrno(err, 'ESRCH') // EPERM: it runs, as another user
  }
}

/** Removes the stale entries of `dir`; returns their names. Never fails: a sweep is best effort. */
export async function sweepStaleTmp(dir: string, maxAgeMs = STALE_TMP_AGE_MS, now = Date.now()): Promise<string[]> {
  let names: string[]
  try {
    names = await readdir(dir)
  } catch {
    return []
  }
  const removed: string[] = []
  for (const name of names) {
    const m = /^\.?[a-z]+-([0-9]+)-/.exec(name)
    try {
      if (m) {
        if (pidRuns(Number(m[1]))) continue
      } else if (now - (await lstat(join(dir, name))).mtimeMs < maxAgeMs) continue
      await removeWorkDir(join(dir, name))
      removed.push(name)
    } catch {
      // Gone already (another sweep) or not ours to remove: leave it.
    }
  }
  return removed
}

/**
 * Removes a work dir and everything in it. A layer unpacked by a user without CAP_DAC_OVERRIDE may
 * hold directories its owner may not write in (mode 0555, as images ship /usr/bin): those are made
 * writable, top down, and the removal tried again.
 */
export async function removeWorkDir(dir: string): Promise<void> {
  try {
    await rm(dir, { recursive: true, force: true })
  } catch (err) {
    if (!isErrno(err, 'EACCES', 'EPERM')) throw err
    await openUp(dir)
    await rm(dir, { recursive: true, force: true })
  }
}

async function openUp(dir: string): Promise<void> {
  const st = await lstat(dir)
  if (!st.isDirectory()) return
  await chmod(dir, 0o700)
  for (const name of await readdir(dir)) await openUp(join(dir, name))
}
