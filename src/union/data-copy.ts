/**
 * Copies a file's bytes for copy-up, fastest way first: a reflink (FICLONE) shares the extents and costs
 * nothing; otherwise copy_file_range over the data extents only (SEEK_DATA/SEEK_HOLE), so holes stay
 * holes; and where the kernel refuses copy_file_range (different filesystems on old kernels, some
 * FUSE or network filesystems) plain reads and writes over the same extents.
 */
import { copyFileRange, ficlone, seekData, seekHole } from '../sys/native.js'
import { isCode } from './errors.js'
import { ftruncateFd, pread, pwrite } from './fd-io.js'

const CHUNK = 1 << 20

/** Copy `size` bytes from fd `src` to the empty fd `dst`. Returns the bytes actually moved. */
export async function copyData(src: number, dst: number, size: number): Promise<number> {
  if (size === 0) return 0
  try {
    await ficlone(src, dst)
    return size
  } catch (err) {
    if (!isCode(err, 'EOPNOTSUPP', 'ENOTSUP', 'EXDEV', 'EINVAL', 'ENOTTY', 'ENOSYS', 'EBADF')) throw err
  }
  let moved = 0
  const state = { useCopyRange: true }
  for (const [start, end] of await dataExtents(src, size)) {
    moved += await copyRange(src, dst, start, end - start, state)
  }
  // Trailing holes (and a file that is all hole) need the size set explicitly.
  await ftruncateFd(dst, size)
  return moved
}

/** [start, end) ranges of data below `size`; the whole file when the filesystem cannot tell. */
async function dataExtents(fd: number, size: number): Promise<Array<[number, number]>> {
  const extents: Array<[number, number]> = []
  let offset = 0
  try {
    while (offset < size) {
      const data = await seekData(fd, offset)
      if (data < 0 || data >= size) break
      const hole = Math.min(await seekHole(fd, data), size)
      extents.push([data, hole])
      offset = hole
    }
  } catch (err) {
    if (!isCode(err, 'EINVAL', 'ENOTSUP', 'EOPNOTSUPP')) throw err
    return [[0, size]]
  }
  return extents
}

async function copyRange(src: number, dst: number, start: number, length: number, state: { useCopyRange: boolean }): Promise<number> {
  let done = 0
  while (done < length && state.useCopyRange) {
    try {
      const n = await copyFileRange(src, start + done, dst, start + done, Math.min(length - done, 1 << 30))
      if (n === 0) return done // the source shrank under us: copy what there was
      done += n
    } catch (err) {
      if (!isCode(err, 'EXDEV', 'ENOSYS', 'EINVAL', 'EOPNOTSUPP', 'ENOTSUP')) throw err
      state.useCopyRange = false
    }
  }
  const buffer = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(length - done, 1)))
  while (done < length) {
    const want = Math.min(buffer.length, length - done)
    const n = await pread(src, buffer, 0, want, start + done)
    if (n === 0) break
    let written = 0
    while (written < n) written += await pwrite(dst, buffer, written, n - written, start + done + written)
    done += n
  }
  return done
}
