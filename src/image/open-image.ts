/**
 * openImage: the entry point the mount, import and inspect commands share. Resolves an image file
 * reference, unpacks every layer not yet in the store (verifying blob digests and diff_ids), and
 * describes the layers in history order, empty (metadata-only) layers included.
 *
 * Invariant: a layer enters the store only after both its blob digest (when declared) and its diff_id
 * matched; otherwise the import fails and the store is as it was.
 */
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { AutoDecompress } from './decompress.js'
import { DigestMeter } from './digest.js'
import { ImageError } from './errors.js'
import type { HistoryEntry, ImageConfig } from './oci-types.js'
import { noProgress, progressBar, type Progress } from './progress.js'
import { chooseImage, parseImageRef, type LayerBlob, type ResolvedImage } from './resolve.js'
import { openSource, type ImageSource } from './source.js'
import { LayerStore, defaultStoreDir } from './store.js'
import { DEFAULT_MAX_ENTRY_SIZE, unpackLayer } from './unpack.js'

export interface ImageLayer {
  /** Position in the image history (empty layers count). */
  index: number
  /** undefined for an empty layer (a history entry that changed only metadata). */
  diffId: string | undefined
  /** The unpacked layer directory in the store; undefined for an empty layer. */
  dir: string | undefined
  /** Bytes of regular files in the layer (0 when empty). */
  size: number
  /** Blob digest and size as stored in the image file, when known. */
  digest: string | undefined
  blobSize: number | undefined
  createdBy: string
  created: string | undefined
  comment: string | undefined
  empty: boolean
}

export interface OpenedImage {
  ref: string
  path: string
  format: 'oci' | 'docker'
  names: string[]
  manifestDigest: string | undefined
  configDigest: string
  config: ImageConfig
  layers: ImageLayer[]
  store: LayerStore
  /** Layer dirs topmost first: the overlay `lowerdir=` order. */
  lowerDirs(): string[]
}

export interface OpenOptions {
  /** Store directory; default `$XDG_DATA_HOME/layerfs` or `~/.local/share/layerfs`. */
  store?: string | LayerStore
  /** Show a progress bar on stderr (when it is a TTY). */
  progress?: boolean
  maxEntrySize?: number
}

export async function openImage(ref: string, opts: OpenOptions = {}): Promise<OpenedImage> {
  const store = opts.store instanceof LayerStore ? opts.store : new LayerStore(opts.store ?? defaultStoreDir())
  const { path, choice } = await parseImageRef(ref)
  const src = await openSource(path)
  const image = await chooseImage(src, choice)
  await importLayers(src, image, store, opts)
  return describe(ref, path, image, store)
}

async function importLayers(src: ImageSource, image: ResolvedImage, store: LayerStore, opts: OpenOptions): Promise<void> {
  const diffIds = image.config.rootfs.diff_ids
  const byPath = new Map<string, { blob: LayerBlob; diffId: string }>()
  for (const [i, blob] of image.layers.entries()) {
    const diffId = diffIds[i] as string
    if (!(await store.has(diffId))) byPath.set(blob.path, { blob, diffId })
  }
  if (byPath.size === 0) return
  const total = [...byPath.values()].reduce((n, l) => n + (l.blob.size ?? 0), 0)
  const progress = opts.progress ? progressBar('importing', total) : noProgress
  try {
    await src.streamFiles(new Set(byPath.keys()), async (path, body) => {
      const l = byPath.get(path)
      if (!l) return
      await importLayer(body, l.blob, l.diffId, store, progress, opts.maxEntrySize ?? DEFAULT_MAX_ENTRY_SIZE)
    })
  } finally {
    progress.done()
  }
}

/** Unpacks one layer blob into the store, checking both digests before it becomes visible. */
export async function importLayer(
  body: Readable,
  blob: LayerBlob,
  diffId: string,
  store: LayerStore,
  progress: Progress = noProgress,
  maxEntrySize = DEFAULT_MAX_ENTRY_SIZE,
): Promise<void> {
  await store.ensureLayer(diffId, async (root, caps) => {
    const blobMeter = new DigestMeter((n) => progress.add(n))
    const diffMeter = new DigestMeter()
    const tarStream = diffMeter
    const what = `layer ${diffId}`
    const feeding = pipeline(body, blobMeter, new AutoDecompress(), diffMeter).catch((err: unknown) => {
      const msg = err instanceof Error ? err.message : String(err)
      throw new ImageError(`${what} is corrupt or truncated: ${msg}`, { cause: err })
    })
    const [stats] = await Promise.all([
      unpackLayer(tarStream, root, { ...caps, maxEntrySize, what }),
      feeding,
    ])
    if (blob.digest && blobMeter.digest() !== blob.digest) {
      throw new ImageError(`${blob.path}: blob digest mismatch: expected ${blob.digest}, got ${blobMeter.digest()}`)
    }
    if (blob.size !== undefined && blobMeter.bytes !== blob.size) {
      throw new ImageError(`${blob.path}: blob size mismatch: expected ${blob.size}, got ${blobMeter.bytes}`)
    }
    if (diffMeter.digest() !== diffId) {
      throw new ImageError(`${blob.path}: diff_id mismatch: config says ${diffId}, layer content is ${diffMeter.digest()}`)
    }
    return { size: stats.bytes, entries: stats.entries, tarSize: diffMeter.bytes, skippedDevices: stats.skippedDevices }
  })
}

async function describe(ref: string, path: string, image: ResolvedImage, store: LayerStore): Promise<OpenedImage> {
  const diffIds = image.config.rootfs.diff_ids
  const history: HistoryEntry[] = image.config.history ?? []
  const nonEmpty = history.filter((h) => !h.empty_layer).length
  // History that does not line up with the layers is ignored rather than misattributed.
  const usable = nonEmpty === diffIds.length ? history : diffIds.map((): HistoryEntry => ({}))
  const layers: ImageLayer[] = []
  let next = 0
  for (const h of usable) {
    const empty = h.empty_layer === true
    const li = next
    const diffId = empty ? undefined : diffIds[li]
    const blob = empty ? undefined : image.layers[li]
    if (!empty) next++
    layers.push({
      index: layers.length,
      diffId,
      dir: diffId ? store.layerDir(diffId) : undefined,
      size: diffId ? (await store.meta(diffId)).size : 0,
      digest: blob?.digest,
      blobSize: blob?.size,
      createdBy: h.created_by ?? '',
      created: h.created,
      comment: h.comment,
      empty,
    })
  }
  return {
    ref,
    path,
    format: image.format,
    names: image.names,
    manifestDigest: image.manifestDigest,
    configDigest: image.configDigest,
    config: image.config,
    layers,
    store,
    lowerDirs: () => layers.filter((l) => l.dir !== undefined).map((l) => l.dir as string).reverse(),
  }
}
