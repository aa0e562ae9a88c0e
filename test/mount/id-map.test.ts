// fuse-overlayfs's id mapping (src/fuse/id-map.ts): with uidmapping/gidmapping the mount shows the
// ids on disk shifted (containers-storage's mount_program for a container in another user
// namespace), maps a chown and a new file's creator back, and shows 65534 for what has no mapping;
// squash_to_* shows one owner for everything and stores what it is given. The same script runs on
// layerfs and, where it is installed, on fuse-overlayfs, whose behaviour the expectations record.
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, chown, mkdir, stat, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { mountFrame } from '../helpers/layerfs-suite.js'
import { LAYERFS_COMMAND as CLI, fuseAvailable, mountFuse } from '../helpers/mount.js'

const fuse = fuseAvailable()
if (!fuse.ok) console.warn(`skipping id mapping tests: ${fuse.reason}`)
if (fuse.ok && !existsSync(resolve('dist/src/cli/main.js'))) throw new Error('build first: npm run build')
const hasFo = (process.env.PATH ?? '').split(':').some((p) => p !== '' && existsSync(`${p}/fuse-overlayfs`))
if (fuse.ok && !hasFo) console.warn('id mapping tests: fuse-overlayfs is not installed, layerfs is checked against the recorded expectations only')


interface Outcome {
  /** Owners shown before any change. */
  shown: string
  /** Owners shown after a chown by root to 100007:100008, and of new files by root and by 100005:100006. */
  after: string
  /** The same objects' owners in the upper layer. */
  disk: string
}

const owners = async (dir: string, names: string[]): Promise<string> =>
  (await Promise.all(names.map(async (n) => { const st = await stat(join(dir, n)); return `${n}=${st.uid}:${st.gid}` }))).join(' ')

describe.skipIf(!fuse.ok)('id mapping', () => {
  const frame = mountFrame('id-map', 0o711) // a test creates a file as another user
  const mounts = frame.mounts
  let n = 0

  async function run(driver: 'layerfs' | 'fuse-overlayfs', options: string): Promise<Outcome> {
    const base = join(frame.dir, `s${++n}`)
    const [lower, upper, work, mnt] = ['lower', 'upper', 'work', 'mnt'].map((d) => join(base, d)) as [string, string, string, string]
    for (const d of [lower, upper, work, mnt]) await mkdir(d, { recursive: true })
    for (const [name, id] of [['a', 0], ['b', 1], ['c', 70000]] as const) {
      await writeFile(join(lower, name), name)
      await chown(join(lower, name), id, id)
    }
    await mkdir(join(lower, 'd'))
    await chown(join(lower, 'd'), 3, 3)
    await chmod(join(lower, 'd'), 0o777)
    const layers = `lowerdir=${lower},upperdir=${upper},workdir=${work},${options}`
    const argv = driver === 'layerfs' ? [CLI, '-o', layers, mnt] : ['fuse-overlayfs', '-o', layers, mnt]
    const handle = mounts.add(await mountFuse(argv, mnt))
    try {
      const shown = await owners(mnt, ['a', 'b', 'c', 'd'])
      await writeFile(join(mnt, 'new-root'), '')
      execFileSync('setpriv', ['--reuid', '100005', '--regid', '100006', '--clear-groups', 'sh', '-c', ': > "$1"', 'sh', join(mnt, 'd/new-user')])
      await chown(join(mnt, 'a'), 100007, 100008)
      const after = await owners(mnt, ['a', 'new-root', 'd/new-user'])
      await mounts.unmount(handle)
      // The upper layer at rest: layerfs may name a chown's copy-up a flush after it answered.
      return { shown, after, disk: await owners(upper, ['a', 'new-root', 'd/new-user']) }
    } finally {
      await mounts.unmount(handle)
    }
  }

  const cases: Array<[string, Outcome]> = [
    ['uidmapping=0:100000:65536,gidmapping=0:100000:65536', {
      shown: 'a=100000:100000 b=100001:100001 c=65534:65534 d=100003:100003',
      after: 'a=100007:100008 new-root=165534:165534 d/new-user=100005:100006',
      disk: 'a=7:8 new-root=65534:65534 d/new-user=5:6',
    }],
    ['uidmapping=0:1000:1:1:110000:65536,gidmapping=0:1000:1:1:110000:65536', {
      shown: 'a=1000:1000 b=110000:110000 c=65534:65534 d=110002:110002',
      after: 'a=175533:175533 new-root=175533:175533 d/new-user=175533:175533',
      disk: 'a=65534:65534 new-root=65534:65534 d/new-user=65534:65534',
    }],
    ['squash_to_root,squash_to_uid=42', {
      shown: 'a=42:0 b=42:0 c=42:0 d=42:0',
      after: 'a=42:0 new-root=42:0 d/new-user=42:0',
      disk: 'a=100007:100008 new-root=0:0 d/new-user=100005:100006',
    }],
  ]

  it.each(cases)('%s', async (options, expected) => {
    const actual = await run('layerfs', options)
    if (hasFo) expect(actual).toEqual(await run('fuse-overlayfs', options))
    expect(actual).toEqual(expected)
  })
})
