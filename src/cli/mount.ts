/**
 * `layerfs [-f] -o lowerdir=...,upperdir=...,workdir=... MNT`: mount a layer stack.
 *
 * Without -f the command starts the daemon as a detached child of its own and returns only once the
 * mount is live (exit 0) or has failed (exit 1, with the daemon's one-line reason): the contract
 * container runtimes rely on. The installed `layerfs` command (bin/layerfs, a shell script) does the
 * same without starting Node twice: it runs the daemon (`-f`) itself, in the background.
 *
 * A daemon started so reports to its starter over an inherited pipe, whose fd LAYERFS_READY_FD names,
 * one line each: `warning: ...` any number of times, then `ready`, `error: ...` (exit 1) or
 * `usage: ...` (a bad command line, exit 2), and closes it. LAYERFS_DETACH=1 asks it to leave its
 * starter's session (setsid), as spawn's `detached` does for a child of Node.
 */
import { access, closeSync, lstatSync, openSync, realpathSync, statSync, writeSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import type { Daemon } from '../fuse/daemon.js'
import { packageRoot } from '../sys/addon.js'
import { codeCache } from '../sys/code-cache.js'
import { type MountOptions, UsageError, parseMountArgs } from './mount-options.js'

const READY_FD_ENV = 'LAYERFS_READY_FD'
const DETACH_ENV = 'LAYERFS_DETACH'
const READY_TIMEOUT_MS = 60_000

/** The pipe to whoever waits for this daemon (see the top of this file), if anyone does. */
class Starter {
  readonly #fd = process.env[READY_FD_ENV] ? Number(process.env[READY_FD_ENV]) : undefined

  get waiting(): boolean {
    return this.#fd !== undefined
  }

  /** A line for the starter; `last` closes the pipe. */
  say(line: string, last = false): void {
    if (this.#fd === undefined) return
    try {
      writeSync(this.#fd, line + '\n')
      if (last) closeSync(this.#fd)
    } catch { /* the starter gave up waiting */ }
  }
}

export async function run(argv: string[]): Promise<number> {
  const starter = new Starter()
  let opts: MountOptions
  try {
    opts = parseMountArgs(argv)
  } catch (err) {
    if (err instanceof UsageError) {
      starter.say(`usage: ${err.message}`, true)
      process.stderr.write(`layerfs: ${err.message}\n`)
      return 2
    }
    throw err
  }
  if (!opts.foreground) return daemonize(argv, opts)
  for (const warning of opts.warnings) {
    if (starter.waiting) starter.say(`warning: ${warning}`)
    else process.stderr.write(`layerfs: warning: ${warning}\n`)
  }
  return serve(opts, starter)
}

async function serve(opts: MountOptions, starter: Starter): Promise<number> {
  const native = await import('../sys/native.js')
  if (process.env[DETACH_ENV] === '1') native.setsidSync()
  native.mallocThresholdsSync(DAEMON_MALLOC.mmapThreshold, DAEMON_MALLOC.trimThreshold)
  // Whoever waits is told within a minute, whatever hangs (a mount point on a dead FUSE mount).
  const deadline = starter.waiting
    ? setTimeout(() => {
      starter.say('error: the daemon did not get ready within 60 s', true)
      process.exit(1)
    }, READY_TIMEOUT_MS)
    : undefined
  const report = (line: string): void => {
    clearTimeout(deadline)
    starter.say(line, true)
  }
  const log = logger(opts.log)
  // Signals are taken from the start: one that arrives while the mount is being set up must still
  // end in a clean unmount, not in the default action (which would leave a dead mount behind).
  let daemon: Daemon | undefined
  let stopRequested = false
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      stopRequested = true
      if (daemon) void daemon.stop()
    })
  }
  try {
    const mountpoint = resolve(opts.mountpoint)
    checkMountpoint(mountpoint)
    // A create's mode is what the caller's umask, or the parent's default ACL, makes it (see
    // Owner.umask): the daemon's own umask must not apply too. Set before the union opens, which
    // reads it once (see Core.umask).
    process.umask(0)
    // The union and the bridges load here, in the daemon only: the command that starts it need not
    // (a mount's latency is two Node starts in a row, and these modules are a third of each).
    const [{ Union }, { startDaemon }, { IdMap }] = await Promise.all([
      import('../union/union.js'), import('../fuse/daemon.js'), import('../fuse/id-map.js'),
    ])
    const union = await Union.open({
      lowers: opts.lowers, upper: opts.upper, work: opts.work, cacheEntries: opts.cacheEntries, fsync: opts.fsync,
      metacopy: opts.metacopy, redirectDir: opts.redirectDir, flushBehind: opts.flushBehind, flushWindowMs: opts.flushWindowMs,
      unmappedLowers: opts.ids?.uids !== undefined || opts.ids?.gids !== undefined,
      onWarning: (warning) => {
        if (starter.waiting) starter.say(`warning: ${warning}`)
        else process.stderr.write(`layerfs: warning: ${warning}\n`)
      },
    })
    daemon = await startDaemon(union, mountpoint, {
      fsname: opts.source, allowOther: opts.allowOther, entryTimeout: opts.entryTimeout,
      attrTimeout: opts.attrTimeout, negativeTimeout: opts.negativeTimeout, spinUs: opts.spinUs, passthrough: opts.passthrough,
      acl: opts.acl, debug: opts.debug, log,
      bridge: opts.bridge, ids: opts.ids ? new IdMap(opts.ids) : undefined, kernelFlags: opts.kernelFlags,
    })
    if (stopRequested) void daemon.stop()
    report('ready')
    // libuv starts its thread pool's threads at the first job: a job now, so that the first request
    // that needs one (a big file's copy-up) does not wait for four threads to be made.
    access('/', () => {})
    steadyJitLater()
    await daemon.closed
    // Copy-ups answered before their flush are named before the daemon goes.
    union.flush()
    // fuse-native's handles would keep the event loop alive after the session ended.
    process.exit(0)
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err)
    report(`error: ${message}`)
    process.stderr.write(`layerfs: ${message}\n`)
    return 1
  }
}

