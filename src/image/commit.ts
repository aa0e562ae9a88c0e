/**
 * `commit`: writes a new image = a base image + one layer made from a container's upper dir, as an
 * OCI layout directory (`--format oci`, tag in `org.opencontainers.image.ref.name`) or a docker-save
 * tar (`--format docker`, Docker 25+ layout that also carries index.json).
 *
 * Invariants: base layer blobs are copied byte for byte (their digests, verified on the way, stay
 * valid); every blob lands under its own digest by rename of a complete temp file; index.json (or
 * the output tar) is written last, so a failed commit never leaves a tag pointing at missing blobs.
 */
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { Transform, type Readable, type TransformCallback } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGzip } from 'node:zlib'
import tar from 'tar-stream'
import { isErrno } from '../layers/whiteout.js'
import { detectCompression } from './decompress.js'
import { DigestMeter, digestHex, sha256Digest } from './digest.js'
import { ImageError } from './errors.js'
import { packUpperDir } from './layer-pack.js'
import { MT, REF_NAME, type Descriptor, type ImageConfig, type OciIndex } from './oci-types.js'
import { chooseImage, parseImageRef } from './resolve.js'
import { openSource } from './source.js'

export interface CommitOptions {
  upper: string
  /** Base image reference (FILE, FILE:TAG, FILE@N). */
  from: string
  tag: string
  out: string
  format: 'oci' | 'docker'
  comment?: string
  /** Creation time written to config and history; default SOURCE_DATE_EPOCH or now. */
  created?: Date
}

export interface CommitResult {
  manifestDigest: string
  configDigest: string
  layer: Descriptor
  diffId: string
}

class HeadCapture extends Transform {
  head = Buffer.alloc(0)
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    if (this.head.length < 4) this.head = Buffer.concat([this.head, chunk.subarray(0, 4 - this.head.length)])
    cb(null, chunk)
  }
}

const layerType = (head: Buffer) =>
  ({ gzip: MT.ociLayerGzip, zstd: MT.ociLayerZstd, none: MT.ociLayer })[detectCompression(head)]

/** Streams a blob into `layout/blobs/sha256/` under its digest; verifies it when expected is given. */
async function writeBlob(layout: string, body: Readable, expected?: string): Promise<{ digest: string; size: number; head: Buffer }> {
  const dir = join(layout, 'blobs', 'sha256')
  await mkdir(dir, { recursive: true })
  const tmp = join(dir, `.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`)
  const meter = new DigestMeter()
  const head = new HeadCapture()
  try {
    await pipeline(body, head, meter, createWriteStream(tmp))
    const digest = meter.digest()
    if (expected && digest !== expected) throw new ImageError(`blob digest mismatch: expected ${expected}, got ${digest}`)
    await rename(tmp, join(dir, digestHex(digest)))
    return { digest, size: meter.bytes, head: head.head }
  } finally {
    await rm(tmp, { force: true })
  }
}

async function writeJsonBlob(layout: string, data: Buffer, mediaType: string): Promise<Descriptor> {
  const digest = sha256Digest(data)
  await mkdir(join(layout, 'blobs', 'sha256'), { recursive: true })
  await writeFile(join(layout, 'blobs', 'sha256', digestHex(digest)), data)
  return { mediaType, digest, size: data.length }
}

function creationTime(opts: CommitOptions): Date {
  if (opts.created) return opts.created
  const epoch = process.env.SOURCE_DATE_EPOCH
  return epoch && /^\d+$/.test(epoch) ? new Date(Number(epoch) * 1000) : new Date()
}

