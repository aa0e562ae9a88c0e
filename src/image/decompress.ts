/**
 * Layer blob decompression, chosen by the blob's first bytes (media types lie: Docker writes
 * `.tar` media types for gzip blobs and vice versa), with gzip from zlib and zstd from fzstd (pure JS).
 */
import { Transform, type TransformCallback } from 'node:stream'
import { createGunzip } from 'node:zlib'
import { Decompress } from 'fzstd'

export type Compression = 'none' | 'gzip' | 'zstd'

const GZIP_MAGIC = [0x1f, 0x8b]
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd]

export function detectCompression(head: Uint8Array): Compression {
  if (GZIP_MAGIC.every((b, i) => head[i] === b)) return 'gzip'
  if (ZSTD_MAGIC.every((b, i) => head[i] === b)) return 'zstd'
  return 'none'
}

/** Node Transform around fzstd's push API. */
class ZstdDecompress extends Transform {
  private readonly dec = new Decompress((data) => {
    this.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength))
  })
  private sawInput = false
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.sawInput = true
      this.dec.push(chunk)
      cb()
    } catch (err) {
      cb(new Error(`zstd: ${(err as Error).message}`))
    }
  }
  override _flush(cb: TransformCallback): void {
    try {
      // fzstd throws on a final push when the frame is incomplete: that is our truncation check.
      if (this.sawInput) this.dec.push(new Uint8Array(0), true)
      cb()
    } catch (err) {
      cb(new Error(`zstd: ${(err as Error).message}`))
    }
  }
}

export function decompressor(kind: Compression): Transform | undefined {
  if (kind === 'gzip') return createGunzip()
  if (kind === 'zstd') return new ZstdDecompress()
  return undefined
}

/**
 * Decompresses whatever comes through, deciding the format from the first 4 bytes. Errors of the
 * inner decompressor (truncated gzip, bad zstd frame) surface as errors of this stream.
 */
export class AutoDecompress extends Transform {
  private head: Buffer[] = []
  private headLen = 0
  private inner: Transform | undefined
  private decided = false
  compression: Compression = 'none'

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (!this.decided) {
      this.head.push(chunk)
      this.headLen += chunk.length
      if (this.headLen < 4) return cb()
      this.decide()
      chunk = Buffer.concat(this.head)
      this.head = []
    }
    this.forward(chunk, cb)
  }

  override _flush(cb: TransformCallback): void {
    const finish = () => {
      if (!this.inner) return cb()
      const inner = this.inner
      inner.once('end', () => cb())
      inner.once('error', (err) => cb(err))
      inner.end()
    }
    if (!this.decided) {
      // Fewer than 4 bytes in all: too few for a compressed stream, and handed on as they are (a
      // reader of 3 bytes of tar finds it truncated).
      this.decide()
      const rest = Buffer.concat(this.head)
      this.head = []
      if (rest.length > 0) {
        return this.forward(rest, (err, data?: unknown) => {
          if (err) return cb(err)
          if (data) this.push(data as Buffer)
          finish()
        })
      }
    }
    finish()
  }

  private decide(): void {
    this.decided = true
    this.compression = detectCompression(Buffer.concat(this.head))
    this.inner = decompressor(this.compression)
    const inner = this.inner
    // Backpressure: pause the inner decompressor while our reader is full (it then holds its write
    // callbacks, which holds ours).
    inner?.on('data', (d: Buffer) => {
      if (!this.push(d)) inner.pause()
    })
    // Its errors are ours, whenever they come: a Transform reports one through the write's callback
    // and then emits it, when forward() listens no more.
    inner?.on('error', (err) => this.destroy(err))
  }

  override _read(size: number): void {
    this.inner?.resume()
    super._read(size)
  }

  private forward(chunk: Buffer, cb: TransformCallback): void {
    if (!this.inner) return cb(null, chunk)
    const inner = this.inner
    let settled = false
    const onError = (err: Error) => {
      if (!settled) { settled = true; cb(err) }
    }
    inner.once('error', onError)
    inner.write(chunk, (err) => {
      inner.off('error', onError)
      if (!settled) { settled = true; cb(err ?? null) }
    })
  }
}
