/**
 * Encodes tar entry headers (ustar, as tar-stream's pack lays them out) with a PAX `x` header in
 * front when the entry needs one: a name or link target ustar cannot hold, a uid/gid over 6 octal
 * digits, an mtime before 1970 or past 11 octal digits (2242), or xattrs. Sizes and device numbers
 * too big for their octal fields are written in base-256, as GNU tar writes them. tar-stream's
 * pack writes PAX values as strings only; here every record is written from bytes with its exact
 * byte length, so binary xattr values survive, and so do names that are not UTF-8 (union strings,
 * sys/names.ts: their bytes go in the `path` and `linkpath` records, marked `hdrcharset=BINARY`
 * as POSIX has it).
 *
 * The caller writes the entry's data after the header bytes, then `padding(size)`, and ends the
 * archive with `END_OF_ARCHIVE`.
 */
import { hostBytes } from '../sys/names.js'
import { ImageError } from './errors.js'
import { encodePaxRecords } from './pax.js'

export type EntryType = 'file' | 'link' | 'symlink' | 'character-device' | 'block-device' | 'directory' | 'fifo'

export interface EntryHeader {
  name: string
  type: EntryType
  mode: number
  uid: number
  gid: number
  /** Data bytes (files only; 0 otherwise). */
  size: number
  mtime: Date
  linkname?: string
  devmajor?: number
  devminor?: number
  /** Written as `SCHILY.xattr.NAME` records, in this order. */
  xattrs?: Array<[string, Uint8Array]>
}

const BLOCK = 512
export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK)
const TYPEFLAG: Record<EntryType | 'pax-header', string> = {
  file: '0', link: '1', symlink: '2', 'character-device': '3', 'block-device': '4', directory: '5', fifo: '6', 'pax-header': 'x',
}
const MAX_ID = 0o777777 // 6 octal digits, as tar-stream writes ids
const MAX_MTIME = 0o77777777777 // 11 octal digits

export function padding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK)
}

/** `digits` octal digits and a space, or all sevens when the value does not fit. */
function oct(value: number, digits: number): string {
  const s = Math.max(0, Math.floor(value)).toString(8)
  return s.length > digits ? '7'.repeat(digits) + ' ' : s.padStart(digits, '0') + ' '
}

/** ustar name/prefix split (at the first '/' that makes name fit), or undefined when impossible. */
function splitName(full: string): { name: string; prefix: string } | undefined {
  if (!/^[\x01-\x7f]*$/.test(full)) return undefined // ustar fields hold ASCII here; the rest goes to PAX
  let name = full
  let prefix = ''
  while (name.length > 100) {
    const i = name.indexOf('/')
    if (i === -1) return undefined
    prefix += prefix ? '/' + name.slice(0, i) : name.slice(0, i)
    name = name.slice(i + 1)
  }
  return prefix.length > 155 ? undefined : { name, prefix }
}

interface RawHeader {
  name: string
  prefix: string
  type: EntryType | 'pax-header'
  mode: number
  uid: number
  gid: number
  size: number
  mtime: Date
  linkname: string
  devmajor: number
  devminor: number
}

/** `value` into the numeric field at [at, at + width): `digits` octal digits and a space where it
 *  fits them (as tar-stream writes it), else base-256 (a first byte of 0x80, then the value
 *  big-endian). */
function numeric(buf: Buffer, at: number, width: number, digits: number, value: number): void {
  if (value.toString(8).length <= digits) {
    buf.write(oct(value, digits), at, 'latin1')
    return
  }
  buf[at] = 0x80
  let n = value
  for (let i = at + width - 1; i > at; i--) {
    buf[i] = n % 256
    n = Math.floor(n / 256)
  }
}

function ustar(h: RawHeader): Buffer {
  const buf = Buffer.alloc(BLOCK)
  buf.write(h.name, 0, 100, 'latin1')
  buf.write(oct(h.mode & 0o7777, 6), 100, 'latin1')
  buf.write(oct(h.uid, 6), 108, 'latin1')
  buf.write(oct(h.gid, 6), 116, 'latin1')
  numeric(buf, 124, 12, 11, h.size)
  // Out of range, the PAX record holds the time (encodeHeader), and this field the nearest it can.
  buf.write(oct(h.mtime.getTime() / 1000, 11), 136, 'latin1')
  buf.write(TYPEFLAG[h.type], 156, 'latin1')
  buf.write(h.linkname, 157, 100, 'latin1')
  buf.write('ustar\x0000', 257, 'latin1')
  numeric(buf, 329, 8, 6, h.devmajor)
  numeric(buf, 337, 8, 6, h.devminor)
  buf.write(h.prefix, 345, 155, 'latin1')
  let sum = 8 * 32
  for (let i = 0; i < BLOCK; i++) if (i < 148 || i >= 156) sum += buf[i] as number
  buf.write(oct(sum, 6), 148, 'latin1')
  return buf
}

/** The header block(s) of one entry: [pax header, pax data, padding,] ustar header. */
export function encodeHeader(h: EntryHeader): Buffer {
  if (h.name === '') throw new ImageError('tar entry without a name')
  const split = splitName(h.name)
  const link = h.linkname ?? ''
  const linkFits = /^[\x01-\x7f]{0,100}$/.test(link)
  const records: Array<[string, Uint8Array | string]> = []
  if (h.uid > MAX_ID) records.push(['uid', String(h.uid)])
  if (h.gid > MAX_ID) records.push(['gid', String(h.gid)])
  const seconds = Math.floor(h.mtime.getTime() / 1000)
  if (seconds < 0 || seconds > MAX_MTIME) records.push(['mtime', String(seconds)])
  for (const [name, value] of h.xattrs ?? []) records.push([`SCHILY.xattr.${name}`, value])
  const base = {
    type: h.type, mode: h.mode, uid: Math.min(h.uid, MAX_ID), gid: Math.min(h.gid, MAX_ID), size: h.size, mtime: h.mtime,
    devmajor: h.devmajor ?? 0, devminor: h.devminor ?? 0,
  }
  if (split && linkFits && records.length === 0) return ustar({ ...base, ...split, linkname: link })
  // path/linkpath first, as tar-stream writes them; readers take the PAX values over the header's.
  const binary = !h.name.isWellFormed() || !link.isWellFormed() ? [['hdrcharset', 'BINARY'] as [string, string]] : []
  const names: Array<[string, Uint8Array]> = [['path', hostBytes(h.name)], ...(link !== '' ? [['linkpath', hostBytes(link)] as [string, Uint8Array]] : [])]
  const pax = encodePaxRecords([...binary, ...names, ...records])
  const paxHeader = ustar({ ...base, name: 'PaxHeader', prefix: '', type: 'pax-header', size: pax.length, linkname: '', devmajor: 0, devminor: 0 })
  const entry = ustar({ ...base, ...(split ?? { name: 'PaxHeader', prefix: '' }), linkname: linkFits ? link : 'PaxHeader' })
  return Buffer.concat([paxHeader, pax, padding(pax.length), entry])
}
