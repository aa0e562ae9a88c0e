// flush_behind (on by default): a chown, chmod, rename or link that copies a small lower file up is
// answered before the copy is flushed, and the copies are flushed in batches, then named
// (Core.#defer, Core.deferMove, Core.deferLink). At rest the upper layer must be what kernel
// overlayfs leaves; a daemon killed mid-way must leave no name without its data, and no rename or
// link half made; and an unmount names every copy before the daemon exits.
import { execFileSync } from 'node:child_process'
import { chownSync, existsSync, linkSync, renameSync } from 'node:fs'
import { lstat, mkdir, readFile, readdir, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { mountFrame } from '../helpers/layerfs-suite.js'
import { LAYERFS_COMMAND as CLI, fuseAvailable, mountFuse, mountOverlay, overlayAvailable } from '../helpers/mount.js'

const fuse = fuseAvailable()
if (!fuse.ok) console.warn(`skipping flush_behind mount tests: ${fuse.reason}`)
const overlay = overlayAvailable()
if (fuse.ok && !overlay.ok) console.warn(`skipping the flush_behind comparison with kernel overlayfs: ${overlay.reason}`)
if (fuse.ok && !existsSync(resolve('dist/src/cli/main.js'))) throw new Error('build first: npm run build')

const DIRS = 12
const FILES = 25

/** A node_modules-like tree: DIRS directories of FILES small files, each file's bytes its own. */
async function fillLower(lower: string): Promise<void> {
  for (let d = 0; d < DIRS; d++) {
    await mkdir(join(lower, 't', `p${d}`), { recursive: true })
    for (let f = 0; f < FILES; f++) await writeFile(join(lower, 't', `p${d}`, `f${f}.js`), `module ${d}/${f}\n`.repeat(f + 1))
  }
}

/** Every regular file under `root/t` with its owner, mode and bytes, and every whiteout, sorted by
 *  path. */
async function files(root: string): Promise<string[]> {
  const out: string[] = []
  const top = join(root, 't')
  if (!existsSync(top)) return out
  for (const dir of (await readdir(top)).sort()) {
    for (const name of (await readdir(join(top, dir))).sort()) {
      const path = join(top, dir, name)
      const st = await lstat(path)
      if (st.isCharacterDevice() && st.rdev === 0) out.push(`${dir}/${name} whiteout`)
      if (!st.isFile()) continue
      out.push(`${dir}/${name} ${st.uid}:${st.gid} ${(st.mode & 0o7777).toString(8)} ${await readFile(path, 'utf8')}`)
    }
  }
  return out
}

describe.skipIf(!fuse.ok)('flush_behind', () => {
  const frame = mountFrame('flush-behind')
  const mounts = frame.mounts
  let n = 0

  async function stack(): Promise<{ lower: string; upper: string; work: string; mnt: string }> {
    const base = join(frame.dir, `s${++n}`)
    const [lower, upper, work, mnt] = ['lower', 'upper', 'work', 'mnt'].map((d) => join(base, d)) as [string, string, string, string]
    for (const d of [lower, upper, work, mnt]) await mkdir(d, { recursive: true })
    await fillLower(lower)
    return { lower, upper, work, mnt }
  }

  /** chown and chmod copy up through setattr, touch and an append through an open for writing;
   *  renames of lower files (within a directory, across, over another lower file, twice); links of
   *  lower files (within a directory, and into one a rename also writes into). */
  const change = (mnt: string): void => {
    execFileSync('chown', ['-R', '1000:1001', join(mnt, 't', 'p0'), join(mnt, 't', 'p1'), join(mnt, 't', 'p2')])
    execFileSync('chmod', ['-R', 'g+w', join(mnt, 't', 'p3')])
    execFileSync('sh', ['-c', 'touch p5/* && for f in p6/*; do echo appended >> "$f"; done', 'sh'], { cwd: join(mnt, 't') })
    const script = 'for f in p7/*; do mv "$f" "$f.mv"; done; mv p8/f1.js p9/; mv p8/f2.js p8/f3.js; mv p8/f4.js p8/x; mv p8/x p8/y'
    execFileSync('sh', ['-c', script, 'sh'], { cwd: join(mnt, 't') })
    execFileSync('sh', ['-c', 'for f in p4/*; do ln "$f" "$f.ln"; done; ln p10/f0.js p9/linked.js', 'sh'], { cwd: join(mnt, 't') })
  }

  it.skipIf(!overlay.ok)('leaves the upper layer kernel overlayfs leaves, named by the time the unmount returns', async () => {
    const k = await stack()
    const kernel = mounts.add(await mountOverlay({ lowers: [k.lower], upper: k.upper, work: k.work, mnt: k.mnt }))
    change(k.mnt)
    const kernelView = await files(k.mnt)
    await mounts.unmount(kernel)

    const l = await stack()
    const layerfs = mounts.add(await mountFuse([CLI, '-o', `lowerdir=${l.lower},upperdir=${l.upper},workdir=${l.work}`, l.mnt], l.mnt))
    change(l.mnt)
    expect(await files(l.mnt)).toEqual(kernelView)
    // No pause: the unmount itself must leave every copy named.
    await mounts.unmount(layerfs)
    expect(await files(l.upper)).toEqual(await files(k.upper))
    expect((await files(l.upper)).filter((line) => !line.endsWith(' whiteout')).length).toBe(9 * FILES + 5)
    expect(await readdir(join(l.work, 'work'))).toEqual([])
  })

  it('leaves no name without its data when the daemon is killed', async () => {
    const l = await stack()
    const layerfs = mounts.add(await mountFuse([CLI, '-o', `lowerdir=${l.lower},upperdir=${l.upper},workdir=${l.work}`, l.mnt], l.mnt))
    expect(layerfs.daemonPids.length).toBe(1)
    // chown(2) from this thread, and the kill right after the last one: the copies of the last
    // batch are still waiting for their flush.
    // The last directory's files are renamed instead, and then those of the one before it linked,
    // from this thread too.
    const linkDir = `p${DIRS - 2}`
    for (let d = 0; d < DIRS - 2; d++) for (let f = 0; f < FILES; f++) chownSync(join(l.mnt, 't', `p${d}`, `f${f}.js`), 1000, 1001)
    const last = join(l.mnt, 't', `p${DIRS - 1}`)
    for (let f = 0; f < FILES; f++) renameSync(join(last, `f${f}.js`), join(last, `r${f}.js`))
    for (let f = 0; f < FILES; f++) linkSync(join(l.mnt, 't', linkDir, `f${f}.js`), join(l.mnt, 't', linkDir, `f${f}.ln`))
    process.kill(layerfs.daemonPids[0]!, 'SIGKILL')
    await mounts.unmount(layerfs)
    const lowerFiles = new Map((await files(l.lower)).map((line) => [line.split(' ')[0], line]))
    const upperFiles = await files(l.upper)
    // Each rename is written whole (the file at its new name, a whiteout at its old one) or not at
    // all (the lower file's bytes show at its old name).
    const renamed = upperFiles.filter((line) => line.startsWith(`p${DIRS - 1}/`))
    let written = 0
    for (let f = 0; f < FILES; f++) {
      const [from, to] = [`p${DIRS - 1}/f${f}.js`, `p${DIRS - 1}/r${f}.js`]
      const toLine = renamed.find((line) => line.startsWith(to + ' '))
      if (toLine === undefined) {
        // Not written: the old name shows the lower file. Killed between the copy's link at its old
        // name and the rename, the upper layer holds that copy there: the same bytes, owner and mode.
        const fromLine = renamed.find((line) => line.startsWith(from + ' '))
        if (fromLine !== undefined) expect(fromLine).toBe(lowerFiles.get(from))
        continue
      }
      written++
      expect(toLine.slice(to.length)).toBe(lowerFiles.get(from)!.slice(from.length))
      expect(renamed).toContain(`${from} whiteout`)
    }
    console.log(`killed daemon: ${written} of ${FILES} renames written`)
    // Each link is written with its copy, whole (both names, the lower file's bytes, one inode),
    // or not at all; a copy named without its link yet is the lower file's.
    let linked = 0
    for (let f = 0; f < FILES; f++) {
      const [name, ln] = [`${linkDir}/f${f}.js`, `${linkDir}/f${f}.ln`]
      const nameLine = upperFiles.find((line) => line.startsWith(name + ' '))
      const lnLine = upperFiles.find((line) => line.startsWith(ln + ' '))
      if (nameLine !== undefined) expect(nameLine).toBe(lowerFiles.get(name))
      if (lnLine === undefined) continue
      linked++
      expect(nameLine).toBeDefined()
      expect(lnLine.slice(ln.length)).toBe(lowerFiles.get(name)!.slice(name.length))
      expect((await lstat(join(l.upper, 't', ln))).ino).toBe((await lstat(join(l.upper, 't', name))).ino)
    }
    console.log(`killed daemon: ${linked} of ${FILES} links written`)
    // Each other file in the upper layer is whole and carries the change; those not named yet show
    // the lower file again, unchanged.
    const changed = upperFiles.filter((line) => !line.startsWith(`p${DIRS - 1}/`) && !line.startsWith(`${linkDir}/`))
    for (const line of changed) {
      const [path, owner, mode, ...bytes] = line.split(' ')
      const [, , lowerMode, ...lowerBytes] = lowerFiles.get(path)!.split(' ')
      expect(owner).toBe('1000:1001')
      expect(bytes.join(' ')).toBe(lowerBytes.join(' '))
      expect(mode).toBe(lowerMode)
    }
    expect(upperFiles.length).toBeGreaterThan(0)
    console.log(`killed daemon: ${changed.length} of ${(DIRS - 2) * FILES} copies named`)
  })

  it("shows a copy's ctime once it is named, as the upper file has it", async () => {
    const l = await stack()
    mounts.add(await mountFuse([CLI, '-o', `lowerdir=${l.lower},upperdir=${l.upper},workdir=${l.work}`, l.mnt], l.mnt))
    const names = Array.from({ length: 5 }, (_, f) => join('t', 'p4', `f${f}.js`))
    for (const name of names) execFileSync('chmod', ['0600', join(l.mnt, name)])
    // Answered before it is named: the new mode at once (the kernel asks again, or holds the reply's).
    for (const name of names) expect((await lstat(join(l.mnt, name))).mode & 0o7777).toBe(0o600)
    // Named by its flush a few milliseconds later, which moves its ctime: the merged view follows.
    const deadline = Date.now() + 10_000
    while (!names.every((name) => existsSync(join(l.upper, name))) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    for (const name of names) {
      const upper = await lstat(join(l.upper, name), { bigint: true })
      const merged = await lstat(join(l.mnt, name), { bigint: true })
      expect([merged.mode & 0o7777n, merged.ctimeNs]).toEqual([0o600n, upper.ctimeNs])
    }
  })

  // The kernel drops the attributes of a rename's directories and the moved file's ctime itself:
  // the daemon leaves those to it (no invalidation of its own), and must still tell it of the rest
  // (a directory above, copied up on the way).
  it("shows a renamed file's ctime once it is named, and the directories the rename copied up as the upper has them", async () => {
    const l = await stack()
    mounts.add(await mountFuse([CLI, '-o', `lowerdir=${l.lower},upperdir=${l.upper},workdir=${l.work},attr_timeout=60,entry_timeout=60`, l.mnt], l.mnt))
    const rels = ['t', join('t', 'p10'), join('t', 'p10', 'f3.js')]
    // Looked at first, so that the kernel holds the lower attributes for a minute.
    const before = await Promise.all(rels.map((rel) => lstat(join(l.mnt, rel), { bigint: true })))
    renameSync(join(l.mnt, rels[2]!), join(l.mnt, 't', 'p10', 'g3.js'))
    const deadline = Date.now() + 10_000
    while (!existsSync(join(l.upper, 't', 'p10', 'g3.js')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    for (const [i, rel] of [rels[0]!, rels[1]!, join('t', 'p10', 'g3.js')].entries()) {
      const upper = await lstat(join(l.upper, rel), { bigint: true })
      const merged = await lstat(join(l.mnt, rel), { bigint: true })
      // Copied up: the inode number kept, the upper's ctime, a directory merged (one link).
      expect([merged.ino, merged.ctimeNs, merged.nlink]).toEqual([before[i]!.ino, upper.ctimeNs, 1n])
      expect(merged.ctimeNs).not.toBe(before[i]!.ctimeNs)
    }
  })

  // A link: every name of the file shows the new link count at once, and the kernel is told once
  // (at the link) of each name's new attributes; naming the copy and its new name later moves
  // their ctime, which the merged view must show as the upper layer has it.
  it("shows a linked lower file's links at once, and both names' ctime once named, as the upper has them", async () => {
    const l = await stack()
    mounts.add(await mountFuse([CLI, '-o', `lowerdir=${l.lower},upperdir=${l.upper},workdir=${l.work},attr_timeout=60,entry_timeout=60`, l.mnt], l.mnt))
    const [from, to] = [join('t', 'p11', 'f2.js'), join('t', 'p11', 'f2.ln')]
    // Looked at first, so that the kernel holds the lower file's attributes for a minute.
    const before = await lstat(join(l.mnt, from), { bigint: true })
    expect(before.nlink).toBe(1n)
    linkSync(join(l.mnt, from), join(l.mnt, to))
    const linked = await Promise.all([from, to].map((rel) => lstat(join(l.mnt, rel), { bigint: true })))
    expect(linked.map((st) => [st.nlink, st.ino])).toEqual([[2n, before.ino], [2n, before.ino]])
    const deadline = Date.now() + 10_000
    while (!existsSync(join(l.upper, to)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    for (const rel of [from, to]) {
      const upper = await lstat(join(l.upper, rel), { bigint: true })
      const merged = await lstat(join(l.mnt, rel), { bigint: true })
      expect([merged.ino, merged.nlink, merged.ctimeNs]).toEqual([before.ino, 2n, upper.ctimeNs])
    }
    expect(await readFile(join(l.mnt, to), 'utf8')).toBe(await readFile(join(l.lower, from), 'utf8'))
  })

  it('with flush_behind=0, names each copy before it answers', async () => {
    const l = await stack()
    mounts.add(await mountFuse([CLI, '-o', `lowerdir=${l.lower},upperdir=${l.upper},workdir=${l.work},flush_behind=0`, l.mnt], l.mnt))
    execFileSync('chown', ['1000:1001', join(l.mnt, 't', 'p0', 'f0.js')])
    expect((await lstat(join(l.upper, 't', 'p0', 'f0.js'))).uid).toBe(1000)
  })
})
