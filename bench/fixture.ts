/**
 * The benchmark fixture: an image-like layer stack, generated deterministically and cached.
 *
 *   layers/base     a system tree (~20k files, varying fan-out, mostly small files, some medium) plus
 *                   bigdata/big-N.bin (real data, a repeated random 1 MiB block; never sparse)
 *   layers/nm       a node_modules tree (~30k small files)
 *   layers/changes  the top layer: modified files, new files, char 0/0 whiteouts, a whited-out directory
 *                   and opaque directories (trusted.overlay.opaque=y): kernel overlay format, so kernel
 *                   overlayfs, fuse-overlayfs and layerfs all mount the very same directories
 *   plain/          the merged view copied into one directory (`cp -a` from a read-only kernel overlay)
 *   nm.tar          the node_modules layer as a tarball, for the untar workload
 *   manifest.json   written last: its presence (with matching spec) marks a complete, reusable fixture
 */
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs'
import { open, readdir } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { mustRun } from './exec.js'
import { mountKernelOverlay, unmount } from './mounts.js'
import { Rng } from './rng.js'

export const FIXTURE_VERSION = 3

export interface FixtureSpec {
  name: string
  baseFiles: number
  nmFiles: number
  bigFiles: number
  bigBytes: number
  /** files created/deleted, renamed (the "10k" workloads) */
  bulkOps: number
  /** source files the build-like mix touches */
  buildSources: number
  /** 4 KiB random reads */
  randReads: number
  /** bytes appended after copy-up */
  appendBytes: number
}

const MiB = 1 << 20

export const PROFILES: Record<'full' | 'quick' | 'check', FixtureSpec> = {
  full: { name: 'full', baseFiles: 20_000, nmFiles: 30_000, bigFiles: 3, bigBytes: 1024 * MiB, bulkOps: 10_000, buildSources: 4_000, randReads: 20_000, appendBytes: 64 * MiB },
  quick: { name: 'quick', baseFiles: 2_000, nmFiles: 3_000, bigFiles: 3, bigBytes: 64 * MiB, bulkOps: 1_000, buildSources: 500, randReads: 4_000, appendBytes: 16 * MiB },
  check: { name: 'check', baseFiles: 300, nmFiles: 400, bigFiles: 2, bigBytes: 8 * MiB, bulkOps: 200, buildSources: 100, randReads: 500, appendBytes: 2 * MiB },
}

export interface Fixture {
  spec: FixtureSpec
  version: number
  dir: string
  /** lower dirs, topmost first (the lowerdir= order) */
  lowers: string[]
  plain: string
  tarball: string
  /** paths relative to the merged root */
  bigFiles: string[]
  nmRoot: string
  bigDir: string
  renameFiles: string[]
  buildSources: string[]
  counts: { files: number; dirs: number; symlinks: number; smallBytes: number; whiteouts: number; opaqueDirs: number }
}

const WORDS = ['lib', 'core', 'util', 'net', 'http', 'json', 'xml', 'io', 'fs', 'proto', 'crypto', 'auth', 'log', 'cache', 'db',
  'sql', 'gfx', 'font', 'locale', 'i18n', 'test', 'doc', 'man', 'share', 'conf', 'data', 'tz', 'zone', 'perl', 'python', 'ruby',
  'ssl', 'x11', 'gtk', 'qt', 'cmake', 'pkg', 'kernel', 'module', 'driver', 'media', 'audio', 'video', 'image', 'icons', 'theme']
const EXTS = ['.c', '.h', '.py', '.pyc', '.so', '.txt', '.md', '.conf', '.json', '.xml', '.html', '.png', '.pl', '.rb', '.mo', '.gz', '']
const JS_EXTS = ['.js', '.js', '.js', '.d.ts', '.json', '.map', '.mjs', '.cjs', '.md']

function word(rng: Rng): string {
  return rng.pick(WORDS) + (rng.next() < 0.5 ? '' : String(rng.int(0, 99)))
}

