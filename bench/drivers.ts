/**
 * The storage drivers compared: a plain directory (the floor), kernel overlayfs, fuse-overlayfs and layerfs.
 * A driver opens an instance over the fixture: a fresh mount with a fresh upper/work dir (or, for the plain
 * directory, the merged copy itself, or a scratch copy of what a modifying workload touches), and closes it
 * again: unmount, reap the daemon, set the scratch dirs aside for deletion after the run (see retireTree).
 */
import { existsSync, mkdirSync, renameSync, statSync, statfsSync } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describeCmd, mustRun, runCmd } from './exec.js'
import type { Fixture } from './fixture.js'
import { type MountHandle, checkOptPath, mountFuseCommand, mountKernelOverlay, unmount } from './mounts.js'

export type DriverName = 'plain' | 'kernel' | 'fuse-overlayfs' | 'layerfs'
export const DRIVER_NAMES: DriverName[] = ['plain', 'kernel', 'fuse-overlayfs', 'layerfs']

export interface Instance {
  driver: DriverName
  /** where workloads operate */
  root: string
  /** the FUSE daemon process, for CPU time and peak RSS */
  daemonPid: number | undefined
  close(): Promise<void>
}

export interface OpenOptions {
  /** a scratch directory private to this instance (created here, set aside on close) */
  scratch: string
  /** The workload modifies the tree. For the plain driver: these merged-view paths are copied into a scratch
   * root first ('*small' = everything except the big files). Overlay drivers always get a fresh upper. */
  mutates: boolean
  needs: string[]
}

export interface Driver {
  name: DriverName
  /** why this driver cannot run here, or undefined when it can */
  unavailable(): Promise<string | undefined>
  open(fx: Fixture, o: OpenOptions): Promise<Instance>
}

const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0

async function onPath(cmd: string): Promise<boolean> {
  const r = await runCmd('sh', ['-c', `command -v ${cmd}`], { timeoutMs: 5_000 })
  return r.code === 0
}

function fuseMissing(): string | undefined {
  if (!isRoot()) return 'not running as root'
  try {
    if (!statSync('/dev/fuse').isCharacterDevice()) return '/dev/fuse is not a character device'
  } catch {
    return '/dev/fuse is missing'
  }
  return undefined
}

async function removeTree(p: string): Promise<void> {
  if (existsSync(p)) await mustRun('rm', ['-rf', '--one-file-system', p], { timeoutMs: 600_000 })
}

/**
 * Set an instance's scratch tree aside instead of deleting it: deleted later, in one go, after the
 * measurements if space allows. On ext4 without a journal, inodes freed in the last minutes slow
 * every allocation in their block group (see spreadInstances); a deleted tree would also leave its
 * group nearly empty of directories, the kind the allocator picks for the next instance's.
 */
async function retireTree(p: string): Promise<void> {
  if (!existsSync(p)) return
  const trash = join(dirname(p), '.retired')
  if (freeFraction(dirname(p)) < RETIRE_MIN_FREE) await removeTree(trash)
  mkdirSync(trash, { recursive: true })
  try {
    renameSync(p, join(trash, `${basename(p)}-${Date.now()}`))
  } catch {
    await removeTree(p) // still a mount point (EBUSY), say: rm -rf --one-file-system leaves it be
  }
}

/**
 * Give every instance a block group of its own: mark the work dir a top directory for ext4's
 * Orlov allocator (`chattr +T`), so each scratch dir made in it goes to a little-used flex group
 * and its files are allocated there. ext4 without a journal skips, at every inode allocation,
 * each free inode of the group freed in the last 60 s, or in the last 360 s while its inode table
 * block is unwritten (`recently_deleted`, fs/ext4/ialloc.c), one at a time, from the group's
 * first free inode on. A run that deletes 10,000 files (create+delete does, the plain driver's
 * copies, the trees deleted after a run) made every create in the same group for minutes after
 * it cost up to a millisecond of system time: 10,000 creates took 5.4-6.4 s in a plain directory
 * after such a run, and 0.9-1.4 s in a dir spread this way. On other filesystems the flag is
 * refused or means nothing; the result is logged either way.
 */
