/**
 * Positional reads and writes on raw file descriptors, as promises of byte counts. node:fs/promises
 * only offers them on FileHandle objects, which the union does not keep: its handle table holds plain
 * fds so that a FUSE file handle maps to exactly one kernel fd.
 *
 * Reads and writes first try the page cache on the calling thread (RWF_NOWAIT) and send only what
 * that could not do to the thread pool: cached data costs no round trip, and a long disk read never
 * stalls the JavaScript thread. Small writes stay on the calling thread even where RWF_NOWAIT is
 * unsupported (ext4); so may small reads (preadSmall).
 */
import { fdatasync, fdatasyncSync, fsync, fsyncSync, read, readSync, write, writeSync } from 'node:fs'
import { nowaitWritesWork, preadNowait, pwriteNowait } from '../sys/native.js'

/** The smallest page size: every page size is a multiple of it, so a cached read that ends inside a
 *  4 KiB unit ended at the end of the file. */
const PAGE = 4096

/** Reads up to `length` bytes into the start of `buffer`; fewer only at end of file. */
export async function pread(fd: number, buffer: Buffer, length: number, position: number): Promise<number> {
  const done = preadNowait(fd, buffer, length, position) ?? 0
  if (isComplete(done, length, position)) return done
  return done + (await poolRead(fd, buffer, done, length - done, position + done))
}

/** A small read from the disk, done on the calling thread: a random 4 KiB read waits for the disk
 *  either way, and the pool would add two wakeups to each. Readahead-sized reads go to the pool, and
 *  so do all reads while other requests wait (the caller decides), so that several disk reads can be
 *  in flight at once. */
export function preadSmall(fd: number, buffer: Buffer, length: number, position: number): number | undefined {
  return length <= SYNC_READ_MAX ? preadSync(fd, buffer, length, position) : undefined
}

const SYNC_READ_MAX = 16 * 1024

/** Reads up to `length` bytes into the start of `buffer` on the calling thread; fewer only at end
 *  of file. */
export function preadSync(fd: number, buffer: Buffer, length: number, position: number): number {
  let done = 0
  while (done < length) {
    const n = readSync(fd, buffer, done, length - done, position + done)
    if (n === 0) break
    done += n
  }
  return done
}

/** pread from the page cache only: the byte count when that settles the read, else undefined. */
export function preadCached(fd: number, buffer: Buffer, length: number, position: number): number | undefined {
  const done = preadNowait(fd, buffer, length, position)
  return done !== undefined && isComplete(done, length, position) ? done : undefined
}

/** A short read ends at the end of the file or of what is cached. Only the file's end can fall
 *  inside a page; at a page boundary the pool tells which (it reads 0 bytes at the end). */
function isComplete(done: number, length: number, position: number): boolean {
  return done === length || (done > 0 && (position + done) % PAGE !== 0)
}

/** Writes all of `length` bytes from the start of `buffer`. */
export async function pwrite(fd: number, buffer: Buffer, length: number, position: number): Promise<number> {
  return pwriteNow(fd, buffer, length, position) ?? poolWrite(fd, buffer, 0, length, position)
}

/**
 * A whole write done on the calling thread when it cannot stall it: through RWF_NOWAIT, or, where
 * the filesystem cannot promise that (ext4), when it is small, a copy into the page cache. The
 * count, or undefined for a big write, which may meet the dirty-page throttle and belongs in the
 * pool (which then writes all of it again: the same bytes at the same place).
 */
export function pwriteNow(fd: number, buffer: Buffer, length: number, position: number): number | undefined {
  const done = (nowaitWritesWork() ? pwriteNowait(fd, buffer, length, position) : undefined) ?? 0
  if (done === length) return done
  if (length - done <= SYNC_WRITE_MAX) return done + writeSync(fd, buffer, done, length - done, position + done)
  return undefined
}

/** The biggest write made on the calling thread when RWF_NOWAIT is not available. */
const SYNC_WRITE_MAX = 64 * 1024

function poolRead(fd: number, buffer: Buffer, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, buffer, offset, length, position, (err, n) => (err ? reject(err) : resolve(n)))
  })
}

function poolWrite(fd: number, buffer: Buffer, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    write(fd, buffer, offset, length, position, (err, n) => (err ? reject(err) : resolve(n)))
  })
}

export function fsyncFdSync(fd: number, dataOnly: boolean): void {
  if (dataOnly) fdatasyncSync(fd)
  else fsyncSync(fd)
}

export function fsyncFd(fd: number, dataOnly: boolean): Promise<void> {
  return new Promise((resolve, reject) => (dataOnly ? fdatasync : fsync)(fd, (err) => (err ? reject(err) : resolve())))
}

