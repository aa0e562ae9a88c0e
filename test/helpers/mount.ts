// Mounting helpers for tests: kernel overlayfs (`mount -t overlay`) and FUSE drivers (a command that returns
// once the mount is live), plus a robust unmount that never leaves a mount or a stuck FUSE connection behind.
//
// Rules kept here:
//  - every child command runs with a timeout (and is killed, by its own PID, when it runs over);
//  - a FUSE mount's connection number (the minor of its device number, mountinfo field 3) is read BEFORE
//    unmounting, so a stuck connection can be aborted through /sys/fs/fuse/connections/<N>/abort;
//  - the only processes ever killed are ones these helpers started: the mount command itself, and the
//    daemon it forked (found by the unique mount point on its command line, and killed by PID).
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { resolve } from 'node:path'
import { describeCmd as describe, runCmd } from './exec.js'
import { decodeMountPath, makeTempDir, removeTempDir } from './tmp.js'

/** The installed `layerfs` command, bin/layerfs: a shell script that starts the daemon itself (one
 *  Node start); what container tools run, and what the mount tests run. */
export const LAYERFS_COMMAND = resolve(import.meta.dirname, '../../bin/layerfs')

export { runCmd } from './exec.js'
export type { CmdResult } from './exec.js'

// ---------------------------------------------------------------------------------------------------------
// /proc/self/mountinfo

export interface MountInfo {
  id: number
  parent: number
  /** "major:minor" */
  dev: string
  root: string
  mountPoint: string
  options: string
  fstype: string
  source: string
  superOptions: string
}

export function readMountInfo(): MountInfo[] {
  const out: MountInfo[] = []
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    if (!line) continue
    const f = line.split(' ')
    const sep = f.indexOf('-', 6)
    if (sep < 0) continue
    out.push({
      id: Number(f[0]),
      parent: Number(f[1]),
      dev: f[2] ?? '',
      root: decodeMountPath(f[3] ?? ''),
      mountPoint: decodeMountPath(f[4] ?? ''),
      options: f[5] ?? '',
      fstype: f[sep + 1] ?? '',
      source: decodeMountPath(f[sep + 2] ?? ''),
      superOptions: f[sep + 3] ?? '',
    })
  }
  return out
}

/** The topmost mount at exactly `mnt`, if any. */
export function findMount(mnt: string): MountInfo | undefined {
  const p = resolve(mnt)
  const all = readMountInfo().filter((m) => m.mountPoint === p)
  return all[all.length - 1]
}

export function isMounted(mnt: string): boolean {
  return findMount(mnt) !== undefined
}

// ---------------------------------------------------------------------------------------------------------
// availability

export interface Availability {
  ok: boolean
  reason?: string
}

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '/usr/bin:/bin')
    .split(':')
    .some((d) => d !== '' && existsSync(`${d}/${cmd}`))
}

/** Can this process mount FUSE filesystems (root, /dev/fuse, fusermount3)? */
export function fuseAvailable(): Availability {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return { ok: false, reason: 'not running as root' }
  try {
    if (!statSync('/dev/fuse').isCharacterDevice()) return { ok: false, reason: '/dev/fuse is not a character device' }
  } catch {
    return { ok: false, reason: '/dev/fuse is missing' }
  }
  if (!onPath('fusermount3')) return { ok: false, reason: 'fusermount3 is not installed' }
  return { ok: true }
}

/** Can this process mount kernel overlayfs? */
export function overlayAvailable(): Availability {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return { ok: false, reason: 'not running as root' }
  let fs = ''
  try {
    fs = readFileSync('/proc/filesystems', 'utf8')
  } catch {
    /* ignore */
  }
  if (!/\boverlay\b/.test(fs) && !existsSync('/sys/module/overlay'))
    return { ok: false, reason: 'the kernel has no overlay filesystem (modprobe overlay?)' }
  return { ok: true }
}

// ---------------------------------------------------------------------------------------------------------
// mounting

