// The parts of fuse-native (a CommonJS module without types) the bridge uses.
declare module 'fuse-native' {
  type Callback = (...args: any[]) => void
  class Fuse {
    constructor(mnt: string, ops: Record<string, Callback>, opts?: Record<string, unknown>)
    opts: Record<string, unknown>
    mnt: string
    mount(cb: (err: Error | null) => void): void
    unmount(cb: (err: Error | null) => void): void
    _fuseOptions(): string
    static unmount(mnt: string, cb: (err: Error | null) => void): void
  }
  export default Fuse
}
