#!/usr/bin/env bash
# Shared by demo.sh and test.sh: the Debian packages, then the npm dependencies (npm ci also builds
# the native addon) when node_modules is missing or older than the lock file.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
[ -f build/Release/layerfs_native.node ] || npm run install --silent
