/** Stand-alone entry: `node dist/bench/cli.js [bench options]` (the same as `layerfs bench`). */
import { main } from './main.js'

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code },
  (err: unknown) => {
    process.stderr.write(`layerfs bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exitCode = 1
  },
)
