/**
 * The mount command line, as fuse-overlayfs takes it, so container tools can swap one for the other:
 *
 *   layerfs [-f] [-d] -o lowerdir=A:B,upperdir=U,workdir=W MNT
 *   layerfs SOURCE MNT -o ...            (what mount.fuse3 runs for `mount -t fuse.layerfs SOURCE MNT`)
 *
 * In lowerdir, `:` separates layers (topmost first) and `\:` is a literal colon; `\,` is a literal comma
 * in any value. Options that mount(8) and mount.fuse3 pass through (rw, dev, suid, ...) are accepted;
 * anything unknown is warned about and ignored, as fuse-overlayfs does.
 */

import { type IdRange, parseIdRanges } from '../fuse/id-map.js'
import type { PassthroughPolicy } from '../fuse/open-files.js'

export interface MountOptions {
  lowers: string[]
  upper?: string
  work?: string
  mountpoint: string
  source: string
  foreground: boolean
  debug: boolean
  readOnly: boolean
  fsync: boolean
  /** Flush copy-ups in batches, after answering the opens and setattrs that made them (Core.#defer). */
  flushBehind: boolean
  /** Milliseconds the copies flushed behind wait for the others of their batch (Core.flushWindowMs). */
  flushWindowMs: number
  metacopy: boolean
  /** Rename directories that have lower layers (overlayfs `redirect_dir=on`, which `metacopy=on`
   *  turns on): see namespace.ts, movableDir. */
  redirectDir: boolean
  allowOther: boolean
  cacheEntries: number
  entryTimeout: number
  attrTimeout: number
  negativeTimeout: number
  /** Microseconds to busy-poll for the next request after answering all (bridge=ll). */
  spinUs: number
  /** Which files the kernel reads and writes itself (bridge=ll, Linux 6.9+; see OpenFiles). */
  passthrough: PassthroughPolicy
  /** POSIX ACLs enforced by the kernel (bridge=ll; `noacl`: mode bits only. New objects still get
   *  what the upper filesystem gives them from a default ACL). */
  acl: boolean
  log?: string
  bridge: 'll' | 'fuse-native'
  /** fuse-overlayfs's id mapping and squashing (see fuse/id-map.ts); bridge=ll only. */
  ids?: { uids?: IdRange[]; gids?: IdRange[]; squashUid?: number; squashGid?: number }
  /** mount(8) flags for the mount itself, in the order given (see KERNEL_FLAGS). */
  kernelFlags: string[]
  warnings: string[]
}

export class UsageError extends Error {}

/** Seconds the kernel may cache entries and attributes with the low-level bridge. */
export const DEFAULT_LL_TIMEOUT = 3600

/** Microseconds the daemon busy-polls for the next request once it has answered all (see
 *  native/fuse-ll-session.c): the client's next request usually comes sooner than a wakeup would. */
export const DEFAULT_SPIN_US = 50

/**
 * mount(8) flags of the mount itself, handed to libfuse, which applies them (its own default is
 * nosuid,nodev). As root, a mount honours setuid bits unless `nosuid` is given, as overlayfs and
 * fuse-overlayfs do: setuid programs of a container's image (su, passwd, ping) work in it. Device
 * nodes stay inert unless `dev` is given, as with fuse-overlayfs (containers-storage passes
 * `nodev` to overlayfs by default).
 */
const KERNEL_FLAGS = new Set([
  'dev', 'nodev', 'suid', 'nosuid', 'exec', 'noexec', 'atime', 'noatime', 'sync', 'async', 'dirsync',
])

/** mount(8)'s other atime flags, which libfuse 3 refuses (its mount fails on them, as it did here
 *  until 2026-12-05): dropped with a warning, as fuse-overlayfs drops them. A FUSE mount is
 *  relatime unless `noatime` is given. */
const ATIME_FLAGS = new Set([
  'relatime', 'norelatime', 'strictatime', 'nostrictatime', 'diratime', 'nodiratime', 'lazytime', 'nolazytime',
])

/** Generic options mount(8) or the kernel handle; accepted silently. */
const PASSTHROUGH = new Set([
  'rw', 'auto', 'noauto', 'user', 'nouser', 'users',
  'defaults', 'nofail', '_netdev', 'default_permissions', 'allow_root', 'auto_unmount', 'userxattr',
])

