/**
 * Content digests: parsing `sha256:<hex>` strings and measuring streams as they flow.
 * Only sha256 is accepted (the only algorithm OCI requires and Docker writes); a malformed digest is
 * rejected before it is ever used as a path component.
 */
import { createHash, type Hash } from 'node:crypto'
import { Transform, type TransformCallback } from 'node:stream'
import { ImageError } from './errors.js'

const SHA256_RE = /^sha256:([a-f0-9]{64})$/

/** The hex part of a sha256 digest; throws on anything else (so it is safe to put in a path). */
export function digestHex(digest: string): string {
  const m = SHA256_RE.exec(digest)
  if (!m?.[1]) throw new ImageError(`unsupported or malformed digest '${digest}'`)
  return m[1]
}

export function isDigest(s: string): boolean {
  return SHA256_RE.test(s)
}

export function sha256Digest(data: Buffer | string): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex')
}

/** Pass-through stream that hashes and counts what goes through it. */
export class DigestMeter extends Transform {
  private readonly hash: Hash = createHash('sha256')
  bytes = 0
  constructor(private readonly onChunk?: (n: number) => void) {
    super()
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk)
    this.bytes += chunk.length
    this.onChunk?.(chunk.length)
    cb(null, chunk)
  }
  /** Valid once the stream has ended. */
  digest(): string {
    return 'sha256:' + this.hash.copy().digest('hex')
  }
}
