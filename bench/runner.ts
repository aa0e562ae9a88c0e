/**
 * The measuring loop: repetitions outermost, then workloads, then drivers (interleaved, in an order that
 * changes each repetition: see driverOrder). Every sample gets a fresh instance (new mount,
 * new upper); read-only workloads drop caches for the cold sample and then run warm on the same mount.
 * Daemon CPU (utime+stime) is sampled around each timed run; peak RSS (VmHWM) just before unmounting.
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { describeCmd, runCmd, withTimeout } from './exec.js'
import { type Driver, type DriverName, spreadInstances } from './drivers.js'
import type { Fixture } from './fixture.js'
import { cpuMs, dropCaches, peakRssKiB, syncDisks } from './proc.js'
import { type Mode, type Workload, type WorkloadContext, dataPaths } from './workloads.js'

export interface Sample {
  /** workload name, with ":cold" / ":warm" for read-only ones */
  key: string
  workload: string
  mode: Mode | null
  driver: DriverName
  rep: number
  ms: number | null
  daemonCpuMs: number | null
  /** VmHWM of the daemon at the end of the instance's life (same value for a cold/warm pair) */
  daemonPeakRssKiB: number | null
  error?: string
}

export interface RunOptions {
  fx: Fixture
  drivers: Driver[]
  workloads: Workload[]
  reps: number
  /** which of cold/warm to measure for read-only workloads */
  modes: Mode[]
  /** where instances put their upper/work/mount dirs */
  workDir: string
  timeoutMs: number
  log?: (line: string) => void
  onSample?: (s: Sample) => void
  /** checked between samples: stop early (Ctrl-C) */
  stopped?: () => boolean
}

let instanceSeq = 0

export async function runBench(o: RunOptions): Promise<Sample[]> {
  const samples: Sample[] = []
  const log = o.log ?? (() => {})
  mkdirSync(o.workDir, { recursive: true })
  await spreadInstances(o.workDir, log)
  for (let rep = 1; rep <= o.reps; rep++) {
    for (const w of o.workloads) {
      for (const d of driverOrder(o.drivers, rep)) {
        if (o.stopped?.()) return samples
        const got = await runOne(o, d, w, rep)
        for (const s of got) {
          samples.push(s)
          o.onSample?.(s)
        }
        log(`rep ${rep}/${o.reps} ${w.name.padEnd(13)} ${d.name.padEnd(14)} ${got.map((s) => `${s.mode ?? ''}${s.mode ? ' ' : ''}${s.ms === null ? `ERROR ${s.error}` : `${s.ms.toFixed(1)} ms`}`).join(', ')}`)
      }
    }
  }
  return samples
}

/**
 * The drivers' order in repetition `rep` (from 1): every second repetition runs the one before it
 * backwards, and each pair of repetitions starts one place further on. A sample can inherit state
 * from the one just before it (dirty pages it left, memory it freed that the host must back again,
 * inodes it deleted), so no driver may always follow the same other one; in a fixed rotation each
 * did. Two repetitions of a, b, c, d run a b c d, then d c b a: every driver follows each neighbour
 * once and runs at both ends of the order.
 */
export function driverOrder<T>(drivers: readonly T[], rep: number): T[] {
  const shift = Math.floor((rep - 1) / 2) % Math.max(drivers.length, 1)
  const order = [...drivers.slice(shift), ...drivers.slice(0, shift)]
  return rep % 2 === 0 ? order.reverse() : order
}

/**
 * Read the lower files a changing workload reads (dataPaths) into the page cache before its
 * sample. The layers are shared: without this, the first driver of each round read them from the
 * disk and the others found them cached (in two rounds of four drivers, whichever ran first in
 * the second paid for `chown -R`'s 30,000 files, 8 s against 13 s, and fuse-overlayfs, third then
 * second, never did). The plain driver's copies, made as it opens, are cached already.
 */
async function warmData(fx: Fixture, w: Workload, timeoutMs: number): Promise<void> {
  const { paths, prune } = dataPaths(fx, w)
  if (paths.length === 0) return
  const pruned = prune.flatMap((p) => ['-path', p, '-prune', '-o'])
  const r = await runCmd('sh', ['-c', 'find "$@" -type f -print0 | xargs -0 -r cat > /dev/null', 'sh', ...paths, ...pruned], { timeoutMs })
  if (r.code !== 0 || r.timedOut) throw new Error(`reading ${w.name}'s data: ${describeCmd(r)}`)
}

async function timed(ctx: WorkloadContext, w: Workload, pid: number | undefined): Promise<{ ms: number; cpu: number | null }> {
  const c0 = pid === undefined ? undefined : cpuMs(pid)
  const t0 = performance.now()
  await withTimeout(w.run(ctx), ctx.timeoutMs, `${w.name}`)
  const ms = performance.now() - t0
  const c1 = pid === undefined ? undefined : cpuMs(pid)
  return { ms, cpu: c0 === undefined || c1 === undefined ? null : c1 - c0 }
}

async function runOne(o: RunOptions, d: Driver, w: Workload, rep: number): Promise<Sample[]> {
  const modes: (Mode | null)[] = w.mutates ? [null] : o.modes
  const base = { workload: w.name, driver: d.name, rep }
  const keyOf = (m: Mode | null): string => (m ? `${w.name}:${m}` : w.name)
  const out: Sample[] = []
  const scratch = join(o.workDir, `${d.name}-${++instanceSeq}`)
  let inst
  try {
    inst = await d.open(o.fx, { scratch, mutates: w.mutates, needs: w.needs(o.fx) })
  } catch (e) {
    return modes.map((m) => ({ ...base, key: keyOf(m), mode: m, ms: null, daemonCpuMs: null, daemonPeakRssKiB: null, error: (e as Error).message }))
  }
  const ctx: WorkloadContext = { root: inst.root, fx: o.fx, timeoutMs: o.timeoutMs }
  let failure: string | undefined
  try {
    if (w.setup) await withTimeout(w.setup(ctx), o.timeoutMs, `${w.name} setup`)
    for (const m of modes) {
      if (m === 'cold') await dropCaches()
      else if (w.mutates) {
        await warmData(o.fx, w, o.timeoutMs)
        await syncDisks()
      }
      try {
        const r = await timed(ctx, w, inst.daemonPid)
        out.push({ ...base, key: keyOf(m), mode: m, ms: r.ms, daemonCpuMs: r.cpu, daemonPeakRssKiB: null })
      } catch (e) {
        out.push({ ...base, key: keyOf(m), mode: m, ms: null, daemonCpuMs: null, daemonPeakRssKiB: null, error: (e as Error).message })
        break
      }
    }
    const rss = inst.daemonPid === undefined ? undefined : peakRssKiB(inst.daemonPid)
    for (const s of out) s.daemonPeakRssKiB = rss ?? null
  } catch (e) {
    failure = (e as Error).message
  } finally {
    await inst.close()
  }
  for (const m of modes.slice(out.length)) {
    out.push({ ...base, key: keyOf(m), mode: m, ms: null, daemonCpuMs: null, daemonPeakRssKiB: null, error: failure ?? 'skipped after an earlier failure' })
  }
  return out
}
