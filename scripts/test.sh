#!/usr/bin/env bash
# The test command (README, CI): install what is missing, build, run every test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
[ -f build/Release/layerfs_native.node ] || npm run install --silent
npm test
