/**
 * One bench session's safety net: the Ctrl-C / SIGTERM handler (kill our children by PID, unmount every
 * registered mount, exit 130 / 143), stale mounts under the work dir from an earlier crashed run, and the
 * work dir itself.
 */
import { rmSync } from 'node:fs'
import { resolve } from 'node:path'
import { killLiveChildren } from './exec.js'
import { activeMounts, unmount, unmountAll } from './mounts.js'
import { daemonPidsFor, readMounts } from './proc.js'

export interface Session {
  stopped(): boolean
  close(): Promise<void>
}

export function openSession(workDir: string, log: (s: string) => void): Session {
  let stopping = false
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) return
    stopping = true
    process.stderr.write(`\nbench: ${signal}: cleaning up ${activeMounts.size} mount(s)...\n`)
    killLiveChildren()
    void unmountAll().then((errors) => {
      for (const e of errors) process.stderr.write(`bench: ${e}\n`)
      // never delete through a mount that could not be taken down
      if (errors.length === 0) try { rmSync(workDir, { recursive: true, force: true }) } catch { /* best effort */ }
      process.exit(signal === 'SIGINT' ? 130 : 143)
    })
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  return {
    stopped: () => stopping,
    async close() {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      const errors = await unmountAll()
      for (const e of errors) log(`cleanup: ${e}`)
    },
  }
}

/** Unmount anything left mounted under `workDir` by an earlier run that died hard (kill -9). */
export async function clearStaleMounts(workDir: string, log: (s: string) => void): Promise<void> {
  const prefix = resolve(workDir) + '/'
  const stale = readMounts().filter((m) => m.mountPoint.startsWith(prefix)).reverse()
  for (const m of stale) {
    log(`removing a stale mount from an earlier run: ${m.mountPoint}`)
    const pids = daemonPidsFor(m.mountPoint)
    await unmount({ mnt: m.mountPoint, kind: m.fstype.startsWith('fuse') ? 'fuse' : 'overlay', dev: m.dev, daemonPid: pids[0] })
  }
}
