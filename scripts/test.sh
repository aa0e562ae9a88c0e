#!/usr/bin/env bash
# The test command (README, CI): install what is missing, build, run every test suite, and end with
# one plain summary line ("N passed, N failed, N skipped").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
results=$(mktemp /tmp/layerfs-results.XXXXXX.json)
trap 'rm -f "$results"' EXIT
status=0
npm test -- --reporter=default --reporter=json --outputFile="$results" || status=$?
# The performance regression gate: layerfs against fuse-overlayfs on a tiny fixture, in one run,
# failing only on a ratio far beyond today's worst (see README, Benchmarks). Ratios, never times.
if [ "$status" -eq 0 ]; then
  node bin/layerfs.js bench --check --threshold 20 || status=$?
fi
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`)
' "$results" || true
exit "$status"
