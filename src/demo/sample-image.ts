/**
 * The bundled demo image: three small layers written as directories, the way an image store keeps
 * them, generated here so the demo needs no download. They use both whiteout encodings a real image
 * stack contains: the OCI `.wh.NAME` file and the `.wh..wh..opq` marker.
 *
 *   layer 0 (base)   a tiny OS tree: /etc, /usr/share/doc, /var/cache/apt with package lists
 *   layer 1 (app)    adds /srv/app, deletes /etc/motd (.wh.motd), empties /var/cache/apt (opaque)
 *   layer 2 (config) overrides /etc/app.conf
 */
import { mkdir, utimes, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'

const CREATED = new Date('2024-01-01T00:00:00Z')

const LAYERS: Array<Record<string, string>> = [
  {
    'etc/os-release': 'NAME="Demo Linux"\nVERSION_ID=1\n',
    'etc/motd': 'Welcome to the base layer.\n',
    'etc/app.conf': 'port=8080\nlog=info\n',
    'usr/share/doc/README': 'Documentation from the base layer.\n',
    'var/cache/apt/pkgcache.bin': 'x'.repeat(64 * 1024),
    'var/cache/apt/srcpkgcache.bin': 'y'.repeat(32 * 1024),
  },
  {
    'srv/app/server.js': "console.log('hello from the app layer')\n",
    'srv/app/data.json': '{"items": [1, 2, 3]}\n',
    'etc/.wh.motd': '',
    'var/cache/apt/.wh..wh..opq': '',
  },
  {
    'etc/app.conf': 'port=9090\nlog=debug\n',
  },
]

export const LAYER_NAMES = ['base', 'app', 'config']

/** Write the layers under `root`; returns their dirs, base first (OCI order). */
export async function writeSampleImage(root: string): Promise<string[]> {
  const dirs: string[] = []
  for (const [i, layer] of LAYERS.entries()) {
    const dir = join(root, `${i}-${LAYER_NAMES[i]}`)
    for (const [rel, content] of Object.entries(layer)) {
      const path = join(dir, rel)
      await mkdir(dirname(path), { recursive: true })
      await writeFile(path, content)
      await utimes(path, CREATED, CREATED)
    }
    dirs.push(dir)
  }
  return dirs
}
