/**
 * PaxTap: a pass-through in front of tar-stream's extract that walks the same tar blocks and keeps
 * the raw bytes of PAX records, which tar-stream only exposes decoded as UTF-8 strings (binary xattr
 * values come out as U+FFFD). tar-stream 3 consumes pax headers inside Extract#_consumeHeader and
 * has no option to surface them, so the tap parses the block structure itself.
 *
 * It keys each entry's records by the offset of the entry's data, which tar-stream reports as
 * `header.byteOffset`; `recordsAt(offset)` hands them over once. It follows tar-stream's rules (all-zero
 * blocks skipped, a local `x` header merged over the last global `g` one, `size` record overriding the
 * header, directories carrying no data) and it counts the bytes it saw. On a block it cannot make
 * sense of it stops tracking: tar-stream fails on that same block.
 */
import { Transform, type TransformCallback } from 'node:stream'
import { parsePaxRecords, type PaxRecords } from './pax.js'

const BLOCK = 512
const MAX_PAX = 4 * 1024 * 1024 // tar-stream's limit for a long header

const pad = (n: number) => (BLOCK - (n % BLOCK)) % BLOCK

/** tar's numeric field: octal text (spaces/NULs around it) or base-256 when the high bit is set. */
function numeric(field: Buffer): number {
  if ((field[0] as number) & 0x80) {
    if (field[0] !== 0x80) return NaN // negative: no size is
    let n = 0
    for (let i = 1; i < field.length; i++) n = n * 256 + (field[i] as number)
    return n
  }
  const text = field.toString('latin1').replace(/\0.*$/s, '').trim()
  return text === '' ? 0 : parseInt(text, 8)
}

function checksumOk(h: Buffer): boolean | 'empty' {
  let sum = 8 * 32
  for (let i = 0; i < BLOCK; i++) if (i < 148 || i >= 156) sum += h[i] as number
  if (sum === 8 * 32) return 'empty'
  return sum === numeric(h.subarray(148, 156))
}

export class PaxTap extends Transform {
  /** Bytes that went through. */
  bytes = 0
  private readonly records = new Map<number, PaxRecords>()
  private header: Buffer[] = []
  private headerLen = 0
  private skip = 0
  private collect: { chunks: Buffer[]; left: number; global: boolean; size: number } | undefined
  private local: PaxRecords | undefined
  private global: PaxRecords | undefined
  private lost = false

  /** The raw PAX records that apply to the entry whose data starts at `dataOffset`. */
  recordsAt(dataOffset: number): PaxRecords | undefined {
    const r = this.records.get(dataOffset)
    this.records.delete(dataOffset)
    return r
  }

  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    if (!this.lost) this.walk(chunk)
    this.bytes += chunk.length
    cb(null, chunk)
  }

  private walk(chunk: Buffer): void {
    let off = 0
    while (off < chunk.length && !this.lost) {
      const at = this.bytes + off
      if (this.collect) {
        const part = chunk.subarray(off, off + this.collect.left)
        this.collect.chunks.push(part)
        this.collect.left -= part.length
        off += part.length
        if (this.collect.left === 0) this.endPax()
      } else if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - off)
        this.skip -= n
        off += n
      } else {
        const part = chunk.subarray(off, off + BLOCK - this.headerLen)
        this.header.push(part)
        this.headerLen += part.length
        off += part.length
        if (this.headerLen === BLOCK) {
          const h = Buffer.concat(this.header)
          this.header = []
          this.headerLen = 0
          this.onHeader(h, at + part.length)
        }
      }
    }
  }

  private onHeader(h: Buffer, dataOffset: number): void {
    const ok = checksumOk(h)
    if (ok === 'empty') return
    let size = numeric(h.subarray(124, 136))
    if (!ok || !(size >= 0)) {
      this.lost = true
      return
    }
    const flag = String.fromCharCode(h[156] as number)
    if (flag === 'x' || flag === 'g') {
      if (size > MAX_PAX) {
        this.lost = true
        return
      }
      // An empty one sets nothing in tar-stream (not even the global records' merge): same here.
      if (size > 0) this.collect = { chunks: [], left: size, global: flag === 'g', size }
      return
    }
    if (flag === 'L' || flag === 'K' || flag === 'N') {
      this.skip = size + pad(size)
      return
    }
    const pax = this.local
    this.local = undefined
    if (pax) {
      this.records.set(dataOffset, pax)
      const paxSize = pax.get('size')?.toString('utf8')
      if (paxSize) size = parseInt(paxSize, 10)
      if (!(size >= 0)) {
        this.lost = true
        return
      }
    }
    if (flag === '5' || size === 0 || ((h[156] === 0x30 || h[156] === 0) && endsWithSlash(h))) return
    this.skip = size + pad(size)
  }

  private endPax(): void {
    const c = this.collect as NonNullable<PaxTap['collect']>
    this.collect = undefined
    this.skip = pad(c.size)
    const parsed = parsePaxRecords(Buffer.concat(c.chunks))
    if (c.global) this.global = parsed
    else this.local = this.global ? new Map([...this.global, ...parsed]) : parsed
  }
}

/** An old-style directory: a regular-file type whose name (ustar prefix/name) ends with '/'. */
function endsWithSlash(h: Buffer): boolean {
  const nameEnd = h.indexOf(0)
  const nameLen = nameEnd < 0 || nameEnd > 100 ? 100 : nameEnd
  if (nameLen > 0) return h[nameLen - 1] === 0x2f
  const ustar = h.subarray(257, 263).toString('latin1') === 'ustar\0'
  return ustar && h[345] !== 0
}
