/**
 * `layerfs inspect IMAGE`: layers with digest, size, command and what each changed, wasted bytes and
 * an efficiency score, read from the image file (the store serves as cache).
 */
import { analyzeImage } from '../../image/analyze.js'
import { HELP_OPTION, STORE_OPTION, out, parse, runCommand, shortDigest } from '../../image/cli-support.js'
import { ImageError } from '../../image/errors.js'
import { openImage } from '../../image/open-image.js'
import { humanBytes } from '../../image/progress.js'

const USAGE = `usage: layerfs inspect [--store DIR] [--json] [--top N] IMAGE
Shows each layer (digest, size, command, added/modified/deleted), the wasted space and the efficiency.`

export async function run(args: string[]): Promise<number> {
  return runCommand('inspect', USAGE, args, async () => {
    const { values, positionals } = parse(args, { ...STORE_OPTION, ...HELP_OPTION, json: { type: 'boolean' }, top: { type: 'string' } })
    const ref = positionals[0]
    if (!ref || positionals.length > 1) throw new ImageError('expected exactly one IMAGE (see --help)')
    const img = await openImage(ref, { store: values.store, progress: true })
    const report = await analyzeImage(img)
    if (values.json) {
      await out(JSON.stringify(report, null, 2) + '\n')
      return 0
    }
    const lines = [`Image: ${img.names.join(', ') || '(untagged)'}  config ${shortDigest(img.configDigest)}`, '']
    lines.push('  #  DIGEST        SIZE      +ADDED      ~MODIFIED   -DELETED    COMMAND')
    for (const l of report.layers) {
      const c = (x: { count: number }) => String(x.count).padEnd(11)
      lines.push(
        `${String(l.index).padStart(3)}  ${(l.empty ? '(empty)' : shortDigest(l.digest ?? l.diffId)).padEnd(12)}  ${humanBytes(l.size).padEnd(8)}  ` +
          `${c(l.added)} ${c(l.modified)} ${c(l.deleted)} ${l.createdBy.replace(/\s+/g, ' ').slice(0, 80)}`,
      )
    }
    lines.push('', `Total: ${humanBytes(report.totalBytes)}  Wasted: ${humanBytes(report.wastedBytes)}  Efficiency: ${(report.efficiency * 100).toFixed(2)} %`)
    const top = report.wasted.slice(0, Number(values.top ?? 10))
    if (top.length > 0) {
      lines.push('', 'Wasted space (count, bytes, path):')
      for (const w of top) lines.push(`  ${String(w.count).padStart(3)}  ${humanBytes(w.bytes).padStart(9)}  ${w.path}`)
    }
    await out(lines.join('\n') + '\n')
    return 0
  })
}
