/**
 * A live mount's statistics: each bridge answers a private xattr on its root with them (JSON), and
 * `layerfs stats` reads it. Its own module, so that neither the default bridge nor the command loads
 * fuse-native (and libfuse 2) to learn the name.
 */
import { lgetxattr } from '../sys/native.js'

export const STATS_XATTR = 'trusted.layerfs.stats'

/** Read a live mount's statistics. */
export async function readStats(mountpoint: string): Promise<unknown> {
  const value = await lgetxattr(mountpoint, STATS_XATTR)
  if (!value) throw new Error(`${mountpoint}: no statistics (is it a layerfs mount?)`)
  return JSON.parse(value.toString('utf8'))
}