export interface MountHandle {
  mnt: string
  kind: 'overlay' | 'fuse'
  fstype: string
  /** "major:minor" of the mount, read right after mounting (for FUSE, minor = connection number). */
  dev: string
  /** PIDs of daemon processes this handle's mount command forked (found by mount point on the cmdline). */
  daemonPids: number[]
  /** Temp dirs created for the mount (e.g. the empty extra lower of a read-only overlay); removed on unmount. */
  extraDirs: string[]
  unmounted: boolean
}

/** Mounts made by these helpers and not yet unmounted, by mount point: unmount(path) finds the handle here. */
const active = new Map<string, MountHandle>()

/** Handles of live mounts made by this process through these helpers. */
export function activeMounts(): MountHandle[] {
  return [...active.values()]
}

export interface OverlayOptions {
  lowers: string[]
  upper?: string
  work?: string
  mnt: string
  /** Extra -o options, e.g. ['redirect_dir=on']. */
  options?: string[]
  timeoutMs?: number
}

function checkOptPath(p: string): string {
  if (/[,:\\\n]/.test(p)) throw new Error(`path not usable in a mount option: ${JSON.stringify(p)}`)
  return resolve(p)
}

/** Mount kernel overlayfs. Without `upper` the mount is read-only (an empty extra lower is added if needed). */
export async function mountOverlay(o: OverlayOptions): Promise<MountHandle> {
  const mnt = resolve(o.mnt)
  if (isMounted(mnt)) throw new Error(`${mnt} is already a mount point`)
  const extraDirs: string[] = []
  const lowers = o.lowers.map(checkOptPath)
  if (lowers.length === 0) throw new Error('mountOverlay: at least one lower dir is needed')
  if (o.upper === undefined && lowers.length < 2) {
    // a read-only overlay needs two lowers: add an empty one at the bottom
    const empty = await makeTempDir('empty-lower')
    extraDirs.push(empty)
    lowers.push(empty)
  }
  const opts = [`lowerdir=${lowers.join(':')}`]
  if (o.upper !== undefined) {
    if (o.work === undefined) throw new Error('mountOverlay: upper needs work')
    opts.push(`upperdir=${checkOptPath(o.upper)}`, `workdir=${checkOptPath(o.work)}`)
  }
  opts.push(...(o.options ?? []))
  const r = await runCmd('mount', ['-t', 'overlay', 'overlay', '-o', opts.join(','), mnt], {
    timeoutMs: o.timeoutMs ?? 10_000,
  })
  const m = findMount(mnt)
  if (r.code !== 0 || r.timedOut || m === undefined || m.fstype !== 'overlay') {
    if (m !== undefined && m.fstype === 'overlay') await runCmd('umount', ['-l', mnt])
    for (const d of extraDirs) await removeTempDir(d).catch(() => undefined)
    throw new Error(`kernel overlay mount failed: ${describe(r)}`)
  }
  const h: MountHandle = { mnt, kind: 'overlay', fstype: m.fstype, dev: m.dev, daemonPids: [], extraDirs, unmounted: false }
  active.set(mnt, h)
  return h
}

function listPids(): number[] {
  try {
    return readdirSync('/proc')
      .filter((n) => /^\d+$/.test(n))
      .map(Number)
  } catch {
    return []
  }
}

function cmdlineOf(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
  } catch {
    return undefined
  }
}

/** Live processes with an argument that contains `text` (a test's unique temp dir: the daemons it
 *  started there, wherever they run). */
export function processesNaming(text: string): number[] {
  return listPids().filter((pid) => pidAlive(pid) && (cmdlineOf(pid) ?? []).some((a) => a.includes(text)))
}

function pidAlive(pid: number): boolean {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // field 3 is the state; a zombie has exited
    const state = st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3)
    return state !== 'Z' && state !== 'X'
  } catch {
    return false
  }
}

export interface FuseMountOptions {
  timeoutMs?: number
  /** the command's environment (default: this process's) */
  env?: NodeJS.ProcessEnv
}

/**
 * Run `argv` (a command that returns once the FUSE mount at `mnt` is live), then check /proc/self/mountinfo.
 * Throws with the command's output when it fails, times out, or "succeeds" without a mount.
 */
