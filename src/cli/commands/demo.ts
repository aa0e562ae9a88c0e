/**
 * `layerfs demo [DIR]`: mount the bundled sample image and show, step by step, what a union
 * filesystem does: the merged view, a copy-up on first write, a whiteout on delete, an opaque
 * directory, and the untouched lower layers. Everything lives under DIR (a new temp dir by default)
 * and is unmounted at the end, also on failure.
 */
import { execFile } from 'node:child_process'
import { lstat, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { LAYER_NAMES, writeSampleImage } from '../../demo/sample-image.js'
import { isFuseMounted, unmountPath } from '../../fuse/daemon.js'
import { lgetxattr } from '../../sys/native.js'

const CLI = fileURLToPath(new URL('../main.js', import.meta.url))

function runCli(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      done({ code: err ? 1 : 0, out: (stdout + stderr).trim() })
    })
  })
}

async function tree(root: string): Promise<string[]> {
  const out: string[] = []
  const walk = async (dir: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const path = join(dir, name)
      const st = await lstat(path)
      const rel = relative(root, path)
      if (st.isDirectory()) {
        const opaque = (await lgetxattr(path, 'trusted.overlay.opaque').catch(() => undefined))?.toString() === 'y'
        out.push(`${rel}/${opaque ? '   (opaque directory)' : ''}`)
        await walk(path)
      } else if (st.isCharacterDevice() && st.rdev === 0) {
        out.push(`${rel}   (whiteout: char device 0/0)`)
      } else {
        out.push(`${rel}   ${st.size} bytes`)
      }
    }
  }
  await walk(root)
  return out
}

export async function run(args: string[]): Promise<number> {
  if (args[0] === '--help') {
    process.stdout.write('usage: layerfs demo [DIR]   mount the sample image and show copy-up and whiteouts\n')
    return 0
  }
  const root = args[0] ?? (await mkdtemp(join(tmpdir(), 'layerfs-demo-')))
  const say = (line = ''): void => { process.stdout.write(line + '\n') }
  const show = (lines: string[]): void => { for (const l of lines) say('    ' + l) }
  const layers = await writeSampleImage(join(root, 'layers'))
  const [upper, work, mnt] = ['upper', 'work', 'merged'].map((d) => join(root, d)) as [string, string, string]
  for (const d of [upper, work, mnt]) await mkdir(d, { recursive: true })
  const lowerdir = [...layers].reverse().join(':')
  say(`== the sample image: ${layers.length} layers (${LAYER_NAMES.join(', ')}) in ${join(root, 'layers')}`)
  say(`$ layerfs -o lowerdir=<config>:<app>:<base>,upperdir=${upper},workdir=${work} ${mnt}`)
  const mounted = await runCli(['-o', `lowerdir=${lowerdir},upperdir=${upper},workdir=${work}`, mnt])
  if (mounted.code !== 0) {
    process.stderr.write(`layerfs demo: mount failed: ${mounted.out}\n`)
    return 1
  }
  try {
    say('\n== the merged view (motd deleted by the app layer, apt cache emptied by an opaque dir):')
    show(await tree(mnt))
    say(`\n$ cat ${mnt}/etc/app.conf          # the config layer wins`)
    show((await readFile(join(mnt, 'etc/app.conf'), 'utf8')).trimEnd().split('\n'))

    say(`\n== copy-up: append to a file that lives in the base layer`)
    say(`$ echo "# edited" >> ${mnt}/usr/share/doc/README`)
    await writeFile(join(mnt, 'usr/share/doc/README'), '# edited in the container\n', { flag: 'a' })
    say('  the upper layer now holds a full copy (its parents came up too):')
    show(await tree(upper))
    say('  the base layer is untouched:')
    show((await readFile(join(layers[0]!, 'usr/share/doc/README'), 'utf8')).trimEnd().split('\n'))

    say(`\n== whiteout: delete a file that lives in a lower layer`)
    say(`$ rm ${mnt}/etc/os-release`)
    await rm(join(mnt, 'etc/os-release'))
    say('  the upper layer records the deletion as a whiteout:')
    show(await tree(upper))
    say(`  and the merged /etc is now: ${(await readdir(join(mnt, 'etc'))).sort().join(' ')}`)

    say(`\n== opaque directory: remove a lower directory and create it again`)
    say(`$ rm -r ${mnt}/srv/app && mkdir ${mnt}/srv/app && echo new > ${mnt}/srv/app/fresh`)
    await rm(join(mnt, 'srv/app'), { recursive: true })
    await mkdir(join(mnt, 'srv/app'))
    await writeFile(join(mnt, 'srv/app/fresh'), 'new\n')
    show(await tree(upper))
    say(`  merged /srv/app: ${(await readdir(join(mnt, 'srv/app'))).join(' ')}   (the app layer's files stay hidden)`)

    say('\n$ layerfs stats ' + mnt)
    show((await runCli(['stats', mnt])).out.split('\n'))
  } finally {
    if (isFuseMounted(mnt)) await unmountPath(mnt)
  }
  say(`\nunmounted. Everything is in ${root}. The upper dir is in kernel overlayfs's format (char 0/0`)
  say(`whiteouts, trusted.overlay.opaque); mount it again with layerfs (which also reads the OCI markers`)
  say(`of the image layers, which the kernel does not):`)
  say(`  layerfs -o lowerdir=${lowerdir},upperdir=${upper},workdir=${work} ${mnt}`)
  return 0
}
