// OpenFiles (src/fuse/open-files.ts) against a recording stand-in for the session: which opens pass
// through, one mode per node for as long as it has open files, backing ids closed at the last
// release, STALE when a node's data has moved, and the fallbacks when the kernel refuses.
import { describe, expect, it } from 'vitest'
import { OpenFiles, type OpenFile, PASSTHROUGH_READ_MIN, type PassthroughPolicy, STALE } from '../../src/fuse/open-files.js'
import type { Session } from '../../src/sys/fuse-ll.js'

class FakeSession {
  passthrough = true
  /** What backingOpen answers next: ids count up from 1 unless an errno is queued. */
  failures: number[] = []
  opened: number[] = []
  closed: number[] = []
  #next = 1

  /** backingOpen calls, failed ones included */
  attempts = 0

  backingOpen(fd: number): number {
    this.attempts++
    const failure = this.failures.shift()
    if (failure !== undefined) return -failure
    this.opened.push(fd)
    return this.#next++
  }

  backingClose(id: number): number {
    this.closed.push(id)
    return 0
  }
}

function setup(policy: PassthroughPolicy = 'on'): { files: OpenFiles; session: FakeSession } {
  const session = new FakeSession()
  return { files: new OpenFiles(session as unknown as Session, policy), session }
}

const BIG = PASSTHROUGH_READ_MIN
const lowerBig: OpenFile = { fd: 10, upper: false, singleLink: true, size: BIG, setid: false, dev: 1 }
const lowerSmall: OpenFile = { fd: 11, upper: false, singleLink: true, size: 100, setid: false, dev: 1 }
const upperSmall: OpenFile = { fd: 12, upper: true, singleLink: true, size: 100, setid: false, dev: 2 }
const upperLinked: OpenFile = { fd: 13, upper: true, singleLink: false, size: BIG, setid: false, dev: 2 }

describe('OpenFiles', () => {
  it('records an open C passed through (adopted), says which release was a node\'s last, and survives a mode C should not have broken', () => {
    const { files, session } = setup()
    // The usual case: the node had no open file.
    files.adopted(1, 100, 7)
    expect(files.passesThrough(1)).toBe(true)
    expect(files.opened(1, 101, upperSmall, true)).toBe(7) // a second writer shares C's backing id
    expect(files.released(100)).toBeUndefined()
    expect(files.released(101)).toBe(1)
    expect(session.closed).toEqual([7])
    // A node JS holds in the daemon's mode (a reader): C's open joins it, its id goes at once.
    expect(files.opened(2, 200, lowerSmall, false)).toBe(0)
    files.adopted(2, 201, 8)
    expect(session.closed).toEqual([7, 8])
    expect(files.released(201)).toBeUndefined()
    expect(files.released(200)).toBe(2)
    expect(files.released(200)).toBeUndefined() // twice: nothing left, no throw
    expect(files.passedThrough).toBe(2) // the two C answered so (a second open of a mode is not counted)
  })

  it('passes through writers and big readers, not small readers, files with several names nor setuid/setgid files', () => {
    const { files, session } = setup()
    expect(files.opened(1, 100, lowerBig, false)).toBe(1)
    expect(files.opened(2, 101, lowerSmall, false)).toBe(0)
    expect(files.opened(3, 102, upperSmall, true)).toBe(2)
    expect(files.opened(4, 103, upperSmall, false)).toBe(0)
    expect(files.opened(5, 104, upperLinked, true)).toBe(0)
    expect(files.opened(6, 105, { ...upperSmall, setid: true }, true)).toBe(0)
    expect(files.opened(7, 106, { ...lowerBig, setid: true }, false)).toBe(0)
    expect(session.opened).toEqual([lowerBig.fd, upperSmall.fd])
    expect(files.passedThrough).toBe(2)
  })

  it('names one of a node\'s open files while it has any', () => {
    const { files } = setup()
    expect(files.handleOf(1)).toBeUndefined()
    files.opened(1, 100, lowerSmall, false)
    files.opened(1, 101, lowerSmall, false)
    files.opened(2, 102, upperSmall, false)
    files.released(100)
    expect(files.handleOf(1)).toBe(101)
    expect(files.handleOf(2)).toBe(102)
    files.released(101)
    expect(files.handleOf(1)).toBeUndefined()
  })

  it('keeps a node in its first mode until its last release, then closes the backing id', () => {
    const { files, session } = setup()
    expect(files.opened(1, 100, lowerBig, false)).toBe(1)
    // A small reader of the same node must still pass through to the same backing file.
    expect(files.opened(1, 101, { ...lowerBig, size: 1 }, false)).toBe(1)
    files.released(100)
    expect(session.closed).toEqual([])
    files.released(101)
    expect(session.closed).toEqual([1])
    // And a node first opened through the daemon stays there, even for a writer.
    expect(files.opened(2, 102, lowerSmall, false)).toBe(0)
    expect(files.opened(2, 103, upperSmall, true)).toBe(0)
    files.released(102)
    files.released(103)
    expect(files.opened(2, 104, upperSmall, true)).toBe(2)
  })

  it('answers STALE when a node passing through to a lower file is opened on its upper copy', () => {
    const { files, session } = setup()
    expect(files.opened(1, 100, lowerBig, false)).toBe(1)
    expect(files.opened(1, 101, { ...lowerBig, upper: true }, true)).toBe(STALE)
    // The refused open is not counted: the node's last release still closes its backing id.
    files.released(101)
    files.released(100)
    expect(session.closed).toEqual([1])
  })

  it('keeps lower files with the daemon under passthrough=upper, and everything under off', () => {
    const upper = setup('upper')
    expect(upper.files.opened(1, 100, lowerBig, false)).toBe(0)
    expect(upper.files.opened(2, 101, upperSmall, true)).toBe(1)
    const off = setup('off')
    expect(off.files.opened(1, 100, lowerBig, false)).toBe(0)
    expect(off.files.opened(2, 101, upperSmall, true)).toBe(0)
    expect(off.session.opened).toEqual([])
  })

  it('stops trying after EPERM or EOPNOTSUPP, and on a stacked filesystem after its first ELOOP', () => {
    for (const errno of [1 /* EPERM */, 95 /* EOPNOTSUPP */]) {
      const { files, session } = setup()
      session.failures.push(errno)
      expect(files.opened(1, 100, lowerBig, false)).toBe(0)
      expect(files.policy).toBe('off')
      expect(files.opened(2, 101, upperSmall, true)).toBe(0)
      expect(session.opened).toEqual([])
    }
    const { files, session } = setup()
    session.failures.push(40 /* ELOOP */)
    expect(files.opened(1, 100, lowerBig, false)).toBe(0)
    expect(files.opened(2, 101, upperSmall, true)).toBe(1)
    expect(files.policy).toBe('on')
    // Another file on the stacked filesystem is not offered again (it would fail the same way).
    expect(files.opened(3, 102, { ...lowerBig, fd: 14 }, false)).toBe(0)
    expect(session.opened).toEqual([upperSmall.fd])
    expect(session.attempts).toBe(2)
  })

  it('reports off when the kernel did not grant passthrough', () => {
    const { files, session } = setup()
    session.passthrough = false
    expect(files.policy).toBe('off')
  })
})
