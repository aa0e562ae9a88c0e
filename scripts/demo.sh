#!/usr/bin/env bash
# The README's first command: install what is missing, build, and run the demo on the bundled image.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
npm run build --silent
exec node bin/layerfs.js demo "$@"
