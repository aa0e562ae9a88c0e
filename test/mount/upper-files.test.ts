// Files already in the upper layer when the mount starts (a container started again over the changes
// it made before) are marked like small lower files when listed or looked up (native/fuse-ll-cow.c,
// `upper`): their getattrs, the reads of their xattrs, their first open for reading, an open for
// writing by root and their setattrs changing mode, owner or times are answered in C from their
// host paths. Nothing copies
// them, and whatever moves a path or changes a file otherwise takes the mark away first: a rename of
// the directory above them, above all, which C cannot see. The same script runs on kernel overlayfs
// (attr_timeout=0 on layerfs: every stat reaches the daemon), and what it shows must agree.
import { existsSync } from 'node:fs'
import { appendFile, chmod, chown, link, lstat, mkdir, open, readFile, readdir, rename, utimes, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { lgetxattrSync, lsetxattrSync } from '../../src/sys/native.js'
import { statsOf } from '../helpers/daemon-stats.js'
import { type Stack, mountFrame } from '../helpers/layerfs-suite.js'
import { type Before, remember, statLine } from '../helpers/stat-line.js'
import { LAYERFS_COMMAND, fuseAvailable, mountFuse } from '../helpers/mount.js'

const fuse = fuseAvailable()
if (!fuse.ok) console.warn(`skipping upper-file tests: ${fuse.reason}`)
if (fuse.ok && !existsSync(resolve('dist/src/cli/main.js'))) throw new Error('build first: npm run build')

/** The small files the upper layer holds in `d` before the mount, each with its own content. */
const SMALL = ['read', 'shadowed', 'chmodded', 'chowned', 'timed', 'written', 'overwritten', 'appended', 'renamed', 'linked', 'xattr', 'setid', 'kept']
/** Names read after the changes. */
const AFTER = [...SMALL.filter((n) => n !== 'renamed'), 'renamed2', 'linked2', 'big', 'hard1', 'hard2', 'below']

/** The upper layer of a stack whose lower layer is `lower` (see mountFrame): filled before the mount,
 *  as an earlier mount would have left it. */
function upperOf(lower: string): string {
  return join(dirname(lower), 'upper')
}

async function fill(lower: string): Promise<void> {
  const upper = upperOf(lower)
  await mkdir(join(lower, 'd'))
  await writeFile(join(lower, 'd', 'shadowed'), 'lower version')
  await writeFile(join(lower, 'd', 'below'), 'only below')
  await mkdir(join(upper, 'd'))
  await mkdir(join(upper, 'moved'))
  for (const name of SMALL) await writeFile(join(upper, 'd', name), `upper ${name}`)
  lsetxattrSync(join(upper, 'd', 'xattr'), 'user.k', Buffer.from('v'))
  await chmod(join(upper, 'd', 'setid'), 0o4755)
  await writeFile(join(upper, 'd', 'big'), Buffer.alloc(100_000, 0x62))
  await writeFile(join(upper, 'd', 'hard1'), 'hard')
  await link(join(upper, 'd', 'hard1'), join(upper, 'd', 'hard2'))
  for (const name of ['f1', 'f2']) await writeFile(join(upper, 'moved', name), `moved ${name}`)
}

/** What stat and a read show of `path` (statLine), against what it showed before the changes. */
function shown(path: string, before?: Before, key = path): Promise<string> {
  return statLine(path, { before, key, content: 24 })
}

describe.skipIf(!fuse.ok)('files in the upper layer answered in C', () => {
  const frame = mountFrame('upper-files')
  const mounts = frame.mounts

  async function run({ mnt }: Stack, driver: 'kernel' | 'layerfs'): Promise<{ listed: string[]; after: string[]; moved: string[]; counts?: Record<string, number> }> {
    const at = (name: string): string => join(mnt, 'd', name)
    const names = (await readdir(join(mnt, 'd'))).sort()
    await readdir(join(mnt, 'moved'))
    const loop0 = driver === 'layerfs' ? (await statsOf(mnt)).loop : undefined
    const before: Before = new Map()
    const listed: string[] = []
    for (const name of names) {
      await remember(before, name, at(name))
      listed.push(`${name}: ${await shown(at(name))}`)
    }
    listed.push(`xattr user.k: ${lgetxattrSync(at('xattr'), 'user.k')?.toString() ?? '-'}`)
    const loop1 = driver === 'layerfs' ? (await statsOf(mnt)).loop : undefined
    // Changes answered in C (mode, owner, times; an open for writing, and what is done through
    // it) and in JS (the rest, each taking the mark away).
    await chmod(at('chmodded'), 0o600)
    await chown(at('chowned'), 1000, 1001)
    await utimes(at('timed'), 1_000_000, 1_000_000)
    const fh = await open(at('written'), 'r+')
    try {
      await fh.write('W', 2)
      await fh.utimes(2_000_000, 2_000_000)
      listed.push(`written, through its open: size ${(await fh.stat()).size}`)
    } finally {
      await fh.close()
    }
    // Written anew (O_TRUNC), as `echo > file` does.
    await writeFile(at('overwritten'), 'new')
    const loop2 = driver === 'layerfs' ? (await statsOf(mnt)).loop : undefined
    await appendFile(at('appended'), ' and more')
    await rename(at('renamed'), at('renamed2'))
    await link(at('linked'), at('linked2'))
    lsetxattrSync(at('xattr'), 'user.k', Buffer.from('changed'))
    await chmod(at('setid'), 0o755)
    const after: string[] = []
    for (const name of AFTER) after.push(`${name}: ${await shown(at(name), before, name)}`)
    after.push(`xattr user.k: ${lgetxattrSync(at('xattr'), 'user.k')?.toString() ?? '-'}`)
    // The directory above marked files moves, and a new file takes one's old path: the moved
    // file's node must show itself, not what its old host path holds now.
    const movedBefore: Before = new Map()
    for (const name of ['f1', 'f2']) await remember(movedBefore, name, join(mnt, 'moved', name))
    await rename(join(mnt, 'moved'), join(mnt, 'moved2'))
    await mkdir(join(mnt, 'moved'))
    await writeFile(join(mnt, 'moved', 'f1'), 'made again at the old path, longer')
    const moved: string[] = []
    for (const name of ['f1', 'f2']) moved.push(`moved2/${name}: ${await shown(join(mnt, 'moved2', name), movedBefore, name)}`)
    moved.push(`moved/f1: ${await shown(join(mnt, 'moved', 'f1'))}`)
    const counts = loop0 && loop1 && loop2
      ? { getattrs: loop1.cowGetattrs - loop0.cowGetattrs, firstOpens: loop1.firstOpens - loop0.firstOpens, getxattrs: loop1.cowGetxattrs - loop0.cowGetxattrs, setattrs: loop2.cowSetattrs - loop1.cowSetattrs, opens: loop2.cowOpens - loop1.cowOpens }
      : undefined
    return { listed, after, moved, counts }
  }

  it('shows what kernel overlayfs shows, before and after each kind of change, and answers the reads, the opens for writing and the changes of mode, owner and times in C', async () => {
    const { kernel: expected, layerfs: actual } = await frame.onBoth(',attr_timeout=0', fill, run)
    expect(actual.listed).toEqual(expected.listed)
    expect(actual.after).toEqual(expected.after)
    expect(actual.moved).toEqual(expected.moved)
    // What the comparison rests on, spelled out.
    expect(actual.listed).toContain('read: 100644 nlink 1 0:0 size 10 "upper read"')
    expect(actual.listed).toContain('shadowed: 100644 nlink 1 0:0 size 14 "upper shadowed"')
    expect(actual.after).toContain('chowned: 100644 nlink 1 1000:1001 size 13 "upper chowned" ino same mtime same ctime other')
    expect(actual.after).toContain('chmodded: 100600 nlink 1 0:0 size 14 "upper chmodded" ino same mtime same ctime other')
    expect(actual.after).toContain('appended: 100644 nlink 1 0:0 size 23 "upper appended and more" ino same mtime other ctime other')
    expect(actual.after).toContain('linked: 100644 nlink 2 0:0 size 12 "upper linked" ino same mtime same ctime other')
    expect(actual.after).toContain('setid: 100755 nlink 1 0:0 size 11 "upper setid" ino same mtime same ctime other')
    expect(actual.after).toContain('xattr user.k: changed')
    expect(actual.moved).toEqual([
      'moved2/f1: 100644 nlink 1 0:0 size 8 "moved f1" ino same mtime same ctime same',
      'moved2/f2: 100644 nlink 1 0:0 size 8 "moved f2" ino same mtime same ctime same',
      'moved/f1: 100644 nlink 1 0:0 size 34 "made again at the old pa"',
    ])
    expect(actual.after).toContain('written: 100644 nlink 1 0:0 size 13 "upWer written" ino same mtime other ctime other')
    expect(actual.after).toContain('overwritten: 100644 nlink 1 0:0 size 3 "new" ino same mtime other ctime other')
    // In C: each small file's first open (not the big one, nor the hard-linked ones; and that of
    // the small lower file 'below'), its stats (two each, and the kernel's own after the first open
    // moved its atime), the xattr read, the three changes of mode, owner and times, the open for
    // writing and the change of times through it, and the open that wrote a file anew.
    const counts = actual.counts!
    expect(counts.firstOpens).toBe(SMALL.length + 1)
    expect(counts.getattrs).toBeGreaterThanOrEqual(2 * SMALL.length)
    expect(counts.getxattrs).toBeGreaterThanOrEqual(1)
    expect(counts.setattrs).toBe(4)
    expect(counts.opens).toBe(2)
  })

  // A metadata-only copy (an earlier mount's metacopy=on) holds no bytes of its own: its first open
  // is JS's, which reads them from the lower file.
  it('reads and writes a metadata-only copy an earlier mount left from its lower file', async () => {
    const { mnt, upper, lowers, handle } = await frame.stack('layerfs', ',metacopy=on', async (lower) => {
      await mkdir(join(lower, 'd'))
      await writeFile(join(lower, 'd', 'meta'), 'the bytes below')
    })
    await chmod(join(mnt, 'd', 'meta'), 0o600)
    await mounts.unmount(handle)
    expect(lgetxattrSync(join(upper, 'd', 'meta'), 'trusted.overlay.metacopy')).toBeDefined()
    // Read on the host, its hole is in the page cache: C could read it without waiting for the disk.
    expect(await readFile(join(upper, 'd', 'meta'))).toEqual(Buffer.alloc('the bytes below'.length))
    const again = join(dirname(upper), 'mnt')
    const h = mounts.add(await mountFuse([LAYERFS_COMMAND, '-o', `lowerdir=${lowers[0]},upperdir=${upper},workdir=${join(dirname(upper), 'work')}`, again], again))
    try {
      await readdir(join(again, 'd'))
      const first = (await statsOf(again)).loop!.firstOpens
      expect(await readFile(join(again, 'd', 'meta'), 'utf8')).toBe('the bytes below')
      expect((await lstat(join(again, 'd', 'meta'))).mode & 0o777).toBe(0o600)
      expect((await statsOf(again)).loop!.firstOpens, 'its first open went to JS').toBe(first)
      // Nor is its open for writing C's: it copies the bytes up first.
      const fh = await open(join(again, 'd', 'meta'), 'r+')
      try {
        await fh.write('T', 0)
      } finally {
        await fh.close()
      }
      expect(await readFile(join(again, 'd', 'meta'), 'utf8')).toBe('The bytes below')
    } finally {
      await mounts.unmount(h)
    }
  })
})
