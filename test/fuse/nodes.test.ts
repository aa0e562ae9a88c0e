import { describe, expect, it } from 'vitest'
import { NodeTable, ROOT_ID } from '../../src/fuse/nodes.js'

describe('NodeTable', () => {
  it('gives one node per name and counts every reference', () => {
    const t = new NodeTable()
    const a = t.remember(t.root, 'a', 10)
    expect(t.remember(t.root, 'a', 10)).toBe(a)
    expect(a.lookups).toBe(2)
    expect(t.path(a)).toBe('/a')
    t.forget(a.id, 1)
    expect(t.get(a.id)).toBe(a)
    t.forget(a.id, 1)
    expect(t.get(a.id)).toBeUndefined()
    expect(t.byPath('/a')).toBeUndefined()
  })

  it('moves a whole subtree with a directory rename', () => {
    const t = new NodeTable()
    const d = t.remember(t.root, 'd', 1)
    const f = t.remember(d, 'f', 2)
    const e = t.remember(t.root, 'e', 3)
    t.move(t.root, 'd', e, 'moved')
    expect(t.path(f)).toBe('/e/moved/f')
    expect(t.byPath('/d')).toBeUndefined()
    expect(t.byPath('/e/moved/f')).toBe(f)
  })

  it('detaches the replaced target of a rename, and an unlinked name', () => {
    const t = new NodeTable()
    const a = t.remember(t.root, 'a', 1)
    const b = t.remember(t.root, 'b', 2)
    t.move(t.root, 'a', t.root, 'b')
    expect(t.path(b)).toBeUndefined()
    expect(t.byPath('/b')).toBe(a)
    t.detach(t.root, 'b')
    expect(t.path(a)).toBeUndefined()
    expect(t.get(a.id)).toBe(a)
  })

  it('swaps two names on exchange', () => {
    const t = new NodeTable()
    const a = t.remember(t.root, 'a', 1)
    const b = t.remember(t.root, 'b', 2)
    t.exchange(t.root, 'a', t.root, 'b')
    expect([t.path(a), t.path(b)]).toEqual(['/b', '/a'])
  })

  it('finds hard-link siblings by inode number', () => {
    const t = new NodeTable()
    const a = t.remember(t.root, 'a', 7)
    const b = t.remember(t.root, 'b', 7)
    expect([...t.withIno(7)]).toEqual([a, b])
    t.forget(b.id, 1)
    expect([...t.withIno(7)]).toEqual([a])
  })

  it('never forgets the root', () => {
    const t = new NodeTable()
    t.forget(ROOT_ID, 100)
    expect(t.get(ROOT_ID)).toBe(t.root)
    expect(t.path(t.root)).toBe('/')
  })
})
