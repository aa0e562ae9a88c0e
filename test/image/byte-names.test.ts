// Names that are not UTF-8 in image layers: unpacked from tars that GNU tar wrote in its three formats,
// committed back into a layer tar that GNU tar extracts, and walked for inspection, byte for byte.
import { spawnSync } from 'node:child_process'
import { linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { buffer } from 'node:stream/consumers'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { packUpperDir } from '../../src/image/layer-pack.js'
import { walkLayer } from '../../src/image/layer-walk.js'
import { unpackLayer } from '../../src/image/unpack.js'
import { hostPath } from '../../src/sys/names.js'
import { tempDir } from './fixtures.js'

/** A name given as Latin-1 text: one byte per character, so '\xe9' is the byte 0xE9. */
const b = (latin1: string): Buffer => Buffer.from(latin1, 'latin1')
const under = (dir: string | Buffer, ...names: Buffer[]): Buffer => Buffer.concat([Buffer.from(dir), ...names.flatMap((n) => [b('/'), n])])

function show(name: Buffer): string {
  return [...name].map((c) => (c >= 0x20 && c < 0x7f && c !== 0x5c ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`)).join('')
}

/** Every object under `root`, by its path shown byte for byte: type, contents, link target. */
function tree(root: string): Record<string, string> {
  const out: Record<string, string> = {}
  const walk = (rel: Buffer | undefined): void => {
    for (const n of readdirSync(rel === undefined ? root : under(root, rel), { encoding: 'buffer' }).sort(Buffer.compare)) {
      const r = rel === undefined ? n : Buffer.concat([rel, b('/'), n])
      const p = under(root, r)
      const st = lstatSync(p)
      if (st.isDirectory()) {
        out[show(r)] = 'dir'
        walk(r)
      } else if (st.isSymbolicLink()) out[show(r)] = `-> ${show(readlinkSync(p, { encoding: 'buffer' }))}`
      else out[show(r)] = `file ${readFileSync(p, 'latin1')} (${st.nlink} links)`
    }
  }
  walk(undefined)
  return out
}

/** A Latin-1 name in a directory of a Latin-1 name, a UTF-8 name, a literal U+FFFD (not the same as a
 *  byte U+FFFD used to stand for), a symlink and a hard link with such names, and a name too long for
 *  ustar's 100-byte field. */
function buildSource(src: string, long = true): void {
  mkdirSync(under(src, b('d\xe9j\xe0')))
  writeFileSync(under(src, b('d\xe9j\xe0'), b('caf\xe9')), 'latin')
  writeFileSync(under(src, Buffer.from('café')), 'utf-8')
  writeFileSync(under(src, Buffer.from('a\ufffd')), 'U+FFFD')
  writeFileSync(under(src, b('a\xe9')), 'latin a')
  symlinkSync(b('d\xe9j\xe0/caf\xe9'), under(src, b('link\xff')))
  linkSync(under(src, b('a\xe9')), under(src, b('hard\x80')))
  if (long) writeFileSync(under(src, b('long-' + 'x'.repeat(100) + '\xfe')), 'long')
}

let t: { dir: string; cleanup: () => Promise<void> }
beforeEach(async () => {
  t = await tempDir()
})
afterEach(async () => {
  await t.cleanup()
})

function gnuTar(args: string[], cwd: string, input?: Buffer): Buffer {
  const r = spawnSync('tar', args, { cwd, input, maxBuffer: 64 * 1024 * 1024 })
  if (r.status !== 0) throw new Error(`tar ${args.join(' ')}: ${r.stderr.toString()}`)
  return r.stdout
}

const unpackOpts = { whiteouts: 'kernel', devices: false, chown: false, maxEntrySize: 1 << 20, what: 'test layer' } as const

describe('names that are not UTF-8 in layers', () => {
  for (const format of ['gnu', 'posix', 'ustar'] as const) {
    it(`unpacks a ${format} tar from GNU tar with every name's bytes`, async () => {
      const src = join(t.dir, 'src')
      mkdirSync(src)
      buildSource(src, format !== 'ustar') // (ustar cannot hold the long name)
      const want = tree(src)
      const tarball = gnuTar([`--format=${format}`, '--sort=name', '-cf', '-', '.'], src)
      const root = join(t.dir, 'root')
      mkdirSync(root)
      await unpackLayer(Readable.from([tarball]), root, unpackOpts)
      expect(tree(root)).toEqual(want)
      expect(Object.keys(want)).toContain('d\\xe9j\\xe0/caf\\xe9')
    })
  }

  it('commits an upper dir into a layer whose names GNU tar and layerfs read back byte for byte', async () => {
    const upper = join(t.dir, 'upper')
    mkdirSync(upper)
    buildSource(upper)
    const want = tree(upper)
    const layer = await buffer(packUpperDir(upper))

    const byGnu = join(t.dir, 'gnu')
    mkdirSync(byGnu)
    gnuTar(['-xf', '-'], byGnu, layer)
    expect(tree(byGnu)).toEqual(want)

    const byUs = join(t.dir, 'layerfs')
    mkdirSync(byUs)
    await unpackLayer(Readable.from([layer]), byUs, unpackOpts)
    expect(tree(byUs)).toEqual(want)
  })

  it('walks a layer for inspection with names that lead back to their files', async () => {
    const root = join(t.dir, 'layer')
    mkdirSync(root)
    buildSource(root)
    const entries = await walkLayer(root)
    const cafe = entries.find((e) => e.path === '/d\udce9j\udce0/caf\udce9')
    expect(cafe?.kind).toBe('file')
    expect(readFileSync(cafe!.hostPath, 'latin1')).toBe('latin')
    expect(entries.find((e) => e.path === '/link\udcff')?.linkTarget).toBe('d\udce9j\udce0/caf\udce9')
    // The literal U+FFFD and the byte 0xE9 stay two names.
    expect(entries.filter((e) => e.path === '/a\ufffd' || e.path === '/a\udce9')).toHaveLength(2)
    expect(hostPath('/a\udce9')).toEqual(b('/a\xe9'))
  })
})
