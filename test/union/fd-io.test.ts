// Positional I/O on raw fds: what is done on the calling thread, what goes to the pool, and that
// either way every byte lands where it was asked to.
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { pread, preadCached, preadSmall, pwrite, pwriteNow } from '../../src/union/fd-io.js'
import { makeTempDir, removeTempDir } from '../helpers/tmp.js'

const dirs: string[] = []
afterEach(async () => {
  while (dirs.length) await removeTempDir(dirs.pop()!)
})

async function scratchFile(content: Buffer): Promise<{ path: string; fd: number }> {
  const dir = await makeTempDir('fdio')
  dirs.push(dir)
  const path = join(dir, 'f')
  writeFileSync(path, content)
  return { path, fd: openSync(path, 'r+') }
}

describe('fd-io', () => {
  it('writes a small write at once, in place', async () => {
    const { path, fd } = await scratchFile(Buffer.from('0123456789'))
    try {
      expect(pwriteNow(fd, Buffer.from('abc'), 3, 4)).toBe(3)
      expect(pwriteNow(fd, Buffer.from('xyz'), 3, 12)).toBe(3)
    } finally {
      closeSync(fd)
    }
    expect(readFileSync(path)).toEqual(Buffer.from('0123abc789\0\0xyz'))
  })

  it('writes a big write whole, on the calling thread or through the pool', async () => {
    const { path, fd } = await scratchFile(Buffer.alloc(0))
    const big = Buffer.alloc(3 << 20)
    for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i)
    try {
      // Either all of it at once (a filesystem that takes RWF_NOWAIT writes) or nothing yet.
      expect([undefined, big.length]).toContain(pwriteNow(fd, big, big.length, 0))
      expect(await pwrite(fd, big, big.length, 4096)).toBe(big.length)
    } finally {
      closeSync(fd)
    }
    const back = readFileSync(path)
    expect(back.length).toBe(big.length + 4096)
    expect(back.subarray(4096).equals(big)).toBe(true)
  })

  it('reads cached bytes at once and says when the rest must wait', async () => {
    const content = Buffer.alloc(64 * 1024 + 10, 7)
    const { fd } = await scratchFile(content)
    try {
      const buf = Buffer.alloc(content.length + 100)
      // Just written: in the page cache, and a short count inside a page is the end of the file.
      expect(preadCached(fd, buf, buf.length, 0)).toBe(content.length)
      expect(preadSmall(fd, buf, 4096, 60 * 1024)).toBe(4096)
      expect(preadSmall(fd, buf, 1 << 20, 0)).toBeUndefined()
      expect(await pread(fd, buf, buf.length, 100)).toBe(content.length - 100)
      expect(buf.subarray(0, content.length - 100).every((b) => b === 7)).toBe(true)
    } finally {
      closeSync(fd)
    }
  })

  it('leaves a short cached read that ends at a page boundary to the pool', async () => {
    // The count alone cannot tell the end of the file from the end of what is cached there.
    const { fd } = await scratchFile(Buffer.alloc(8192, 1))
    try {
      const buf = Buffer.alloc(10_000)
      expect(preadCached(fd, buf, buf.length, 0)).toBeUndefined()
      expect(await pread(fd, buf, buf.length, 0)).toBe(8192)
    } finally {
      closeSync(fd)
    }
  })
})
