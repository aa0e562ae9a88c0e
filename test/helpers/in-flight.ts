// Run `step` on each item of a list with `inFlight` of them running at once, as `mv` or `cp -al` of
// many files keeps several requests before the daemon; `halfway` runs once, as the middle item
// starts (to drop the kernel's caches while requests are in flight, say).
export async function eachInFlight<T>(list: readonly T[], inFlight: number, step: (item: T) => Promise<void>, halfway?: () => void): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < list.length) {
      const item = list[next++]!
      if (next === Math.floor(list.length / 2)) halfway?.()
      await step(item)
    }
  }
  await Promise.all(Array.from({ length: inFlight }, worker))
}
