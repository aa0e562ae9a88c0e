/** `layerfs stats MNT [--json]`: what a live daemon has done: ops, cache hit rate, copy-ups. */
import { resolve } from 'node:path'
import { readStats } from '../../fuse/stats-xattr.js'
import type { UnionStats } from '../../union/union.js'
import type { LoopStats } from '../../sys/fuse-ll.js'
import type { CodeCacheUse } from '../../sys/code-cache.js'

/** passthrough, passedThrough, killpriv, loop and codeCache come from the low-level bridge only
 *  (codeCache: when the daemon was started through its loader, dist/layerfs-daemon.cjs). */
type Stats = UnionStats & {
  ops: Record<string, number>
  passthrough?: string
  passedThrough?: number
  killpriv?: boolean
  loop?: LoopStats
  codeCache?: CodeCacheUse
}

const CODE_CACHE_USES: Record<CodeCacheUse, string> = {
  full: 'the daemon\'s code compiled from the cache written after a daemon\'s first seconds',
  early: 'the daemon\'s code compiled from the cache a shorter-lived daemon wrote as it exited',
  none: 'the daemon\'s code compiled from its source',
}

export async function run(args: string[]): Promise<number> {
  const json = args.includes('--json')
  const targets = args.filter((a) => a !== '--json')
  if (targets.length !== 1 || targets[0] === '--help') {
    process.stderr.write('usage: layerfs stats MNT [--json]\n')
    return targets[0] === '--help' ? 0 : 2
  }
  const mountpoint = resolve(targets[0]!)
  let stats: Stats
  try {
    stats = (await readStats(mountpoint)) as Stats
  } catch (err) {
    const code = (err as { code?: string }).code
    const why = code === 'EOPNOTSUPP' || code === 'ENOTSUP' || code === 'ENODATA' ? 'not a layerfs mount' : (err as Error).message
    process.stderr.write(`layerfs stats: ${mountpoint}: ${why}\n`)
    return 1
  }
  if (json) {
    process.stdout.write(JSON.stringify(stats, null, 2) + '\n')
    return 0
  }
  const { cache, copyUps, ops } = stats
  const lookups = cache.hits + cache.negativeHits + cache.misses
  const rate = lookups === 0 ? 0 : (100 * (cache.hits + cache.negativeHits)) / lookups
  const lines = [
    `mount        ${mountpoint}`,
    `operations   ${Object.values(ops).reduce((a, b) => a + b, 0)}  (${Object.entries(ops).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ')})`,
    `lookup cache ${rate.toFixed(1)}% hits  (${cache.hits} hits, ${cache.negativeHits} negative hits, ${cache.misses} misses, ${cache.size} entries; names of ${cache.lowerDirs ?? 0} lower directories)`,
    `copy-ups     ${copyUps.copyUps}  (${copyUps.copyUpBytes} bytes, ${copyUps.copyUpMs.toFixed(1)} ms; ${stats.deferredCopies ?? 0} waiting for their flush, ${copyUps.lostCopies ?? 0} lost), whiteouts ${copyUps.whiteouts}`,
    `open files   ${stats.openFiles}`,
  ]
  if (stats.passthrough !== undefined) lines.push(`passthrough  ${stats.passthrough}  (${stats.passedThrough ?? 0} opens passed through, ${stats.loop?.passOpens ?? 0} of them answered in C)`)
  if (stats.killpriv !== undefined) lines.push(`killpriv v2  ${stats.killpriv ? 'on' : 'off'}  (${stats.killpriv ? 'setuid/setgid cleared by the daemon' : 'the kernel asks before each write and chown'})`)
  if (stats.loop !== undefined) {
    lines.push(`busy-polls   ${stats.loop.spins}  (${stats.loop.spinsSkipped} skipped with more calling threads than ${stats.loop.spinCallers})`)
    lines.push(`answered in C  ${stats.loop.fastOpens} opens for reading (${stats.loop.firstOpens} of them first opens, their bytes stored, ${stats.loop.firstOpensUncached ?? 0} of those read from the disk; ${stats.loop.passOpens} passed through), ${stats.loop.cowOpens} opens for writing (copy-ups, files in the upper layer), ${stats.loop.cowSetattrs} setattrs (copy-ups, directories copied up, files in the upper layer, files it made or opened for writing), ${stats.loop.cowGetattrs} getattrs (lower files and directories, files and directories in the upper layer, files it made), ${stats.loop.cowGetxattrs} getxattrs (lower files, files in the upper layer, files it made), ${stats.loop.cowListxattrs} listxattrs of lower files and files in the upper layer, ${stats.loop.madeSetxattrs} ACLs set on files it made, ${stats.loop.cowSetxattrs} setxattrs of lower files (copy-ups), ${stats.loop.cowDirLookups} lookups of directories, ${stats.loop.cowFileLookups} first lookups of lower files, ${stats.loop.cowDirFirstLookups ?? 0} first lookups of lower directories, ${stats.loop.cowRenames} renames of lower files, ${stats.loop.cowLinks} links of lower files, ${stats.loop.cowLookups} lookups of missing names (for these lookups, ${stats.loop.lowerDirsRead} lower directories' names read), ${stats.loop.dirEnds} ends of listings`)
  }
  if (stats.codeCache !== undefined) lines.push(`code cache   ${stats.codeCache}  (${CODE_CACHE_USES[stats.codeCache]})`)
  process.stdout.write(lines.join('\n') + '\n')
  return 0
}