export async function spreadInstances(workDir: string, log: (line: string) => void): Promise<boolean> {
  const r = await runCmd('chattr', ['+T', workDir], { timeoutMs: 10_000 })
  if (r.code === 0 && !r.timedOut) return true
  log(`work dir: could not mark it a top directory (${describeCmd(r)}): creates may pay for inodes freed by earlier samples`)
  return false
}

/** Below this fraction of free space, retired trees are deleted before another one is set aside. */
const RETIRE_MIN_FREE = 0.15

function freeFraction(dir: string): number {
  const st = statfsSync(dir)
  return st.bavail / st.blocks
}

/** The layer stack as mount options, with a fresh upper and work dir under `scratch`. */
function stackOptions(fx: Fixture, scratch: string): { options: string; mnt: string } {
  const upper = join(scratch, 'upper')
  const work = join(scratch, 'work')
  const mnt = join(scratch, 'mnt')
  for (const d of [upper, work, mnt]) mkdirSync(d, { recursive: true })
  const lowers = fx.lowers.map(checkOptPath).join(':')
  return { options: `lowerdir=${lowers},upperdir=${checkOptPath(upper)},workdir=${checkOptPath(work)}`, mnt }
}

function mountedInstance(driver: DriverName, h: MountHandle, scratch: string): Instance {
  return {
    driver,
    root: h.mnt,
    daemonPid: h.daemonPid,
    async close() {
      try {
        await unmount(h)
      } finally {
        await retireTree(scratch)
      }
    },
  }
}

async function guarded(scratch: string, mount: () => Promise<MountHandle>): Promise<MountHandle> {
  try {
    return await mount()
  } catch (e) {
    await removeTree(scratch).catch(() => undefined)
    throw e
  }
}

export const plainDriver: Driver = {
  name: 'plain',
  async unavailable() { return undefined },
  async open(fx, o) {
    if (!o.mutates) return { driver: 'plain', root: fx.plain, daemonPid: undefined, async close() {} }
    const root = join(o.scratch, 'root')
    mkdirSync(root, { recursive: true })
    try {
      if (o.needs.includes('*small')) {
        await mustRun('sh', ['-c', `cd "$1" && for e in * .[!.]*; do [ -e "$e" ] || continue; [ "$e" = "${fx.bigDir}" ] && continue; cp -a "$e" "$2/"; done`, 'sh', fx.plain, root], { timeoutMs: 600_000 })
      }
      for (const rel of o.needs.filter((n) => n !== '*small')) {
        mkdirSync(join(root, dirname(rel)), { recursive: true })
        await mustRun('cp', ['-a', join(fx.plain, rel), join(root, rel)], { timeoutMs: 600_000 })
      }
    } catch (e) {
      await removeTree(o.scratch).catch(() => undefined)
      throw e
    }
    return { driver: 'plain', root, daemonPid: undefined, close: () => retireTree(o.scratch) }
  },
}

export const kernelDriver: Driver = {
  name: 'kernel',
  async unavailable() {
    if (!isRoot()) return 'not running as root'
    let fs = ''
    try { fs = (await import('node:fs')).readFileSync('/proc/filesystems', 'utf8') } catch { /* ignore */ }
    if (!/\boverlay\b/.test(fs)) {
      await runCmd('modprobe', ['overlay'], { timeoutMs: 10_000 })
      try { fs = (await import('node:fs')).readFileSync('/proc/filesystems', 'utf8') } catch { /* ignore */ }
      if (!/\boverlay\b/.test(fs)) return 'the kernel has no overlay filesystem'
    }
    return undefined
  },
  async open(fx, o) {
    const { options, mnt } = stackOptions(fx, o.scratch)
    const h = await guarded(o.scratch, () => mountKernelOverlay(mountOptionsFor('kernel', options), mnt))
    return mountedInstance('kernel', h, o.scratch)
  },
}

