// Runs one scenario against one driver: fresh layers, mount, ops, merged snapshot, unmount (always), upper
// snapshot. And the comparison of two runs against the known-differences table.
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { unmount } from '../helpers/mount.js'
import { formatDifferences, keyPattern, type Difference, type RunResult } from './compare.js'
import type { Driver } from './drivers.js'
import type { KnownDifference } from './known-differences.js'
import { FsTarget, newNormContext, runOps } from './ops.js'
import { snapshotMerged, snapshotUpper } from './snapshot.js'
import { buildLayer, type Scenario } from './spec.js'

export async function runScenario(s: Scenario, driver: Driver, base: string, startSec: number): Promise<RunResult> {
  const lowers = s.layers.map((_, i) => join(base, `L${i}`))
  const upper = s.readonly ? undefined : join(base, 'U')
  const work = s.readonly ? undefined : join(base, 'W')
  const mnt = join(base, 'M')
  for (const d of [base, ...lowers, upper, work, mnt]) if (d !== undefined) await mkdir(d, { recursive: true })
  for (const [i, layer] of s.layers.entries()) await buildLayer(lowers[i] as string, layer, { mnt })
  if (upper !== undefined) await buildLayer(upper, s.upper ?? {}, { mnt })
  else if (s.upper !== undefined) throw new Error(`scenario ${s.name}: readonly with an upper layer`)

  const h = await driver.mount({ lowers, upper, work, mnt, options: s.options })
  let ops, merged
  try {
    const ctx = newNormContext(startSec)
    const target = new FsTarget(mnt)
    ops = await runOps(target, s.ops, ctx)
    merged = await snapshotMerged(target, ctx)
  } finally {
    await unmount(h)
  }
  const up = upper === undefined ? {} : await snapshotUpper(upper, { startSec, mnt })
  return { ops, merged, upper: up }
}

export interface Verdict {
  /** differences explained by known-difference entries */
  explained: Difference[]
  unexplained: Difference[]
  /** known-difference parts that matched no actual difference */
  stale: string[]
}

export interface KnownPart {
  entry: KnownDifference
  label: string
  re: RegExp
}

export function knownParts(known: KnownDifference[]): KnownPart[] {
  const parts: KnownPart[] = []
  for (const k of known) {
    for (const i of k.ops ?? []) parts.push({ entry: k, label: `ops: ${i}`, re: keyPattern(`op:${i}`) })
    for (const f of k.fields ?? []) parts.push({ entry: k, label: `fields: '${f}'`, re: keyPattern(f) })
  }
  return parts
}

/**
 * Split differences into explained/unexplained by the known-difference parts. Per-scenario parts that match
 * nothing are stale; driver-wide parts (scenario '*') are reported through `used` instead.
 */
export function judge(diffs: Difference[], known: KnownDifference[], used?: Set<KnownPart>): Verdict {
  const parts = knownParts(known)
  return judgeParts(diffs, parts, used)
}

export function judgeParts(diffs: Difference[], parts: KnownPart[], used = new Set<KnownPart>()): Verdict {
  const explained: Difference[] = []
  const unexplained: Difference[] = []
  for (const d of diffs) {
    const hits = parts.filter((p) => p.re.test(d.key) && (p.entry.where?.(d) ?? true))
    for (const h of hits) used.add(h)
    ;(hits.length > 0 ? explained : unexplained).push(d)
  }
  const stale = parts.filter((p) => p.entry.scenario !== '*' && !used.has(p)).map((p) => p.label)
  return { explained, unexplained, stale }
}

/** Suggest a known-differences entry covering `diffs` (for the failure message). */
export function suggestEntry(scenario: string, driver: string, diffs: Difference[]): string {
  const ops = [...new Set(diffs.filter((d) => d.key.startsWith('op:')).map((d) => Number(/^op:(\d+)/.exec(d.key)?.[1])))]
  const fields = diffs.filter((d) => !d.key.startsWith('op:')).map((d) => d.key)
  const parts = [`scenario: ${JSON.stringify(scenario)}`, `driver: '${driver}'`]
  if (ops.length) parts.push(`ops: [${ops.join(', ')}]`)
  if (fields.length) parts.push(`fields: [${fields.map((f) => `'${f}'`).join(', ')}]`)
  parts.push(`why: '...'`)
  return `{ ${parts.join(', ')} }`
}

export function verdictMessage(s: Scenario, driver: string, v: Verdict): string {
  const lines = [`scenario "${s.name}" (${s.group ?? ''}): kernel overlayfs vs ${driver}`]
  if (s.note) lines.push(`note: ${s.note}`)
  if (v.unexplained.length) {
    lines.push(`${v.unexplained.length} unexpected difference(s):`, formatDifferences(v.unexplained, s.ops, ['kernel', driver]))
    lines.push(`if deliberate, add to test/diff/known-differences.ts:\n  ${suggestEntry(s.name, driver, v.unexplained)}`)
  }
  if (v.stale.length) lines.push(`stale known-differences entries (these parts no longer differ): ${v.stale.join(', ')}`)
  if (v.explained.length) lines.push(`(known differences, as recorded: ${v.explained.map((d) => d.key).join(', ')})`)
  return lines.join('\n')
}
