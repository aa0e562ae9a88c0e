/**
 * The layer store: unpacked layers, content-addressed by diff_id and shared between images.
 *
 * Layout: `STORE/layers/sha256/<hex>/{root/,meta.json}`; work in progress lives in `STORE/tmp/`.
 * Invariants: a layer directory appears by one rename of a complete temp dir (never half a layer);
 * a failed unpack removes its temp dir; an existing layer is never rewritten (first writer wins).
 * Temp dirs a crashed import left behind are removed before this store's first import (stale-tmp.ts).
 */
import { mkdir, mkdtemp, readFile, rename, stat, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { isErrno } from '../layers/whiteout.js'
import { probeCapabilities, type Capabilities } from './capabilities.js'
import { digestHex } from './digest.js'
import { ImageError } from './errors.js'
import { removeWorkDir, sweepStaleTmp, workDirPrefix } from './stale-tmp.js'
import type { WhiteoutFormat } from './unpack.js'

export interface LayerMeta {
  diffId: string
  whiteouts: WhiteoutFormat
  /** Sum of regular file sizes. */
  size: number
  entries: number
  /** Uncompressed tar bytes. */
  tarSize: number
  skippedDevices: number
}

export function defaultStoreDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_DATA_HOME && env.XDG_DATA_HOME !== '' ? env.XDG_DATA_HOME : join(homedir(), '.local', 'share')
  return join(base, 'layerfs')
}

export class LayerStore {
  private swept: Promise<unknown> | undefined

  constructor(
    readonly root: string,
    private readonly overrides: Partial<Capabilities> = {},
  ) {}

  private layerBase(diffId: string): string {
    return join(this.root, 'layers', 'sha256', digestHex(diffId))
  }

  /** The directory holding the layer's files (the overlay lower dir). */
  layerDir(diffId: string): string {
    return join(this.layerBase(diffId), 'root')
  }

  async has(diffId: string): Promise<boolean> {
    try {
      await stat(join(this.layerBase(diffId), 'meta.json'))
      return true
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false
      throw err
    }
  }

  async meta(diffId: string): Promise<LayerMeta> {
    try {
      return JSON.parse(await readFile(join(this.layerBase(diffId), 'meta.json'), 'utf8')) as LayerMeta
    } catch (err) {
      throw new ImageError(`layer ${diffId} is not in the store ${this.root}`, { cause: err })
    }
  }

  /** Removes temp dirs left by imports that died (once per LayerStore object). */
  sweepTmp(): Promise<unknown> {
    this.swept ??= sweepStaleTmp(join(this.root, 'tmp'))
    return this.swept
  }

  async capabilities(): Promise<Capabilities> {
    const probed = await probeCapabilities(join(this.root, 'tmp'))
    const caps = { ...probed, ...this.overrides }
    // Kernel whiteouts are only possible where probing found them possible.
    if (probed.whiteouts === 'marker') caps.whiteouts = 'marker'
    return caps
  }

  /**
   * Makes the layer exist: unless present, `fill(rootDir, caps)` writes it into a temp dir that is
   * renamed into place when fill resolves, and removed when it throws.
   */
  async ensureLayer(
    diffId: string,
    fill: (rootDir: string, caps: Capabilities) => Promise<Omit<LayerMeta, 'diffId' | 'whiteouts'>>,
  ): Promise<LayerMeta> {
    if (await this.has(diffId)) return this.meta(diffId)
    await this.sweepTmp()
    const caps = await this.capabilities()
    const tmpParent = join(this.root, 'tmp')
    await mkdir(tmpParent, { recursive: true })
    await mkdir(join(this.root, 'layers', 'sha256'), { recursive: true })
    const tmp = await mkdtemp(workDirPrefix(tmpParent, 'layer'))
    try {
      const rootDir = join(tmp, 'root')
      await mkdir(rootDir, { mode: 0o755 })
      const filled = await fill(rootDir, caps)
      const meta: LayerMeta = { diffId, whiteouts: caps.whiteouts, ...filled }
      await writeFile(join(tmp, 'meta.json'), JSON.stringify(meta, null, 2) + '\n')
      try {
        await rename(tmp, this.layerBase(diffId))
      } catch (err) {
        // Another import finished the same layer first: theirs is as good as ours.
        if (!isErrno(err, 'ENOTEMPTY', 'EEXIST')) throw err
        await removeWorkDir(tmp)
      }
      return meta
    } catch (err) {
      // The failure is what to report: one removing its leftovers must not take its place (the
      // next import's sweep removes them).
      await removeWorkDir(tmp).catch(() => {})
      throw err
    }
  }
}
