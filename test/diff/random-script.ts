// The generator of the random differential scripts (random.test.ts): layers and operations drawn
// from a seed over a few names, so that they collide.
import type { MmapStep, Op, RenameFlag, UserOp } from './ops.js'
import type { Layer, Scenario } from './spec.js'

/** mulberry32: small, fast, and the same sequence for a seed everywhere. */
function generator(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A script's draws, all from its seed's one sequence. */
interface Draw {
  rnd: () => number
  pick: <T>(xs: readonly T[]) => T
  chance: (p: number) => boolean
}

function draws(seed: number): Draw {
  const rnd = generator(seed)
  return { rnd, pick: (xs) => xs[Math.floor(rnd() * xs.length)]!, chance: (p) => rnd() < p }
}

/** A big file's text, and a huge one's: past the 1 MiB from which reads pass through. */
const BIG = 'big '.repeat(18_000)
const HUGE = 'huge'.repeat(280_000)

/** The directories scripts work in, and the names in them. */
const DIRS = ['', 'a', 'b', 'a/c']
const NAMES = ['x', 'y', 'a', 'b', 'c']

/** 'namespace': names made, moved and removed; 'io': files opened, written, read, linked and
 *  unlinked while open, over the same layers; 'users': root hands out modes and owners (setuid,
 *  setgid, sticky), and two unprivileged users read, write, create, remove and rename. */
export type Flavor = 'namespace' | 'io' | 'users'

export function randomScript(seed: number, ops = 30, flavor: Flavor = 'namespace'): Scenario {
  const draw = draws(seed)
  const { rnd, pick, chance } = draw
  const join2 = (d: string, n: string): string => (d === '' ? n : `${d}/${n}`)
  const path = (): string => (chance(0.15) ? pick(DIRS.filter((d) => d !== '')) : join2(pick(DIRS), pick(NAMES)))
  const text = (): string => pick(['', 'one', 'two two', 'three three three'])
  // A file's bytes: now and then more than the daemon copies up on the calling thread (64 KiB), so
  // that those copies are made on the thread pool and their requests wait for JS; and rarely more
  // than 1 MiB, whose opens for reading pass through (a lower one's in C).
  const content = (): string => (chance(0.1) ? (chance(0.25) ? HUGE : BIG) : text())

  // Each layer: some of the directories, then files, symlinks and whiteouts at names not taken by a
  // directory of that layer; a directory is sometimes opaque. A whiteout goes only where its
  // directory merges with the layer below (`below`), as overlayfs leaves them: the kernel lists one
  // in a directory that does not merge (and then cannot stat it).
  const layer = (below: Layer | undefined): Layer => {
    const bottom = below === undefined
    const l: Layer = {}
    const dirs = new Set([''])
    for (const d of DIRS) {
      if (d !== '' && dirs.has(d.split('/').slice(0, -1).join('/')) && chance(0.6)) {
        dirs.add(d)
        l[d] = chance(bottom ? 0 : 0.15) ? { opaque: true, mode: 0o755 } : { dir: true, mode: pick([0o755, 0o750]) }
      }
    }
    for (const d of dirs) {
      for (const n of NAMES) {
        const p = join2(d, n)
        if (dirs.has(p) || !chance(0.35)) continue
        const r = rnd()
        if (r < 0.6) l[p] = { file: content(), mode: pick([0o644, 0o600, 0o755]), xattrs: chance(0.2) ? { 'user.k': 'v' } : undefined }
        else if (r < 0.75) l[p] = { symlink: pick(['x', '../x', 'a/x', 'nowhere']) }
        else if (merges(l, below, d)) l[p] = { whiteout: true }
        else l[p] = content()
      }
    }
    // Now and then a second name of one of its files, in any of its directories (an image's hard
    // links: one name copied up parts from the others, whose pages the kernel keeps).
    const files = Object.entries(l).filter(([, e]) => typeof e === 'string' || 'file' in e).map(([p]) => p)
    if (files.length > 0 && chance(0.3)) {
      const p = join2(pick([...dirs]), pick(NAMES))
      if (l[p] === undefined && !dirs.has(p)) l[p] = { hardlink: pick(files) }
    }
    return l
  }

  /** Whether directory `d` of layer `l` merges with the layer below: a plain directory in both, and
   *  so are its parents. */
  const merges = (l: Layer, below: Layer | undefined, d: string): boolean => {
    if (below === undefined) return false
    if (d === '') return true
    if (!merges(l, below, d.split('/').slice(0, -1).join('/'))) return false
    const here = l[d]
    const there = below[d]
    return typeof here === 'object' && 'dir' in here && typeof there === 'object' && ('dir' in there || 'opaque' in there)
  }

  const list: Op[] = []
  // An io script's layers come first: its paths are mostly files of theirs.
  const ioLayers = flavor === 'io' ? [layer(undefined)] : []
  if (flavor === 'io') {
    ioLayers.unshift(layer(ioLayers[0]))
    const files = [...new Set(ioLayers.flatMap((l) => Object.entries(l).filter(([, e]) => typeof e === 'string' || 'file' in e).map(([p]) => p)))]
    const filePath = (): string => (files.length > 0 && chance(0.75) ? pick(files) : path())
    for (let i = 0; i < ops; i++) list.push(ioOp(draw, filePath, text, content))
  }
  for (let i = 0; i < ops && flavor === 'users'; i++) list.push(usersOp(draw, path))
  for (let i = 0; i < ops && flavor === 'namespace'; i++) {
    const p = path()
    const q = path()
    const r = rnd()
    if (r < 0.1) list.push(['writeFile', p, content()])
    else if (r < 0.16) list.push(['appendFile', p, content()])
    else if (r < 0.24) list.push(['mkdir', p, 0o755])
    else if (r < 0.3) list.push(['rmdir', p])
    else if (r < 0.38) list.push(['unlink', p])
    else if (r < 0.48) list.push(['rename', p, q])
    else if (r < 0.53) list.push(['renameat2', p, q, pick<RenameFlag>(['noreplace', 'exchange'])])
    else if (r < 0.57) list.push(['link', p, q])
    else if (r < 0.6) list.push(['symlink', pick(['x', '../y', 'a']), p])
    else if (r < 0.65) list.push(['chmod', p, pick([0o600, 0o755, 0o4755])])
    else if (r < 0.68) list.push(['chown', p, 1000, pick([1000, 0])])
    else if (r < 0.71) list.push(['utimes', p, 1e9, 1.1e9])
    else if (r < 0.75) list.push(['truncate', p, pick([0, 2, 100])])
    else if (r < 0.78) list.push(['setxattr', p, 'user.k', text() || 'v'])
    else if (r < 0.8) list.push(['removexattr', p, 'user.k'])
    else if (r < 0.83) list.push(['rm', p])
    else if (r < 0.9) list.push(['readFile', p])
    else if (r < 0.95) list.push(['readdir', pick(DIRS)])
    // (No stat: its inode number could be one the filesystem hands out again after a removal.)
    else list.push(['getxattr', p, 'user.k'])
  }
  const bottom = ioLayers[1] ?? layer(undefined)
  // A third lower layer in a third of the namespace scripts: whiteouts and opaque directories in
  // the middle of the stack.
  const middle = flavor === 'namespace' && chance(1 / 3) ? layer(bottom) : undefined
  const top = ioLayers[0] ?? layer(middle ?? bottom)
  const upper = chance(0.5) ? layer(top) : undefined
  // Users need directories they may write in: the users' scripts open them up, some sticky, some
  // set-group-ID with group 1000.
  if (flavor === 'users') {
    for (const l of [top, middle, bottom, upper]) {
      if (!l) continue
      l[''] = { dir: true, mode: 0o777 }
      for (const [p, e] of Object.entries(l)) {
        if (p !== '' && typeof e === 'object' && ('dir' in e || 'opaque' in e)) {
          l[p] = { ...e, mode: pick([0o777, 0o1777, 0o2777, 0o755]), gid: pick([0, 1000]) }
        }
      }
    }
  }
  const name = flavor === 'namespace' ? `random script, seed ${seed}` : `random ${flavor} script, seed ${seed}`
  return { name, group: 'random', layers: middle ? [top, middle, bottom] : [top, bottom], upper, ops: list }
}

/** One operation of a 'users' script: as root, modes and owners; as uid 1000 or 1001 (each in a
 *  group of its own, 1001 now and then in group 1000 too), what a user does. */
function usersOp({ rnd, pick }: Draw, path: () => string): Op {
  const p = path()
  const r = rnd()
  if (r < 0.2) return ['chmod', p, pick([0o644, 0o664, 0o666, 0o600, 0o755, 0o775, 0o777, 0o1777, 0o2775, 0o4755, 0o6775])]
  if (r < 0.3) return ['chown', p, pick([0, 1000, 1001]), pick([0, 1000])]
  if (r < 0.35) return ['mkdir', p, 0o777]
  if (r < 0.4) return ['writeFile', p, 'root']
  const [uid, groups] = pick([[1000, []], [1001, []], [1001, [1000]]] as const)
  const u = rnd()
  const op: UserOp = u < 0.2 ? ['appendFile', p, 'u']
    : u < 0.3 ? ['truncate', p, 1]
    : u < 0.4 ? ['readFile', p]
    : u < 0.55 ? ['create', p, pick([0o022, 0o002])]
    : u < 0.65 ? ['mkdir', p, 0o022]
    : u < 0.8 ? ['unlink', p, '']
    : u < 0.9 ? ['rename', p, path()]
    : ['chmod', p, pick([0o600, 0o2755, 0o4755])]
  return ['asUser', uid, uid, op, [...groups]]
}

/** One operation of an 'io' script. */
function ioOp({ rnd, pick }: Draw, path: () => string, text: () => string, content: () => string): Op {
  const p = path()
  const r = rnd()
  if (r < 0.3) {
    const flags = pick(['r', 'r+', 'w', 'a', 'a+', 'wx', ['O_RDWR', 'O_CREAT'], ['O_WRONLY', 'O_TRUNC']])
    const write = flags === 'r' ? undefined : content() || 'w'
    return ['open', p, flags, { write, at: rnd() < 0.5 ? undefined : pick([0, 1, 5]), read: rnd() < 0.7 }]
  }
  if (r < 0.38) return ['appendFile', p, content()]
  if (r < 0.45) return ['truncate', p, pick([0, 1, 50])]
  if (r < 0.53) return ['link', p, path()]
  if (r < 0.6) return ['unlink', p]
  if (r < 0.67) return ['rename', p, path()]
  if (r < 0.74) {
    const steps = ['read', 'ftruncate', 'fchmod', 'futimes', 'setxattr', 'listxattr', 'read', 'truncate', 'reopen', 'read'] as const
    return ['unlinkedFd', p, pick(['r', 'r+']), steps.filter(() => rnd() < 0.6)]
  }
  if (r < 0.8) return ['chmod', p, pick([0o600, 0o644, 0o2755])]
  if (r < 0.85) return ['setxattr', p, 'user.k', text() || 'v']
  if (r < 0.92) return ['readFile', p]
  if (r < 0.96) return ['readdir', pick(DIRS)]
  // A shared map, then steps through it, its descriptor and other opens. Only a writer's open
  // writes through another: a map of a lower file opened for reading keeps its old bytes on
  // overlayfs and shows the copy's on layerfs (README, deliberate differences).
  const flags = pick(['r', 'r+'] as const)
  const steps: MmapStep[] = flags === 'r' ? ['peek', 'private', 'otherRead', 'size', 'peek'] : ['peek', 'poke', 'pwrite', 'otherRead', 'otherWrite', 'private', 'msync', 'grow', 'shrink', 'size', 'peek']
  return ['mmap', p, flags, ['share', ...steps.filter(() => rnd() < 0.6)]]
}
