// Proves the mount helpers themselves: kernel overlay (incl. read-only with one lower), FUSE mounts through a
// command that returns once mounted (fuse-overlayfs as the test daemon), failure reporting, cleanup on error,
// and unmounting a mount whose daemon is stuck.
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { fuseAvailable, isMounted, mountFuse, mountOverlay, MountSet, overlayAvailable, unmount, withMount } from './mount.js'
import { TempDirs, removeTempDir } from './tmp.js'

/** A process that exists and has not exited (zombies count as exited). */
function alive(pid: number): boolean {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return !/^[ZX]/.test(st.slice(st.lastIndexOf(')') + 2))
  } catch {
    return false
  }
}

const fuse = fuseAvailable()
const ovl = overlayAvailable()
const haveFuseOverlayfs = (process.env.PATH ?? '').split(':').some((p) => p !== '' && existsSync(`${p}/fuse-overlayfs`))
const skip = !fuse.ok ? fuse.reason : !ovl.ok ? ovl.reason : undefined
if (skip !== undefined) console.warn(`[mount helpers] skipped: ${skip}`)

describe.skipIf(skip !== undefined)('mount helpers', () => {
  beforeAll(() => {
    // the test daemon; scripts/setup-system.sh installs it
    if (!haveFuseOverlayfs) throw new Error('fuse-overlayfs is not installed (run `npm run setup`): it is the FUSE daemon these tests mount')
  })
  const tmp = new TempDirs()
  const mounts = new MountSet()
  afterEach(async () => {
    await mounts.unmountAll()
    await tmp.removeAll()
  })

  async function layers(): Promise<{ base: string; lower: string; upper: string; work: string; mnt: string }> {
    const base = await tmp.make('helpers')
    const d = { base, lower: join(base, 'L'), upper: join(base, 'U'), work: join(base, 'W'), mnt: join(base, 'M') }
    for (const p of [d.lower, d.upper, d.work, d.mnt]) await mkdir(p)
    await writeFile(join(d.lower, 'f'), 'lower')
    return d
  }

  it('mounts and unmounts kernel overlayfs, read-write and read-only with a single lower', async () => {
    const d = await layers()
    const h = mounts.add(await mountOverlay({ lowers: [d.lower], upper: d.upper, work: d.work, mnt: d.mnt }))
    expect(h.kind).toBe('overlay')
    await writeFile(join(d.mnt, 'g'), 'new')
    await mounts.unmount(h)
    expect(isMounted(d.mnt)).toBe(false)
    expect(await readFile(join(d.upper, 'g'), 'utf8')).toBe('new')

    const ro = mounts.add(await mountOverlay({ lowers: [d.lower], mnt: d.mnt }))
    expect(ro.extraDirs.length).toBe(1)
    expect(await readdir(d.mnt)).toEqual(['f'])
    await expect(writeFile(join(d.mnt, 'x'), 'x')).rejects.toMatchObject({ code: 'EROFS' })
    await mounts.unmount(ro)
    expect(ro.extraDirs).toEqual([])
  })

  it('mounts a FUSE driver, finds its daemon, and unmounts it', async () => {
    const d = await layers()
    const opts = `lowerdir=${d.lower},upperdir=${d.upper},workdir=${d.work}`
    const h = mounts.add(await mountFuse(['fuse-overlayfs', '-o', opts, d.mnt], d.mnt, { timeoutMs: 10_000 }))
    expect(h.fstype).toMatch(/^fuse/)
    expect(h.dev).toMatch(/^\d+:\d+$/)
    expect(h.daemonPids.length).toBe(1)
    expect(await readFile(join(d.mnt, 'f'), 'utf8')).toBe('lower')
    await mounts.unmount(h)
    expect(isMounted(d.mnt)).toBe(false)
    expect(alive(h.daemonPids[0] as number)).toBe(false)
  })

  it('reports a failing mount command with its output', async () => {
    const d = await layers()
    await expect(mountFuse(['fuse-overlayfs', '-o', `lowerdir=${d.base}/nope`, d.mnt], d.mnt)).rejects.toThrow(/FUSE mount failed: .*exit [1-9]/s)
    await expect(mountFuse(['true'], d.mnt)).rejects.toThrow(/exited 0 but .* is not a FUSE mount/)
    await expect(mountFuse(['sleep', '5'], d.mnt, { timeoutMs: 300 })).rejects.toThrow(/timed out/)
    expect(isMounted(d.mnt)).toBe(false)
  })

  it('withMount unmounts when the body throws; removeTempDir refuses a live mount', async () => {
    const d = await layers()
    const opts = `lowerdir=${d.lower},upperdir=${d.upper},workdir=${d.work}`
    await expect(
      withMount(
        () => mountFuse(['fuse-overlayfs', '-o', opts, d.mnt], d.mnt),
        async (h) => {
          await expect(removeTempDir(d.base)).rejects.toThrow(/still mounted/)
          expect(isMounted(h.mnt)).toBe(true)
          throw new Error('boom')
        },
      ),
    ).rejects.toThrow('boom')
    expect(isMounted(d.mnt)).toBe(false)
  })

  it('unmounts a mount whose daemon is stuck (stopped), with a request hanging on it', async () => {
    const d = await layers()
    const opts = `lowerdir=${d.lower},upperdir=${d.upper},workdir=${d.work}`
    const h = mounts.add(await mountFuse(['fuse-overlayfs', '-o', opts, d.mnt], d.mnt))
    const daemon = h.daemonPids[0] as number
    process.kill(daemon, 'SIGSTOP')
    // a request that cannot be answered while the daemon is stopped
    const hanging = spawn('stat', [join(d.mnt, 'never-looked-up')], { stdio: 'ignore' })
    const done = new Promise<number | null>((r) => hanging.on('exit', (code) => r(code)))
    await new Promise((r) => setTimeout(r, 200))
    const t0 = Date.now()
    await unmount(h, { timeoutMs: 2_000 })
    expect(isMounted(d.mnt)).toBe(false)
    expect(Date.now() - t0).toBeLessThan(20_000)
    // the hanging request is released (ENOTCONN or similar) once the connection is gone
    expect(await done).not.toBe(0)
    expect(alive(daemon)).toBe(false)
  }, 30_000)
})
