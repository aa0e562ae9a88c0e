/**
 * Milliseconds on the monotonic clock, as `performance.now()` counts them (from another origin: only
 * differences mean anything). `performance` is a lazy global in Node 20: its first use loads
 * node:perf_hooks and ten internal modules with it, 2-3 ms of a daemon's start here, for the copy-up
 * timers that are all the daemon measures. (The daemon's bundle gives lru-cache, which looks the
 * global up as it loads, `Date` for it: scripts/bundle-daemon.mjs.)
 */
export function nowMs(): number {
  // (The bigint form: 120 ns a call in baseline code here, against 210 for process.hrtime()'s pair.)
  return Number(process.hrtime.bigint()) / 1e6
}
