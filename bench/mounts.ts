/**
 * Mounting and, above all, unmounting: every mount the bench makes is registered here until it is gone, so
 * `finally` blocks and the Ctrl-C handler can always take it down. FUSE: `fusermount3 -u`, then `-uz`,
 * aborting a stuck connection; kernel overlay: `umount`, then `umount -l`. Daemons are killed only by the
 * PID found for our own mount point, and only when they do not exit by themselves after the unmount.
 */
import { existsSync, writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { describeCmd, runCmd, sleep } from './exec.js'
import { daemonPidsFor, findMount, listPids, pidAlive, readMounts } from './proc.js'

export interface MountHandle {
  mnt: string
  kind: 'overlay' | 'fuse'
  dev: string
  /** the FUSE daemon serving this mount (undefined for kernel overlay) */
  daemonPid: number | undefined
}

/** Mounts made and not yet unmounted. */
export const activeMounts = new Set<MountHandle>()

const MOUNT_TIMEOUT_MS = 60_000
const UNMOUNT_TIMEOUT_MS = 20_000

export function checkOptPath(p: string): string {
  if (/[,:\\\n]/.test(p)) throw new Error(`path not usable in a mount option: ${JSON.stringify(p)}`)
  return resolve(p)
}

export async function mountKernelOverlay(optionString: string, mnt: string): Promise<MountHandle> {
  const target = resolve(mnt)
  if (findMount(target)) throw new Error(`${target} is already a mount point`)
  const r = await runCmd('mount', ['-t', 'overlay', 'overlay', '-o', optionString, target], { timeoutMs: MOUNT_TIMEOUT_MS })
  const m = findMount(target)
  if (m && m.fstype === 'overlay') {
    const h: MountHandle = { mnt: target, kind: 'overlay', dev: m.dev, daemonPid: undefined }
    activeMounts.add(h)
    if (r.code === 0 && !r.timedOut) return h
    await unmount(h).catch(() => undefined)
  }
  throw new Error(`kernel overlay mount failed: ${describeCmd(r)}`)
}

/** Run `argv`, a command that returns once the FUSE mount at `mnt` is live; find the daemon it left. */
export async function mountFuseCommand(argv: string[], mnt: string): Promise<MountHandle> {
  const target = resolve(mnt)
  if (findMount(target)) throw new Error(`${target} is already a mount point`)
  const [cmd, ...args] = argv
  if (cmd === undefined) throw new Error('empty mount command')
  const before = new Set(listPids())
  const r = await runCmd(cmd, args, { timeoutMs: MOUNT_TIMEOUT_MS, untilExit: true })
  let m = findMount(target)
  for (let i = 0; i < 40 && r.code === 0 && !r.timedOut && m === undefined; i++) {
    await sleep(25)
    m = findMount(target)
  }
  const pids = daemonPidsFor(target).filter((p) => !before.has(p))
  const h: MountHandle = { mnt: target, kind: 'fuse', dev: m?.dev ?? '', daemonPid: pids[0] }
  if (m !== undefined || pids.length > 0) activeMounts.add(h)
  if (r.code !== 0 || r.timedOut || m === undefined || !m.fstype.startsWith('fuse')) {
    await unmount(h).catch(() => undefined)
    for (const pid of pids.slice(1)) await reap(pid)
    const why = r.code === 0 && !r.timedOut ? `\`${r.cmd}\` exited 0 but ${target} is not a FUSE mount` : describeCmd(r)
    throw new Error(`FUSE mount failed: ${why}`)
  }
  return h
}

function abortConnection(dev: string): void {
  const minor = dev.split(':')[1]
  if (!minor) return
  try { writeFileSync(`/sys/fs/fuse/connections/${minor}/abort`, '1') } catch { /* gone */ }
}

/** Wait for `pid` to exit by itself after its unmount, then TERM, then KILL (it is one of ours). */
async function reap(pid: number): Promise<void> {
  for (let i = 0; i < 100 && pidAlive(pid); i++) await sleep(20)
  for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
    if (!pidAlive(pid)) return
    try { process.kill(pid, sig) } catch { return }
    for (let i = 0; i < 50 && pidAlive(pid); i++) await sleep(20)
  }
}

/** Unmount and reap. Throws only if the mount is still there at the end. */
export async function unmount(h: MountHandle): Promise<void> {
  const problems: string[] = []
  for (let round = 0; round < 3; round++) {
    const m = findMount(h.mnt)
    if (m === undefined || (h.dev !== '' && m.dev !== h.dev)) break
    if (m.fstype.startsWith('fuse')) {
      let r = await runCmd('fusermount3', ['-u', h.mnt], { timeoutMs: UNMOUNT_TIMEOUT_MS })
      if (r.code === 0 && !findMount(h.mnt)) break
      problems.push(describeCmd(r))
      if (r.timedOut) abortConnection(m.dev)
      r = await runCmd('fusermount3', ['-uz', h.mnt], { timeoutMs: UNMOUNT_TIMEOUT_MS })
      if (r.code === 0 && !findMount(h.mnt)) { abortIfOrphan(m.dev); break }
      problems.push(describeCmd(r))
      abortConnection(m.dev)
      r = await runCmd('umount', ['-l', h.mnt], { timeoutMs: UNMOUNT_TIMEOUT_MS })
      if (r.code !== 0) problems.push(describeCmd(r))
    } else {
      let r = await runCmd('umount', [h.mnt], { timeoutMs: UNMOUNT_TIMEOUT_MS })
      if (r.code === 0 && !findMount(h.mnt)) break
      problems.push(describeCmd(r))
      r = await runCmd('umount', ['-l', h.mnt], { timeoutMs: UNMOUNT_TIMEOUT_MS })
      if (r.code !== 0) problems.push(describeCmd(r))
    }
  }
  if (h.daemonPid !== undefined) await reap(h.daemonPid)
  if (h.kind === 'fuse' && h.dev) abortIfOrphan(h.dev)
  const still = findMount(h.mnt)
  if (still && (h.dev === '' || still.dev === h.dev)) throw new Error(`could not unmount ${h.mnt}: ${problems.join('; ')}`)
  activeMounts.delete(h)
}

/** A lazily detached FUSE connection that no mount uses any more is aborted, so its daemon can exit. */
function abortIfOrphan(dev: string): void {
  const minor = dev.split(':')[1]
  if (minor && existsSync(`/sys/fs/fuse/connections/${minor}`) && !readMounts().some((x) => x.dev === dev)) abortConnection(dev)
}

/** Unmount everything still registered (newest first). Returns the errors, never throws. */
export async function unmountAll(): Promise<string[]> {
  const errors: string[] = []
  for (const h of [...activeMounts].reverse()) {
    try { await unmount(h) } catch (e) { errors.push((e as Error).message) }
  }
  return errors
}
