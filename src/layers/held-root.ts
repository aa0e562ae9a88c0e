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
 */
import { constants, openSync, readFileSync } from 'node:fs'

/** The root to address `dir` (a real path) by: a held descriptor's /proc path when `dir` is on an
 *  idmapped mount, else `dir` itself. */
export function layerRoot(dir: string, mountinfo = readMountinfo()): string {
  if (!onIdmappedMount(dir, mountinfo)) return dir
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY)
  return `/proc/self/fd/${fd}`
}

/** /proc/self/mountinfo, or '' where there is none. */
export function readMountinfo(): string {
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8')
  } catch {
    return ''
  }
}

/**
 * Whether the mount that holds `dir` carries the `idmapped` option: the last mount in `mountinfo`
 * (mountinfo(5) lines; a later mount on the same point covers an earlier one) whose mount point is
 * `dir` or one of its ancestors, the longest such.
 */
export function onIdmappedMount(dir: string, mountinfo: string): boolean {
  let best = -1
  let idmapped = false
  for (const line of mountinfo.split('\n')) {
    const fields = line.split(' ')
    if (fields.length < 6) continue
    const point = unescapeMountPath(fields[4]!)
    const covers = point === '/' || dir === point || dir.startsWith(point + '/')
    if (!covers || point.length < best) continue
    best = point.length
    idmapped = fields[5]!.split(',').includes('idmapped')
  }
  return idmapped
}

/** mountinfo escapes space, tab, newline and backslash as octal (`\040`). */
function unescapeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)))
}