/** The mountpoint must be a directory nothing is mounted on (a mount there would hide it: layerfs
 *  does not stack, where fuse-overlayfs and overlayfs do). A symlink is followed, as mount(2) does. */
function checkMountpoint(mountpoint: string): void {
  let st
  let real
  try {
    st = statSync(mountpoint)
    real = realpathSync.native(mountpoint)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') throw new Error(`mountpoint ${mountpoint}: no such directory`)
    throw new Error(`mountpoint ${mountpoint}: ${code ?? String(err)}${code === 'ENOTCONN' ? ' (a FUSE mount whose daemon is gone: fusermount3 -u it)' : ''}`)
  }
  if (!st.isDirectory()) throw new Error(`mountpoint ${mountpoint}: not a directory`)
  const parent = lstatSync(dirname(real))
  if (real !== '/' && parent.dev !== st.dev) throw new Error(`mountpoint ${mountpoint} is busy: something is mounted there already`)
}

function logger(path: string | undefined): (line: string) => void {
  if (!path) return (line) => { try { process.stderr.write(line + '\n') } catch { /* no stderr */ } }
  const fd = openSync(path, 'a')
  return (line) => { writeSync(fd, `${new Date().toISOString()} ${line}\n`) }
}

/**
 * The daemon's JIT, in its first seconds: V8 optimizes a function once it has run a budget's
 * worth of bytecode, and compiles it on worker threads, which take a core the caller could have.
 * A fresh daemon starts with 16 times V8's budget (STARTUP_BUDGET_FLAG: 1,081,344 bytes against
 * 67,584 in Node 20's V8), so that a short job (a mount that lists, stats, touches or changes a few
 * thousand files) pays for little compiling; STARTUP_JIT_MS after it is ready, the daemon takes
 * V8's budget again, and a long job gets its optimized code a few seconds later. On the quick
 * fixture (3 runs of the quick bench each), the daemon's CPU over the workloads fell from 6.2-7.3 s
 * to 5.2-6.0 s; kept for the whole life of the daemon, the larger budget cost `chmod -R` of the
 * full layer 8-18% more of the daemon's CPU (README, Architecture: the daemon's JIT).
 */
export const STARTUP_JIT_MS = 3000
const V8_INTERRUPT_BUDGET = 67_584
export const STARTUP_BUDGET_FLAG = `--interrupt-budget=${16 * V8_INTERRUPT_BUDGET}`

/** The daemon's garbage is short-lived request objects: a small young generation collects it as
 *  well as a big one and keeps the resident size down (V8 grows it to 16 MiB a half otherwise).
 *  The old generation may grow by a tenth between collections (V8's default is up to fourfold):
 *  walking 115k entries, then lstat'ing and reading every small file, peaked at 173 MB against
 *  220 MB. --optimize-for-size bounds it as well (169 MB) but slows V8's compiled code: the daemon
 *  spent 35% more user CPU on chmod -R and the walk took 40% longer. Last, the JIT's budget in the
 *  daemon's first seconds (above). */
