/**
 * Reads a tar stream entry by entry with tar-stream, one entry at a time (the handler's promise must
 * settle before the next header is parsed).
 *
 * Tolerance, and only where the archive is unambiguous: a tar whose last entry's data is complete but
 * lacks its 512-byte padding and the end-of-archive blocks (umoci 0.4.7 writes such layers) is
 * accepted. A stream that stops inside an entry's data or inside a header is "truncated" and fails.
 */
import { PassThrough, Transform, type Readable, type TransformCallback } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import tar from 'tar-stream'
import { ImageError } from './errors.js'

export type TarHeader = Omit<tar.Header, 'pax'> & { byteOffset?: number; pax?: Record<string, string> | null }
export type EntryHandler = (header: TarHeader, body: Readable) => Promise<void>

class ByteCounter extends Transform {
  bytes = 0
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length
    cb(null, chunk)
  }
}

/**
 * tar-stream hands out streamx streams, which Node's pipeline() does not always drive to the end;
 * handlers get a plain Node stream fed with backpressure instead.
 */
function nodeStream(entry: tar.Extract extends AsyncIterable<infer S> ? S : never): Readable {
  const pt = new PassThrough()
  entry.on('data', (c: unknown) => {
    if (!pt.write(c as Buffer)) entry.pause()
  })
  pt.on('drain', () => entry.resume())
  entry.on('end', () => pt.end())
  entry.on('error', (err: Error) => pt.destroy(err))
  // The handler sees the error through its reads; a late one after it stopped reading must not crash.
  pt.on('error', () => {})
  return pt
}

const roundUp512 = (n: number) => Math.ceil(n / 512) * 512

export interface ReadTarOptions {
  /** What the tar is, for error messages ("layer sha256:…", "archive x.tar"). */
  what: string
}

export async function readTar(input: Readable, onEntry: EntryHandler, opts: ReadTarOptions): Promise<void> {
  const extract = tar.extract()
  const counter = new ByteCounter()
  let lastDataEnd = 0
  let entryFailed: unknown
  const feeding = pipeline(input, counter, extract).then(
    () => undefined,
    (err: unknown) => err,
  )
  try {
    for await (const entry of extract) {
      const header = entry.header as unknown as TarHeader
      lastDataEnd = (header.byteOffset ?? 0) + (header.type === 'directory' ? 0 : header.size ?? 0)
      const body = nodeStream(entry)
      try {
        await onEntry(header, body)
        // Whatever the handler left unread is skipped, so the next header can be reached.
        if (!body.readableEnded) {
          const ended = new Promise((resolve) => body.once('end', resolve).once('close', resolve))
          body.resume()
          await ended
        }
      } catch (err) {
        entryFailed = err
        entry.destroy()
        throw err
      }
    }
  } catch (err) {
    if (entryFailed !== undefined) {
      input.destroy()
      await feeding
      throw isEndOfData(entryFailed) ? explain(entryFailed, opts.what) : entryFailed
    }
    await feeding
    if (!isEndOfData(err) || !onlyPaddingMissing(counter.bytes, lastDataEnd)) throw explain(err, opts.what)
    return
  }
  const err = await feeding
  if (err !== undefined) {
    if (!isEndOfData(err) || !onlyPaddingMissing(counter.bytes, lastDataEnd)) throw explain(err, opts.what)
  }
}

function isEndOfData(err: unknown): boolean {
  return err instanceof Error && err.message === 'Unexpected end of data'
}

/** The stream ended after the last entry's data but before the padding after it completed. */
function onlyPaddingMissing(total: number, lastDataEnd: number): boolean {
  return total >= lastDataEnd && total < roundUp512(lastDataEnd)
}

function explain(err: unknown, what: string): Error {
  if (err instanceof ImageError) return err
  const msg = err instanceof Error ? err.message : String(err)
  if (isEndOfData(err) || /unexpected end of file/i.test(msg)) {
    return new ImageError(`${what} is truncated (the stream ends inside an entry)`, { cause: err })
  }
  return new ImageError(`${what}: ${msg}`, { cause: err })
}
