/**
 * Binary xattr values through PAX records, both ways: import keeps `SCHILY.xattr.*` values byte for
 * byte (tar-stream alone decodes them as UTF-8), and commit writes them byte for byte.
 */
import { lchown, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { buffer } from 'node:stream/consumers'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { packUpperDir } from '../../src/image/layer-pack.js'
import { parsePaxRecords } from '../../src/image/pax.js'
import { readTar, type TarHeader } from '../../src/image/tar-reader.js'
import { unpackLayer, type UnpackOptions } from '../../src/image/unpack.js'
import { lgetxattr, lsetxattr } from '../../src/sys/native.js'
import { makeTar, tempDir } from './fixtures.js'

const isRoot = process.getuid?.() === 0
// VFS_CAP_REVISION_2, permitted = 0x000000ff: 0x00 and 0xff bytes, invalid as UTF-8.
const CAP = Buffer.from([0x01, 0x00, 0x00, 0x02, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00])
const BIN = Buffer.from([0x00, 0xff, 0xfe, 0x0a, 0x3d, 0x80, 0xc3]) // NUL, '\n', '=', a cut UTF-8 sequence
const TEXT = 'héllo wörld ✓'

let t: { dir: string; cleanup: () => Promise<void> }
beforeEach(async () => {
  t = await tempDir()
})
afterEach(async () => {
  await t.cleanup()
})

const opts: UnpackOptions = { whiteouts: 'marker', devices: false, chown: false, maxEntrySize: 1 << 20, what: 'test layer' }

/** A tar built by tar-stream with ASCII placeholders of the right byte length, then patched to `values`. */
async function tarWithBinaryPax(values: Record<string, Buffer>): Promise<Buffer> {
  const placeholders = Object.entries(values).map(([k, v], i) => [k, String.fromCharCode(65 + i).repeat(v.length), v] as const)
  const pax = (names: string[]) => Object.fromEntries(placeholders.filter(([k]) => names.includes(k)).map(([k, p]) => [k, p]))
  const tarBytes = await makeTar([
    { name: 'bin/', type: 'directory', pax: pax(['SCHILY.xattr.user.dir']) },
    { name: 'bin/ping', content: Buffer.alloc(700, 7), mode: 0o755, pax: pax(['SCHILY.xattr.security.capability', 'SCHILY.xattr.user.bin']) },
    { name: 'bin/text', content: 'x', pax: { 'SCHILY.xattr.user.text': TEXT } },
    { name: 'bin/after', content: 'still aligned' },
  ])
  for (const [key, placeholder, value] of placeholders) {
    const at = tarBytes.indexOf(`${key}=${placeholder}\n`)
    expect(at, key).toBeGreaterThan(0)
    value.copy(tarBytes, at + key.length + 1) // same byte length: record lengths and checksums hold
  }
  return tarBytes
}

describe('PAX xattrs on import', () => {
  it('keeps binary values byte for byte and text values as text', async () => {
    const layer = await tarWithBinaryPax({
      'SCHILY.xattr.security.capability': CAP,
      'SCHILY.xattr.user.bin': BIN,
      'SCHILY.xattr.user.dir': BIN,
    })
    const headers: TarHeader[] = []
    await readTar(Readable.from([layer]), async (h) => void headers.push(h), { what: 'layer' })
    const ping = headers.find((h) => h.name === 'bin/ping')
    expect(ping?.paxRaw?.get('SCHILY.xattr.security.capability')).toEqual(CAP)
    expect(ping?.pax?.['SCHILY.xattr.security.capability']).toContain('\ufffd') // what tar-stream alone gives

    const root = join(t.dir, 'root')
    await mkdir(root)
    const stats = await unpackLayer(Readable.from([layer]), root, opts)
    expect(await lgetxattr(join(root, 'bin/ping'), 'user.bin')).toEqual(BIN)
    expect(await lgetxattr(join(root, 'bin'), 'user.dir')).toEqual(BIN)
    expect((await lgetxattr(join(root, 'bin/text'), 'user.text'))?.toString('utf8')).toBe(TEXT)
    if (isRoot) expect(await lgetxattr(join(root, 'bin/ping'), 'security.capability')).toEqual(CAP)
    else expect(stats.skippedXattrs).toBe(1)
  })
})

describe('PAX xattrs on commit', () => {
  it('writes records holding the exact bytes, which import back unchanged', async () => {
    const upper = join(t.dir, 'upper')
    await mkdir(join(upper, 'bin'), { recursive: true })
    await writeFile(join(upper, 'bin/ping'), Buffer.alloc(1000, 1))
    await writeFile(join(upper, 'bin/text'), 'x')
    await lsetxattr(join(upper, 'bin'), 'user.dir', BIN)
    await lsetxattr(join(upper, 'bin/ping'), 'user.bin', BIN)
    if (isRoot) await lsetxattr(join(upper, 'bin/ping'), 'security.capability', CAP)
    await lsetxattr(join(upper, 'bin/text'), 'user.text', Buffer.from(TEXT))
    const layer = await buffer(packUpperDir(upper))

    // The pax entry of bin/ping, found in the raw bytes: its data starts a block, `path` first.
    const pathAt = layer.indexOf(' path=bin/ping\n')
    const start = pathAt - (pathAt % 512)
    expect(String.fromCharCode(layer[start - 512 + 156]!)).toBe('x')
    const size = parseInt(layer.subarray(start - 512 + 124, start - 512 + 136).toString('latin1'), 8)
    const records = parsePaxRecords(layer.subarray(start, start + size))
    expect(records.get('SCHILY.xattr.user.bin')).toEqual(BIN)
    if (isRoot) expect(records.get('SCHILY.xattr.security.capability')).toEqual(CAP)

    const headers = new Map<string, TarHeader>()
    await readTar(Readable.from([layer]), async (h) => void headers.set(h.name, h), { what: 'layer' })
    expect([...headers.keys()]).toEqual(['bin/', 'bin/ping', 'bin/text'])
    expect(headers.get('bin/ping')?.paxRaw?.get('SCHILY.xattr.user.bin')).toEqual(BIN)
    expect(headers.get('bin/')?.paxRaw?.get('SCHILY.xattr.user.dir')).toEqual(BIN)
    expect(headers.get('bin/text')?.pax?.['SCHILY.xattr.user.text']).toBe(TEXT)
    if (isRoot) expect(headers.get('bin/ping')?.paxRaw?.get('SCHILY.xattr.security.capability')).toEqual(CAP)

    const root = join(t.dir, 'root')
    await mkdir(root)
    await unpackLayer(Readable.from([layer]), root, opts)
    expect(await lgetxattr(join(root, 'bin/ping'), 'user.bin')).toEqual(BIN)
    if (isRoot) expect(await lgetxattr(join(root, 'bin/ping'), 'security.capability')).toEqual(CAP)
    expect((await lgetxattr(join(root, 'bin/text'), 'user.text'))?.toString('utf8')).toBe(TEXT)
  })

  it('puts names ustar cannot hold and big ids into PAX records', async () => {
    const upper = join(t.dir, 'upper')
    const long = `${'d'.repeat(120)}/${'f'.repeat(120)}`
    await mkdir(join(upper, 'd'.repeat(120)), { recursive: true })
    await writeFile(join(upper, long), 'long')
    await writeFile(join(upper, 'ünïcode'), 'u')
    if (isRoot) await lchown(join(upper, 'ünïcode'), 300_000, 300_001)
    const headers = new Map<string, TarHeader>()
    await readTar(packUpperDir(upper), async (h) => void headers.set(h.name, h), { what: 'layer' })
    expect(headers.get(long)?.size).toBe(4)
    const u = headers.get('ünïcode')
    expect(u?.size).toBe(1)
    if (isRoot) expect([u?.pax?.uid, u?.pax?.gid]).toEqual(['300000', '300001'])
  })
})
