/**
 * The `layerfs` command. With a subcommand it dispatches; otherwise the arguments are a mount command
 * line in fuse-overlayfs form (so `mount -t fuse.layerfs` and podman's mount_program work unchanged).
 */
import { exitWith } from './exit.js'

type Command = { run(args: string[]): Promise<number> }

const COMMANDS: Record<string, () => Promise<Command>> = {
  mount: () => import('./commands/mount-image.js'),
  umount: () => import('./commands/umount.js'),
  unmount: () => import('./commands/umount.js'),
  stats: () => import('./commands/stats.js'),
  demo: () => import('./commands/demo.js'),
  bench: () => import('./commands/bench.js'),
  import: () => import('./commands/import.js'),
  inspect: () => import('./commands/inspect.js'),
  ls: () => import('./commands/ls.js'),
  cat: () => import('./commands/cat.js'),
  which: () => import('./commands/which.js'),
  diff: () => import('./commands/diff.js'),
  commit: () => import('./commands/commit.js'),
}

const USAGE = `usage:
  layerfs [-f] [-d] -o lowerdir=A[:B...][,upperdir=U,workdir=W][,OPTS] MNT   mount a layer stack
  layerfs SOURCE MNT -o OPTS                  (the form mount.fuse3 uses)
  layerfs mount IMAGE[:TAG] MNT [--upper U --work W]   mount an image file (docker-save or OCI)
  layerfs umount MNT                          unmount
  layerfs stats MNT                           operation counts, cache hit rate, copy-ups
  layerfs demo [DIR]                          mount the bundled sample image, show copy-up and whiteouts
  layerfs bench [--quick|--check] ...         copy-on-write benchmark against kernel overlayfs and fuse-overlayfs
  layerfs import|inspect|ls|cat|which IMAGE   read container images (see layerfs CMD --help)
  layerfs diff UPPER | commit ...             a container's changes, and committing them

mount options: lowerdir, upperdir, workdir, ro, volatile, flush_behind=1|0, metacopy=on|off,
  redirect_dir=on|off, allow_other, cache_entries=N, entry_timeout=S, attr_timeout=S, negative_timeout=S,
  bridge=ll|fuse-native, passthrough=on|upper|off, spin=US, acl|noacl, uidmapping, gidmapping,
  squash_to_root, squash_to_uid=N, squash_to_gid=N, log=FILE, debug (see the README)
`

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv
  if (first === undefined || first === '-h' || first === '--help' || first === 'help') {
    process.stdout.write(USAGE)
    return first === undefined ? 2 : 0
  }
  const load = COMMANDS[first]
  if (load) return (await load()).run(rest)
  const mount = await import('./mount.js')
  return mount.run(argv)
}

exitWith(main(process.argv.slice(2)))
