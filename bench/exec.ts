/**
 * Child processes for the bench: every command runs with a timeout and is killed by its own PID when it
 * runs over. Live children are tracked so a Ctrl-C can stop exactly the processes the bench started.
 */
import { spawn } from 'node:child_process'

export interface CmdResult {
  cmd: string
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  timedOut: boolean
  ms: number
}

export interface RunOptions {
  timeoutMs?: number
  /** Resolve on 'exit' rather than 'close': for commands that fork a daemon which keeps our pipes open. */
  untilExit?: boolean
  cwd?: string
  /** Feed this file descriptor / stream as stdin, or 'ignore'. */
  stdin?: 'ignore' | number
  /** Discard stdout instead of collecting it (for tools with huge output, e.g. find). */
  discardStdout?: boolean
}

/** PIDs of children started by runCmd that have not exited yet. */
export const liveChildren = new Set<number>()

/** Run a command (no shell) with a timeout. Never rejects: failures are in the result. */
export function runCmd(cmd: string, args: string[], opts: RunOptions = {}): Promise<CmdResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000
  const display = [cmd, ...args].join(' ')
  const t0 = performance.now()
  return new Promise((done) => {
    let stdout = ''
    let stderr = ''
    let timedOut = false
    let settled = false
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      stdio: [opts.stdin ?? 'ignore', opts.discardStdout ? 'ignore' : 'pipe', 'pipe'],
    })
    const pid = child.pid
    if (pid !== undefined) liveChildren.add(pid)
    child.stdout?.setEncoding('utf8').on('data', (d: string) => { if (stdout.length < 1 << 20) stdout += d })
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { if (stderr.length < 1 << 16) stderr += d })
    const timer = setTimeout(() => {
      timedOut = true
      if (pid !== undefined) {
        try { process.kill(pid, 'SIGKILL') } catch { /* already gone */ }
      }
      setTimeout(() => finish(null, 'SIGKILL'), 200)
    }, timeoutMs)
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      child.stdout?.destroy()
      child.stderr?.destroy()
      done({ cmd: display, code, signal, stdout, stderr, timedOut, ms: performance.now() - t0 })
    }
    child.on('exit', () => { if (pid !== undefined) liveChildren.delete(pid) })
    child.on('error', (e) => { stderr += String(e); finish(-1, null) })
    if (opts.untilExit) child.on('exit', (code, signal) => setTimeout(() => finish(code, signal), 20))
    else child.on('close', (code, signal) => finish(code, signal))
  })
}

export function describeCmd(r: CmdResult): string {
  const how = r.timedOut ? 'timed out' : r.signal ? `killed by ${r.signal}` : `exit ${r.code}`
  const out = (r.stderr + r.stdout).trim().slice(0, 500)
  return `\`${r.cmd}\` ${how}${out ? `: ${out}` : ''}`
}

/** Run a command and throw with its output unless it exits 0 in time. */
export async function mustRun(cmd: string, args: string[], opts: RunOptions = {}): Promise<CmdResult> {
  const r = await runCmd(cmd, args, opts)
  if (r.code !== 0 || r.timedOut) throw new Error(describeCmd(r))
  return r
}

/** Kill (SIGKILL, by PID) every child runCmd started that is still running. */
export function killLiveChildren(): void {
  for (const pid of liveChildren) {
    try { process.kill(pid, 'SIGKILL') } catch { /* gone */ }
  }
  liveChildren.clear()
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

/** Reject with a clear message when `p` takes longer than `ms` (the work itself is cleaned up by unmounting). */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${Math.round(ms / 1000)} s`)), ms)
  })
  try {
    return await Promise.race([p, limit])
  } finally {
    clearTimeout(timer)
  }
}