/** Write-side helpers that slice file contents out of one random pool (cheap, deterministic). */
class Writer {
  readonly pool: Buffer
  files = 0
  dirs = 0
  symlinks = 0
  bytes = 0
  constructor(private readonly rng: Rng) {
    this.pool = rng.bytes(2 * MiB)
  }
  dir(p: string): void {
    mkdirSync(p, { recursive: true, mode: 0o755 })
    this.dirs++
  }
  file(p: string, size: number): void {
    const off = this.rng.int(0, this.pool.length - size - 1)
    writeFileSync(p, this.pool.subarray(off, off + size), { mode: 0o644 })
    chmodSync(p, 0o644)
    this.files++
    this.bytes += size
  }
}

/** Small mostly (<4 KiB), some up to 32 KiB, a few medium (to 512 KiB). */
function systemFileSize(rng: Rng): number {
  const r = rng.next()
  if (r < 0.75) return rng.logInt(16, 4096)
  if (r < 0.97) return rng.logInt(4096, 32 * 1024)
  return rng.logInt(32 * 1024, 512 * 1024)
}

/** A tree with varying fan-out: directories attach to random earlier ones (deep and wide branches), and
 * files land in directories with Zipf-like weights (a few dirs hold hundreds, most hold a handful). */
function genSystemTree(root: string, files: number, rng: Rng, w: Writer): void {
  const top = ['usr/lib', 'usr/share', 'usr/include', 'etc', 'var/lib', 'opt/app', 'srv/app/src']
  const dirs: { path: string; depth: number }[] = []
  const used = new Set<string>()
  for (const t of top) {
    w.dir(join(root, t))
    dirs.push({ path: t, depth: t.split('/').length })
  }
  const nDirs = Math.max(8, Math.round(files / 22))
  while (dirs.length < nDirs) {
    // prefer recent dirs (depth) half the time, any dir otherwise (breadth)
    const parent = rng.next() < 0.5 ? dirs[dirs.length - 1 - Math.floor(rng.next() * Math.min(12, dirs.length))]! : rng.pick(dirs)
    if (parent.depth >= 9) continue
    const name = word(rng)
    const path = `${parent.path}/${name}`
    if (used.has(path)) continue
    used.add(path)
    w.dir(join(root, path))
    dirs.push({ path, depth: parent.depth + 1 })
  }
  // Zipf-ish weights over a shuffled dir order
  const order = dirs.map((_, i) => i)
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(0, i)
    ;[order[i], order[j]] = [order[j]!, order[i]!]
  }
  const cum: number[] = []
  let total = 0
  order.forEach((_, rank) => { total += 1 / Math.pow(rank + 1, 0.9); cum.push(total) })
  const names = new Set<string>()
  for (let i = 0; i < files; i++) {
    const x = rng.next() * total
    let lo = 0
    let hi = cum.length - 1
    while (lo < hi) { const mid = (lo + hi) >> 1; if (cum[mid]! < x) lo = mid + 1; else hi = mid }
    const d = dirs[order[lo]!]!
    let name = word(rng) + rng.pick(EXTS)
    // A file must not take the name of a file or directory already there.
    while (names.has(`${d.path}/${name}`) || used.has(`${d.path}/${name}`)) name = `${word(rng)}-${i}${rng.pick(EXTS)}`
    const rel = `${d.path}/${name}`
    names.add(rel)
    if (rng.next() < 0.02 && i > 0) {
      symlinkSync(`../${name}.target`, join(root, rel))
      w.symlinks++
    } else {
      w.file(join(root, rel), systemFileSize(rng))
    }
  }
}

/** node_modules: packages of 3..~80 small files, some with nested node_modules. */
function genNodeModules(root: string, files: number, rng: Rng, w: Writer): void {
  let made = 0
  let pkgNo = 0
  const pkgDirs: string[] = []
  while (made < files) {
    const nested = pkgDirs.length > 10 && rng.next() < 0.15
    const base = nested ? `${rng.pick(pkgDirs)}/node_modules` : 'node_modules'
    const name = `${word(rng)}-${pkgNo++}`
    const pkg = `${base}/${name}`
    w.dir(join(root, pkg))
    if (!nested) pkgDirs.push(pkg)
    const n = Math.min(files - made, rng.logInt(3, 80))
    const subdirs = ['', 'lib', 'dist', 'lib/internal', 'types']
    for (const s of subdirs) if (s) w.dir(join(root, pkg, s))
    for (let i = 0; i < n; i++) {
      const rel = i === 0 ? 'package.json' : i === 1 ? 'index.js' : `${rng.pick(subdirs) || '.'}/${word(rng)}-${i}${rng.pick(JS_EXTS)}`
      const size = rng.next() < 0.95 ? rng.logInt(64, 8192) : rng.logInt(8192, 48 * 1024)
      w.file(join(root, pkg, rel), size)
    }
    made += n
  }
}

