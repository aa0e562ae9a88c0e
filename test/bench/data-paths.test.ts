// A changing workload's sample starts with the lower files it reads in the page cache (runner.ts,
// warmData): the layers are shared by every driver, so the first driver of a round would read them
// from the disk for the others. dataPaths names them: each layer's copy of what the workload
// needs, every layer but the big files for '*small', and what it reads besides (the tarball).
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { Fixture } from '../../bench/fixture.js'
import { WORKLOADS, dataPaths } from '../../bench/workloads.js'

const dir = mkdtempSync(join(tmpdir(), 'layerfs-data-paths-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const lowers = ['changes', 'nm', 'base'].map((name) => join(dir, name))
mkdirSync(join(lowers[1]!, 'node_modules'), { recursive: true })
mkdirSync(join(lowers[2]!, 'bigdata'), { recursive: true })
const fx = { lowers, nmRoot: 'node_modules', bigDir: 'bigdata', bigFiles: ['bigdata/big-0.bin', 'bigdata/big-1.bin', 'bigdata/big-2.bin'], tarball: join(dir, 'nm.tar') } as unknown as Fixture
const workload = (name: string) => WORKLOADS.find((w) => w.name === name)!

describe('dataPaths', () => {
  it("names the layers' copies of what a workload needs, only where a layer holds one", () => {
    expect(dataPaths(fx, workload('chown-R'))).toEqual({ paths: [join(lowers[1]!, 'node_modules')], prune: [] })
  })

  it("names every layer for '*small', the big files pruned", () => {
    expect(dataPaths(fx, workload('rename'))).toEqual({ paths: lowers, prune: lowers.map((l) => join(l, 'bigdata')) })
  })

  it('adds what a workload reads besides the mount', () => {
    expect(dataPaths(fx, workload('untar')).paths).toEqual([join(dir, 'nm.tar')])
  })

  it('names nothing for a workload that reads no lower file', () => {
    expect(dataPaths(fx, workload('create-delete')).paths).toEqual([])
  })
})
