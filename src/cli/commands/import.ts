/**
 * `layerfs import IMAGE...`: unpacks an image file's layers into the store (verified, shared by
 * diff_id) and prints the layer dirs topmost first, i.e. what `mount` would stack.
 */
import { HELP_OPTION, STORE_OPTION, out, parse, runCommand } from '../../image/cli-support.js'
import { ImageError } from '../../image/errors.js'
import { openImage } from '../../image/open-image.js'

const USAGE = `usage: layerfs import [--store DIR] [--quiet] IMAGE...
  IMAGE  docker-save archive or OCI layout (dir or tar): FILE, FILE:TAG, FILE@INDEX
Unpacks the image's layers into the layer store and prints their directories, topmost first.`

export async function run(args: string[]): Promise<number> {
  return runCommand('import', USAGE, args, async () => {
    const { values, positionals } = parse(args, { ...STORE_OPTION, ...HELP_OPTION, quiet: { type: 'boolean', short: 'q' } })
    if (positionals.length === 0) throw new ImageError('missing IMAGE (see --help)')
    for (const ref of positionals) {
      const img = await openImage(ref, { store: values.store, progress: true })
      if (!values.quiet) {
        await out(`${ref}: ${img.names.join(', ') || img.configDigest}\n`)
        for (const dir of img.lowerDirs()) await out(`  ${dir}\n`)
      }
    }
    return 0
  })
}
