/**
 * The merged listing of a directory: every contributing layer's names, topmost first, each name once,
 * minus whiteouts and the markers that encode them. A whiteout (char 0/0 or `.wh.NAME`) hides NAME in
 * the layers below its own, never in its own layer, as the OCI spec has it. The result is sorted, so a
 * directory offset means the same thing across calls.
 */
import { lstatSync, readdirSync } from 'node:fs'
import { OPAQUE_MARKER, WHITEOUT_PREFIX, isWhiteoutStat, whiteoutTarget } from '../layers/whiteout.js'
import type { Entry } from './entry.js'
import type { Listings } from './resolver.js'
import { isCode } from './errors.js'

export function mergedNames(dir: Entry): string[] {
  return mergeListings(dir, listLayers(dir))
}

/** One readdir per contributing layer (a layer whose copy vanished lists nothing). Synchronous, like
 *  the lookup probes (resolver.ts): a directory read is one getdents on an inode the walk that got
 *  here has just looked up, cheaper than the thread-pool round trip that would carry it. */
export function listLayers(dir: Entry): Listings {
  const listings: Listings = new Map()
  for (const layer of dir.dirLayers) {
    try {
      const dirents = readdirSync(layer.path(dir.path), { withFileTypes: true })
      listings.set(layer, new Map(dirents.map((d) => [d.name, d])))
    } catch (err) {
      if (!isCode(err, 'ENOENT', 'ENOTDIR')) throw err
    }
  }
  return listings
}

export function mergeListings(dir: Entry, listings: Listings): string[] {
  const seen = new Set<string>()
  const hidden = new Set<string>()
  const names: string[] = []
  for (const layer of dir.dirLayers) {
    const path = layer.path(dir.path)
    const dirents = listings.get(layer)
    if (!dirents) continue
    const hides: string[] = []
    for (const dirent of dirents.values()) {
      const name = dirent.name
      if (name.startsWith(WHITEOUT_PREFIX)) {
        const target = name === OPAQUE_MARKER ? undefined : whiteoutTarget(name)
        if (target !== undefined) hides.push(target)
        continue
      }
      if (seen.has(name) || hidden.has(name)) continue
      if (dirent.isCharacterDevice() && isWhiteoutStat(lstatSync(`${path}/${name}`))) {
        hides.push(name)
        continue
      }
      seen.add(name)
      names.push(name)
    }
    for (const name of hides) hidden.add(name)
  }
  return names.sort()
}
