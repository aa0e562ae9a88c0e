// A setattr that copies a lower object up makes its change on the copy before the copy is named
// (native/copy-up.c, stage_exec): the caller's mode and times replace the copied ones, and its chown
// comes after mode and xattrs. The order decides what survives: a chown clears setuid, setgid (with
// group-exec) and security.capability, a chmod clears none of them, a time change leaves the other
// time as it was. Each case runs on kernel overlayfs and on layerfs, and the merged view and the
// upper files must agree, atime and capabilities included (the differential suite compares neither).
import { execFileSync } from 'node:child_process'
import { existsSync, lstatSync, readFileSync, readdirSync } from 'node:fs'
import { chmod, chown, lchown, lstat, lutimes, mkdir, symlink, utimes, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { lgetxattrSync, lsetxattrSync, utimensatSync } from '../../src/sys/native.js'
import { statsOf } from '../helpers/daemon-stats.js'
import { mountFrame } from '../helpers/layerfs-suite.js'
import { LAYERFS_COMMAND as CLI, fuseAvailable, mountFuse, mountOverlay } from '../helpers/mount.js'

const fuse = fuseAvailable()
if (!fuse.ok) console.warn(`skipping copy-up change tests: ${fuse.reason}`)
if (fuse.ok && !existsSync(resolve('dist/src/cli/main.js'))) throw new Error('build first: npm run build')

/** A version-2 file capability granting cap_net_raw (bit 13), permitted and effective. */
const CAP = Buffer.from([1, 0, 0, 2, 0x00, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
const A0 = 1_600_000_000
const M0 = 1_500_000_000
const T1 = 1_700_000_000n * 1_000_000_000n + 123_456_789n

async function fillLower(lower: string): Promise<void> {
  const file = async (name: string, mode: number, uid = 0, gid = 0): Promise<void> => {
    const p = join(lower, name)
    await writeFile(p, name)
    await chown(p, uid, gid)
    await chmod(p, mode)
  }
  await file('capped', 0o755)
  lsetxattrSync(join(lower, 'capped'), 'security.capability', CAP)
  await file('capped-chmod', 0o755)
  lsetxattrSync(join(lower, 'capped-chmod'), 'security.capability', CAP)
  await file('suid-owned', 0o4755, 1000, 1001)
  await file('sgid-group', 0o2775, 0, 100)
  await file('suid-same-owner', 0o4755)
  await file('touch-m', 0o644)
  await file('touch-a', 0o644)
  await file('xattr', 0o644)
  // Copies are made with their mode from the start where the umask is 0 (STAGE_EXACT_MODE): a mode
  // that lets nobody write must still take the data, the xattrs and the change.
  await file('mode-0', 0o000)
  await file('read-only', 0o444, 1000, 1000)
  await file('to-read-only', 0o664)
  lsetxattrSync(join(lower, 'mode-0'), 'user.kept', Buffer.from('yes'))
  lsetxattrSync(join(lower, 'xattr'), 'user.kept', Buffer.from('yes'))
  await symlink('touch-m', join(lower, 'link'))
  await mkdir(join(lower, 'sgid-dir'))
  await chmod(join(lower, 'sgid-dir'), 0o2775)
  for (const name of ['dir-chmod', 'dir-touch']) {
    await mkdir(join(lower, name, 'inside'), { recursive: true })
    await utimes(join(lower, name, 'inside'), A0, M0)
    lsetxattrSync(join(lower, name), 'user.kept', Buffer.from('yes'))
  }
  for (const name of ['capped', 'capped-chmod', 'suid-owned', 'sgid-group', 'suid-same-owner', 'touch-m', 'touch-a', 'xattr', 'mode-0', 'read-only', 'to-read-only', 'sgid-dir', 'dir-chmod', 'dir-touch']) {
    await utimes(join(lower, name), A0, M0)
  }
  await lutimes(join(lower, 'link'), A0, M0)
}

/** The changes, each a setattr of a lower object. */
async function change(mnt: string): Promise<void> {
  const at = (name: string): string => join(mnt, name)
  await chown(at('capped'), 1000, 1000)
  await chmod(at('capped-chmod'), 0o700)
  await chmod(at('suid-owned'), 0o4711)
  await chown(at('sgid-group'), -1, 200)
  await chown(at('suid-same-owner'), 0, 0)
  utimensatSync(at('touch-m'), null, T1, false)
  utimensatSync(at('touch-a'), T1, null, false)
  await chown(at('xattr'), 1000, 1000)
  await chown(at('mode-0'), 1000, 1000)
  utimensatSync(at('read-only'), null, T1, false)
  await chmod(at('to-read-only'), 0o444)
  await lchown(at('link'), 1000, 1000)
  await chown(at('sgid-dir'), 1000, 1000)
  // Directories: the change is made on the copy before it is named, as for files.
  await chmod(at('dir-chmod'), 0o750)
  utimensatSync(at('dir-touch'), null, T1, false)
}

const NAMES = ['capped', 'capped-chmod', 'suid-owned', 'sgid-group', 'suid-same-owner', 'touch-m', 'touch-a', 'xattr', 'mode-0', 'read-only', 'to-read-only', 'link', 'sgid-dir', 'dir-chmod', 'dir-touch']

/** What a user can see of each object: type and mode, owner, atime and mtime to the nanosecond,
 *  the capability and the user xattr. */
async function state(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const name of NAMES) {
    const p = join(root, name)
    const st = await lstat(p, { bigint: true })
    const cap = st.isSymbolicLink() ? undefined : lgetxattrSync(p, 'security.capability')
    const kept = st.isSymbolicLink() ? undefined : lgetxattrSync(p, 'user.kept')
    out[name] = [
      st.mode.toString(8), `${st.uid}:${st.gid}`, `a=${st.atimeNs}`, `m=${st.mtimeNs}`,
      `cap=${cap?.toString('hex') ?? '-'}`, `user.kept=${kept?.toString() ?? '-'}`,
    ].join(' ')
  }
  return out
}

describe.skipIf(!fuse.ok)('a setattr that copies up', () => {
  const frame = mountFrame('copy-up-change')
  const mounts = frame.mounts
  let n = 0

  /** Run the changes over a fresh stack on `driver`; the merged view and the upper layer after, and
   *  (layerfs) how many setattrs were answered in C. */
  async function run(driver: 'kernel' | 'layerfs', options = ''): Promise<{ merged: Record<string, string>; upper: Record<string, string>; inC?: number }> {
    const { upper, mnt, handle } = await frame.stack(driver, options, (lower) => fillLower(lower))
    try {
      await change(mnt)
      const merged = await state(mnt)
      const inC = driver === 'layerfs' ? (await statsOf(mnt)).loop?.cowSetattrs : undefined
      // The upper layer at rest: layerfs names a copy-up once its flush is done (flush_behind).
      await mounts.unmount(handle)
      return { merged, upper: await state(upper), inC }
    } finally {
      await mounts.unmount(handle)
    }
  }

  // By default the setattrs of files and directories are answered in C (native/fuse-ll-cow.c: each
  // was looked up first), and with metacopy (a metadata-only copy, named in C); without flush
  // behind, by the union.
  it.each(['', ',metacopy=on', ',flush_behind=0'])('makes its change as kernel overlayfs does (options %j)', async (options) => {
    const expected = await run('kernel', options.replace(',flush_behind=0', ''))
    const actual = await run('layerfs', options)
    expect(actual.merged).toEqual(expected.merged)
    expect(actual.upper).toEqual(expected.upper)
    // Ten of the eleven regular files, and the three directories (their parent, the root, is in the
    // upper layer). The chgrp of 'sgid-group' asks to clear set-ID bits (killpriv), and its copy
    // keeps setgid (root's chgrp does): the union decides that one. The symlink goes through the
    // union too.
    expect(actual.inC).toBe(options === ',flush_behind=0' ? 0 : 13)
    // What the comparison rests on, spelled out: a chown drops the capability and setuid, a chmod
    // keeps the capability, a time change keeps the other time.
    expect(actual.merged['capped']).toMatch(/^100755 1000:1000 .* cap=- /)
    expect(actual.merged['capped-chmod']).toContain(`cap=${CAP.toString('hex')}`)
    expect(actual.merged['suid-same-owner']).toMatch(/^100755 0:0 /)
    expect(actual.merged['suid-owned']).toMatch(/^104711 1000:1001 /)
    expect(actual.merged['touch-m']).toContain(`a=${BigInt(A0) * 1_000_000_000n} m=${T1}`)
    expect(actual.merged['touch-a']).toContain(`a=${T1} m=${BigInt(M0) * 1_000_000_000n}`)
    expect(actual.merged['dir-chmod']).toMatch(/^40750 0:0 a=\d+ m=\d+ cap=- user.kept=yes$/)
    expect(actual.upper['dir-touch']).toContain(`m=${T1} cap=- user.kept=yes`)
    expect(actual.upper['mode-0']).toMatch(/^100000 1000:1000 .* user.kept=yes$/)
    expect(actual.upper['read-only']).toMatch(new RegExp(`^100444 1000:1000 .* m=${T1} `))
    expect(actual.upper['to-read-only']).toMatch(/^100444 0:0 /)
  })

  /** A lower tree of `dirs` directories under 'tree', each holding `files` small files, with times
   *  and a user xattr to keep. */
  async function fillTree(lower: string, dirs: number, files: number): Promise<void> {
    for (let d = 0; d < dirs; d++) {
      // Three levels: tree/a<i>/b<j>, so that directories are listed inside lower directories.
      const dir = join(lower, 'tree', `a${d % 4}`, `b${d}`)
      await mkdir(dir, { recursive: true })
      for (let f = 0; f < files; f++) {
        await writeFile(join(dir, `f${f}`), `file ${d}/${f}`)
        await utimes(join(dir, `f${f}`), A0, M0 + f)
      }
      lsetxattrSync(dir, 'user.kept', Buffer.from(`b${d}`))
      await utimes(dir, A0, M0 + d)
    }
    for (let a = 0; a < 4; a++) await utimes(join(lower, 'tree', `a${a}`), A0, M0 - a)
    await utimes(join(lower, 'tree'), A0, M0)
  }

  /** Type, mode, owner, mtime and user xattr of everything under `root`, by path; a file's size
   *  and bytes too (a metadata-only copy in the upper layer holds none: zeros). */
  function treeState(root: string): Record<string, string> {
    const out: Record<string, string> = {}
    const walk = (rel: string): void => {
      const p = join(root, rel)
      const st = lstatSync(p, { bigint: true })
      const data = st.isFile() ? ` ${st.size} ${JSON.stringify(readFileSync(p, 'latin1'))} metacopy=${lgetxattrSync(p, 'trusted.overlay.metacopy') !== undefined}` : ''
      out[rel] = `${st.mode.toString(8)} ${st.uid}:${st.gid} m=${st.mtimeNs} user.kept=${lgetxattrSync(p, 'user.kept')?.toString() ?? '-'}${data}`
      if (st.isDirectory()) for (const name of readdirSync(p).sort()) walk(join(rel, name))
    }
    walk('tree')
    return out
  }

  // chmod -R changes a directory before it lists it. A tree listed before (a first walk, while its
  // directories were lower) is listed again from the kernel's cache, with no request: its
  // directories' setattrs are still answered in C, their copies named at once below the copy of
  // the directory changed just before, and so are their files'. With metacopy, the files' copies
  // are metadata-only ones, named in C, which copies their lower directories up first.
  it.each([['chmod', 'g+w', ''], ['chown', '1000:1001', ''], ['chmod', 'g+w', ',metacopy=on'], ['chown', '1000:1001', ',metacopy=on']])('copies a listed lower tree up under %s -R %s as kernel overlayfs does, every setattr in C (options %j)', async (tool, arg, options) => {
    const run = async (driver: 'kernel' | 'layerfs'): Promise<{ merged: Record<string, string>; upper: Record<string, string>; inC: number }> => {
      const { upper, mnt, handle } = await frame.stack(driver, options, (lower) => fillTree(lower, 12, 3))
      try {
        execFileSync('ls', ['-lR', join(mnt, 'tree')], { stdio: 'ignore' })
        const before = driver === 'layerfs' ? (await statsOf(mnt)).loop!.cowSetattrs : 0
        execFileSync(tool, ['-R', arg, join(mnt, 'tree')])
        const inC = driver === 'layerfs' ? (await statsOf(mnt)).loop!.cowSetattrs - before : 0
        const merged = treeState(mnt)
        await mounts.unmount(handle)
        return { merged, upper: treeState(upper), inC }
      } finally {
        await mounts.unmount(handle)
      }
    }
    const expected = await run('kernel')
    const actual = await run('layerfs')
    expect(actual.merged).toEqual(expected.merged)
    expect(actual.upper).toEqual(expected.upper)
    // 'tree', 4 a<i>, 12 b<j>, 36 files. chown -R changes a directory after its files: one whose
    // files' copies (made in C, their directory lower then) JS has not taken over yet goes to JS.
    expect(Object.keys(actual.merged)).toHaveLength(53)
    if (options !== '') expect(Object.values(actual.upper).filter((line) => line.endsWith('metacopy=true'))).toHaveLength(36)
    if (tool === 'chmod' || options !== '') expect(actual.inC).toBe(53)
    else expect(actual.inC).toBeGreaterThanOrEqual(36 + 1)
  })

  // A file's copy made in C in a lower directory is taken over by JS after the reply, copying the
  // directory up then; a setattr of that directory arriving before (the same batch of requests)
  // must not be copied up in C as well: JS's copy-up of the directory, made from the lower one,
  // would replace C's and lose the change. Each file is changed, then its directory, by one chmod.
  it('keeps a directory\'s change made right after a change of a file in it that copied the file up in C', async () => {
    const { upper, mnt, handle } = await frame.stack('layerfs', '', (lower) => fillTree(lower, 160, 1))
    try {
      const paths = Array.from({ length: 160 }, (_, d) => join(mnt, 'tree', `a${d % 4}`, `b${d}`))
      // Looked up, not listed: a listing would make the kernel ask for the directory's attributes
      // again (its atime), a request that would hand JS the file's copy before the directory's
      // setattr comes.
      execFileSync('stat', paths.map((dir) => join(dir, 'f0')), { stdio: 'ignore' })
      // The a<i> directories copied up first: the b<j> in them stay lower, their parents upper.
      execFileSync('chmod', ['g+w', ...[0, 1, 2, 3].map((a) => join(mnt, 'tree', `a${a}`))])
      execFileSync('chmod', ['o+w', ...paths.flatMap((dir) => [join(dir, 'f0'), dir])])
      const modes = (root: string): string[] => paths.flatMap((dir) => {
        const rel = dir.slice(mnt.length)
        return [join(rel, 'f0'), rel].map((p) => `${p} ${(lstatSync(join(root, p)).mode & 0o777).toString(8)}`)
      })
      const want = paths.flatMap((dir) => [`${join(dir.slice(mnt.length), 'f0')} 646`, `${dir.slice(mnt.length)} 757`])
      expect(modes(mnt)).toEqual(want)
      await mounts.unmount(handle)
      expect(modes(upper)).toEqual(want)
    } finally {
      await mounts.unmount(handle)
    }
  })

  // Copies are made in the work directory, with their modes from the start where the umask is 0.
  // A default ACL there would decide a new file's mode instead (masked by the ACL, not the umask),
  // and be inherited by the copies as an access ACL their lower files never had: overlayfs removes
  // the ACLs of its work directory's scratch area, and so does layerfs. Both run the same changes.
  it('keeps the modes of copies, and adds no ACL to them, where the work directory has a default ACL', async () => {
    const copies = async (driver: 'kernel' | 'layerfs'): Promise<Record<string, string>> => {
      const base = join(frame.dir, `s${++n}`)
      const [lower, upper, work, mnt] = ['lower', 'upper', 'work', 'mnt'].map((d) => join(base, d)) as [string, string, string, string]
      for (const d of [lower, upper, work, mnt]) await mkdir(d, { recursive: true })
      for (const [name, mode] of [['chowned', 0o644], ['chmodded', 0o644], ['touched', 0o755], ['written', 0o640]] as const) {
        await writeFile(join(lower, name), name)
        await chmod(join(lower, name), mode)
      }
      // A named user's entry: an inherited access ACL would not fold into the mode bits.
      execFileSync('setfacl', ['-d', '-m', 'u::rwx,u:1234:rwx,g::---,o::---', work])
      const handle = driver === 'kernel'
        ? mounts.add(await mountOverlay({ lowers: [lower], upper, work, mnt }))
        : mounts.add(await mountFuse([CLI, '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, mnt], mnt))
      try {
        await chown(join(mnt, 'chowned'), 1000, 1000)
        await chmod(join(mnt, 'chmodded'), 0o755)
        utimensatSync(join(mnt, 'touched'), null, T1, false)
        await writeFile(join(mnt, 'written'), 'new bytes', { flag: 'r+' })
        await mounts.unmount(handle)
      } finally {
        await mounts.unmount(handle)
      }
      const out: Record<string, string> = {}
      for (const name of ['chowned', 'chmodded', 'touched', 'written']) {
        const path = join(upper, name)
        out[name] = `${((await lstat(path)).mode & 0o7777).toString(8)} acl=${lgetxattrSync(path, 'system.posix_acl_access') ? 'yes' : 'no'}`
      }
      const scratch = join(work, 'work')
      out.scratch = ['system.posix_acl_access', 'system.posix_acl_default'].map((name) => lgetxattrSync(scratch, name) ? 'acl' : '-').join(' ')
      return out
    }
    const layerfs = await copies('layerfs')
    expect(layerfs).toEqual({ chowned: '644 acl=no', chmodded: '755 acl=no', touched: '755 acl=no', written: '640 acl=no', scratch: '- -' })
    expect(await copies('kernel')).toEqual(layerfs)
  })
})