async function listTree(root: string): Promise<{ files: string[]; dirs: string[] }> {
  const files: string[] = []
  const dirs: string[] = []
  const walk = async (rel: string): Promise<void> => {
    const ents = await readdir(join(root, rel), { withFileTypes: true })
    ents.sort((a, b) => (a.name < b.name ? -1 : 1))
    for (const e of ents) {
      const r = rel ? `${rel}/${e.name}` : e.name
      if (e.isDirectory()) { dirs.push(r); await walk(r) } else if (e.isFile()) files.push(r)
    }
  }
  await walk('')
  return { files, dirs }
}

/** The top layer: modify ~2% of base files, add ~1% new files, whiteout ~1% of base and nm files, whiteout
 * one directory, make two directories opaque (with a few new files in them). */
async function genChanges(top: string, base: string, nm: string, rng: Rng, w: Writer): Promise<{ whiteouts: number; opaque: number }> {
  const b = await listTree(base)
  const n = await listTree(nm)
  const script: string[] = ['set -e']
  let whiteouts = 0
  const ensureDir = (rel: string): void => { mkdirSync(join(top, rel), { recursive: true, mode: 0o755 }) }
  // whole directories first (opaque, or whited out); no per-file changes inside them: a whiteout inside an
  // opaque lower directory is not filtered by the kernel, since such a directory is not merged
  // deep directories with a moderate number of files become opaque or whited out
  const deep = b.dirs.filter((d) => d.split('/').length >= 4 && !d.startsWith('srv/'))
  let opaque = 0
  const chosen = new Set<string>()
  for (let i = 0; i < 3 && deep.length > 0; i++) {
    const d = rng.pick(deep)
    if ([...chosen].some((c) => d.startsWith(c + '/') || c.startsWith(d + '/') || c === d)) continue
    chosen.add(d)
    if (i < 2) {
      ensureDir(d)
      script.push(`setfattr -n trusted.overlay.opaque -v y '${join(top, d)}'`)
      for (let k = 0; k < 3; k++) w.file(join(top, d, `replaced-${k}.txt`), systemFileSize(rng))
      opaque++
    } else {
      ensureDir(dirname(d))
      script.push(`mknod '${join(top, d)}' c 0 0`)
      whiteouts++
    }
  }
  const inChosen = (f: string): boolean => [...chosen].some((c) => f.startsWith(c + '/') || f === c)
  const candidates = b.files.filter((f) => !f.startsWith('bigdata/') && !inChosen(f))
  for (const f of candidates) {
    const r = rng.next()
    if (r < 0.02) { ensureDir(dirname(f)); w.file(join(top, f), systemFileSize(rng)) }
    else if (r < 0.03) { ensureDir(dirname(f)); script.push(`mknod '${join(top, f)}' c 0 0`); whiteouts++ }
    else if (r < 0.04) { ensureDir(dirname(f)); w.file(join(top, `${f}.new`), systemFileSize(rng)) }
  }
  for (const f of n.files) {
    if (rng.next() < 0.01) { ensureDir(dirname(f)); script.push(`mknod '${join(top, f)}' c 0 0`); whiteouts++ }
  }
  const scriptPath = join(dirname(top), 'changes.sh')
  writeFileSync(scriptPath, script.join('\n') + '\n')
  await mustRun('sh', [scriptPath], { timeoutMs: 300_000 })
  rmSync(scriptPath)
  return { whiteouts, opaque }
}

async function writeBigFile(path: string, bytes: number, block: Buffer, index: number): Promise<void> {
  const fh = await open(path, 'w', 0o644)
  try {
    const blk = Buffer.from(block)
    for (let off = 0; off < bytes; off += blk.length) {
      // stamp each block with its number so no two blocks are identical (no dedup, no zero pages)
      blk.writeUInt32LE(index, 0)
      blk.writeUInt32LE(off / blk.length, 4)
      await fh.write(blk, 0, Math.min(blk.length, bytes - off), off)
    }
  } finally {
    await fh.close()
  }
}

