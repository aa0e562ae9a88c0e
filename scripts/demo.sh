#!/usr/bin/env bash
# The README's first command: install what is missing, build, and run the demo on the bundled image.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
[ -f build/Release/layerfs_native.node ] || npm run install --silent
npm run build --silent
exec node bin/layerfs.js demo "$@"
