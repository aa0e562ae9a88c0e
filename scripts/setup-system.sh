#!/usr/bin/env bash
# Installs the Debian packages layerfs needs when they are missing: libfuse2 (fuse-native's runtime),
# fuse3 (fusermount3) and libfuse3-dev (the low-level bridge in native/), attr (getfattr/setfattr), acl
# (setfacl/getfacl), util-linux-extra (fincore) and strace (to make a syscall fail) for tests, a C
# toolchain for the native addon,
# and the peers the tests and benchmarks compare against (fuse-overlayfs; skopeo, umoci and podman for images,
# runc for podman to run a container from a layerfs rootfs).
set -euo pipefail

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for pkg in libfuse2 fuse3 libfuse3-dev pkg-config attr acl util-linux-extra build-essential python3 fuse-overlayfs skopeo umoci podman runc strace; do
  have_pkg "$pkg" || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "layerfs setup: missing Debian packages: ${need[*]}; install them as root (apt-get install ${need[*]})" >&2
  exit 1
fi
echo "layerfs setup: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
