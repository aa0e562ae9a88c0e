/**
 * `layerfs mount IMAGE[:TAG] MNT [--upper U --work W]`: mount an image file (docker-save archive or
 * OCI layout) straight from the layer store: its layers are imported once, then stacked as lower
 * directories. Without --upper the mount is read-only. Other mount options pass through with -o.
 */
import { HELP_OPTION, STORE_OPTION, parse, runCommand } from '../../image/cli-support.js'
import { ImageError } from '../../image/errors.js'
import { openImage } from '../../image/open-image.js'
import { run as mount } from '../mount.js'

const USAGE = `usage: layerfs mount [--store DIR] [--upper U --work W] [-o OPTS] [-f] IMAGE[:TAG] MNT
Mounts the image's layers (imported into the store once); read-only without --upper; nosuid and
nodev unless -o suid or -o dev.`

/** Escape a path for a lowerdir/upperdir value: `:` separates layers and `,` options. */
function escapeOption(path: string): string {
  return path.replace(/[\\:,]/g, (ch) => '\\' + ch)
}

export async function run(args: string[]): Promise<number> {
  let argv: string[] | undefined
  const code = await runCommand('mount', USAGE, args, async () => {
    const { values, positionals } = parse(args, {
      ...STORE_OPTION, ...HELP_OPTION,
      upper: { type: 'string' }, work: { type: 'string' },
      o: { type: 'string', short: 'o', multiple: true }, f: { type: 'boolean', short: 'f' },
    })
    if (positionals.length !== 2) throw new ImageError('expected IMAGE and MNT (see --help)')
    const [ref, mountpoint] = positionals as [string, string]
    if ((values.upper === undefined) !== (values.work === undefined)) throw new ImageError('--upper and --work go together')
    const image = await openImage(ref, { store: values.store, progress: true })
    const lowers = image.lowerDirs()
    if (lowers.length === 0) throw new ImageError(`${ref}: the image has no layers`)
    // An image is mounted to be looked at: its setuid programs and device nodes stay inert unless
    // -o suid or -o dev says otherwise (later options win).
    const options = [`lowerdir=${lowers.map(escapeOption).join(':')}`, 'nosuid', 'nodev']
    if (values.upper !== undefined && values.work !== undefined) {
      options.push(`upperdir=${escapeOption(values.upper)}`, `workdir=${escapeOption(values.work)}`)
    }
    argv = [...(values.f ? ['-f'] : []), '-o', [...options, ...(values.o ?? [])].join(','), ref.replace(/[,\s]/g, '_'), mountpoint]
    return 0
  })
  return code !== 0 || !argv ? code : mount(argv)
}
