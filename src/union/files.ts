/**
 * Open files and their I/O. Opening for writing (or with O_TRUNC) copies the file up first; an
 * O_TRUNC open copies no data. Reads and writes are positional on the handle's fd.
 */
import { closeSync, constants, openSync } from 'node:fs'
import type { Core } from './core.js'
import { fsError } from './errors.js'
import { fstatFd, fsyncFd, ftruncateFd, pread, pwrite } from './fd-io.js'
import { type Owner, create as createFile } from './namespace.js'

const WRITE_FLAGS = constants.O_WRONLY | constants.O_RDWR
/** Flags that describe creation, which open() never performs (FUSE sends create for that). */
const CREATE_FLAGS = constants.O_CREAT | constants.O_EXCL | constants.O_NOCTTY

export async function open(core: Core, rel: string, flags: number): Promise<number> {
  let entry = await core.resolver.get(rel)
  if (entry.kind === 'dir' && (flags & WRITE_FLAGS)) throw fsError('EISDIR', rel)
  const writing = (flags & WRITE_FLAGS) !== 0 || (flags & constants.O_TRUNC) !== 0
  if (writing) entry = await core.copyUp(rel, (flags & constants.O_TRUNC) === 0)
  // open(2) of a file whose inode is cached costs microseconds; a thread-pool round trip costs more,
  // and reading many small files is one open per file (the reason lookups are synchronous too).
  // A metadata-only copy is read from its lower data; a later completion moves the reader over.
  const lowerData = !writing && core.isMetacopy(entry)
  const fd = openSync(lowerData ? core.dataSource(entry) : entry.layer.path(rel), (flags & ~CREATE_FLAGS) | constants.O_NOFOLLOW)
  return core.handles.add({ fd, path: rel, upper: entry.layer.writable && !lowerData })
}

export async function create(core: Core, rel: string, mode: number, owner?: Owner): Promise<number> {
  const { fd } = await createFile(core, rel, mode, owner)
  return core.handles.add({ fd, path: rel, upper: true })
}

function handle(core: Core, fh: number): { fd: number } {
  const h = core.handles.get(fh)
  if (!h) throw fsError('EBADF', `handle ${fh}`)
  return h
}

export function read(core: Core, fh: number, buffer: Buffer, length: number, position: number): Promise<number> {
  return pread(handle(core, fh).fd, buffer, 0, length, position)
}

export function write(core: Core, fh: number, buffer: Buffer, length: number, position: number): Promise<number> {
  return pwrite(handle(core, fh).fd, buffer, 0, length, position)
}

export function ftruncate(core: Core, fh: number, size: number): Promise<void> {
  return ftruncateFd(handle(core, fh).fd, size)
}

/** Attributes through an open handle: for a file whose name is gone (unlinked while open). */
export async function fstat(core: Core, fh: number): Promise<import('node:fs').BigIntStats> {
  return fstatFd(handle(core, fh).fd)
}

export function fsync(core: Core, fh: number, dataOnly: boolean): Promise<void> {
  return fsyncFd(handle(core, fh).fd, dataOnly)
}

export async function release(core: Core, fh: number): Promise<void> {
  const h = core.handles.remove(fh)
  // close(2) on a local file does no I/O (dirty pages are written back later): synchronous, as open.
  if (h) closeSync(h.fd)
}
