/** `layerfs umount MNT`: unmount a layerfs mount (the daemon then exits by itself). */
import { resolve } from 'node:path'
import { isFuseMounted, unmountPath } from '../../fuse/daemon.js'

export async function run(args: string[]): Promise<number> {
  const [target, ...extra] = args
  if (!target || extra.length > 0 || target === '--help') {
    process.stderr.write('usage: layerfs umount MNT\n')
    return target === '--help' ? 0 : 2
  }
  const mountpoint = resolve(target)
  if (!isFuseMounted(mountpoint)) {
    process.stderr.write(`layerfs umount: ${mountpoint} is not a FUSE mount\n`)
    return 1
  }
  try {
    await unmountPath(mountpoint)
    return 0
  } catch (err) {
    process.stderr.write(`layerfs umount: ${mountpoint}: ${(err as Error).message}\n`)
    return 1
  }
}
