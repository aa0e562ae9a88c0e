/* Calls that create, rename or stamp directory entries in ways node:fs cannot: device nodes and
 * fifos (whiteouts are char 0/0), atomic no-replace / exchange / whiteout renames, and nanosecond
 * times on a symlink itself; a symlink's target as the bytes it is (node:fs decodes it as UTF-8);
 * and dup and ioctl, which node:fs lacks. All run on the calling thread
 * (op_run_sync): metadata only. */
#include "exports.h"
#include "op.h"
#include "names.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <limits.h>
#include <malloc.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The process umask applies to the permission bits, exactly as for mknod(2). */
static int mknod_exec(op *o) { return mknod(o->path, (mode_t)o->mode, (dev_t)o->dev) < 0 ? errno : 0; }

/* Raw syscall: glibc only gained a renameat2() wrapper in 2.28. */
static int renameat2_exec(op *o) {
    return syscall(SYS_renameat2, AT_FDCWD, o->path, AT_FDCWD, o->dest, (unsigned int)o->flags) < 0 ? errno : 0;
}

static int utimensat_exec(op *o) {
    int at = o->flags ? AT_SYMLINK_NOFOLLOW : 0;
    return utimensat(AT_FDCWD, o->path, o->times, at) < 0 ? errno : 0;
}

static int futimens_exec(op *o) { return futimens(o->fd, o->times) < 0 ? errno : 0; }

/* The ioctl on a fresh descriptor of the object at path (not following a final symlink; O_NONBLOCK
 * so that a fifo or device never blocks the open), its argument the op's data, read and written in
 * place. */
static int ioctl_exec(op *o) {
    int fd = open(o->path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return errno;
    int err = ioctl(fd, (unsigned long)o->flags, o->data) < 0 ? errno : 0;
    close(fd);
    return err;
}

/* A symlink's target, as bytes (o->data, o->size). */
static int readlink_exec(op *o) {
    o->data = malloc(PATH_MAX);
    if (!o->data) return ENOMEM;
    ssize_t n = readlink(o->path, o->data, PATH_MAX);
    if (n < 0) return errno;
    o->size = (size_t)n; /* a target is at most PATH_MAX - 1 bytes: n == PATH_MAX cannot happen */
    return 0;
}

static napi_status readlink_done(napi_env env, op *o, napi_value *out) {
    return name_to_js(env, o->data, o->size, out);
}

static int dup_exec(op *o) {
    o->ret = fcntl(o->fd, F_DUPFD_CLOEXEC, 0);
    return o->ret < 0 ? errno : 0;
}

napi_value js_mknod(napi_env env, napi_callback_info info) {
    op *o = op_new("mknod", mknod_exec, op_done_undefined);
    if (!o) return op_nomem(env);
    return op_run_sync(env, info, o, "sul", &o->path, &o->mode, &o->dev);
}

napi_value js_renameat2(napi_env env, napi_callback_info info) {
    op *o = op_new("renameat2", renameat2_exec, op_done_undefined);
    if (!o) return op_nomem(env);
    return op_run_sync(env, info, o, "ssu", &o->path, &o->dest, &o->flags);
}

napi_value js_utimensat(napi_env env, napi_callback_info info) {
    op *o = op_new("utimensat", utimensat_exec, op_done_undefined);
    if (!o) return op_nomem(env);
    /* o->flags holds the nofollow boolean. */
    return op_run_sync(env, info, o, "sttB", &o->path, &o->times[0], &o->times[1], &o->flags);
}

napi_value js_futimens(napi_env env, napi_callback_info info) {
    op *o = op_new("futimens", futimens_exec, op_done_undefined);
    if (!o) return op_nomem(env);
    return op_run_sync(env, info, o, "itt", &o->fd, &o->times[0], &o->times[1]);
}

/* dupFd(fd) → a new fd on the same open file description (close-on-exec). */
static int flock_exec(op *o) {
    o->ret = 1;
    return flock(o->fd, LOCK_EX | LOCK_NB) < 0 ? errno : 0;
}

/* flockNowait(fd) → 1 once the open file holds an exclusive flock(2), undefined when another open
 * file holds one (EWOULDBLOCK); throws otherwise. */
napi_value js_flock_nowait(napi_env env, napi_callback_info info) {
    op *o = op_new("flock", flock_exec, op_done_number);
    if (!o) return op_nomem(env);
    o->absent = EWOULDBLOCK;
    return op_run_sync(env, info, o, "i", &o->fd);
}

napi_value js_dup_fd(napi_env env, napi_callback_info info) {
    op *o = op_new("dup", dup_exec, op_done_number);
    if (!o) return op_nomem(env);
    return op_run_sync(env, info, o, "i", &o->fd);
}

static int setsid_exec(op *o) {
    o->ret = setsid();
    return o->ret < 0 ? errno : 0;
}

/* setsid() → the new session's id: a daemon started by a shell leaves its caller's session and
 * terminal (what spawn's `detached` does for a child of Node). */
napi_value js_setsid(napi_env env, napi_callback_info info) {
    op *o = op_new("setsid", setsid_exec, op_done_number);
    if (!o) return op_nomem(env);
    return op_run_sync(env, info, o, "");
}

static int malloc_thresholds_exec(op *o) {
    /* mallopt answers 1 on success, 0 on a bad value (it sets no errno). */
    return mallopt(M_MMAP_THRESHOLD, (int)o->off) && mallopt(M_TRIM_THRESHOLD, (int)o->len) ? 0 : EINVAL;
}

/* mallocThresholds(mmap, trim): glibc malloc's M_MMAP_THRESHOLD and M_TRIM_THRESHOLD, fixed (which
 * also ends their dynamic adjustment). See DAEMON_MALLOC in src/cli/mount.ts. */
napi_value js_malloc_thresholds(napi_env env, napi_callback_info info) {
    op *o = op_new("mallopt", malloc_thresholds_exec, op_done_undefined);
    if (!o) return op_nomem(env);
    return op_run_sync(env, info, o, "ll", &o->off, &o->len);
}

/* ioctlPath(path, cmd, argument) → the argument after the ioctl (a copy), for the restricted ioctls
 * whose argument is a struct of the size the command says: FS_IOC_GETFLAGS and friends. */
napi_value js_ioctl_path(napi_env env, napi_callback_info info) {
    op *o = op_new("ioctl", ioctl_exec, op_done_bytes);
    if (!o) return op_nomem(env);
    return op_run_sync(env, info, o, "sub", &o->path, &o->flags, &o->data, &o->size);
}

/* readlink(path) → the target, escaped where it is not UTF-8 (names.h) */
napi_value js_readlink(napi_env env, napi_callback_info info) {
    op *o = op_new("readlink", readlink_exec, readlink_done);
    if (!o) return op_nomem(env);
    return op_run_sync(env, info, o, "s", &o->path);
}