export const DAEMON_V8_FLAGS = ['--max-semi-space-size=2', '--heap-growing-percent=10', STARTUP_BUDGET_FLAG]

/** After STARTUP_JIT_MS, V8's own budget, if the daemon started with the larger one; and first the
 *  code cache of what the daemon compiled so far, under the flags it started with (code-cache.ts). */
function steadyJitLater(): void {
  const startup = process.execArgv.includes(STARTUP_BUDGET_FLAG)
  const cache = codeCache()
  if (!startup && !cache) return
  setTimeout(() => {
    cache?.saveFull()
    if (startup) void import('node:v8').then((v8) => v8.setFlagsFromString(`--interrupt-budget=${V8_INTERRUPT_BUDGET}`))
  }, STARTUP_JIT_MS).unref()
}

/** glibc malloc's thresholds in the daemon. By default malloc gives a heap's free top back to the
 *  kernel once it exceeds 128 KiB (and serves blocks from 128 KiB up by mmap, then raises that bound
 *  to the biggest freed so far): V8's optimizing compiler, which runs on worker threads and frees
 *  its zones after each function, then faults the same pages in again at the next one. Creating
 *  3,000 files through the mount took 6,200-6,700 page faults in the daemon, 2,600-2,800 with these,
 *  and 10-20% less of its CPU (a page fault costs tens of microseconds on this VM). A heap keeps at
 *  most 4 MiB it does not use. (Until 2026-12-01 the daemon loaded fuse-native whatever its bridge,
 *  and had as few page faults: something in that load moves these thresholds too. Without it, and
 *  without these, creating files took 10% longer.) */
export const DAEMON_MALLOC = { mmapThreshold: 1 << 20, trimThreshold: 4 << 20 }

/** The daemon's environment: its starter's, but for NODE_EXTRA_CA_CERTS. Node reads that bundle of
 *  certificates at every start, before any code runs (40 ms of a mount here with Debian's 140
 *  certificates), and the daemon makes no TLS connection. */
export function daemonEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { NODE_EXTRA_CA_CERTS: _unused, ...rest } = env
  return rest
}

/** The daemon's entry point: the bundle the build makes (src/cli/daemon-main.ts), as bin/layerfs
 *  chooses it, else main.js. */
function daemonEntry(): string {
  const dist = join(packageRoot(), 'dist')
  const main = join(dist, 'src', 'cli', 'main.js')
  const bundle = join(dist, 'layerfs-daemon.cjs')
  const mtime = (path: string): number => statSync(path, { throwIfNoEntry: false })?.mtimeMs ?? -1
  return mtime(bundle) >= mtime(main) ? bundle : main
}

async function daemonize(argv: string[], opts: MountOptions): Promise<number> {
  const { spawn } = await import('node:child_process') // not in the daemon: 8 ms of its start
  const cli = daemonEntry()
  const logFd = opts.log ? openSync(opts.log, 'a') : 'ignore'
  const child = spawn(process.execPath, [...DAEMON_V8_FLAGS, cli, '-f', ...argv], {
    detached: true,
    stdio: ['ignore', logFd, logFd, 'pipe'],
    env: { ...daemonEnv(process.env), [READY_FD_ENV]: '3' },
  })
  const pipe = child.stdio[3] as NodeJS.ReadableStream
  const lines = await new Promise<string[]>((done) => {
    let text = ''
    const timer = setTimeout(() => done(['error: the daemon did not report within 60 s']), READY_TIMEOUT_MS)
    pipe.on('data', (chunk: Buffer) => { text += chunk.toString() })
    pipe.on('end', () => { clearTimeout(timer); done(text.split('\n').filter((line) => line !== '')) })
    child.on('error', (err) => { clearTimeout(timer); done([`error: ${err.message}`]) })
  })
  for (const line of lines) if (line.startsWith('warning: ')) process.stderr.write(`layerfs: ${line}\n`)
  const outcome = lines.filter((line) => !line.startsWith('warning: ')).at(-1) ?? 'error: the daemon exited without a word'
  if (outcome === 'ready') {
    child.unref()
    ;(pipe as unknown as { destroy(): void }).destroy()
    return 0
  }
  if (child.exitCode === null) child.kill('SIGTERM')
  process.stderr.write(`layerfs: ${outcome.replace(/^(error|usage): /, '')}\n`)
  return outcome.startsWith('usage: ') ? 2 : 1
}
