/* File data calls for sparse-aware, zero-copy copy-up: hole detection, in-kernel copies with
 * explicit offsets (so no shared file position is touched), and reflink clones. */
#include "exports.h"
#include "op.h"

#include <errno.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

static int seek_exec(op *o) {
    off_t r = lseek(o->fd, (off_t)o->off, (int)o->flags);
    if (r < 0) return errno;
    o->ret = r;
    return 0;
}

/* Raw syscall: older glibc has no wrapper, and 2.27-2.29 emulated it in user space instead. */
static int copy_exec(op *o) {
    loff_t in = o->off, out = o->off2;
    long r = syscall(SYS_copy_file_range, o->fd, &in, o->fd2, &out, (size_t)o->len, 0u);
    if (r < 0) return errno;
    o->ret = r;
    return 0;
}

static int ficlone_exec(op *o) { return ioctl(o->fd2, FICLONE, o->fd) < 0 ? errno : 0; }

napi_value js_seek_data(napi_env env, napi_callback_info info) {
    op *o = op_new("lseek", seek_exec, op_done_number);
    if (!o) return op_nomem(env);
    o->flags = SEEK_DATA;
    return op_run(env, info, o, "il", &o->fd, &o->off);
}

napi_value js_seek_hole(napi_env env, napi_callback_info info) {
    op *o = op_new("lseek", seek_exec, op_done_number);
    if (!o) return op_nomem(env);
    o->flags = SEEK_HOLE;
    return op_run(env, info, o, "il", &o->fd, &o->off);
}

napi_value js_copy_file_range(napi_env env, napi_callback_info info) {
    op *o = op_new("copy_file_range", copy_exec, op_done_number);
    if (!o) return op_nomem(env);
    return op_run(env, info, o, "ilill", &o->fd, &o->off, &o->fd2, &o->off2, &o->len);
}

/* Argument order follows the API (source first); the ioctl is issued on the destination. */
napi_value js_ficlone(napi_env env, napi_callback_info info) {
    op *o = op_new("ioctl", ficlone_exec, op_done_undefined);
    if (!o) return op_nomem(env);
    return op_run(env, info, o, "ii", &o->fd, &o->fd2);
}
