// ioctls on files of the mount: the file-attribute ones (lsattr, chattr) reach JS, which answers
// them from the visible file and sets them on its upper copy; any other is refused in C (ENOTTY),
// which is what isatty(3) asks of every file Python opens. The differential suite compares both
// answers with kernel overlayfs; these tests check where they are made.
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { fuseAvailable, runCmd } from '../helpers/mount.js'
import { delta, statsOf } from '../helpers/daemon-stats.js'
import { layerfsSuite } from '../helpers/layerfs-suite.js'

const fuse = fuseAvailable()
if (!fuse.ok) console.warn(`skipping ioctl mount tests: ${fuse.reason}`)
if (fuse.ok && !existsSync(resolve('dist/src/cli/main.js'))) throw new Error('build first: npm run build')

/** Python's isatty() of `path`, opened for reading: the TCGETS ioctl it makes, and its answer. */
const ISATTY = 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); print(os.isatty(fd)); open(sys.argv[1]).read()'

describe.skipIf(!fuse.ok)('ioctls', () => {
  const suite = layerfsSuite('ioctl')

  it('refuses TCGETS in C, and answers the file-attribute ioctls in JS', async () => {
    const { mnt } = await suite.stack('', (lower) => writeFile(join(lower, 'f'), 'lower data'))
    const file = join(mnt, 'f')
    const before = await statsOf(mnt)
    const tty = await runCmd('python3', ['-c', ISATTY, file])
    expect(tty.stderr).toBe('')
    expect(tty.stdout.trim()).toBe('False')
    const refused = await statsOf(mnt)
    expect(delta(before, refused, 'ioctl')).toBe(0)

    const lsattr = await runCmd('lsattr', [file])
    expect(lsattr.code, lsattr.stderr).toBe(0)
    expect(lsattr.stdout).toContain(file)
    const listed = await statsOf(mnt)
    expect(delta(refused, listed, 'ioctl')).toBeGreaterThan(0)

    // chattr +A copies the file up with the flag; lsattr then shows it.
    const chattr = await runCmd('chattr', ['+A', file])
    expect(chattr.code, chattr.stderr).toBe(0)
    const again = await runCmd('lsattr', [file])
    expect(again.stdout.split(/\s+/)[0]).toContain('A')
  })
})
