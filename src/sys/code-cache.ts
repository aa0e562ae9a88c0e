/**
 * V8's code cache of the daemon's code, as its loader (daemon-start.ts) used it and may still write
 * it. The loader and the daemon are bundled apart (the loader must not hold the code it compiles):
 * the loader leaves this state in the global symbol registry, and the daemon reads it there.
 */

/** How the daemon's code was compiled: from a cache written at the end of a daemon's first seconds
 *  (`full`: everything those compiled), from one written as a shorter-lived daemon exited
 *  (`early`), or from its source (`none`: no cache, or V8 rejected it). */
export type CodeCacheUse = 'full' | 'early' | 'none'

export interface CodeCacheState {
  readonly use: CodeCacheUse
  /** Write the cache now, as `full`, unless the one used is full already; afterwards nothing more is
   *  written. Called as the daemon's first seconds end, before it changes a V8 flag: V8 keys a cache
   *  to the flags it was made under, and the next daemon starts with the first ones. */
  saveFull(): void
}

const STATE = Symbol.for('layerfs.daemon.codeCache')

/** The loader's state, when the daemon was started through it. */
export function codeCache(): CodeCacheState | undefined {
  return (globalThis as Record<symbol, CodeCacheState | undefined>)[STATE]
}

export function setCodeCache(state: CodeCacheState): void {
  (globalThis as Record<symbol, CodeCacheState | undefined>)[STATE] = state
}
