/**
 * Turns a container's upper dir into an OCI layer tar, reproducibly (entries sorted byte-wise, parents
 * before children): char 0/0 whiteouts become `.wh.NAME`, `.wh.` files stay as they are, opaque
 * directories (xattr or marker) get a `.wh..wh..opq` entry, hard links within the dir become link
 * entries, xattrs go into PAX `SCHILY.xattr.` records, except overlay/layerfs private ones.
 */
import { createReadStream } from 'node:fs'
import { lstat, readdir, readlink } from 'node:fs/promises'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import tar from 'tar-stream'
import { OPAQUE_MARKER, WHITEOUT_PREFIX, hasOpaqueXattr, isErrno, isWhiteoutStat } from '../layers/whiteout.js'
import { lgetxattr, llistxattr, major, minor } from '../sys/native.js'
import { ImageError } from './errors.js'

type HeaderArgument = Partial<tar.Header> & { name: string; pax?: Record<string, string> }

const PRIVATE_XATTR = /^(trusted|user)\.(overlay|layerfs)\./

async function xattrPax(path: string): Promise<Record<string, string> | undefined> {
  let names: string[]
  try {
    names = await llistxattr(path)
  } catch (err) {
    if (isErrno(err, 'ENOTSUP', 'EOPNOTSUPP')) return undefined
    throw err
  }
  const pax: Record<string, string> = {}
  for (const name of names.filter((n) => !PRIVATE_XATTR.test(n)).sort()) {
    const v = await lgetxattr(path, name)
    if (v !== undefined) pax[`SCHILY.xattr.${name}`] = v.toString('utf8')
  }
  return Object.keys(pax).length > 0 ? pax : undefined
}

/** A tar stream of the upper dir; errors (unreadable files) surface as stream errors. */
export function packUpperDir(upper: string): Readable {
  const pack = tar.pack()
  const links = new Map<string, string>()
  const entry = (header: HeaderArgument, body: Buffer = Buffer.alloc(0)) =>
    new Promise<void>((resolve, reject) => {
      pack.entry(header, body, (err) => (err ? reject(err) : resolve()))
    })
  const fileEntry = (header: HeaderArgument, path: string) =>
    new Promise<void>((resolve, reject) => {
      const sink = pack.entry(header, (err) => (err ? reject(err) : resolve()))
      const src = createReadStream(path)
      src.on('error', reject)
      src.pipe(sink as unknown as NodeJS.WritableStream)
    })

  async function visit(dir: string, rel: string): Promise<void> {
    const children = await Promise.all(
      (await readdir(dir)).map(async (name) => {
        const st = await lstat(join(dir, name))
        // Sorted by the name the entry gets in the tar, so kernel whiteouts sort as `.wh.NAME`.
        return { name, st, key: Buffer.from(isWhiteoutStat(st) ? `${WHITEOUT_PREFIX}${name}` : name) }
      }),
    )
    children.sort((a, b) => Buffer.compare(a.key, b.key))
    for (const { name, st } of children) {
      const host = join(dir, name)
      const relName = rel === '' ? name : `${rel}/${name}`
      const base = { uid: st.uid, gid: st.gid, mtime: st.mtime, mode: st.mode & 0o7777 }
      if (isWhiteoutStat(st)) {
        await entry({ ...base, name: rel === '' ? `${WHITEOUT_PREFIX}${name}` : `${rel}/${WHITEOUT_PREFIX}${name}`, type: 'file', mode: 0o644, size: 0 }, Buffer.alloc(0))
        continue
      }
      const pax = await xattrPax(host)
      const header: HeaderArgument = { ...base, name: relName, ...(pax ? { pax } : {}) }
      if (st.isDirectory()) {
        await entry({ ...header, name: `${relName}/`, type: 'directory' })
        if (!(await readdir(host)).includes(OPAQUE_MARKER) && (await hasOpaqueXattr(host))) {
          await entry({ name: `${relName}/${OPAQUE_MARKER}`, type: 'file', mode: 0o644, size: 0, mtime: st.mtime }, Buffer.alloc(0))
        }
        await visit(host, relName)
      } else if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`
        const first = st.nlink > 1 ? links.get(key) : undefined
        if (first !== undefined) {
          await entry({ ...header, type: 'link', linkname: first, size: 0 })
        } else {
          if (st.nlink > 1) links.set(key, relName)
          await fileEntry({ ...header, type: 'file', size: st.size }, host)
        }
      } else if (st.isSymbolicLink()) {
        await entry({ ...header, type: 'symlink', linkname: await readlink(host) })
      } else if (st.isFIFO()) {
        await entry({ ...header, type: 'fifo' })
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        const dev = Number(st.rdev)
        await entry({ ...header, type: st.isCharacterDevice() ? 'character-device' : 'block-device', devmajor: major(dev), devminor: minor(dev) })
      }
      // Sockets cannot be stored in a tar: skipped, as docker does.
    }
  }

  visit(upper, '').then(
    () => pack.finalize(),
    (err: unknown) => pack.destroy(err instanceof Error ? err : new ImageError(String(err))),
  )
  return pack as unknown as Readable
}
