// Lower layers' listings read ahead on the thread pool for a readdirplus (ListingsAhead): read once,
// handed over once, never the upper layer's, bounded.
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { Layer } from '../../src/layers/layer.js'
import type { Entry } from '../../src/union/entry.js'
import { ListingsAhead } from '../../src/union/readdir.js'
import { listDirSync } from '../../src/sys/native.js'
import { makeTempDir, removeTempDir } from '../helpers/tmp.js'

const dirs: string[] = []
afterEach(async () => {
  while (dirs.length) await removeTempDir(dirs.pop()!)
})

/** An upper and two lower layers, each holding directory `d` with the given names (none: no `d`). */
async function stack(names: string[][]): Promise<Layer[]> {
  const root = await makeTempDir('ahead')
  dirs.push(root)
  const layers: Layer[] = []
  for (const [i, list] of names.entries()) {
    const dir = join(root, `layer${i}`)
    await mkdir(dir)
    if (list.length > 0) {
      await mkdir(join(dir, 'd'))
      for (const name of list) await writeFile(join(dir, 'd', name), name)
    }
    layers.push(new Layer(dir, i, i === 0))
  }
  return layers
}

const dirEntry = (layers: Layer[], path = 'd'): Entry => ({ path, dirLayers: layers }) as unknown as Entry

describe('ListingsAhead', () => {
  it("reads the lower layers' listings on the pool, hands each over once, and never reads the upper layer", async () => {
    const layers = await stack([['up'], ['a', 'b'], ['c']])
    const ahead = new ListingsAhead()
    const wait = ahead.read(dirEntry(layers))
    expect(wait).toBeInstanceOf(Promise)
    await wait
    expect(ahead.read(dirEntry(layers))).toBeUndefined() // both read: nothing to wait for
    expect(ahead.take(layers[0]!.path('d'))).toBeUndefined()
    const middle = ahead.take(layers[1]!.path('d'))!
    const sync = listDirSync(layers[1]!.path('d') as string, true)
    expect(middle.names).toEqual(sync.names)
    // With stats: every entry's numbers, as a synchronous listing has them (the inode numbers among them).
    expect(Array.from(middle.numbers.subarray(0, 3))).toEqual(Array.from(sync.numbers.subarray(0, 3)))
    expect(ahead.take(layers[1]!.path('d'))).toBeUndefined()
    expect(ahead.take(layers[2]!.path('d'))!.names).toEqual(['c'])
    expect(ahead.taken).toBe(2)
    // Taken: the next listing reads them again.
    expect(ahead.read(dirEntry(layers))).toBeInstanceOf(Promise)
  })

  it('settles when a layer has no such directory, and hands nothing over for it', async () => {
    const layers = await stack([[], [], ['only']])
    const ahead = new ListingsAhead()
    await ahead.read(dirEntry(layers))
    expect(ahead.take(layers[1]!.path('d'))).toBeUndefined()
    expect(ahead.take(layers[2]!.path('d'))!.names).toEqual(['only'])
  })

  it('drops the oldest listings not taken beyond its bound of names', async () => {
    const layers = await stack([[], ['a', 'b', 'c'], ['d', 'e', 'f']])
    const ahead = new ListingsAhead(4)
    await ahead.read(dirEntry([layers[0]!, layers[1]!]))
    await ahead.read(dirEntry([layers[0]!, layers[2]!]))
    expect(ahead.take(layers[1]!.path('d'))).toBeUndefined()
    expect(ahead.take(layers[2]!.path('d'))!.names.sort()).toEqual(['d', 'e', 'f'])
  })
})
