/**
 * `layerfs which IMAGE PATH`: which layer provides PATH in the merged image, and what every layer
 * did to it (added, modified, deleted by a whiteout or an opaque directory above it).
 */
import { replayLayers } from '../../image/analyze.js'
import { HELP_OPTION, STORE_OPTION, out, parse, runCommand, shortDigest } from '../../image/cli-support.js'
import { ImageError } from '../../image/errors.js'
import { normalizeImagePath } from '../../image/merged-tree.js'
import { openImage } from '../../image/open-image.js'

const USAGE = `usage: layerfs which [--store DIR] [--json] IMAGE PATH
Tells which layer gives PATH and the path's history through the layers.`

export async function run(args: string[]): Promise<number> {
  return runCommand('which', USAGE, args, async () => {
    const { values, positionals } = parse(args, { ...STORE_OPTION, ...HELP_OPTION, json: { type: 'boolean' } })
    const [ref, rawPath] = positionals
    if (!ref || !rawPath || positionals.length > 2) throw new ImageError('expected IMAGE PATH (see --help)')
    const path = normalizeImagePath(rawPath)
    const img = await openImage(ref, { store: values.store, progress: true })
    const { tree, changes } = await replayLayers(img.layers)
    const history = img.layers.flatMap((l, i) =>
      (changes[i] ?? []).filter((c) => c.path === path).map((c) => ({ layer: l.index, digest: l.digest ?? l.diffId, createdBy: l.createdBy, action: c.action, size: c.size, kind: c.kind })),
    )
    const final = tree.get(path)
    if (values.json) {
      await out(JSON.stringify({ path, layer: final?.layer ?? null, history }, null, 2) + '\n')
      return final ? 0 : 1
    }
    const lines = history.map((h) => `  L${h.layer} ${shortDigest(h.digest)} ${h.action.padEnd(8)} ${h.kind} ${h.size} B  ${h.createdBy.slice(0, 60)}`)
    if (!final) {
      if (history.length === 0) throw new ImageError(`${path}: not in any layer of the image`)
      await out(`${path}: deleted\n${lines.join('\n')}\n`)
      return 1
    }
    await out(`${path}: layer ${final.layer} (${shortDigest(img.layers[final.layer]?.digest ?? img.layers[final.layer]?.diffId)})\n${lines.join('\n')}\n`)
    return 0
  })
}
