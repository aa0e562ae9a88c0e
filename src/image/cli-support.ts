/**
 * What the image commands share: argument parsing with one-line errors, the store option, and the
 * `ls -l`-style line format. Each command's run() returns an exit code and never throws.
 */
import type { Stats } from 'node:fs'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { errorMessage } from './errors.js'
import { hostPath } from '../sys/names.js'

export const STORE_OPTION = { store: { type: 'string' } } as const
export const HELP_OPTION = { help: { type: 'boolean', short: 'h' } } as const

/** Runs a command body; any error becomes `layerfs <cmd>: <reason>` on stderr and exit code 1. */
export async function runCommand(cmd: string, usage: string, args: string[], body: () => Promise<number>): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(usage.endsWith('\n') ? usage : usage + '\n')
    return 0
  }
  try {
    return await body()
  } catch (err) {
    process.stderr.write(`layerfs ${cmd}: ${errorMessage(err).split('\n')[0]}\n`)
    return 1
  }
}

export function parse<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T) {
  return parseArgs({ args, options, allowPositionals: true, strict: true })
}

/** Writes `text` to stdout and waits, so a large listing is flushed before the process exits.
 *  Names in it that are not UTF-8 (union strings with escaped bytes, sys/names.ts) go out as their
 *  bytes, as `ls` prints them, not as U+FFFD. */
export function out(text: string): Promise<void> {
  const data = text.isWellFormed() ? text : hostPath(text)
  return new Promise((resolve, reject) => process.stdout.write(data, (err) => (err ? reject(err) : resolve())))
}

export function modeString(st: Stats): string {
  const type = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : st.isCharacterDevice() ? 'c' : st.isBlockDevice() ? 'b' : st.isFIFO() ? 'p' : st.isSocket() ? 's' : '-'
  const m = st.mode
  const bit = (mask: number, c: string) => (m & mask ? c : '-')
  const x = (exec: number, special: number, set: string) => (m & special ? (m & exec ? set : set.toUpperCase()) : bit(exec, 'x'))
  return (
    type +
    bit(0o400, 'r') + bit(0o200, 'w') + x(0o100, 0o4000, 's') +
    bit(0o040, 'r') + bit(0o020, 'w') + x(0o010, 0o2000, 's') +
    bit(0o004, 'r') + bit(0o002, 'w') + x(0o001, 0o1000, 't')
  )
}

export function shortDigest(d: string | undefined): string {
  return d ? d.replace(/^sha256:/, '').slice(0, 12) : '-'
}
