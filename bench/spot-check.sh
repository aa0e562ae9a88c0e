#!/usr/bin/env bash
# Spot checks outside `layerfs bench`: everyday commands (ls -lR, du, grep -r, cp -a, tar, git,
# sqlite, mkdir -p/rm -rf, atomic replaces (write, fsync, rename), touch, setfattr, truncate -s,
# cp -al and rm -rf of lower files, mv of a lower directory, a mount's start and end, reads and
# changes of files an earlier run left in the upper layer, lower files overwritten or edited in
# place, stats of missing names, four readers at once, rm -rf and renames of upper files, a big
# file copied and one written, ...) run on the quick fixture under each
# driver, a fresh mount per driver and round, rounds interleaved; and a container's commands,
# programs started, Python importing modules from an image (the host's /usr) and recompiling some.
# Prints each command's median wall time per driver and layerfs's ratios.
#
#   bash bench/spot-check.sh [ROUNDS]     (default 3; as root; run `layerfs bench --quick` once first)
#   SPOT_WORKLOADS='cp-al touch-lower' bash bench/spot-check.sh 5     (some of them only)
#
# Commands whose tool is missing are skipped. Each command starts after a `sync` (untimed), so that
# no driver pays for the writeback of what the one before it left dirty (fuse-overlayfs does not
# fsync its copies, kernel overlayfs and layerfs do), and the drivers' order turns each round.
# Nothing is deleted until the end (deletions slow the next inode allocations on journal-less
# ext4, see the README's note), and every mount is undone on exit, also on failure.
set -euo pipefail
ROUNDS=${1:-3}
REPO=$(cd "$(dirname "$0")/.." && pwd)
FX=${LAYERFS_BENCH_DIR:-/var/tmp/layerfs-bench}/fixture-quick/layers
[ -d "$FX/base" ] || { echo "spot-check: no quick fixture at $FX; run 'node bin/layerfs.js bench --quick' once" >&2; exit 1; }
WORK=$(mktemp -d /var/tmp/layerfs-spot.XXXXXX)
# A top directory for ext4's allocator, as the bench marks its own (spreadInstances in
# bench/drivers.ts): the stacks made under it go to little-used block groups, away from the inodes
# earlier runs freed, which ext4 without a journal makes every create scan past for a minute or more.
chattr +T "$WORK" 2>/dev/null || true
M=""
unmount() {
  [ -n "$M" ] || return 0
  if grep -q " $M " /proc/self/mountinfo; then
    umount "$M" 2>/dev/null || fusermount3 -u "$M" 2>/dev/null || fusermount3 -uz "$M" 2>/dev/null || umount -l "$M"
  fi
  M=""
}
trap 'unmount; rm -rf "$WORK"' EXIT

drivers=(kernel layerfs)
command -v fuse-overlayfs >/dev/null && drivers=(kernel fuse-overlayfs layerfs)

mount_stack() { # driver dir [lowers]: mounts a fresh stack at dir/m (of the fixture's layers)
  local d=$2 lowers=${3:-"$FX/changes:$FX/nm:$FX/base"}
  mkdir -p "$d/u" "$d/w" "$d/m"
  local opts="lowerdir=$lowers,upperdir=$d/u,workdir=$d/w"
  case $1 in
    kernel) mount -t overlay overlay -o "$opts" "$d/m" ;;
    fuse-overlayfs) fuse-overlayfs -o "$opts" "$d/m" ;;
    layerfs) "$REPO/bin/layerfs" -o "$opts" "$d/m" ;;
  esac
}

unmount_stack() { # dir: unmounts dir/m
  umount "$1/m" 2>/dev/null || fusermount3 -u "$1/m" 2>/dev/null || fusermount3 -uz "$1/m"
}

mount_driver() { # driver dir
  mount_stack "$1" "$2"
  M=$2/m
}

# What a container's start asks of its storage: mount the stack, read its root, and (at its end)
# unmount. Undone even when the listing fails.
mount_cycle() { # driver dir
  mount_stack "$1" "$2" || return 1
  local ok=0
  ls -l "$2/m" "$2/m/etc" >/dev/null || ok=$?
  unmount_stack "$2"
  return $ok
}

