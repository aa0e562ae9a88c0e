// The getattr of a small lower file JS has marked (listed by readdirplus or looked up, see
// native/fuse-ll-cow.c) is answered in C from the lower file's lstat, and the mark stays; so are
// the reads of its xattrs outside `trusted.` (a chown asks for security.capability first, cp -a for
// the ACL) and its xattr list when it holds no `trusted.` name. Whatever
// changes the file afterwards (its data, xattrs, links, its name, its mode) must take the mark
// away first, or C would keep answering with the lower file's attributes. With attr_timeout=0 every
// stat below reaches the daemon; the same script runs on kernel overlayfs, and what stat shows must
// agree.
import { execFileSync } from 'node:child_process'
import { type BigIntStats, constants, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { type FileHandle, appendFile, chmod, chown, link, lstat, mkdir, open, readFile, readdir, rename, rm, truncate, unlink, utimes, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { XATTR_CREATE, XATTR_REPLACE, lgetxattrSync, llistxattrSync, lsetxattrSync } from '../../src/sys/native.js'
import { answeredInC, statsOf } from '../helpers/daemon-stats.js'
import { type Before, remember, statLine } from '../helpers/stat-line.js'
import { treeOf } from '../helpers/tree.js'
import { type Stack, mountFrame, readUpper } from '../helpers/layerfs-suite.js'
import { LAYERFS_COMMAND as CLI, fuseAvailable, mountFuse, mountOverlay } from '../helpers/mount.js'

const fuse = fuseAvailable()
if (!fuse.ok) console.warn(`skipping getattr-in-C tests: ${fuse.reason}`)
if (fuse.ok && !existsSync(resolve('dist/src/cli/main.js'))) throw new Error('build first: npm run build')

/** A version-2 file capability granting cap_net_raw (bit 13), permitted and effective. */
const CAP = Buffer.from([1, 0, 0, 2, 0x00, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
/** The times a change gives files (lookups-in-C test). */
const OLD = new Date(1_000_000_000_000)
const SMALL = ['append', 'xattr', 'linked', 'renamed', 'remade', 'truncated', 'chmodded', 'written', 'kept']
/** Names stat'ed after the changes (the link and the rename's target included). */
const AFTER = [...SMALL.filter((n) => n !== 'renamed'), 'linked2', 'renamed2', 'big', 'hard1', 'hard2', 'sub']

async function fillLowers(top: string, bottom: string): Promise<void> {
  await mkdir(join(top, 'd', 'sub', 'merged'), { recursive: true })
  await mkdir(join(bottom, 'd', 'sub', 'merged'), { recursive: true })
  await writeFile(join(bottom, 'd', 'sub', 'merged', 'below'), 'below')
  for (const name of SMALL) await writeFile(join(top, 'd', name), `lower ${name}`)
  for (const name of ['capped', 'capped-chowned']) {
    await writeFile(join(top, 'd', name), `lower ${name}`)
    lsetxattrSync(join(top, 'd', name), 'security.capability', CAP)
  }
  await writeFile(join(top, 'd', 'big'), Buffer.alloc(100_000, 1))
  await writeFile(join(top, 'd', 'hard1'), 'hard')
  await link(join(top, 'd', 'hard1'), join(top, 'd', 'hard2'))
}

/** An access ACL beyond the mode (a named user and a mask), which the filesystem keeps as an xattr:
 *  user::rw-, user:1000:rw-, group::r--, mask::rw-, other::r--. */
const ACL = Buffer.from([
  2, 0, 0, 0,
  1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff,
  2, 0, 6, 0, 0xe8, 3, 0, 0,
  4, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
  0x10, 0, 6, 0, 0xff, 0xff, 0xff, 0xff,
  0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
])
/** Lower files and the xattrs they hold, as stored. The first three hold only names stored as they
 *  show (listed in C); the others a trusted. name, which JS shows its own way (escaped, hidden). */
const XATTR_FILES: Record<string, Record<string, Buffer>> = {
  none: {},
  user: { 'user.a': Buffer.from('1'), 'user.b': Buffer.from('two') },
  acl: { 'system.posix_acl_access': ACL, 'user.c': Buffer.from('3') },
  trusted: { 'trusted.t': Buffer.from('t') },
  escaped: { 'trusted.overlay.overlay.x': Buffer.from('x'), 'user.d': Buffer.from('4') },
  private: { 'trusted.overlay.redirect': Buffer.from('/elsewhere'), 'user.e': Buffer.from('5') },
}

/** What stat shows of a name in `d` (statLine), against what it showed before the changes. */
/**
 * What lstat showed of names, step by step, as lines `step name: ...`: `show(step, names, line)`
 * adds what `line` makes of each name's lstat, given ` ino same` or ` ino other` as its inode
 * number compares with the first one shown of that name (nothing the first time), or, where the
 * lstat fails, what `failed` makes of its error code.
 */
function stepLog(at: (name: string) => string, failed = (code: string): string => code) {
  const lines: string[] = []
  const inos = new Map<string, bigint>()
  const show = async (step: string, names: string[], line: (name: string, st: BigIntStats, ino: string) => string | Promise<string>): Promise<void> => {
    for (const name of names) {
      const st = await lstat(at(name), { bigint: true }).catch((err: NodeJS.ErrnoException) => err.code ?? String(err))
      if (typeof st === 'string') {
        lines.push(`${step} ${name}: ${failed(st)}`)
        continue
      }
      const was = inos.get(name)
      if (was === undefined) inos.set(name, st.ino)
      lines.push(`${step} ${name}: ${await line(name, st, was === undefined ? '' : ` ino ${st.ino === was ? 'same' : 'other'}`)}`)
    }
  }
  return { lines, show }
}

function shown(mnt: string, name: string, before?: Before): Promise<string> {
  return statLine(join(mnt, 'd', name), { before, key: name })
}

/** The changes, each through a request that must take the file's mark away first. */
async function change(mnt: string): Promise<void> {
  const at = (name: string): string => join(mnt, 'd', name)
  await appendFile(at('append'), ' and more')
  lsetxattrSync(at('xattr'), 'user.k', Buffer.from('v'))
  await link(at('linked'), at('linked2'))
  await rename(at('renamed'), at('renamed2'))
  await unlink(at('remade'))
  await writeFile(at('remade'), 'made again, longer than before')
  await truncate(at('truncated'), 2)
  await chmod(at('chmodded'), 0o600)
  const fh = await open(at('written'), 'r+')
  try {
    await fh.write('W', 20)
    // An fstat through the open handle, before the close.
    expect((await fh.stat()).size).toBe(21)
  } finally {
    await fh.close()
  }
}

describe.skipIf(!fuse.ok)('getattrs of marked lower files answered in C', () => {
  const frame = mountFrame('cow-getattr')
  const mounts = frame.mounts

  /** Runs `run` on kernel overlayfs, then on layerfs, and expects the same `shown` (and `upper`,
   *  where it gives one): layerfs's run, for what the comparison rests on. */
  async function sameAsKernel<T extends { shown: string[]; upper?: string[] }>(run: (driver: 'kernel' | 'layerfs') => Promise<T>): Promise<T> {
    const expected = await run('kernel')
    const actual = await run('layerfs')
    expect(actual.shown).toEqual(expected.shown)
    expect(actual.upper).toEqual(expected.upper)
    return actual
  }

  /** `script` on a stack of its own under kernel overlayfs, then under layerfs (frame.onBoth, which
   *  unmounts each), and expects the same `shown` and the same upper layer (upperTree): layerfs's
   *  result, for what the comparison rests on. */
  async function sameOnBoth<T extends { shown: string[] }>(options: string, fill: (...lowers: string[]) => Promise<void>,
    script: (stack: Stack, driver: 'kernel' | 'layerfs') => Promise<T>, lowers?: number): Promise<T> {
    const uppers: string[] = []
    const { kernel, layerfs } = await frame.onBoth(options, fill, (stack, driver) => {
      uppers.push(stack.upper)
      return script(stack, driver)
    }, lowers)
    expect(layerfs.shown).toEqual(kernel.shown)
    expect(upperTree(uppers[1]!)).toEqual(upperTree(uppers[0]!))
    return layerfs
  }

  /** The upper layer `upper`, one line per entry: its mode and a file's size, or a whiteout. */
  function upperTree(upper: string): string[] {
    const described = treeOf(upper, '', (st) => st.isCharacterDevice() ? 'whiteout' : `${(st.mode & 0o7777).toString(8)}${st.isFile() ? ` size ${st.size}` : ''}`)
    return Object.entries(described).map(([path, what]) => `${path}: ${what}`)
  }

  /** getfacl's account of the tree `copy` under `root`, one entry per file, sorted (listing orders
   *  differ between the drivers). */
  function acls(root: string): string[] {
    return execFileSync('getfacl', ['-R', '-n', 'copy'], { cwd: root, encoding: 'utf8' }).trim().split(/\n\n+/).sort()
  }


  async function run({ mnt }: Stack, driver: 'kernel' | 'layerfs'): Promise<{ listed: string[]; after: string[]; caps: string[]; inC?: [number, number]; xattrsInC?: number }> {
    // The parent is copied up first (a chmod), so that the listing marks the directory in it too
    // ('sub', merged): a merged directory's attributes are not its top layer's lstat (nlink 1 here,
    // 3 there), and stay JS's to give.
    await chmod(join(mnt, 'd'), 0o755)
    const names = (await readdir(join(mnt, 'd'))).sort()
    const inC0 = driver === 'layerfs' ? (await statsOf(mnt)).loop?.cowGetattrs ?? 0 : 0
    const before: Before = new Map()
    const listed: string[] = []
    for (const name of names) {
      await remember(before, name, join(mnt, 'd', name))
      listed.push(`${name}: ${await shown(mnt, name)}`)
    }
    const inC1 = driver === 'layerfs' ? (await statsOf(mnt)).loop?.cowGetattrs ?? 0 : 0
    // Capabilities: read as they are, then after a chown, which drops them (its copy has none).
    const cap = (name: string): string => `${name}: ${lgetxattrSync(join(mnt, 'd', name), 'security.capability')?.toString('hex') ?? '-'}`
    const xattrsAnswered = await answeredInC(driver, mnt, 'cowGetxattrs')
    const caps = [cap('capped'), cap('capped-chowned'), cap('kept')]
    await chown(join(mnt, 'd', 'capped-chowned'), 1000, 1000)
    caps.push(cap('capped-chowned'), cap('capped'))
    const xattrsInC = await xattrsAnswered()
    await change(mnt)
    const after: string[] = []
    for (const name of AFTER) after.push(`${name}: ${await shown(mnt, name, before)}`)
    // The directory, copied up by the chmod (merged: one link), its getattrs answered in C.
    const dir = await lstat(join(mnt, 'd'), { bigint: true })
    after.push(`d: ${dir.mode.toString(8)} nlink ${dir.nlink} ${dir.uid}:${dir.gid}`)
    return { listed, after, caps, inC: driver === 'layerfs' ? [inC0, inC1] : undefined, xattrsInC }
  }

  it('shows what kernel overlayfs shows, before and after each kind of change', async () => {
    const { kernel: expected, layerfs: actual } = await frame.onBoth(',attr_timeout=0', (top, bottom) => fillLowers(top, bottom), run, 2)
    expect(actual.listed).toEqual(expected.listed)
    expect(actual.after).toEqual(expected.after)
    expect(actual.caps).toEqual(expected.caps)
    expect(actual.caps).toEqual([
      `capped: ${CAP.toString('hex')}`, `capped-chowned: ${CAP.toString('hex')}`, 'kept: -', 'capped-chowned: -', `capped: ${CAP.toString('hex')}`,
    ])
    // In C: the reads of marked files (lgetxattrSync asks for the size, then the value: two requests
    // for 'capped' twice and 'capped-chowned' once, one for 'kept', which has none) and the chown's
    // own (the kernel asks for the size only); the read of the chowned file's copy went to JS.
    expect(actual.xattrsInC).toBe(8)
    // Each small file was stat'ed twice after the listing, through C: the eleven small ones, not the
    // big one, the hard-linked ones or the subdirectories; and with them the directory itself, at
    // each permission check of a lookup in it (attr_timeout=0).
    const [inC0, inC1] = actual.inC!
    expect(inC1 - inC0).toBeGreaterThan(2 * (SMALL.length + 2))
    expect(actual.after).toContain('d: 40755 nlink 1 0:0')
    // What the comparison rests on, spelled out.
    expect(actual.after).toContain('append: 100644 nlink 1 0:0 size 21 ino same mtime other ctime other')
    expect(actual.after).toContain('linked: 100644 nlink 2 0:0 size 12 ino same mtime same ctime other')
    expect(actual.after).toContain('chmodded: 100600 nlink 1 0:0 size 14 ino same mtime same ctime other')
    expect(actual.after).toContain('xattr: 100644 nlink 1 0:0 size 11 ino same mtime same ctime other')
    expect(actual.after).toContain('kept: 100644 nlink 1 0:0 size 10 ino same mtime same ctime same')
    expect(actual.after.find((line) => line.startsWith('sub: '))).toMatch(/^sub: 40755 nlink 1 0:0 size \d+ ino same mtime same ctime same$/)
  })

  it('lists and reads the xattrs of marked lower files as kernel overlayfs shows them, in C where stored as shown', async () => {
    const run = async (driver: 'kernel' | 'layerfs'): Promise<{ shown: string[]; inC?: { lists: number; reads: number }; dirsInC?: { lists: number; reads: number } }> => {
      const { mnt, handle } = await frame.stack(driver, ',attr_timeout=0', async (lower) => {
        await mkdir(join(lower, 'd'))
        for (const [name, xattrs] of Object.entries(XATTR_FILES)) {
          await writeFile(join(lower, 'd', name), name)
          for (const [key, value] of Object.entries(xattrs)) lsetxattrSync(join(lower, 'd', name), key, value)
        }
        // Directories: one with xattrs only below, and 'd' itself, copied up below by a change.
        await mkdir(join(lower, 'd', 'sub'))
        lsetxattrSync(join(lower, 'd', 'sub'), 'user.s', Buffer.from('s'))
        lsetxattrSync(join(lower, 'd', 'sub'), 'system.posix_acl_access', ACL)
        lsetxattrSync(join(lower, 'd'), 'user.top', Buffer.from('d'))
      })
      try {
        await readdir(join(mnt, 'd')) // the listing marks the files
        const loop = async (): Promise<{ cowListxattrs: number; cowGetxattrs: number } | undefined> => driver === 'layerfs' ? (await statsOf(mnt)).loop : undefined
        const before = await loop()
        const shown: string[] = []
        const show = (name: string): void => {
          const path = join(mnt, 'd', name)
          const names = llistxattrSync(path).sort()
          shown.push(`${name}: ${names.map((key) => `${key}=${lgetxattrSync(path, key)?.toString('hex')}`).join(' ')}`)
        }
        for (const name of Object.keys(XATTR_FILES)) show(name)
        const after = await loop()
        // A change takes the mark away: the list is JS's again, and shows it.
        lsetxattrSync(join(mnt, 'd', 'user'), 'user.new', Buffer.from('n'))
        show('user')
        // A directory's xattrs, from the topmost layer that holds it: 'sub' from below, 'd' from
        // its copy, made by the change above (a list holding the copy's origin, a trusted. name
        // of the union's, is JS's; reads of user. names are C's).
        const dirs0 = await loop()
        show('sub')
        show('.')
        const dirs1 = await loop()
        const inC = before && after ? { lists: after.cowListxattrs - before.cowListxattrs, reads: after.cowGetxattrs - before.cowGetxattrs } : undefined
        const dirsInC = dirs0 && dirs1 ? { lists: dirs1.cowListxattrs - dirs0.cowListxattrs, reads: dirs1.cowGetxattrs - dirs0.cowGetxattrs } : undefined
        return { shown, inC, dirsInC }
      } finally {
        await mounts.unmount(handle)
      }
    }
    const actual = await sameAsKernel(run)
    const hex = (text: string): string => Buffer.from(text).toString('hex')
    expect(actual.shown).toEqual([
      'none: ',
      `user: user.a=${hex('1')} user.b=${hex('two')}`,
      `acl: system.posix_acl_access=${ACL.toString('hex')} user.c=${hex('3')}`,
      `trusted: trusted.t=${hex('t')}`,
      `escaped: trusted.overlay.x=${hex('x')} user.d=${hex('4')}`,
      `private: user.e=${hex('5')}`,
      `user: user.a=${hex('1')} user.b=${hex('two')} user.new=${hex('n')}`,
      `sub: system.posix_acl_access=${ACL.toString('hex')} user.s=${hex('s')}`,
      `.: user.top=${hex('d')}`,
    ])
    // The directories: in C the list of 'sub' (that of 'd', whose copy holds its origin, is JS's)
    // and the reads of 'sub''s two values (its ACL once, into the kernel's cache) and 'd''s one.
    expect(actual.dirsInC).toEqual({ lists: 1, reads: 3 })
    // One request per list or read (the native calls offer a buffer big enough). In C: the lists of
    // the three files with no trusted. name, the five user. values (those of files listed by JS
    // too: only the list of a file holding a trusted. name goes to JS), and the ACL, read once into
    // the kernel's cache of ACLs. trusted. names are read by JS.
    expect(actual.inC).toEqual({ lists: 3, reads: 6 })
  })

  // A file the daemon made holds no security.capability until a setxattr gives it one: the
  // getxattrs of that name (the first write and a chown ask) are answered in C until then. A link
  // takes the mark away too: a setxattr through the other name would not reach this node.
  it('answers security.capability of files it made in C until a setxattr or link, as kernel overlayfs shows it', async () => {
    const run = async (driver: 'kernel' | 'layerfs'): Promise<{ shown: string[]; inC?: number; inJs?: number }> => {
      const { mnt, handle } = await frame.stack(driver, '', (lower) => mkdir(join(lower, 'd')))
      try {
        const at = (name: string): string => join(mnt, 'd', name)
        const shown: string[] = []
        const cap = (name: string): void => {
          shown.push(`${name}: ${lgetxattrSync(at(name), 'security.capability')?.toString('hex') ?? '-'}`)
        }
        const counts = async (): Promise<[number, number]> => {
          if (driver !== 'layerfs') return [0, 0]
          const stats = await statsOf(mnt)
          return [stats.loop!.cowGetxattrs, stats.ops['getxattr'] ?? 0]
        }
        const [c0, j0] = await counts()
        await writeFile(at('made'), 'made') // its write asks
        cap('made')
        await chown(at('made'), 1000, 1000) // asks again
        cap('made')
        await writeFile(at('linked'), 'linked')
        const [c1, j1] = await counts()
        lsetxattrSync(at('made'), 'security.capability', CAP)
        cap('made')
        await appendFile(at('made'), 'more') // a write drops it
        cap('made')
        await link(at('linked'), at('linked2'))
        lsetxattrSync(at('linked2'), 'security.capability', CAP)
        cap('linked')
        cap('linked2')
        return { shown, inC: c1 - c0, inJs: j1 - j0 }
      } finally {
        await mounts.unmount(handle)
      }
    }
    const actual = await sameAsKernel(run)
    const cap = CAP.toString('hex')
    expect(actual.shown).toEqual(['made: -', 'made: -', `made: ${cap}`, 'made: -', `linked: ${cap}`, `linked2: ${cap}`])
    // Before the setxattr: two reads, the writes' and the chown's asks, all in C; in JS only the
    // read of the daemon's stats (a getxattr of the mount's root) that took the second count.
    console.log("INC", actual.inC, JSON.stringify(actual.shown))
    expect(actual.inC).toBeGreaterThanOrEqual(4)
    expect(actual.inJs).toBe(1)
  })

  // While the open that made a file lives, its changes of mode, owner and times are made and
  // answered in C through that open's descriptor (tar x makes three per file), also after a rename
  // or unlink of it; a set-ID bit, another open's change, and anything after the close go to JS.
  it('changes files it made through their open in C, as kernel overlayfs changes them', async () => {
    const run = async (driver: 'kernel' | 'layerfs'): Promise<{ shown: string[]; upper: string[]; inC?: number }> => {
      const { upper, mnt, handle } = await frame.stack(driver, ',attr_timeout=0', (lower) => mkdir(join(lower, 'd')))
      try {
        const at = (name: string): string => join(mnt, 'd', name)
        // Times too, where the script set them (a file's creation time differs between the runs).
        const show = (st: { mode: bigint; uid: bigint; gid: bigint; atimeNs: bigint; mtimeNs: bigint; nlink: bigint; size: bigint }, times = true): string =>
          `${st.mode.toString(8)} ${st.uid}:${st.gid}${times ? ` a=${st.atimeNs} m=${st.mtimeNs}` : ''} n=${st.nlink} s=${st.size}`
        const shown: string[] = []
        const answered = await answeredInC(driver, mnt, 'cowSetattrs')
        // As tar x: write, then owner, mode and times through the open.
        const made = await open(at('made'), 'wx', 0o600)
        await made.write('data')
        await made.chown(1000, 1001)
        await made.chmod(0o640)
        await made.utimes(1_000, 2_000)
        await chmod(at('made'), 0o644) // by name, while open
        shown.push(`made: ${show(await made.stat({ bigint: true }))}`)
        // Renamed and unlinked while open: the changes follow the file.
        await rename(at('made'), at('moved'))
        await made.chmod(0o604)
        shown.push(`moved: ${show(await lstat(at('moved'), { bigint: true }))}`)
        await unlink(at('moved'))
        await made.chown(1002, 1002)
        shown.push(`unlinked: ${show(await made.stat({ bigint: true }))}`)
        await made.close()
        // A set-ID bit, then another open's change, then a change after the close.
        const setid = await open(at('setid'), 'wx', 0o700)
        await setid.chmod(0o4755)
        await setid.chmod(0o755)
        const other = await open(at('setid'), 'r')
        await other.chmod(0o750)
        await other.close()
        await setid.close()
        await chmod(at('setid'), 0o700)
        shown.push(`setid: ${show(await lstat(at('setid'), { bigint: true }), false)}`)
        const inC = await answered()
        await mounts.unmount(handle)
        const upperShown = [`setid: ${show(await lstat(join(upper, 'd', 'setid'), { bigint: true }), false)}`]
        return { shown, upper: upperShown, inC }
      } finally {
        await mounts.unmount(handle)
      }
    }
    const actual = await sameAsKernel(run)
    expect(actual.shown).toEqual([
      'made: 100644 1000:1001 a=1000000000000 m=2000000000000 n=1 s=4',
      'moved: 100604 1000:1001 a=1000000000000 m=2000000000000 n=1 s=4',
      'unlinked: 100604 1002:1002 a=1000000000000 m=2000000000000 n=0 s=4',
      'setid: 100700 0:0 n=1 s=0',
    ])
    // In C: the four changes of 'made' while named (owner, mode and times through the open, the mode
    // by name), its chmod after the rename and its chown after the unlink; the rest (a set-ID bit,
    // and after it, another open's change, a change after the close) in JS.
    expect(actual.inC).toBe(6)
  })

  // A file written and then stat'ed while the open that made it lives (the write moved its size
  // and times under the kernel, and one passed through never reached the daemon): the getattr is
  // answered in C from that open's descriptor, also once the file is unlinked; after the close,
  // and for a file made by another open, it goes to JS.
  it('answers the getattrs of files it made in C while the open that made them lives, as kernel overlayfs shows them', async () => {
    const run = async (driver: 'kernel' | 'layerfs'): Promise<{ shown: string[]; inJs?: number }> => {
      const { mnt, handle } = await frame.stack(driver, '', (lower) => mkdir(join(lower, 'd')))
      try {
        const at = (name: string): string => join(mnt, 'd', name)
        const show = (st: { mode: bigint; nlink: bigint; size: bigint }): string => `${st.mode.toString(8)} n=${st.nlink} s=${st.size}`
        const shown: string[] = []
        await writeFile(at('warm'), '') // the directory's copy-up, before the count
        const j0 = driver === 'layerfs' ? (await statsOf(mnt)).ops['getattr'] ?? 0 : 0
        for (const name of ['a', 'b', 'c']) {
          const fh = await open(at(name), 'wx', 0o640)
          await fh.write('x'.repeat(100))
          const first = await fh.stat({ bigint: true })
          await fh.write('more', 100)
          const second = await fh.stat({ bigint: true })
          await fh.close()
          const named = await lstat(at(name), { bigint: true })
          shown.push(`${name}: ${show(first)}, ${show(second)}, ${show(named)}, one inode ${first.ino === named.ino}, mtime kept ${second.mtimeNs === named.mtimeNs}`)
        }
        const gone = await open(at('gone'), 'wx', 0o600)
        await gone.write('gone')
        await unlink(at('gone'))
        shown.push(`gone: ${show(await gone.stat({ bigint: true }))}`)
        await gone.close()
        const j1 = driver === 'layerfs' ? (await statsOf(mnt)).ops['getattr'] ?? 0 : 0
        return { shown, inJs: driver === 'layerfs' ? j1 - j0 : undefined }
      } finally {
        await mounts.unmount(handle)
      }
    }
    const actual = await sameAsKernel(run)
    expect(actual.shown[0]).toBe('a: 100640 n=1 s=100, 100640 n=1 s=104, 100640 n=1 s=104, one inode true, mtime kept true')
    expect(actual.shown[3]).toBe('gone: 100600 n=0 s=4')
    // The seven fstats went to C (each after a write, which drops the attributes the kernel held);
    // to JS at most what the stats read asks of the mount's root.
    expect(actual.inJs).toBeLessThanOrEqual(2)
  })

  // cp -a sets the access ACL of every file it copies, through the open that made the copy (from
  // the source's ACL, or from its mode where it has none): answered in C through that open's
  // descriptor, where the host filesystem turns an ACL the mode can hold into that mode and stores
  // any other. A directory's (set by name), and a file's once that open is closed, go to JS.
  it('sets the access ACLs of files it made through their open in C, as kernel overlayfs sets them', async () => {
    const run = async (driver: 'kernel' | 'layerfs'): Promise<{ shown: string[]; upper: string[]; inC?: number }> => {
      const { upper, mnt, handle } = await frame.stack(driver, '', async (lower) => {
        await mkdir(join(lower, 'src'), { mode: 0o750 })
        await writeFile(join(lower, 'src', 'plain'), 'p', { mode: 0o640 })
        await writeFile(join(lower, 'src', 'exec'), 'x', { mode: 0o755 })
        await writeFile(join(lower, 'src', 'acl'), 'a', { mode: 0o640 })
        execFileSync('setfacl', ['-m', 'u:1000:rw,g:1001:r', join(lower, 'src', 'acl')])
        execFileSync('setfacl', ['-m', 'u:1000:rx', join(lower, 'src')])
      })
      try {
        const answered = await answeredInC(driver, mnt, 'madeSetxattrs')
        execFileSync('cp', ['-a', join(mnt, 'src'), join(mnt, 'copy')])
        const inC = await answered()
        execFileSync('setfacl', ['-m', 'u:1002:r', join(mnt, 'copy', 'plain')]) // after the close
        const shown = acls(mnt)
        await mounts.unmount(handle)
        return { shown, upper: acls(upper), inC }
      } finally {
        await mounts.unmount(handle)
      }
    }
    const actual = await sameAsKernel(run)
    // What the comparison rests on: the extended ACLs came through, the mode-only ones as modes.
    expect(actual.shown).toContain('# file: copy/acl\n# owner: 0\n# group: 0\nuser::rw-\nuser:1000:rw-\ngroup::r--\ngroup:1001:r--\nmask::rw-\nother::---')
    expect(actual.shown).toContain('# file: copy/exec\n# owner: 0\n# group: 0\nuser::rwx\ngroup::r-x\nother::r-x')
    // In C: the three files' ACLs, set through the open that made each copy.
    expect(actual.inC).toBe(3)
  })

  // The setxattr of a user. name on a marked lower file copies it up in C and sets the name on the
  // copy (setfattr of an image's files); the copy-up stays when the setxattr then fails, as in
  // kernel overlayfs. A set-ID file goes to JS.
  it('copies lower files up at a setxattr in C, as kernel overlayfs copies them', async () => {
    const NAMES = ['plain', 'created', 'replaced', 'suid']
    const run = async (driver: 'kernel' | 'layerfs'): Promise<{ shown: string[]; upper: string[]; inC?: number }> => {
      const { upper, mnt, handle } = await frame.stack(driver, ',attr_timeout=0', async (lower) => {
        await mkdir(join(lower, 'd'))
        for (const name of NAMES) await writeFile(join(lower, 'd', name), `lower ${name}`, { mode: 0o644 })
        await chmod(join(lower, 'd', 'suid'), 0o4755)
        lsetxattrSync(join(lower, 'd', 'created'), 'user.had', 'below')
      })
      try {
        const at = (name: string): string => join(mnt, 'd', name)
        const userXattrs = (path: string): string => llistxattrSync(path).filter((x) => x.startsWith('user.')).sort()
          .map((x) => `${x}=${lgetxattrSync(path, x)?.toString()}`).join(' ')
        const ino = new Map<string, bigint>()
        await readdir(join(mnt, 'd'))
        for (const name of NAMES) ino.set(name, (await lstat(at(name), { bigint: true })).ino)
        const answered = await answeredInC(driver, mnt, 'cowSetxattrs')
        const shown: string[] = []
        const attempt = (name: string, flags: number): string => {
          try {
            lsetxattrSync(at(name), name === 'created' ? 'user.had' : 'user.new', `set on ${name}`, flags)
            return 'ok'
          } catch (err) {
            return (err as NodeJS.ErrnoException).code ?? String(err)
          }
        }
        for (const [name, flags] of [['plain', 0], ['created', XATTR_CREATE], ['replaced', XATTR_REPLACE], ['suid', 0]] as const) {
          const result = attempt(name, flags)
          const st = await lstat(at(name), { bigint: true })
          shown.push(`${name}: ${result}, ${st.mode.toString(8)} n=${st.nlink} s=${st.size}, inode kept ${st.ino === ino.get(name)}, ${userXattrs(at(name))}`)
        }
        const inC = await answered()
        await mounts.unmount(handle)
        const upperShown: string[] = []
        for (const name of NAMES) upperShown.push(`${name}: ${await readFile(join(upper, 'd', name), 'utf8')} ${userXattrs(join(upper, 'd', name))}`)
        return { shown, upper: upperShown, inC }
      } finally {
        await mounts.unmount(handle)
      }
    }
    const actual = await sameAsKernel(run)
    // What the comparison rests on.
    expect(actual.shown).toEqual([
      'plain: ok, 100644 n=1 s=11, inode kept true, user.new=set on plain',
      'created: EEXIST, 100644 n=1 s=13, inode kept true, user.had=below',
      'replaced: ENODATA, 100644 n=1 s=14, inode kept true, ',
      'suid: ok, 104755 n=1 s=10, inode kept true, user.new=set on suid',
    ])
    expect(actual.upper).toEqual(['plain: lower plain user.new=set on plain', 'created: lower created user.had=below', 'replaced: lower replaced ', 'suid: lower suid user.new=set on suid'])
    // In C: the first three (the set-ID file is JS's).
    expect(actual.inC).toBe(3)
  })

  // The capability read that a truncate (and `echo x > file`'s O_TRUNC open) sends before it
  // changes a file: for a file opened for writing under a writer's mark, C read it at the mark and
  // answers it while the mark lives. One that holds a capability loses it at the truncate, as in
  // kernel overlayfs: its reads stay JS's.
  it('answers the capability reads of files open for writing in C, and only for those without one', async () => {
    const run = async (driver: 'kernel' | 'layerfs'): Promise<{ shown: string[]; upper: string[]; inC?: number }> => {
      const { upper, mnt, handle } = await frame.stack(driver, ',attr_timeout=0', async (lower) => {
        await mkdir(join(lower, 'd'))
        for (const name of ['plain', 'capped']) await writeFile(join(lower, 'd', name), `lower ${name}`, { mode: 0o644 })
        lsetxattrSync(join(lower, 'd', 'capped'), 'security.capability', CAP)
      })
      try {
        const at = (name: string): string => join(mnt, 'd', name)
        const cap = (name: string): string => lgetxattrSync(at(name), 'security.capability')?.toString('hex') ?? '-'
        await writeFile(at('mine'), 'mine, in the upper layer')
        for (const name of ['plain', 'capped', 'mine']) await lstat(at(name))
        const answered = await answeredInC(driver, mnt, 'cowGetxattrs')
        const shown: string[] = []
        for (const name of ['plain', 'capped', 'mine']) {
          const f = await open(at(name), 'r+')
          await f.truncate(4)
          await f.write('T', 0)
          await f.truncate(3)
          shown.push(`${name}: ${(await f.stat()).size} bytes, cap ${cap(name)}`)
          await f.close()
          shown.push(`${name} closed: ${await readFile(at(name), 'utf8')}, cap ${cap(name)}`)
        }
        const inC = await answered()
        await mounts.unmount(handle)
        const upperShown: string[] = []
        for (const name of ['plain', 'capped', 'mine']) {
          upperShown.push(`${name}: ${await readFile(join(upper, 'd', name), 'utf8')} cap ${lgetxattrSync(join(upper, 'd', name), 'security.capability')?.toString('hex') ?? '-'}`)
        }
        return { shown, upper: upperShown, inC }
      } finally {
        await mounts.unmount(handle)
      }
    }
    const actual = await sameAsKernel(run)
    // What the comparison rests on.
    expect(actual.upper).toEqual(['plain: Tow cap -', 'capped: Tow cap -', 'mine: Tin cap -'])
    expect(actual.shown[2]).toBe('capped: 3 bytes, cap -')
    // In C: the capability reads before plain's and mine's changes (mine, made through the mount,
    // never had one); those of the capped file go to JS, which takes its capability away at the
    // first (it has none at the next, but its mark said it had one). Without the writer's mark,
    // plain's went to JS as well: 4 in C.
    expect(actual.inC).toBe(7)
  })

  // A file opened for writing, with one link and no set-ID bit (a lower file's copy-up, an upper
  // file reopened), has its changes of mode, owner and times made and answered in C through the
  // open's descriptor while it lives and keeps its name, shown with the inode number JS gives it:
  // touch(1) is an open for writing, a change of the times through it, and a close. The capability
  // stays as the host's chmod or chown leaves it; a set-ID file, a hard link's other name, a file
  // renamed or unlinked while open and anything after the close go to JS.
  it('changes files opened for writing through their open in C, as kernel overlayfs changes them', async () => {
    const run = async (driver: 'kernel' | 'layerfs'): Promise<{ shown: string[]; upper: string[]; inC?: number }> => {
      const { upper, mnt, handle } = await frame.stack(driver, ',attr_timeout=0', async (lower) => {
        await mkdir(join(lower, 'd'))
        for (const name of ['touched', 'gone', 'capped', 'capped-chown', 'suid', 'hard1']) await writeFile(join(lower, 'd', name), name, { mode: 0o644 })
        await chmod(join(lower, 'd', 'suid'), 0o4755)
        for (const name of ['capped', 'capped-chown']) lsetxattrSync(join(lower, 'd', name), 'security.capability', CAP)
        await link(join(lower, 'd', 'hard1'), join(lower, 'd', 'hard2'))
      })
      try {
        const at = (name: string): string => join(mnt, 'd', name)
        const show = (st: { mode: bigint; uid: bigint; gid: bigint; atimeNs: bigint; mtimeNs: bigint; nlink: bigint; size: bigint }, times = true): string =>
          `${st.mode.toString(8)} ${st.uid}:${st.gid}${times ? ` a=${st.atimeNs} m=${st.mtimeNs}` : ''} n=${st.nlink} s=${st.size}`
        const cap = (name: string): string => lgetxattrSync(at(name), 'security.capability')?.toString('hex') ?? '-'
        const shown: string[] = []
        await writeFile(at('mine'), 'mine')
        const ino = new Map<string, bigint>()
        for (const name of ['touched', 'mine']) ino.set(name, (await lstat(at(name), { bigint: true })).ino)
        const answered = await answeredInC(driver, mnt, 'cowSetattrs')
        // touch's way, and more: a size (truncate -s), times, mode and owner through the open, the
        // mode by name too.
        const touched = await open(at('touched'), 'r+')
        await touched.truncate(10)
        await touched.utimes(1_000, 2_000)
        await touched.chmod(0o600)
        await touched.chown(1000, 1001)
        await chmod(at('touched'), 0o640)
        const open1 = await touched.stat({ bigint: true })
        shown.push(`touched: ${show(open1)}, inode kept ${open1.ino === ino.get('touched')}`)
        // A link of it while open (C showed the copy, not named yet, with the one link it gets).
        await link(at('touched'), at('touched-link'))
        await touched.close()
        shown.push(`touched closed: ${show(await lstat(at('touched'), { bigint: true }))}`)
        await unlink(at('touched-link'))
        // An upper file reopened, renamed while open: the change follows it.
        const mine = await open(at('mine'), 'r+')
        await mine.truncate(2)
        await mine.utimes(3_000, 4_000)
        await rename(at('mine'), at('mine2'))
        await mine.chmod(0o604)
        const open2 = await mine.stat({ bigint: true })
        shown.push(`mine: ${show(open2)}, inode kept ${open2.ino === ino.get('mine')}`)
        await mine.close()
        // A copy unlinked while open: no link left (C would show the copy with the one it got).
        const gone = await open(at('gone'), 'r+')
        await gone.utimes(5_000, 6_000)
        await unlink(at('gone'))
        await gone.chmod(0o600)
        shown.push(`gone: ${show(await gone.stat({ bigint: true }))}`)
        await gone.close()
        // A chmod keeps the capability, a chown drops it.
        for (const [name, change] of [['capped', (f: FileHandle) => f.chmod(0o700)], ['capped-chown', (f: FileHandle) => f.chown(1000, 1000)]] as const) {
          const f = await open(at(name), 'r+')
          await change(f)
          await f.close()
          shown.push(`${name}: ${show(await lstat(at(name), { bigint: true }), false)} cap=${cap(name)}`)
        }
        // Set-ID, another name of a hard link, and a change after the close.
        const suid = await open(at('suid'), 'r+')
        await suid.chmod(0o4711)
        await suid.chown(0, 0)
        await suid.close()
        const hard = await open(at('hard1'), 'r+')
        await hard.chmod(0o600)
        shown.push(`hard2 while hard1 open: ${show(await lstat(at('hard2'), { bigint: true }), false)}`)
        await hard.close()
        await chmod(at('touched'), 0o644)
        for (const name of ['suid', 'hard1', 'hard2', 'touched']) shown.push(`${name}: ${show(await lstat(at(name), { bigint: true }), false)}`)
        const inC = await answered()
        await mounts.unmount(handle)
        const upperShown: string[] = []
        for (const name of ['touched', 'mine2', 'capped', 'capped-chown', 'suid', 'hard1']) upperShown.push(`${name}: ${show(await lstat(join(upper, 'd', name), { bigint: true }), name === 'touched')}`)
        return { shown, upper: upperShown, inC }
      } finally {
        await mounts.unmount(handle)
      }
    }
    const actual = await sameAsKernel(run)
    // What the comparison rests on.
    expect(actual.shown.slice(0, 6)).toEqual([
      'touched: 100640 1000:1001 a=1000000000000 m=2000000000000 n=1 s=10, inode kept true',
      'touched closed: 100640 1000:1001 a=1000000000000 m=2000000000000 n=2 s=10',
      'mine: 100604 0:0 a=3000000000000 m=4000000000000 n=1 s=2, inode kept true',
      'gone: 100600 0:0 a=5000000000000 m=6000000000000 n=0 s=4',
      `capped: 100700 0:0 n=1 s=6 cap=${CAP.toString('hex')}`,
      'capped-chown: 100644 1000:1000 n=1 s=12 cap=-',
    ])
    // In C: touched's five (four through the open, one by name), mine's first two (a truncate and
    // its times) and gone's first (a rename or unlink of the name takes the mark away), capped's
    // chmod, and hard1's (its copy has one link). In JS: the changes after the rename and the unlink, capped-chown's chown
    // (the kernel removes the capability first, a removexattr, which takes the mark away), the
    // set-ID file's two, and the chmod after the close.
    expect(actual.inC).toBe(10)
  })

  // An open for writing of a small lower file by root, while no file of it is open, is copied up
  // and answered in C, passing through to the copy (fll_cow_open); JS adopts the copy and the open
  // afterwards. The open's file handle then serves writes, reads, fstat, fsync, an unlink or rename
  // of the name and the release; a file read before is such a file again once closed. An O_TRUNC
  // open's copy gets none of the bytes and a new mtime. An O_APPEND open, a file held open by a
  // reader, a set-ID file and a hard link go to JS.
  it('copies lower files up at an open for writing in C, as kernel overlayfs copies them', async () => {
    const NAMES = ['written', 'wronly', 'unlinked', 'renamed', 'synced', 'read-first', 'trunc', 'append', 'held', 'held-cold', 'suid', 'hard1']
    const run = async (driver: 'kernel' | 'layerfs'): Promise<{ shown: string[]; upper: string[]; inC?: number }> => {
      const { upper, mnt, handle } = await frame.stack(driver, ',attr_timeout=0', async (lower) => {
        await mkdir(join(lower, 'd'))
        for (const name of NAMES) await writeFile(join(lower, 'd', name), `lower ${name}`, { mode: 0o644 })
        await chmod(join(lower, 'd', 'suid'), 0o4755)
        await link(join(lower, 'd', 'hard1'), join(lower, 'd', 'hard2'))
      })
      try {
        const at = (name: string): string => join(mnt, 'd', name)
        const show = (st: { mode: bigint; nlink: bigint; size: bigint }): string => `${st.mode.toString(8)} n=${st.nlink} s=${st.size}`
        const ino = new Map<string, bigint>()
        for (const name of NAMES) ino.set(name, (await lstat(at(name), { bigint: true })).ino)
        await readFile(at('read-first'))
        const answered = await answeredInC(driver, mnt, 'cowOpens')
        const shown: string[] = []
        const kept = async (name: string, f: FileHandle): Promise<string> => {
          const st = await f.stat({ bigint: true })
          return `${name}: ${show(st)}, inode kept ${st.ino === ino.get(name)}`
        }
        // Written and read back through the open, stat'ed through it and by name.
        const written = await open(at('written'), 'r+')
        await written.write('W', 0)
        const back = Buffer.alloc(32)
        const { bytesRead } = await written.read(back, 0, 32, 0)
        shown.push(`${await kept('written', written)} read ${back.subarray(0, bytesRead).toString()}`)
        shown.push(`written by name: ${show(await lstat(at('written'), { bigint: true }))}`)
        await written.close()
        const wronly = await open(at('wronly'), constants.O_WRONLY)
        await wronly.write('more', 6)
        await wronly.utimes(7_000, 8_000)
        shown.push(await kept('wronly', wronly))
        await wronly.close()
        // The name goes or moves while the copy is open.
        const unlinked = await open(at('unlinked'), 'r+')
        await unlink(at('unlinked'))
        await unlinked.write('U', 0)
        shown.push(`${await kept('unlinked', unlinked)}`)
        await unlinked.close()
        const renamed = await open(at('renamed'), 'r+')
        await rename(at('renamed'), at('renamed2'))
        await renamed.write('R', 0)
        await renamed.sync()
        shown.push(await kept('renamed', renamed))
        await renamed.close()
        const synced = await open(at('synced'), 'r+')
        await synced.truncate(3)
        await synced.datasync()
        shown.push(await kept('synced', synced))
        await synced.close()
        // Read before, and closed: C's again; read again by name while open (that open joins
        // the writer's mode).
        const readFirst = await open(at('read-first'), 'r+')
        await readFirst.write('C', 0)
        shown.push(`${await kept('read-first', readFirst)} read by name ${await readFile(at('read-first'), 'utf8')}`)
        await readFirst.close()
        // C's: O_TRUNC (the file written anew). JS's: O_APPEND, a file a reader holds open
        // (opened in C, or by JS: its data not cached, JS's first open waits for the disk), a
        // set-ID file, a hard link.
        const truncMtime = (await lstat(at('trunc'), { bigint: true })).mtimeNs
        const reader = await open(at('held'), 'r')
        execFileSync('sync')
        await writeFile('/proc/sys/vm/drop_caches', '3')
        const coldReader = await open(at('held-cold'), 'r')
        for (const [name, flags] of [['trunc', 'w'], ['append', 'a'], ['held', 'r+'], ['held-cold', 'r+'], ['suid', 'r+'], ['hard1', 'r+']] as const) {
          const f = await open(at(name), flags)
          // The truncation moved the mtime, before any write.
          if (name === 'trunc') shown.push(`trunc after its open: ${show(await f.stat({ bigint: true }))}, mtime moved ${(await f.stat({ bigint: true })).mtimeNs > truncMtime}`)
          await f.write('J', flags === 'a' ? null : 0)
          shown.push(await kept(name, f))
          await f.close()
        }
        await reader.close()
        await coldReader.close()
        for (const name of ['written', 'wronly', 'renamed2', 'synced', 'read-first', 'trunc', 'append', 'held', 'held-cold', 'suid', 'hard1', 'hard2']) {
          shown.push(`${name}: ${show(await lstat(at(name), { bigint: true }))} ${await readFile(at(name), 'utf8')}`)
        }
        shown.push(`wronly times: ${(await lstat(at('wronly'))).mtimeMs}`)
        shown.push(`names: ${(await readdir(join(mnt, 'd'))).sort().join(' ')}`)
        const inC = await answered()
        await mounts.unmount(handle)
        const upperShown: string[] = []
        for (const name of ['written', 'wronly', 'renamed2', 'synced', 'read-first', 'trunc', 'append', 'held', 'held-cold', 'suid', 'hard1']) {
          upperShown.push(`${name}: ${show(await lstat(join(upper, 'd', name), { bigint: true }))} ${await readFile(join(upper, 'd', name), 'utf8')}`)
        }
        return { shown, upper: upperShown, inC }
      } finally {
        await mounts.unmount(handle)
      }
    }
    const actual = await sameAsKernel(run)
    // What the comparison rests on.
    expect(actual.shown.slice(0, 6)).toEqual([
      'written: 100644 n=1 s=13, inode kept true read Wower written',
      'written by name: 100644 n=1 s=13',
      'wronly: 100644 n=1 s=12, inode kept true',
      'unlinked: 100644 n=0 s=14, inode kept true',
      'renamed: 100644 n=1 s=13, inode kept true',
      'synced: 100644 n=1 s=3, inode kept true',
    ])
    // In C: the seven opens for writing by root of small lower files with one name (one of them
    // O_TRUNC), none set-ID, none open.
    expect(actual.shown).toContain('trunc after its open: 100644 n=1 s=0, mtime moved true')
    expect(actual.shown).toContain('trunc: 100644 n=1 s=1 J')
    expect(actual.inC).toBe(7)
  })

  // The handle of an open answered in C borrows its copy's fd (Handles.lend): it takes a dup of its
  // own at its first use, or when the copy is named and that fd closes (Handles.ownLent), so a
  // handle first used after the name reached the disk still reaches the same file. With a long
  // flush window nothing is named but what an operation names: here, a rename of the name.
  it('keeps the file of an open answered in C once its copy is named, the handle used before or only after', async () => {
    const { upper, mnt, handle } = await frame.stack('layerfs', ',flush_window=30000', async (lower) => {
      await mkdir(join(lower, 'd'))
      for (const name of ['early', 'late']) await writeFile(join(lower, 'd', name), `lower ${name}`)
    })
    try {
      const answered = await answeredInC('layerfs', mnt, 'cowOpens')
      const script = [
        'import os, sys',
        'd = sys.argv[1]',
        "early = os.open(d + '/early', os.O_RDWR)",
        "os.pwrite(early, b'E', 0)",
        'os.posix_fallocate(early, 0, 100)', // the handle's first use, its copy not named
        "late = os.open(d + '/late', os.O_RDWR)",
        "os.pwrite(late, b'L', 0)",
        "os.rename(d + '/late', d + '/late2')", // names late's copy, whose handle was never used
        "os.rename(d + '/early', d + '/early2')",
        'os.posix_fallocate(late, 0, 200)',
        "os.pwrite(early, b'F', 1)",
        'os.fsync(late)',
        'os.fsync(early)',
        "print(os.fstat(early).st_size, os.fstat(late).st_size)",
        'os.close(early)',
        'os.close(late)',
      ].join('\n')
      expect(execFileSync('python3', ['-c', script, join(mnt, 'd')], { encoding: 'utf8' }).trim()).toBe('100 200')
      expect(await answered()).toBe(2)
      expect((await readFile(join(mnt, 'd', 'late2'))).subarray(0, 10).toString()).toBe('Lower late')
    } finally {
      await mounts.unmount(handle)
    }
    const early = await readFile(join(upper, 'd', 'early2'))
    const late = await readFile(join(upper, 'd', 'late2'))
    expect([early.length, early.subarray(0, 11).toString()]).toEqual([100, 'EFwer early'])
    expect([late.length, late.subarray(0, 10).toString()]).toEqual([200, 'Lower late'])
  })

  // A name missing from every layer of a directory (only in the upper layer, merged, or only below)
  // is answered missing in C, from the directory's host paths; a name any layer holds, a whiteout
  // included, goes to JS. A lower file renamed into a directory reaches the disk only after its
  // copy's flush (Core.deferMove): the directory's mark must go first, or its lookup
  // (entry_timeout=0: every stat looks the name up) would find nothing meanwhile.
  // A link of a small lower file answers before its copy is flushed, and its new name reaches the
  // disk only after (Core.deferLink): C must not answer that name missing meanwhile (a lookup with
  // entry_timeout=0 at every stat), while it goes on answering the directory's missing names.
  it('finds links of lower files made into a directory marked for its lookups before the disk has them', async () => {
    const run = async (driver: 'kernel' | 'layerfs'): Promise<{ shown: string[]; lookupsInC?: number }> => {
      const { mnt, upper, handle } = await frame.stack(driver, ',entry_timeout=0,negative_timeout=0', async (lower) => {
        await mkdir(join(lower, 'src'))
        for (let i = 0; i < 6; i++) await writeFile(join(lower, 'src', `f${i}`), `lower ${i}`)
      })
      try {
        const at = (name: string): string => join(mnt, name)
        const shown: string[] = []
        const look = async (name: string): Promise<string> => {
          const st = await lstat(at(name)).catch((err: NodeJS.ErrnoException) => err.code ?? String(err))
          return typeof st === 'string' ? st : `n=${st.nlink} s=${st.size}`
        }
        const lookups = async (): Promise<number> => driver === 'layerfs' ? (await statsOf(mnt)).loop!.cowLookups : 0
        await mkdir(at('links'))
        await readdir(at('src'))
        await readdir(at('links'))
        const l0 = await lookups()
        for (let i = 0; i < 6; i++) {
          await link(at(`src/f${i}`), at(`links/f${i}`))
          shown.push(`links/f${i}: ${await look(`links/f${i}`)}, src/f${i}: ${await look(`src/f${i}`)}, links/zz${i}: ${await look(`links/zz${i}`)}`)
        }
        const lookupsInC = (await lookups()) - l0
        shown.push(`links: ${(await readdir(at('links'))).sort().join(' ')}`)
        shown.push(`links/f5: ${await readFile(at('links/f5'), 'utf8')}`)
        await mounts.unmount(handle)
        const [a, b] = [await lstat(join(upper, 'src', 'f3')), await lstat(join(upper, 'links', 'f3'))]
        shown.push(`upper: n=${a.nlink} same inode ${a.ino === b.ino}`)
        return { shown, lookupsInC: driver === 'layerfs' ? lookupsInC : undefined }
      } finally {
        await mounts.unmount(handle)
      }
    }
    const actual = await sameAsKernel(run)
    expect(actual.shown[0]).toBe('links/f0: n=2 s=7, src/f0: n=2 s=7, links/zz0: ENOENT')
    expect(actual.shown.at(-1)).toBe('upper: n=2 same inode true')
    // The missing names' lookups (each link's new name, looked up before it is made, and zz*).
    expect(actual.lookupsInC).toBeGreaterThanOrEqual(12)
  })

  it('answers lookups of names missing from every layer in C, and finds lower files renamed into a directory', async () => {
    const run = async (driver: 'kernel' | 'layerfs'): Promise<{ shown: string[]; lookupsInC?: number; afterWritten?: number }> => {
      const { mnt, upper, handle } = await frame.stack(driver, ',entry_timeout=0,negative_timeout=0', async (lower) => {
        for (const d of ['src', 'merged', 'below']) await mkdir(join(lower, d))
        for (let i = 0; i < 8; i++) await writeFile(join(lower, 'src', `f${i}`), `lower ${i}`)
        for (let i = 0; i < 4; i++) await writeFile(join(lower, 'src', `g${i}`), `to the top ${i}`)
        await writeFile(join(lower, 'merged', 'x'), 'x')
        await writeFile(join(lower, 'below', 'y'), 'y')
      })
      try {
        const at = (name: string): string => join(mnt, name)
        const shown: string[] = []
        const missing = async (name: string): Promise<void> => {
          shown.push(`${name}: ${await lstat(at(name)).then(() => 'there', (err: NodeJS.ErrnoException) => err.code)}`)
        }
        const lookups = async (): Promise<number> => driver === 'layerfs' ? (await statsOf(mnt)).loop!.cowLookups : 0
        await mkdir(at('new'))
        await readdir(at('src'))
        await writeFile(at('merged/made'), 'm') // copies 'merged' up: it merges from now on
        await readdir(mnt)
        const l0 = await lookups()
        for (const name of ['new/a', 'new/b', 'new/c', 'merged/zz', 'below/zz', 'src/zz', 'zz', 'yy']) await missing(name)
        for (const name of ['merged/x', 'merged/made', 'below/y']) await missing(name)
        await writeFile(at('new/a'), 'a')
        await missing('new/a')
        const lookupsInC = (await lookups()) - l0
        // Lower files renamed in, each looked up at once, then the mark comes back with a lookup.
        for (let i = 0; i < 8; i++) {
          await rename(at(`src/f${i}`), at(`new/f${i}`))
          await missing(`new/f${i}`)
          shown.push(`new/f${i}: ${await readFile(at(`new/f${i}`), 'utf8')}`)
        }
        // And into the mount's root, marked at the mount and at its listings.
        for (let i = 0; i < 4; i++) {
          await rename(at(`src/g${i}`), at(`g${i}`))
          await missing(`g${i}`)
        }
        // Once the renames into it are written (their copies flushed and named), C answers the
        // directory's missing names again, with no lookup or listing of it by JS in between (its
        // own lookup is answered in C).
        if (driver === 'layerfs') for (let i = 0; i < 8; i++) await readUpper(join(upper, 'new', `f${i}`))
        const l1 = await lookups()
        await missing('new/zzz')
        const afterWritten = (await lookups()) - l1
        // Whiteouts: the lower names renamed away are missing, as JS finds them.
        for (const name of ['src/f0', 'src/f7']) await missing(name)
        shown.push(`new: ${(await readdir(at('new'))).sort().join(' ')}`)
        return { shown, lookupsInC: driver === 'layerfs' ? lookupsInC : undefined, afterWritten }
      } finally {
        await mounts.unmount(handle)
      }
    }
    const actual = await sameAsKernel(run)
    expect(actual.shown).toContain('new/f7: lower 7')
    expect(actual.shown).toContain('src/f0: ENOENT')
    expect(actual.shown).toContain('merged/x: there')
    expect(actual.shown).toContain('g3: there')
    // The eight missing names (two at the root) and the one created (its lookup before the
    // create) at least.
    expect(actual.lookupsInC).toBeGreaterThanOrEqual(9)
    expect(actual.afterWritten).toBe(1)
  })

  // A directory the upper layer held before the mount, merging with a lower one, and the mount's
  // root show their upper lstat with one link: their getattrs (the kernel drops a directory's
  // attributes at every file made or removed in it) are answered in C from the upper path, and so
  // are their setattrs by path, as for a directory copied up while mounted. The same upper and work
  // directories are mounted twice: the first mount copies the directory up.
  it("answers the getattrs of the upper layer's merged directories and of the root in C", async () => {
    const run = async (driver: 'kernel' | 'layerfs'): Promise<{ shown: string[]; getattrsInC?: number; setattrsInC?: number }> => {
      const base = join(frame.dir, `again-${driver}`)
      const [lower, upper, work, mnt] = ['lower', 'upper', 'work', 'mnt'].map((d) => join(base, d)) as [string, string, string, string]
      for (const d of [upper, work, mnt]) await mkdir(d, { recursive: true })
      await mkdir(join(lower, 'merged'), { recursive: true })
      await writeFile(join(lower, 'merged', 'f'), 'f')
      const mount = async (options: string) => driver === 'kernel'
        ? mounts.add(await mountOverlay({ lowers: [lower], upper, work, mnt }))
        : mounts.add(await mountFuse([CLI, '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}${options}`, mnt], mnt))
      const first = await mount('')
      try {
        await writeFile(join(mnt, 'merged', 'new'), 'n') // copies 'merged' up
        await chmod(join(mnt, 'merged'), 0o750)
      } finally {
        await mounts.unmount(first)
      }
      const handle = await mount(',attr_timeout=0')
      try {
        const shown: string[] = []
        const show = async (step: string): Promise<void> => {
          for (const name of ['', 'merged']) {
            const st = await lstat(join(mnt, name), { bigint: true })
            shown.push(`${step} /${name}: ${st.mode.toString(8)} nlink ${st.nlink} ${st.uid}:${st.gid}`)
          }
        }
        const loop = async () => driver === 'layerfs' ? (await statsOf(mnt)).loop! : { cowGetattrs: 0, cowSetattrs: 0 }
        await readdir(mnt)
        const before = await loop()
        await show('mounted')
        for (const dir of [mnt, join(mnt, 'merged')]) await writeFile(join(dir, 'made'), 'm')
        await show('filled')
        await chmod(join(mnt, 'merged'), 0o700)
        await chown(mnt, 1000, 1000)
        await show('changed')
        const after = await loop()
        return { shown, getattrsInC: after.cowGetattrs - before.cowGetattrs, setattrsInC: after.cowSetattrs - before.cowSetattrs }
      } finally {
        await mounts.unmount(handle)
      }
    }
    const expected = await run('kernel')
    const actual = await run('layerfs')
    expect(actual.shown).toEqual(expected.shown)
    // What the comparison rests on: one link each, the changes made.
    expect(actual.shown).toContain('changed /merged: 40700 nlink 1 0:0')
    expect(actual.shown).toContain('changed /: 40755 nlink 1 1000:1000')
    // In C: the six stats (with attr_timeout=0, each sends a getattr), and both setattrs.
    expect(actual.getattrsInC).toBeGreaterThanOrEqual(6)
    expect(actual.setattrsInC).toBe(2)
  })

  // The kernel asks for a directory's attributes again after every listing of it (its atime):
  // ls -lR, find -ls, chmod -R of a tree walked before. A lower directory's are answered in C: its
  // topmost layer's lstat, its own link count when only one layer holds it, 1 when it merges. Until
  // something changes it: a file made in it copies it up, a removal whites it out.
  it('answers the getattrs of lower directories in C, as kernel overlayfs shows them', async () => {
    const run = async (driver: 'kernel' | 'layerfs'): Promise<{ shown: string[]; inC: number }> => {
      const { mnt, handle } = await frame.stack(driver, ',attr_timeout=0', async (top, bottom) => {
        await mkdir(join(bottom, 'merged', 'sub1'), { recursive: true })
        await mkdir(join(top, 'merged', 'sub2'), { recursive: true })
        await mkdir(join(top, 'lone', 'a'), { recursive: true })
        await mkdir(join(top, 'lone', 'b'))
        await mkdir(join(top, 'lone', 'gone'))
        await chmod(join(top, 'lone'), 0o750)
        await chown(join(top, 'merged'), 1000, 1001)
      }, 2)
      try {
        const shown: string[] = []
        const show = async (step: string): Promise<void> => {
          for (const name of ['merged', 'lone', 'lone/a', 'lone/gone']) {
            const st = await lstat(join(mnt, name), { bigint: true }).catch(() => undefined)
            shown.push(`${step} ${name}: ${st ? `${st.mode.toString(8)} nlink ${st.nlink} ${st.uid}:${st.gid}` : 'missing'}`)
          }
        }
        const inC = async (): Promise<number> => driver === 'layerfs' ? (await statsOf(mnt)).loop!.cowGetattrs : 0
        execFileSync('ls', ['-lR', mnt], { stdio: 'ignore' })
        // Reading the statistics asks for some attributes itself (the root's): counted alone first.
        const c0 = await inC()
        const c1 = await inC()
        await show('listed')
        const listed = (await inC()) - c1 - (c1 - c0)
        await writeFile(join(mnt, 'lone', 'made'), 'm')
        await rm(join(mnt, 'lone', 'gone'), { recursive: true })
        await mkdir(join(mnt, 'merged', 'new'))
        await show('changed')
        return { shown, inC: listed }
      } finally {
        await mounts.unmount(handle)
      }
    }
    const expected = await run('kernel')
    const actual = await run('layerfs')
    expect(actual.shown).toEqual(expected.shown)
    // What the comparison rests on: a merged directory shows one link, a lone one its own.
    expect(actual.shown).toContain('listed merged: 40755 nlink 1 1000:1001')
    expect(actual.shown).toContain('listed lone: 40750 nlink 5 0:0')
    expect(actual.shown).toContain('changed lone/gone: missing')
    // attr_timeout=0: each stat sends a getattr of every directory on its path (permission checks)
    // and of its own: the root's four (a directory in the upper layer, answered in C before) and
    // six of lower directories (merged, lone three times, lone/a, lone/gone).
    expect(actual.inC).toBe(10)
  })

  // A marked directory's lookup by its name is answered in C: its attributes as its getattr gives
  // them, under its node, whose new reference JS counts from a record. The kernel looks a directory
  // up again after a chmod of it (chmod -R: one per directory), and at every path walk with
  // entry_timeout=0, as here. Never for a name removed, renamed, made anew or forgotten since.
  it('answers lookups of marked directories in C, as kernel overlayfs answers them, and none for a name gone or made anew', async () => {
    const run = async (driver: 'kernel' | 'layerfs'): Promise<{ shown: string[]; inC: number }> => {
      const { mnt, handle } = await frame.stack(driver, ',entry_timeout=0', async (lower) => {
        for (const d of ['d1/sub', 'd2', 'd3/deep/er']) await mkdir(join(lower, d), { recursive: true })
        await writeFile(join(lower, 'd1', 'f'), 'f')
        await writeFile(join(lower, 'd3', 'deep', 'g'), 'g')
      })
      try {
        const log = stepLog((name) => join(mnt, name), () => 'missing')
        const shown = log.lines
        const show = (step: string, names: string[]): Promise<void> => log.show(step, names, async (name, st, ino) => {
          const list = st.isDirectory() ? (await readdir(join(mnt, name))).sort().join(',') : ''
          return `${st.mode.toString(8)} nlink ${st.nlink}${ino} [${list}]`
        })
        const inC = async (): Promise<number> => driver === 'layerfs' ? (await statsOf(mnt)).loop!.cowDirLookups : 0
        execFileSync('ls', ['-lR', mnt], { stdio: 'ignore' })
        const c0 = await inC()
        const all = ['d1', 'd1/sub', 'd2', 'd3', 'd3/deep', 'd3/deep/er']
        await show('listed', all)
        await chmod(join(mnt, 'd1'), 0o700)
        await chmod(join(mnt, 'd3', 'deep'), 0o750)
        await show('chmodded', all)
        await rm(join(mnt, 'd2'), { recursive: true })
        await mkdir(join(mnt, 'made'))
        await mkdir(join(mnt, 'made', 'in'))
        await rename(join(mnt, 'made'), join(mnt, 'moved'))
        await show('changed', [...all, 'made', 'made/in', 'moved', 'moved/in'])
        await rm(join(mnt, 'd1'), { recursive: true })
        await mkdir(join(mnt, 'd1'))
        await mkdir(join(mnt, 'd2'))
        await show('remade', ['d1', 'd1/sub', 'd2'])
        // The kernel drops its inodes: forgets, and the nodes go (their marks with them).
        execFileSync('sync')
        writeFileSync('/proc/sys/vm/drop_caches', '2')
        await show('forgotten', ['d1', 'd3', 'd3/deep', 'd3/deep/er', 'moved/in'])
        return { shown, inC: (await inC()) - c0 }
      } finally {
        await mounts.unmount(handle)
      }
    }
    const expected = await run('kernel')
    const actual = await run('layerfs')
    expect(actual.shown).toEqual(expected.shown)
    // What the comparison rests on: the removed name is gone, the names made anew are new.
    expect(actual.shown).toContain('changed d2: missing')
    expect(actual.shown).toContain('remade d1/sub: missing')
    expect(actual.shown).toContain('changed made: missing')
    expect(actual.shown.find((line) => line.startsWith('remade d1:'))).toMatch(/ \[\]$/)
    expect(actual.inC).toBeGreaterThan(20)
  })

  it('answers the getattrs of directories only in the upper layer in C, never from a path a rename moved', async () => {
    const run = async (driver: 'kernel' | 'layerfs'): Promise<{ shown: string[]; inC?: number[]; setattrsInC?: number }> => {
      const { mnt, handle } = await frame.stack(driver, ',attr_timeout=0', async (lower) => {
        for (const d of ['merged', 'gone']) await mkdir(join(lower, d))
        await writeFile(join(lower, 'merged', 'f'), 'f')
        await writeFile(join(lower, 'gone', 'x'), 'x')
      })
      try {
        const at = (name: string): string => join(mnt, name)
        const log = stepLog(at)
        const shown = log.lines
        const inC: number[] = []
        const count = async (): Promise<void> => { if (driver === 'layerfs') inC.push((await statsOf(mnt)).loop!.cowGetattrs) }
        const show = (step: string, names: string[]): Promise<void> =>
          log.show(step, names, (_name, st, ino) => `${st.mode.toString(8)} nlink ${st.nlink} ${st.uid}:${st.gid}${ino}`)
        await mkdir(at('a/b/c'), { recursive: true })
        await mkdir(at('merged/new'))
        await rm(at('gone'), { recursive: true })
        await mkdir(at('gone'), 0o750)
        await count()
        await show('made', ['a', 'a/b', 'a/b/c', 'merged/new', 'gone', 'merged'])
        await writeFile(at('a/b/f'), 'f')
        await mkdir(at('a/b/c2'))
        await show('filled', ['a/b', 'a/b/c'])
        await count()
        const setattrs = async (): Promise<number> => driver === 'layerfs' ? (await statsOf(mnt)).loop!.cowSetattrs : 0
        const s0 = await setattrs()
        await chmod(at('a/b'), 0o700)
        await show('chmodded', ['a/b'])
        // The directory moves, and new ones take its old paths.
        await rename(at('a'), at('z'))
        await mkdir(at('a/b/c'), { recursive: true, mode: 0o751 })
        await show('moved', ['z/b', 'z/b/c', 'z/b/c2', 'a/b', 'a/b/c'])
        await count()
        // Changed by path: the moved ones where they are now, the new ones at the old paths.
        await chmod(at('z/b/c'), 0o711)
        await chown(at('a/b'), 1000, 1000)
        await chmod(at('a/b/c'), 0o700)
        await show('changed', ['z/b/c', 'a/b', 'a/b/c', 'z/b'])
        const setattrsInC = (await setattrs()) - s0
        return { shown, inC: driver === 'layerfs' ? inC : undefined, setattrsInC }
      } finally {
        await mounts.unmount(handle)
      }
    }
    const actual = await sameAsKernel(run)
    // What the comparison rests on: the moved directories keep their own attributes.
    expect(actual.shown).toContain('moved z/b: 40700 nlink 4 0:0')
    expect(actual.shown).toContain('moved a/b/c: 40751 nlink 2 0:0 ino other')
    // In C: at least the stats of the directories made through the mount (a, a/b, a/b/c,
    // merged/new, gone: five, then two) and, after the rename, of the new a/b and a/b/c; not the
    // merged directory's (its link count is the union's), nor those of the moved ones, whose marks
    // the rename took away (without that, z/b/c showed the new a/b/c's mode).
    const [before, filled, moved] = actual.inC as [number, number, number]
    expect(filled - before).toBeGreaterThanOrEqual(5 + 2)
    expect(moved - filled).toBeGreaterThanOrEqual(2)
    // Their setattrs too, by path: at least the chmod of a/b before the rename and the two changes
    // of the new a/b and a/b/c after it.
    expect(actual.shown.filter((line) => line.startsWith('changed'))).toEqual([
      'changed z/b/c: 40711 nlink 2 0:0 ino same',
      'changed a/b: 40751 nlink 3 1000:1000 ino other',
      'changed a/b/c: 40700 nlink 2 0:0 ino other',
      'changed z/b: 40700 nlink 4 0:0 ino same',
    ])
    expect(actual.setattrsInC).toBeGreaterThanOrEqual(3)
  })

  // The first lookup of a small lower file is answered in C, as a new node (fll_cow_lookup,
  // file_lookup), and never where the union shows the name otherwise than the disk does yet: a copy
  // not named (a touch, a chmod), the old name of a rename not written. The flush window holds the
  // copies unnamed for the whole script; the caches are dropped after each change, so that the
  // kernel forgets the nodes and looks the names up again. Each change is made in a directory of its
  // own: one where a name was not written yet when a node was forgotten stays out of C's lookups.
  it('looks small lower files up in C as new nodes, never a name the disk does not show yet', async () => {
    const actual = await sameOnBoth(',entry_timeout=0,attr_timeout=0,flush_window=30000', async (top, bottom) => {
      for (const dir of ['d', 't', 'r', 'u']) {
        await mkdir(join(top, dir), { recursive: true })
        for (const name of ['a', 'b', 'c']) await writeFile(join(top, dir, name), `lower ${dir}/${name}`)
      }
      await mkdir(join(top, 'd', 'sub'))
      await mkdir(join(bottom, 'd'))
      for (const name of ['below', 'gone']) await writeFile(join(bottom, 'd', name), `bottom ${name}`)
      execFileSync('mknod', [join(top, 'd', 'gone'), 'c', '0', '0'])
      await writeFile(join(top, 'd', 'big'), Buffer.alloc(100_000, 1))
      await writeFile(join(top, 'd', 'hard1'), 'hard')
      await link(join(top, 'd', 'hard1'), join(top, 'd', 'hard2'))
    }, async ({ mnt }, driver) => {
      const log = stepLog((name) => join(mnt, name))
      const shown = log.lines
      const show = (step: string, names: string[]): Promise<void> => log.show(step, names, async (name, st, ino) => {
        const text = st.isFile() ? ` ${(await readFile(join(mnt, name), 'utf8')).slice(0, 12)}` : ''
        const when = Number(st.mtimeMs) === OLD.getTime() ? 'set' : 'kept'
        return `${st.mode.toString(8)} nlink ${st.nlink} size ${st.size} mtime ${when}${ino}${text}`
      })
      const forget = (): void => writeFileSync('/proc/sys/vm/drop_caches', '2')
      const lookups = await answeredInC(driver, mnt, 'cowFileLookups')
      const all = ['a', 'b', 'c', 'below', 'gone', 'big', 'hard1', 'hard2', 'sub'].map((name) => `d/${name}`)
      await show('first', all)
      forget()
      await show('again', all)
      // Copies not named yet: the new times and mode, not the lower file's; the directory held
      // open, so that the kernel forgets its files and not it.
      await show('first', ['t/a', 't/b'])
      await utimes(join(mnt, 't/a'), OLD, OLD)
      await chmod(join(mnt, 't/b'), 0o600)
      await show('changed', ['t/a', 't/b', 't/c'])
      const pinned = await open(join(mnt, 't'), 'r')
      try {
        forget()
        await show('forgotten', ['t/a', 't/b', 't/c'])
      } finally {
        await pinned.close()
      }
      // A rename's old name is gone and its new one there, before the rename is written.
      await rename(join(mnt, 'r/a'), join(mnt, 'r/a2'))
      await show('renamed', ['r/a', 'r/b'])
      forget()
      await show('forgotten', ['r/a', 'r/a2', 'r/c'])
      // Removed, then made again over its whiteout.
      await unlink(join(mnt, 'u/a'))
      await show('removed', ['u/a', 'u/b'])
      forget()
      await writeFile(join(mnt, 'u/a'), 'made')
      forget()
      await show('made', ['u/a', 'u/c'])
      const inC = await lookups()
      return { shown, inC }
    }, 2)
    // What the comparison rests on.
    expect(actual.shown).toContain('changed t/a: 100644 nlink 1 size 9 mtime set ino same lower t/a')
    expect(actual.shown).toContain('forgotten t/b: 100600 nlink 1 size 9 mtime kept ino same lower t/b')
    expect(actual.shown).toContain('renamed r/a: ENOENT')
    expect(actual.shown).toContain('forgotten r/a: ENOENT')
    expect(actual.shown).toContain('forgotten r/a2: 100644 nlink 1 size 9 mtime kept lower r/a')
    expect(actual.shown).toContain('again d/gone: ENOENT')
    // In C: the first lookups of the small files with one link (d/a, d/b, d/c, d/below, t/a, t/b)
    // at least (those after the caches were dropped may find the kernel's forgets still waiting
    // for JS, and go to JS).
    expect(actual.inC).toBeGreaterThanOrEqual(6)
  })

  // Bigger lower files are looked up in C as well, held (C answers their getattrs, JS copies them
  // up) and, from 1 MiB, their opens for reading passed through in C; a set-ID file is held, and
  // a file with two links stays JS's. Each first looked up by a stat, then read and appended to.
  it('looks bigger lower files up in C as held nodes, their reads passed through, and copies them up as kernel overlayfs does', async () => {
    const names = ['big', 'mid', 'setid', 'linked1', 'linked2']
    const actual = await sameOnBoth('', async (top, bottom) => {
      await mkdir(join(top, 'h'))
      await mkdir(join(bottom, 'h'))
      await writeFile(join(top, 'h', 'big'), Buffer.alloc(2 << 20, 0x62))
      await writeFile(join(bottom, 'h', 'big'), 'shadowed')
      await writeFile(join(top, 'h', 'mid'), Buffer.alloc(100_000, 0x6d))
      await writeFile(join(top, 'h', 'setid'), Buffer.alloc(2 << 20, 0x73))
      await chmod(join(top, 'h', 'setid'), 0o4755)
      await writeFile(join(top, 'h', 'linked1'), Buffer.alloc(100_000, 0x6c))
      await link(join(top, 'h', 'linked1'), join(top, 'h', 'linked2'))
    }, async ({ mnt }, driver) => {
      const shown: string[] = []
      const show = async (step: string): Promise<void> => {
        for (const name of names) {
          const st = await lstat(join(mnt, 'h', name))
          const data = await readFile(join(mnt, 'h', name))
          shown.push(`${step} ${name}: ${st.mode.toString(8)} nlink ${st.nlink} size ${st.size} [${data.length} bytes, first ${data[0]} last ${data[data.length - 1]}]`)
        }
      }
      const files = await answeredInC(driver, mnt, 'cowFileLookups')
      const passed = await answeredInC(driver, mnt, 'passOpens')
      for (const name of names) await lstat(join(mnt, 'h', name))
      const lookups = await files()
      await show('first')
      const inC = [lookups, await passed()]
      for (const name of ['big', 'mid', 'linked1']) await appendFile(join(mnt, 'h', name), 'appended')
      await show('appended')
      return { shown, inC: inC.every((n) => n !== undefined) ? inC as number[] : undefined }
    }, 2)
    expect(actual.shown).toContain('first big: 100644 nlink 1 size 2097152 [2097152 bytes, first 98 last 98]')
    expect(actual.shown).toContain('appended big: 100644 nlink 1 size 2097160 [2097160 bytes, first 98 last 100]')
    expect(actual.shown).toContain('appended linked2: 100644 nlink 2 size 100000 [100000 bytes, first 108 last 108]')
    // In C: the lookups of big, mid and setid (not of the two names of one file), and the open of
    // big for reading, passed through (mid is smaller than that, setid set-ID).
    expect(actual.inC).toEqual([3, 1])
  })

  // The first lookup of a lower directory is C's too: its layers probed as the union's walk merges
  // them (a directory in each layer below, past a gap, until a whiteout, a file or an opaque one),
  // its attributes its top layer's (one link when it merges), and JS marks it for the lookups in it
  // from the record. Every directory here is looked up first by a stat, before any listing.
  it('looks lower directories up in C as new nodes, merged and hidden as kernel overlayfs merges and hides them', async () => {
    const dirs = ['m', 'm/sub', 'gap', 'o', 'x', 'f', 'lone', 'lone/s1', 'deep', 'deep/a', 'deep/a/b', 'wh']
    const actual = await sameOnBoth('', async (top, mid, bottom) => {
      for (const [layer, dir, file] of [[top, 'm', 'a'], [mid, 'm', 'b'], [bottom, 'm', 'c'], [bottom, 'm/sub', 's'], [top, 'gap', 'a'],
        [bottom, 'gap', 'c'], [top, 'o', 'a'], [mid, 'o', 'hidden'], [top, 'x', 'a'], [bottom, 'x', 'c'], [top, 'f', 'a'],
        [mid, 'lone/s1', 's'], [mid, 'lone/s2', 's'], [bottom, 'deep/a/b', 'file'], [bottom, 'wh', 'c']] as const) {
        await mkdir(join(layer, dir), { recursive: true })
        await writeFile(join(layer, dir, file), `${dir}/${file}`)
      }
      lsetxattrSync(join(top, 'o'), 'trusted.overlay.opaque', Buffer.from('y'))
      execFileSync('mknod', [join(mid, 'x'), 'c', '0', '0'])
      execFileSync('mknod', [join(top, 'wh'), 'c', '0', '0'])
      await writeFile(join(bottom, 'f'), 'a file below')
      await chmod(join(top, 'm'), 0o750)
      await chown(join(top, 'm'), 1000, 1001)
    }, async ({ mnt }, driver) => {
      const log = stepLog((name) => join(mnt, name))
      const shown = log.lines
      const stats = (step: string): Promise<void> =>
        log.show(step, dirs, (_name, st, ino) => `${st.mode.toString(8)} nlink ${st.nlink} ${st.uid}:${st.gid}${ino}`)
      const lists = async (step: string): Promise<void> => {
        for (const name of dirs) {
          const names = await readdir(join(mnt, name)).catch((err: NodeJS.ErrnoException) => [err.code ?? String(err)])
          const texts: string[] = []
          for (const entry of names.sort()) {
            const text = await readFile(join(mnt, name, entry), 'utf8').catch((err: NodeJS.ErrnoException) => err.code ?? String(err))
            texts.push(`${entry}=${text}`)
          }
          shown.push(`${step} ${name}: [${texts.join(' ')}]`)
        }
      }
      const forget = (): void => writeFileSync('/proc/sys/vm/drop_caches', '2')
      const lookups = await answeredInC(driver, mnt, 'cowDirFirstLookups')
      await stats('first')
      const inC = await lookups()
      await lists('first')
      forget()
      await stats('forgotten')
      await lists('forgotten')
      // Changes in directories C looked up: a file made in the merged one (copied up), a
      // directory made in one of a lower layer's, a rename down the deep path, one removed.
      forget()
      await writeFile(join(mnt, 'm', 'made'), 'made')
      await mkdir(join(mnt, 'lone', 's1', 'new'))
      await rename(join(mnt, 'deep', 'a', 'b', 'file'), join(mnt, 'deep', 'a', 'b', 'moved'))
      await rm(join(mnt, 'gap'), { recursive: true })
      await stats('changed')
      await lists('changed')
      return { shown, inC }
    }, 3)
    // What the comparison rests on: merged across the gap, hidden by the opaque directory, the
    // whiteout and the file below, one link where the directory merges.
    expect(actual.shown).toContain('first m: 40750 nlink 1 1000:1001')
    expect(actual.shown).toContain('first m: [a=m/a b=m/b c=m/c sub=EISDIR]')
    expect(actual.shown).toContain('first gap: [a=gap/a c=gap/c]')
    expect(actual.shown).toContain('first o: [a=o/a]')
    expect(actual.shown).toContain('first x: [a=x/a]')
    expect(actual.shown).toContain('first f: [a=f/a]')
    expect(actual.shown).toContain('first lone: 40755 nlink 4 0:0')
    expect(actual.shown).toContain('first wh: ENOENT')
    expect(actual.shown).toContain('changed deep/a/b: [moved=deep/a/b/file]')
    // In C: the first lookups of the eleven directories that are there (wh is whited out).
    expect(actual.inC).toBe(11)
  })

  // A lower directory C looked up is marked for the lookups in it by JS, from the record: C ends
  // its batch of requests there and hands the record over before it reads the next request, which
  // is most often the lookup of a name in that directory (a path's walk, 32 of them at once here).
  it('hands JS a directory it looked up before the lookups in it, which it then answers too', async () => {
    const count = 32
    const { mnt, handle } = await frame.stack('layerfs', '', async (lower) => {
      for (let i = 0; i < count; i++) {
        await mkdir(join(lower, `d${i}`))
        await writeFile(join(lower, `d${i}`, 'f'), `f${i}`)
      }
    })
    try {
      const dirs = await answeredInC('layerfs', mnt, 'cowDirFirstLookups')
      const files = await answeredInC('layerfs', mnt, 'cowFileLookups')
      await Promise.all(Array.from({ length: count }, (_, i) => lstat(join(mnt, `d${i}`, 'f'))))
      expect([await dirs(), await files()]).toEqual([count, count])
    } finally {
      await mounts.unmount(handle)
    }
  })

  // The OCI encoding, which kernel overlayfs does not read: a `.wh.` file ends a directory's merge
  // as a whiteout does, and `.wh..wh..opq` inside one makes it opaque, in C's merge as in the
  // union's walk (checked against what the layers mean, not against a kernel).
  it('merges lower directories it looks up in C as the OCI whiteouts and opaque markers say', async () => {
    const { mnt, handle } = await frame.stack('layerfs', '', async (top, mid, bottom) => {
      for (const [layer, dir, file] of [[top, 'q', 'a'], [bottom, 'q', 'c'], [top, 'y', 'a'], [mid, 'y', 'b'], [top, 'k', 'a'], [mid, 'k', 'b'], [bottom, 'k', 'c']] as const) {
        await mkdir(join(layer, dir), { recursive: true })
        await writeFile(join(layer, dir, file), `${dir}/${file}`)
      }
      await writeFile(join(mid, '.wh.q'), '')
      await writeFile(join(top, 'y', '.wh..wh..opq'), '')
      await writeFile(join(mid, 'k', '.wh.c'), '')
    }, 3)
    try {
      const lookups = await answeredInC('layerfs', mnt, 'cowDirFirstLookups')
      for (const dir of ['q', 'y', 'k']) await lstat(join(mnt, dir))
      const inC = await lookups()
      const listed = await Promise.all(['q', 'y', 'k'].map(async (dir) => `${dir}: ${(await readdir(join(mnt, dir))).sort().join(',')}`))
      expect(listed).toEqual(['q: a', 'y: a', 'k: a,b'])
      expect(inC).toBe(3)
    } finally {
      await mounts.unmount(handle)
    }
  })

  it('keeps looking lower files up in C in a directory where new files replaced others by rename, as sed -i replaces them', async () => {
    const names = ['a', 'b', 'c', 'd', 'e', 'f']
    const actual = await sameOnBoth('', async (top) => {
      await mkdir(join(top, 'd'))
      for (const name of names) await writeFile(join(top, 'd', name), `lower ${name}`)
    }, async ({ mnt }, driver) => {
      const shown: string[] = []
      const show = async (step: string, name: string): Promise<void> => {
        const st = await lstat(join(mnt, 'd', name))
        shown.push(`${step} ${name}: ${st.mode.toString(8)} nlink ${st.nlink} size ${st.size} ${await readFile(join(mnt, 'd', name), 'utf8')}`)
      }
      // sed -i of a, b and c: each read, its new text written to a new file, renamed over it.
      for (const name of ['a', 'b', 'c']) {
        const text = await readFile(join(mnt, 'd', name), 'utf8')
        await writeFile(join(mnt, 'd', `.sed-${name}`), text.toUpperCase())
        await rename(join(mnt, 'd', `.sed-${name}`), join(mnt, 'd', name))
        await show('replaced', name)
      }
      // (The kernel's forgets of the replaced files reach JS first.)
      await new Promise((r) => setTimeout(r, 200))
      const lookups = await answeredInC(driver, mnt, 'cowFileLookups')
      for (const name of ['d', 'e', 'f']) await show('first', name)
      const inC = await lookups()
      return { shown, inC }
    })
    expect(actual.shown).toContain('replaced b: 100644 nlink 1 size 7 LOWER B')
    expect(actual.shown).toContain('first e: 100644 nlink 1 size 7 lower e')
    // The first lookups of the files after the replacements are C's: a rename over a file does not
    // take the directory's lookups from C.
    expect(actual.inC).toBe(3)
  })

  // Lookups in C read a lower directory's names once four names were found missing there, and from
  // then on answer from them without an lstat (native/lower-names.c): every name must still come
  // out as the layers hold it, the one shadowing another, the one whited out, the one below both.
  it('answers lookups from the names of lower directories once it has read them', async () => {
    const probes = ['x1', 'x2', 'x3', 'x4', 'x5', 'x6'].map((name) => `p/${name}`)
    const names = ['t1', 'm1', 'b1', 'sh', 'wo', 'deep', 'x7'].map((name) => `p/${name}`)
    const lookUp = async (mnt: string, step: string, paths: string[], shown: string[]): Promise<void> => {
      for (const path of paths) {
        const text = await readFile(join(mnt, path), 'utf8').catch((err: NodeJS.ErrnoException) => err.code)
        shown.push(`${step} ${path}: ${text}`)
      }
    }
    const run = async (driver: 'kernel' | 'layerfs'): Promise<{ shown: string[]; read?: number }> => {
      const { mnt, handle } = await frame.stack(driver, ',entry_timeout=0,attr_timeout=0', async (top, mid, bottom) => {
        const files: Array<[string, string[]]> = [[top, ['t1', 't2']], [mid, ['m1', 'wo', 'sh']], [bottom, ['b1', 'wo', 'sh', 'deep']]]
        for (const [layer, list] of files) {
          await mkdir(join(layer, 'p'))
          for (const name of list) await writeFile(join(layer, 'p', name), `${layer === top ? 'top' : layer === mid ? 'mid' : 'bottom'} ${name}`)
        }
        execFileSync('mknod', [join(top, 'p', 'wo'), 'c', '0', '0'])
      }, 3)
      try {
        const read = await answeredInC(driver, mnt, 'lowerDirsRead')
        const shown: string[] = []
        await lookUp(mnt, 'probe', probes, shown)
        await lookUp(mnt, 'first', names, shown)
        writeFileSync('/proc/sys/vm/drop_caches', '2')
        await lookUp(mnt, 'again', names, shown)
        return { shown, read: await read() }
      } finally {
        await mounts.unmount(handle)
      }
    }
    const actual = await sameAsKernel(run)
    expect(actual.shown).toContain('again p/sh: mid sh')
    expect(actual.shown).toContain('again p/wo: ENOENT')
    expect(actual.shown).toContain('again p/deep: bottom deep')
    // The three lower directories (more when a probe of the directory itself missed a name).
    expect(actual.read).toBeGreaterThanOrEqual(3)

    // The OCI encoding, which kernel overlayfs does not read: a `.wh.` file hides its name below,
    // listed or not, and never shows itself.
    const { mnt, handle } = await frame.stack('layerfs', ',entry_timeout=0,attr_timeout=0', async (top, bottom) => {
      await mkdir(join(top, 'q'))
      await mkdir(join(bottom, 'q'))
      await writeFile(join(top, 'q', '.wh.hid'), '')
      await writeFile(join(top, 'q', 'f1'), 'top f1')
      for (const name of ['hid', 'g1']) await writeFile(join(bottom, 'q', name), `bottom ${name}`)
    }, 2)
    try {
      const read = await answeredInC('layerfs', mnt, 'lowerDirsRead')
      const shown: string[] = []
      await lookUp(mnt, 'probe', probes.map((path) => path.replace('p/', 'q/')), shown)
      await lookUp(mnt, 'first', ['q/hid', 'q/.wh.hid', 'q/g1', 'q/f1'], shown)
      expect(shown.filter((line) => line.startsWith('first'))).toEqual([
        'first q/hid: ENOENT', 'first q/.wh.hid: ENOENT', 'first q/g1: bottom g1', 'first q/f1: top f1',
      ])
      expect(await read()).toBeGreaterThanOrEqual(2)
    } finally {
      await mounts.unmount(handle)
    }
  })

  // A lower file looked up in C is known to the union as C found it, in the layer it found it in
  // (Union.learnLowerSync), with no walk of its own: an append to it (O_APPEND, which JS
  // copies up) must copy that layer's file, not one it hides or one above it.
  it('copies up the lower file a lookup in C found, from the layer it found it in', async () => {
    const run = async (driver: 'kernel' | 'layerfs'): Promise<{ shown: string[]; upper: string[]; inC?: number }> => {
      const { mnt, upper, handle } = await frame.stack(driver, '', async (top, mid, bottom) => {
        for (const layer of [top, mid, bottom]) await mkdir(join(layer, 'v'))
        await writeFile(join(top, 'v', 'other'), 'top other\n')
        await writeFile(join(mid, 'v', 'f'), 'mid f\n')
        for (const name of ['f', 'g']) await writeFile(join(bottom, 'v', name), `bottom ${name}\n`)
      }, 3)
      try {
        const lookups = await answeredInC(driver, mnt, 'cowFileLookups')
        for (const name of ['f', 'g']) await lstat(join(mnt, 'v', name))
        const inC = await lookups()
        for (const name of ['f', 'g']) await appendFile(join(mnt, 'v', name), `appended ${name}\n`)
        const shown = await Promise.all(['f', 'g', 'other'].map(async (name) => `v/${name}: ${await readFile(join(mnt, 'v', name), 'utf8')}`))
        await mounts.unmount(handle)
        return { shown, upper: ['f', 'g'].map((name) => `v/${name}: ${readFileSync(join(upper, 'v', name), 'utf8')}`), inC }
      } finally {
        await mounts.unmount(handle)
      }
    }
    const actual = await sameAsKernel(run)
    expect(actual.shown).toEqual(['v/f: mid f\nappended f\n', 'v/g: bottom g\nappended g\n', 'v/other: top other\n'])
    // Both looked up in C, in the second and third layers.
    expect(actual.inC).toBe(2)
  })
})
