// The mount command as container tools use it: a daemon in its own process, the fuse-overlayfs
// command line, readiness, clean unmounts, and one clear line for every bad input.
import { execFile, spawn } from 'node:child_process'
import { constants, existsSync, mkdirSync } from 'node:fs'
import { chmod, copyFile, lstat, mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { LAYERFS_COMMAND as LAUNCHER, MountSet, findMount, fuseAvailable, isMounted, mountFuse, processesNaming, runCmd } from '../helpers/mount.js'
import { mknodSync } from '../../src/sys/native.js'
import { DAEMON_V8_FLAGS, STARTUP_BUDGET_FLAG, STARTUP_JIT_MS } from '../../src/cli/mount.js'
import { makeTempDir, removeTempDir } from '../helpers/tmp.js'

const CLI = resolve('bin/layerfs.js')
/** The daemon's entry point as the build bundles it: its loader (src/cli/daemon-start.ts), which
 *  compiles and runs its code (src/cli/daemon-main.ts and what it imports, CODE). */
const BUNDLE = resolve('dist/layerfs-daemon.cjs')
const CODE = resolve('dist/layerfs-daemon-code.cjs')
const fuse = fuseAvailable()
if (!fuse.ok) console.warn(`skipping mount tests: ${fuse.reason}`)
if (fuse.ok && !(existsSync(BUNDLE) && existsSync(CODE))) throw new Error('build first: npm run build')

type Outcome = { code: number | null; stdout: string; stderr: string }

/** The first line of a code cache the daemon wrote (src/cli/daemon-start.ts), and its size. */
function cacheHeader(bytes: Buffer): { magic: string; key: string; length: number; kind: string; size: number } {
  const end = bytes.indexOf(10)
  const [magic = '', key = '', length = '', kind = ''] = bytes.subarray(0, end).toString('latin1').split(' ')
  return { magic, key, length: Number(length), kind, ...(end < 0 ? { size: 0 } : { size: end + 1 }) }
}

function run(cmd: string, args: string[], timeoutMs: number, env?: NodeJS.ProcessEnv): Promise<Outcome> {
  return new Promise((done) => {
    execFile(cmd, args, { timeout: timeoutMs, env }, (err, stdout, stderr) => {
      done({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr })
    })
  })
}

/** `node bin/layerfs.js ARGS`: the command through Node, which starts the daemon's Node. */
function layerfs(args: string[], timeoutMs = 20_000): Promise<Outcome> {
  return run(process.execPath, [CLI, ...args], timeoutMs)
}

/** How the daemon serving `mnt` compiled its code (layerfs stats). */
async function codeCacheUse(mnt: string): Promise<string | undefined> {
  const r = await layerfs(['stats', mnt, '--json'])
  if (r.code !== 0) throw new Error(`layerfs stats: ${r.stderr}`)
  return (JSON.parse(r.stdout) as { codeCache?: string }).codeCache
}

/** `dir`, made (a case's arguments name it). */
function made(dir: string): string {
  mkdirSync(dir, { recursive: true })
  return dir
}

/** `bin/layerfs ARGS`, the installed command. */
function launcher(args: string[], timeoutMs = 20_000, env?: NodeJS.ProcessEnv): Promise<Outcome> {
  return run(LAUNCHER, args, timeoutMs, env)
}

describe.skipIf(!fuse.ok)('layerfs mount', () => {
  const mounts = new MountSet()
  let dir: string
  let lower: string, lower2: string, upper: string, work: string, mnt: string

  beforeAll(async () => {
    dir = await makeTempDir('cli')
  })
  afterEach(async () => {
    await mounts.unmountAll()
  })
  afterAll(async () => {
    await mounts.unmountAll()
    await removeTempDir(dir)
  })

  let n = 0
  async function fresh(): Promise<void> {
    const base = join(dir, `s${++n}`)
    ;[lower, lower2, upper, work, mnt] = ['lower', 'lower2', 'upper', 'work', 'mnt'].map((d) => join(base, d)) as [string, string, string, string, string]
    for (const d of [lower, lower2, upper, work, mnt]) await mkdir(d, { recursive: true })
    await writeFile(join(lower, 'etc-hosts'), '127.0.0.1 localhost\n')
    await writeFile(join(lower2, 'base'), 'base layer\n')
  }

  it('returns only once the mount is live, and serves the merged tree', async () => {
    await fresh()
    const h = mounts.add(await mountFuse([process.execPath, CLI, '-o', `lowerdir=${lower}:${lower2},upperdir=${upper},workdir=${work}`, mnt], mnt))
    expect(h.fstype).toBe('fuse.layerfs')
    expect((await readdir(mnt)).sort()).toEqual(['base', 'etc-hosts'])
    await writeFile(join(mnt, 'base'), 'changed\n')
    // With flush_behind the copy is named a moment after the write returns; surely by the unmount.
    await mounts.unmount(h)
    expect(await readFile(join(upper, 'base'), 'utf8')).toBe('changed\n')
    expect(await readFile(join(lower2, 'base'), 'utf8')).toBe('base layer\n')
  })

  it('honours setuid bits as root unless nosuid, and device nodes only with dev', async () => {
    await fresh()
    // A setuid-root copy of id(1) and a node for /dev/null, in the lower layer; another user runs it.
    await copyFile('/usr/bin/id', join(lower, 'id'))
    await chmod(join(lower, 'id'), 0o4755)
    mknodSync(join(lower, 'null'), constants.S_IFCHR | 0o666, (1 << 8) | 3)
    await chmod(dir, 0o711)
    const euid = async (): Promise<string> => {
      const r = await runCmd('setpriv', ['--reuid=1000', '--regid=1000', '--clear-groups', join(mnt, 'id'), '-u'])
      expect(r.code, r.stderr).toBe(0)
      return r.stdout.trim()
    }
    const stack = `lowerdir=${lower},upperdir=${upper},workdir=${work}`
    let h = mounts.add(await mountFuse([process.execPath, CLI, '-o', stack, mnt], mnt))
    expect(findMount(mnt)?.options.split(',')).toEqual(expect.arrayContaining(['nodev']))
    expect(findMount(mnt)?.options.split(',')).not.toContain('nosuid')
    expect(await euid()).toBe('0')
    await expect(writeFile(join(mnt, 'null'), 'x')).rejects.toMatchObject({ code: 'EACCES' })
    await mounts.unmount(h)
    h = mounts.add(await mountFuse([process.execPath, CLI, '-o', `${stack},nosuid,dev`, mnt], mnt))
    expect(findMount(mnt)?.options.split(',')).toEqual(expect.arrayContaining(['nosuid']))
    expect(findMount(mnt)?.options.split(',')).not.toContain('nodev')
    expect(await euid()).toBe('1000')
    await writeFile(join(mnt, 'null'), 'x') // the device's, not a file's: nothing is stored
    expect(await readFile(join(mnt, 'null'), 'utf8')).toBe('')
    await mounts.unmount(h)
  })

  it('enforces POSIX ACLs unless noacl', async () => {
    await fresh()
    // Mode bits let everyone read; the ACL denies uid 1000 (the differential suite compares the
    // default with overlayfs).
    await writeFile(join(lower, 'acl'), 'secret\n', { mode: 0o644 })
    const setfacl = await runCmd('setfacl', ['-m', 'u:1000:-', join(lower, 'acl')])
    expect(setfacl.code, setfacl.stderr).toBe(0)
    await chmod(dir, 0o711)
    const read = () => runCmd('setpriv', ['--reuid=1000', '--regid=1000', '--clear-groups', 'cat', join(mnt, 'acl')])
    const stack = `lowerdir=${lower},upperdir=${upper},workdir=${work}`
    let h = mounts.add(await mountFuse([process.execPath, CLI, '-o', stack, mnt], mnt))
    const denied = await read()
    expect(denied.code).not.toBe(0)
    expect(denied.stderr).toMatch(/Permission denied/)
    await mounts.unmount(h)
    h = mounts.add(await mountFuse([process.execPath, CLI, '-o', `${stack},noacl`, mnt], mnt))
    expect((await read()).stdout).toBe('secret\n')
    await mounts.unmount(h)
  })

  it('takes the SOURCE MNT -o form that mount.fuse3 passes, with \\: escapes', async () => {
    await fresh()
    const colon = join(dir, `with:colon-${n}`)
    await mkdir(colon)
    await writeFile(join(colon, 'c'), 'c')
    const lowers = `${colon.replace(/:/g, '\\:')}:${lower}`
    mounts.add(await mountFuse([process.execPath, CLI, 'mysource', mnt, '-o', `rw,nodev,lowerdir=${lowers},upperdir=${upper},workdir=${work}`], mnt))
    expect((await readdir(mnt)).sort()).toEqual(['c', 'etc-hosts'])
    const info = await readFile('/proc/self/mountinfo', 'utf8')
    expect(info).toMatch(new RegExp(`fuse\\.layerfs mysource `))
  })

  it('is mounted by mount(8) through mount.fuse3, as container tools do', async () => {
    await fresh()
    // mount.fuse3 runs `PROGRAM SOURCE MNT -o OPTS` for a source written `PROGRAM#SOURCE`.
    const shim = join(dir, `layerfs-shim-${n}`)
    await writeFile(shim, `#!/bin/sh\nexec ${LAUNCHER} "$@"\n`, { mode: 0o755 })
    const r = await runCmd('mount', ['-t', 'fuse', `${shim}#imgsrc`, mnt, '-o', `lowerdir=${lower}:${lower2},upperdir=${upper},workdir=${work}`], { timeoutMs: 20_000, untilExit: true })
    if (isMounted(mnt)) mounts.add(await adopt(mnt))
    expect(r.code).toBe(0)
    expect((await readdir(mnt)).sort()).toEqual(['base', 'etc-hosts'])
    expect(await readFile('/proc/self/mountinfo', 'utf8')).toMatch(/ fuse\.layerfs imgsrc /)
  })

  it('mounts read-only without an upperdir (EROFS on writes)', async () => {
    await fresh()
    mounts.add(await mountFuse([process.execPath, CLI, '-o', `lowerdir=${lower}:${lower2}`, mnt], mnt))
    await expect(writeFile(join(mnt, 'base'), 'x')).rejects.toMatchObject({ code: 'EROFS' })
    expect(await readFile(join(mnt, 'base'), 'utf8')).toBe('base layer\n')
  })

  it('mounts read-only with an upperdir, showing the upper layer on top, as overlayfs does', async () => {
    await fresh()
    await writeFile(join(upper, 'base'), 'changed in the upper layer\n')
    await writeFile(join(upper, 'added'), 'a')
    mounts.add(await mountFuse([process.execPath, CLI, '-o', `ro,lowerdir=${lower}:${lower2},upperdir=${upper},workdir=${work}`, mnt], mnt))
    expect((await readdir(mnt)).sort()).toEqual(['added', 'base', 'etc-hosts'])
    expect(await readFile(join(mnt, 'base'), 'utf8')).toBe('changed in the upper layer\n')
    await expect(writeFile(join(mnt, 'added'), 'x')).rejects.toMatchObject({ code: 'EROFS' })
    expect(await readdir(work)).toEqual([])
  })

  it('takes the atime flags libfuse refuses with a warning, as fuse-overlayfs does, through Node and the installed command', async () => {
    await fresh()
    const args = ['-o', `lowerdir=${lower},upperdir=${upper},workdir=${work},relatime,lazytime,noatime`, mnt]
    const r = await layerfs(args)
    if (isMounted(mnt)) mounts.add(await adopt(mnt))
    expect(r.code).toBe(0)
    expect(r.stderr).toBe('layerfs: warning: ignoring relatime: a FUSE mount takes no such flag (it is relatime, or noatime)\n' +
      'layerfs: warning: ignoring lazytime: a FUSE mount takes no such flag (it is relatime, or noatime)\n')
    expect((await readFile('/proc/self/mountinfo', 'utf8')).split('\n').find((l) => l.includes(` ${mnt} `))).toMatch(/noatime/)
    await mounts.unmountAll()
    const l = await launcher(args)
    if (isMounted(mnt)) mounts.add(await adopt(mnt))
    expect({ code: l.code, stderr: l.stderr }).toEqual({ code: 0, stderr: r.stderr })
  })

  it('mounts on a symlink to a directory on another filesystem', async () => {
    await fresh()
    const target = await mkdtemp('/dev/shm/layerfs-cli-')
    try {
      await symlink(target, join(dir, `link${n}`))
      const r = await launcher(['-o', `lowerdir=${lower}`, join(dir, `link${n}`)])
      if (isMounted(target)) mounts.add(await adopt(target))
      expect(r).toMatchObject({ code: 0, stderr: '' })
      expect(await readdir(join(dir, `link${n}`))).toEqual(['etc-hosts'])
      await mounts.unmountAll()
    } finally {
      await rm(target, { recursive: true, force: true })
    }
  })

  it('lists trusted.* xattr names to root only, as the kernel does', async () => {
    await fresh()
    const { lsetxattr } = await import('../../src/sys/native.js')
    await lsetxattr(join(lower, 'etc-hosts'), 'trusted.hidden', Buffer.from('1'))
    await lsetxattr(join(lower, 'etc-hosts'), 'user.shown', Buffer.from('2'))
    await chmod(dir, 0o755)
    mounts.add(await mountFuse([process.execPath, CLI, '-o', `lowerdir=${lower}`, mnt], mnt))
    const names = async (asUser: string[]) =>
      (await runCmd('setpriv', [...asUser, 'getfattr', '-m', '-', '--absolute-names', join(mnt, 'etc-hosts')])).stdout.split('\n').filter((l) => l !== '' && !l.startsWith('#')).sort()
    expect(await names(['--reuid=0'])).toEqual(['trusted.hidden', 'user.shown'])
    expect(await names(['--reuid=65534', '--regid=65534', '--clear-groups'])).toEqual(['user.shown'])
  })

  it('still serves through the fuse-native bridge when asked (bridge=fuse-native)', async () => {
    await fresh()
    const h = mounts.add(await mountFuse([process.execPath, CLI, '-o', `lowerdir=${lower}:${lower2},upperdir=${upper},workdir=${work},bridge=fuse-native`, mnt], mnt))
    await writeFile(join(mnt, 'base'), 'through libfuse 2\n')
    await writeFile(join(mnt, 'new'), 'n')
    await rm(join(mnt, 'etc-hosts'))
    expect((await readdir(mnt)).sort()).toEqual(['base', 'new'])
    // With flush_behind the copy is named a moment after the write returns; surely by the unmount.
    await mounts.unmount(h)
    expect(await readFile(join(upper, 'base'), 'utf8')).toBe('through libfuse 2\n')
    expect((await lstat(join(upper, 'etc-hosts'))).isCharacterDevice()).toBe(true)
  })

  it('warns about unknown options and mounts anyway, through Node and through the installed command', async () => {
    await fresh()
    const args = ['-o', `lowerdir=${lower},upperdir=${upper},workdir=${work},frobnicate=1`, mnt]
    const r = await layerfs(args)
    if (isMounted(mnt)) mounts.add(await adopt(mnt))
    expect(r.code).toBe(0)
    expect(r.stderr).toBe('layerfs: warning: ignoring unknown option frobnicate=1\n')
    await mounts.unmountAll()
    const l = await launcher(args)
    if (isMounted(mnt)) mounts.add(await adopt(mnt))
    expect({ code: l.code, stderr: l.stderr }).toEqual({ code: 0, stderr: r.stderr })
    expect(isMounted(mnt)).toBe(true)
  })

  it('warns when another mount holds the upperdir and workdir, as overlayfs does, and mounts anyway', async () => {
    await fresh()
    const args = ['-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`]
    const first = await launcher([...args, mnt])
    if (isMounted(mnt)) mounts.add(await adopt(mnt))
    expect({ code: first.code, stderr: first.stderr }).toEqual({ code: 0, stderr: '' })
    const mnt2 = `${mnt}2`
    await mkdir(mnt2)
    const second = await launcher([...args, mnt2])
    if (isMounted(mnt2)) mounts.add(await adopt(mnt2))
    expect(second.code).toBe(0)
    expect(second.stderr).toBe(
      `layerfs: warning: upperdir ${upper} is in use by another layerfs mount: changes made through both are undefined\n` +
      `layerfs: warning: workdir ${work} is in use by another layerfs mount: its scratch area is left as it is\n`)
    await writeFile(join(mnt, 'through-first'), 'x')
    expect(await readFile(join(mnt2, 'through-first'), 'utf8')).toBe('x')
    // Once both daemons are gone, the directories are free again.
    const daemons = processesNaming(mnt)
    expect(daemons).toHaveLength(2)
    await mounts.unmountAll()
    for (let i = 0; i < 100 && processesNaming(mnt).length > 0; i++) await new Promise((r) => setTimeout(r, 50))
    expect(processesNaming(mnt)).toEqual([])
    const third = await layerfs([...args, mnt])
    if (isMounted(mnt)) mounts.add(await adopt(mnt))
    expect({ code: third.code, stderr: third.stderr }).toEqual({ code: 0, stderr: '' })
  })

  it('mounts through the installed command with one Node start: the daemon in its own session, with the V8 flags and environment it gets from Node', async () => {
    await fresh()
    // NODE_EXTRA_CA_CERTS costs every Node start the parsing of its certificates; the daemon goes without.
    const env = { ...process.env, NODE_EXTRA_CA_CERTS: '/etc/ssl/certs/ca-certificates.crt', LAYERFS_PROBE: 'kept' }
    const h = mounts.add(await mountFuse([LAUNCHER, '-o', `lowerdir=${lower}:${lower2},upperdir=${upper},workdir=${work}`, mnt], mnt, { env }))
    expect(h.daemonPids).toHaveLength(1)
    const pid = h.daemonPids[0]!
    const statLine = await readFile(`/proc/${pid}/stat`, 'utf8')
    const fields = statLine.slice(statLine.lastIndexOf(')') + 2).split(' ')
    expect(Number(fields[1]), 'parent: the command has gone, the daemon is init\'s').toBe(1)
    expect(Number(fields[3]), 'session: its own').toBe(pid)
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0')
    expect(cmdline.slice(1, 1 + DAEMON_V8_FLAGS.length)).toEqual(DAEMON_V8_FLAGS)
    expect(cmdline[1 + DAEMON_V8_FLAGS.length], 'the bundled daemon').toBe(BUNDLE)
    const environ = (await readFile(`/proc/${pid}/environ`, 'utf8')).split('\0')
    expect(environ).toContain('LAYERFS_PROBE=kept')
    expect(environ.filter((e) => e.startsWith('NODE_EXTRA_CA_CERTS='))).toEqual([])
    expect((await readdir(mnt)).sort()).toEqual(['base', 'etc-hosts'])
    await writeFile(join(mnt, 'base'), 'changed\n')
    await mounts.unmount(h)
    expect(await readFile(join(upper, 'base'), 'utf8')).toBe('changed\n')
  })

  it('goes on serving once its first seconds are over and it takes V8\'s own optimizing budget again, having written its code cache', async () => {
    await fresh()
    const cache = join(dir, 'code-full.cache')
    const env = { ...process.env, LAYERFS_CODE_CACHE: cache }
    const h = mounts.add(await mountFuse([LAUNCHER, '-o', `lowerdir=${lower}:${lower2},upperdir=${upper},workdir=${work}`, mnt], mnt, { env }))
    const pid = h.daemonPids[0]!
    expect((await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0'), 'started with the larger budget').toContain(STARTUP_BUDGET_FLAG)
    expect(existsSync(cache), 'no cache written yet').toBe(false)
    // The switch loads node:v8 from the bundle: a daemon that failed to would die of the rejection.
    await new Promise((r) => setTimeout(r, STARTUP_JIT_MS + 500))
    expect(existsSync(`/proc/${pid}`), 'the daemon is alive').toBe(true)
    // (Written on the thread pool and flushed to the disk: allowed a few seconds more.)
    for (let i = 0; i < 50 && !existsSync(cache); i++) await new Promise((r) => setTimeout(r, 100))
    expect(cacheHeader(await readFile(cache)).kind, 'written as the first seconds ended').toBe('full')
    await writeFile(join(mnt, 'base'), 'later\n')
    expect(await readFile(join(mnt, 'base'), 'utf8')).toBe('later\n')
    await mounts.unmount(h)
    expect(await readFile(join(upper, 'base'), 'utf8')).toBe('later\n')
    // The next daemon compiles its code from it.
    await fresh()
    mounts.add(await mountFuse([LAUNCHER, '-o', `lowerdir=${lower}:${lower2},upperdir=${upper},workdir=${work}`, mnt], mnt, { env }))
    expect(await codeCacheUse(mnt)).toBe('full')
    expect((await readdir(mnt)).sort()).toEqual(['base', 'etc-hosts'])
  })

  it('compiles the daemon\'s code from a code cache the daemons write themselves, and ignores one it cannot trust', async () => {
    const cache = join(dir, 'code-early.cache')
    const env = { ...process.env, LAYERFS_CODE_CACHE: cache }
    /** A mount through the installed command, used and unmounted: how its daemon compiled its code. */
    const cycle = async (): Promise<string | undefined> => {
      await fresh()
      const h = mounts.add(await mountFuse([LAUNCHER, '-o', `lowerdir=${lower}:${lower2},upperdir=${upper},workdir=${work}`, mnt], mnt, { env }))
      const use = await codeCacheUse(mnt)
      expect((await readdir(mnt)).sort()).toEqual(['base', 'etc-hosts'])
      await writeFile(join(mnt, 'base'), 'changed\n')
      await mounts.unmount(h)
      expect(await readFile(join(upper, 'base'), 'utf8')).toBe('changed\n')
      return use
    }
    const code = await stat(CODE)
    // None yet: the code is compiled from its source, and the cache written as the daemon exits.
    expect(await cycle()).toBe('none')
    const written = await readFile(cache)
    const header = cacheHeader(written)
    const { size: _size, ...fields } = header
    expect(fields).toEqual({ magic: 'layerfs-code-cache-1', key: `${code.size}:${code.mtimeMs}:${code.ino}`, length: written.length - header.size, kind: 'early' })
    expect((await stat(cache)).mode & 0o777, 'writable by its owner alone').toBe(0o644)
    // The next daemon compiles from it, and says so.
    await fresh()
    const h = mounts.add(await mountFuse([LAUNCHER, '-o', `lowerdir=${lower}:${lower2},upperdir=${upper},workdir=${work}`, mnt], mnt, { env }))
    expect((await layerfs(['stats', mnt])).stdout).toMatch(/^code cache +early +\(the daemon's code compiled from the cache a shorter-lived daemon wrote as it exited\)$/m)
    await mounts.unmount(h)
    // A cache V8 rejects (its header right, its data garbage): compiled from the source, and replaced.
    const head = written.subarray(0, header.size)
    await writeFile(cache, Buffer.concat([head, Buffer.alloc(written.length - header.size, 0x5a)]))
    expect(await cycle()).toBe('none')
    expect(await cycle()).toBe('early')
    // One made for another build of the code: not used, and replaced.
    const other = `${code.size}:${code.mtimeMs}:${code.ino + 1}`
    await writeFile(cache, Buffer.concat([Buffer.from(head.toString('latin1').replace(header.key, other), 'latin1'), written.subarray(header.size)]))
    expect(await cycle()).toBe('none')
    expect(cacheHeader(await readFile(cache)).key).toBe(header.key)
    // One that others may write is not used: it is code the daemon runs.
    await chmod(cache, 0o666)
    expect(await cycle()).toBe('none')
    expect((await stat(cache)).mode & 0o777).toBe(0o644)
    // LAYERFS_CODE_CACHE=off: none read, none written.
    await rm(cache)
    await fresh()
    const off = mounts.add(await mountFuse([LAUNCHER, '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, mnt], mnt, { env: { ...env, LAYERFS_CODE_CACHE: 'off' } }))
    expect(await codeCacheUse(mnt)).toBe('none')
    await mounts.unmount(off)
    expect(existsSync(cache)).toBe(false)
  })

  it('bundles a daemon that does not load node:fs/promises at its start (7 ms of a mount, for calls made once)', async () => {
    const bundle = await readFile(CODE, 'utf8')
    expect(bundle).toContain('require("node:fs")')
    expect(bundle).not.toContain('require("node:fs/promises")')
  })

  it("starts a daemon that loads none of Node's modules a mount has no use for (each cost a mount 0.4-3 ms)", async () => {
    await fresh()
    // A preload (NODE_OPTIONS reaches the daemon) that writes, as the daemon exits, the built-in
    // modules loaded in it.
    const preload = join(dir, 'loaded.cjs')
    const list = join(dir, 'loaded.txt')
    await writeFile(preload, `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(list)}, process.moduleLoadList.join('\\n')))\n`)
    const env = { ...process.env, NODE_OPTIONS: `--require ${preload}` }
    const h = mounts.add(await mountFuse([LAUNCHER, '-o', `lowerdir=${lower}:${lower2},upperdir=${upper},workdir=${work}`, mnt], mnt, { env }))
    expect((await readdir(mnt)).sort()).toEqual(['base', 'etc-hosts'])
    await writeFile(join(mnt, 'etc-hosts'), 'changed\n') // a copy-up: its timers ran
    await mounts.unmount(h)
    const loaded = (await readFile(list, 'utf8')).split('\n')
    // The list is the daemon's: its loader compiles the code as a vm.Script.
    expect(loaded).toContain('NativeModule vm')
    for (const unused of ['perf_hooks', 'module', 'internal/fs/rimraf', 'fs/promises', 'child_process']) {
      expect(loaded).not.toContain(`NativeModule ${unused}`)
    }
  })

  it('bundles a daemon in ASCII, which its loader reads as latin1 (a one-byte string compiles faster)', async () => {
    const bytes = await readFile(CODE)
    expect(bytes.findIndex((b) => b >= 0x80)).toBe(-1)
    // The sources do have such characters, in comments: the bundler escaped them.
    expect(bytes.toString('latin1')).toMatch(/\\u\{[0-9a-f]+\}/)
  })

  it('starts the daemon from the compiled modules when the bundle is older than them (tsc was run alone), through Node and through the installed command', async () => {
    const { mtime } = await stat(BUNDLE)
    const main = resolve('dist/src/cli/main.js')
    try {
      await utimes(BUNDLE, mtime, new Date((await stat(main)).mtimeMs - 3_600_000))
      for (const command of [LAUNCHER, process.execPath]) {
        await fresh()
        const args = ['-o', `lowerdir=${lower}:${lower2},upperdir=${upper},workdir=${work}`, mnt]
        const h = mounts.add(await mountFuse(command === LAUNCHER ? [LAUNCHER, ...args] : [process.execPath, CLI, ...args], mnt))
        const cmdline = (await readFile(`/proc/${h.daemonPids[0]!}/cmdline`, 'utf8')).split('\0')
        expect(cmdline[1 + DAEMON_V8_FLAGS.length], command).toBe(main)
        expect((await readdir(mnt)).sort()).toEqual(['base', 'etc-hosts'])
        await mounts.unmount(h)
      }
    } finally {
      await utimes(BUNDLE, mtime, mtime)
    }
    // Current again: both commands start the bundle.
    await fresh()
    const h = mounts.add(await mountFuse([process.execPath, CLI, '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, mnt], mnt))
    expect((await readFile(`/proc/${h.daemonPids[0]!}/cmdline`, 'utf8')).split('\0')[1 + DAEMON_V8_FLAGS.length]).toBe(BUNDLE)
  })

  it('hands subcommands and help to Node: the installed command knows the subcommands main.ts knows', async () => {
    const help = await launcher(['--help'])
    expect(help).toEqual(await layerfs(['--help']))
    expect(help.stdout).toMatch(/^usage:/)
    const script = await readFile(LAUNCHER, 'utf8')
    const listed = /'' \| -h \| --help \| help \| ([a-z| ]+)\)/.exec(script)?.[1]?.split(' | ').sort()
    const known = [...(await readFile(resolve('src/cli/main.ts'), 'utf8')).matchAll(/^ {2}(\w+): \(\) => import\(/gm)].map((m) => m[1]).sort()
    expect(known.length).toBeGreaterThan(5)
    expect(listed).toEqual(known)
    expect(script).toContain(`"$node" ${DAEMON_V8_FLAGS.join(' ')} \\\n`)
  })

  it('reports statistics of a live mount', async () => {
    await fresh()
    await writeFile(join(lower, 'chmodded'), 'x')
    mounts.add(await mountFuse([process.execPath, CLI, '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, mnt], mnt))
    await writeFile(join(mnt, 'etc-hosts'), 'x')
    await chmod(join(mnt, 'chmodded'), 0o600) // looked up, then copied up and answered in C
    const r = await layerfs(['stats', mnt, '--json'])
    expect(r.code).toBe(0)
    const stats = JSON.parse(r.stdout) as { copyUps: { copyUps: number }; ops: Record<string, number> }
    expect(stats.copyUps.copyUps).toBe(2)
    expect(stats.ops.open).toBeGreaterThan(0)
    // The text form names the same numbers.
    const text = await layerfs(['stats', mnt])
    expect(text.code).toBe(0)
    expect(text.stdout).toMatch(/^copy-ups +2 /m)
    expect(text.stdout).toMatch(/^answered in C +\d+ opens for reading \(\d+ of them first opens, their bytes stored, \d+ of those read from the disk; \d+ passed through\), \d+ opens for writing \(copy-ups, files in the upper layer\), 1 setattrs \(copy-ups, directories copied up, files in the upper layer, files it made or opened for writing\), \d+ getattrs \(lower files and directories, files and directories in the upper layer, files it made\), \d+ getxattrs \(lower files, files in the upper layer, files it made\), \d+ listxattrs of lower files and files in the upper layer, \d+ ACLs set on files it made, \d+ setxattrs of lower files \(copy-ups\), \d+ lookups of directories, \d+ first lookups of lower files, \d+ first lookups of lower directories, \d+ renames of lower files, \d+ links of lower files, \d+ lookups of missing names \(for these lookups, \d+ lower directories' names read\), \d+ ends of listings$/m)
    expect(text.stdout).toMatch(/^passthrough +(on|off) +\(\d+ opens passed through, \d+ of them answered in C\)$/m)
    const loop = (JSON.parse(r.stdout) as { loop: { spins: number; spinsSkipped: number; spinCallers: number } }).loop
    // (Counts move between the two readings: each is a request from another process.)
    expect(text.stdout).toMatch(new RegExp(`^busy-polls +\\d+ +\\(\\d+ skipped with more calling threads than ${loop.spinCallers}\\)$`, 'm'))
  })

  it('unmounts and exits on SIGTERM', async () => {
    await fresh()
    const child = spawn(process.execPath, [CLI, '-f', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, mnt], { stdio: 'ignore' })
    try {
      const deadline = Date.now() + 15_000
      while (!isMounted(mnt) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
      expect(isMounted(mnt)).toBe(true)
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
      child.kill('SIGTERM')
      expect(await exited).toBe(0)
      expect(isMounted(mnt)).toBe(false)
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL')
      if (isMounted(mnt)) await runCmd('fusermount3', ['-uz', mnt])
    }
  })

  it('stays in the foreground with -o debug, as libfuse does, and writes the FUSE debugging to stderr', async () => {
    await fresh()
    const child = spawn(LAUNCHER, ['-o', `lowerdir=${lower},debug`, mnt], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    try {
      const deadline = Date.now() + 15_000
      while (!isMounted(mnt) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
      expect(await readdir(mnt)).toEqual(['etc-hosts'])
      expect(child.exitCode).toBe(null)
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
      expect((await layerfs(['umount', mnt])).code).toBe(0)
      expect(await exited).toBe(0)
      expect(stderr).toMatch(/opcode: INIT/)
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL')
      if (isMounted(mnt)) await runCmd('fusermount3', ['-uz', mnt])
    }
  })

  it('exits by itself after layerfs umount', async () => {
    await fresh()
    const child = spawn(process.execPath, [CLI, '-f', '-o', `lowerdir=${lower}`, mnt], { stdio: 'ignore' })
    try {
      const deadline = Date.now() + 15_000
      while (!isMounted(mnt) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
      expect((await layerfs(['umount', mnt])).code).toBe(0)
      expect(await exited).toBe(0)
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL')
      if (isMounted(mnt)) await runCmd('fusermount3', ['-uz', mnt])
    }
  })

  describe('bad input: one clear line and a non-zero exit', () => {
    const cases: Array<[string, () => string[], RegExp]> = [
      ['a missing lower dir', () => ['-o', `lowerdir=${lower}/nope,upperdir=${upper},workdir=${work}`, mnt], /lower layer .*nope: no such directory/],
      ['no lowerdir', () => ['-o', `upperdir=${upper},workdir=${work}`, mnt], /no lowerdir given/],
      ['upperdir without workdir', () => ['-o', `lowerdir=${lower},upperdir=${upper}`, mnt], /upperdir and workdir go together/],
      ['a missing mountpoint', () => ['-o', `lowerdir=${lower}`, `${mnt}-nope`], /mountpoint .*: no such directory/],
      ['a bad number', () => ['-o', `lowerdir=${lower},cache_entries=lots`, mnt], /cache_entries=lots: not a number/],
      ['a bad metacopy value', () => ['-o', `lowerdir=${lower},metacopy=maybe`, mnt], /metacopy=maybe: expected on or off/],
      ['a bad redirect_dir value', () => ['-o', `lowerdir=${lower},redirect_dir=yes`, mnt], /redirect_dir=yes: expected on, off, follow or nofollow/],
      ['metacopy=on with redirect_dir=off', () => ['-o', `lowerdir=${lower},redirect_dir=off,metacopy=on`, mnt], /metacopy=on conflicts with redirect_dir=off/],
      ['a bad flush_behind value', () => ['-o', `lowerdir=${lower},flush_behind=yes`, mnt], /flush_behind=yes: expected 0 or 1/],
      ['a flush window out of range', () => ['-o', `lowerdir=${lower},flush_window=90000`, mnt], /flush_window=90000: expected milliseconds, 0 to 60000/],
      ['a bad passthrough value', () => ['-o', `lowerdir=${lower},passthrough=yes`, mnt], /passthrough=yes: expected on, upper or off/],
      ['an unknown bridge', () => ['-o', `lowerdir=${lower},bridge=fuse4`, mnt], /bridge=fuse4: expected ll or fuse-native/],
      ['a spin out of range', () => ['-o', `lowerdir=${lower},spin=20000`, mnt], /spin=20000: expected microseconds, 0 to 10000/],
      ['an unknown flag', () => ['--frob', mnt], /unknown flag --frob/],
      ['a uid mapping that is not triples', () => ['-o', `lowerdir=${lower},uidmapping=0:100000`, mnt], /uidmapping: expected INSIDE:OUTSIDE:COUNT triples/],
      ['a gid mapping with an empty range', () => ['-o', `lowerdir=${lower},gidmapping=0:100000:0`, mnt], /gidmapping: bad range 0:100000:0/],
      ['a squash to a name', () => ['-o', `lowerdir=${lower},squash_to_uid=root`, mnt], /squash_to_uid=root: not a uid or gid/],
      ['a mapping with bridge=fuse-native', () => ['-o', `lowerdir=${lower},squash_to_root,bridge=fuse-native`, mnt], /need bridge=ll/],
      ['upper and work on different filesystems', () => ['-o', `lowerdir=${lower},upperdir=${upper},workdir=/dev/shm`, mnt], /same filesystem/],
      ['a workdir inside the upperdir, named ..w', () => ['-o', `lowerdir=${lower},upperdir=${upper},workdir=${made(`${upper}/..w`)}`, mnt], /upperdir and workdir must not contain each other/],
      ['a workdir that is a lower layer', () => ['-o', `lowerdir=${lower},upperdir=${upper},workdir=${lower}`, mnt], /workdir .* and lower layer .* must not contain each other/],
      ['a lower layer inside the upperdir', () => ['-o', `lowerdir=${made(`${upper}/..w`)},upperdir=${upper},workdir=${work}`, mnt], /upperdir .* and lower layer .* must not contain each other/],
      ['a trailing -o', () => ['-o', `lowerdir=${lower}`, mnt, '-o'], /-o needs a value/],
    ]
    for (const [what, args, message] of cases) {
      it(`rejects ${what}, through Node and through the installed command alike`, async () => {
        await fresh()
        const r = await layerfs(args())
        if (isMounted(mnt)) mounts.add(await adopt(mnt))
        expect(r.code).not.toBe(0)
        expect(r.stderr.trim().split('\n')).toHaveLength(1)
        expect(r.stderr).toMatch(message)
        expect(isMounted(mnt)).toBe(false)
        // bin/layerfs learns the outcome from the daemon's report: the same line and exit code.
        const l = await launcher(args())
        if (isMounted(mnt)) mounts.add(await adopt(mnt))
        expect({ code: l.code, stderr: l.stderr }).toEqual({ code: r.code, stderr: r.stderr })
        expect(isMounted(mnt)).toBe(false)
      })
    }

    it('rejects a busy mountpoint', async () => {
      await fresh()
      mounts.add(await mountFuse([process.execPath, CLI, '-o', `lowerdir=${lower}`, mnt], mnt))
      const r = await layerfs(['-o', `lowerdir=${lower2}`, mnt])
      expect(r.code).toBe(1)
      expect(r.stderr).toMatch(/is busy/)
      expect(await readdir(mnt)).toEqual(['etc-hosts'])
    })
  })
})

/** A mount a test made without mountFuse (so the set can clean it up). */
async function adopt(mnt: string): Promise<import('../helpers/mount.js').MountHandle> {
  const { findMount } = await import('../helpers/mount.js')
  const m = findMount(mnt)
  return { mnt, kind: 'fuse', fstype: m?.fstype ?? 'fuse', dev: m?.dev ?? '0:0', daemonPids: [], extraDirs: [], unmounted: false }
}