export function parseMountArgs(argv: string[]): MountOptions {
  const opts: MountOptions = {
    lowers: [], mountpoint: '', source: 'layerfs', foreground: false, debug: false, readOnly: false,
    fsync: true, flushBehind: true, flushWindowMs: 20, metacopy: false, redirectDir: false, allowOther: process.getuid?.() === 0, cacheEntries: 100_000,
    entryTimeout: NaN, attrTimeout: NaN, negativeTimeout: NaN, spinUs: DEFAULT_SPIN_US, passthrough: 'on', acl: true, bridge: 'll',
    kernelFlags: process.getuid?.() === 0 ? ['suid'] : [], warnings: [],
  }
  const positional: string[] = []
  const given: Given = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '-f') opts.foreground = true
    else if (arg === '-d' || arg === '--debug') opts.debug = opts.foreground = true
    else if (arg === '-o') {
      const value = argv[++i]
      if (value === undefined) throw new UsageError('-o needs a value')
      applyOptions(opts, value, given)
    } else if (arg.startsWith('-o')) applyOptions(opts, arg.slice(2), given)
    else if (arg.startsWith('-') && arg !== '-') throw new UsageError(`unknown flag ${arg}`)
    else positional.push(arg)
  }
  if (positional.length === 1) opts.mountpoint = positional[0]!
  else if (positional.length === 2) [opts.source, opts.mountpoint] = positional as [string, string]
  else throw new UsageError(positional.length === 0 ? 'no mountpoint given' : `too many arguments: ${positional.join(' ')}`)
  if (opts.lowers.length === 0) throw new UsageError('no lowerdir given (-o lowerdir=A:B,upperdir=U,workdir=W)')
  // The low-level bridge tells the kernel about every change it cannot see, so the kernel may cache
  // names and attributes for long. fuse-native can tell it nothing: names keep libfuse's one second,
  // and attributes are not cached, since the union changes them where the kernel does not look (a
  // copy-up makes a directory merged, one link of a lower file another name's; libfuse 2 gives each
  // name a node of its own).
  const timeouts = opts.bridge === 'll'
    ? { entryTimeout: DEFAULT_LL_TIMEOUT, attrTimeout: DEFAULT_LL_TIMEOUT, negativeTimeout: DEFAULT_LL_TIMEOUT }
    : { entryTimeout: 1, attrTimeout: 0, negativeTimeout: 1 }
  for (const key of ['entryTimeout', 'attrTimeout', 'negativeTimeout'] as const) if (Number.isNaN(opts[key])) opts[key] = timeouts[key]
  if ((opts.upper === undefined) !== (opts.work === undefined)) throw new UsageError('upperdir and workdir go together')
  // As overlayfs: metacopy=on turns redirect_dir on, and refuses any other value given for it (a
  // renamed metadata-only copy finds its data through a redirect).
  if (opts.metacopy && given.redirectDir !== undefined && given.redirectDir !== 'on') {
    throw new UsageError(`metacopy=on conflicts with redirect_dir=${given.redirectDir}`)
  }
  opts.redirectDir = given.redirectDir === undefined ? opts.metacopy : given.redirectDir === 'on'
  if (opts.ids && opts.bridge !== 'll') throw new UsageError('uidmapping, gidmapping and squash_to_* need bridge=ll')
  if (opts.readOnly && opts.upper !== undefined) {
    // Read-only, the upper layer is shown as the topmost one, as overlayfs shows it: a container's
    // changes stay visible. Nothing is written, so the workdir is not needed.
    opts.lowers.unshift(opts.upper)
    delete opts.upper
    delete opts.work
  }
  return opts
}

/** What applyOptions saw given explicitly, for the checks made once all are in. */
interface Given {
  redirectDir?: string
}

