/**
 * The one error type of the union core. It carries an errno name (`ENOENT`), never a number: exactly
 * one place, the kernel bridge, turns names into the negative numbers FUSE wants. Errors thrown by
 * node:fs and the native addon already carry `.code` and pass through unchanged.
 */
export class FsError extends Error {
  readonly code: string

  constructor(code: string, message?: string) {
    super(message ? `${code}: ${message}` : code)
    this.code = code
    this.name = 'FsError'
  }
}

/** An FsError without a stack trace: these are answers (ENOENT, EEXIST...), thrown by the thousand on
 *  hot paths, not bugs to debug, and capturing a stack costs more than the lookup that failed. */
export function fsError(code: string, message?: string): FsError {
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return new FsError(code, message)
  } finally {
    Error.stackTraceLimit = limit
  }
}

/** The errno name an error carries, if any. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' && code.startsWith('E') ? code : undefined
}

/** Linux gives ENOTSUP and EOPNOTSUPP one number; node (libuv) names it ENOTSUP, the union's own
 *  errors say EOPNOTSUPP. Either name matches both. */
const SAME_ERRNO: Readonly<Record<string, string>> = { ENOTSUP: 'EOPNOTSUPP' }

export function isCode(err: unknown, ...codes: string[]): boolean {
  const code = errnoCode(err)
  if (code === undefined) return false
  const name = SAME_ERRNO[code] ?? code
  return codes.some((c) => (SAME_ERRNO[c] ?? c) === name)
}
