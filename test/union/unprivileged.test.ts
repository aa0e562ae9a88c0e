// A daemon without CAP_SYS_ADMIN (a rootless container's mount program) cannot write trusted.*
// xattrs: a directory made over a removed lower one, or moved into a merged one, is then marked
// opaque with user.overlay.opaque (overlayfs's userxattr form) instead, and still hides what lies
// below. The union runs in a child process whose capabilities exclude CAP_SYS_ADMIN (setpriv).
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
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

/** Runs `body` (an async function body with `u`, the union) in a child without CAP_SYS_ADMIN. */
function unprivileged(lowers: string[], upper: string, work: string, body: string): void {
  const script = `import { Union } from ${JSON.stringify(UNION)}
const u = await Union.open({ lowers: ${JSON.stringify(lowers)}, upper: ${JSON.stringify(upper)}, work: ${JSON.stringify(work)} })
${body}`
  execFileSync('setpriv', ['--bounding-set=-sys_admin', '--inh-caps=-sys_admin', process.execPath, '--input-type=module', '-e', script], { timeout: 30_000 })
}

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
})
