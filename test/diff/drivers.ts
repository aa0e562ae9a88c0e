// Drivers under test, selected with DIFF_DRIVER (default: layerfs). Each takes overlayfs-style layer
// options and returns once the FUSE mount is live.
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { LAYERFS_COMMAND as LAYERFS, mountFuse, mountOverlay, type MountHandle } from '../helpers/mount.js'

/** 'kernel' (kernel vs kernel) is a self-check of the harness: every scenario must come out equal.
 *  'layerfs-fuse-native' is layerfs served by its second bridge (bridge=fuse-native, libfuse 2). */
export type DriverName = 'layerfs' | 'layerfs-fuse-native' | 'fuse-overlayfs' | 'kernel'

export interface LayerDirs {
  /** [0] = topmost lower */
  lowers: string[]
  /** absent: read-only mount */
  upper?: string
  work?: string
  mnt: string
  /** extra mount options, passed to every driver */
  options?: string[]
}

export interface Driver {
  name: DriverName
  /** Why the driver cannot run here (a failure, not a skip), or undefined. */
  problem(): string | undefined
  mount(d: LayerDirs): Promise<MountHandle>
}

export const REPO = resolve(import.meta.dirname, '../..')

function fuseOptions(d: LayerDirs): string {
  const o = [`lowerdir=${d.lowers.join(':')}`]
  if (d.upper !== undefined) o.push(`upperdir=${d.upper}`, `workdir=${d.work ?? ''}`)
  return [...o, ...(d.options ?? [])].join(',')
}

export const kernel: Driver = {
  name: 'kernel',
  problem: () => undefined,
  mount: (d) => mountOverlay(d),
}

export const layerfs: Driver = {
  name: 'layerfs',
  problem() {
    const main = resolve(REPO, 'dist/src/cli/main.js')
    if (!existsSync(main))
      return `DIFF_DRIVER=layerfs but layerfs is not built (${main} does not exist): run \`npm run build\`, or set DIFF_DRIVER=fuse-overlayfs`
    return undefined
  },
  // LAYERFS_OPTS adds mount options (e.g. bridge=fuse-native) to compare configurations.
  mount: (d) => mountFuse([LAYERFS, '-o', [fuseOptions(d), process.env.LAYERFS_OPTS].filter(Boolean).join(','), d.mnt], d.mnt, { timeoutMs: 15_000 }),
}

/** layerfs with more mount options (the comparison is the same: the name stays 'layerfs'). */
export function layerfsWith(options: string): Driver {
  return {
    ...layerfs,
    mount: (d) => mountFuse([LAYERFS, '-o', [fuseOptions(d), options].join(','), d.mnt], d.mnt, { timeoutMs: 15_000 }),
  }
}

/** layerfs through the fuse-native bridge: its own name, since libfuse 2 and the fuse-native package
 *  cannot carry everything (known-differences.ts lists what). */
export const layerfsFuseNative: Driver = {
  ...layerfs,
  name: 'layerfs-fuse-native',
  mount: (d) => mountFuse([LAYERFS, '-o', [fuseOptions(d), 'bridge=fuse-native'].join(','), d.mnt], d.mnt, { timeoutMs: 15_000 }),
}

export const fuseOverlayfs: Driver = {
  name: 'fuse-overlayfs',
  problem() {
    const found = (process.env.PATH ?? '').split(':').some((p) => p !== '' && existsSync(`${p}/fuse-overlayfs`))
    return found ? undefined : 'DIFF_DRIVER=fuse-overlayfs but fuse-overlayfs is not installed'
  },
  mount: (d) => mountFuse(['fuse-overlayfs', '-o', fuseOptions(d), d.mnt], d.mnt, { timeoutMs: 15_000 }),
}

export function selectedDriver(): Driver {
  const name = process.env.DIFF_DRIVER ?? 'layerfs'
  switch (name) {
    case 'layerfs':
      return layerfs
    case 'layerfs-fuse-native':
      return layerfsFuseNative
    case 'fuse-overlayfs':
      return fuseOverlayfs
    case 'kernel':
      return kernel
    default:
      return {
        name: name as DriverName,
        problem: () => `unknown DIFF_DRIVER=${name} (expected layerfs, layerfs-fuse-native, fuse-overlayfs or kernel)`,
        mount: () => Promise.reject(new Error(`unknown DIFF_DRIVER=${name}`)),
      }
  }
}
