import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { run as cat } from '../../src/cli/commands/cat.js'
import { run as inspect } from '../../src/cli/commands/inspect.js'
import { run as ls } from '../../src/cli/commands/ls.js'
import { run as which } from '../../src/cli/commands/which.js'
import type { ImageReport } from '../../src/image/analyze.js'
import { makeTar, ociLayoutFiles, runCli, tempDir, writeFilesToTar } from './fixtures.js'

let t: { dir: string; cleanup: () => Promise<void> }
let image: string
let store: string

beforeAll(async () => {
  t = await tempDir()
  store = join(t.dir, 'store')
  const l0 = await makeTar([
    { name: 'app/', type: 'directory' },
    { name: 'app/big', content: Buffer.alloc(1000, 1) },
    { name: 'app/keep', content: 'keep' },
    { name: 'cache/', type: 'directory' },
    { name: 'cache/a', content: Buffer.alloc(300) },
    { name: 'cache/b', content: Buffer.alloc(200) },
    { name: 'link', type: 'symlink', linkname: 'app/keep' },
  ])
  const l1 = await makeTar([
    { name: 'app/', type: 'directory' },
    { name: 'app/big', content: Buffer.alloc(100, 2) },
    { name: 'app/new', content: 'new!' },
    { name: 'cache/', type: 'directory' },
    { name: 'cache/.wh..wh..opq', content: '' },
  ])
  const l2 = await makeTar([{ name: 'app/', type: 'directory' }, { name: 'app/.wh.keep', content: '' }])
  const history = [
    { created_by: 'ADD base' },
    { created_by: 'RUN update' },
    { created_by: 'LABEL x=y', empty_layer: true },
    { created_by: 'RUN rm keep' },
  ]
  image = await writeFilesToTar(join(t.dir, 'img.tar'), ociLayoutFiles([{ tag: 'latest', layers: [l0, l1, l2], history }]))
})
afterAll(async () => {
  await t.cleanup()
})

describe('layerfs inspect', () => {
  it('reports per-layer changes, wasted bytes and efficiency as JSON', async () => {
    const r = await runCli(inspect, ['--store', store, '--json', image])
    expect(r.code).toBe(0)
    const report = JSON.parse(r.stdout) as ImageReport
    expect(report.layers.map((l) => [l.createdBy, l.empty])).toEqual([
      ['ADD base', false], ['RUN update', false], ['LABEL x=y', true], ['RUN rm keep', false],
    ])
    expect(report.layers[0]!.added).toEqual({ count: 5, bytes: 1504 })
    expect(report.layers[1]!.modified).toEqual({ count: 1, bytes: 100 })
    expect(report.layers[1]!.added).toEqual({ count: 1, bytes: 4 })
    expect(report.layers[1]!.deleted).toEqual({ count: 2, bytes: 500 })
    expect(report.layers[3]!.deleted).toEqual({ count: 1, bytes: 4 })
    // 1000 (big replaced) + 500 (cache hidden by opaque dir) + 4 (keep whited out)
    expect(report.wastedBytes).toBe(1504)
    expect(report.totalBytes).toBe(1608)
    expect(report.efficiency).toBeCloseTo(1 - 1504 / 1608)
    expect(report.wasted[0]).toEqual({ path: '/app/big', count: 1, bytes: 1000 })
  })

  it('prints a table with the efficiency when not asked for JSON', async () => {
    const r = await runCli(inspect, ['--store', store, image])
    expect(r.stdout).toMatch(/Efficiency: 6\.47 %/)
    expect(r.stdout).toMatch(/\(empty\).*LABEL x=y/)
  })

  it('fails with one clear line when the image file does not exist', async () => {
    const r = await runCli(inspect, ['--store', store, join(t.dir, 'nope.tar')])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/^layerfs inspect: .*nope\.tar: no such file or directory\n$/)
  })
})

describe('layerfs ls', () => {
  it('lists the merged directory with the layer that provides each entry', async () => {
    const r = await runCli(ls, ['--store', store, image, '/app'])
    expect(r.code).toBe(0)
    const names = r.stdout.trim().split('\n').map((l) => l.split(/\s+/).slice(-2))
    expect(names).toEqual([['L1', 'big'], ['L1', 'new']])
  })

  it('shows an earlier state with --layer', async () => {
    const r = await runCli(ls, ['--store', store, '--layer', '0', image, '/cache'])
    expect(r.stdout).toMatch(/L0 {2}a\n.*L0 {2}b\n/)
    const after = await runCli(ls, ['--store', store, '--layer', '1', image, '/cache'])
    expect(after.stdout).toBe('')
  })
})

describe('layerfs cat', () => {
  it('prints the topmost version of a file', async () => {
    const r = await runCli(cat, ['--store', store, image, '/app/new'])
    expect(r.stdout).toBe('new!')
  })

  it('follows a symlink inside the image and fails when its target was deleted', async () => {
    const before = await runCli(cat, ['--store', store, '--layer', '1', image, '/link'])
    expect(before.stdout).toBe('keep')
    const after = await runCli(cat, ['--store', store, image, '/link'])
    expect(after.code).toBe(1)
    expect(after.stderr).toMatch(/^layerfs cat: \/link: no such file in the image\n$/)
  })
})

describe('layerfs which', () => {
  it('names the layer that gives a file and its history', async () => {
    const r = await runCli(which, ['--store', store, '--json', image, '/app/big'])
    const j = JSON.parse(r.stdout) as { layer: number; history: Array<{ layer: number; action: string }> }
    expect(j.layer).toBe(1)
    expect(j.history.map((h) => [h.layer, h.action])).toEqual([[0, 'added'], [1, 'modified']])
  })

  it('reports a deleted path with exit code 1', async () => {
    const r = await runCli(which, ['--store', store, image, 'app/keep'])
    expect(r.code).toBe(1)
    expect(r.stdout).toMatch(/^\/app\/keep: deleted\n.*L0.*added.*\n.*L3.*deleted/)
  })
})
