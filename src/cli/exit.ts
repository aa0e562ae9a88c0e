/** Ends the command with the exit code `run` resolves to, or with its error's message and code 1;
 *  and if Node runs out of work while `run` still waits (a stream that never ends), with a message
 *  and code 70 (EX_SOFTWARE), never with 0 as if it had done its job. */
export function exitWith(run: Promise<number>): void {
  let settled = false
  const stalled = () => {
    if (settled) return
    process.stderr.write('layerfs: internal error: the command stopped before it finished (it waited for something that never came)\n')
    process.exitCode = 70
  }
  process.once('beforeExit', stalled)
  run.then(
    (code) => {
      settled = true
      process.exitCode = code
    },
    (err: unknown) => {
      settled = true
      process.stderr.write(`layerfs: ${err instanceof Error ? err.message : String(err)}\n`)
      process.exitCode = 1
    },
  )
}
