/** Ends the command with the exit code `run` resolves to, or with its error's message and code 1. */
export function exitWith(run: Promise<number>): void {
  run.then(
    (code) => { process.exitCode = code },
    (err: unknown) => {
      process.stderr.write(`layerfs: ${err instanceof Error ? err.message : String(err)}\n`)
      process.exitCode = 1
    },
  )
}
