// Extended attributes, behind an interface so the differential harness can swap the implementation (node has
// no xattr syscalls). The default backend shells out to setfattr/getfattr (package `attr`), always with hex
// values, and turns their strerror text back into errno codes.
import { ErrnoError, errnoFromStderr, runCmd } from '../helpers/exec.js'

export interface XattrOptions {
  /** Operate on a symlink itself (lgetxattr & co.) instead of following it. */
  noFollow?: boolean
}

export interface XattrBackend {
  get(path: string, name: string, o?: XattrOptions): Promise<Buffer>
  set(path: string, name: string, value: Buffer | string, o?: XattrOptions): Promise<void>
  remove(path: string, name: string, o?: XattrOptions): Promise<void>
  /** All attribute names the caller may see (as listxattr(2)), unsorted. */
  list(path: string, o?: XattrOptions): Promise<string[]>
  /**
   * Every attribute (names matching `pattern`, a getfattr -m regex) of many paths at once, never following
   * symlinks. Paths that fail (or have none) map to {}.
   */
  dumpMany(paths: string[], pattern: string): Promise<Map<string, Record<string, Buffer>>>
}

function fail(stderr: string, what: string): never {
  throw new ErrnoError(errnoFromStderr(stderr) ?? 'EUNKNOWN', `${what}: ${stderr.trim()}`)
}

function decodeName(s: string): string {
  // getfattr escapes unusual characters in file and attribute names as \ooo
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)))
}

function decodeValue(v: string | undefined): Buffer {
  if (v === undefined || v === '' || v === '""') return Buffer.alloc(0)
  if (v.startsWith('0x')) return Buffer.from(v.slice(2), 'hex')
  if (v.startsWith('0s')) return Buffer.from(v.slice(2), 'base64')
  if (v.startsWith('"') && v.endsWith('"')) return Buffer.from(decodeName(v.slice(1, -1)), 'latin1')
  return Buffer.from(v, 'latin1')
}

/** Parse `getfattr --absolute-names -d -e hex` output: "# file: P" blocks of `name=0x..` lines. */
function parseDump(out: string): Map<string, Record<string, Buffer>> {
  const res = new Map<string, Record<string, Buffer>>()
  let cur: Record<string, Buffer> | undefined
  for (const line of out.split('\n')) {
    if (line.startsWith('# file: ')) {
      cur = {}
      res.set(decodeName(line.slice(8)), cur)
    } else if (line !== '' && cur !== undefined) {
      const eq = line.indexOf('=')
      const name = decodeName(eq < 0 ? line : line.slice(0, eq))
      cur[name] = decodeValue(eq < 0 ? undefined : line.slice(eq + 1))
    }
  }
  return res
}

export class AttrToolsXattr implements XattrBackend {
  constructor(private readonly timeoutMs = 10_000) {}

  async get(path: string, name: string, o: XattrOptions = {}): Promise<Buffer> {
    const args = ['--absolute-names', '-e', 'hex', '-n', name]
    if (o.noFollow) args.push('-h')
    const r = await runCmd('getfattr', [...args, '--', path], { timeoutMs: this.timeoutMs })
    if (r.code !== 0) fail(r.stderr, `getxattr ${name}`)
    const v = parseDump(r.stdout).values().next().value?.[name]
    if (v === undefined) throw new ErrnoError('ENODATA', `getxattr ${name}: not in output`)
    return v
  }

  async set(path: string, name: string, value: Buffer | string, o: XattrOptions = {}): Promise<void> {
    const buf = typeof value === 'string' ? Buffer.from(value) : value
    const args = ['-n', name]
    if (buf.length > 0) args.push('-v', '0x' + buf.toString('hex'))
    if (o.noFollow) args.push('-h')
    const r = await runCmd('setfattr', [...args, '--', path], { timeoutMs: this.timeoutMs })
    if (r.code !== 0) fail(r.stderr, `setxattr ${name}`)
  }

  async remove(path: string, name: string, o: XattrOptions = {}): Promise<void> {
    const args = ['-x', name]
    if (o.noFollow) args.push('-h')
    const r = await runCmd('setfattr', [...args, '--', path], { timeoutMs: this.timeoutMs })
    if (r.code !== 0) fail(r.stderr, `removexattr ${name}`)
  }

  async list(path: string, o: XattrOptions = {}): Promise<string[]> {
    const args = ['--absolute-names', '-m', '-']
    if (o.noFollow) args.push('-h')
    const r = await runCmd('getfattr', [...args, '--', path], { timeoutMs: this.timeoutMs })
    if (r.code !== 0) fail(r.stderr, 'listxattr')
    const names: string[] = []
    for (const line of r.stdout.split('\n')) if (line !== '' && !line.startsWith('# file: ')) names.push(decodeName(line))
    return names
  }

  async dumpMany(paths: string[], pattern: string): Promise<Map<string, Record<string, Buffer>>> {
    const res = new Map<string, Record<string, Buffer>>()
    for (let i = 0; i < paths.length; i += 200) {
      const chunk = paths.slice(i, i + 200)
      const r = await runCmd('getfattr', ['--absolute-names', '-h', '-d', '-e', 'hex', '-m', pattern, '--', ...chunk], {
        timeoutMs: this.timeoutMs,
      })
      if (r.timedOut) throw new Error(`getfattr timed out on ${chunk.length} paths`)
      for (const [k, v] of parseDump(r.stdout)) res.set(k, v)
    }
    for (const p of paths) if (!res.has(p)) res.set(p, {})
    return res
  }
}

export const defaultXattr: XattrBackend = new AttrToolsXattr()
