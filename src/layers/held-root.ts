/**
 * Lower layers that may vanish from the namespace while the union uses them.
 *
 * containers-storage, asked to run a container in another user namespace, shows each lower layer
 * through an idmapped bind mount, passes those paths to the mount program, and detaches the mounts
 * as soon as the program returns. Kernel overlayfs holds references to its layers and fuse-overlayfs
 * holds them open, so both go on reading them; a union that names its layers by path finds nothing
 * there any more. Such a layer is therefore opened once and addressed through its descriptor
 * (`/proc/self/fd/N/...`), which goes on reaching the directory after the mount is detached. Other
 * layers keep their plain paths: a walk through /proc costs every syscall a little.
 *
 * containers-storage (podman 4.3) also passes `uidmapping`/`gidmapping` for such a container, as it
 * does without idmapped lowers: the same shift twice, and the layers' files showed as nobody's (the
 * container's root could not create /etc/hosts). When the mount maps ids itself, an idmapped layer
 * is therefore reached through a mount of the same filesystem that shows its ids as stored, when
 * there is one, and checked to be the same directory; else it is held as above.
 */
import { closeSync, constants, lstatSync, openSync, readFileSync } from 'node:fs'

/** The root to address `dir` (a real path) by: `dir` itself unless it is on an idmapped mount; there,
 *  with `unmapped`, the same directory through a mount that does not map its ids, when one reaches
 *  it; else a held descriptor's /proc path. */
export function layerRoot(dir: string, mountinfo = readMountinfo(), unmapped = false): string {
  const mounts = parseMountinfo(mountinfo)
  const holder = mountOf(dir, mounts)
  if (!holder?.idmapped) return dir
  const plain = unmapped ? unmappedPath(dir, holder, mounts) : undefined
  if (plain !== undefined) return plain
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY)
  return `/proc/self/fd/${fd}`
}

const HELD = /^\/proc\/self\/fd\/(\d+)$/

/** Close the descriptor behind a root layerRoot returned held; nothing for any other root. */
export function releaseRoot(root: string): void {
  const held = HELD.exec(root)
  if (held) closeSync(Number(held[1]))
}

/** One line of mountinfo(5): the filesystem (major:minor), the directory of it mounted (`root`),
 *  where (`point`), and whether the mount maps ids. */
interface Mount {
  dev: string
  root: string
  point: string
  idmapped: boolean
}

function parseMountinfo(mountinfo: string): Mount[] {
  const mounts: Mount[] = []
  for (const line of mountinfo.split('\n')) {
    const fields = line.split(' ')
    if (fields.length < 6) continue
    mounts.push({
      dev: fields[2]!, root: unescapeMountPath(fields[3]!), point: unescapeMountPath(fields[4]!),
      idmapped: fields[5]!.split(',').includes('idmapped'),
    })
  }
  return mounts
}

/** The mount that holds `path`: the longest mount point above it, the last of several on one point
 *  (a later mount covers an earlier one). */
function mountOf(path: string, mounts: Mount[]): Mount | undefined {
  let found: Mount | undefined
  for (const m of mounts) if (under(path, m.point) && m.point.length >= (found?.point.length ?? 0)) found = m
  return found
}

/** `dir`, on the idmapped mount `holder`, through another mount of its filesystem that maps no ids
 *  and reaches it: found in mountinfo, then checked to be the same directory (another mount may
 *  cover the way there). */
function unmappedPath(dir: string, holder: Mount, mounts: Mount[]): string | undefined {
  const inFs = joinUnder(holder.root, dir.slice(holder.point === '/' ? 0 : holder.point.length))
  let want: { dev: number; ino: number } | undefined
  for (const m of mounts) {
    if (m.idmapped || m.dev !== holder.dev || !under(inFs, m.root)) continue
    const candidate = joinUnder(m.point, inFs.slice(m.root === '/' ? 0 : m.root.length))
    try {
      want ??= lstatSync(dir)
      const st = lstatSync(candidate)
      if (st.isDirectory() && st.dev === want.dev && st.ino === want.ino && mountOf(candidate, mounts) === m) return candidate
    } catch {
      // Not reachable from here: try another.
    }
  }
  return undefined
}

/** Whether `path` is `dir` or below it. */
function under(path: string, dir: string): boolean {
  return dir === '/' || path === dir || path.startsWith(dir + '/')
}

/** `base` followed by `rest` ('' or '/…'). */
function joinUnder(base: string, rest: string): string {
  return base === '/' ? rest || '/' : base + rest
}

/** /proc/self/mountinfo, or '' where there is none. */
export function readMountinfo(): string {
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8')
  } catch {
    return ''
  }
}

/** Whether the mount that holds `dir` carries the `idmapped` option (see mountOf). */
export function onIdmappedMount(dir: string, mountinfo: string): boolean {
  return mountOf(dir, parseMountinfo(mountinfo))?.idmapped ?? false
}

/** mountinfo escapes space, tab, newline and backslash as octal (`\040`). */
function unescapeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)))
}
