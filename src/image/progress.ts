/**
 * A one-line progress bar on a TTY stream (stderr): redrawn at most 10 times a second, erased when
 * done. On a non-TTY it prints nothing, so logs and pipes stay clean.
 */
import type { WriteStream } from 'node:tty'

export interface Progress {
  add(bytes: number): void
  done(): void
}

export const noProgress: Progress = { add() {}, done() {} }

function human(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB']
  let i = 0
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000
    i++
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`
}
export { human as humanBytes }

export function progressBar(label: string, total: number, out: NodeJS.WriteStream | WriteStream = process.stderr): Progress {
  if (!out.isTTY || total <= 0) return noProgress
  let done = 0
  let last = 0
  const draw = () => {
    const width = 30
    const frac = Math.min(1, done / total)
    const fill = Math.round(frac * width)
    out.write(`\r${label} [${'#'.repeat(fill)}${' '.repeat(width - fill)}] ${human(done)}/${human(total)} `)
  }
  return {
    add(bytes) {
      done += bytes
      const now = Date.now()
      if (now - last > 100) {
        last = now
        draw()
      }
    },
    done() {
      out.write('\r\x1b[K')
    },
  }
}