export const fuseOverlayfsDriver: Driver = {
  name: 'fuse-overlayfs',
  async unavailable() {
    const why = fuseMissing()
    if (why) return why
    if (!(await onPath('fuse-overlayfs'))) return 'fuse-overlayfs is not installed'
    if (!(await onPath('fusermount3'))) return 'fusermount3 is not installed'
    return undefined
  },
  async open(fx, o) {
    const { options, mnt } = stackOptions(fx, o.scratch)
    const h = await guarded(o.scratch, () => mountFuseCommand(['fuse-overlayfs', '-o', mountOptionsFor('fuse-overlayfs', options), mnt], mnt))
    return mountedInstance('fuse-overlayfs', h, o.scratch)
  },
}

/** bin/layerfs of this checkout (the installed command; from dist/bench/ or from bench/ when run as
 *  source), or $LAYERFS_BIN. */
export function layerfsBin(): string {
  if (process.env.LAYERFS_BIN) return process.env.LAYERFS_BIN
  const here = dirname(fileURLToPath(import.meta.url))
  const candidates = [resolve(here, '../../bin/layerfs'), resolve(here, '../bin/layerfs')]
  return candidates.find((c) => existsSync(c)) ?? candidates[0]!
}

/** The command line that runs `bin`: a script of Node's through this Node, any other file itself. */
function layerfsCommand(bin: string): string[] {
  return bin.endsWith('.js') ? [process.execPath, bin] : [bin]
}

/**
 * Extra mount options per driver (`--kernel-options`, `--fuse-overlayfs-options`, `--layerfs-options`),
 * to measure a configuration: metacopy=on on both kernel overlayfs and layerfs, say. The layer stack
 * itself is the bench's: these must not name it.
 */
const extraOptions: Partial<Record<DriverName, string>> = {}

export function setDriverOptions(driver: DriverName, options: string): void {
  if (driver === 'plain') throw new Error('the plain directory takes no mount options')
  const stack = options.split(',').find((o) => /^(lowerdir|upperdir|workdir)=/.test(o.trim()))
  if (stack !== undefined) throw new Error(`${driver} options: ${stack.split('=')[0]} is set by the bench`)
  if (options === '') delete extraOptions[driver]
  else extraOptions[driver] = options
}

/** The extra options in effect, for the report. */
export function driverOptions(): Partial<Record<DriverName, string>> {
  return { ...extraOptions }
}

/** A driver's mount option string: the stack's options, then its extra ones. */
export function mountOptionsFor(driver: DriverName, stack: string): string {
  const extra = extraOptions[driver]
  return extra ? `${stack},${extra}` : stack
}

export const layerfsDriver: Driver = {
  name: 'layerfs',
  async unavailable() {
    const why = fuseMissing()
    if (why) return why
    if (!(await onPath('fusermount3'))) return 'fusermount3 is not installed'
    const bin = layerfsBin()
    if (!existsSync(bin)) return `${bin} not found`
    if (!existsSync(resolve(dirname(bin), '../dist/src/cli/main.js'))) return 'layerfs is not built (npm run build)'
    return undefined
  },
  async open(fx, o) {
    const { options, mnt } = stackOptions(fx, o.scratch)
    const h = await guarded(o.scratch, () => mountFuseCommand([...layerfsCommand(layerfsBin()), '-o', mountOptionsFor('layerfs', options), mnt], mnt))
    return mountedInstance('layerfs', h, o.scratch)
  },
}

export const DRIVERS: Record<DriverName, Driver> = {
  plain: plainDriver,
  kernel: kernelDriver,
  'fuse-overlayfs': fuseOverlayfsDriver,
  layerfs: layerfsDriver,
}
