// The bench's work directory is marked a top directory for ext4's allocator (chattr +T), so each
// instance's scratch dir, and the files made under it, go to a block group of their own, away from
// the inodes earlier samples deleted (bench/drivers.ts, spreadInstances). Where the flag cannot be
// set, the bench says so and goes on.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { spreadInstances } from '../../bench/drivers.js'

const made: string[] = []
afterAll(() => { for (const d of made) rmSync(d, { recursive: true, force: true }) })

function tempDirIn(parent: string): string {
  const d = mkdtempSync(join(parent, 'layerfs-spread-'))
  made.push(d)
  return d
}

/** The filesystem type `stat -f` names for `dir` ("ext2/ext3" for ext4 too), or undefined. */
function fsType(dir: string): string | undefined {
  try {
    return execFileSync('stat', ['-f', '-c', '%T', dir], { encoding: 'utf8' }).trim()
  } catch {
    return undefined
  }
}

/** The attribute letters `lsattr -d` shows for `dir`. */
function attrs(dir: string): string {
  return execFileSync('lsattr', ['-d', dir], { encoding: 'utf8' }).split(/\s+/)[0]!
}

const extParent = ['/var/tmp', tmpdir()].find((d) => fsType(d) === 'ext2/ext3')
const tmpfsParent = ['/dev/shm'].find((d) => fsType(d) === 'tmpfs')
if (!extParent) console.log('spread.test: skipping the ext4 case: neither /var/tmp nor the temp dir is on ext4')
if (!tmpfsParent) console.log('spread.test: skipping the tmpfs case: /dev/shm is not a tmpfs')

describe('spreadInstances', () => {
  it.skipIf(!extParent)('marks a work dir on ext4 a top directory, and logs nothing', async () => {
    const dir = tempDirIn(extParent!)
    expect(attrs(dir)).not.toContain('T')
    const lines: string[] = []
    expect(await spreadInstances(dir, (l) => lines.push(l))).toBe(true)
    expect(attrs(dir)).toContain('T')
    expect(lines).toEqual([])
  })

  it.skipIf(!tmpfsParent)('says why where the flag cannot be set, and goes on', async () => {
    const dir = tempDirIn(tmpfsParent!)
    const lines: string[] = []
    expect(await spreadInstances(dir, (l) => lines.push(l))).toBe(false)
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^work dir: could not mark it a top directory \(.*chattr.*\): creates may pay/)
  })
})
