import { execFile } from 'node:child_process'
import { constants } from 'node:fs'
import { mkdir, readFile, readdir, writeFile, symlink, link } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { promisify } from 'node:util'
import { createGunzip } from 'node:zlib'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { run as commit } from '../../src/cli/commands/commit.js'
import { run as diff } from '../../src/cli/commands/diff.js'
import { readTar } from '../../src/image/tar-reader.js'
import { openImage } from '../../src/image/open-image.js'
import { lsetxattr, makedev, mknod } from '../../src/sys/native.js'
import { makeTar, ociLayoutFiles, runCli, sha, tempDir, writeFilesToDir } from './fixtures.js'

const exec = promisify(execFile)
const has = async (bin: string) => exec('which', [bin]).then(() => true, () => false)
const hasSkopeo = await has('skopeo')
if (!hasSkopeo) console.log('skipping skopeo round-trip tests: skopeo is not installed (apt-get install skopeo)')
const isRoot = process.getuid?.() === 0

let t: { dir: string; cleanup: () => Promise<void> }
let base: string
let upper: string
beforeEach(async () => {
  t = await tempDir()
  const l0 = await makeTar([
    { name: 'etc/', type: 'directory' },
    { name: 'etc/conf', content: 'old' },
    { name: 'etc/gone', content: 'bye' },
    { name: 'var/', type: 'directory' },
    { name: 'var/cache/', type: 'directory' },
    { name: 'var/cache/x', content: 'x' },
  ])
  base = await writeFilesToDir(join(t.dir, 'base'), ociLayoutFiles([{ tag: 'v1', layers: [l0] }]))
  upper = join(t.dir, 'upper')
  await mkdir(join(upper, 'etc'), { recursive: true })
  await mkdir(join(upper, 'var/cache'), { recursive: true })
  await writeFile(join(upper, 'etc/conf'), 'new')
  await writeFile(join(upper, 'etc/added'), 'hi')
  await link(join(upper, 'etc/added'), join(upper, 'etc/added2'))
  await symlink('conf', join(upper, 'etc/sym'))
  await writeFile(join(upper, 'var/cache/y'), 'y')
  await lsetxattr(join(upper, 'etc/added'), 'user.note', 'kept')
  if (isRoot) {
    await mknod(join(upper, 'etc/gone'), constants.S_IFCHR, makedev(0, 0))
    await lsetxattr(join(upper, 'var/cache'), 'trusted.overlay.opaque', 'y')
  } else {
    await writeFile(join(upper, 'etc/.wh.gone'), '')
    await writeFile(join(upper, 'var/cache/.wh..wh..opq'), '')
  }
})
afterEach(async () => {
  await t.cleanup()
})

async function tarNames(gz: Buffer): Promise<Array<[string, string, Record<string, string> | null | undefined]>> {
  const names: Array<[string, string, Record<string, string> | null | undefined]> = []
  await readTar(Readable.from([gz]).pipe(createGunzip()), async (h) => void names.push([h.name, h.type, h.pax]), { what: 'layer' })
  return names
}

describe('layerfs diff', () => {
  it('tells added from changed and lists deletions when given the base image', async () => {
    const r = await runCli(diff, ['--store', join(t.dir, 'store'), '--from', `${base}:v1`, upper])
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(
      ['C /etc', 'A /etc/added', 'A /etc/added2', 'C /etc/conf', 'D /etc/gone', 'A /etc/sym', 'C /var', 'C /var/cache', 'D /var/cache/x', 'A /var/cache/y', ''].join('\n'),
    )
  })

  it('reports A for present entries and D for whiteouts without lower layers', async () => {
    const r = await runCli(diff, [upper])
    expect(r.stdout).toMatch(/^A \/etc\nA \/etc\/added\n/)
    expect(r.stdout).toMatch(/\nD \/etc\/gone\n/)
    expect(r.stdout).not.toMatch(/var\/cache\/x/)
  })

  it('prints a name that is not UTF-8 as its bytes, as ls does, not as U+FFFD', async () => {
    const { spawnSync } = await import('node:child_process')
    const { hostPath, nameFromBytes } = await import('../../src/sys/names.js')
    const latin1 = nameFromBytes(Buffer.from('caf\xe9', 'latin1'))
    await writeFile(hostPath(join(upper, 'etc', latin1)), '')
    await writeFile(join(upper, 'etc', 'caf\ufffd'), '')
    const r = spawnSync(process.execPath, [join(import.meta.dirname, '../../bin/layerfs.js'), 'diff', upper], { timeout: 20_000 })
    expect(r.status).toBe(0)
    const lines = r.stdout.toString('latin1').split('\n')
    expect(lines).toContain('A /etc/caf\xe9')
    expect(lines).toContain(`A /etc/${Buffer.from('caf\ufffd').toString('latin1')}`)
  })

  it('accepts --lower with layer dirs topmost first', async () => {
    const img = await openImage(base, { store: join(t.dir, 'store') })
    const r = await runCli(diff, ['--lower', img.lowerDirs().join(':'), upper])
    expect(r.stdout).toMatch(/\nC \/etc\/conf\n/)
  })
})

