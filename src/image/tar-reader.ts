/**
 * Reads a tar stream entry by entry with tar-stream, one entry at a time (the handler's promise must
 * settle before the next header is parsed).
 *
 * Tolerance, and only where the archive is unambiguous: a tar whose last entry's data is complete but
 * lacks its 512-byte padding and the end-of-archive blocks (umoci 0.4.7 writes such layers) is
 * accepted. A stream that stops inside an entry's data or inside a header is "truncated" and fails.
 *
 * Headers carry `paxRaw`, the entry's PAX records as bytes (see pax-tap.ts), next to tar-stream's
 * UTF-8-decoded `pax`; the two must agree on the keys and their text, or the archive is refused.
 *
 * Entry names and link targets are bytes, as a filesystem's names are: they come out as the union
 * carries names (sys/names.ts), escaped where they are not UTF-8, never replaced.
 */
import { PassThrough, Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import tar from 'tar-stream'
import { nameFromBytes } from '../sys/names.js'
import { ImageError, errorMessage } from './errors.js'
import type { PaxRecords } from './pax.js'
import { PaxTap } from './pax-tap.js'

export type TarHeader = Omit<tar.Header, 'pax'> & {
  byteOffset?: number
  pax?: Record<string, string> | null
  /** The same records as `pax`, values as raw bytes. */
  paxRaw?: PaxRecords
}
export type EntryHandler = (header: TarHeader, body: Readable) => Promise<void>

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
  // Latin-1: one character per byte of the header's name fields, for entryName to take back.
  // (tar-stream takes the option; its type definitions do not list it.)
  const extract = tar.extract({ filenameEncoding: 'latin1' } as Parameters<typeof tar.extract>[0])
  const tap = new PaxTap()
  let lastDataEnd = 0
  let entryFailed: unknown
  const feeding = pipeline(input, tap, extract).then(
    () => undefined,
    (err: unknown) => err,
  )
  try {
    for await (const entry of extract) {
      const header = entry.header as unknown as TarHeader
      const raw = tap.recordsAt(header.byteOffset ?? -1)
      if (!paxAgrees(header.pax, raw)) {
        entryFailed = new ImageError(`${opts.what}: entry '${header.name}' has PAX records that cannot be read consistently`)
        entry.destroy()
        throw entryFailed
      }
      if (raw) header.paxRaw = raw
      header.name = entryName(header.name, raw?.get('path'))
      if (header.linkname != null) header.linkname = entryName(header.linkname, raw?.get('linkpath'))
      lastDataEnd = (header.byteOffset ?? 0) + (header.type === 'directory' ? 0 : header.size ?? 0)
      // A directory has no data in the archive, whatever its size field says (tar-stream reads none,
      // and its stream of a directory declaring some never ends): its body is empty.
      const body = header.type === 'directory' ? Readable.from([]) : nodeStream(entry)
      try {
        await onEntry(header, body)
        // Whatever the handler left unread is skipped, so the next header can be reached.
        if (!body.readableEnded && header.type !== 'directory') {
          const ended = new Promise((resolve) => body.once('end', resolve).once('close', resolve))
          body.resume()
          await ended
        }
      } catch (err) {
        // A system call's error names a host path: say which entry it was for.
        entryFailed = err instanceof ImageError || isEndOfData(err) ? err : new ImageError(`${opts.what}: entry '${header.name}': ${errorMessage(err)}`, { cause: err })
        entry.destroy()
        throw entryFailed
      }
    }
  } catch (err) {
    if (entryFailed !== undefined) {
      input.destroy()
      await feeding
      throw isEndOfData(entryFailed) ? explain(entryFailed, opts.what) : entryFailed
    }
    await feeding
    if (!isEndOfData(err) || !onlyPaddingMissing(tap.bytes, lastDataEnd)) throw explain(err, opts.what)
    return
  }
  const err = await feeding
  if (err !== undefined) {
    if (!isEndOfData(err) || !onlyPaddingMissing(tap.bytes, lastDataEnd)) throw explain(err, opts.what)
  }
}

/** A name from the header fields (as Latin-1 text, byte for byte), or from its PAX record, which
 *  holds the bytes themselves and wins. */
function entryName(latin1: string, pax: Buffer | undefined): string {
  if (pax !== undefined) return nameFromBytes(pax)
  return /^[\x00-\x7f]*$/.test(latin1) ? latin1 : nameFromBytes(Buffer.from(latin1, 'latin1'))
}

function paxAgrees(pax: Record<string, string> | null | undefined, raw: PaxRecords | undefined): boolean {
  if (!pax || !raw) return !pax === !raw
  const keys = Object.keys(pax)
  return keys.length === raw.size && keys.every((k) => raw.get(k)?.toString('utf8') === pax[k])
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
