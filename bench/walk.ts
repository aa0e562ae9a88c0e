/** A concurrent tree walker: readdir every directory and hand every entry to a callback, `concurrency`
 * operations in flight (the libuv pool runs them in parallel, as a multi-threaded program would). */
import type { Dirent } from 'node:fs'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'

export interface WalkOptions {
  concurrency?: number
  /** directory names (at any depth) not descended into and not reported */
  skip?: (path: string, d: Dirent) => boolean
}

export function walkTree(root: string, onEntry: (path: string, d: Dirent) => Promise<void> | void, o: WalkOptions = {}): Promise<number> {
  const concurrency = o.concurrency ?? 8
  const dirs: string[] = [root]
  const entries: { path: string; d: Dirent }[] = []
  let active = 0
  let count = 0
  let failed = false
  return new Promise((done, fail) => {
    const onError = (e: unknown): void => { if (!failed) { failed = true; fail(e) } }
    const pump = (): void => {
      if (failed) return
      while (active < concurrency && (entries.length > 0 || dirs.length > 0)) {
        active++
        const e = entries.pop()
        let p: Promise<void>
        if (e !== undefined) {
          count++
          p = Promise.resolve(onEntry(e.path, e.d))
        } else {
          const dir = dirs.pop()!
          p = readdir(dir, { withFileTypes: true }).then((ents) => {
            for (const d of ents) {
              const path = join(dir, d.name)
              if (o.skip?.(path, d)) continue
              entries.push({ path, d })
              if (d.isDirectory()) dirs.push(path)
            }
          })
        }
        p.then(() => { active--; pump() }, onError)
      }
      if (active === 0 && entries.length === 0 && dirs.length === 0) done(count)
    }
    pump()
  })
}

/** Run `fn` over `items` with `concurrency` in flight. */
export async function pool<T>(items: readonly T[], concurrency: number, fn: (x: T, i: number) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++
      await fn(items[i]!, i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker))
}
