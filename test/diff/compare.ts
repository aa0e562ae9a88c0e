// Structural comparison of two runs (kernel vs driver), producing keyed, readable differences.
//
// Keys (also used by known-differences.ts patterns):
//   op:<i>                 op #i's whole result (e.g. 'ok' vs { error })
//   op:<i>#<field>         one field of op #i's object result (nested fields joined with '.')
//   merged:<path>          an entry present on one side only   (root is '.')
//   merged:<path>#<field>  one field of an entry (e.g. merged:a/f#nlink, merged:a/f#xattrs.user.k)
//   upper:<path>, upper:<path>#<field>   the same for the upper layer
import { isDeepStrictEqual } from 'node:util'
import type { Json, Op } from './ops.js'
import type { Snapshot } from './snapshot.js'

export interface Difference {
  key: string
  /** kernel's value (undefined: absent) */
  a: Json | undefined
  /** driver's value (undefined: absent) */
  b: Json | undefined
  /** the whole op result / snapshot entry each value belongs to (for known-difference predicates) */
  ctxA?: Json
  ctxB?: Json
}

export interface RunResult {
  ops: Json[]
  merged: Snapshot
  upper: Snapshot
}

function isObj(v: Json | undefined): v is { [k: string]: Json } {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

const isRecord = (v: Json | undefined): boolean => isObj(v) && !('error' in v)

function diffFields(
  prefix: string,
  sep: string,
  a: Json | undefined,
  b: Json | undefined,
  out: Difference[],
  ctx?: [Json | undefined, Json | undefined],
): void {
  if (isDeepStrictEqual(a, b)) return
  const top = ctx === undefined
  const c: [Json | undefined, Json | undefined] = ctx ?? [a, b]
  // recurse into records (not error results); below the top level an absent side counts as an empty record,
  // so that e.g. one extra xattr is reported as merged:f#xattrs.user.x rather than the whole xattrs object
  const recurse = top ? isRecord(a) && isRecord(b) : (isRecord(a) || a === undefined) && (isRecord(b) || b === undefined)
  if (recurse) {
    const ra = (a ?? {}) as { [k: string]: Json }
    const rb = (b ?? {}) as { [k: string]: Json }
    const keys = [...new Set([...Object.keys(ra), ...Object.keys(rb)])].sort()
    for (const k of keys) diffFields(`${prefix}${sep}${k}`, '.', ra[k], rb[k], out, c)
    return
  }
  out.push({ key: prefix, a, b, ctxA: c[0], ctxB: c[1] })
}

export function diffSnapshots(section: string, a: Snapshot, b: Snapshot): Difference[] {
  const out: Difference[] = []
  const paths = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()
  for (const p of paths) {
    const x = a[p]
    const y = b[p]
    if (x === undefined || y === undefined) out.push({ key: `${section}:${p}`, a: x, b: y, ctxA: x, ctxB: y })
    else diffFields(`${section}:${p}`, '#', x, y, out)
  }
  return out
}

export function diffRuns(a: RunResult, b: RunResult): Difference[] {
  const out: Difference[] = []
  const n = Math.max(a.ops.length, b.ops.length)
  for (let i = 0; i < n; i++) diffFields(`op:${i}`, '#', a.ops[i], b.ops[i], out)
  out.push(...diffSnapshots('merged', a.merged, b.merged))
  out.push(...diffSnapshots('upper', a.upper, b.upper))
  return out
}

const show = (v: Json | undefined): string => (v === undefined ? '(absent)' : JSON.stringify(v))

/** One line per difference; op lines name the op. */
export function formatDifferences(diffs: Difference[], ops: Op[], names: [string, string] = ['kernel', 'driver']): string {
  const w = Math.max(...names.map((n) => n.length))
  return diffs
    .map((d) => {
      const m = /^op:(\d+)(.*)$/.exec(d.key)
      const head = m ? `op #${m[1]} ${JSON.stringify(ops[Number(m[1])])}${m[2] ?? ''}` : d.key.replace('#', '  .')
      return `  ${head}\n      ${names[0].padEnd(w)}  ${show(d.a)}\n      ${names[1].padEnd(w)}  ${show(d.b)}`
    })
    .join('\n')
}

/**
 * Glob over difference keys: '*' matches any run of characters. A pattern also covers sub-keys: a path
 * pattern ('merged:a') covers its fields ('merged:a#nlink'), a field pattern ('merged:a#xattrs') its
 * sub-fields ('merged:a#xattrs.user.k'); 'merged:a' does not cover 'merged:a/b' or 'merged:a.txt'.
 */
export function keyPattern(pattern: string): RegExp {
  const body = pattern
    .split('*')
    .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*')
  return new RegExp(`^${body}(?:$|${pattern.includes('#') ? '\\.' : '#'})`)
}
