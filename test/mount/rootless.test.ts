// Rootless, as rootless podman runs its mount_program: the daemon is started by an unprivileged user
// inside a user and mount namespace of that user's own (`unshare -Urm`), where it is root without
// root's powers on the host: it mounts FUSE itself, may not write trusted.* xattrs (an opaque
// directory gets user.overlay.opaque, as overlayfs's `userxattr` writes it) and makes its whiteouts
// as the 0/0 char devices the kernel lets anyone make. The same script runs on kernel overlayfs
// mounted in such a namespace (-o userxattr); the merged views and upper layers must match.
import { spawnSync } from 'node:child_process'
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs'
import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { lgetxattrSync, major, minor } from '../../src/sys/native.js'
import { runCmd } from '../helpers/exec.js'
import { LAYERFS_COMMAND as LAYERFS, fuseAvailable, processesNaming } from '../helpers/mount.js'
import { makeTempDir, removeTempDir } from '../helpers/tmp.js'

/** The unprivileged user the script runs as (it needs no passwd entry). */
const UID = 1000

function whyNot(): string | undefined {
  const fuse = fuseAvailable()
  if (!fuse.ok) return fuse.reason
  if (process.getuid?.() !== 0) return 'needs root (to run the script as another user and to make /dev/fuse usable by it)'
  for (const tool of ['unshare', 'setpriv', 'fusermount3']) {
    if (!(process.env.PATH ?? '').split(':').some((d) => d !== '' && existsSync(join(d, tool)))) return `${tool} is not installed`
  }
  if (!existsSync(resolve('dist/src/cli/main.js'))) throw new Error('build first: npm run build')
  const probe = spawnSync('setpriv', ['--reuid', String(UID), '--regid', String(UID), '--clear-groups', 'unshare', '-Urm', 'true'], { timeout: 10_000 })
  if (probe.status !== 0) return `an unprivileged user cannot make a user namespace here (${probe.stderr?.toString().trim() || probe.error?.message})`
  return undefined
}

const skipReason = whyNot()
if (skipReason !== undefined) console.warn(`skipping the rootless mount test: ${skipReason}`)

/** `script` run by UID as root of a user and mount namespace of its own. */
function asRootlessUser(script: string): ReturnType<typeof runCmd> {
  return runCmd('setpriv', ['--reuid', String(UID), '--regid', String(UID), '--clear-groups', '--inh-caps=-all',
    'env', 'HOME=/tmp', 'unshare', '-Urm', 'sh', '-c', script], { timeoutMs: 30_000 })
}

/** The layers: two lowers with files, a directory to be emptied and made again, and the names the
 *  script removes, renames and changes. */
async function buildStack(base: string): Promise<{ lowers: string[] }> {
  const [top, bottom] = [join(base, 'top'), join(base, 'bottom')]
  for (const d of [join(top, 'd'), join(top, 'e'), join(bottom, 'e'), join(bottom, 'deep/er')]) await mkdir(d, { recursive: true })
  await writeFile(join(top, 'd/f'), 'lower\n')
  await writeFile(join(top, 'e/z'), 'top z\n')
  await writeFile(join(bottom, 'e/y'), 'bottom y\n')
  await writeFile(join(bottom, 'g'), 'gone soon\n')
  await writeFile(join(bottom, 'h'), 'renamed\n')
  await writeFile(join(bottom, 'k'), 'mode changed\n', { mode: 0o644 })
  await writeFile(join(bottom, 'deep/er/x'), 'deep\n')
  await symlink('d/f', join(top, 'sl'))
  return { lowers: [top, bottom] }
}

/** The operations, in the mount `$M`; what they read and the merged tree go to `$OUT`. */
const OPS = `
cd "$M"
cat d/f > "$OUT/read.txt"
echo changed >> d/f
rm g
rm -r e
mkdir e
echo new > e/new
mv h h2
chmod 600 k
echo more >> deep/er/x
ln -s e/new sl2
mkdir -p n/o
echo made > n/o/p
mkdir -p q/r && chmod 0 q/r && rmdir q/r && rmdir q
rm sl
find . | sort | while read -r p; do
  if [ -L "$p" ]; then echo "$p link $(readlink "$p")"
  elif [ -d "$p" ]; then echo "$p dir $(stat -c %a "$p")"
  else echo "$p file $(stat -c '%a %s' "$p") $(sha256sum < "$p" | cut -c1-16)"; fi
done > "$OUT/merged.txt"
cd /
`

interface UpperEntry {
  path: string
  kind: string
  mode?: string
  data?: string
  opaque?: string
  uid: number
}

/** The upper layer as the script left it: whiteouts and opaque markers in the kernel's `userxattr`
 *  encoding, files and their bytes, owners (the user, root inside its namespace). The union's own
 *  xattrs (origin, impure, uuid) are left out, as are times and whiteouts' link counts (the kernel
 *  shares one whiteout inode). */