# A container's first command: the image's own Python (the host's /usr as the one lower layer),
# started through the image's dynamic loader and libraries, importing a dozen standard modules.
# `cold`: on a fresh mount with the caches dropped; else the second run on it. The mount and
# unmount are not timed. Undone even when the run fails.
LDSO=$(ls /usr/lib/*/ld-linux*.so.* 2>/dev/null | head -1 || true)
py_imports() { # mnt
  local lib=${LDSO%/*}
  "$1/${LDSO#/usr/}" --library-path "$1/${lib#/usr/}" "$1/bin/python3" -c \
    'import json, asyncio, email, http.client, unittest, sqlite3, argparse, xml.dom.minidom, decimal, logging.handlers'
}
py_stack() { # driver dir cold|warm: prints the run's time
  local d=$2 ok=0 t
  mount_stack "$1" "$d" /usr || return 1
  if [ "$3" = cold ]; then sync; echo 3 > /proc/sys/vm/drop_caches; else py_imports "$d/m" >/dev/null 2>&1 || ok=$?; fi
  [ $ok = 0 ] && { t=$(ms py_imports "$d/m") || ok=1; }
  unmount_stack "$d"
  [ $ok = 0 ] && echo "$t"
  return $ok
}

# A container started again over the changes its last run made: the quick fixture's node_modules
# layer copied into the upper layer as `nm2` (untimed), a fresh mount, a `find` that lists it
# (untimed), then the command, run in the mount. Undone even when the command fails.
upper_stack() { # driver dir command: prints the command's time
  local d=$2 ok=0 t
  mkdir -p "$d/u"
  cp -a "$FX/nm/node_modules" "$d/u/nm2"
  mount_stack "$1" "$d" || return 1
  find "$d/m/nm2" -type f > "$d/list" || ok=$?
  [ $ok = 0 ] && { t=$(cd "$d/m" && ms bash -c "$3 < '$d/list'") || ok=1; }
  unmount_stack "$d"
  [ $ok = 0 ] && echo "$t"
  return $ok
}

# A container's commands: programs of the image (the host's /usr as the one lower layer) started
# through its loader and libraries, `true` and `ls` of a directory, 300 times each, on a fresh
# mount (their first runs untimed). Undone even when a run fails.
programs_stack() { # driver dir: prints the runs' time
  local d=$2 ok=0 t lib=${LDSO%/*}
  mount_stack "$1" "$d" /usr || return 1
  local ld="$d/m/${LDSO#/usr/}" libs="$d/m/${lib#/usr/}"
  { "$ld" --library-path "$libs" "$d/m/bin/true" && "$ld" --library-path "$libs" "$d/m/bin/ls" "$d/m/share" >/dev/null; } || ok=1
  [ $ok = 0 ] && { t=$(ms bash -c "for i in \$(seq 300); do '$ld' --library-path '$libs' '$d/m/bin/true' && '$ld' --library-path '$libs' '$d/m/bin/ls' '$d/m/share' || exit 1; done") || ok=1; }
  unmount_stack "$d"
  [ $ok = 0 ] && echo "$t"
  return $ok
}

# A package manager's byte-compile step: the image's Python (the host's /usr as the one lower layer)
# recompiling three of its standard packages (`compileall -f`), each .pyc written to a new file and
# renamed over the lower one, on a fresh mount (the first run untimed). Undone even when it fails.
compileall_stack() { # driver dir: prints the run's time
  local d=$2 ok=0 t lib=${LDSO%/*} py=/lib/python3.11
  mount_stack "$1" "$d" /usr || return 1
  local ld="$d/m/${LDSO#/usr/}" libs="$d/m/${lib#/usr/}"
  [ -d "$d/m$py/email" ] || py=$(cd "$d/m" && ls -d lib/python3.* | head -1) py=/${py#/}
  t=$(ms "$ld" --library-path "$libs" "$d/m/bin/python3" -m compileall -f -q "$d/m$py/email" "$d/m$py/json" "$d/m$py/http") || ok=1
  unmount_stack "$d"
  [ $ok = 0 ] && echo "$t"
  return $ok
}

ms() { # run "$@" silently, print its wall time in ms
  local start
  sync
  start=$(date +%s%N)
  "$@" >/dev/null 2>&1 || { echo "spot-check: failed: ${*:0:200}" >&2; return 1; }
  echo $(( ($(date +%s%N) - start) / 1000000 ))
}

have() { command -v "$1" >/dev/null; }

run() { # workload: prints its time, or nothing when its tool is missing
  case $1 in
    ls-lR-cold) sync; echo 3 > /proc/sys/vm/drop_caches; ms ls -lR "$M" ;;
    ls-lR-warm) ls -lR "$M" >/dev/null; ms ls -lR "$M" ;;
    du-warm) du -s "$M" >/dev/null; ms du -s "$M" ;;
    grep-r) ms bash -c "grep -r no-such-text-anywhere '$M/usr' '$M/opt' '$M/etc' '$M/srv' '$M/var'; true" ;;
    cp-a) ms cp -a "$M/node_modules" "$M/nm-copy" ;;
    tar-pipe) mkdir "$M/x"; ms bash -c "tar -C '$M' -cf - usr etc | tar -C '$M/x' -xf -" ;;
    git) if have git; then ms bash -c "cd '$M/etc' && git init -q && git add -A && git -c user.name=a -c user.email=a@b commit -qm x && git status --short"; fi ;;
    sqlite) if have sqlite3; then ms sqlite3 "$M/db.sqlite" "create table t(a,b); $(for i in $(seq 300); do printf "insert into t values(%d,'x');" "$i"; done)"; fi ;;
    open-append-close) ms node -e "const fs=require('fs');for(let i=0;i<3000;i++){const fd=fs.openSync('$M/log.txt','a');fs.writeSync(fd,'line '+i+'\n');fs.closeSync(fd)}" ;;
    mkdir-p-rm-rf) ms bash -c "cd '$M' && mkdir -p d/{1..40}/{1..50} && rm -rf d" ;;
    symlinks) ms node -e "const fs=require('fs');fs.mkdirSync('$M/sl');for(let i=0;i<3000;i++)fs.symlinkSync('t'+i,'$M/sl/l'+i);for(let i=0;i<3000;i++)fs.readlinkSync('$M/sl/l'+i)" ;;
    create-write-stat) ms node -e "const fs=require('fs');fs.mkdirSync('$M/cs');for(let i=0;i<3000;i++){const p='$M/cs/f'+i;const fd=fs.openSync(p,'w');fs.writeSync(fd,'x'.repeat(100));fs.fstatSync(fd);fs.closeSync(fd);fs.statSync(p)}" ;;
    write-fsync-rename) ms node -e "const fs=require('fs');fs.mkdirSync('$M/atomic');for(let i=0;i<400;i++){const t='$M/atomic/f'+i+'.tmp';const fd=fs.openSync(t,'w');fs.writeSync(fd,'x'.repeat(3000));fs.fsyncSync(fd);fs.closeSync(fd);fs.renameSync(t,'$M/atomic/f'+i)}" ;;
    touch-lower) ms bash -c "find '$M/node_modules' -type f | head -1500 | xargs touch" ;;
    setfattr-lower) if have setfattr; then ms bash -c "find '$M/node_modules' -type f | sed -n 1601,2100p | xargs setfattr -n user.spot -v 1"; fi ;;
    truncate-lower) ms bash -c "find '$M/node_modules' -type f | tail -n 800 | xargs truncate -s 100" ;;
    cp-al) ms cp -al "$M/srv" "$M/srv-links" ;;
    rm-rf-lower) ms rm -rf "$M/usr" ;;
    mv-lower-dir) ms mv "$M/opt" "$M/opt-moved" ;;
    mount-cycle) ms mount_cycle "$driver" "$WORK/$round-$driver-cycle" ;;
    upper-cat) upper_stack "$driver" "$WORK/$round-$driver-ucat" 'xargs cat' ;;
    upper-touch) upper_stack "$driver" "$WORK/$round-$driver-utouch" 'xargs touch' ;;
    upper-chown) upper_stack "$driver" "$WORK/$round-$driver-uchown" 'xargs chown 7:7' ;;
    overwrite-lower) ms node -e "const fs=require('fs');for(const f of fs.readFileSync('$WORK/files','utf8').trim().split('\\n').slice(0,1500))fs.writeFileSync('$M/'+f,'x\\n')" ;;
    sed-i-lower) ms bash -c "cd '$M' && sed -n 1601,1900p '$WORK/files' | xargs sed -i s/a/b/" ;;
    stat-missing) ms node -e "const fs=require('fs');const l=fs.readFileSync('$WORK/files','utf8').trim().split('\\n');for(let r=0;r<3;r++)for(const f of l){try{fs.statSync('$M/'+f+'.no'+(r%2))}catch{}}" ;;
    cat-4-cold) sync; echo 3 > /proc/sys/vm/drop_caches; ms bash -c "cd '$M' && xargs -P4 -n100 cat < '$WORK/files'" ;;
    cat-4-warm) (cd "$M" && xargs -P4 -n100 cat < "$WORK/files" >/dev/null); ms bash -c "cd '$M' && xargs -P4 -n100 cat < '$WORK/files'" ;;
    stat-4-warm) (cd "$M" && xargs -P4 -n100 stat < "$WORK/files" >/dev/null); ms bash -c "cd '$M' && xargs -P4 -n100 stat < '$WORK/files'" ;;
    mkdir-lower) ms bash -c "cd '$M' && sed 's|\$|/new|' '$WORK/dirs' | head -400 | xargs mkdir" ;;
    # (Last in the list: its deletions would slow the creates of every row after it, as above.)
    rm-rf-upper) [ -d "$M/nm-copy" ] || cp -a "$M/node_modules" "$M/nm-copy"; ms rm -rf "$M/nm-copy" ;;
    mv-upper) [ -d "$M/cs" ] || run create-write-stat >/dev/null; ms node -e "const fs=require('fs');for(let i=0;i<3000;i++)fs.renameSync('$M/cs/f'+i,'$M/cs/g'+i)" ;;
    cp-big) cat "$M/bigdata/big-0.bin" >/dev/null; ms cp "$M/bigdata/big-0.bin" "$M/big-copy" ;;
    dd-write) ms dd if=/dev/zero of="$M/dd.out" bs=1M count=128 conv=fsync ;;
    py-compileall) if [ -x /usr/bin/python3 ] && [ -n "$LDSO" ]; then compileall_stack "$driver" "$WORK/$round-$driver-pyca"; fi ;;
    programs) if [ -n "$LDSO" ]; then programs_stack "$driver" "$WORK/$round-$driver-prog"; fi ;;
    py-import-cold) if [ -x /usr/bin/python3 ] && [ -n "$LDSO" ]; then py_stack "$driver" "$WORK/$round-$driver-pyc" cold; fi ;;
    py-import-warm) if [ -x /usr/bin/python3 ] && [ -n "$LDSO" ]; then py_stack "$driver" "$WORK/$round-$driver-pyw" warm; fi ;;
  esac
}

WORKLOADS=${SPOT_WORKLOADS:-"ls-lR-cold ls-lR-warm du-warm grep-r cp-a tar-pipe git sqlite open-append-close mkdir-p-rm-rf symlinks create-write-stat mv-upper write-fsync-rename touch-lower setfattr-lower truncate-lower cp-al rm-rf-lower mv-lower-dir mount-cycle upper-cat upper-touch upper-chown overwrite-lower sed-i-lower stat-missing cat-4-cold cat-4-warm stat-4-warm mkdir-lower programs py-import-cold py-import-warm py-compileall cp-big dd-write rm-rf-upper"}
results=$WORK/results.txt
# The node_modules files and directories the stack shows (the changes layer removes some), by a
# read-only kernel overlayfs mount of its layers.
mkdir "$WORK/ro"
mount -t overlay overlay -o "lowerdir=$FX/changes:$FX/nm:$FX/base" "$WORK/ro"
M=$WORK/ro
(cd "$WORK/ro" && find node_modules -type f | sort > "$WORK/files" && find node_modules -mindepth 1 -type d | sort > "$WORK/dirs")
unmount
for round in $(seq "$ROUNDS"); do
  n=${#drivers[@]}
  for i in $(seq 0 $((n - 1))); do
    driver=${drivers[$(( (i + round) % n ))]}
    mount_driver "$driver" "$WORK/$round-$driver"
    for w in $WORKLOADS; do
      t=$(run "$w") || { echo "spot-check: $w failed on $driver" >&2; exit 1; }
      [ -n "$t" ] && echo "$w $driver $t" >> "$results"
    done
    unmount
  done
done

python3 - "$results" "${drivers[@]}" <<'EOF'
import statistics, sys
path, drivers = sys.argv[1], sys.argv[2:]
times = {}
for line in open(path):
    w, d, t = line.split()
    times.setdefault(w, {}).setdefault(d, []).append(float(t))
head = f"{'command':18}" + ''.join(f"{d:>15}" for d in drivers) + f"{'layerfs/kernel':>16}" + (f"{'layerfs/fuse-ovl':>18}" if 'fuse-overlayfs' in drivers else '')
print(head)
for w, by in times.items():
    med = {d: statistics.median(v) for d, v in by.items()}
    row = f"{w:18}" + ''.join(f"{med[d]:>13.0f}ms" for d in drivers)
    row += f"{med['layerfs'] / max(med['kernel'], 1):>15.2f}x"
    if 'fuse-overlayfs' in med:
        row += f"{med['layerfs'] / max(med['fuse-overlayfs'], 1):>17.2f}x"
    print(row)
EOF
