/* Extended attributes without following symlinks (l*) or by descriptor (f*): the union layer must
 * see a symlink's own attributes (overlay metadata lives in trusted.* on the link itself). The l and
 * f variants share one exec each: an op with a path uses the l call, otherwise the fd. All run on
 * the calling thread (op_run_sync): inode metadata, microseconds on a local filesystem. */
#include "exports.h"
#include "op.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/xattr.h>

/* Attributes can change between the size query and the read; retrying on ERANGE is the documented
 * remedy, and the bound only stops a pathological writer from pinning a pool thread forever. */
#define MAX_TRIES 16

typedef ssize_t (*fetch_fn)(op *o, void *buf, size_t size);

static ssize_t get_call(op *o, void *buf, size_t size) {
    return o->path ? lgetxattr(o->path, o->name, buf, size) : fgetxattr(o->fd, o->name, buf, size);
}

static ssize_t list_call(op *o, void *buf, size_t size) {
    return o->path ? llistxattr(o->path, buf, size) : flistxattr(o->fd, buf, size);
}

/* Values this small are read in one call: every value on ext4 without ea_inode, whose xattrs share
 * one block (an origin, an opaque mark, ACLs, name lists, and the daemon's own statistics). A bigger
 * one costs a call more than a size query and a read would (through FUSE, a request more). */
#define SMALL_VALUE 4096

/* One read into a small buffer; past that, a size query with 0, allocate exactly, read; again if it
 * grew in between. */
static int fetch(op *o, fetch_fn call) {
    char small[SMALL_VALUE];
    ssize_t got = call(o, small, sizeof small);
    if (got >= 0) {
        free(o->data);
        o->data = malloc(got ? (size_t)got : 1);
        if (!o->data) return ENOMEM;
        memcpy(o->data, small, (size_t)got);
        o->size = (size_t)got;
        return 0;
    }
    if (errno != ERANGE) return errno;
    for (int tries = 0; tries < MAX_TRIES; tries++) {
        ssize_t want = call(o, NULL, 0);
        if (want < 0) return errno;
        free(o->data);
        o->data = malloc(want ? (size_t)want : 1);
        if (!o->data) return ENOMEM;
        o->size = 0;
        if (want == 0) return 0;
        ssize_t got = call(o, o->data, (size_t)want);
        if (got >= 0) {
            o->size = (size_t)got;
            return 0;
        }
        if (errno != ERANGE) return errno;
    }
    return ERANGE;
}

static int get_exec(op *o) { return fetch(o, get_call); }
static int list_exec(op *o) { return fetch(o, list_call); }

static int set_exec(op *o) {
    int r = o->path ? lsetxattr(o->path, o->name, o->data, o->size, (int)o->flags)
                    : fsetxattr(o->fd, o->name, o->data, o->size, (int)o->flags);
    return r < 0 ? errno : 0;
}

static int remove_exec(op *o) {
    return (o->path ? lremovexattr(o->path, o->name) : fremovexattr(o->fd, o->name)) < 0 ? errno : 0;
}

/* → the value, or undefined when the file has no such attribute */
napi_value js_lgetxattr(napi_env env, napi_callback_info info) {
    op *o = op_new("lgetxattr", get_exec, op_done_bytes);
    if (!o) return op_nomem(env);
    o->absent = ENODATA;
    return op_run_sync(env, info, o, "ss", &o->path, &o->name);
}

napi_value js_fgetxattr(napi_env env, napi_callback_info info) {
    op *o = op_new("fgetxattr", get_exec, op_done_bytes);
    if (!o) return op_nomem(env);
    o->absent = ENODATA;
    return op_run_sync(env, info, o, "is", &o->fd, &o->name);
}

napi_value js_lsetxattr(napi_env env, napi_callback_info info) {
    op *o = op_new("lsetxattr", set_exec, op_done_undefined);
    if (!o) return op_nomem(env);
    return op_run_sync(env, info, o, "ssbu", &o->path, &o->name, &o->data, &o->size, &o->flags);
}

napi_value js_fsetxattr(napi_env env, napi_callback_info info) {
    op *o = op_new("fsetxattr", set_exec, op_done_undefined);
    if (!o) return op_nomem(env);
    return op_run_sync(env, info, o, "isbu", &o->fd, &o->name, &o->data, &o->size, &o->flags);
}

napi_value js_llistxattr(napi_env env, napi_callback_info info) {
    op *o = op_new("llistxattr", list_exec, op_done_names);
    if (!o) return op_nomem(env);
    return op_run_sync(env, info, o, "s", &o->path);
}

napi_value js_flistxattr(napi_env env, napi_callback_info info) {
    op *o = op_new("flistxattr", list_exec, op_done_names);
    if (!o) return op_nomem(env);
    return op_run_sync(env, info, o, "i", &o->fd);
}

napi_value js_lremovexattr(napi_env env, napi_callback_info info) {
    op *o = op_new("lremovexattr", remove_exec, op_done_undefined);
    if (!o) return op_nomem(env);
    return op_run_sync(env, info, o, "ss", &o->path, &o->name);
}

napi_value js_fremovexattr(napi_env env, napi_callback_info info) {
    op *o = op_new("fremovexattr", remove_exec, op_done_undefined);
    if (!o) return op_nomem(env);
    return op_run_sync(env, info, o, "is", &o->fd, &o->name);
}
