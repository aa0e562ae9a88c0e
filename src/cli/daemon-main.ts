/**
 * The daemon's entry point when `bin/layerfs` starts it for a mount command line: main.ts without
 * the subcommands. The build bundles it, with the modules it reaches, into one CommonJS file
 * (dist/layerfs-daemon.cjs, scripts/bundle-daemon.mjs), which Node loads in one read and one
 * compile: through the ES module loader, the same code took 35 ms longer to start (a file read, a
 * resolution and a link per module, and the lazy exports of every built-in module imported).
 */
import { exitWith } from './exit.js'
import { run } from './mount.js'

exitWith(run(process.argv.slice(2)))