function applyOptions(opts: MountOptions, list: string, given: Given): void {
  for (const item of splitUnescaped(list, ',')) {
    if (item === '') continue
    const eq = item.indexOf('=')
    const key = eq < 0 ? item : item.slice(0, eq)
    const value = eq < 0 ? '' : unescape(item.slice(eq + 1))
    switch (key) {
      case 'lowerdir':
        opts.lowers = splitUnescaped(item.slice(eq + 1), ':').map(unescape).filter((dir) => dir !== '')
        break
      case 'upperdir': opts.upper = need(key, value); break
      case 'workdir': opts.work = need(key, value); break
      case 'ro': opts.readOnly = true; break
      case 'volatile': opts.fsync = false; break
      case 'fsync': opts.fsync = value !== '0'; break
      case 'flush_behind':
        if (value !== '0' && value !== '1') throw new UsageError(`flush_behind=${value}: expected 0 or 1`)
        opts.flushBehind = value === '1'
        break
      case 'flush_window': {
        const ms = Number(value)
        if (!/^\d+$/.test(value) || ms > 60_000) throw new UsageError(`flush_window=${value}: expected milliseconds, 0 to 60000`)
        opts.flushWindowMs = ms
        break
      }
      case 'metacopy':
        if (value !== 'on' && value !== 'off') throw new UsageError(`metacopy=${value}: expected on or off`)
        opts.metacopy = value === 'on'
        break
      case 'redirect_dir':
        // overlayfs's values; `follow` and `nofollow` concern directory redirects written by
        // another mount, which layerfs never follows (it writes none): both leave directories
        // unmovable, as `off`.
        if (!['on', 'off', 'follow', 'nofollow'].includes(value)) throw new UsageError(`redirect_dir=${value}: expected on, off, follow or nofollow`)
        given.redirectDir = value
        break
      case 'allow_other': opts.allowOther = true; break
      case 'acl': opts.acl = true; break
      case 'noacl': opts.acl = false; break
      case 'debug': opts.debug = opts.foreground = true; break
      case 'log': opts.log = need(key, value); break
      case 'bridge':
        if (value !== 'll' && value !== 'fuse-native') throw new UsageError(`bridge=${value}: expected ll or fuse-native`)
        opts.bridge = value
        break
      case 'passthrough':
        if (value !== 'on' && value !== 'upper' && value !== 'off') {
          throw new UsageError(`passthrough=${value}: expected on, upper or off`)
        }
        opts.passthrough = value
        break
      case 'cache_entries': opts.cacheEntries = number(key, value); break
      case 'entry_timeout': opts.entryTimeout = number(key, value); break
      case 'attr_timeout': opts.attrTimeout = number(key, value); break
      case 'negative_timeout': opts.negativeTimeout = number(key, value); break
      case 'uidmapping': (opts.ids ??= {}).uids = idRanges(key, value); break
      case 'gidmapping': (opts.ids ??= {}).gids = idRanges(key, value); break
      case 'squash_to_root':
        opts.ids ??= {}
        opts.ids.squashUid ??= 0
        opts.ids.squashGid ??= 0
        break
      // These win over squash_to_root, whatever the order.
      case 'squash_to_uid': (opts.ids ??= {}).squashUid = id(key, value); break
      case 'squash_to_gid': (opts.ids ??= {}).squashGid = id(key, value); break
      case 'spin': {
        const us = number(key, value)
        if (!Number.isInteger(us) || us > 10_000) throw new UsageError(`spin=${value}: expected microseconds, 0 to 10000`)
        opts.spinUs = us
        break
      }
      default:
        if (KERNEL_FLAGS.has(key) && eq < 0) opts.kernelFlags.push(key)
        else if (ATIME_FLAGS.has(key) && eq < 0) opts.warnings.push(`ignoring ${key}: a FUSE mount takes no such flag (it is relatime, or noatime)`)
        else if (!PASSTHROUGH.has(key)) opts.warnings.push(`ignoring unknown option ${item}`)
    }
  }
}

function need(key: string, value: string): string {
  if (value === '') throw new UsageError(`${key} needs a value`)
  return value
}

function idRanges(key: string, value: string): IdRange[] {
  try {
    return parseIdRanges(value)
  } catch (err) {
    throw new UsageError(`${key}: ${(err as Error).message}`)
  }
}

function id(key: string, value: string): number {
  const n = Number(value)
  if (!/^\d+$/.test(value) || n > 0xfffffffe) throw new UsageError(`${key}=${value}: not a uid or gid`)
  return n
}

function number(key: string, value: string): number {
  const n = Number(value)
  if (value === '' || !Number.isFinite(n) || n < 0) throw new UsageError(`${key}=${value}: not a number`)
  return n
}

/** Split on `sep` where it is not escaped by a backslash; escapes stay for unescape(). */
export function splitUnescaped(text: string, sep: string): string[] {
  const parts: string[] = []
  let current = ''
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!
    if (ch === '\\' && i + 1 < text.length) {
      current += ch + text[++i]!
    } else if (ch === sep) {
      parts.push(current)
      current = ''
    } else {
      current += ch
    }
  }
  parts.push(current)
  return parts
}

export function unescape(text: string): string {
  return text.replace(/\\(.)/g, '$1')
}
