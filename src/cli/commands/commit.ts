/**
 * `layerfs commit --upper U --from IMAGE --tag NEW -o OUT`: a new image whose last layer is U.
 */
import { HELP_OPTION, out, parse, runCommand } from '../../image/cli-support.js'
import { commitImage } from '../../image/commit.js'
import { ImageError } from '../../image/errors.js'

const USAGE = `usage: layerfs commit --upper DIR --from IMAGE[:TAG] --tag NEW -o OUT [--format oci|docker] [--message TEXT]
Writes IMAGE plus one layer made of the container upper dir DIR:
  --format oci     OUT is an OCI layout directory (created, or the tag added to it); default
  --format docker  OUT is a docker-save tar (docker load -i OUT)`

export async function run(args: string[]): Promise<number> {
  return runCommand('commit', USAGE, args, async () => {
    const { values, positionals } = parse(args, {
      ...HELP_OPTION,
      upper: { type: 'string' }, from: { type: 'string' }, tag: { type: 'string' }, output: { type: 'string', short: 'o' },
      format: { type: 'string' }, message: { type: 'string', short: 'm' },
    })
    if (positionals.length > 0) throw new ImageError(`unexpected argument '${positionals[0]}' (see --help)`)
    const { upper, from, tag, output } = values
    if (!upper || !from || !tag || !output) throw new ImageError('--upper, --from, --tag and -o are required (see --help)')
    const format = values.format ?? 'oci'
    if (format !== 'oci' && format !== 'docker') throw new ImageError(`--format must be oci or docker, not '${format}'`)
    const r = await commitImage({ upper, from, tag, out: output, format, ...(values.message ? { comment: values.message } : {}) })
    await out(`${r.manifestDigest}\n`)
    return 0
  })
}
