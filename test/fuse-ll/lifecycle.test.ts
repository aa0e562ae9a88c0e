// How a low-level session ends: unmount() from the daemon, fusermount3 -u from outside, a killed
// daemon, and mounts that fail up front. Every test cleans up what it mounted (afterEach).
import { existsSync } from 'node:fs'
import { mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { Session } from '../../src/sys/fuse-ll.js'
import { cleanupAll, exitsWithin, forceUnmount, mountOf, sh, startDaemon, unavailable } from './harness.js'

const skip = unavailable()
if (skip) console.log(`skipping fuse-ll lifecycle tests: ${skip}`)

describe.skipIf(skip !== undefined)('fuse-ll session lifecycle', { timeout: 30_000 }, () => {
  afterEach(async () => {
    await cleanupAll()
  }, 30_000)

  it('ends the daemon and removes the mount when unmount() is called', async () => {
    const d = await startDaemon()
    await writeFile(join(d.mnt, 'f'), 'x')
    expect(mountOf(d.mnt)?.fstype).toBe('fuse.memfs')
    d.send('unmount')
    const exit = await exitsWithin(d, 5000)
    expect(exit).toEqual({ code: 0, signal: null })
    expect(d.stdout()).toContain('exit unmount() called')
    expect(mountOf(d.mnt)).toBeUndefined()
  })

  it('still ends when unmount() is called while a file in the mount is open', async () => {
    const d = await startDaemon()
    await writeFile(join(d.mnt, 'held'), 'x')
    const h = await open(join(d.mnt, 'held'), 'r')
    try {
      d.send('unmount')
      expect(await exitsWithin(d, 5000)).toEqual({ code: 0, signal: null })
      expect(mountOf(d.mnt)).toBeUndefined()
      // the connection is gone: the open file no longer works
      await expect(h.read(Buffer.alloc(1), 0, 1, 0)).rejects.toThrow()
    } finally {
      await h.close().catch(() => undefined)
    }
  })

  it('unmounts cleanly when the daemon calls process.exit() while mounted', async () => {
    const d = await startDaemon()
    await writeFile(join(d.mnt, 'f'), 'x')
    d.send('process-exit')
    expect(await exitsWithin(d, 5000)).toEqual({ code: 3, signal: null })
    expect(mountOf(d.mnt)).toBeUndefined()
  })

  it('ends the daemon with onExit when fusermount3 -u unmounts from outside', async () => {
    const d = await startDaemon()
    expect((await stat(d.mnt)).isDirectory()).toBe(true)
    const r = sh('fusermount3', ['-u', d.mnt])
    expect(r.code, r.out).toBe(0)
    expect(await exitsWithin(d, 5000)).toEqual({ code: 0, signal: null })
    expect(d.stdout()).toMatch(/exit unmounted/)
  })

  it('leaves a dead mount that fusermount3 -uz clears when the daemon is killed with SIGKILL', async () => {
    const d = await startDaemon()
    d.child.kill('SIGKILL')
    expect(await exitsWithin(d, 5000)).toEqual({ code: null, signal: 'SIGKILL' })
    expect(mountOf(d.mnt)).toBeDefined()
    await expect(stat(join(d.mnt, 'x'))).rejects.toMatchObject({ code: 'ENOTCONN' })
    forceUnmount(d.mnt)
    expect(mountOf(d.mnt)).toBeUndefined()
  })

  it('mounts a second session on the same path after the first ended', async () => {
    const d1 = await startDaemon()
    d1.send('unmount')
    expect(await exitsWithin(d1, 5000)).toEqual({ code: 0, signal: null })
    const d2 = await startDaemon({}, d1.mnt)
    await writeFile(join(d2.mnt, 'again'), 'y')
    expect(await readFile(join(d2.mnt, 'again'), 'utf8')).toBe('y')
  })

  it('refuses to mount with a clear error when the mount point is missing or not a directory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'layerfs-fll-bad-'))
    try {
      const s = new Session(() => undefined, () => undefined)
      expect(() => s.mount(join(dir, 'missing'), { fsname: 'x', subtype: 'x', allowOther: false, defaultPermissions: false, readOnly: false }))
        .toThrow(/cannot mount on .*missing: No such file or directory/)
      await writeFile(join(dir, 'file'), '')
      expect(() => s.mount(join(dir, 'file'), { fsname: 'x', subtype: 'x', allowOther: false, defaultPermissions: false, readOnly: false }))
        .toThrow(/Not a directory/)
      s.unmount() // never mounted: a no-op
      expect(mountOf(join(dir, 'file'))).toBeUndefined()
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('mounts read-only when readOnly is set', async () => {
    const d = await startDaemon({ readOnly: true })
    await expect(writeFile(join(d.mnt, 'f'), 'x')).rejects.toMatchObject({ code: 'EROFS' })
    expect(existsSync(join(d.mnt, 'f'))).toBe(false)
  })
})
