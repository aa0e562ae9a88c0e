// A full upper layer, through the mount: the copy-ups of small lower files that C answers (a chmod,
// a rename, an open for writing, a setxattr, a truncate) and the link JS defers fail on a full
// disk as kernel overlayfs's do, and lose nothing: every name shows what it showed, and once space
// is freed the same operations leave the same tree and upper layer as kernel overlayfs's. The
// upper and work directories are on a small tmpfs (which fails a write at once, where a delayed
// allocation could fail only at the flush).
import { execFileSync } from 'node:child_process'
import { existsSync, lstatSync, readFileSync } from 'node:fs'
import { appendFile, chmod, link, mkdir, open, rename, truncate, unlink, utimes, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { lsetxattrSync } from '../../src/sys/native.js'
import { statsOf } from '../helpers/daemon-stats.js'
import { mountFrame } from '../helpers/layerfs-suite.js'
import { treeOf } from '../helpers/tree.js'
import { LAYERFS_COMMAND, fuseAvailable, mountFuse, mountOverlay } from '../helpers/mount.js'

const fuse = fuseAvailable()
if (!fuse.ok) console.warn(`skipping the full-disk mount tests: ${fuse.reason}`)
if (fuse.ok && !existsSync(resolve('dist/src/cli/main.js'))) throw new Error('build first: npm run build')

const M0 = 1_500_000_000
const FILES = 7
const SIZE = 40 * 1024 // small enough for C's copy-ups

/** The operations, one per lower file a<i>. */
const OPS: Array<[string, (mnt: string) => Promise<unknown>]> = [
  ['chmod', (mnt) => chmod(join(mnt, 'd', 'a0'), 0o600)],
  ['rename', (mnt) => rename(join(mnt, 'd', 'a1'), join(mnt, 'd', 'a1.mv'))],
  ['open for writing', async (mnt) => (await open(join(mnt, 'd', 'a2'), 'r+')).close()],
  ['setxattr', async (mnt) => lsetxattrSync(join(mnt, 'd', 'a3'), 'user.test', Buffer.from('v'))],
  ['link', (mnt) => link(join(mnt, 'd', 'a4'), join(mnt, 'd', 'a4.ln'))],
  ['truncate', (mnt) => truncate(join(mnt, 'd', 'a5'), 10)],
  ['utimes', (mnt) => utimes(join(mnt, 'd', 'a6'), M0 + 5, M0 + 5)],
]

/** Everything under `root`: kind, mode, size, links, mtime (the fixture's, or 'now'), a file's
 *  bytes' sum and its user xattrs. */
function treeState(root: string): Record<string, string> {
  return treeOf(root, '', (st, path) => {
    if (path.endsWith('/filler')) return undefined
    if (st.isDirectory()) return `dir ${st.mode.toString(8)}`
    if (st.isCharacterDevice()) return `char ${st.rdev}`
    const sum = readFileSync(path).reduce((a, b) => (a + b) % 65521, 0)
    const xattr = execFileSync('getfattr', ['-h', '-d', '-m', '^user\\.', '--absolute-names', path], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith('user.')).join(',')
    return `${st.mode.toString(8)} ${st.size} ${st.nlink} m=${st.mtimeMs < 1.6e12 ? st.mtimeMs : 'now'} sum=${sum} ${xattr}`
  })
}

/** Writes `filler` through the mount until the disk is full. */
async function fillUp(mnt: string): Promise<void> {
  const fh = await open(join(mnt, 'filler'), 'w')
  try {
    for (;;) await fh.write(Buffer.alloc(64 * 1024, 1))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err
  } finally {
    await fh.close()
  }
}

describe.skipIf(!fuse.ok)('copy-ups through the mount on a full upper layer', () => {
  const frame = mountFrame('full-disk-mount')
  let runs = 0

  type Run = { errors: string[]; whenFull: Record<string, string>; after: Record<string, string>; upper: Record<string, string>; inC?: NonNullable<Awaited<ReturnType<typeof statsOf>>['loop']> }

  /** `files` lower files d/<prefix><i> of `size` bytes on `driver` (mounted with `options`, both
   *  sides, and an upper layer on a 2 MiB tmpfs): `prepare` runs first (untimed), then each of
   *  `ops` on a full disk (its error code), then again once the filler is gone: the merged view
   *  after each phase and the upper layer at rest. */
  async function run(driver: 'kernel' | 'layerfs', options: string[], prefix: string, size: number, prepare: (mnt: string) => Promise<void>,
    ops: Array<[string, (mnt: string) => Promise<unknown>]>): Promise<Run> {
    const base = join(frame.dir, `r${++runs}`)
    const lower = join(base, 'lower')
    const small = join(base, 'small')
    const mnt = join(base, 'mnt')
    for (const d of [join(lower, 'd'), small, mnt]) await mkdir(d, { recursive: true })
    for (let i = 0; i < ops.length; i++) {
      await writeFile(join(lower, 'd', `${prefix}${i}`), Buffer.alloc(size, 65 + i))
      await utimes(join(lower, 'd', `${prefix}${i}`), M0, M0)
    }
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'layerfs-full-disk', small], { timeout: 10_000 })
    try {
      const upper = join(small, 'upper')
      const work = join(small, 'work')
      await mkdir(upper)
      await mkdir(work)
      const handle = frame.mounts.add(driver === 'kernel'
        ? await mountOverlay({ lowers: [lower], upper, work, mnt, options })
        : await mountFuse([LAYERFS_COMMAND, '-o', [`lowerdir=${lower},upperdir=${upper},workdir=${work}`, ...options].join(','), mnt], mnt))
      try {
        // The directory copied up by a new file in it.
        await writeFile(join(mnt, 'd', 'new'), 'n')
        await prepare(mnt)
        await fillUp(mnt)
        const errors: string[] = []
        for (const [name, op] of ops) {
          errors.push(await op(mnt).then(() => `${name}: done`, (err: NodeJS.ErrnoException) => `${name}: ${err.code}`))
        }
        const whenFull = treeState(mnt)
        await unlink(join(mnt, 'filler'))
        for (const [, op] of ops) await op(mnt)
        const after = treeState(mnt)
        const inC = driver === 'layerfs' ? (await statsOf(mnt)).loop : undefined
        await frame.mounts.unmount(handle)
        return { errors, whenFull, after, upper: treeState(upper), inC }
      } finally {
        await frame.mounts.unmount(handle)
      }
    } finally {
      execFileSync('umount', [small], { timeout: 10_000 })
    }
  }

  /** The same on kernel overlayfs and on layerfs: both runs, kernel overlayfs's refusing every op on
   *  the full disk, and the same errors, views and upper layers. */
  async function compare(options: string[], prefix: string, size: number, prepare: (mnt: string) => Promise<void>,
    ops: Array<[string, (mnt: string) => Promise<unknown>]>): Promise<{ expected: Run; actual: Run }> {
    const expected = await run('kernel', options, prefix, size, prepare, ops)
    const actual = await run('layerfs', options, prefix, size, prepare, ops)
    // What the comparison rests on: on the full disk, kernel overlayfs refused every copy-up.
    expect(expected.errors).toEqual(ops.map(([name]) => `${name}: ENOSPC`))
    expect(actual.errors).toEqual(expected.errors)
    expect(actual.whenFull).toEqual(expected.whenFull)
    expect(actual.after).toEqual(expected.after)
    expect(actual.upper).toEqual(expected.upper)
    return { expected, actual }
  }

  it('fails each copy-up ENOSPC as kernel overlayfs does, keeps every file, and succeeds once there is room', { timeout: 60_000 }, async () => {
    // Looked up first, as C answers only for files it has marked.
    const lookUp = async (mnt: string): Promise<void> => {
      for (let i = 0; i < FILES; i++) lstatSync(join(mnt, 'd', `a${i}`))
    }
    const { actual } = await compare([], 'a', SIZE, lookUp, OPS)
    for (let i = 0; i < FILES; i++) expect(actual.whenFull[join('d', `a${i}`)]).toMatch(new RegExp(`^100644 ${SIZE} 1 `))
    // With room again, C answered the copy-ups it answers (chmod and utimes, the rename, the opens
    // for writing of the open and the truncate, the setxattr): on the full disk it had tried them
    // first, and left each to JS when its copy failed.
    const inC = actual.inC!
    expect(inC.cowSetattrs).toBeGreaterThanOrEqual(2)
    expect(inC.cowRenames).toBe(1)
    expect(inC.cowOpens).toBeGreaterThanOrEqual(2)
    expect(inC.cowSetxattrs).toBe(1)
  })

  // With metacopy=on, chmods make metadata-only copies (in C, once looked up), and a file's data
  // follows at its first write or truncate, written into the copy itself; on a full disk that
  // fails ENOSPC and the file still shows its lower bytes (its mark goes last), as on kernel
  // overlayfs, and with room again the same changes land.
  it('with metacopy=on, fails the copy-up of the data ENOSPC, still showing the lower bytes, as kernel overlayfs does', { timeout: 60_000 }, async () => {
    const size = 300 * 1024
    const changes: Array<[string, (mnt: string) => Promise<unknown>]> = [
      ['append', (mnt) => appendFile(join(mnt, 'd', 'm0'), '+')],
      ['write', async (mnt) => {
        const fh = await open(join(mnt, 'd', 'm1'), 'r+')
        try {
          await fh.write('W', 1000)
        } finally {
          await fh.close()
        }
      }],
      ['truncate', (mnt) => truncate(join(mnt, 'd', 'm2'), size - 1)],
    ]
    const chmods = async (mnt: string): Promise<void> => {
      for (let i = 0; i < changes.length; i++) await chmod(join(mnt, 'd', `m${i}`), 0o640)
    }
    const { actual } = await compare(['metacopy=on'], 'm', size, chmods, changes)
    for (let i = 0; i < changes.length; i++) expect(actual.whenFull[join('d', `m${i}`)]).toMatch(new RegExp(`^100640 ${size} 1 `))
  })
})
