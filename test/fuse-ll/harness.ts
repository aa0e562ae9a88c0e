// Runs test/fuse-ll/memfs-daemon.mjs in a child process on a fresh temp mount point, and cleans up
// whatever happens: the daemon is asked to unmount, then fusermount3 -u / -uz, then the connection
// is aborted through /sys/fs/fuse/connections when that is available, and the daemon (only the PID
// started here) is killed. The temp directory is removed only once nothing is mounted on it.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const root = resolve(here, '../..')
export const DAEMON = join(here, 'memfs-daemon.mjs')
const BUILT = join(root, 'dist/src/sys/fuse-ll.js')
const ADDON = join(root, 'build/Release/layerfs_native.node')

/** Why these tests cannot run here, or undefined. */
export function unavailable(): string | undefined {
  if (!existsSync('/dev/fuse')) return '/dev/fuse is missing'
  if (process.getuid?.() !== 0) return 'needs root (mounts with allow_other, setpriv)'
  if (!existsSync(ADDON)) return `${ADDON} is not built (npm run install)`
  if (!existsSync(BUILT)) return `${BUILT} is not built (npm run build)`
  if (spawnSync('fusermount3', ['-V']).error) return 'fusermount3 is not installed'
  return undefined
}

export interface Daemon {
  mnt: string
  dir: string
  child: ChildProcess
  stdout: () => string
  stderr: () => string
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  send(line: string): void
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((res, rej) => {
    const t = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms)
    p.then(
      (v) => (clearTimeout(t), res(v)),
      (e: unknown) => (clearTimeout(t), rej(e instanceof Error ? e : new Error(String(e)))),
    )
  })
}

/** The first stdout line matching `re` (waits up to `ms`). */
export async function waitForLine(d: Daemon, re: RegExp, ms = 5000): Promise<RegExpMatchArray> {
  const deadline = Date.now() + ms
  for (;;) {
    for (const line of d.stdout().split('\n')) {
      const m = line.match(re)
      if (m) return m
    }
    if (Date.now() > deadline) throw new Error(`no line matching ${re} within ${ms} ms; stdout: ${d.stdout()}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** Op counts seen by the daemon so far. */
/** Each read request's count of other waiting requests, since the last call. */
export async function readWaits(d: Daemon): Promise<number[]> {
  const before = d.stdout().length
  d.send('waits')
  const deadline = Date.now() + 5000
  for (;;) {
    const m = d.stdout().slice(before).match(/^waits (.*)$/m)
    if (m?.[1]) return JSON.parse(m[1]) as number[]
    if (Date.now() > deadline) throw new Error('no waits from the daemon')
    await new Promise((r) => setTimeout(r, 20))
  }
}

export async function opCounts(d: Daemon): Promise<Record<string, number>> {
  const before = d.stdout().length
  d.send('stats')
  const deadline = Date.now() + 5000
  for (;;) {
    const m = d.stdout().slice(before).match(/^stats (.*)$/m)
    if (m?.[1]) return JSON.parse(m[1]) as Record<string, number>
    if (Date.now() > deadline) throw new Error('no stats from the daemon')
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** Resolves when `d` has exited, or false after `ms`. */
export async function exitsWithin(d: Daemon, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null } | false> {
  return withTimeout(d.exited, ms, 'daemon exit').catch(() => false as const)
}

const started = new Set<Daemon>()

/** Starts the daemon; resolves once it printed `ready` (or rejects with its stderr). */
export async function startDaemon(options: Record<string, unknown> = {}, mnt?: string): Promise<Daemon> {
  const dir = await mkdtemp(join(tmpdir(), 'layerfs-fll-'))
  await chmod(dir, 0o755) // other users (setpriv tests) must reach the mount point
  const target = mnt ?? join(dir, 'mnt')
  if (!mnt) spawnSync('mkdir', [target])
  const child = spawn(process.execPath, [DAEMON, target, JSON.stringify(options)], { stdio: ['pipe', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s))
  child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s))
  // A daemon may exit between a writable check and the write (its session ended): the EPIPE that
  // follows says nothing the exit code does not, and must not surface as an uncaught error.
  child.stdin.on('error', () => undefined)
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    child.on('exit', (code, signal) => res({ code, signal })),
  )
  const d: Daemon = {
    mnt: target,
    dir,
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    send: (line) => {
      if (child.stdin.writable) child.stdin.write(line + '\n')
    },
  }
  started.add(d)
  const ready = new Promise<void>((res, rej) => {
    const check = (): void => {
      if (out.includes('ready\n')) res()
    }
    child.stdout.on('data', check)
    void exited.then(({ code, signal }) => rej(new Error(`daemon exited (${code ?? signal}) before ready: ${err}`)))
  })
  await withTimeout(ready, 10_000, `daemon ready on ${target}`)
  return d
}

// ---- mounts ----

interface MountEntry {
  dev: string
  point: string
  fstype: string
}

function mounts(): MountEntry[] {
  const out: MountEntry[] = []
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ')
    const sep = f.indexOf('-', 6)
    if (sep < 0) continue
    const point = (f[4] ?? '').replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)))
    out.push({ dev: f[2] ?? '', point, fstype: f[sep + 1] ?? '' })
  }
  return out
}

export function mountOf(mnt: string): MountEntry | undefined {
  return mounts().filter((m) => m.point === mnt).pop()
}

export function mountsUnder(dir: string): MountEntry[] {
  return mounts().filter((m) => m.point === dir || m.point.startsWith(dir + '/'))
}

function run(cmd: string, args: string[]): { code: number | null; out: string } {
  const r = spawnSync(cmd, args, { timeout: 10_000, encoding: 'utf8' })
  return { code: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` }
}

/** Unmounts everything at `mnt`, escalating; never hangs on a dead connection. */
export function forceUnmount(mnt: string): void {
  for (let i = 0; i < 4 && mountOf(mnt); i++) {
    const m = mountOf(mnt)
    if (!m) break
    // read before unmounting: after a lazy unmount the mount is gone from mountinfo
    const [maj, min] = m.dev.split(':').map(Number)
    const abort = `/sys/fs/fuse/connections/${((maj ?? 0) << 20) | (min ?? 0)}/abort`
    if (run('fusermount3', ['-u', mnt]).code === 0) continue
    if (existsSync(abort)) {
      try {
        writeFileSync(abort, '1')
      } catch {
        /* gone meanwhile */
      }
    }
    run('fusermount3', ['-uz', mnt])
  }
}

/** Unmount, stop the daemon (only this PID), remove the temp dir. */
export async function cleanup(d: Daemon): Promise<void> {
  started.delete(d)
  if (d.child.exitCode === null && d.child.signalCode === null) {
    d.send('unmount')
    if (!(await exitsWithin(d, 5000))) {
      forceUnmount(d.mnt)
      if (!(await exitsWithin(d, 3000))) {
        d.child.kill('SIGKILL')
        await exitsWithin(d, 3000)
      }
    }
  }
  forceUnmount(d.mnt)
  d.child.stdin?.destroy()
  if (mountsUnder(d.dir).length === 0) await rm(d.dir, { recursive: true, force: true })
}

/** For afterEach: whatever a failed test left behind. */
export async function cleanupAll(): Promise<void> {
  for (const d of [...started]) await cleanup(d)
}

/** Runs a command with a timeout; stdout+stderr and exit code. */
export function sh(cmd: string, args: string[]): { code: number | null; out: string } {
  return run(cmd, args)
}
