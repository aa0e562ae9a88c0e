// What stat shows of a file, as one line the tests that run a script on kernel overlayfs and on
// layerfs compare: the same line on both, or a difference that names the field.
import { lstat, readFile } from 'node:fs/promises'

/** The inode number, mtime and ctime of files before a script's changes, by a name of the test's. */
export type Before = Map<string, { ino: bigint; mtimeNs: bigint; ctimeNs: bigint }>

/** Notes what `path` shows now in `before`, as `key`. */
export async function remember(before: Before, key: string, path: string): Promise<void> {
  const st = await lstat(path, { bigint: true })
  before.set(key, { ino: st.ino, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs })
}

/** Type and mode, links, owner and size of `path`; with `content`, the first that many bytes read
 *  from it; and whether its inode number, mtime and ctime are those `before` holds for `key`. */
export async function statLine(path: string, options: { before?: Before; key?: string; content?: number } = {}): Promise<string> {
  const st = await lstat(path, { bigint: true })
  const was = options.before?.get(options.key ?? path)
  const word = (same: boolean): string => same ? 'same' : 'other'
  const same = was === undefined ? '' : ` ino ${word(st.ino === was.ino)} mtime ${word(st.mtimeNs === was.mtimeNs)} ctime ${word(st.ctimeNs === was.ctimeNs)}`
  const text = options.content === undefined ? '' : ` "${(await readFile(path)).subarray(0, options.content).toString()}"`
  return `${st.mode.toString(8)} nlink ${st.nlink} ${st.uid}:${st.gid} size ${st.size}${text}${same}`
}
