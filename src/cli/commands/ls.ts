/**
 * `layerfs ls IMAGE [PATH] [--layer N]`: lists a directory of the merged image as of layer N (default:
 * the top), `ls -l` style, with the layer that provides each entry.
 */
import { replayLayers } from '../../image/analyze.js'
import { HELP_OPTION, STORE_OPTION, modeString, out, parse, runCommand } from '../../image/cli-support.js'
import { ImageError } from '../../image/errors.js'
import { childrenOf, normalizeImagePath, type TreeNode } from '../../image/merged-tree.js'
import { openImage } from '../../image/open-image.js'

const USAGE = `usage: layerfs ls [--store DIR] [--layer N] [--json] IMAGE [PATH]
Lists PATH (default /) in the image as merged up to layer N (default: all layers).`

export async function run(args: string[]): Promise<number> {
  return runCommand('ls', USAGE, args, async () => {
    const { values, positionals } = parse(args, { ...STORE_OPTION, ...HELP_OPTION, layer: { type: 'string' }, json: { type: 'boolean' } })
    const [ref, rawPath = '/'] = positionals
    if (!ref || positionals.length > 2) throw new ImageError('expected IMAGE [PATH] (see --help)')
    const img = await openImage(ref, { store: values.store, progress: true })
    const upTo = values.layer === undefined ? img.layers.length - 1 : Number(values.layer)
    if (!Number.isInteger(upTo) || upTo < 0 || upTo >= img.layers.length) {
      throw new ImageError(`--layer must be 0..${img.layers.length - 1}`)
    }
    const { tree } = await replayLayers(img.layers, upTo)
    const path = normalizeImagePath(rawPath)
    const self = tree.get(path)
    if (path !== '/' && !self) throw new ImageError(`${path}: no such file or directory in the image`)
    const nodes: TreeNode[] = self && self.entry.kind !== 'dir' ? [self] : childrenOf(tree, path)
    if (values.json) {
      const rows = nodes.map((n) => ({ path: n.entry.path, kind: n.entry.kind, size: n.entry.stat?.size ?? 0, mode: n.entry.stat?.mode, layer: n.layer, linkTarget: n.entry.linkTarget }))
      await out(JSON.stringify(rows, null, 2) + '\n')
      return 0
    }
    const lines = nodes.map((n) => {
      const st = n.entry.stat
      const name = n.entry.path.slice(n.entry.path.lastIndexOf('/') + 1)
      const link = n.entry.linkTarget !== undefined ? ` -> ${n.entry.linkTarget}` : ''
      const owner = st ? `${st.uid}/${st.gid}` : '-'
      return `${st ? modeString(st) : '----------'} ${owner.padStart(9)} ${String(st?.size ?? 0).padStart(10)}  L${n.layer}  ${name}${link}`
    })
    await out(lines.join('\n') + (lines.length ? '\n' : ''))
    return 0
  })
}