export async function mountFuse(argv: string[], mnt: string, o: FuseMountOptions = {}): Promise<MountHandle> {
  const target = resolve(mnt)
  if (isMounted(target)) throw new Error(`${target} is already a mount point`)
  const [cmd, ...args] = argv
  if (cmd === undefined) throw new Error('mountFuse: empty argv')
  const before = new Set(listPids())
  let spawned: number | undefined
  const r = await runCmd(cmd, args, {
    timeoutMs: o.timeoutMs ?? 15_000,
    untilExit: true,
    onSpawn: (pid) => (spawned = pid),
    env: o.env,
  })
  // the daemon the command forked: a new process whose command line names our (unique) mount point
  const daemonPids = listPids().filter(
    (pid) => !before.has(pid) && pid !== spawned && pidAlive(pid) && (cmdlineOf(pid) ?? []).some((a) => resolve(a) === target || a === mnt),
  )
  let m = findMount(target)
  if (r.code === 0 && !r.timedOut && m === undefined) {
    // the command said it is mounted: allow the mount table a moment
    for (let i = 0; i < 20 && m === undefined; i++) {
      await sleep(50)
      m = findMount(target)
    }
  }
  const h: MountHandle = {
    mnt: target,
    kind: 'fuse',
    fstype: m?.fstype ?? '',
    dev: m?.dev ?? '',
    daemonPids,
    extraDirs: [],
    unmounted: false,
  }
  if (r.code !== 0 || r.timedOut || m === undefined || !m.fstype.startsWith('fuse')) {
    // clean up whatever half-started
    if (m !== undefined) await unmount(h).catch(() => undefined)
    else await reapDaemons(h)
    const why =
      r.code === 0 && !r.timedOut
        ? `\`${r.cmd}\` exited 0 but ${target} is not a FUSE mount in /proc/self/mountinfo (${m?.fstype ?? 'no mount'})`
        : describe(r)
    throw new Error(`FUSE mount failed: ${why}`)
  }
  active.set(target, h)
  return h
}

// ---------------------------------------------------------------------------------------------------------
// unmounting

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

function abortFuseConnection(dev: string): boolean {
  const minor = dev.split(':')[1]
  if (minor === undefined || minor === '') return false
  const f = `/sys/fs/fuse/connections/${minor}/abort`
  try {
    // The control filesystem is not mounted on every machine (it was not on this one once).
    if (!existsSync('/sys/fs/fuse/connections/' + minor)) {
      try {
        execFileSync('mount', ['-t', 'fusectl', 'none', '/sys/fs/fuse/connections'], { stdio: 'ignore', timeout: 5_000 })
      } catch {
        // mounted already (the connection is gone), or not root: the write below says
      }
    }
    writeFileSync(f, '1')
    return true
  } catch {
    return false
  }
}

async function reapDaemons(h: MountHandle): Promise<void> {
  // after the unmount the daemon reads ENODEV and exits on its own; give it a moment, then kill by PID
  for (const pid of h.daemonPids) {
    for (let i = 0; i < 50 && pidAlive(pid); i++) await sleep(20)
    for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
      if (!pidAlive(pid)) break
      try {
        process.kill(pid, sig)
      } catch {
        /* gone */
      }
      for (let i = 0; i < 25 && pidAlive(pid); i++) await sleep(20)
    }
  }
}

export interface UnmountOptions {
  timeoutMs?: number
}

/**
 * Unmount robustly. FUSE: `fusermount3 -u`, then `fusermount3 -uz`; when unmounting times out (the daemon is
 * stuck) abort the connection via /sys/fs/fuse/connections/<minor>/abort and retry lazily; then wait for the
 * daemon to exit. Kernel overlay: `umount`, then `umount -l`. Accepts a handle or a bare mount point.
 * Throws if the mount is still there at the end.
 */
