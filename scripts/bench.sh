#!/usr/bin/env bash
# `layerfs bench` from a fresh clone: install what is missing (fuse-overlayfs among the Debian
# packages), build, and run the benchmark with the arguments given (`--quick`, `--reps 3`, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
npm run build --silent
exec node bin/layerfs.js bench "$@"
