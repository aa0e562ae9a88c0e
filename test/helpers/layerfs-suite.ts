// The frame of a describe block whose tests mount layerfs over fresh layer directories: one temp dir
// for the block, every mount undone after each test (failed or not), and a stack builder.
import { existsSync } from 'node:fs'
import { chmod, mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll } from 'vitest'
import { LAYERFS_COMMAND as CLI, type MountHandle, MountSet, mountFuse, mountOverlay } from './mount.js'
import { makeTempDir, removeTempDir } from './tmp.js'


/**
 * A file of a live mount's upper layer, read once it is there. layerfs names a copy-up once its data
 * is flushed (flush_behind), a few milliseconds after the call that made it returned, as overlayfs
 * would after its own fsync: a test of the upper layer right after a copy-up waits for that (5 s at
 * most, then reads whatever is there).
 */
export async function readUpper(path: string): Promise<Buffer> {
  for (let i = 0; i < 500 && !existsSync(path); i++) await new Promise((r) => setTimeout(r, 10))
  return readFile(path)
}

export interface Stack {
  mnt: string
  upper: string
  /** topmost first */
  lowers: string[]
}

export interface LayerfsSuite {
  readonly mounts: MountSet
  /** The block's temp dir (set once beforeAll has run). */
  readonly dir: string
  /**
   * Fresh lower dirs (`lowers` of them, default 1), upper, work and mount point; `fill` writes the
   * lowers (and may mount something on them, through `mounts`), then layerfs is mounted with
   * `options` (',name=value...') appended to the layer options.
   */
  stack(options: string, fill: (...lowers: string[]) => Promise<void>, lowers?: number): Promise<Stack>
}

export interface MountFrame {
  readonly mounts: MountSet
  /** The block's temp dir (set once beforeAll has run). */
  readonly dir: string
  /**
   * Fresh lower dirs (`lowers` of them, default 1), upper, work and mount point; `fill` writes the
   * lowers, then `driver` mounts them: kernel overlayfs, or layerfs with `options` (',name=value...')
   * appended to the layer options (the kernel takes those it has too: metacopy). The differential
   * tests run one script on each.
   */
  stack(driver: 'kernel' | 'layerfs', options: string, fill: (...lowers: string[]) => Promise<void>, lowers?: number): Promise<Stack & { handle: MountHandle }>
  /**
   * `script` run on a stack of its own under kernel overlayfs, then under layerfs (stack()'s
   * arguments), each unmounted once the script is done, failed or not: both results, for the
   * test to compare.
   */
  onBoth<T>(options: string, fill: (...lowers: string[]) => Promise<void>, script: (stack: Stack, driver: 'kernel' | 'layerfs') => Promise<T>, lowers?: number): Promise<{ kernel: T; layerfs: T }>
}

/** Call inside a describe block: one temp dir for the block (mode `dirMode`, for tests that act as
 *  another user), and every mount in `mounts` undone after each test, failed or not. */
export function mountFrame(label: string, dirMode?: number): MountFrame {
  const mounts = new MountSet()
  let dir = ''
  beforeAll(async () => {
    dir = await makeTempDir(label)
    if (dirMode !== undefined) await chmod(dir, dirMode)
  })
  afterEach(async () => {
    await mounts.unmountAll()
  })
  afterAll(async () => {
    await mounts.unmountAll()
    await removeTempDir(dir)
  })
  let n = 0
  return {
    mounts,
    get dir() {
      return dir
    },
    async stack(driver, options, fill, count = 1) {
      const base = join(dir, `s${++n}`)
      const lowers = Array.from({ length: count }, (_, i) => join(base, `lower${i || ''}`))
      const [upper, work, mnt] = ['upper', 'work', 'mnt'].map((d) => join(base, d)) as [string, string, string]
      for (const d of [...lowers, upper, work, mnt]) await mkdir(d, { recursive: true })
      await fill(...lowers)
      const handle = driver === 'kernel'
        ? mounts.add(await mountOverlay({ lowers, upper, work, mnt, options: kernelOptions(options) }))
        : mounts.add(await mountFuse([CLI, '-o', `lowerdir=${lowers.join(':')},upperdir=${upper},workdir=${work}${options}`, mnt], mnt))
      return { mnt, upper, lowers, handle }
    },
    async onBoth(options, fill, script, count = 1) {
      const run = async (driver: 'kernel' | 'layerfs'): Promise<Awaited<ReturnType<typeof script>>> => {
        const { handle, ...stack } = await this.stack(driver, options, fill, count)
        try {
          return await script(stack, driver)
        } finally {
          await mounts.unmount(handle)
        }
      }
      return { kernel: await run('kernel'), layerfs: await run('layerfs') }
    },
  }
}

/** Call inside a describe block: registers its hooks. `dirMode`: for tests that act as another user. */
export function layerfsSuite(label: string, dirMode?: number): LayerfsSuite {
  const frame = mountFrame(label, dirMode)
  return {
    mounts: frame.mounts,
    get dir() {
      return frame.dir
    },
    async stack(options, fill, count = 1) {
      const { mnt, upper, lowers } = await frame.stack('layerfs', options, fill, count)
      return { mnt, upper, lowers }
    },
  }
}

/** The options of a layerfs mount (',name=value...') that kernel overlayfs has too, as its -o list. */
function kernelOptions(options: string): string[] {
  return options.split(',').filter((o) => /^metacopy=/.test(o))
}
