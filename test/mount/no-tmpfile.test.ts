// Copy-up where the upper filesystem has no O_TMPFILE: copies are built under a temporary name in
// the work directory and renamed into place (Stager, and create_file in native/copy-up.c). The
// upper and work directories here live on a layerfs mount through the fuse-native bridge (libfuse 2
// knows no tmpfile request), so the kernel answers O_TMPFILE there with EOPNOTSUPP; the union under
// test runs in this process.
import { closeSync, constants, existsSync, openSync } from 'node:fs'
import { mkdir, readFile, readdir, stat, utimes, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { Union } from '../../src/union/union.js'
import { fuseAvailable } from '../helpers/mount.js'
import { layerfsSuite } from '../helpers/layerfs-suite.js'

const fuse = fuseAvailable()
if (!fuse.ok) console.warn(`skipping no-O_TMPFILE tests: ${fuse.reason}`)
if (fuse.ok && !existsSync(resolve('dist/src/cli/main.js'))) throw new Error('build first: npm run build')

const MTIME = 1_500_000_000
/** open(2)'s O_TMPFILE on Linux (__O_TMPFILE | O_DIRECTORY); node:fs does not export it. */
const O_TMPFILE = 0o20000000 | constants.O_DIRECTORY

describe.skipIf(!fuse.ok)('copy-up without O_TMPFILE', () => {
  const suite = layerfsSuite('no-tmpfile')

  it.each([
    [true, false], [false, false],
    // A chown's copy is made by name and flushed before it is (no unnamed copy to defer).
    [true, true],
  ])('copies by name and renames into place (fsync %s, flushBehind %s)', async (fsync, flushBehind) => {
    const { mnt } = await suite.stack(',bridge=fuse-native', async () => undefined)
    const lower = join(suite.dir, `lower-${fsync}-${flushBehind}`)
    const upper = join(mnt, 'upper')
    const work = join(mnt, 'work')
    for (const d of [lower, upper, work]) await mkdir(d, { recursive: true })
    const big = Buffer.alloc(1 << 20, 0x5a)
    await writeFile(join(lower, 'small'), 'small lower')
    await writeFile(join(lower, 'big'), big)
    await writeFile(join(lower, 'owned'), 'owned lower')
    for (const name of ['small', 'big', 'owned']) await utimes(join(lower, name), MTIME, MTIME)
    // The premise: this upper filesystem makes no unnamed files (it does on the host's ext4 or tmpfs).
    expect(() => closeSync(openSync(suite.dir, O_TMPFILE | constants.O_WRONLY, 0o600))).not.toThrow()
    expect(() => openSync(work, O_TMPFILE | constants.O_WRONLY, 0o600)).toThrow(/ENOTSUP|EOPNOTSUPP/)

    const union = await Union.open({ lowers: [lower], upper, work, fsync, flushBehind })
    // With flushBehind, the chown's copy is the first: it meets the refusal of O_TMPFILE itself.
    if (flushBehind) await union.chown('/owned', 1000, 1001)
    // A small copy made on the calling thread, a big one on the thread pool, and a chown's copy.
    for (const name of ['small', 'big']) {
      const fh = await union.open(`/${name}`, constants.O_WRONLY | constants.O_APPEND)
      await union.write(fh, Buffer.from('+'), 1, 0)
      await union.release(fh)
    }
    if (!flushBehind) await union.chown('/owned', 1000, 1001)
    expect(union.stats().deferredCopies).toBe(0)

    expect(await readFile(join(upper, 'small'), 'utf8')).toBe('small lower+')
    expect((await readFile(join(upper, 'big'))).equals(Buffer.concat([big, Buffer.from('+')]))).toBe(true)
    expect(await readFile(join(upper, 'owned'), 'utf8')).toBe('owned lower')
    const owned = await stat(join(upper, 'owned'))
    expect([owned.uid, owned.gid, owned.mtimeMs]).toEqual([1000, 1001, MTIME * 1000])
    expect((await union.getattr('/owned')).uid).toBe(1000)
    // Nothing is left behind in the work directory's staging area.
    expect(await readdir(join(work, 'work'))).toEqual([])
  })
})
