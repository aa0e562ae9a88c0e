/**
 * The one place where errors become the negative errno numbers the kernel wants. The union throws
 * errors carrying an errno name; node:fs and the native addon do the same. Anything without one is a
 * bug or an unexpected condition: it becomes EIO and is logged with the operation and path.
 */
import { constants } from 'node:os'
import { errnoCode } from '../union/errors.js'

const ERRNO = constants.errno as Record<string, number>

/** `what` names the request in the log line (a function: only called when something is logged). */
export function toErrno(err: unknown, op: string, what: string | (() => string), log: (line: string) => void): number {
  const code = errnoCode(err)
  const number = code === undefined ? undefined : ERRNO[code] ?? (code === 'ENODATA' ? 61 : undefined)
  if (number !== undefined) return -number
  log(`layerfs: ${op} ${typeof what === 'string' ? what : what()}: ${err instanceof Error ? err.stack ?? err.message : String(err)}`)
  return -ERRNO.EIO!
}
