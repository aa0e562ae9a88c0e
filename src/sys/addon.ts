/**
 * Loads the N-API addon (build/Release/layerfs_native.node, built by `npm ci`) for the typed wrappers
 * in this directory, the only modules that touch it. Loaded on first use, not at import, so code that
 * never needs it (--help, the image commands' parsing) works where it was not built.
 */
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The package's root directory. The compiled file sits at dist/src/sys/, the source at src/sys/
 *  (vitest runs it directly) and the daemon's bundle at dist/: files are found from the root
 *  rather than by a fixed relative path. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir)
    if (parent === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`)
    dir = parent
  }
  return dir
}

let addon: unknown

/** The addon's exports, typed by the caller. Throws a clear error when it is not built. */
export function loadAddon<T>(): T {
  if (addon) return addon as T
  try {
    // process.dlopen, as require does for a .node file: through require, node:module was loaded
    // for it (createRequire in an ES module), 0.8 ms of a mount.
    const loaded = { exports: {} as unknown }
    process.dlopen(loaded, join(packageRoot(), 'build', 'Release', 'layerfs_native.node'))
    addon = loaded.exports
    return addon as T
  } catch (cause) {
    const detail = cause instanceof Error ? cause.message : String(cause)
    throw new Error(`layerfs native addon not available; run \`npm install\` to build it (${detail})`, { cause })
  }
}