function walkUpper(root: string): UpperEntry[] {
  const out: UpperEntry[] = []
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const path = rel === '' ? name : `${rel}/${name}`
      const host = join(root, path)
      const st = lstatSync(host)
      const opaque = st.isDirectory() ? lgetxattrSync(host, 'user.overlay.opaque')?.toString() : undefined
      const kind = st.isCharacterDevice() ? `char ${major(st.rdev)}/${minor(st.rdev)}` : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other'
      const entry: UpperEntry = { path, kind, uid: st.uid }
      if (!st.isSymbolicLink() && !st.isCharacterDevice()) entry.mode = (st.mode & 0o7777).toString(8)
      if (st.isFile()) entry.data = readFileSync(host, 'utf8')
      if (st.isSymbolicLink()) entry.data = readlinkSync(host)
      if (opaque !== undefined) entry.opaque = opaque
      out.push(entry)
      if (st.isDirectory()) walk(path)
    }
  }
  walk('')
  return out
}

describe.skipIf(skipReason !== undefined)('rootless: layerfs in an unprivileged user namespace, against kernel overlayfs there', () => {
  let base: string
  let fuseMode: number | undefined

  beforeAll(async () => {
    base = await makeTempDir('rootless')
    await chmod(base, 0o755)
    // Debian's udev makes /dev/fuse 0666; where it is not (a bare VM), the test makes it so while it runs.
    const mode = statSync('/dev/fuse').mode & 0o777
    if ((mode & 0o006) !== 0o006) {
      console.warn(`[rootless] /dev/fuse is ${mode.toString(8)}: 0666 (as udev sets it) while this test runs`)
      fuseMode = mode
      await chmod('/dev/fuse', 0o666)
    }
  })

  afterAll(async () => {
    if (fuseMode !== undefined) await chmod('/dev/fuse', fuseMode)
    if (base === undefined) return
    // A daemon that outlived its script (a failure half-way): it holds the namespace and the mount.
    for (let i = 0; i < 50 && processesNaming(base).length > 0; i++) await new Promise((r) => setTimeout(r, 20))
    for (const pid of processesNaming(base)) process.kill(pid, 'SIGKILL')
    await removeTempDir(base)
  })

  /** Runs OPS on a fresh stack under `driver`, as the rootless user; its outputs and upper layer. */
  async function run(driver: 'kernel' | 'layerfs'): Promise<{ merged: string; read: string; upper: UpperEntry[] }> {
    const dir = join(base, driver)
    await mkdir(dir)
    const { lowers } = await buildStack(dir)
    const [upper, work, mnt, out] = ['upper', 'work', 'mnt', 'out'].map((d) => join(dir, d)) as [string, string, string, string]
    for (const d of [upper, work, mnt, out]) await mkdir(d)
    await runCmd('chown', ['-R', `${UID}:${UID}`, dir])
    const layers = `lowerdir=${lowers.join(':')},upperdir=${upper},workdir=${work}`
    const mount = driver === 'kernel' ? `mount -t overlay overlay -o ${layers},userxattr "$M"` : `"${LAYERFS}" -o ${layers} "$M"`
    const unmount = driver === 'kernel' ? 'umount "$M"' : 'fusermount3 -u "$M"'
    const r = await asRootlessUser(`set -e; M='${mnt}'; OUT='${out}'; ${mount}; trap '${unmount.replace(/'/g, `'\\''`)}' EXIT; ${OPS}`)
    expect(r.code, `${driver}: ${r.stderr}`).toBe(0)
    // The daemon goes once its mount is gone.
    for (let i = 0; i < 100 && processesNaming(dir).length > 0; i++) await new Promise((res) => setTimeout(res, 20))
    expect(processesNaming(dir), `${driver}: processes left`).toEqual([])
    return { merged: readFileSync(join(out, 'merged.txt'), 'utf8'), read: readFileSync(join(out, 'read.txt'), 'utf8'), upper: walkUpper(upper) }
  }

  it('mounts, copies up, whites out and makes opaque directories as kernel overlayfs does with userxattr', async () => {
    const kernel = await run('kernel')
    const layerfs = await run('layerfs')
    expect(layerfs.read).toBe('lower\n')
    expect(layerfs.merged).toBe(kernel.merged)
    expect(layerfs.upper).toEqual(kernel.upper)
    // What the comparison rests on: whiteouts, an opaque directory, copies, all the user's.
    expect(layerfs.upper).toContainEqual({ path: 'g', kind: 'char 0/0', uid: UID })
    expect(layerfs.upper).toContainEqual({ path: 'e', kind: 'dir', mode: '755', opaque: 'y', uid: UID })
    expect(layerfs.upper).toContainEqual({ path: 'k', kind: 'file', mode: '600', data: 'mode changed\n', uid: UID })
    expect(layerfs.upper.every((e) => e.uid === UID)).toBe(true)
  })
})