export async function unmount(target: MountHandle | string, o: UnmountOptions = {}): Promise<void> {
  const timeoutMs = o.timeoutMs ?? 10_000
  const mnt = resolve(typeof target === 'string' ? target : target.mnt)
  const h: MountHandle | undefined = typeof target === 'string' ? active.get(mnt) : target
  const problems: string[] = []
  /** FUSE connections unmounted here */
  const fuseDevs = new Set<string>()
  for (let round = 0; round < 4; round++) {
    const m = findMount(mnt)
    if (m === undefined) break
    const dev = m.dev // read BEFORE unmounting: it names the FUSE connection
    if (m.fstype.startsWith('fuse')) {
      fuseDevs.add(dev)
      let r = await runCmd('fusermount3', ['-u', mnt], { timeoutMs })
      if (r.code === 0 && !isMounted(mnt)) continue
      problems.push(describe(r))
      if (r.timedOut) abortFuseConnection(dev)
      r = await runCmd('fusermount3', ['-uz', mnt], { timeoutMs })
      if (r.code === 0 && !isMounted(mnt)) continue
      problems.push(describe(r))
      abortFuseConnection(dev)
      r = await runCmd('umount', ['-l', mnt], { timeoutMs })
      if (r.code !== 0) problems.push(describe(r))
    } else {
      let r = await runCmd('umount', [mnt], { timeoutMs })
      if (r.code === 0 && !isMounted(mnt)) continue
      problems.push(describe(r))
      r = await runCmd('umount', ['-l', mnt], { timeoutMs })
      if (r.code !== 0) problems.push(describe(r))
    }
  }
  // A FUSE connection normally disappears with its mount. One that outlives it is held by requests the daemon
  // does not answer (a stuck daemon) or by a lazily detached mount still in use: abort it, so those requests
  // fail and the daemon exits -- unless the same connection is still mounted elsewhere. (Only connections
  // unmounted in this call: a minor number seen earlier may belong to somebody else's mount by now.)
  for (const dev of fuseDevs) {
    const conn = `/sys/fs/fuse/connections/${dev.split(':')[1] ?? ''}`
    for (let i = 0; i < 25 && existsSync(conn); i++) await sleep(20)
    if (existsSync(conn) && !readMountInfo().some((x) => x.dev === dev)) abortFuseConnection(dev)
  }
  if (h !== undefined) {
    if (h.kind === 'fuse') await reapDaemons(h)
    for (const d of h.extraDirs.splice(0)) await removeTempDir(d).catch(() => undefined)
    h.unmounted = !isMounted(mnt)
    if (h.unmounted && active.get(mnt) === h) active.delete(mnt)
  }
  if (isMounted(mnt)) throw new Error(`could not unmount ${mnt}: ${problems.join('; ')}`)
}

// ---------------------------------------------------------------------------------------------------------
// guaranteed cleanup

/** Mount, run `fn`, and always unmount (also when `fn` throws). The unmount error never hides fn's error. */
export async function withMount<T>(mount: () => Promise<MountHandle>, fn: (h: MountHandle) => Promise<T>): Promise<T> {
  const h = await mount()
  let result: T
  try {
    result = await fn(h)
  } catch (e) {
    await unmount(h).catch(() => undefined)
    throw e
  }
  await unmount(h)
  return result
}

/**
 * For vitest: `const mounts = new MountSet(); afterEach(() => mounts.unmountAll())`, and register every mount
 * with `mounts.add(await mountFuse(...))`. unmountAll unmounts in reverse order and throws the first error
 * after trying all of them.
 */
export class MountSet {
  private readonly handles: MountHandle[] = []
  add(h: MountHandle): MountHandle {
    this.handles.push(h)
    return h
  }
  async unmount(h: MountHandle): Promise<void> {
    const i = this.handles.indexOf(h)
    if (i >= 0) this.handles.splice(i, 1)
    await unmount(h)
  }
  async unmountAll(): Promise<void> {
    let first: unknown
    while (this.handles.length > 0) {
      const h = this.handles.pop() as MountHandle
      try {
        await unmount(h)
      } catch (e) {
        first ??= e
      }
    }
    if (first !== undefined) throw first
  }
}