describe('layerfs commit', () => {
  it('writes an OCI layout whose new layer encodes whiteouts, opaque dirs, links and xattrs', async () => {
    const out = join(t.dir, 'out')
    const r = await runCli(commit, ['--upper', upper, '--from', `${base}:v1`, '--tag', 'new', '-o', out])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const img = await openImage(`${out}:new`, { store: join(t.dir, 'store') })
    expect(img.layers).toHaveLength(2)
    expect(img.layers[1]!.createdBy).toBe('layerfs commit')
    const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> }
    const manifest = JSON.parse(await readFile(join(out, 'blobs/sha256', index.manifests[0]!.digest.slice(7)), 'utf8')) as { layers: Array<{ digest: string }> }
    const gz = await readFile(join(out, 'blobs/sha256', manifest.layers[1]!.digest.slice(7)))
    const entries = await tarNames(gz)
    expect(entries.map(([n, ty]) => `${ty}:${n}`)).toEqual([
      'directory:etc/', 'file:etc/.wh.gone', 'file:etc/added', 'link:etc/added2', 'file:etc/conf', 'symlink:etc/sym',
      'directory:var/', 'directory:var/cache/', 'file:var/cache/.wh..wh..opq', 'file:var/cache/y',
    ])
    expect(entries.find(([n]) => n === 'etc/added')?.[2]).toMatchObject({ 'SCHILY.xattr.user.note': 'kept' })
  })

  it('produces the same layer digest when run twice on the same dir', async () => {
    const a = await runCli(commit, ['--upper', upper, '--from', base, '--tag', 'a', '-o', join(t.dir, 'a')])
    const b = await runCli(commit, ['--upper', upper, '--from', base, '--tag', 'a', '-o', join(t.dir, 'b')])
    expect(a.code + b.code).toBe(0)
    const blobs = async (d: string) => (await readdir(join(d, 'blobs/sha256'))).sort()
    const [ba, bb] = [await blobs(join(t.dir, 'a')), await blobs(join(t.dir, 'b'))]
    // Config and manifest carry the creation time; the layers must match.
    expect(ba.filter((x) => bb.includes(x)).length).toBeGreaterThanOrEqual(2)
  })

  it('writes a docker-save tar that imports back', async () => {
    const out = join(t.dir, 'out.tar')
    const r = await runCli(commit, ['--upper', upper, '--from', base, '--tag', 'app:2', '-o', out, '--format', 'docker'])
    expect(r.code).toBe(0)
    const img = await openImage(out, { store: join(t.dir, 'store') })
    expect(img.format).toBe('docker')
    expect(img.names).toEqual(['app:2'])
    expect(await readFile(join(img.lowerDirs()[0]!, 'etc/conf'), 'utf8')).toBe('new')
  })

  it('refuses, in commit and in diff, an upper whose directory overlayfs renamed with redirect_dir=on', async () => {
    // Its files stay in the lower layer under the old name: a commit would drop them.
    await mkdir(join(upper, 'moved'))
    await writeFile(join(upper, 'moved/new'), 'n')
    await lsetxattr(join(upper, 'moved'), isRoot ? 'trusted.overlay.redirect' : 'user.overlay.redirect', '/etc')
    const c = await runCli(commit, ['--upper', upper, '--from', `${base}:v1`, '--tag', 'new', '-o', join(t.dir, 'out')])
    expect(c.code).toBe(1)
    expect(c.stderr).toMatch(/moved is a directory renamed by an overlayfs mounted with redirect_dir=on \(from \/etc\)/)
    const d = await runCli(diff, ['--from', `${base}:v1`, upper])
    expect(d.code).toBe(1)
    expect(d.stderr).toMatch(/redirect_dir=on/)
  })

  it('keeps times before 1970 and after 2242, and big device numbers, through a commit and an import', async () => {
    const { utimes, lutimes } = await import('node:fs/promises')
    await writeFile(join(upper, 'old'), 'o')
    await utimes(join(upper, 'old'), new Date(-302_486_400_000), new Date(-302_486_400_000)) // 1960
    await writeFile(join(upper, 'far'), 'f')
    await utimes(join(upper, 'far'), new Date(10_413_792_000_000), new Date(10_413_792_000_000)) // 2300
    await symlink('old', join(upper, 'oldlink'))
    await lutimes(join(upper, 'oldlink'), new Date(-1000), new Date(-1000))
    if (isRoot) await mknod(join(upper, 'dev'), constants.S_IFCHR | 0o600, makedev(1, 300_000))
    const out = join(t.dir, 'out.tar')
    const r = await runCli(commit, ['--upper', upper, '--from', base, '--tag', 'localhost:5000/app', '-o', out, '--format', 'docker'])
    expect(r.stderr).toBe('')
    const img = await openImage(out, { store: join(t.dir, 'store') })
    expect(img.names).toEqual(['localhost:5000/app:latest'])
    const { lstat } = await import('node:fs/promises')
    const top = img.lowerDirs()[0]!
    expect((await lstat(join(top, 'old'))).mtimeMs).toBe(-302_486_400_000)
    expect((await lstat(join(top, 'far'))).mtimeMs).toBe(10_413_792_000_000)
    expect((await lstat(join(top, 'oldlink'))).mtimeMs).toBe(-1000)
    if (isRoot) {
      const { major, minor } = await import('../../src/sys/native.js')
      const dev = Number((await lstat(join(top, 'dev'))).rdev)
      expect([major(dev), minor(dev)]).toEqual([1, 300_000])
    }
  })

  it('fails with one line when the upper dir is missing', async () => {
    const r = await runCli(commit, ['--upper', join(t.dir, 'nope'), '--from', base, '--tag', 'x', '-o', join(t.dir, 'o')])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/^layerfs commit: upper dir .* is not a directory\n$/)
  })

  it.skipIf(!hasSkopeo)('writes an image that skopeo inspects and copies with verified digests', async () => {
    const out = join(t.dir, 'out')
    expect((await runCli(commit, ['--upper', upper, '--from', `${base}:v1`, '--tag', 'new', '-o', out])).code).toBe(0)
    const { stdout } = await exec('skopeo', ['inspect', `oci:${out}:new`])
    const info = JSON.parse(stdout) as { Layers: string[] }
    expect(info.Layers).toHaveLength(2)
    const copy = join(t.dir, 'copy')
    await exec('skopeo', ['copy', `oci:${out}:new`, `dir:${copy}`])
    const cfg = JSON.parse(await readFile(join(copy, 'manifest.json'), 'utf8')) as { config: { digest: string } }
    const config = JSON.parse(await readFile(join(copy, cfg.config.digest.slice(7)), 'utf8')) as { rootfs: { diff_ids: string[] } }
    expect(config.rootfs.diff_ids[0]).toBe(sha(await makeTarOfBase()))
  })
})

// The base layer as the fixture built it (diff_ids[0] must survive the commit unchanged).
async function makeTarOfBase(): Promise<Buffer> {
  return makeTar([
    { name: 'etc/', type: 'directory' },
    { name: 'etc/conf', content: 'old' },
    { name: 'etc/gone', content: 'bye' },
    { name: 'var/', type: 'directory' },
    { name: 'var/cache/', type: 'directory' },
    { name: 'var/cache/x', content: 'x' },
  ])
}
