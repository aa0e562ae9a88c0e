// Which lower layers are held open (src/layers/held-root.ts): those on an idmapped mount, found by
// the longest mount point above them in mountinfo, the last mount on a point winning.
import { mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { layerRoot, onIdmappedMount, releaseRoot } from '../../src/layers/held-root.js'

const MOUNTINFO = [
  '22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw',
  '45 22 254:0 /var/lib/c/overlay /var/lib/c/overlay/ctr/mapped/0 rw,relatime,idmapped - ext4 /dev/vda rw',
  '46 22 254:0 /srv /srv/with\\040space rw,relatime,idmapped - ext4 /dev/vda rw',
  '47 22 0:50 / /stacked rw,relatime,idmapped - tmpfs tmpfs rw',
  '48 47 0:51 / /stacked rw,relatime - tmpfs tmpfs rw',
].join('\n')

describe('held layer roots', () => {
  it('finds the mount holding a path, and whether it is idmapped', () => {
    expect(onIdmappedMount('/var/lib/c/overlay/ctr/mapped/0/abc/diff', MOUNTINFO)).toBe(true)
    expect(onIdmappedMount('/var/lib/c/overlay/ctr/mapped/0', MOUNTINFO)).toBe(true)
    expect(onIdmappedMount('/var/lib/c/overlay/ctr/mapped/01', MOUNTINFO)).toBe(false)
    expect(onIdmappedMount('/var/lib/c/overlay/abc/diff', MOUNTINFO)).toBe(false)
    expect(onIdmappedMount('/srv/with space/layer', MOUNTINFO)).toBe(true)
    // A mount over an idmapped one hides it.
    expect(onIdmappedMount('/stacked/layer', MOUNTINFO)).toBe(false)
    expect(onIdmappedMount('/anything', '')).toBe(false)
  })

  it('addresses an idmapped layer through a descriptor that reaches the same directory, until released', () => {
    const dir = process.cwd()
    expect(layerRoot(dir, '')).toBe(dir)
    const held = layerRoot(dir, `1 0 0:1 / / rw,idmapped - ext4 x rw`)
    expect(held).toMatch(/^\/proc\/self\/fd\/\d+$/)
    expect(statSync(held).ino).toBe(statSync(dir).ino)
    releaseRoot(held)
    expect(() => statSync(held)).toThrow(expect.objectContaining({ code: 'ENOENT' }))
    // A root that is not held has nothing to release.
    releaseRoot(dir)
    expect(statSync(dir).isDirectory()).toBe(true)
  })

  it('reaches an idmapped layer through a mount that maps no ids, when asked and when it is the same directory', () => {
    // /T/alias stands for the idmapped mount of /T/real (a symlink here, so that both paths reach
    // one directory, as a bind mount does).
    const t = mkdtempSync(join(tmpdir(), 'held-root-'))
    try {
      mkdirSync(join(t, 'real/layer'), { recursive: true })
      mkdirSync(join(t, 'other/layer'), { recursive: true })
      symlinkSync(join(t, 'real'), join(t, 'alias'))
      const dir = join(t, 'alias/layer')
      const roots: string[] = []
      const layerRootOf = (...args: Parameters<typeof layerRoot>): string => {
        roots.push(layerRoot(...args))
        return roots.at(-1)!
      }
      const info = (root: string): string => [
        '22 1 254:0 / / rw,relatime - ext4 /dev/vda rw',
        `45 22 254:0 ${root} ${join(t, 'alias')} rw,relatime,idmapped - ext4 /dev/vda rw`,
      ].join('\n')
      expect(layerRootOf(dir, info(join(t, 'real')), true)).toBe(join(t, 'real/layer'))
      // Not asked: held, as before.
      expect(layerRootOf(dir, info(join(t, 'real')), false)).toMatch(/^\/proc\/self\/fd\/\d+$/)
      // The way mountinfo gives leads to another directory (or to none): held.
      expect(layerRootOf(dir, info(join(t, 'other')), true)).toMatch(/^\/proc\/self\/fd\/\d+$/)
      expect(layerRootOf(dir, info(join(t, 'gone')), true)).toMatch(/^\/proc\/self\/fd\/\d+$/)
      // Only other idmapped mounts of the filesystem, or mounts of another one: held.
      expect(layerRootOf(dir, info(join(t, 'real')).replace('22 1 254:0 / / rw,relatime', '22 1 254:0 / / rw,idmapped'), true)).toMatch(/^\/proc\/self\/fd\/\d+$/)
      expect(layerRootOf(dir, info(join(t, 'real')).replace('22 1 254:0', '22 1 254:9'), true)).toMatch(/^\/proc\/self\/fd\/\d+$/)
      for (const root of roots) releaseRoot(root)
    } finally {
      rmSync(t, { recursive: true, force: true })
    }
  })
})
