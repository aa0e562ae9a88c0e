/**
 * `layerfs cat IMAGE PATH`: writes a file of the merged image to stdout, following symlinks inside
 * the image (never on the host).
 */
import { createReadStream } from 'node:fs'
import { pipeline } from 'node:stream/promises'
import { replayLayers } from '../../image/analyze.js'
import { HELP_OPTION, STORE_OPTION, parse, runCommand } from '../../image/cli-support.js'
import { ImageError } from '../../image/errors.js'
import { normalizeImagePath, type Tree } from '../../image/merged-tree.js'
import { openImage } from '../../image/open-image.js'

const USAGE = `usage: layerfs cat [--store DIR] [--layer N] IMAGE PATH
Writes the file at PATH in the image (merged up to layer N) to stdout.`

/** Resolves symlinks component by component within the image tree, like the kernel would in a chroot. */
export function resolveInImage(tree: Tree, path: string): string {
  let parts = normalizeImagePath(path).split('/').filter(Boolean)
  let resolved = ''
  for (let hops = 0, i = 0; i < parts.length; i++) {
    const candidate = `${resolved}/${parts[i]}`
    const node = tree.get(candidate)
    if (node?.entry.kind === 'symlink' && node.entry.linkTarget !== undefined) {
      if (++hops > 40) throw new ImageError(`${path}: too many levels of symbolic links`)
      const t = node.entry.linkTarget
      const rest = parts.slice(i + 1)
      parts = normalizeImagePath(t.startsWith('/') ? t : `${resolved}/${t}`).split('/').filter(Boolean).concat(rest)
      resolved = ''
      i = -1
      continue
    }
    resolved = candidate
  }
  return resolved === '' ? '/' : resolved
}

export async function run(args: string[]): Promise<number> {
  return runCommand('cat', USAGE, args, async () => {
    const { values, positionals } = parse(args, { ...STORE_OPTION, ...HELP_OPTION, layer: { type: 'string' } })
    const [ref, path] = positionals
    if (!ref || !path || positionals.length > 2) throw new ImageError('expected IMAGE PATH (see --help)')
    const img = await openImage(ref, { store: values.store, progress: true })
    const upTo = values.layer === undefined ? img.layers.length - 1 : Number(values.layer)
    const { tree } = await replayLayers(img.layers, upTo)
    const real = resolveInImage(tree, path)
    const node = tree.get(real)
    if (!node) throw new ImageError(`${path}: no such file in the image`)
    if (node.entry.kind !== 'file') throw new ImageError(`${path}: not a regular file (${node.entry.kind})`)
    await pipeline(createReadStream(node.entry.hostPath), process.stdout, { end: false })
    return 0
  })
}
