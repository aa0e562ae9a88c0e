/**
 * `layerfs diff UPPER [--lower A:B | --from IMAGE]`: a container's changes, `docker diff` style.
 */
import { HELP_OPTION, STORE_OPTION, out, parse, runCommand } from '../../image/cli-support.js'
import { diffUpper, lowerTree } from '../../image/changes.js'
import { ImageError } from '../../image/errors.js'
import { openImage } from '../../image/open-image.js'

const USAGE = `usage: layerfs diff [--lower DIR:DIR...] [--from IMAGE] [--store DIR] [--json] UPPER
Lists the changes in UPPER as A (added), C (changed), D (deleted).
  --lower  the lower dirs, topmost first (as in overlay lowerdir=)
  --from   the image the container was started from
Without either, present entries are reported as A and whiteouts as D.`

export async function run(args: string[]): Promise<number> {
  return runCommand('diff', USAGE, args, async () => {
    const { values, positionals } = parse(args, {
      ...STORE_OPTION, ...HELP_OPTION, lower: { type: 'string' }, from: { type: 'string' }, json: { type: 'boolean' },
    })
    const [upper] = positionals
    if (!upper || positionals.length > 1) throw new ImageError('expected exactly one UPPER dir (see --help)')
    if (values.lower !== undefined && values.from !== undefined) throw new ImageError('use --lower or --from, not both')
    let dirs: string[] | undefined
    if (values.lower !== undefined) dirs = values.lower.split(':').filter((d) => d !== '')
    else if (values.from !== undefined) dirs = (await openImage(values.from, { store: values.store, progress: true })).lowerDirs()
    const changes = await diffUpper(upper, dirs ? await lowerTree(dirs) : undefined)
    if (values.json) await out(JSON.stringify(changes, null, 2) + '\n')
    else await out(changes.map((c) => `${c.kind} ${c.path}\n`).join(''))
    return 0
  })
}
