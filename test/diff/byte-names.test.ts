// Names that are not UTF-8, differentially: the same layers and the same operations on kernel overlayfs
// and on layerfs, with every name handled as bytes (Buffer paths, listings as Buffers), and the merged view
// and the upper layer compared byte for byte. The differential suite's harness carries names as strings,
// which would replace such bytes before either filesystem saw them.
import { appendFileSync, chmodSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmdirSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { fuseAvailable, overlayAvailable, unmount, type MountHandle } from '../helpers/mount.js'
import { makeTempDir, mountsUnder, removeTempDir } from '../helpers/tmp.js'
import { type Driver, kernel, layerfs, layerfsWith } from './drivers.js'

const fuse = fuseAvailable()
const ovl = overlayAvailable()
const skipReason = !fuse.ok ? fuse.reason : !ovl.ok ? ovl.reason : undefined
if (skipReason !== undefined) console.warn(`[byte-names] skipped: ${skipReason}`)

type Json = string | number | boolean | null | Json[] | { [k: string]: Json }

/** A name given as Latin-1 text: one byte per character, so '\xe9' is the byte 0xE9. */
const b = (latin1: string): Buffer => Buffer.from(latin1, 'latin1')
const SLASH = b('/')
const under = (dir: Buffer, ...names: Buffer[]): Buffer => Buffer.concat([dir, ...names.flatMap((n) => [SLASH, n])])

/** Bytes as readable text: printable ASCII as is, every other byte as \xNN. */
function show(name: Buffer): string {
  return [...name].map((c) => (c >= 0x20 && c < 0x7f && c !== 0x5c ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`)).join('')
}

/** Deterministic random names: 1-24 bytes, any but NUL and '/', never '.' or '..'. */
function randomNames(count: number, seed: number): Buffer[] {
  let s = seed >>> 0
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const seen = new Set<string>()
  const out: Buffer[] = []
  while (out.length < count) {
    const name = Buffer.alloc(1 + Math.floor(next() * 24))
    for (let i = 0; i < name.length; i++) {
      // Half the bytes from the high half, where names stop being ASCII (and mostly stop being UTF-8).
      let c = next() < 0.5 ? 0x80 + Math.floor(next() * 128) : 1 + Math.floor(next() * 127)
      if (c === 0x2f) c = 0x2e
      name[i] = c
    }
    const key = name.toString('hex')
    if (seen.has(key) || name.equals(b('.')) || name.equals(b('..'))) continue
    seen.add(key)
    out.push(name)
  }
  return out
}

const RANDOM = randomNames(160, 0x1a7e5f5)

const NAMES = {
  latin: b('caf\xe9'),
  latinDir: b('d\xe9j\xe0'),
  latinChild: b('f\xff'),
  utf8: Buffer.from('café'),
  cesu: b('\xed\xa0\x80 surrogate'), // a UTF-16 surrogate spelled in UTF-8: not UTF-8
  overlong: b('\xc0\xaf'),
  replacement: Buffer.from('a\ufffd'), // valid UTF-8 for U+FFFD: not to be confused with ...
  latinA: b('a\xe9'), // ... a byte that used to be replaced by U+FFFD
  link: b('link\xe9'),
  target: b('target\xe9'),
  gone: b('gone\xe9'),
  doomed: b('del\xe9'),
  dir: b('rd\xe9'),
  merged: b('m\xe9rge'),
}

/** The lower layers: [0] on top. */
function buildLowers(top: Buffer, bottom: Buffer): void {
  writeFileSync(under(top, NAMES.latin), 'latin')
  mkdirSync(under(top, NAMES.latinDir))
  writeFileSync(under(top, NAMES.latinDir, NAMES.latinChild), 'child')
  writeFileSync(under(top, NAMES.utf8), 'utf-8')
  writeFileSync(under(top, NAMES.cesu), 'cesu')
  writeFileSync(under(top, NAMES.replacement), 'U+FFFD')
  writeFileSync(under(top, NAMES.latinA), 'latin a')
  symlinkSync(NAMES.target, under(top, NAMES.link))
  writeFileSync(under(top, NAMES.doomed), 'doomed')
  mkdirSync(under(top, NAMES.dir))
  writeFileSync(under(top, NAMES.dir, b('in')), 'in')
  mkdirSync(under(top, NAMES.merged))
  writeFileSync(under(top, NAMES.merged, b('top\xfe')), 'top')
  python('for p in paths: os.mknod(p, 0o20000 | 0o644, 0)', [under(top, NAMES.gone)]) // a whiteout (char 0/0)
  mkdirSync(under(top, b('rnd')))
  for (const n of RANDOM) writeFileSync(under(top, b('rnd'), n), n.toString('hex'))

  writeFileSync(under(bottom, NAMES.latin), 'shadowed')
  writeFileSync(under(bottom, NAMES.gone), 'whited out')
  mkdirSync(under(bottom, NAMES.merged))
  writeFileSync(under(bottom, NAMES.merged, b('bottom\xfd')), 'bottom')
}

/** Python does what node:fs cannot with a path of bytes (and keeps the fixture apart from the addon
 *  under test): `script` gets the paths, hex-encoded, one per line on stdin; its stdout comes back. */
function python(script: string, paths: Buffer[]): string {
  const input = paths.map((p) => p.toString('hex')).join('\n')
  const prelude = 'import os, sys\npaths = [bytes.fromhex(l) for l in sys.stdin.read().split()]\n'
  const r = spawnSync('python3', ['-c', prelude + script], { input, encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`python3: ${r.error?.message ?? r.stderr}`)
  return r.stdout
}

function errorCode(e: unknown): string {
  return typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : String(e)
}

function attempt(f: () => Json | void): Json {
  try {
    return f() ?? 'ok'
  } catch (e) {
    return { error: errorCode(e) }
  }
}

const list = (dir: Buffer): string[] => readdirSync(dir, { encoding: 'buffer' }).sort(Buffer.compare).map(show)

/** The operations, each with its result: names made, renamed, removed and read, all as bytes. */
function runOps(m: Buffer): Record<string, Json> {
  const at = (...names: Buffer[]): Buffer => under(m, ...names)
  const r: Record<string, Json> = {}
  r['readdir /'] = attempt(() => list(m))
  for (const n of [NAMES.latin, NAMES.utf8, NAMES.cesu, NAMES.replacement, NAMES.latinA]) r[`read ${show(n)}`] = attempt(() => readFileSync(at(n), 'latin1'))
  r['read child'] = attempt(() => readFileSync(at(NAMES.latinDir, NAMES.latinChild), 'latin1'))
  r['readlink'] = attempt(() => show(readlinkSync(at(NAMES.link), { encoding: 'buffer' })))
  r['lstat whiteout'] = attempt(() => lstatSync(at(NAMES.gone)).size)
  r['append (copy-up)'] = attempt(() => {
    appendFileSync(at(NAMES.latin), '+more')
    return readFileSync(at(NAMES.latin), 'latin1')
  })
  r['unlink'] = attempt(() => unlinkSync(at(NAMES.doomed)))
  r['unlinked is gone'] = attempt(() => lstatSync(at(NAMES.doomed)).size)
  r['rmdir and mkdir (opaque)'] = attempt(() => {
    unlinkSync(at(NAMES.dir, b('in')))
    rmdirSync(at(NAMES.dir))
    mkdirSync(at(NAMES.dir))
    return list(at(NAMES.dir))
  })
  r['rename upper file'] = attempt(() => renameSync(at(NAMES.latin), at(b('caf\xe8'))))
  r['rename lower file'] = attempt(() => renameSync(at(NAMES.latinA), at(b('b\xe9'))))
  r['rename lower dir'] = attempt(() => renameSync(at(NAMES.latinDir), at(b('moved\xfe'))))
  r['create'] = attempt(() => writeFileSync(at(b('new\x80')), 'new', { flag: 'wx' }))
  r['create over whiteout'] = attempt(() => writeFileSync(at(NAMES.gone), 'back', { flag: 'wx' }))
  r['hard link'] = attempt(() => {
    linkSync(at(b('new\x80')), at(b('hard\x81')))
    return lstatSync(at(b('new\x80'))).nlink
  })
  r['symlink'] = attempt(() => {
    symlinkSync(NAMES.overlong, at(b('sym\x82')))
    return show(readlinkSync(at(b('sym\x82')), { encoding: 'buffer' }))
  })
  // NAME_MAX counts bytes: 250 + 5 escaped bytes is 255, one more is too long.
  r['255-byte name'] = attempt(() => writeFileSync(at(b('a'.repeat(250) + '\xe9'.repeat(5))), ''))
  r['256-byte name'] = attempt(() => writeFileSync(at(b('a'.repeat(251) + '\xe9'.repeat(5))), ''))
  r['xattr names'] = attempt(() =>
    python(
      "p = paths[0]\nos.setxattr(p, b'user.caf\\xe9', b'v\\xff', follow_symlinks=False)\nprint(sorted(os.fsencode(n).hex() for n in os.listxattr(p, follow_symlinks=False)), os.getxattr(p, b'user.caf\\xe9').hex())",
      [at(NAMES.utf8)],
    ).trim(),
  )
  r['merged dir'] = attempt(() => list(at(NAMES.merged)))
  r['random names listed'] = attempt(() => list(at(b('rnd'))))
  r['random names read'] = attempt(() => RANDOM.filter((n) => readFileSync(at(b('rnd'), n), 'latin1') !== n.toString('hex')).map(show))
  r['random names renamed and removed'] = attempt(() => {
    const rnd = (n: Buffer): Buffer => at(b('rnd'), n)
    for (const [i, n] of RANDOM.slice(0, 40).entries()) renameSync(rnd(n), rnd(RANDOM[159 - i]!)) // over the last 40
    for (const n of RANDOM.slice(40, 80)) unlinkSync(rnd(n))
    for (const n of RANDOM.slice(80, 90)) renameSync(rnd(n), rnd(Buffer.concat([n, b('\xff')])))
    return list(at(b('rnd')))
  })
  return r
}

/** Every object under `root`, by its path as text: type, mode, size, contents, link target. `upper`:
 *  whiteouts (char 0/0) and opaque directories are reported as such. */
function snapshot(root: Buffer, upper: boolean): Record<string, Json> {
  const out: Record<string, Json> = {}
  const dirs: Buffer[] = []
  const walk = (rel: Buffer | undefined): void => {
    const p = rel === undefined ? root : under(root, rel)
    const key = rel === undefined ? '.' : show(rel)
    let st
    try {
      st = lstatSync(p)
    } catch (e) {
      out[key] = { error: errorCode(e) } // a name listed that cannot be found: what mangled names do
      return
    }
    if (upper && st.isCharacterDevice() && st.rdev === 0) {
      out[key] = 'whiteout'
      return
    }
    const e: { [k: string]: Json } = { mode: (st.mode & 0o7777).toString(8) }
    if (st.isFile()) Object.assign(e, { type: 'file', nlink: st.nlink, data: attempt(() => readFileSync(p, 'latin1')) })
    else if (st.isSymbolicLink()) Object.assign(e, { type: 'symlink', target: attempt(() => show(readlinkSync(p, { encoding: 'buffer' }))) })
    else if (st.isDirectory()) {
      e.type = 'dir'
      dirs.push(p)
    } else e.type = 'other'
    out[key] = e
    if (st.isDirectory()) for (const n of readdirSync(p, { encoding: 'buffer' }).sort(Buffer.compare)) walk(rel === undefined ? n : under(rel, n))
  }
  walk(undefined)
  if (upper) {
    const opaque = python(
      "for p in paths:\n  try: print(os.getxattr(p, 'trusted.overlay.opaque', follow_symlinks=False) == b'y')\n  except OSError: print(False)",
      dirs,
    ).split('\n')
    dirs.forEach((d, i) => {
      if (opaque[i] === 'True') (out[d.equals(root) ? '.' : show(d.subarray(root.length + 1))] as { [k: string]: Json }).opaque = true
    })
  }
  return out
}

interface Run {
  ops: Record<string, Json>
  merged: Record<string, Json>
  upper: Record<string, Json>
}

async function run(driver: Driver, base: string): Promise<Run> {
  const [top, bottom, upper, work, mnt] = ['L0', 'L1', 'U', 'W', 'M'].map((d) => join(base, d)) as [string, string, string, string, string]
  for (const d of [top, bottom, upper, work, mnt]) mkdirSync(d, { recursive: true })
  buildLowers(Buffer.from(top), Buffer.from(bottom))
  let h: MountHandle | undefined
  let ops, merged
  try {
    h = await driver.mount({ lowers: [top, bottom], upper, work, mnt })
    ops = runOps(Buffer.from(mnt))
    merged = snapshot(Buffer.from(mnt), false)
  } finally {
    if (h !== undefined) await unmount(h)
  }
  return { ops, merged, upper: snapshot(Buffer.from(upper), true) }
}

/** metacopy=on: a chmod copies up metadata only, and a rename then records where the data is (the
 *  redirect xattr), a path that must keep its bytes. Returns what reading through the new name gave. */
async function metacopyRename(driver: Driver, base: string): Promise<{ ops: Record<string, Json>; upper: string }> {
  const [lower, upper, work, mnt] = ['L', 'U', 'W', 'M'].map((d) => join(base, d)) as [string, string, string, string]
  for (const d of [lower, upper, work, mnt]) mkdirSync(d, { recursive: true })
  mkdirSync(under(Buffer.from(lower), b('d\xe9')))
  writeFileSync(under(Buffer.from(lower), b('d\xe9'), b('f\xe9')), 'lower data')
  const h = await driver.mount({ lowers: [lower], upper, work, mnt, options: ['metacopy=on'] })
  const at = (...names: Buffer[]): Buffer => under(Buffer.from(mnt), ...names)
  const ops: Record<string, Json> = {}
  try {
    ops['chmod'] = attempt(() => chmodSync(at(b('d\xe9'), b('f\xe9')), 0o600))
    ops['rename'] = attempt(() => renameSync(at(b('d\xe9'), b('f\xe9')), at(b('d\xe9'), b('g\xe8'))))
    ops['read'] = attempt(() => readFileSync(at(b('d\xe9'), b('g\xe8')), 'latin1'))
    ops['mode'] = attempt(() => (lstatSync(at(b('d\xe9'), b('g\xe8'))).mode & 0o7777).toString(8))
  } finally {
    await unmount(h)
  }
  return { ops, upper }
}

describe.skipIf(skipReason !== undefined)('names that are not UTF-8: kernel overlayfs vs layerfs', () => {
  const bases: string[] = []
  afterAll(async () => {
    for (const base of bases) {
      for (const m of mountsUnder(base).reverse()) await unmount(m).catch((e: unknown) => console.warn(String(e)))
      await removeTempDir(base)
    }
  })

  let reference: Run | undefined
  const oracle = async (): Promise<Run> => {
    if (reference !== undefined) return reference
    const base = await makeTempDir('bytes-kernel')
    bases.push(base)
    reference = await run(kernel, base)
    return reference
  }

  it('metacopy=on: a renamed metadata-only copy finds its data by the bytes of its old name, and overlayfs reads the same upper', async () => {
    const kbase = await makeTempDir('bytes-meta-kernel')
    const lbase = await makeTempDir('bytes-meta-layerfs')
    bases.push(kbase, lbase)
    const want = await metacopyRename(kernel, kbase)
    expect(want.ops).toEqual({ chmod: 'ok', rename: 'ok', read: 'lower data', mode: '600' })
    const got = await metacopyRename(layerfs, lbase)
    expect(got.ops).toEqual(want.ops)
    // layerfs's upper layer, mounted by the kernel: the redirect it wrote leads to the lower data.
    const mnt = join(lbase, 'M2')
    const work = join(lbase, 'W2')
    mkdirSync(mnt)
    mkdirSync(work)
    const h = await kernel.mount({ lowers: [join(lbase, 'L')], upper: got.upper, work, mnt, options: ['metacopy=on'] })
    try {
      expect(readFileSync(under(Buffer.from(mnt), b('d\xe9'), b('g\xe8')), 'latin1')).toBe('lower data')
    } finally {
      await unmount(h)
    }
  }, 45_000)

  for (const [label, driver] of [['layerfs', layerfs], ['layerfs, passthrough=off', layerfsWith('passthrough=off')]] as const) {
    it(`${label}: the same results, merged view and upper layer, byte for byte`, async () => {
      const want = await oracle()
      // The oracle itself must have seen the bytes: its listing holds a name with 0xE9 in it.
      expect(want.ops['readdir /']).toContain('caf\\xe9')
      expect(want.ops['random names listed']).toHaveLength(RANDOM.length)
      const base = await makeTempDir('bytes-layerfs')
      bases.push(base)
      const got = await run(driver, base)
      expect(got.ops).toEqual(want.ops)
      expect(got.merged).toEqual(want.merged)
      expect(got.upper).toEqual(want.upper)
    }, 45_000)
  }
})
