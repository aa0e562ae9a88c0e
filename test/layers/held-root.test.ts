// Which lower layers are held open (src/layers/held-root.ts): those on an idmapped mount, found by
// the longest mount point above them in mountinfo, the last mount on a point winning.
import { statSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { layerRoot, onIdmappedMount } from '../../src/layers/held-root.js'

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

  it('addresses an idmapped layer through a descriptor that reaches the same directory', () => {
    const dir = process.cwd()
    expect(layerRoot(dir, '')).toBe(dir)
    const held = layerRoot(dir, `1 0 0:1 / / rw,idmapped - ext4 x rw`)
    expect(held).toMatch(/^\/proc\/self\/fd\/\d+$/)
    expect(statSync(held).ino).toBe(statSync(dir).ino)
  })
})
