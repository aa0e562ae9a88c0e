/**
 * Default ACLs: what a directory passes on to the objects made in it. Where one is set, it, not the
 * umask, decides a new object's mode (POSIX): the union applies a caller's umask only where the
 * parent has none (namespace.ts), and makes copies with their modes from the start only where the
 * work directory has none (copy-up.ts).
 */
import type { HostPath } from '../sys/names.js'
import { lgetxattrSync } from '../sys/native.js'

/** An object's access ACL (beyond its mode bits). */
export const ACCESS_ACL = 'system.posix_acl_access'

/** A directory's default ACL: what objects made in it inherit. */
export const DEFAULT_ACL = 'system.posix_acl_default'

/** The default ACL of the directory at `path`, if it has one (none where ACLs are not supported). */
export function defaultAclOf(path: HostPath): Buffer | undefined {
  try {
    return lgetxattrSync(path, DEFAULT_ACL)
  } catch {
    return undefined
  }
}
