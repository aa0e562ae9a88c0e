// A layer stack in a temp dir for union-level tests: lowers built from short specs, an empty upper
// and work dir, and the Union opened on them.
import { constants } from 'node:fs'
import { mkdir, rm, symlink, writeFile, utimes } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { lsetxattr, mknod } from '../../src/sys/native.js'
import { Union, type UnionOptions } from '../../src/union/union.js'
import { makeTempDir } from '../helpers/tmp.js'

/** path → contents; a trailing '/' makes a dir; '->target' a symlink; 'WHITEOUT' a char 0/0;
 *  'OPAQUE/' an opaque dir (xattr). */
export type LayerSpec = Record<string, string>

export const OLD = new Date('2001-02-03T04:05:06Z')

export async function buildLayer(root: string, spec: LayerSpec): Promise<void> {
  await mkdir(root, { recursive: true })
  for (const [rel, value] of Object.entries(spec)) {
    const path = join(root, rel.replace(/\/$/, ''))
    await mkdir(dirname(path), { recursive: true })
    if (rel.endsWith('/')) {
      await mkdir(path, { recursive: true })
      if (value === 'OPAQUE') await lsetxattr(path, 'trusted.overlay.opaque', 'y')
    } else if (value.startsWith('->')) {
      await symlink(value.slice(2), path)
      continue
    } else if (value === 'WHITEOUT') {
      await mknod(path, constants.S_IFCHR, 0)
      continue
    } else {
      await writeFile(path, value)
    }
    await utimes(path, OLD, OLD)
  }
}

export interface Stack {
  dir: string
  lowers: string[]
  upper: string
  work: string
  union: Union
  reopen(options?: Partial<UnionOptions>): Promise<Union>
  cleanup(): Promise<void>
}

export async function makeStack(lowers: LayerSpec[], upperSpec: LayerSpec = {}, options: Partial<UnionOptions> = {}): Promise<Stack> {
  const dir = await makeTempDir('union')
  const lowerDirs = lowers.map((_, i) => join(dir, `l${i}`))
  for (const [i, spec] of lowers.entries()) await buildLayer(lowerDirs[i]!, spec)
  const upper = join(dir, 'upper')
  const work = join(dir, 'work')
  await buildLayer(upper, upperSpec)
  await mkdir(work)
  const open = (extra: Partial<UnionOptions> = {}): Promise<Union> =>
    Union.open({ lowers: lowerDirs, upper, work, ...options, ...extra })
  return {
    dir, lowers: lowerDirs, upper, work, union: await open(),
    reopen: open,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  }
}
