// Two readers of one directory at once, while a third process makes and removes other names in it:
// every reader must see each name nobody touched exactly once (POSIX leaves only the names made or
// removed during a listing unspecified). Found by a stress run on 2026-12-05: a read's offset was a
// place in one listing of the daemon's, and a reader whose next read met another listing (another
// reader's, or one taken after the kernel's cache of the directory served its first entries)
// skipped or repeated names; offsets are now cookies of the names (ll-bridge.ts, listingOf).
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { fuseAvailable } from '../helpers/mount.js'
import { layerfsSuite } from '../helpers/layerfs-suite.js'

const fuse = fuseAvailable()
if (!fuse.ok) console.warn(`skipping concurrent listing tests: ${fuse.reason}`)
if (fuse.ok && !existsSync(resolve('dist/src/cli/main.js'))) throw new Error('build first: npm run build')

/** Two listers and one changer of `dir` for `seconds`; prints "listings wrong" per lister. */
const SCRIPT = `
import multiprocessing as mp, os, random, sys, time
d, seconds = sys.argv[1], float(sys.argv[2])
stable = sorted('z%03d' % i for i in range(200))
def churn(deadline):
    r = random.Random(1)
    while time.time() < deadline:
        n = os.path.join(d, 'a%03d' % r.randrange(100))
        try:
            if r.random() < .5: open(n, 'w').close()
            else: os.unlink(n)
        except FileNotFoundError: pass
def lister(deadline, q):
    passes = wrong = 0
    while time.time() < deadline:
        z = [n for n in os.listdir(d) if n.startswith('z')]
        passes += 1
        if sorted(z) != stable: wrong += 1
    q.put((passes, wrong))
if __name__ == '__main__':
    deadline = time.time() + seconds
    q = mp.Queue()
    ps = [mp.Process(target=churn, args=(deadline,))] + [mp.Process(target=lister, args=(deadline, q)) for _ in range(2)]
    for p in ps: p.start()
    for p in ps: p.join()
    for _ in range(2): print(*q.get())
`

function run(dir: string): Promise<Array<[number, number]>> {
  return new Promise((resolveRun, reject) => {
    const child = spawn('python3', ['-c', SCRIPT, dir, '3'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    child.stderr.on('data', (d: Buffer) => { err += d.toString() })
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    child.on('exit', (code) => {
      clearTimeout(timer)
      if (code !== 0) reject(new Error(`listers failed (${code}): ${err}`))
      else resolveRun(out.trim().split('\n').map((l) => l.split(' ').map(Number) as [number, number]))
    })
  })
}

describe.skipIf(!fuse.ok)('concurrent listings of one directory', () => {
  const suite = layerfsSuite('listings')

  it.each([['merged with a lower one', true], ['only in the upper layer', false]])(
    'give every name nobody touched once to each of two readers, while names come and go (a directory %s)',
    async (_what, merged) => {
      const { mnt } = await suite.stack('', async (lower) => {
        await mkdir(join(lower!, 'dir'))
        if (merged) for (let i = 0; i < 100; i++) await writeFile(join(lower!, 'dir', `z${String(i).padStart(3, '0')}`), '')
      })
      const dir = join(mnt, 'dir')
      await mkdir(dir, { recursive: true })
      for (let i = merged ? 100 : 0; i < 200; i++) await writeFile(join(dir, `z${String(i).padStart(3, '0')}`), '')
      const results = await run(dir)
      expect(results).toHaveLength(2)
      for (const [passes, wrong] of results) {
        expect(passes).toBeGreaterThan(50)
        expect(wrong).toBe(0)
      }
    },
    60_000,
  )
})
