// FUSE_HANDLE_KILLPRIV_V2 (native/fuse-ll-passthrough.c, LowLevelBridge#clearSetid): the daemon clears
// setuid/setgid itself, so the kernel stops asking for security.capability before every write and for
// the attributes before every chown. What it clears, and when, is compared with kernel overlayfs in the
// differential suite ('unprivileged writers'); these tests check the requests saved and that a setuid
// file never passes through (a passthrough write would leave its bits to no one).
import { existsSync } from 'node:fs'
import { chmod, chown, mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { fuseAvailable, runCmd } from '../helpers/mount.js'
import { delta, statsOf } from '../helpers/daemon-stats.js'
import { layerfsSuite } from '../helpers/layerfs-suite.js'

const fuse = fuseAvailable()
if (!fuse.ok) console.warn(`skipping killpriv mount tests: ${fuse.reason}`)
if (fuse.ok && !existsSync(resolve('dist/src/cli/main.js'))) throw new Error('build first: npm run build')

describe.skipIf(!fuse.ok)('killpriv v2', () => {
  const suite = layerfsSuite('killpriv', 0o711) // a test writes as another user

  /** A mount over one lower layer holding `f` (mode 0644); undefined, with the reason printed, when
   *  this kernel does not grant killpriv v2. */
  async function mountStack(): Promise<string | undefined> {
    const { mnt } = await suite.stack('', (lower) => writeFile(join(lower, 'f'), 'lower'))
    if ((await statsOf(mnt)).killpriv) return mnt
    console.warn('killpriv v2 test skipped: the kernel did not grant FUSE_HANDLE_KILLPRIV_V2 (Linux 5.11+)')
    return undefined
  }

  it('asks no security.capability for each write and no attributes before a chown', async (ctx) => {
    const mnt = await mountStack()
    if (mnt === undefined) return ctx.skip()
    const fh = await open(join(mnt, 'new'), 'w')
    const before = await statsOf(mnt)
    try {
      for (let i = 0; i < 50; i++) await fh.write(`line ${i}\n`)
    } finally {
      await fh.close()
    }
    await stat(join(mnt, 'f')) // looked up and its attributes cached before the chown is counted
    const middle = await statsOf(mnt)
    await chown(join(mnt, 'f'), 1000, 1000)
    const after = await statsOf(mnt)
    // The first write asks once (a new inode is not known to be free of privileges); then none.
    expect(delta(before, middle, 'getxattr')).toBeLessThanOrEqual(3)
    expect(delta(middle, after, 'getattr')).toBe(0)
    expect(delta(middle, after, 'setattr')).toBe(1)
    expect((await stat(join(mnt, 'f'))).uid).toBe(1000)
  })

  it('never passes a setuid or setgid file through, and clears its bits after a user write', async (ctx) => {
    const mnt = await mountStack()
    if (mnt === undefined) return ctx.skip()
    const plain = join(mnt, 'plain')
    const setuid = join(mnt, 'setuid')
    await writeFile(plain, 'p')
    await writeFile(setuid, 's')
    await chmod(setuid, 0o4777)
    const before = await statsOf(mnt)
    for (const p of [plain, setuid]) await (await open(p, 'a')).close()
    const after = await statsOf(mnt)
    expect(after.passedThrough - before.passedThrough).toBe(1) // the plain one only
    const r = await runCmd('setpriv', ['--reuid=1000', '--regid=1000', '--clear-groups', 'sh', '-c', `printf x >> '${setuid}'`])
    expect(r.code, r.stderr).toBe(0)
    expect((await stat(setuid)).mode & 0o7777).toBe(0o777)
    expect(delta(after, await statsOf(mnt), 'write')).toBe(1) // the write reached the daemon
  })

  it('keeps another user\'s writable file with the daemon: a setuid bit set while it is open goes at its next write', async (ctx) => {
    const mnt = await mountStack()
    if (mnt === undefined) return ctx.skip()
    const file = join(mnt, 'shared')
    await writeFile(file, 'base\n')
    await chmod(file, 0o666)
    // The writer opens the file, says so, and writes once told to; root makes the file setuid between.
    const signals = await mkdtemp(join(tmpdir(), 'killpriv-'))
    await chmod(signals, 0o777)
    try {
      const before = await statsOf(mnt)
      const script = `exec 3>>'${file}'; : > '${signals}/opened'; while [ ! -e '${signals}/go' ]; do sleep 0.01; done; printf x >&3`
      const writer = runCmd('setpriv', ['--reuid=1000', '--regid=1000', '--clear-groups', 'sh', '-c', script])
      for (let i = 0; i < 500 && !existsSync(join(signals, 'opened')); i++) await new Promise((r) => setTimeout(r, 10))
      await chmod(file, 0o4777)
      await writeFile(join(signals, 'go'), '')
      const r = await writer
      expect(r.code, r.stderr).toBe(0)
      // As the kernel does for a write by a user without CAP_FSETID (overlayfs gives 0777 too).
      expect((await stat(file)).mode & 0o7777).toBe(0o777)
      expect(await readFile(file, 'utf8')).toBe('base\nx')
      const after = await statsOf(mnt)
      expect(after.passedThrough - before.passedThrough).toBe(0)
      expect(delta(before, after, 'write')).toBe(1)
    } finally {
      await rm(signals, { recursive: true, force: true })
    }
  })
})
