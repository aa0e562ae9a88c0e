import { describe, expect, it } from 'vitest'
import { type Node, NodeTable, ROOT_ID } from '../../src/fuse/nodes.js'

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

  it("keeps each directory's names apart, and a directory with no names known holds no index", () => {
    const t = new NodeTable()
    const d = t.remember(t.root, 'd', 1)
    const e = t.remember(t.root, 'e', 2)
    const df = t.remember(d, 'f', 3)
    const ef = t.remember(e, 'f', 4)
    expect(df).not.toBe(ef)
    expect([t.child(d, 'f'), t.child(e, 'f'), t.child(t.root, 'f')]).toEqual([df, ef, undefined])
    t.move(d, 'f', e, 'g')
    expect(d.children).toBeUndefined()
    expect([t.child(e, 'f'), t.child(e, 'g')]).toEqual([ef, df])
    t.exchange(e, 'f', e, 'f')
    expect(t.byPath('/e/f')).toBe(ef)
    t.forget(ef.id, 1)
    t.detach(e, 'g')
    expect(e.children).toBeUndefined()
    expect(t.byPath('/e/f')).toBeUndefined()
    // A forgotten directory's children stay findable only through it, not through a new node for its name.
    const dd = t.remember(d, 'sub', 5)
    t.remember(dd, 'x', 6)
    t.forget(dd.id, 1)
    const again = t.remember(d, 'sub', 5)
    expect(again).not.toBe(dd)
    expect(t.child(again, 'x')).toBeUndefined()
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

  it('keeps paths exact through renames, exchanges and unlinks made after they were built', () => {
    const t = new NodeTable()
    // What path() must say, from the parent chain alone.
    const naive = (n: Node): string | undefined => {
      const parts: string[] = []
      for (let x: Node | undefined = n; x !== t.root; x = x.parent) {
        if (x === undefined || x.parent === undefined) return undefined
        parts.unshift(x.name)
      }
      return '/' + parts.join('/')
    }
    let seed = 11
    const pick = <T>(xs: T[]): T => xs[(seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % xs.length]!
    const dirs: Node[] = [t.root]
    const all: Node[] = []
    for (let i = 0; i < 60; i++) {
      const n = t.remember(pick(dirs), `n${i}`, i + 2)
      all.push(n)
      if (i % 2 === 0) dirs.push(n)
    }
    for (let step = 0; step < 400; step++) {
      for (const n of all) expect(t.path(n)).toBe(naive(n)) // builds (and keeps) the paths first
      const a = pick(all)
      const to = pick(dirs)
      if (a.parent === undefined || to === a || naive(to)?.startsWith(naive(a) + '/')) continue
      const kind = step % 5
      if (kind === 0) t.detach(a.parent, a.name)
      else if (kind === 1) {
        const b = pick(all)
        if (b.parent === undefined || b === a || naive(b)?.startsWith(naive(a) + '/') || naive(a)?.startsWith(naive(b) + '/')) continue
        t.exchange(a.parent, a.name, b.parent, b.name)
      } else t.move(a.parent, a.name, to, `m${step}`)
    }
    for (const n of all) expect(t.path(n)).toBe(naive(n))
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
  it('finds a path again after its directories were renamed, replaced, retired or forgotten', () => {
    const t = new NodeTable()
    const d = t.remember(t.root, 'd', 1)
    const sub = t.remember(d, 'sub', 2)
    const f = t.remember(sub, 'f', 3)
    expect(t.byPath('/d/sub/f')).toBe(f)
    expect(t.byPath('/d/sub/f')).toBe(f) // through the remembered directory

    t.move(d, 'sub', t.root, 'moved')
    expect(t.byPath('/d/sub/f')).toBeUndefined()
    expect(t.byPath('/moved/f')).toBe(f)

    // rmdir and mkdir of the same name: a new node answers, the old one has no path
    t.detach(t.root, 'moved')
    const again = t.remember(t.root, 'moved', 4)
    expect(t.byPath('/moved/f')).toBeUndefined()
    const g = t.remember(again, 'f', 5)
    expect(t.byPath('/moved/f')).toBe(g)

    // a retired directory keeps its path for its open files, but no longer answers for it
    t.retire(again)
    expect(t.byPath('/moved/f')).toBeUndefined()
    const third = t.remember(t.root, 'moved', 6)
    const h = t.remember(third, 'f', 7)
    expect(t.byPath('/moved/f')).toBe(h)

    t.forget(third.id, 1)
    expect(t.byPath('/moved/f')).toBeUndefined()
    expect(t.byPath('moved')).toBeUndefined()
    expect(t.byPath('/d')).toBe(d)
    expect(t.byPath('d')).toBe(d)
  })

  it('remembers a bounded number of directories and still finds the others', () => {
    const t = new NodeTable()
    const files: Node[] = []
    for (let i = 0; i < 5000; i++) files.push(t.remember(t.remember(t.root, `d${i}`, 2 * i + 1), 'f', 2 * i + 2))
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 5000; i += 7) expect(t.byPath(`/d${i}/f`)).toBe(files[i])
    }
  })
})
