// A tree's state, for tests that compare two trees (a mount and kernel overlayfs, a live mount and
// a fresh one): every object under a directory, by relative path, as the test describes it.
import { type Stats, lstatSync, readdirSync } from 'node:fs'
import { join } from 'node:path'

/**
 * `start` under `root` and everything below it, by path relative to `root`, each as `describe`
 * tells it from its lstat and host path; a directory's entries in name order. An object `describe`
 * leaves out (undefined) is skipped, with everything under it.
 */
export function treeOf(root: string, start: string, describe: (st: Stats, path: string) => string | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  const walk = (rel: string): void => {
    const path = join(root, rel)
    const st = lstatSync(path)
    const shown = describe(st, path)
    if (shown === undefined) return
    out[rel || '.'] = shown
    if (st.isDirectory()) for (const name of readdirSync(path).sort()) walk(join(rel, name))
  }
  walk(start)
  return out
}
