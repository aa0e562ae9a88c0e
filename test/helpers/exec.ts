// Running child commands with a timeout (killed by their own PID when they run over), and turning a failed
// command's strerror text back into an errno code.
import { spawn } from 'node:child_process'

// ---------------------------------------------------------------------------------------------------------
// child processes

export interface CmdResult {
  cmd: string
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  timedOut: boolean
}

export interface RunOptions {
  timeoutMs?: number
  /** Resolve on 'exit' instead of 'close': for commands that fork a daemon which may keep our pipes open. */
  untilExit?: boolean
  onSpawn?: (pid: number) => void
  /** the command's environment (default: this process's) */
  env?: NodeJS.ProcessEnv
}

/** Run a command (no shell) with a timeout. Never rejects: failures are in the result. */
export function runCmd(cmd: string, args: string[], opts: RunOptions = {}): Promise<CmdResult> {
  const timeoutMs = opts.timeoutMs ?? 10_000
  const display = [cmd, ...args].join(' ')
  return new Promise((resolvePromise) => {
    let stdout = ''
    let stderr = ''
    let timedOut = false
    let settled = false
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env })
    if (child.pid !== undefined) opts.onSpawn?.(child.pid)
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    const timer = setTimeout(() => {
      timedOut = true
      if (child.pid !== undefined) {
        try {
          process.kill(child.pid, 'SIGKILL')
        } catch {
          /* already gone */
        }
      }
      // a forked grandchild may hold the pipes open: do not wait for them
      setTimeout(() => finish(null, 'SIGKILL'), 200)
    }, timeoutMs)
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      child.stdout.destroy()
      child.stderr.destroy()
      resolvePromise({ cmd: display, code, signal, stdout, stderr, timedOut })
    }
    child.on('error', (e) => {
      stderr += String(e)
      finish(-1, null)
    })
    if (opts.untilExit) {
      // give already-written output a moment to arrive, then stop listening
      child.on('exit', (code, signal) => setTimeout(() => finish(code, signal), 30))
    } else {
      child.on('close', (code, signal) => finish(code, signal))
    }
  })
}

export function describeCmd(r: CmdResult): string {
  const how = r.timedOut ? 'timed out' : r.signal ? `killed by ${r.signal}` : `exit ${r.code}`
  const out = (r.stderr + r.stdout).trim()
  return `\`${r.cmd}\` ${how}${out ? `: ${out}` : ''}`
}


const STRERROR: Record<string, string> = {
  'No such file or directory': 'ENOENT',
  'No such attribute': 'ENODATA',
  'No data available': 'ENODATA',
  'Operation not supported': 'EOPNOTSUPP',
  'Not supported': 'EOPNOTSUPP',
  'Operation not permitted': 'EPERM',
  'Permission denied': 'EACCES',
  'Not a directory': 'ENOTDIR',
  'Is a directory': 'EISDIR',
  'File name too long': 'ENAMETOOLONG',
  'Numerical result out of range': 'ERANGE',
  'Argument list too long': 'E2BIG',
  'No space left on device': 'ENOSPC',
  'Disk quota exceeded': 'EDQUOT',
  'Invalid cross-device link': 'EXDEV',
  'Invalid argument': 'EINVAL',
  'Read-only file system': 'EROFS',
  'Too many levels of symbolic links': 'ELOOP',
  'File exists': 'EEXIST',
  'Directory not empty': 'ENOTEMPTY',
  'Input/output error': 'EIO',
  'Inappropriate ioctl for device': 'ENOTTY',
  'Device or resource busy': 'EBUSY',
  'Transport endpoint is not connected': 'ENOTCONN',
  'No such device': 'ENODEV',
  'Function not implemented': 'ENOSYS',
  'Stale file handle': 'ESTALE',
  'Too many links': 'EMLINK',
  'Bad file descriptor': 'EBADF',
}

/** Map the strerror text in a failed command's stderr (e.g. "setfattr: x: No such file or directory") to a code. */
export function errnoFromStderr(stderr: string): string | undefined {
  let best: { at: number; code: string } | undefined
  for (const [msg, code] of Object.entries(STRERROR)) {
    const at = stderr.lastIndexOf(msg)
    if (at >= 0 && (best === undefined || at > best.at)) best = { at, code }
  }
  return best?.code
}

/** An Error carrying an errno `code`, as node:fs would throw. */
export class ErrnoError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

/** Run a command; resolve its stdout, or reject with an ErrnoError parsed from its stderr. */
export async function runOrErrno(cmd: string, args: string[], timeoutMs = 10_000): Promise<string> {
  const r = await runCmd(cmd, args, { timeoutMs })
  if (r.code === 0 && !r.timedOut) return r.stdout
  const code = r.timedOut ? 'ETIMEDOUT' : (errnoFromStderr(r.stderr) ?? 'EUNKNOWN')
  throw new ErrnoError(code, describeCmd(r))
}
