/**
 * `layerfs bench --check`, the CI regression gate: a tiny fixture, a few warm workloads, fuse-overlayfs and
 * layerfs only, interleaved. It fails only when layerfs's median is more than `threshold` times
 * fuse-overlayfs's for some workload in the same run: ratios, never absolute times. Without fuse-overlayfs
 * or /dev/fuse it is skipped (a reason, exit 0).
 */
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { DRIVERS } from './drivers.js'
import { type FixtureSpec, PROFILES, ensureFixture } from './fixture.js'
import { type Sample, runBench } from './runner.js'
import { clearStaleMounts, openSession } from './session.js'
import { median } from './stats.js'
import { WORKLOADS } from './workloads.js'

export const CHECK_WORKLOADS = ['lstat-all', 'read-small', 'create-delete', 'rename', 'chmod-R', 'copy-up']

export interface CheckOptions {
  dir: string
  threshold?: number
  reps?: number
  workloads?: string[]
  spec?: FixtureSpec
  log?: (line: string) => void
}

export interface CheckWorkload {
  workload: string
  /** wall times in ms, per driver */
  samples: { 'fuse-overlayfs': number[]; layerfs: number[] }
  medians: { 'fuse-overlayfs': number; layerfs: number }
  /** layerfs median / fuse-overlayfs median */
  ratio: number
  ok: boolean
}

export interface CheckReport {
  skipped?: string
  threshold: number
  reps: number
  workloads: CheckWorkload[]
  errors: string[]
  ok: boolean
}

export async function runCheck(o: CheckOptions): Promise<CheckReport> {
  const threshold = o.threshold ?? 4
  const reps = o.reps ?? 3
  const log = o.log ?? (() => {})
  const names = o.workloads ?? CHECK_WORKLOADS
  const empty: CheckReport = { threshold, reps, workloads: [], errors: [], ok: true }
  for (const d of [DRIVERS['fuse-overlayfs'], DRIVERS.layerfs]) {
    const why = await d.unavailable()
    if (why) return { ...empty, skipped: `${d.name} unavailable: ${why}` }
  }
  const kernelWhy = await DRIVERS.kernel.unavailable()
  if (kernelWhy) return { ...empty, skipped: `cannot build the fixture (needs kernel overlayfs): ${kernelWhy}` }
  const workloads = WORKLOADS.filter((w) => names.includes(w.name))
  const workDir = join(o.dir, 'work-check')
  const session = openSession(workDir, log)
  let samples: Sample[]
  try {
    await clearStaleMounts(join(o.dir), log)
    const fx = await ensureFixture(o.dir, o.spec ?? PROFILES.check, log)
    samples = await runBench({
      fx, drivers: [DRIVERS['fuse-overlayfs'], DRIVERS.layerfs], workloads, reps, modes: ['warm'],
      workDir, timeoutMs: 120_000, log, stopped: session.stopped,
    })
  } finally {
    await session.close()
  }
  rmSync(workDir, { recursive: true, force: true })
  const errors = samples.flatMap((s) => (s.error ? [`${s.key} on ${s.driver}: ${s.error}`] : []))
  const rows: CheckWorkload[] = []
  for (const w of workloads) {
    const key = w.mutates ? w.name : `${w.name}:warm`
    const times = (d: 'fuse-overlayfs' | 'layerfs'): number[] => samples.flatMap((s) => (s.key === key && s.driver === d && s.ms !== null ? [s.ms] : []))
    const fo = times('fuse-overlayfs')
    const lf = times('layerfs')
    const mf = median(fo) ?? NaN
    const ml = median(lf) ?? NaN
    const ratio = ml / Math.max(mf, 1e-3)
    rows.push({ workload: key, samples: { 'fuse-overlayfs': fo, layerfs: lf }, medians: { 'fuse-overlayfs': mf, layerfs: ml }, ratio, ok: Number.isFinite(ratio) && ratio <= threshold })
  }
  return { threshold, reps, workloads: rows, errors, ok: errors.length === 0 && rows.every((r) => r.ok) }
}

export function formatCheck(r: CheckReport): string {
  if (r.skipped) return `bench --check: skipped: ${r.skipped}`
  const lines = [`bench --check: layerfs vs fuse-overlayfs, ${r.reps} reps, fail above ${r.threshold}x`]
  for (const w of r.workloads) {
    lines.push(`  ${w.ok ? 'ok  ' : 'FAIL'} ${w.workload.padEnd(18)} layerfs ${w.medians.layerfs.toFixed(1).padStart(8)} ms  fuse-overlayfs ${w.medians['fuse-overlayfs'].toFixed(1).padStart(8)} ms  ratio ${w.ratio.toFixed(2)}x`)
  }
  for (const e of r.errors) lines.push(`  error: ${e}`)
  lines.push(r.ok ? 'bench --check: ok' : 'bench --check: FAILED')
  return lines.join('\n')
}
