/**
 * Test fixtures built in memory with tar-stream: layer tars, OCI layouts (dir or tar) and docker-save
 * archives (legacy and Docker 25+), plus temp dirs that clean up after themselves.
 */
import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import tar from 'tar-stream'

export interface TarEntry {
  name: string
  type?: tar.Header['type']
  content?: string | Buffer
  linkname?: string
  mode?: number
  uid?: number
  gid?: number
  mtime?: Date
  size?: number
  pax?: Record<string, string>
  devmajor?: number
  devminor?: number
}

export async function makeTar(entries: TarEntry[], opts: { end?: boolean } = {}): Promise<Buffer> {
  const pack = tar.pack()
  const chunks: Buffer[] = []
  const done = new Promise<void>((resolve, reject) => {
    pack.on('data', (c: unknown) => chunks.push(c as Buffer))
    pack.on('end', () => resolve())
    pack.on('error', reject)
  })
  for (const e of entries) {
    const type = e.type ?? (e.content !== undefined ? 'file' : e.name.endsWith('/') ? 'directory' : 'file')
    const { content, ...rest } = e
    const header = { mtime: new Date(1_700_000_000_000), mode: type === 'directory' ? 0o755 : 0o644, ...rest, type }
    await new Promise<void>((resolve, reject) =>
      pack.entry(header, type === 'file' ? (content ?? '') : '', (err) => (err ? reject(err) : resolve())),
    )
  }
  pack.finalize()
  await done
  const buf = Buffer.concat(chunks)
  if (opts.end === false) return buf.subarray(0, buf.length - 1024)
  return buf
}

export const sha = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex')

/** A valid zstd frame made of raw (stored) blocks: enough to test decompression without an encoder. */
export function zstdStore(data: Buffer): Buffer {
  const parts: Buffer[] = [Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58])]
  // FHD 0x00: no checksum, no dict, window descriptor present (0x58 → 2^(10+11) window).
  const MAX = 128 * 1024 - 1
  let off = 0
  do {
    const len = Math.min(MAX, data.length - off)
    const last = off + len >= data.length ? 1 : 0
    const hdr = (len << 3) | (0 << 1) | last
    parts.push(Buffer.from([hdr & 0xff, (hdr >> 8) & 0xff, (hdr >> 16) & 0xff]), data.subarray(off, off + len))
    off += len
  } while (off < data.length)
  return Buffer.concat(parts)
}

export type Compression = 'none' | 'gzip' | 'zstd'

export function compress(data: Buffer, c: Compression): Buffer {
  return c === 'gzip' ? gzipSync(data) : c === 'zstd' ? zstdStore(data) : data
}

const layerMediaType = (c: Compression) =>
  'application/vnd.oci.image.layer.v1.tar' + (c === 'gzip' ? '+gzip' : c === 'zstd' ? '+zstd' : '')

export interface FixtureImage {
  tag?: string
  layers: Buffer[]
  compression?: Compression
  history?: Array<{ created_by: string; empty_layer?: boolean }>
  /** Corrupt: the config lists this diff_id instead of the real one for layer 0. */
  badDiffId?: string
}

export function configFor(img: FixtureImage): Buffer {
  const diffIds = img.layers.map((l) => sha(l))
  if (img.badDiffId) diffIds[0] = img.badDiffId
  return Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Cmd: ['/bin/sh'] },
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: img.history ?? img.layers.map((_, i) => ({ created_by: `step ${i}` })),
    }),
  )
}

/** Files of an OCI image layout (path → bytes); nested=true wraps the manifests in a nested index. */
export function ociLayoutFiles(images: FixtureImage[], opts: { nested?: boolean } = {}): Map<string, Buffer> {
  const files = new Map<string, Buffer>()
  const blob = (b: Buffer) => {
    const d = sha(b)
    files.set(`blobs/sha256/${d.slice(7)}`, b)
    return { digest: d, size: b.length }
  }
  const descs = images.map((img) => {
    const c = img.compression ?? 'gzip'
    const layers = img.layers.map((l) => ({ mediaType: layerMediaType(c), ...blob(compress(l, c)) }))
    const config = { mediaType: 'application/vnd.oci.image.config.v1+json', ...blob(configFor(img)) }
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers }))
    return {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      ...blob(manifest),
      ...(img.tag ? { annotations: { 'org.opencontainers.image.ref.name': img.tag } } : {}),
    }
  })
  let top = descs
  if (opts.nested) {
    const inner = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: descs }))
    top = [{ mediaType: 'application/vnd.oci.image.index.v1+json', ...blob(inner) }]
  }
  files.set('oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'))
  files.set('index.json', Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: top })))
  return files
}

/** Files of a docker-save archive: legacy (`<id>/layer.tar`, `<hex>.json`) or Docker 25+ (blobs/sha256). */
export function dockerSaveFiles(images: FixtureImage[], style: 'legacy' | 'v25'): Map<string, Buffer> {
  if (style === 'v25') {
    const files = ociLayoutFiles(images.map((i) => ({ ...i, compression: 'none' as const })))
    const manifest = images.map((img) => ({
      Config: `blobs/sha256/${sha(configFor(img)).slice(7)}`,
      RepoTags: img.tag ? [img.tag] : [],
      Layers: img.layers.map((l) => `blobs/sha256/${sha(l).slice(7)}`),
    }))
    files.set('manifest.json', Buffer.from(JSON.stringify(manifest)))
    return files
  }
  const files = new Map<string, Buffer>()
  const manifest = images.map((img) => {
    const cfg = configFor(img)
    files.set(`${sha(cfg).slice(7)}.json`, cfg)
    const layers = img.layers.map((l, i) => {
      const id = createHash('sha256').update(`${img.tag}-${i}`).digest('hex')
      files.set(`${id}/layer.tar`, l)
      files.set(`${id}/VERSION`, Buffer.from('1.0'))
      return `${id}/layer.tar`
    })
    return { Config: `${sha(cfg).slice(7)}.json`, RepoTags: img.tag ? [img.tag] : null, Layers: layers }
  })
  files.set('manifest.json', Buffer.from(JSON.stringify(manifest)))
  return files
}

export async function writeFilesToDir(dir: string, files: Map<string, Buffer>): Promise<string> {
  for (const [p, data] of files) {
    await mkdir(join(dir, p, '..'), { recursive: true })
    await writeFile(join(dir, p), data)
  }
  return dir
}

export async function writeFilesToTar(file: string, files: Map<string, Buffer>): Promise<string> {
  const entries = [...files].map(([name, content]) => ({ name, content }))
  await writeFile(file, await makeTar(entries))
  return file
}

/** A fresh temp dir and its cleanup. */
export async function tempDir(prefix = 'layerfs-image-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) }
}

/** Runs a command's run() with stdout/stderr captured. */
export async function runCli(run: (args: string[]) => Promise<number>, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = ''
  let stderr = ''
  const capture = (sink: 'out' | 'err') =>
    ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      const s = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8')
      if (sink === 'out') stdout += s
      else stderr += s
      const cb = rest.find((r) => typeof r === 'function') as ((err?: Error) => void) | undefined
      cb?.()
      return true
    }) as typeof process.stdout.write
  const ow = process.stdout.write
  const ew = process.stderr.write
  process.stdout.write = capture('out')
  process.stderr.write = capture('err')
  try {
    const code = await run(args)
    return { code, stdout, stderr }
  } finally {
    process.stdout.write = ow
    process.stderr.write = ew
  }
}
