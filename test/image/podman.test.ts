/**
 * podman: a committed image loaded by podman (`layerfs commit --format docker` writes what `podman
 * load` takes, and podman's own unpacking of it shows the container's changes), and layerfs as
 * containers-storage's `mount_program`, the way podman uses fuse-overlayfs: a container's rootfs
 * mounted, changed, diffed, unmounted and committed, and the committed image mounted read-only over
 * its two layers. Skipped, with the reason printed, without podman or root.
 */
import { execFile, execFileSync } from 'node:child_process'
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { run as commit } from '../../src/cli/commands/commit.js'
import { mknod } from '../../src/sys/native.js'
import { makeTar, ociLayoutFiles, runCli, tempDir, writeFilesToDir } from './fixtures.js'
import { LAYERFS_COMMAND, readMountInfo } from '../helpers/mount.js'
import { mountsUnder } from '../helpers/tmp.js'

const exec = promisify(execFile)
const hasPodman = await exec('which', ['podman']).then(() => true, () => false)
const root = process.getuid?.() === 0
if (!hasPodman || !root) console.log(`skipping podman test: ${!hasPodman ? 'podman is not installed (apt-get install podman)' : 'needs root'}`)
const hasRunc = await exec('which', ['runc']).then(() => true, () => false)
if (hasPodman && root && !hasRunc) console.log('skipping the podman run test: runc is not installed (apt-get install runc)')

describe.skipIf(!hasPodman || !root)('committed images loaded by podman', () => {
  let t: { dir: string; cleanup: () => Promise<void> }
  let podman: (...args: string[]) => Promise<string>
  beforeAll(async () => {
    t = await tempDir()
    // A private store: vfs needs no mounts, and nothing touches the machine's own images.
    const storage = ['--root', join(t.dir, 'root'), '--runroot', join(t.dir, 'run'), '--storage-driver', 'vfs']
    podman = async (...args) => (await exec('podman', [...storage, ...args], { timeout: 60_000 })).stdout
  })
  afterAll(async () => {
    await podman?.('image', 'unmount', '--all').catch(() => undefined)
    await t?.cleanup()
  })

  it('loads a docker-format commit and shows the upper layer applied', async () => {
    const base = await makeTar([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/hostname', content: 'base\n' },
      { name: 'etc/motd', content: 'hello\n' },
    ])
    const image = await writeFilesToDir(join(t.dir, 'oci'), ociLayoutFiles([{ tag: 'v1', layers: [base] }]))
    const upper = join(t.dir, 'upper')
    await mkdir(join(upper, 'etc'), { recursive: true })
    await writeFile(join(upper, 'etc/hostname'), 'container\n')
    await mknod(join(upper, 'etc/motd'), 0o020000, 0) // a kernel-format whiteout
    const out = join(t.dir, 'image.tar')
    const r = await runCli(commit, ['--upper', upper, '--from', `${image}:v1`, '--tag', 'committed:v2', '-o', out, '--format', 'docker'])
    expect(r.code).toBe(0)
    expect(await podman('load', '-i', out)).toMatch(/committed:v2/)
    const rootfs = (await podman('image', 'mount', 'localhost/committed:v2')).trim()
    expect(await readFile(join(rootfs, 'etc/hostname'), 'utf8')).toBe('container\n')
    await expect(readFile(join(rootfs, 'etc/motd'))).rejects.toMatchObject({ code: 'ENOENT' })
  })
})

