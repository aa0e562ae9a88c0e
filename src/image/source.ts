/**
 * Where an image's files come from: an OCI layout directory, or a tar (docker save, OCI archive),
 * possibly gzip/zstd-compressed as a whole. Paths are layout-relative (`index.json`,
 * `blobs/sha256/<hex>`, `<id>/layer.tar`).
 *
 * A tar cannot be read at random, so a TarSource reads it once at open to keep the small JSON files
 * (manifests, configs, indexes) in memory, and streams the big entries in one more pass when asked.
 */
import { createReadStream } from 'node:fs'
import { open, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { isErrno } from '../layers/whiteout.js'
import { AutoDecompress } from './decompress.js'
import { ImageError } from './errors.js'
import { entryComponents } from './safe-path.js'
import { readTar } from './tar-reader.js'

/** Largest metadata file (manifest, index, config) read into memory. */
export const MAX_METADATA_SIZE = 16 * 1024 * 1024

export interface ImageSource {
  readonly label: string
  readonly kind: 'dir' | 'tar'
  /** A metadata file's bytes, or undefined when the file is absent. */
  readFile(path: string): Promise<Buffer | undefined>
  /** Size of a file, or undefined when absent. */
  sizeOf(path: string): Promise<number | undefined>
  /** Streams each wanted file once, in the order cheapest for the source; fails if one is missing. */
  streamFiles(paths: ReadonlySet<string>, fn: (path: string, body: Readable) => Promise<void>): Promise<void>
}

export function normalizeLayoutPath(p: string): string {
  if (p.split('/').includes('..')) throw new ImageError(`the image names the path '${p}', which points outside it ('..')`)
  return entryComponents(p).join('/')
}

export async function openSource(path: string): Promise<ImageSource> {
  let st
  try {
    st = await stat(path)
  } catch (err) {
    if (isErrno(err, 'ENOENT')) throw new ImageError(`${path}: no such file or directory`)
    throw err
  }
  if (st.isDirectory()) return new DirSource(path)
  const src = new TarSource(path)
  await src.scan()
  return src
}

class DirSource implements ImageSource {
  readonly kind = 'dir'
  constructor(readonly label: string) {}

  private abs(p: string): string {
    return join(this.label, normalizeLayoutPath(p))
  }

  async sizeOf(p: string): Promise<number | undefined> {
    let st
    try {
      st = await stat(this.abs(p))
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR')) return undefined
      throw err
    }
    // A device or a fifo (a blob linked to /dev/zero) would be read without end.
    if (!st.isFile()) throw new ImageError(`${p} in ${this.label} is not a regular file`)
    return st.size
  }

  async readFile(p: string): Promise<Buffer | undefined> {
    let fh
    try {
      fh = await open(this.abs(p), 'r')
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR')) return undefined
      throw err
    }
    try {
      const st = await fh.stat()
      if (!st.isFile()) throw new ImageError(`${p} in ${this.label} is not a regular file`)
      const size = st.size
      if (size > MAX_METADATA_SIZE) throw new ImageError(`${p} in ${this.label} is too large for metadata (${size} bytes)`)
      return await fh.readFile()
    } finally {
      await fh.close()
    }
  }

  async streamFiles(paths: ReadonlySet<string>, fn: (path: string, body: Readable) => Promise<void>): Promise<void> {
    for (const p of [...paths].sort()) {
      if ((await this.sizeOf(p)) === undefined) throw new ImageError(`${p} is missing from ${this.label}`)
      const body = createReadStream(this.abs(p))
      try {
        await fn(p, body)
      } finally {
        body.destroy()
      }
    }
  }
}

class TarSource implements ImageSource {
  readonly kind = 'tar'
  private readonly small = new Map<string, Buffer>()
  private readonly sizes = new Map<string, number>()
  constructor(readonly label: string) {}

  private read(onEntry: (name: string, size: number, body: Readable) => Promise<void>): Promise<void> {
    const input = createReadStream(this.label).pipe(new AutoDecompress())
    return readTar(
      input,
      async (h, body) => {
        if (h.type !== 'file' && h.type !== 'contiguous-file') return
        await onEntry(normalizeLayoutPath(h.name), h.size ?? 0, body)
      },
      { what: `archive ${this.label}` },
    )
  }

  async scan(): Promise<void> {
    await this.read(async (name, size, body) => {
      this.sizes.set(name, size)
      if (size > 64 * 1024) return
      const chunks: Buffer[] = []
      for await (const c of body) chunks.push(c as Buffer)
      const data = Buffer.concat(chunks)
      // Only JSON is metadata; small layers are streamed again like big ones.
      if (data[0] === 0x7b /* { */ || data[0] === 0x5b /* [ */ || name === 'oci-layout') this.small.set(name, data)
    })
  }

  async sizeOf(p: string): Promise<number | undefined> {
    return this.sizes.get(normalizeLayoutPath(p))
  }

  async readFile(p: string): Promise<Buffer | undefined> {
    const name = normalizeLayoutPath(p)
    const data = this.small.get(name)
    if (data) return data
    const size = this.sizes.get(name)
    if (size === undefined) return undefined
    if (size > MAX_METADATA_SIZE) throw new ImageError(`${p} in ${this.label} is too large for metadata (${size} bytes)`)
    let found: Buffer | undefined
    await this.read(async (n, _s, body) => {
      if (n !== name) return
      const chunks: Buffer[] = []
      for await (const c of body) chunks.push(c as Buffer)
      found = Buffer.concat(chunks)
    })
    if (found) this.small.set(name, found)
    return found
  }

  async streamFiles(paths: ReadonlySet<string>, fn: (path: string, body: Readable) => Promise<void>): Promise<void> {
    const wanted = new Set([...paths].map(normalizeLayoutPath))
    for (const p of wanted) if (!this.sizes.has(p)) throw new ImageError(`${p} is missing from ${this.label}`)
    const seen = new Set<string>()
    await this.read(async (name, _size, body) => {
      if (!wanted.has(name) || seen.has(name)) return
      seen.add(name)
      await fn(name, body)
    })
  }
}
