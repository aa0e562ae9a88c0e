/**
 * What this process may create in a store: kernel-format whiteouts (char 0/0 + trusted.overlay.opaque,
 * so kernel overlayfs can mount the layer dirs), device nodes, foreign owners. Probed once per
 * directory by trying, since root in a user namespace or a container may lack CAP_MKNOD/CAP_SYS_ADMIN.
 */
import { constants } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { lsetxattr, makedev, mknod } from '../sys/native.js'
import { workDirPrefix } from './stale-tmp.js'
import type { WhiteoutFormat } from './unpack.js'

export interface Capabilities {
  whiteouts: WhiteoutFormat
  devices: boolean
  chown: boolean
}

const cache = new Map<string, Promise<Capabilities>>()

export function probeCapabilities(dir: string): Promise<Capabilities> {
  let p = cache.get(dir)
  if (!p) {
    p = probe(dir)
    cache.set(dir, p)
  }
  return p
}

async function attempt(fn: () => Promise<unknown>): Promise<boolean> {
  try {
    await fn()
    return true
  } catch {
    return false
  }
}

async function probe(dir: string): Promise<Capabilities> {
  const isRoot = process.getuid?.() === 0
  if (!isRoot) return { whiteouts: 'marker', devices: false, chown: false }
  await mkdir(dir, { recursive: true })
  const tmp = await mkdtemp(workDirPrefix(dir, '.probe'))
  try {
    const whiteout = await attempt(() => mknod(join(tmp, 'wh'), constants.S_IFCHR, makedev(0, 0)))
    const opaque = await attempt(async () => {
      await mkdir(join(tmp, 'd'))
      await lsetxattr(join(tmp, 'd'), 'trusted.overlay.opaque', 'y')
    })
    const devices = await attempt(() => mknod(join(tmp, 'null'), constants.S_IFCHR | 0o666, makedev(1, 3)))
    return { whiteouts: whiteout && opaque ? 'kernel' : 'marker', devices, chown: true }
  } finally {
    await rm(tmp, { recursive: true, force: true })
  }
}
