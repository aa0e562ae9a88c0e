/**
 * Positional reads and writes on raw file descriptors, as promises of byte counts. node:fs/promises
 * only offers them on FileHandle objects, which the union does not keep: its handle table holds plain
 * fds so that a FUSE file handle maps to exactly one kernel fd.
 */
import { close, fstat, fsync, fdatasync, ftruncate, open, read, write, type BigIntStats } from 'node:fs'

export function pread(fd: number, buffer: Buffer, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, buffer, offset, length, position, (err, n) => (err ? reject(err) : resolve(n)))
  })
}

export function pwrite(fd: number, buffer: Buffer, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    write(fd, buffer, offset, length, position, (err, n) => (err ? reject(err) : resolve(n)))
  })
}

export function openFd(path: string, flags: number, mode = 0o666): Promise<number> {
  return new Promise((resolve, reject) => {
    open(path, flags, mode, (err, fd) => (err ? reject(err) : resolve(fd)))
  })
}

export function closeFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => close(fd, (err) => (err ? reject(err) : resolve())))
}

export function ftruncateFd(fd: number, size: number): Promise<void> {
  return new Promise((resolve, reject) => ftruncate(fd, size, (err) => (err ? reject(err) : resolve())))
}

export function fsyncFd(fd: number, dataOnly: boolean): Promise<void> {
  return new Promise((resolve, reject) => (dataOnly ? fdatasync : fsync)(fd, (err) => (err ? reject(err) : resolve())))
}

export function fstatFd(fd: number): Promise<BigIntStats> {
  return new Promise((resolve, reject) => fstat(fd, { bigint: true }, (err, st) => (err ? reject(err) : resolve(st))))
}
