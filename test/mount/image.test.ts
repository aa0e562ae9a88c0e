// An image file mounted end to end: import into the store, mount through the daemon, change it,
// and commit the upper layer back into an image that reads back with the changes.
import { execFile } from 'node:child_process'
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { MountSet, findMount, fuseAvailable, isMounted } from '../helpers/mount.js'
import { makeTempDir, removeTempDir } from '../helpers/tmp.js'
import { makeTar, ociLayoutFiles, writeFilesToDir } from '../image/fixtures.js'

const CLI = resolve('bin/layerfs.js')
const fuse = fuseAvailable()
if (!fuse.ok) console.warn(`skipping image mount tests: ${fuse.reason}`)

function layerfs(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr })
    })
  })
}

describe.skipIf(!fuse.ok)('layerfs mount IMAGE', () => {
  const mounts = new MountSet()
  let dir: string
  let image: string
  let store: string

  beforeAll(async () => {
    dir = await makeTempDir('image-mount')
    store = join(dir, 'store')
    const base = await makeTar([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/motd', content: 'base motd\n' },
      { name: 'etc/hostname', content: 'base\n' },
      { name: 'srv/', type: 'directory' },
      { name: 'srv/old.txt', content: 'old\n' },
    ])
    const app = await makeTar([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/.wh.motd', content: '' },
      { name: 'srv/', type: 'directory' },
      { name: 'srv/.wh..wh..opq', content: '' },
      { name: 'srv/new.txt', content: 'new\n' },
    ])
    image = await writeFilesToDir(join(dir, 'oci'), ociLayoutFiles([{ tag: 'v1', layers: [base, app] }]))
  })
  afterEach(async () => {
    await mounts.unmountAll()
  })
  afterAll(async () => {
    await mounts.unmountAll()
    await removeTempDir(dir)
  })

  async function mountImage(args: string[], mnt: string): Promise<void> {
    const r = await layerfs(['mount', '--store', store, ...args, `${image}:v1`, mnt])
    if (isMounted(mnt)) {
      const m = findMount(mnt)
      mounts.add({ mnt, kind: 'fuse', fstype: m?.fstype ?? 'fuse', dev: m?.dev ?? '0:0', daemonPids: [], extraDirs: [], unmounted: false })
    }
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
  }

  it('mounts the image read-only with its whiteouts applied', async () => {
    const mnt = join(dir, 'ro')
    await mkdir(mnt)
    await mountImage([], mnt)
    expect(await readdir(join(mnt, 'etc'))).toEqual(['hostname'])
    expect(await readdir(join(mnt, 'srv'))).toEqual(['new.txt'])
    await expect(writeFile(join(mnt, 'etc/hostname'), 'x')).rejects.toMatchObject({ code: 'EROFS' })
    // An image's setuid programs and device nodes stay inert for whoever looks at it.
    expect(findMount(mnt)?.options.split(',')).toEqual(expect.arrayContaining(['nosuid', 'nodev']))
  })

  it('honours setuid bits of an image when asked (-o suid)', async () => {
    const mnt = join(dir, 'suid')
    await mkdir(mnt)
    await mountImage(['-o', 'suid'], mnt)
    expect(findMount(mnt)?.options.split(',')).not.toContain('nosuid')
    expect(findMount(mnt)?.options.split(',')).toContain('nodev')
  })

  it('takes an upper layer and commits it back as a new image', async () => {
    const [mnt, upper, work] = ['rw', 'upper', 'work'].map((d) => join(dir, d)) as [string, string, string]
    for (const d of [mnt, upper, work]) await mkdir(d)
    await mountImage(['--upper', upper, '--work', work], mnt)
    await writeFile(join(mnt, 'etc/hostname'), 'container\n')
    await rm(join(mnt, 'srv/new.txt'))
    await writeFile(join(mnt, 'added'), 'a\n')
    await mounts.unmountAll()

    const diff = await layerfs(['diff', '--from', `${image}:v1`, '--store', store, upper])
    expect(diff.code).toBe(0)
    expect(diff.stdout.trim().split('\n').sort()).toEqual(['A /added', 'C /etc', 'C /etc/hostname', 'C /srv', 'D /srv/new.txt'].sort())

    const out = join(dir, 'committed')
    const commit = await layerfs(['commit', '--upper', upper, '--from', `${image}:v1`, '--tag', 'v2', '-o', out])
    expect(commit.stderr).toBe('')
    expect(commit.code).toBe(0)
    const cat = await layerfs(['cat', '--store', store, `${out}:v2`, '/etc/hostname'])
    expect(cat.stdout).toBe('container\n')
    const ls = await layerfs(['ls', '--store', store, `${out}:v2`, '/srv'])
    expect(ls.stdout.trim()).toBe('')
    expect(await readFile(join(upper, 'added'), 'utf8')).toBe('a\n')
  })
})
