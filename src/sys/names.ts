/**
 * Names are bytes to the kernel and strings to the union. A name that is valid UTF-8 is the string
 * it spells; any other byte b of a name is carried as the lone surrogate U+DC00 + b (Python's
 * "surrogateescape", done in native/names.c). Valid UTF-8 never decodes to a lone surrogate, so a
 * string with one holds escaped bytes and nothing else can be mistaken for them.
 *
 * node:fs writes a string path as UTF-8, where a lone surrogate becomes U+FFFD. So a path goes to
 * the host as a `HostPath`: the string itself when it is well formed (every UTF-8 name, at no cost),
 * and otherwise a Buffer of its bytes. Both node:fs and the addon take either.
 */
import { loadAddon } from './addon.js'

/** A path as host calls take it: a string, or its bytes when the string carries escaped bytes. */
export type HostPath = string | Buffer

interface NamesAddon {
  nameBytes(name: string): Buffer
  nameFromBytes(bytes: Uint8Array): string
}

/** `p` as the host takes it. */
export function hostPath(p: string): HostPath {
  return p.isWellFormed() ? p : loadAddon<NamesAddon>().nameBytes(p)
}

/** The bytes a host path stands for. */
export function hostBytes(p: HostPath): Buffer {
  const host = typeof p === 'string' ? hostPath(p) : p
  return typeof host === 'string' ? Buffer.from(host) : host
}

/** How many bytes a name is on the host (what NAME_MAX limits). */
export function byteLength(name: string): number {
  return name.isWellFormed() ? Buffer.byteLength(name) : loadAddon<NamesAddon>().nameBytes(name).length
}

/** `dir/name` as a host path. */
export function hostJoin(dir: HostPath, name: string): HostPath {
  return typeof dir === 'string' ? hostPath(`${dir}/${name}`) : Buffer.concat([dir, hostBytes(`/${name}`)])
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** Bytes read from the host or from a tar (a name, a symlink target, a path kept in an xattr) as a
 *  union string. UTF-8, as almost every name is, is decoded here; the rest is escaped by the addon. */
export function nameFromBytes(bytes: Uint8Array): string {
  try {
    return strictUtf8.decode(bytes)
  } catch {
    return loadAddon<NamesAddon>().nameFromBytes(bytes)
  }
}

/** A host path as a string, for messages and the union's own bookkeeping. */
export function pathString(p: HostPath): string {
  return typeof p === 'string' ? p : nameFromBytes(p)
}
