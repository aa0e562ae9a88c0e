// A daemon without CAP_SYS_ADMIN (a rootless container's mount program) cannot write trusted.*
// xattrs: a directory made over a removed lower one, or moved into a merged one, is then marked
// opaque with user.overlay.opaque (overlayfs's userxattr form) instead, and still hides what lies
// below. The union runs in a child process whose capabilities exclude CAP_SYS_ADMIN (setpriv).
import { execFileSync } from 'node:child_process'
import { existsSync, lstatSync, readdirSync } from 'node:fs'
import { chmod, mkdir, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { lgetxattr } from '../../src/sys/native.js'
import { Union } from '../../src/union/union.js'
import { makeTempDir, removeTempDir } from '../helpers/tmp.js'

const root = process.getuid?.() === 0
const hasSetpriv = existsSync('/usr/bin/setpriv')
if (!root || !hasSetpriv) console.warn(`skipping unprivileged-daemon tests: ${!root ? 'needs root to drop a capability' : 'setpriv is missing'}`)
const UNION = resolve('dist/src/union/union.js')
if (root && hasSetpriv && !existsSync(UNION)) throw new Error('build first: npm run build')

/** Runs `body` (an async function body with `u`, the union) in a child process started by the
 *  command `prefix` (by default one that drops CAP_SYS_ADMIN); returns what it wrote to stdout. */
function unprivileged(lowers: string[], upper: string, work: string, body: string, options = '{}', prefix = DROP_SYS_ADMIN): string {
  const script = `import { Union } from ${JSON.stringify(UNION)}
const u = await Union.open({ lowers: ${JSON.stringify(lowers)}, upper: ${JSON.stringify(upper)}, work: ${JSON.stringify(work)}, ...${options} })
${body}`
  const [command, ...args] = prefix
  return execFileSync(command!, [...args, process.execPath, '--input-type=module', '-e', script], { timeout: 30_000, encoding: 'utf8' })
}

const DROP_SYS_ADMIN = ['setpriv', '--bounding-set=-sys_admin', '--inh-caps=-sys_admin']
/** Every mknod fails with EPERM, as on an upper filesystem that makes no device nodes (a whiteout,
 *  char 0/0, needs no capability: only such a filesystem refuses it). */
const REFUSE_MKNOD = ['strace', '-f', '-qq', '-o', '/dev/null', '-e', 'trace=mknod,mknodat', '-e', 'inject=mknod,mknodat:error=EPERM']
const hasStrace = existsSync('/usr/bin/strace')
if (root && !hasStrace) console.warn('skipping the test of .wh. files written for lack of device nodes: strace is missing')

describe.skipIf(!root || !hasSetpriv)('a union without CAP_SYS_ADMIN', () => {
  let dir = ''
  beforeAll(async () => {
    dir = await makeTempDir('unprivileged')
  })
  afterAll(async () => {
    await removeTempDir(dir)
  })

  it('marks directories opaque with user.overlay.opaque', async () => {
    const [lower, upper, work] = ['lower', 'upper', 'work'].map((d) => join(dir, d)) as [string, string, string]
    for (const d of [join(lower, 'gone/sub'), join(lower, 'merged'), upper, work]) await mkdir(d, { recursive: true })
    await writeFile(join(lower, 'gone/old'), 'old')
    await writeFile(join(lower, 'merged/low'), 'low')
    unprivileged([lower], upper, work, `
      await u.unlink('/gone/old'); await u.rmdir('/gone/sub'); await u.rmdir('/gone')
      await u.mkdir('/gone', 0o755)
      await u.mkdir('/fresh', 0o755)
      await u.rename('/fresh', '/merged/fresh', 0)
    `)
    await expect(lgetxattr(join(upper, 'gone'), 'user.overlay.opaque')).resolves.toEqual(Buffer.from('y'))
    await expect(lgetxattr(join(upper, 'gone'), 'trusted.overlay.opaque')).resolves.toBeUndefined()
    await expect(lgetxattr(join(upper, 'merged/fresh'), 'user.overlay.opaque')).resolves.toEqual(Buffer.from('y'))
    // Read back (here with every capability): the new directory hides the old one's children.
    const u = await Union.open({ lowers: [lower], upper, work })
    expect((await u.readdir('/gone')).filter((n) => n !== '.' && n !== '..')).toEqual([])
    expect((await u.readdir('/merged')).filter((n) => n !== '.' && n !== '..').sort()).toEqual(['fresh', 'low'])
  })

  // Where no char device whiteout can be made, the union writes `.wh.` files instead. Probes in
  // the directories it copied up skip the look for such files while it can make devices
  // (Resolver.markerFree); the first `.wh.` file it writes must end that, or a removed name would
  // show again once its cached answer is evicted.
  it.skipIf(!hasStrace)('writes .wh. files where device nodes are refused, and reads them back in the directories it copied up', async () => {
    const [lower, upper, work] = ['lower2', 'upper2', 'work2'].map((d) => join(dir, d)) as [string, string, string]
    for (const d of [join(lower, 'd'), upper, work]) await mkdir(d, { recursive: true })
    for (const name of ['a', 'b', 'c']) await writeFile(join(lower, 'd', name), name)
    for (let i = 0; i < 40; i++) await writeFile(join(lower, `other${i}`), '')
    const out = unprivileged([lower], upper, work, `
      const seen = async (path) => u.getattr(path).then(() => 'there', (e) => e.code)
      await u.release(await u.create('/d/new', 0o644))
      await u.unlink('/d/a')
      await u.rename('/d/b', '/d/b2', 0)
      // 40 other names through a cache of 16: /d/a and /d/b are looked up afresh.
      for (let i = 0; i < 40; i++) await u.getattr('/other' + i)
      console.log(JSON.stringify({ a: await seen('/d/a'), b: await seen('/d/b'), b2: await seen('/d/b2'), c: await seen('/d/c') }))
    `, '{ cacheEntries: 16 }', REFUSE_MKNOD)
    expect(JSON.parse(out)).toEqual({ a: 'ENOENT', b: 'ENOENT', b2: 'there', c: 'there' })
    expect(existsSync(join(upper, 'd/.wh.a'))).toBe(true)
    // A rename leaves the kernel's whiteout (RENAME_WHITEOUT makes it, no mknod call).
    expect(lstatSync(join(upper, 'd/b')).isCharacterDevice()).toBe(true)
  })

  // rmdir sets an empty directory aside in the work directory (src/union/trash.ts), which needs
  // what rmdir does not: reading it (to find it empty) and writing it (its '..' changes). A daemon
  // of an ordinary user, with no capability, removes such directories all the same.
  it('removes its own directories of modes 0555 and 0 as an ordinary user', async () => {
    const base = join(dir, 'plain-user')
    const [lower, upper, work] = ['lower', 'upper', 'work'].map((d) => join(base, d)) as [string, string, string]
    for (const d of [lower, upper, work]) await mkdir(d, { recursive: true })
    await chmod(dir, 0o755)
    execFileSync('chown', ['-R', '1000:1000', base])
    const out = unprivileged([lower], upper, work, `
      for (const [name, mode] of [['ro', 0o555], ['none', 0o000], ['plain', 0o755]]) {
        await u.mkdir('/' + name, 0o755)
        await u.chmod('/' + name, mode)
        await u.rmdir('/' + name)
      }
      u.flush()
      console.log(JSON.stringify(await u.readdir('/')))
    `, '{}', ['setpriv', '--reuid=1000', '--regid=1000', '--clear-groups'])
    expect(JSON.parse(out)).toEqual([])
    expect(readdirSync(upper)).toEqual([])
    expect(readdirSync(join(work, 'work'))).toEqual([])
  })
})
