/**
 * The workloads: each runs against one instance root (a mount point or the plain copy), in this process
 * (node:fs) or by spawning a tool (find, tar, chown, chmod). Read-only workloads are measured cold (fresh
 * mount, caches dropped) and then warm (same mount, right after); modifying ones get a fresh upper (a new
 * mount) every repetition and run once.
 */
import { constants, existsSync } from 'node:fs'
import { lstat, mkdir, open, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describeCmd, runCmd } from './exec.js'
import type { Fixture } from './fixture.js'
import { Rng } from './rng.js'
import { pool, walkTree } from './walk.js'

export type Mode = 'cold' | 'warm'

export interface WorkloadContext {
  root: string
  fx: Fixture
  timeoutMs: number
}

export interface Workload {
  name: string
  description: string
  /** true: needs a fresh upper each repetition; measured once per mount */
  mutates: boolean
  /** for the plain driver when mutating: merged-view paths to copy ('*small' = all but the big files) */
  needs: (fx: Fixture) => string[]
  /** host paths it reads besides the mount (a tarball) */
  reads?: (fx: Fixture) => string[]
  /** untimed preparation on the fresh instance */
  setup?: (ctx: WorkloadContext) => Promise<void>
  run: (ctx: WorkloadContext) => Promise<void>
}

const MiB = 1 << 20

async function tool(cmd: string, args: string[], ctx: WorkloadContext, cwd?: string): Promise<void> {
  const r = await runCmd(cmd, args, { timeoutMs: ctx.timeoutMs, cwd, discardStdout: true })
  if (r.code !== 0 || r.timedOut) throw new Error(describeCmd(r))
}

const big = (fx: Fixture, i: number): string => fx.bigFiles[i % fx.bigFiles.length]!

async function firstWrite(path: string): Promise<void> {
  const fh = await open(path, constants.O_WRONLY)
  try {
    await fh.write(Buffer.from('x'), 0, 1, 0)
  } finally {
    await fh.close()
  }
}

const none = (): string[] => []

