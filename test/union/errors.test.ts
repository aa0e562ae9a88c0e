// errno names: Linux gives ENOTSUP and EOPNOTSUPP one number, which node names ENOTSUP while the
// union's own errors say EOPNOTSUPP; a check for either must catch both (a copy-up's fallback from
// O_TMPFILE once missed every real refusal for want of this).
import { constants, openSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { fsError, isCode } from '../../src/union/errors.js'

describe('isCode', () => {
  it('takes ENOTSUP and EOPNOTSUPP for one another, and nothing else', () => {
    expect(isCode({ code: 'ENOTSUP' }, 'EOPNOTSUPP')).toBe(true)
    expect(isCode(fsError('EOPNOTSUPP', 'x'), 'ENOTSUP')).toBe(true)
    expect(isCode({ code: 'ENOTSUP' }, 'EINVAL', 'EPERM')).toBe(false)
    expect(isCode({ code: 'EPERM' }, 'EOPNOTSUPP', 'EPERM')).toBe(true)
    expect(isCode({ code: 'ENOTDIR' }, 'ENOENT')).toBe(false)
    expect(isCode(undefined, 'ENOENT')).toBe(false)
  })

  it('matches the name node gives a real EOPNOTSUPP', () => {
    // O_TMPFILE (__O_TMPFILE | O_DIRECTORY, which node:fs does not export) on /proc: refused with
    // EOPNOTSUPP, errno 95.
    let err: unknown
    try {
      openSync('/proc', 0o20000000 | constants.O_DIRECTORY | constants.O_WRONLY, 0o600)
    } catch (e) {
      err = e
    }
    expect((err as { errno?: number }).errno).toBe(-95)
    expect(isCode(err, 'EOPNOTSUPP')).toBe(true)
  })
})
