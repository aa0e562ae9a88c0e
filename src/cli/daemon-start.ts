/**
 * The daemon's first module (bundled alone into dist/layerfs-daemon.cjs, which bin/layerfs starts):
 * it compiles the daemon's code (dist/layerfs-daemon-code.cjs, the bundle of daemon-main.ts) with
 * V8's code cache of it, and runs it as Node would run a CommonJS file.
 *
 * A daemon compiles its code twice over without a cache: the whole file once to start, and each
 * function again at its first call, which for a fresh mount is its first requests. With the cache,
 * V8 takes the bytecode of every function the cache holds as it was compiled before: a mount, `ls`
 * of its root and unmount took 45-49 ms instead of 53-60 (Node's own start is 20 of them).
 *
 * The cache is written by the daemons themselves, in the file LAYERFS_CODE_CACHE names
 * (`off`: none), by default dist/layerfs-daemon-code.cache: once a daemon's first seconds are over
 * (mount.ts, steadyJitLater: `full`, holding what those compiled), or as a daemon that lived less
 * exits when it had no cache (`early`). Its first line is the code file's size, mtime and inode
 * number, and the cache's length: a cache of any other build is ignored (V8's own check of the
 * source is its length), then replaced. V8 rejects a cache made by another V8, or under other
 * flags; the daemon then compiles as without one. A cache is read only from a regular file of the
 * code file's owner that no one else may write (it is code the daemon runs). Writes go through a
 * temporary file and a rename; any failure (a read-only install) leaves the daemon as it was.
 */
import { closeSync, fstatSync, openSync, readFileSync, rename, renameSync, unlinkSync, writeFile, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Script } from 'node:vm'
import { type CodeCacheUse, setCodeCache } from '../sys/code-cache.js'

const MAGIC = 'layerfs-code-cache-1'

interface Cached {
  data: Buffer
  kind: 'full' | 'early'
}

/** The cache at `path` for the code file whose key is `key`, if it is one to trust. */
function readCache(path: string, key: string, owner: number): Cached | undefined {
  let fd: number
  try {
    fd = openSync(path, 'r')
  } catch {
    return undefined
  }
  try {
    const st = fstatSync(fd)
    if (!st.isFile() || st.uid !== owner || (st.mode & 0o022) !== 0) return undefined
    const bytes = readFileSync(fd)
    const end = bytes.indexOf(10)
    if (end < 0) return undefined
    const [magic, codeKey, length, kind] = bytes.subarray(0, end).toString('latin1').split(' ')
    const data = bytes.subarray(end + 1)
    if (magic !== MAGIC || codeKey !== key || Number(length) !== data.length || (kind !== 'full' && kind !== 'early')) return undefined
    return { data, kind }
  } finally {
    closeSync(fd)
  }
}

/** Where a write of the cache in flight is, until it is renamed into place. */
let inFlight: string | undefined

/** Write the cache: through a temporary file flushed to the disk, then renamed into place. `wait`:
 *  now, on this thread (the daemon is exiting); else on the thread pool, not to hold up requests. */
function writeCache(path: string, header: string, data: Buffer, wait: boolean): void {
  const tmp = `${path}.${process.pid}.tmp`
  const bytes = Buffer.concat([Buffer.from(header, 'latin1'), data])
  const options = { flag: 'wx', mode: 0o644, flush: true } as const
  const drop = (): void => {
    inFlight = undefined
    try { unlinkSync(tmp) } catch { /* never made */ }
  }
  if (wait) {
    try {
      writeFileSync(tmp, bytes, options)
      renameSync(tmp, path)
    } catch {
      drop()
    }
    return
  }
  inFlight = tmp
  writeFile(tmp, bytes, options, (err) => {
    if (err) return drop()
    rename(tmp, path, (err) => {
      if (err) drop()
      else inFlight = undefined
    })
  })
}

const dist = dirname(fileURLToPath(import.meta.url))
const codePath = join(dist, 'layerfs-daemon-code.cjs')
const setting = process.env.LAYERFS_CODE_CACHE
const cachePath = setting === 'off' ? undefined : setting || join(dist, 'layerfs-daemon-code.cache')

const fd = openSync(codePath, 'r')
const code = fstatSync(fd)
// ASCII (scripts/bundle-daemon.mjs): latin1 reads it straight into a one-byte string.
const source = readFileSync(fd, 'latin1')
closeSync(fd)
const key = `${code.size}:${code.mtimeMs}:${code.ino}`
const found = cachePath === undefined ? undefined : readCache(cachePath, key, code.uid)
// Node's own CommonJS wrapper, on the code's first line: the code's lines keep their numbers.
const script = new Script(`(function (exports, require, module, __filename, __dirname) { ${source}\n});`, {
  filename: codePath,
  cachedData: found?.data,
})
const use: CodeCacheUse = found && !script.cachedDataRejected ? found.kind : 'none'
let written = cachePath === undefined

function save(kind: 'full' | 'early', wait: boolean): void {
  if (written) return
  written = true
  const data = script.createCachedData()
  writeCache(cachePath!, `${MAGIC} ${key} ${data.length} ${kind}\n`, data, wait)
}

setCodeCache({
  use,
  saveFull: () => {
    if (use === 'full') written = true
    save('full', false)
  },
})
// A daemon that never got to saveFull (an unmount within its first seconds) leaves what it has when
// there was nothing to use.
process.on('exit', () => {
  // A write the pool had not finished: its temporary file goes (renamed already, it is not there).
  if (inFlight !== undefined) try { unlinkSync(inFlight) } catch { /* renamed */ }
  if (use === 'none') save('early', true)
})

const codeModule = { exports: {}, filename: codePath, id: codePath, loaded: false }
const run = script.runInThisContext() as (exports: object, require: NodeJS.Require, module: object, filename: string, dirname: string) => void
// This loader's own require: the loader is CommonJS, bundled into the code's directory, so it
// resolves the code's requires (fuse-native, Node's modules) as the code's own would. (node:module's
// createRequire took 0.8 ms of every mount here, loading that module.)
run.call(codeModule.exports, codeModule.exports, require, codeModule, codePath, dist)
