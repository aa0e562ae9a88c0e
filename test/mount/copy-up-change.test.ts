// A setattr that copies a lower object up makes its change on the copy before the copy is named
// (native/copy-up.c, stage_exec): the caller's mode and times replace the copied ones, and its chown
// comes after mode and xattrs. The order decides what survives: a chown clears setuid, setgid (with
// group-exec) and security.capability, a chmod clears none of them, a time change leaves the other
// time as it was. Each case runs on kernel overlayfs and on layerfs, and the merged view and the
// upper files must agree, atime and capabilities included (the differential suite compares neither).
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
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
  // was looked up first); with metacopy or without flush behind, by the union.
  it.each(['', ',metacopy=on', ',flush_behind=0'])('makes its change as kernel overlayfs does (options %j)', async (options) => {
    const expected = await run('kernel', options.replace(',flush_behind=0', ''))
    const actual = await run('layerfs', options)
    expect(actual.merged).toEqual(expected.merged)
    expect(actual.upper).toEqual(expected.upper)
    // Ten of the eleven regular files, and the three directories (their parent, the root, is in the
    // upper layer). The chgrp of 'sgid-group' asks to clear set-ID bits (killpriv), and its copy
    // keeps setgid (root's chgrp does): the union decides that one. The symlink goes through the
    // union too.
    expect(actual.inC).toBe(options === '' ? 13 : 0)
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
