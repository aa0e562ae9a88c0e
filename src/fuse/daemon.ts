/**
 * The daemon's lifecycle around the bridge: mount, report ready, serve, and leave cleanly. It ends
 * when a signal asks (SIGINT, SIGTERM, SIGHUP: unmount, then exit) or when somebody else unmounts
 * the filesystem (fusermount3 -u, umount): libfuse 2's loop thread then stops without telling
 * JavaScript, so the daemon watches /proc/self/mountinfo for its mount to disappear.
 */
import { readFileSync } from 'node:fs'
import type { Union } from '../union/union.js'
import type { BridgeOptions } from './bridge.js'

/** `ll`: our libfuse3 low-level bridge (native/fuse-ll-*.c), the default; `fuse-native`: libfuse 2's
 *  high-level API through the fuse-native package, kept selectable for comparison. */
export type BridgeKind = 'll' | 'fuse-native'

export interface Daemon {
  /** Unmount (if still mounted) and resolve once the FUSE session is over. */
  stop(): Promise<void>
  /** Resolves when the filesystem has been unmounted, by us or by anyone. */
  readonly closed: Promise<void>
}

export async function unmountPath(mountpoint: string, lazy = false): Promise<void> {
  // child_process (with net, dgram and streams under it) loads only when needed: 8 ms of each start.
  const { execFile } = await import('node:child_process')
  const run = (cmd: string, args: string[]): Promise<void> => new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 10_000 }, (err, _out, stderr) => (err ? reject(new Error(stderr.trim() || err.message)) : resolve()))
  })
  const flag = lazy ? '-uz' : '-u'
  return run('fusermount3', [flag, mountpoint]).catch(() => run('umount', lazy ? ['-l', mountpoint] : [mountpoint]))
}

/** Is `mountpoint` a FUSE mount right now? */
export function isFuseMounted(mountpoint: string): boolean {
  const info = readFileSync('/proc/self/mountinfo', 'utf8')
  return info.split('\n').some((line) => {
    const fields = line.split(' ')
    const sep = fields.indexOf('-')
    return fields[4] === escapeMountinfo(mountpoint) && sep > 0 && (fields[sep + 1] ?? '').startsWith('fuse')
  })
}

function escapeMountinfo(path: string): string {
  return path.replace(/[ \t\n\\]/g, (ch) => '\\' + ch.charCodeAt(0).toString(8).padStart(3, '0'))
}

export async function startDaemon(union: Union, mountpoint: string, options: BridgeOptions & { bridge: BridgeKind }): Promise<Daemon> {
  if (options.bridge === 'll') return startLowLevel(union, mountpoint, options)
  // fuse-native (and libfuse 2 under it) loads only for its bridge: 15-20 ms of a mount's start.
  const [{ default: Fuse }, { createBridge }] = await Promise.all([import('fuse-native'), import('./bridge.js')])
  // It unmounts with `fusermount -uz` from libfuse 2, which Debian no longer ships with fuse3.
  Fuse.unmount = (mnt: string, cb: (err: Error | null) => void): void => {
    unmountPath(mnt).then(() => cb(null), (err: Error) => cb(err))
  }
  const { fuse } = createBridge(union, mountpoint, options)
  await new Promise<void>((resolve, reject) => {
    fuse.mount((err) => (err ? reject(new Error(`cannot mount ${mountpoint}: ${err.message}`)) : resolve()))
  })
  let markClosed!: () => void
  const closed = new Promise<void>((resolve) => { markClosed = resolve })
  // fuse-native does not say when the kernel ends the session: the daemon looks for its mount ten
  // times a second (a container runtime unmounts and waits for the daemon to go).
  const watch = setInterval(() => {
    try {
      if (!isFuseMounted(mountpoint)) markClosed()
    } catch {
      // mountinfo unreadable for a moment: the next look decides
    }
  }, 100)
  watch.unref()
  void closed.then(() => clearInterval(watch))
  let stopping: Promise<void> | undefined
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (isFuseMounted(mountpoint)) {
        await unmountPath(mountpoint).catch(async (err: Error) => {
          options.log(`layerfs: ${mountpoint} is busy (${err.message}); detaching it lazily`)
          await unmountPath(mountpoint, true)
        })
      }
      markClosed()
    })()
    return stopping
  }
  return { stop, closed }
}

async function startLowLevel(union: Union, mountpoint: string, options: BridgeOptions): Promise<Daemon> {
  const { LowLevelBridge } = await import('./ll-bridge.js')
  const bridge = new LowLevelBridge(union, {
    fsname: options.fsname, allowOther: options.allowOther, readOnly: union.readOnly,
    entryTimeout: options.entryTimeout, attrTimeout: options.attrTimeout, negativeTimeout: options.negativeTimeout,
    spinUs: options.spinUs ?? 0, passthrough: options.passthrough ?? 'on', ids: options.ids, kernelFlags: options.kernelFlags,
    acl: options.acl ?? true, debug: options.debug, log: options.log,
  })
  try {
    await bridge.mount(mountpoint)
  } catch (err) {
    throw new Error(`cannot mount ${mountpoint}: ${(err as Error).message}`)
  }
  let stopping: Promise<void> | undefined
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      // A busy mount cannot be unmounted in place: detach it lazily, the session then ends.
      await unmountPath(mountpoint).catch(async (err: Error) => {
        options.log(`layerfs: ${mountpoint} is busy (${err.message}); detaching it lazily`)
        await unmountPath(mountpoint, true).catch(() => bridge.unmount())
      })
      await Promise.race([bridge.closed, new Promise((resolve) => setTimeout(resolve, 5000).unref())])
      // Still mounted (files open): the process may end next, and must not while a page
      // invalidation waits for a request only it can answer.
      await bridge.dropsSettled(2000)
    })()
    return stopping
  }
  return { stop, closed: bridge.closed }
}
