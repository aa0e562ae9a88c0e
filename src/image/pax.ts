/**
 * PAX extended header records as bytes: `"<len> <key>=<value>\n"`, where len counts the bytes of
 * the whole record (its own digits included). Values are sliced by that byte length and kept as
 * Buffers, never decoded, since xattr values (`SCHILY.xattr.security.capability`) are binary.
 */
import { ImageError } from './errors.js'

/** Records in file order; a later record of the same key replaces an earlier one. */
export type PaxRecords = Map<string, Buffer>

const SPACE = 0x20
const EQUALS = 0x3d

/**
 * Parses the data of a pax (`x` or `g`) entry. Lenient exactly as tar-stream's decodePax is (it stops
 * at the first record without a length or an `=`), so both readers agree on every key, `size` and
 * `path` included, and on where the archive's entries are.
 */
export function parsePaxRecords(data: Uint8Array): PaxRecords {
  const out: PaxRecords = new Map()
  let buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  while (buf.length > 0) {
    let i = 0
    while (i < buf.length && buf[i] !== SPACE) i++
    const len = parseInt(buf.subarray(0, i).toString('utf8'), 10)
    if (!len) break
    const rec = buf.subarray(i + 1, len - 1)
    const eq = rec.indexOf(EQUALS)
    if (eq < 0) break
    // Copies: the input chunk belongs to the stream.
    out.set(rec.subarray(0, eq).toString('utf8'), Buffer.from(rec.subarray(eq + 1)))
    buf = buf.subarray(len)
  }
  return out
}

/** One record with its exact byte length. */
function record(key: string, value: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), value, Buffer.from('\n')])
  let len = body.length + 1
  while (String(len).length + body.length !== len) len = String(len).length + body.length
  return Buffer.concat([Buffer.from(String(len), 'latin1'), body])
}

/** The data of a pax entry holding the records in the given order. */
export function encodePaxRecords(records: Iterable<[string, Uint8Array | string]>): Buffer {
  const parts: Buffer[] = []
  for (const [key, value] of records) {
    if (key === '' || key.includes('=')) throw new ImageError(`invalid PAX key '${key}'`)
    parts.push(record(key, typeof value === 'string' ? Buffer.from(value, 'utf8') : value))
  }
  return Buffer.concat(parts)
}

/**
 * xattrs from PAX records: `SCHILY.xattr.NAME=raw bytes` (GNU tar, Docker, Go) and
 * `LIBARCHIVE.xattr.NAME=base64` (bsdtar, NAME percent-encoded). String records (tar-stream's own
 * decoding) are accepted for callers without raw records, at the cost of non-UTF-8 values.
 */
export function paxXattrs(pax: PaxRecords | Record<string, string> | null | undefined): Array<[string, Buffer]> {
  if (!pax) return []
  const entries: Array<[string, Buffer | string]> = pax instanceof Map ? [...pax] : Object.entries(pax)
  const out: Array<[string, Buffer]> = []
  for (const [key, value] of entries) {
    const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value
    if (key.startsWith('SCHILY.xattr.')) out.push([key.slice('SCHILY.xattr.'.length), bytes])
    else if (key.startsWith('LIBARCHIVE.xattr.')) {
      out.push([decodeURIComponent(key.slice('LIBARCHIVE.xattr.'.length)), Buffer.from(bytes.toString('latin1'), 'base64')])
    }
  }
  return out
}
