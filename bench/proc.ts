/**
 * /proc readings: the mount table, daemon processes (found by mount point on their command line), their
 * CPU time and peak RSS, dropping the page cache, and the machine description recorded with results.
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { cpus, release, totalmem } from 'node:os'
import { resolve } from 'node:path'
import { runCmd } from './exec.js'

export interface MountEntry {
  mountPoint: string
  fstype: string
  /** "major:minor"; for FUSE the minor is the connection number */
  dev: string
}

function decode(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))
}

export function readMounts(): MountEntry[] {
  const out: MountEntry[] = []
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ')
    const sep = f.indexOf('-', 6)
    if (sep < 0) continue
    out.push({ mountPoint: decode(f[4] ?? ''), fstype: f[sep + 1] ?? '', dev: f[2] ?? '' })
  }
  return out
}

/** The topmost mount exactly at `mnt`. */
export function findMount(mnt: string): MountEntry | undefined {
  const p = resolve(mnt)
  return readMounts().filter((m) => m.mountPoint === p).at(-1)
}

export function listPids(): number[] {
  try {
    return readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number)
  } catch {
    return []
  }
}

export function cmdlineOf(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '')
  } catch {
    return undefined
  }
}

export function pidAlive(pid: number): boolean {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const state = st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3)
    return state !== 'Z' && state !== 'X'
  } catch {
    return false
  }
}

/** Live processes (other than us) whose command line names the (unique) mount point `mnt`. */
export function daemonPidsFor(mnt: string, exclude: Set<number> = new Set()): number[] {
  const target = resolve(mnt)
  return listPids().filter((pid) => {
    if (pid === process.pid || exclude.has(pid) || !pidAlive(pid)) return false
    return (cmdlineOf(pid) ?? []).some((a) => a === target || a === mnt)
  })
}

let clkTck = 100

/** utime + stime of `pid` in milliseconds (all threads), or undefined when it is gone. */
export function cpuMs(pid: number): number | undefined {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = st.slice(st.lastIndexOf(')') + 2).split(' ')
    // after "(comm)": field 3 is state at index 0, so utime (14) is index 11 and stime (15) index 12
    const ticks = Number(fields[11]) + Number(fields[12])
    return (ticks * 1000) / clkTck
  } catch {
    return undefined
  }
}

/** VmHWM (peak resident set) of `pid` in KiB. */
export function peakRssKiB(pid: number): number | undefined {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) : undefined
  } catch {
    return undefined
  }
}

/** `sync; echo 3 > /proc/sys/vm/drop_caches`. Returns false when not permitted (not root). */
export async function dropCaches(): Promise<boolean> {
  await syncDisks()
  try {
    writeFileSync('/proc/sys/vm/drop_caches', '3')
    return true
  } catch {
    return false
  }
}

export interface MachineInfo {
  cpuModel: string
  cores: number
  kernel: string
  ramBytes: number
  node: string
  fuseOverlayfs: string | null
  fusermount3: string | null
  clkTck: number
}

export async function machineInfo(): Promise<MachineInfo> {
  const fo = await runCmd('fuse-overlayfs', ['--version'], { timeoutMs: 5_000 })
  const fm = await runCmd('fusermount3', ['--version'], { timeoutMs: 5_000 })
  const firstLine = (s: string): string | null => s.split('\n').find((l) => l.trim() !== '')?.trim() ?? null
  return {
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    kernel: release(),
    ramBytes: totalmem(),
    node: process.version,
    fuseOverlayfs: fo.code === 0 ? firstLine(fo.stdout + fo.stderr) : null,
    fusermount3: fm.code === 0 ? firstLine(fm.stdout + fm.stderr) : null,
    clkTck,
  }
}

/** Read the kernel's clock tick (for /proc CPU times) once. */
export async function initClockTick(): Promise<void> {
  const r = await runCmd('getconf', ['CLK_TCK'], { timeoutMs: 5_000 })
  const n = Number(r.stdout.trim())
  if (r.code === 0 && Number.isFinite(n) && n > 0) clkTck = n
}

/** Write back every dirty page (sync(1)): a sample that changes files starts from a quiet disk, not
 *  behind the writeback of what the samples before it left dirty (1 GiB after a copy-up by a
 *  driver that does not flush, or mid-way through the background flush of one that does). */
export async function syncDisks(): Promise<void> {
  await runCmd('sync', [], { timeoutMs: 120_000 })
}
