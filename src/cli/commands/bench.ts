/** `layerfs bench`: the copy-on-write benchmark (plain dir, kernel overlayfs, fuse-overlayfs, layerfs). See bench/main.ts. */
import { main } from '../../../bench/main.js'

export async function run(args: string[]): Promise<number> {
  return main(args)
}