export const WORKLOADS: Workload[] = [
  {
    name: 'find',
    description: 'find over the whole tree (readdir, no file data)',
    mutates: false,
    needs: none,
    run: (ctx) => tool('find', ['.'], ctx, ctx.root),
  },
  {
    name: 'lstat-all',
    description: 'readdir + lstat of every entry (8 in flight)',
    mutates: false,
    needs: none,
    run: async (ctx) => { await walkTree(ctx.root, (p) => lstat(p).then(() => undefined)) },
  },
  {
    name: 'read-small',
    description: 'read every file except the big ones (8 in flight)',
    mutates: false,
    needs: none,
    run: async (ctx) => {
      const bigDir = join(ctx.root, ctx.fx.bigDir)
      await walkTree(ctx.root, async (p, d) => { if (d.isFile()) await readFile(p) }, { skip: (p) => p === bigDir })
    },
  },
  {
    name: 'seq-read',
    description: 'sequential read of a big file, 1 MiB buffers',
    mutates: false,
    needs: none,
    run: async (ctx) => {
      const fh = await open(join(ctx.root, big(ctx.fx, 0)), 'r')
      const buf = Buffer.allocUnsafe(MiB)
      try {
        for (;;) {
          const { bytesRead } = await fh.read(buf, 0, MiB, null)
          if (bytesRead === 0) break
        }
      } finally {
        await fh.close()
      }
    },
  },
  {
    name: 'rand-read',
    description: '4 KiB reads at random offsets of a big file, one at a time',
    mutates: false,
    needs: none,
    run: async (ctx) => {
      const fh = await open(join(ctx.root, big(ctx.fx, 1)), 'r')
      const buf = Buffer.allocUnsafe(4096)
      const rng = new Rng(42)
      const blocks = Math.floor(ctx.fx.spec.bigBytes / 4096)
      try {
        for (let i = 0; i < ctx.fx.spec.randReads; i++) await fh.read(buf, 0, 4096, rng.int(0, blocks - 1) * 4096)
      } finally {
        await fh.close()
      }
    },
  },
  {
    name: 'copy-up',
    description: 'first write to a big lower file: open O_WRONLY + write 1 byte + close',
    mutates: true,
    needs: (fx) => [big(fx, 2)],
    run: (ctx) => firstWrite(join(ctx.root, big(ctx.fx, 2))),
  },
  {
    name: 'append',
    description: 'append to a big file after its copy-up, 1 MiB writes',
    mutates: true,
    needs: (fx) => [big(fx, 0)],
    setup: (ctx) => firstWrite(join(ctx.root, big(ctx.fx, 0))),
    run: async (ctx) => {
      const fh = await open(join(ctx.root, big(ctx.fx, 0)), constants.O_WRONLY | constants.O_APPEND)
      const buf = Buffer.alloc(MiB, 0x61)
      try {
        for (let n = 0; n < ctx.fx.spec.appendBytes; n += MiB) await fh.write(buf, 0, MiB)
      } finally {
        await fh.close()
      }
    },
  },
  {
    name: 'chown-R',
    description: 'chown -R of the node_modules layer',
    mutates: true,
    needs: (fx) => [fx.nmRoot],
    run: (ctx) => tool('chown', ['-R', '1000:1000', join(ctx.root, ctx.fx.nmRoot)], ctx),
  },
  {
    name: 'chmod-R',
    description: 'chmod -R g+w of the node_modules layer',
    mutates: true,
    needs: (fx) => [fx.nmRoot],
    run: (ctx) => tool('chmod', ['-R', 'g+w', join(ctx.root, ctx.fx.nmRoot)], ctx),
  },
  {
    name: 'create-delete',
    description: 'create N small files in a new dir, then delete them (8 in flight)',
    mutates: true,
    needs: none,
    run: async (ctx) => {
      const dir = join(ctx.root, 'bench-create')
      await mkdir(dir)
      const names = Array.from({ length: ctx.fx.spec.bulkOps }, (_, i) => join(dir, `f${i}.tmp`))
      const data = Buffer.alloc(128, 0x62)
      await pool(names, 8, (p) => writeFile(p, data))
      await pool(names, 8, (p) => unlink(p))
      await rm(dir, { recursive: true })
    },
  },
  {
    name: 'untar',
    description: 'tar xf of the node_modules tarball into the mount',
    mutates: true,
    needs: none,
    reads: (fx) => [fx.tarball],
    run: async (ctx) => {
      const dir = join(ctx.root, 'bench-untar')
      await mkdir(dir)
      await tool('tar', ['xf', ctx.fx.tarball, '-C', dir], ctx)
    },
  },
  {
    name: 'rename',
    description: 'rename N existing (lower) files in place (8 in flight)',
    mutates: true,
    needs: () => ['*small'],
    run: (ctx) => pool(ctx.fx.renameFiles, 8, (rel) => rename(join(ctx.root, rel), join(ctx.root, `${rel}.mv`))),
  },
  {
    name: 'build-mix',
    description: '4 parallel workers: stat sources, probe missing headers, read, write objects, append a log',
    mutates: true,
    needs: () => ['*small'],
    run: async (ctx) => {
      const out = join(ctx.root, 'bench-build')
      await mkdir(out)
      const obj = Buffer.alloc(2048, 0x6f)
      const workers = 4
      await Promise.all(Array.from({ length: workers }, async (_, w) => {
        const dir = join(out, `w${w}`)
        await mkdir(dir)
        const log = await open(join(dir, 'build.log'), 'a')
        try {
          const mine = ctx.fx.buildSources.filter((_, i) => i % workers === w)
          for (let i = 0; i < mine.length; i++) {
            const src = join(ctx.root, mine[i]!)
            await stat(src)
            for (const probe of ['.h', '.d', '.cache']) await stat(src + probe).catch(() => undefined)
            await readFile(src)
            await writeFile(join(dir, `${i}.o`), obj)
            if (i % 10 === 0) await log.write(`compiled ${mine[i]}\n`)
          }
        } finally {
          await log.close()
        }
      }))
    },
  },
]

export const WORKLOAD_NAMES = WORKLOADS.map((w) => w.name)

/**
 * The host files a changing workload reads its data from, as `find` operands: the lower layers'
 * copies of what it `needs` ('*small': every layer, the big files pruned), and what it `reads`.
 * The layers are shared by every driver, so the first driver of a round would otherwise read
 * them from the disk and leave them cached for the ones after it (see runner.ts, warmData).
 */
export function dataPaths(fx: Fixture, w: Workload): { paths: string[]; prune: string[] } {
  const paths: string[] = []
  const prune: string[] = []
  for (const rel of w.needs(fx)) {
    for (const lower of fx.lowers) {
      if (rel === '*small') {
        paths.push(lower)
        prune.push(join(lower, fx.bigDir))
      } else if (existsSync(join(lower, rel))) {
        paths.push(join(lower, rel))
      }
    }
  }
  return { paths: [...paths, ...(w.reads?.(fx) ?? [])], prune }
}

/** "find:cold" etc.: the names samples and report rows are keyed by. */
export function sampleKeys(w: Workload, modes: Mode[]): string[] {
  return w.mutates ? [w.name] : modes.map((m) => `${w.name}:${m}`)
}
