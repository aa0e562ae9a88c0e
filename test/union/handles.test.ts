// The open-handle table: handle numbers, their reuse, and the lower readers moved on copy-up.
import { closeSync, fstatSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Handle, Handles } from '../../src/union/handles.js'

let dir = ''
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'layerfs-handles-'))
})
afterEach(() => {
  rmSync(dir, { recursive: true, force: true })
})

const shape = { singleLink: true, size: 1, setid: false, dev: 0 }
const lower = (path: string, source: string): Handle => new Handle(-1, path, false, shape, source)

describe('Handles', () => {
  it('never hands out a released number again, though it reuses the slot', () => {
    const t = new Handles()
    const seen = new Set<number>()
    for (let i = 0; i < 5000; i++) {
      const fh = t.add(lower('a', '/nonexistent'))
      expect(seen.has(fh)).toBe(false)
      seen.add(fh)
      expect(t.get(fh)).toBeDefined()
      expect(t.remove(fh)).toBeDefined()
      expect(t.get(fh)).toBeUndefined() // stale: finds nothing
      expect(t.remove(fh)).toBeUndefined()
    }
    expect(t.size).toBe(0)
  })

  it('keeps each open handle under its own number while others come and go', () => {
    const t = new Handles()
    const open = new Map<number, Handle>()
    let seed = 3
    for (let i = 0; i < 3000; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
      if (open.size > 0 && seed % 3 === 0) {
        const [fh, h] = [...open][seed % open.size]!
        expect(t.remove(fh)).toBe(h)
        open.delete(fh)
      } else {
        const h = lower(`f${i}`, '/nonexistent')
        open.set(t.add(h), h)
      }
      expect(t.size).toBe(open.size)
    }
    for (const [fh, h] of open) expect(t.get(fh)).toBe(h)
  })

  it('moves every reader of a lower file onto its copy, and only those still open', () => {
    const low = join(dir, 'low')
    const up = join(dir, 'up')
    writeFileSync(low, 'L')
    writeFileSync(up, 'U')
    const t = new Handles()
    const [a, b, c] = [lower('/f', low), lower('/f', low), lower('/f', low)]
    const other = lower('/g', low)
    const fhs = [a, b, c, other].map((h) => t.add(h))
    t.remove(fhs[1]!)
    t.promote('/f', up)
    const read = (h: Handle): string => {
      const buf = Buffer.alloc(1)
      readSync(h.fd, buf, 0, 1, 0)
      return buf.toString()
    }
    expect([read(a), read(c), read(other)]).toEqual(['U', 'U', 'L'])
    expect([a.upper, b.upper, c.upper, other.upper]).toEqual([true, false, true, false])
    for (const h of [a, b, c, other]) h.close()
  })

  it("closes a metadata-only copy's fd when its reader moves onto the full copy, or closes", () => {
    const [low, meta, up] = ['low', 'meta', 'up'].map((n) => join(dir, n))
    for (const p of [low, meta!, up!]) writeFileSync(p!, 'x')
    const t = new Handles()
    const [a, b] = [lower('/f', low!), lower('/g', low!)]
    a.meta = openSync(meta!, 'r')
    b.meta = openSync(meta!, 'r')
    const [metaA, metaB] = [a.meta, b.meta]
    t.add(a)
    t.add(b)
    t.promote('/f', up!)
    expect(a.meta).toBe(-1)
    expect(() => fstatSync(metaA)).toThrow(expect.objectContaining({ code: 'EBADF' }))
    expect(fstatSync(metaB).isFile()).toBe(true) // /g was not copied up
    b.close()
    expect(b.meta).toBe(-1)
    expect(() => fstatSync(metaB)).toThrow(expect.objectContaining({ code: 'EBADF' }))
    a.close()
  })

  it('lends an fd: a handle takes a dup of it at its first use, or at ownLent, and a closed one takes none', () => {
    const [f, g] = ['f', 'g'].map((n) => join(dir, n))
    writeFileSync(f!, 'F')
    writeFileSync(g!, 'G')
    const t = new Handles()
    const upper = (): Handle => new Handle(-1, '/f', true, shape)
    const lent = openSync(f!, 'r')
    const [used, unused, closed] = [upper(), upper(), upper()]
    for (const h of [used, unused, closed]) t.lend(h, lent)
    const read = (fd: number): string => {
      const buf = Buffer.alloc(1)
      readSync(fd, buf, 0, 1, 0)
      return buf.toString()
    }
    const usedFd = used.fd
    expect(usedFd).not.toBe(lent)
    expect(read(usedFd)).toBe('F')
    closed.close()
    t.ownLent(lent)
    closeSync(lent)
    // The lent fd's number goes to another file: the handles kept theirs, on the lent file.
    const reused = openSync(g!, 'r')
    expect(used.fd).toBe(usedFd)
    expect([read(used.fd), read(unused.fd)]).toEqual(['F', 'F'])
    expect(unused.fd).not.toBe(reused)
    expect(read(reused)).toBe('G')
    // The closed handle took no fd at ownLent (it has nothing to open: no source, nothing lent).
    expect(() => closed.fd).toThrow(expect.objectContaining({ code: 'ENOENT' }))
    closeSync(reused)
    used.close()
    unused.close()
  })

  it('fails the next use of a handle that could not take its own fd when the lent one closed', () => {
    const t = new Handles()
    const h = new Handle(-1, '/f', true, shape)
    t.lend(h, 1 << 29) // no such fd: the dup at ownLent fails (EBADF), as EMFILE would
    t.ownLent(1 << 29)
    expect(() => h.fd).toThrow(expect.objectContaining({ code: 'EBADF' }))
    h.close()
  })
})
