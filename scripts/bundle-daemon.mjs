// Bundles the daemon (dist/src/cli/daemon-main.js, as tsc compiled it, and everything it imports)
// into one CommonJS file, dist/layerfs-daemon-code.cjs, and its loader (src/cli/daemon-start.ts)
// into another, dist/layerfs-daemon.cjs, which bin/layerfs starts for a mount command line: the
// loader compiles the code with V8's code cache of it (see daemon-start.ts). Run by `npm run
// build`, after tsc. A cache of the code built before goes.
import { build } from 'esbuild'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // In one CommonJS file every module's import.meta.url is the bundle's own URL (the addon is found
  // from the package root above it: src/sys/addon.ts).
  //
  // lru-cache looks the global `performance` up as it loads, for the clock of its entries' times to
  // live, which the daemon's caches do not have: in Node 20 that first use loads node:perf_hooks
  // and ten internal modules, 2-3 ms of every mount here. It is given `Date` (its own fallback)
  // instead; the daemon's own code times with src/sys/clock.ts, and the build fails if any other
  // module of the bundle names the global (below), which would get `Date` as well.
  define: { 'import.meta.url': '__bundleUrl', performance: 'Date' },
  // import() as a require in a promise: the loader runs the code as a vm.Script, which has no
  // module loader for a dynamic import.
  supported: { 'dynamic-import': false },
  // ("use strict" first: the modules were ES modules, strict throughout.)
  banner: { js: `"use strict";\nconst __bundleUrl = require('node:url').pathToFileURL(__filename).href;` },
  logLevel: 'warning',
}
const code = `${root}/dist/layerfs-daemon-code.cjs`
await rm(`${root}/dist/layerfs-daemon-code.cache`, { force: true })
const { metafile } = await build({
  ...common,
  entryPoints: [`${root}/dist/src/cli/daemon-main.js`],
  outfile: code,
  // fuse-native finds its prebuilt binary from its own directory: loaded from node_modules as is.
  external: ['fuse-native'],
  metafile: true,
})
for (const input of Object.keys(metafile.inputs)) {
  if (input.includes('node_modules/lru-cache/')) continue
  const source = (await readFile(`${root}/${input}`, 'utf8')).replace(/\/\/.*|\/\*[^]*?\*\//g, '')
  if (/\bperformance\b/.test(source)) throw new Error(`${input} uses the global \`performance\`, which the daemon's bundle makes \`Date\` (see define): time with src/sys/clock.ts`)
}
await build({ ...common, entryPoints: [`${root}/dist/src/cli/daemon-start.js`], outfile: `${root}/dist/layerfs-daemon.cjs` })
const text = await readFile(code, 'utf8')
if (/\bimport\(/.test(text)) throw new Error(`${code}: a dynamic import() is left, which the loader cannot run`)
// ASCII throughout, so that the loader reads the code as latin1 into a one-byte string: one
// character outside ASCII makes V8 hold the whole source as two bytes a character, which took
// 0.3 ms more to read and 0.9 ms more to compile from the cache at every mount here. esbuild
// escapes such characters in strings, names and patterns (charset ascii), so what is left is in
// comments, where a \u escape reads as well (or in a String.raw template, whose value it would
// change: the code has none).
const ascii = text.replace(/[^\x00-\x7f]/gu, (c) => `\\u{${c.codePointAt(0).toString(16)}}`)
if (ascii !== text) await writeFile(code, ascii)
