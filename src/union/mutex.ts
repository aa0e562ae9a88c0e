/**
 * A FIFO async mutex. The union serialises namespace changes (create, unlink, rename, the commit step
 * of a copy-up) through one of these, the way the kernel holds the parent directory's i_rwsem: a lookup
 * that raced a change can then never be committed over it. Reads and data I/O never take it.
 */
export class Mutex {
  #tail: Promise<void> = Promise.resolve()

  async run<T>(fn: () => Promise<T>): Promise<T> {
    let release!: () => void
    const turn = new Promise<void>((resolve) => { release = resolve })
    const previous = this.#tail
    this.#tail = previous.then(() => turn)
    await previous
    try {
      return await fn()
    } finally {
      release()
    }
  }
}
