// Bundles the daemon (dist/src/cli/daemon-main.js, as tsc compiled it, and everything it imports)
// into one CommonJS file, dist/layerfs-daemon.cjs, which bin/layerfs starts for a mount command
// line (see src/cli/daemon-main.ts). Run by `npm run build`, after tsc.
import { build } from 'esbuild'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
await build({
  entryPoints: [`${root}/dist/src/cli/daemon-main.js`],
  outfile: `${root}/dist/layerfs-daemon.cjs`,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // fuse-native finds its prebuilt binary from its own directory: loaded from node_modules as is.
  external: ['fuse-native'],
  // In one CommonJS file every module's import.meta.url is the bundle's own URL (the addon is found
  // from the package root above it: src/sys/addon.ts).
  define: { 'import.meta.url': '__bundleUrl' },
  // ("use strict" first: the modules were ES modules, strict throughout.)
  banner: { js: `"use strict";\nconst __bundleUrl = require('node:url').pathToFileURL(__filename).href;` },
  logLevel: 'warning',
})
