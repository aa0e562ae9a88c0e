/**
 * `layerfs bench`: options, preflight, the run, and the outputs (terminal table, --json, --chart).
 *
 *   layerfs bench [--quick] [--reps N] [--drivers a,b] [--workloads x,y] [--modes cold,warm]
 *                 [--dir DIR] [--json FILE] [--chart FILE.svg]
 *   layerfs bench --check [--threshold 4] [--dir DIR] [--json FILE]
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { renderChart } from './chart.js'
import { formatCheck, runCheck } from './check.js'
import { DRIVERS, DRIVER_NAMES, type Driver, type DriverName, driverOptions, setDriverOptions } from './drivers.js'
import { PROFILES, ensureFixture } from './fixture.js'
import { initClockTick, machineInfo } from './proc.js'
import { fmtMs, fmtRange, formatTable, summarize, worstAgainst } from './report.js'
import { type Sample, runBench } from './runner.js'
import { clearStaleMounts, openSession } from './session.js'
import { type Mode, WORKLOADS, WORKLOAD_NAMES, sampleKeys } from './workloads.js'

export const DEFAULT_DIR = '/var/tmp/layerfs-bench'

const USAGE = `usage: layerfs bench [options]
  --quick              small fixture (2k+3k files, 64 MiB big files), 5 reps: about 3 minutes
  --reps N             repetitions per workload and driver (default 5; --check 3)
  --drivers a,b        of: ${DRIVER_NAMES.join(', ')} (default: all available)
  --workloads x,y      of: ${WORKLOAD_NAMES.join(', ')}
  --modes cold,warm    for the read-only workloads (default both)
  --dir DIR            fixture cache and work area (default ${DEFAULT_DIR})
  --json FILE          write all samples, summaries and machine info
  --chart FILE         write an SVG chart (ratios to kernel overlayfs, log scale)
  --check              CI gate: tiny fixture, fuse-overlayfs vs layerfs, fail when a ratio > --threshold
  --threshold X        for --check (default 4)
  --layerfs-options O  extra mount options for layerfs, e.g. metacopy=on
  --kernel-options O   extra mount options for kernel overlayfs, e.g. metacopy=on
  --fuse-overlayfs-options O   extra mount options for fuse-overlayfs
`

function list<T extends string>(value: string | undefined, all: readonly T[], what: string): T[] | undefined {
  if (value === undefined) return undefined
  const xs = value.split(',').map((s) => s.trim()).filter(Boolean)
  for (const x of xs) if (!all.includes(x as T)) throw new Error(`unknown ${what} '${x}' (known: ${all.join(', ')})`)
  return xs as T[]
}

export async function main(argv: string[]): Promise<number> {
  let values
  try {
    ;({ values } = parseArgs({
      args: argv,
      options: {
        quick: { type: 'boolean' }, check: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
        reps: { type: 'string' }, drivers: { type: 'string' }, workloads: { type: 'string' }, modes: { type: 'string' },
        dir: { type: 'string' }, json: { type: 'string' }, chart: { type: 'string' }, threshold: { type: 'string' },
        'layerfs-options': { type: 'string' }, 'kernel-options': { type: 'string' }, 'fuse-overlayfs-options': { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    }))
  } catch (e) {
    process.stderr.write(`layerfs bench: ${(e as Error).message}\n${USAGE}`)
    return 2
  }
  if (values.help) {
    process.stdout.write(USAGE)
    return 0
  }
  const log = (line: string): void => { process.stderr.write(line + '\n') }
  try {
    for (const driver of ['kernel', 'fuse-overlayfs', 'layerfs'] as const) {
      const options = values[`${driver}-options`]
      if (options) setDriverOptions(driver, options)
    }
  } catch (e) {
    process.stderr.write(`layerfs bench: ${(e as Error).message}\n`)
    return 2
  }
  const dir = resolve(values.dir ?? DEFAULT_DIR)
  const reps = values.reps === undefined ? (values.check ? 3 : 5) : Number(values.reps)
  if (!Number.isInteger(reps) || reps < 1) {
    process.stderr.write(`layerfs bench: --reps wants a positive integer\n`)
    return 2
  }
  await initClockTick()
  mkdirSync(dir, { recursive: true })

  if (values.check) {
    const threshold = values.threshold === undefined ? 4 : Number(values.threshold)
    if (!(threshold > 1)) {
      process.stderr.write('layerfs bench: --threshold wants a number > 1\n')
      return 2
    }
    let workloads: string[] | undefined
    try { workloads = list(values.workloads, WORKLOAD_NAMES, 'workload') } catch (e) { process.stderr.write(`layerfs bench: ${(e as Error).message}\n`); return 2 }
    const report = await runCheck({ dir, threshold, reps, workloads, log })
    process.stdout.write(formatCheck(report) + '\n')
    if (values.json) writeFileSync(values.json, JSON.stringify({ check: report, machine: await machineInfo() }, null, 2) + '\n')
    return report.skipped || report.ok ? 0 : 1
  }

  let driverNames: DriverName[] | undefined
  let workloadNames: string[] | undefined
  let modes: Mode[]
  try {
    driverNames = list(values.drivers, DRIVER_NAMES, 'driver')
    workloadNames = list(values.workloads, WORKLOAD_NAMES, 'workload')
    modes = list(values.modes, ['cold', 'warm'] as const, 'mode') ?? ['cold', 'warm']
  } catch (e) {
    process.stderr.write(`layerfs bench: ${(e as Error).message}\n`)
    return 2
  }
  const drivers: Driver[] = []
  const skipped: Record<string, string> = {}
  for (const name of driverNames ?? DRIVER_NAMES) {
    const why = await DRIVERS[name].unavailable()
    if (why) {
      skipped[name] = why
      log(`driver ${name}: skipped: ${why}`)
    } else drivers.push(DRIVERS[name])
  }
  const kernelWhy = await DRIVERS.kernel.unavailable()
  if (kernelWhy) {
    process.stderr.write(`layerfs bench: the fixture's merged copy is made with kernel overlayfs: ${kernelWhy}\n`)
    return 1
  }
  if (drivers.length === 0) {
    process.stderr.write('layerfs bench: no driver can run here\n')
    return 1
  }
  const workloads = WORKLOADS.filter((w) => (workloadNames ?? WORKLOAD_NAMES).includes(w.name))
  const spec = values.quick ? PROFILES.quick : PROFILES.full
  const workDir = join(dir, 'work')
  const session = openSession(workDir, log)
  const startedAt = new Date().toISOString()
  const t0 = performance.now()
  let samples: Sample[] = []
  let fx
  try {
    await clearStaleMounts(dir, log)
    if (existsSync(workDir)) rmSync(workDir, { recursive: true, force: true })
    fx = await ensureFixture(dir, spec, log)
    log(`bench: ${drivers.map((d) => d.name).join(', ')} x ${workloads.length} workloads x ${reps} reps (${spec.name} fixture)`)
    samples = await runBench({
      fx, drivers, workloads, reps, modes, workDir,
      timeoutMs: spec.name === 'full' ? 900_000 : 180_000, log, stopped: session.stopped,
    })
  } finally {
    await session.close()
  }
  if (session.stopped()) return 130
  rmSync(workDir, { recursive: true, force: true })
  const names = drivers.map((d) => d.name)
  const keys = workloads.flatMap((w) => sampleKeys(w, modes))
  const rows = summarize(samples, names, keys)
  const machine = await machineInfo()
  const options = Object.entries(driverOptions()).map(([d, o]) => `${d} -o ${o}`)
  const title = `layerfs bench (${spec.name}${options.length > 0 ? `; ${options.join('; ')}` : ''}): ${machine.cpuModel}, ${machine.cores} cores, Linux ${machine.kernel}`
  process.stdout.write(`\n${title}\n\n${formatTable(rows, names)}\n`)
  if (names.includes('layerfs') && names.includes('fuse-overlayfs')) {
    const worst = worstAgainst(rows, 'fuse-overlayfs', 3)
    process.stdout.write(`\nworst vs fuse-overlayfs: ${worst.map((r) => `${r.key} ${r.ratios['fuse-overlayfs']!.toFixed(2)}x (per round ${fmtRange(r.perRound['fuse-overlayfs'])}; daemon cpu layerfs ${fmtMs(r.drivers.layerfs?.cpuMs)} vs ${fmtMs(r.drivers['fuse-overlayfs']?.cpuMs)})`).join('; ')}\n`)
  }
  const errors = samples.filter((s) => s.error)
  if (errors.length > 0) process.stdout.write(`\n${errors.length} failed sample(s), e.g. ${errors[0]!.key} on ${errors[0]!.driver}: ${errors[0]!.error}\n`)
  process.stdout.write(`\n(${((performance.now() - t0) / 1000).toFixed(0)} s)\n`)
  if (values.json) {
    const doc = {
      tool: 'layerfs bench', startedAt, seconds: (performance.now() - t0) / 1000, machine,
      config: { profile: spec.name, reps, modes, drivers: names, mountOptions: driverOptions(), skippedDrivers: skipped, workloads: workloads.map((w) => ({ name: w.name, description: w.description, mutates: w.mutates })) },
      fixture: { spec: fx.spec, dir: fx.dir, counts: fx.counts },
      summary: rows, samples,
    }
    writeFileSync(values.json, JSON.stringify(doc, null, 2) + '\n')
    log(`wrote ${values.json}`)
  }
  if (values.chart) {
    writeFileSync(values.chart, renderChart(rows, names, title))
    log(`wrote ${values.chart}`)
  }
  return errors.length > 0 ? 1 : 0
}
