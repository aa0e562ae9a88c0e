/**
 * Turns a container's upper dir into an OCI layer tar, reproducibly (entries sorted byte-wise, parents
 * before children): char 0/0 whiteouts become `.wh.NAME`, `.wh.` files stay as they are, opaque
 * directories (xattr or marker) get a `.wh..wh..opq` entry, hard links within the dir become link
 * entries, xattrs go into PAX `SCHILY.xattr.` records as raw bytes, except overlay/layerfs private ones.
 * Names and link targets keep their bytes (sys/names.ts), UTF-8 or not.
 * Headers are encoded by tar-writer.ts; the stream is an async generator, so it has backpressure.
 */
import { createReadStream } from 'node:fs'
import { lstat, readdir, readlink } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { OPAQUE_MARKER, WHITEOUT_PREFIX, hasOpaqueXattr, isErrno, isWhiteoutStat } from '../layers/whiteout.js'
import { hostBytes, hostPath, nameFromBytes, type HostPath } from '../sys/names.js'
import { lgetxattr, llistxattr, major, minor } from '../sys/native.js'
import { ImageError } from './errors.js'
import { listNames } from './layer-walk.js'
import { END_OF_ARCHIVE, encodeHeader, padding } from './tar-writer.js'

const PRIVATE_XATTR = /^(trusted|user)\.(overlay|layerfs)\./
const REDIRECT_XATTRS = ['trusted.overlay.redirect', 'user.overlay.redirect']

/**
 * A directory an overlayfs mounted with `redirect_dir=on` renamed: the upper holds only its changes,
 * and its files stay in a lower layer under the old name, which this upper alone cannot give. Commit
 * and diff refuse such an upper rather than drop the files (layerfs, like overlayfs by default,
 * refuses to rename a lower directory: EXDEV, and tools copy it).
 */
export async function refuseRedirect(host: HostPath, relName: string): Promise<void> {
  for (const name of REDIRECT_XATTRS) {
    const to = await lgetxattr(host, name).catch((err: unknown) => {
      if (isErrno(err, 'ENOTSUP', 'EOPNOTSUPP')) return undefined
      throw err
    })
    if (to !== undefined) {
      throw new ImageError(`${relName} is a directory renamed by an overlayfs mounted with redirect_dir=on (from ${to.toString()}): its files are in a lower layer under that name, which this upper does not hold; commit from an upper made with redirect_dir=off (the default)`)
    }
  }
}

async function xattrsOf(path: HostPath): Promise<Array<[string, Buffer]>> {
  let names: string[]
  try {
    names = await llistxattr(path)
  } catch (err) {
    if (isErrno(err, 'ENOTSUP', 'EOPNOTSUPP')) return []
    throw err
  }
  const out: Array<[string, Buffer]> = []
  for (const name of names.filter((n) => !PRIVATE_XATTR.test(n)).sort()) {
    const v = await lgetxattr(path, name)
    if (v !== undefined) out.push([name, v])
  }
  return out
}

/** The file's bytes, exactly `size` of them (a file that changes size while packed fails). */
async function* fileData(path: HostPath, size: number, name: string): AsyncGenerator<Buffer> {
  let n = 0
  for await (const chunk of createReadStream(path)) {
    n += (chunk as Buffer).length
    if (n > size) break
    yield chunk as Buffer
  }
  if (n !== size) throw new ImageError(`'${name}' changed size while being packed`)
  yield padding(size)
}

async function* walk(dir: string, rel: string, links: Map<string, string>): AsyncGenerator<Buffer> {
  const children = await Promise.all(
    (await listNames(hostPath(dir))).map(async (name) => {
      const st = await lstat(hostPath(join(dir, name)))
      // Sorted by the name the entry gets in the tar, so kernel whiteouts sort as `.wh.NAME`.
      return { name, st, key: hostBytes(isWhiteoutStat(st) ? `${WHITEOUT_PREFIX}${name}` : name) }
    }),
  )
  children.sort((a, b) => Buffer.compare(a.key, b.key))
  for (const { name, st } of children) {
    const hostName = join(dir, name)
    const host = hostPath(hostName)
    const relName = rel === '' ? name : `${rel}/${name}`
    const base = { uid: st.uid, gid: st.gid, mtime: st.mtime, mode: st.mode & 0o7777, size: 0 }
    if (isWhiteoutStat(st)) {
      const wh = rel === '' ? `${WHITEOUT_PREFIX}${name}` : `${rel}/${WHITEOUT_PREFIX}${name}`
      yield encodeHeader({ ...base, name: wh, type: 'file', mode: 0o644 })
      continue
    }
    const xattrs = await xattrsOf(host)
    const header = { ...base, name: relName, ...(xattrs.length > 0 ? { xattrs } : {}) }
    if (st.isDirectory()) {
      await refuseRedirect(host, relName)
      yield encodeHeader({ ...header, name: `${relName}/`, type: 'directory' })
      if (!(await readdir(host)).includes(OPAQUE_MARKER) && (await hasOpaqueXattr(host))) {
        yield encodeHeader({ name: `${relName}/${OPAQUE_MARKER}`, type: 'file', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: st.mtime })
      }
      yield* walk(hostName, relName, links)
    } else if (st.isFile()) {
      if ((await lgetxattr(host, 'trusted.overlay.metacopy')) !== undefined) {
        throw new ImageError(`${relName} is a metadata-only copy (the mount used metacopy=on): its data is in a lower layer, which commit does not read; write to it through a mount, or commit from an upper made with metacopy=off`)
      }
      const key = `${st.dev}:${st.ino}`
      const first = st.nlink > 1 ? links.get(key) : undefined
      if (first !== undefined) {
        yield encodeHeader({ ...header, type: 'link', linkname: first })
      } else {
        if (st.nlink > 1) links.set(key, relName)
        yield encodeHeader({ ...header, type: 'file', size: st.size })
        yield* fileData(host, st.size, relName)
      }
    } else if (st.isSymbolicLink()) {
      yield encodeHeader({ ...header, type: 'symlink', linkname: nameFromBytes(await readlink(host, { encoding: 'buffer' })) })
    } else if (st.isFIFO()) {
      yield encodeHeader({ ...header, type: 'fifo' })
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      const dev = Number(st.rdev)
      yield encodeHeader({ ...header, type: st.isCharacterDevice() ? 'character-device' : 'block-device', devmajor: major(dev), devminor: minor(dev) })
    }
    // Sockets cannot be stored in a tar: skipped, as docker does.
  }
}

/** A tar stream of the upper dir; errors (unreadable files) surface as stream errors. */
export function packUpperDir(upper: string): Readable {
  async function* archive(): AsyncGenerator<Buffer> {
    yield* walk(upper, '', new Map())
    yield END_OF_ARCHIVE
  }
  return Readable.from(archive(), { objectMode: false })
}