/** Writes base blobs, the new layer, config and manifest into `layout`; returns the manifest descriptor. */
async function buildLayout(layout: string, opts: CommitOptions): Promise<CommitResult & { manifest: Descriptor; configDesc: Descriptor; layers: Descriptor[] }> {
  const upperSt = await stat(opts.upper).catch(() => undefined)
  if (!upperSt?.isDirectory()) throw new ImageError(`upper dir ${opts.upper} is not a directory`)
  const { path, choice } = await parseImageRef(opts.from)
  const src = await openSource(path)
  const base = await chooseImage(src, choice)

  const layers = new Map<string, Descriptor>()
  await src.streamFiles(new Set(base.layers.map((l) => l.path)), async (p, body) => {
    const blob = base.layers.find((l) => l.path === p)
    const w = await writeBlob(layout, body, blob?.digest)
    layers.set(p, { mediaType: layerType(w.head), digest: w.digest, size: w.size })
  })
  const baseLayers = base.layers.map((l) => layers.get(l.path) as Descriptor)

  const diffMeter = new DigestMeter()
  const gz = createGzip()
  const feeding = pipeline(packUpperDir(opts.upper), diffMeter, gz)
  const [w] = await Promise.all([writeBlob(layout, gz), feeding])
  const layer: Descriptor = { mediaType: MT.ociLayerGzip, digest: w.digest, size: w.size }
  const diffId = diffMeter.digest()

  const created = creationTime(opts).toISOString()
  const config = structuredClone(base.config) as ImageConfig
  config.created = created
  config.rootfs = { type: 'layers', diff_ids: [...base.config.rootfs.diff_ids, diffId] }
  config.history = [
    ...(base.config.history ?? []),
    { created, created_by: 'layerfs commit', ...(opts.comment ? { comment: opts.comment } : {}) },
  ]
  const configDesc = await writeJsonBlob(layout, Buffer.from(JSON.stringify(config)), MT.ociConfig)
  const allLayers = [...baseLayers, layer]
  const manifestBytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.ociManifest, config: configDesc, layers: allLayers }))
  const manifest = await writeJsonBlob(layout, manifestBytes, MT.ociManifest)
  return { manifest, configDesc, layers: allLayers, manifestDigest: manifest.digest, configDigest: configDesc.digest, layer, diffId }
}

async function writeIndex(layout: string, manifest: Descriptor, tag: string): Promise<void> {
  let index: OciIndex = { schemaVersion: 2, mediaType: MT.ociIndex, manifests: [] }
  try {
    index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as OciIndex
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw new ImageError(`cannot read ${join(layout, 'index.json')}`, { cause: err })
  }
  index.manifests = index.manifests.filter((m) => m.annotations?.[REF_NAME] !== tag)
  index.manifests.push({ ...manifest, annotations: { [REF_NAME]: tag } })
  await writeFile(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}')
  const tmp = join(layout, `.index.json.${process.pid}`)
  await writeFile(tmp, JSON.stringify(index))
  await rename(tmp, join(layout, 'index.json'))
}

export async function commitImage(opts: CommitOptions): Promise<CommitResult> {
  if (opts.format === 'oci') {
    await mkdir(opts.out, { recursive: true })
    const r = await buildLayout(opts.out, opts)
    await writeIndex(opts.out, r.manifest, opts.tag)
    return r
  }
  const staging = await mkdtemp(join(dirname(opts.out), '.layerfs-commit-'))
  try {
    const r = await buildLayout(staging, opts)
    // A tag follows the last ':' after the last '/': `localhost:5000/app` names a registry's port.
    const repoTag = opts.tag.slice(opts.tag.lastIndexOf('/') + 1).includes(':') ? opts.tag : `${opts.tag}:latest`
    await writeIndex(staging, r.manifest, repoTag)
    const blob = (d: Descriptor) => `blobs/sha256/${digestHex(d.digest)}`
    const manifestJson = [{ Config: blob(r.configDesc), RepoTags: [repoTag], Layers: r.layers.map(blob) }]
    await writeFile(join(staging, 'manifest.json'), JSON.stringify(manifestJson))
    const files = ['oci-layout', 'index.json', 'manifest.json', ...new Set([r.manifest, r.configDesc, ...r.layers].map(blob))]
    const tmpOut = `${opts.out}.tmp-${process.pid}`
    try {
      await pipeline(packFiles(staging, files.sort()), createWriteStream(tmpOut))
      await rename(tmpOut, opts.out)
    } finally {
      await rm(tmpOut, { force: true })
    }
    return r
  } finally {
    await rm(staging, { recursive: true, force: true })
  }
}

function packFiles(dir: string, files: string[]): Readable {
  const pack = tar.pack()
  ;(async () => {
    for (const f of files) {
      const { size } = await stat(join(dir, f))
      await new Promise<void>((resolve, reject) => {
        const sink = pack.entry({ name: f, size, mode: 0o644, mtime: new Date(0) }, (err) => (err ? reject(err) : resolve()))
        createReadStream(join(dir, f)).on('error', reject).pipe(sink as unknown as NodeJS.WritableStream)
      })
    }
    pack.finalize()
  })().catch((err: unknown) => pack.destroy(err instanceof Error ? err : new Error(String(err))))
  return pack as unknown as Readable
}
