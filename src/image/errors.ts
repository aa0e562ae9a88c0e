/**
 * The one error type of src/image: every failure a user can cause (bad file, unknown tag, digest
 * mismatch, hostile tar entry) is an ImageError with a message that reads well after "layerfs <cmd>: ".
 */
export class ImageError extends Error {
  override name = 'ImageError'
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
  }
}

/** Message of any thrown value, for one-line CLI reports. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