function evenlySpaced<T>(xs: T[], n: number): T[] {
  if (xs.length <= n) return xs.slice()
  const out: T[] = []
  for (let i = 0; i < n; i++) out.push(xs[Math.floor((i * xs.length) / n)]!)
  return out
}

function readManifest(dir: string, spec: FixtureSpec): Fixture | undefined {
  try {
    const f = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Fixture
    if (f.version === FIXTURE_VERSION && JSON.stringify(f.spec) === JSON.stringify(spec) && f.dir === dir) return f
  } catch { /* absent or stale */ }
  return undefined
}

/** Return the cached fixture for `spec` under `benchDir`, generating it first if needed. */
export async function ensureFixture(benchDir: string, spec: FixtureSpec, log: (s: string) => void = () => {}): Promise<Fixture> {
  const dir = join(benchDir, `fixture-${spec.name}`)
  const cached = readManifest(dir, spec)
  if (cached) {
    log(`fixture: reusing ${dir}`)
    return cached
  }
  const t0 = performance.now()
  log(`fixture: generating ${spec.name} in ${dir} (${spec.baseFiles} + ${spec.nmFiles} files, ${spec.bigFiles} x ${spec.bigBytes / MiB} MiB)`)
  rmSync(dir, { recursive: true, force: true })
  const base = join(dir, 'layers/base')
  const nm = join(dir, 'layers/nm')
  const changes = join(dir, 'layers/changes')
  for (const d of [base, nm, changes]) mkdirSync(d, { recursive: true, mode: 0o755 })
  const rng = new Rng(0x1a7e5f5)
  const w = new Writer(rng)
  genSystemTree(base, spec.baseFiles, rng, w)
  genNodeModules(nm, spec.nmFiles, rng, w)
  mkdirSync(join(base, 'bigdata'), { mode: 0o755 })
  const block = rng.bytes(MiB)
  const bigFiles: string[] = []
  for (let i = 0; i < spec.bigFiles; i++) {
    const rel = `bigdata/big-${i}.bin`
    await writeBigFile(join(base, rel), spec.bigBytes, block, i)
    bigFiles.push(rel)
  }
  const { whiteouts, opaque } = await genChanges(changes, base, nm, rng, w)
  const lowers = [changes, nm, base]
  // the floor: the merged view as one plain directory, copied out of a read-only kernel overlay
  const plain = join(dir, 'plain')
  const mnt = join(dir, 'mnt-build')
  mkdirSync(mnt, { recursive: true })
  const h = await mountKernelOverlay(`lowerdir=${lowers.join(':')}`, mnt)
  try {
    await mustRun('cp', ['-a', `${mnt}/.`, `${plain}/`], { timeoutMs: 3_600_000 })
  } finally {
    await unmount(h)
  }
  rmSync(mnt, { recursive: true, force: true })
  const tarball = join(dir, 'nm.tar')
  await mustRun('tar', ['cf', tarball, '-C', nm, 'node_modules'], { timeoutMs: 600_000 })
  const merged = await listTree(plain)
  const small = merged.files.filter((f) => !f.startsWith('bigdata/'))
  const notNm = small.filter((f) => !f.startsWith('node_modules/'))
  const fixture: Fixture = {
    spec,
    version: FIXTURE_VERSION,
    dir,
    lowers,
    plain,
    tarball,
    bigFiles,
    bigDir: 'bigdata',
    nmRoot: 'node_modules',
    renameFiles: evenlySpaced(small, spec.bulkOps),
    buildSources: evenlySpaced(notNm, spec.buildSources),
    counts: { files: merged.files.length, dirs: merged.dirs.length, symlinks: w.symlinks, smallBytes: w.bytes, whiteouts, opaqueDirs: opaque },
  }
  await mustRun('sync', [], { timeoutMs: 600_000 })
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(fixture))
  log(`fixture: ${merged.files.length} files, ${merged.dirs.length} dirs in the merged view, ${whiteouts} whiteouts, ${opaque} opaque dirs (${((performance.now() - t0) / 1000).toFixed(1)} s)`)
  return fixture
}

export function fixtureExists(benchDir: string, spec: FixtureSpec): boolean {
  return existsSync(join(benchDir, `fixture-${spec.name}`, 'manifest.json'))
}
