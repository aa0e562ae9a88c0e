// A live daemon's statistics (`layerfs stats MNT --json`, the low-level bridge's fields included) and
// the request counts between two readings.
import { resolve } from 'node:path'
import { runCmd } from './exec.js'
import type { LoopStats } from '../../src/sys/fuse-ll.js'

const CLI = resolve('bin/layerfs.js')

export interface DaemonStats {
  ops: Record<string, number>
  passthrough: string
  passedThrough: number
  killpriv: boolean
  /** The event loop's busy-polling (low-level bridge only). */
  loop?: LoopStats
  /** Files the union holds open. */
  openFiles: number
  /** The nodes the kernel holds (low-level bridge only). */
  nodes?: number
  /** Copy-ups answered and not yet flushed and named. */
  deferredCopies: number
  /** Files read ahead, counted once read, and read-aheads that failed. */
  prefetched: number
  prefetchFailures: number
  /** Lower layers' listings read on the thread pool and taken by a listing. */
  listingsAhead: number
  /** First opens and copy-ups that waited for the disk, those of them too soon after an open shared
   *  with other requests to read ahead, and read-aheads started (low-level bridge only). */
  readAhead?: { uncached: number; started: number }
}

export async function statsOf(mnt: string): Promise<DaemonStats> {
  const r = await runCmd(process.execPath, [CLI, 'stats', mnt, '--json'])
  if (r.code !== 0) throw new Error(`layerfs stats failed: ${r.stderr}`)
  return JSON.parse(r.stdout) as DaemonStats
}

/** Requests of one kind between two readings (reading the stats is itself a getxattr). */
export function delta(before: DaemonStats, after: DaemonStats, op: string): number {
  return (after.ops[op] ?? 0) - (before.ops[op] ?? 0)
}

/** On layerfs, a reading of how many more requests of the kind `key` C has answered since this
 *  call (LoopStats); on kernel overlayfs, one of undefined. */
export async function answeredInC(driver: 'kernel' | 'layerfs', mnt: string, key: keyof LoopStats): Promise<() => Promise<number | undefined>> {
  if (driver !== 'layerfs') return async () => undefined
  const from = (await statsOf(mnt)).loop![key]
  return async () => (await statsOf(mnt)).loop![key] - from
}
