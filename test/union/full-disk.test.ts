// A full disk during copy-up loses nothing: the copy fails with ENOSPC, the upper layer shows no
// partial file, the work directory keeps no leftovers, and the lower file is untouched.
import { execFileSync } from 'node:child_process'
import { constants } from 'node:fs'
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { Union } from '../../src/union/union.js'
import { makeTempDir } from '../helpers/tmp.js'
import { rm } from 'node:fs/promises'

const root = process.getuid?.() === 0
if (!root) console.warn('skipping full-disk tests: mounting a small tmpfs needs root')

describe.skipIf(!root)('copy-up on a full disk', () => {
  let dir = ''
  let small = ''
  afterEach(async () => {
    if (small) {
      // Left mounted by a failure: the union may still hold the upper layer open.
      try { execFileSync('umount', [small], { timeout: 10_000 }) } catch { execFileSync('umount', ['-l', small], { timeout: 10_000 }) }
      small = ''
    }
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  /** An upper and a work directory on a 1 MiB tmpfs mounted in `dir` (unmounted after each test). */
  async function smallDisk(): Promise<{ upper: string; work: string }> {
    small = join(dir, 'tmpfs')
    await mkdir(small)
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'layerfs-test', small], { timeout: 10_000 })
    const upper = join(small, 'upper')
    const work = join(small, 'work')
    await mkdir(upper)
    await mkdir(work)
    return { upper, work }
  }

  it.each([false, true])('fails with ENOSPC and leaves no partial file anywhere (flushBehind %s)', async (flushBehind) => {
    dir = await makeTempDir('enospc')
    const lower = join(dir, 'lower')
    await mkdir(lower)
    const big = Buffer.alloc(4 << 20, 7)
    await writeFile(join(lower, 'big'), big)
    await writeFile(join(lower, 'small'), 'fits')
    const { upper, work } = await smallDisk()
    const union = await Union.open({ lowers: [lower], upper, work, flushBehind })

    await expect(union.open('/big', constants.O_WRONLY)).rejects.toMatchObject({ code: 'ENOSPC' })
    expect(await readdir(upper)).toEqual([])
    expect(await readdir(join(work, 'work'))).toEqual([])
    expect((await readFile(join(lower, 'big'))).equals(big)).toBe(true)
    expect((await union.getattr('/big')).size).toBe(4 << 20)

    // The union goes on working: a file that fits still copies up.
    const fh = await union.open('/small', constants.O_WRONLY)
    await union.release(fh)
    await union.close()
    expect(await readFile(join(upper, 'small'), 'utf8')).toBe('fits')
    // Closed, the union holds nothing there: the filesystem unmounts without -l.
    execFileSync('umount', [small], { timeout: 10_000 })
    small = ''
  })

  it.each([false, true])('a directory rename (redirect_dir) whose tree does not fit fails with ENOSPC and changes nothing shown (flushBehind %s)', async (flushBehind) => {
    dir = await makeTempDir('enospc-dir')
    const lower = join(dir, 'lower')
    await mkdir(join(lower, 'd', 'sub'), { recursive: true })
    await mkdir(join(lower, 'fits', 'sub'), { recursive: true })
    const big = Buffer.alloc(4 << 20, 7)
    await writeFile(join(lower, 'd', 'a'), 'first')
    await writeFile(join(lower, 'd', 'sub', 'big'), big)
    await writeFile(join(lower, 'd', 'z'), 'last')
    await writeFile(join(lower, 'fits', 'sub', 'f'), 'small')
    const { upper, work } = await smallDisk()
    const union = await Union.open({ lowers: [lower], upper, work, redirectDir: true, flushBehind })
    await union.unlink('/d/a')

    await expect(union.rename('/d', '/e')).rejects.toMatchObject({ code: 'ENOSPC' })
    expect((await union.readdir('/')).sort()).toEqual(['d', 'fits'])
    expect((await union.readdir('/d')).sort()).toEqual(['sub', 'z'])
    expect((await union.readdir('/d/sub')).sort()).toEqual(['big'])
    expect((await readFile(join(lower, 'd', 'sub', 'big'))).equals(big)).toBe(true)

    // A tree that fits moves, whole, and shows what it showed.
    await union.rename('/fits', '/moved')
    expect((await union.readdir('/')).sort()).toEqual(['d', 'moved'])
    expect(await readFile(join(upper, 'moved', 'sub', 'f'), 'utf8')).toBe('small')
    await union.close()
    execFileSync('umount', [small], { timeout: 10_000 })
    small = ''
  })
})