describe.skipIf(!hasPodman || !root)('layerfs as podman\'s mount_program', () => {
  let t: { dir: string; cleanup: () => Promise<void> }
  let podman: (...args: string[]) => Promise<string>
  beforeAll(async () => {
    t = await tempDir()
    // A private overlay store whose mounts go through layerfs, as `mount_program` in storage.conf.
    const storage = [
      '--root', join(t.dir, 'root'), '--runroot', join(t.dir, 'run'), '--storage-driver', 'overlay',
      '--storage-opt', `overlay.mount_program=${LAYERFS_COMMAND}`,
    ]
    podman = async (...args) => (await exec('podman', [...storage, ...args], { timeout: 60_000 })).stdout
  })
  afterAll(async () => {
    if (!t) return
    await podman('umount', '--all').catch(() => undefined)
    await podman('image', 'umount', '--all').catch(() => undefined)
    await podman('rm', '--all', '--force').catch(() => undefined)
    // Whatever a failed step left mounted (a layerfs mount, or the store's own bind mount) is taken
    // down before the store is removed.
    for (const mnt of mountsUnder(t.dir).reverse()) {
      try { execFileSync('umount', [mnt], { timeout: 10_000 }) } catch { execFileSync('umount', ['-l', mnt], { timeout: 10_000 }) }
    }
    await rm(join(t.dir, 'root'), { recursive: true, force: true }).catch(() => undefined)
    await t.cleanup()
  })

  /** The filesystem type mounted at `mnt`, or undefined. */
  const fsTypeAt = (mnt: string): string | undefined => readMountInfo().find((m) => m.mountPoint === mnt)?.fstype

  it('mounts a container rootfs, records its changes, unmounts and commits them', async () => {
    const rootfs = await makeTar([
      { name: 'bin/', type: 'directory' },
      { name: 'bin/sh', content: 'shell\n', mode: 0o755 },
      { name: 'bin/cat', content: 'cat\n', mode: 0o755 },
      { name: 'etc/', type: 'directory' },
      { name: 'etc/motd', content: 'base\n' },
    ])
    const tarball = join(t.dir, 'rootfs.tar')
    await writeFile(tarball, rootfs)
    await podman('import', tarball, 'localhost/tiny:1')
    const ctr = (await podman('create', 'localhost/tiny:1', '/bin/sh')).trim()

    const merged = (await podman('mount', ctr)).trim()
    expect(fsTypeAt(merged)).toBe('fuse.layerfs')
    expect(await readFile(join(merged, 'etc/motd'), 'utf8')).toBe('base\n')
    await writeFile(join(merged, 'etc/added'), 'new\n')
    await writeFile(join(merged, 'etc/motd'), 'changed\n')
    await rm(join(merged, 'bin/cat'))
    const diff = (await podman('diff', ctr)).trim().split('\n').sort()
    expect(diff).toEqual(['A /etc/added', 'C /bin', 'C /etc', 'C /etc/motd', 'D /bin/cat'])
    await podman('umount', ctr)
    expect(fsTypeAt(merged)).toBeUndefined()

    await podman('commit', '--quiet', ctr, 'localhost/tiny:2')
    const image = (await podman('image', 'mount', 'localhost/tiny:2')).trim()
    expect(fsTypeAt(image)).toBe('fuse.layerfs')
    expect((await readdir(join(image, 'bin'))).sort()).toEqual(['sh'])
    expect((await readdir(join(image, 'etc'))).sort()).toEqual(['added', 'motd'])
    expect(await readFile(join(image, 'etc/motd'), 'utf8')).toBe('changed\n')
    await podman('image', 'umount', 'localhost/tiny:2')
    expect(fsTypeAt(image)).toBeUndefined()
  }, 120_000)

  it('shows the layers of a container in another user namespace (idmapped lowers, detached after the mount)', async () => {
    // containers-storage shows the lower layers to the mount program through idmapped mounts that it
    // detaches once the program returns: layerfs holds such a layer open (src/layers/held-root.ts).
    const rootfs = await makeTar([
      { name: 'bin/', type: 'directory' },
      { name: 'bin/sh', content: 'not really a shell\n', mode: 0o755 },
      { name: 'etc/motd', content: 'mapped\n' },
    ])
    const tarball = join(t.dir, 'mapped.tar')
    await writeFile(tarball, rootfs)
    await podman('import', tarball, 'localhost/mapped:1')
    const ctr = (await podman('create', '--uidmap', '0:100000:65536', '--gidmap', '0:100000:65536', 'localhost/mapped:1', '/bin/sh')).trim()
    const merged = (await podman('mount', ctr)).trim()
    try {
      expect(fsTypeAt(merged)).toBe('fuse.layerfs')
      expect((await readdir(merged)).sort()).toEqual(['bin', 'etc'])
      expect(await readFile(join(merged, 'etc/motd'), 'utf8')).toBe('mapped\n')
      await writeFile(join(merged, 'etc/motd'), 'changed\n')
      expect(await readFile(join(merged, 'etc/motd'), 'utf8')).toBe('changed\n')
      // Shown as the container's root owns them; the copy in the upper layer keeps the image's ids,
      // as fuse-overlayfs stores them.
      for (const name of ['etc', 'etc/motd', 'bin/sh']) {
        const st = await stat(join(merged, name))
        expect([name, st.uid, st.gid]).toEqual([name, 100000, 100000])
      }
      const upper = await stat(join(dirname(merged), 'diff/etc/motd'))
      expect([upper.uid, upper.gid]).toEqual([0, 0])
    } finally {
      await podman('umount', ctr)
      await podman('rm', ctr)
    }
    expect(fsTypeAt(merged)).toBeUndefined()
  }, 120_000)

  /** An image of /bin/sh (dash) and the libraries it loads, from the host (a container executes them
   *  from the layerfs mount), and /etc/motd; imported once. */
  let shell: Promise<string> | undefined
  const shellImage = (): Promise<string> => (shell ??= (async () => {
    const libs = execFileSync('ldd', ['/bin/dash'], { encoding: 'utf8' }).match(/\/\S+/g) ?? []
    const files = await Promise.all(['/bin/dash', ...libs].map(async (path) => ({ path, content: await readFile(path) })))
    const rootfs = await makeTar([
      ...files.map((f) => ({ name: (f.path === '/bin/dash' ? '/bin/sh' : f.path).slice(1), content: f.content, mode: 0o755 })),
      { name: 'etc/motd', content: 'base\n' },
    ])
    const tarball = join(t.dir, 'shell.tar')
    await writeFile(tarball, rootfs)
    await podman('import', tarball, 'localhost/shell:1')
    return 'localhost/shell:1'
  })())
  // Lower limits than podman's defaults, which may exceed this machine's hard limits; no network,
  // and cgroupfs: the runtime's setup is not what these tests are about.
  const runtime = ['--runtime', 'runc', '--cgroup-manager', 'cgroupfs']
  const limits = ['--network', 'none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024']

  it.skipIf(!hasRunc)('runs a container from a layerfs rootfs (runc)', async () => {
    const out = await podman(
      ...runtime, 'run', '--rm', ...limits, await shellImage(),
      '/bin/sh', '-c', [
        'read l < /etc/motd; echo "$l"; echo changed > /etc/motd; read l < /etc/motd; echo "$l"',
        // What the container's / is: the rest of its mountinfo line (fstype after the ' - ').
        'while read -r id parent dev root mnt rest; do [ "$mnt" = / ] && echo "$rest"; done < /proc/self/mountinfo; true',
      ].join('; '),
    )
    const [first, second, rootMount] = out.split('\n')
    expect([first, second]).toEqual(['base', 'changed'])
    expect(rootMount).toMatch(/ - fuse\.layerfs /)
    // The container's rootfs was unmounted with it.
    expect(mountsUnder(t.dir)).toEqual([])
  }, 120_000)

  it.skipIf(!hasRunc)('runs a container in another user namespace: its root owns the image\'s files (--uidmap)', async () => {
    // containers-storage shows the layers through idmapped mounts and passes uidmapping too: read
    // through both, the files were nobody's, and runc could not create /etc/hosts in the rootfs.
    const out = await podman(
      ...runtime, 'run', '--rm', ...limits, '--uidmap', '0:100000:65536', '--gidmap', '0:100000:65536', await shellImage(),
      '/bin/sh', '-c', [
        'read l < /etc/motd; echo "$l"; echo changed > /etc/motd; read l < /etc/motd; echo "$l"',
        // test -O: owned by the effective user, the container's root.
        'for f in /etc/motd /bin/sh /etc; do [ -O $f ] && echo "$f owned" || echo "$f not owned"; done',
      ].join('; '),
    )
    expect(out.trim().split('\n')).toEqual(['base', 'changed', '/etc/motd owned', '/bin/sh owned', '/etc owned'])
    expect(mountsUnder(t.dir)).toEqual([])
  }, 120_000)
})
