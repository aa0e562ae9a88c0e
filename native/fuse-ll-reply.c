/* Replies and notifications, called from JS. Every reply first checks its arguments and only then
 * removes the request id: a bad argument throws and leaves the request answerable (the caller can
 * still reply EIO), a valid one is answered exactly once. The write itself goes through FLL_SEND:
 * once the session has closed /dev/fuse, replies only free their request. */
#include "fuse-ll.h"
#include "names.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#define MAX_SAFE 9007199254740991.0
#define NAME_BUF 1025 /* FUSE_NAME_MAX (1024) bytes + NUL */

/* handle, req, then n - 2 more arguments; declares s, req, idx. */
#define BEGIN(n)                                                                  \
    size_t argc = n;                                                              \
    napi_value argv[n];                                                           \
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);                         \
    fll_session *s = fll_unwrap(env, argv[0]);                                    \
    if (!s) return NULL;                                                          \
    uint32_t idx;                                                                 \
    fuse_req_t req = fll_peek_req(env, s, argv[1], &idx);                         \
    if (!req) return NULL;

static napi_value number(napi_env env, double n) {
    napi_value v;
    napi_create_double(env, n, &v);
    return v;
}

static int get_object(napi_env env, napi_value v, const char *name) {
    napi_valuetype t;
    if (napi_typeof(env, v, &t) != napi_ok || t != napi_object) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s must be an object", name);
        napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
        return 0;
    }
    return 1;
}

static int get_double(napi_env env, napi_value v, const char *name, double *out) {
    if (napi_get_value_double(env, v, out) == napi_ok && *out >= 0) return 1;
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a number >= 0", name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return 0;
}

/* The Float64Array a reply's numbers come in, with at least `need` of them. */
static const double *get_nums(napi_env env, napi_value v, size_t need) {
    napi_typedarray_type t;
    size_t len;
    void *data;
    if (napi_get_typedarray_info(env, v, &t, &len, &data, NULL, NULL) != napi_ok || t != napi_float64_array || len < need) {
        napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "reply numbers must be a Float64Array of the layout's length");
        return NULL;
    }
    return data;
}

/* An attr at `a` (FLL_A_* layout) → struct stat. */
static int get_attr(napi_env env, const double *a, struct stat *st) {
    int64_t v[FLL_ATTR_LEN];
    static const struct { const char *name; double min, max; } f[FLL_ATTR_LEN] = {
        {"ino", 0, MAX_SAFE}, {"mode", 0, 0xffffffff}, {"nlink", 0, MAX_SAFE}, {"uid", 0, 0xffffffff},
        {"gid", 0, 0xffffffff}, {"rdev", 0, MAX_SAFE}, {"size", 0, MAX_SAFE}, {"blksize", 0, 0x7fffffff},
        {"blocks", 0, MAX_SAFE}, {"atimeSec", -MAX_SAFE, MAX_SAFE}, {"atimeNsec", 0, 999999999},
        {"mtimeSec", -MAX_SAFE, MAX_SAFE}, {"mtimeNsec", 0, 999999999}, {"ctimeSec", -MAX_SAFE, MAX_SAFE},
        {"ctimeNsec", 0, 999999999},
    };
    for (int i = 0; i < FLL_ATTR_LEN; i++)
        if (!fll_check(env, a[i], f[i].name, f[i].min, f[i].max, &v[i])) return 0;
    memset(st, 0, sizeof *st);
    st->st_ino = (ino_t)v[FLL_A_INO];
    st->st_mode = (mode_t)v[FLL_A_MODE];
    st->st_nlink = (nlink_t)v[FLL_A_NLINK];
    st->st_uid = (uid_t)v[FLL_A_UID];
    st->st_gid = (gid_t)v[FLL_A_GID];
    st->st_rdev = (dev_t)v[FLL_A_RDEV];
    st->st_size = v[FLL_A_SIZE];
    st->st_blksize = (blksize_t)v[FLL_A_BLKSIZE];
    st->st_blocks = v[FLL_A_BLOCKS];
    st->st_atim = (struct timespec){v[FLL_A_ATIME], v[FLL_A_ATIME_NS]};
    st->st_mtim = (struct timespec){v[FLL_A_MTIME], v[FLL_A_MTIME_NS]};
    st->st_ctim = (struct timespec){v[FLL_A_CTIME], v[FLL_A_CTIME_NS]};
    return 1;
}

/* An entry at `e` (attr, then FLL_E_*) → fuse_entry_param. */
static int get_entry(napi_env env, const double *a, struct fuse_entry_param *e) {
    int64_t node, gen;
    memset(e, 0, sizeof *e);
    if (!get_attr(env, a, &e->attr) || !fll_check(env, a[FLL_E_NODE], "ino", 0, MAX_SAFE, &node) ||
        !fll_check(env, a[FLL_E_GENERATION], "generation", 0, MAX_SAFE, &gen))
        return 0;
    if (!(a[FLL_E_ATTR_TIMEOUT] >= 0) || !(a[FLL_E_ENTRY_TIMEOUT] >= 0)) {
        napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "timeouts must be numbers >= 0");
        return 0;
    }
    e->ino = (fuse_ino_t)node;
    e->generation = (uint64_t)gen;
    e->attr_timeout = a[FLL_E_ATTR_TIMEOUT];
    e->entry_timeout = a[FLL_E_ENTRY_TIMEOUT];
    return 1;
}

/* fh and FLL_OPEN_* bits → the reply fields of a fuse_file_info. */
static int get_open(napi_env env, napi_value fh_v, napi_value bits_v, struct fuse_file_info *fi) {
    int64_t fh, bits;
    memset(fi, 0, sizeof *fi);
    if (!fll_int(env, fh_v, "fh", 0, MAX_SAFE, &fh) || !fll_int(env, bits_v, "open flags", 0, 15, &bits)) return 0;
    fi->fh = (uint64_t)fh;
    fi->keep_cache = !!(bits & FLL_OPEN_KEEP_CACHE);
    fi->direct_io = !!(bits & FLL_OPEN_DIRECT_IO);
    fi->cache_readdir = !!(bits & FLL_OPEN_CACHE_READDIR);
    fi->nonseekable = !!(bits & FLL_OPEN_NONSEEKABLE);
    return 1;
}

static int get_bytes(napi_env env, napi_value v, const char *name, void **data, size_t *len) {
    bool is;
    if (napi_is_buffer(env, v, &is) == napi_ok && is) return napi_get_buffer_info(env, v, data, len) == napi_ok;
    if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
        napi_typedarray_type type;
        napi_get_typedarray_info(env, v, &type, len, data, NULL, NULL);
        if (type == napi_uint8_array || type == napi_int8_array || type == napi_uint8_clamped_array) return 1;
    }
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a Buffer or Uint8Array", name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return 0;
}

/* A directory entry name into `buf` (NAME_BUF bytes); 0 after throwing. */
static int get_name(napi_env env, napi_value v, char *buf) {
    size_t len;
    if (!name_copy_from_js(env, v, buf, NAME_BUF, &len)) {
        napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "entry name must be a string or Buffer");
        return 0;
    }
    if (len == 0 || len >= NAME_BUF - 1 || strlen(buf) != len || strchr(buf, '/')) {
        napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "entry name must be 1..1023 bytes without '/' or NUL");
        return 0;
    }
    return 1;
}

/* ---- replies ---- */

/* The replies that carry one number: (handle, req, n), n checked against [0, max]. */
typedef int (*send_number)(fuse_req_t req, int64_t n);

static napi_value reply_number(napi_env env, napi_callback_info info, const char *what, double max, send_number send) {
    BEGIN(3)
    int64_t n;
    if (!fll_int(env, argv[2], what, 0, max, &n)) return NULL;
    fll_drop_req(s, idx);
    FLL_SEND(s, req, send(req, n));
    return NULL;
}

static int send_err(fuse_req_t req, int64_t n) { return fuse_reply_err(req, (int)n); }
static int send_write(fuse_req_t req, int64_t n) { return fuse_reply_write(req, (size_t)n); }
static int send_lseek(fuse_req_t req, int64_t n) { return fuse_reply_lseek(req, (off_t)n); }

napi_value fll_js_reply_err(napi_env env, napi_callback_info info) {
    return reply_number(env, info, "errno", 4095, send_err);
}

napi_value fll_js_reply_entry(napi_env env, napi_callback_info info) {
    BEGIN(3)
    struct fuse_entry_param e;
    const double *nums = get_nums(env, argv[2], FLL_ENTRY_LEN);
    if (!nums || !get_entry(env, nums, &e)) return NULL;
    fll_drop_req(s, idx);
    FLL_SEND(s, req, fuse_reply_entry(req, &e));
    return NULL;
}

/* An open or create reply: `send` unless /dev/fuse is closed (then the request is only freed), as
 * FLL_SEND, but the result goes back to JS: 0, or -errno when the reply was not delivered (-ENOENT:
 * the open was interrupted; no release will come, so the caller releases the handle itself). */
#define SEND_OPEN(env, s, req, send) number(env, (s)->fd_closed ? (fuse_reply_none(req), -EBADF) : (send))

/* reply_create(handle, req, entry, fh, open bits, backing id) → 0 | -errno; backing id 0: no
 * passthrough. */
napi_value fll_js_reply_create(napi_env env, napi_callback_info info) {
    BEGIN(6)
    struct fuse_entry_param e;
    struct fuse_file_info fi;
    int64_t backing;
    const double *nums = get_nums(env, argv[2], FLL_ENTRY_LEN);
    if (!nums || !get_entry(env, nums, &e) || !get_open(env, argv[3], argv[4], &fi) ||
        !fll_int(env, argv[5], "backing id", 0, INT32_MAX, &backing))
        return NULL;
    fll_drop_req(s, idx);
    return SEND_OPEN(env, s, req, backing ? fll_reply_create_backing(req, &e, &fi, (int32_t)backing) : fuse_reply_create(req, &e, &fi));
}

napi_value fll_js_reply_attr(napi_env env, napi_callback_info info) {
    BEGIN(4)
    struct stat st;
    double timeout;
    const double *nums = get_nums(env, argv[2], FLL_ATTR_LEN);
    if (!nums || !get_attr(env, nums, &st) || !get_double(env, argv[3], "timeout", &timeout)) return NULL;
    fll_drop_req(s, idx);
    FLL_SEND(s, req, fuse_reply_attr(req, &st, timeout));
    return NULL;
}

napi_value fll_js_reply_readlink(napi_env env, napi_callback_info info) {
    BEGIN(3)
    char *target = fll_string(env, argv[2], "target");
    if (!target) return NULL;
    fll_drop_req(s, idx);
    FLL_SEND(s, req, fuse_reply_readlink(req, target));
    free(target);
    return NULL;
}

/* reply_open(handle, req, fh, open bits, backing id) → 0 | -errno, as reply_create. */
napi_value fll_js_reply_open(napi_env env, napi_callback_info info) {
    BEGIN(5)
    struct fuse_file_info fi;
    int64_t backing;
    if (!get_open(env, argv[2], argv[3], &fi) || !fll_int(env, argv[4], "backing id", 0, INT32_MAX, &backing)) return NULL;
    fll_drop_req(s, idx);
    return SEND_OPEN(env, s, req, backing ? fll_reply_open_backing(req, &fi, (int32_t)backing) : fuse_reply_open(req, &fi));
}

napi_value fll_js_reply_write(napi_env env, napi_callback_info info) {
    return reply_number(env, info, "count", 0xffffffff, send_write);
}

/* reply_lseek(handle, req, offset): where SEEK_DATA or SEEK_HOLE landed. */
napi_value fll_js_reply_lseek(napi_env env, napi_callback_info info) {
    return reply_number(env, info, "offset", 9007199254740991.0, send_lseek);
}

/* reply_ioctl(handle, req, output) → the ioctl succeeded; `output` (a Buffer, maybe empty) is what
 * the caller's argument receives. */
napi_value fll_js_reply_ioctl(napi_env env, napi_callback_info info) {
    BEGIN(3)
    void *data = NULL;
    size_t len = 0;
    if (napi_get_buffer_info(env, argv[2], &data, &len) != napi_ok) return napi_throw_type_error(env, NULL, "output: a Buffer"), NULL;
    fll_drop_req(s, idx);
    FLL_SEND(s, req, fuse_reply_ioctl(req, 0, len ? data : NULL, len));
    return NULL;
}

napi_value fll_js_reply_buf(napi_env env, napi_callback_info info) {
    BEGIN(4)
    void *data;
    size_t len;
    int64_t n;
    if (!get_bytes(env, argv[2], "data", &data, &len) || !fll_int(env, argv[3], "length", 0, (double)len, &n)) return NULL;
    fll_drop_req(s, idx);
    FLL_SEND(s, req, fuse_reply_buf(req, data, (size_t)n));
    return NULL;
}

napi_value fll_js_reply_xattr(napi_env env, napi_callback_info info) {
    BEGIN(3)
    int64_t size;
    if (!fll_int(env, argv[2], "size", 0, 0xffffffff, &size)) return NULL;
    fll_drop_req(s, idx);
    FLL_SEND(s, req, fuse_reply_xattr(req, (size_t)size));
    return NULL;
}

napi_value fll_js_reply_statfs(napi_env env, napi_callback_info info) {
    BEGIN(3)
    int64_t v[8];
    static const char *const keys[8] = {"bsize", "frsize", "blocks", "bfree", "bavail", "files", "ffree", "namemax"};
    if (!get_object(env, argv[2], "statfs")) return NULL;
    for (int i = 0; i < 8; i++)
        if (!fll_prop_int(env, argv[2], keys[i], 0, MAX_SAFE, &v[i])) return NULL;
    struct statvfs st = {0};
    st.f_bsize = (unsigned long)v[0];
    st.f_frsize = (unsigned long)v[1];
    st.f_blocks = (fsblkcnt_t)v[2];
    st.f_bfree = (fsblkcnt_t)v[3];
    st.f_bavail = (fsblkcnt_t)v[4];
    st.f_files = (fsfilcnt_t)v[5];
    st.f_ffree = (fsfilcnt_t)v[6];
    st.f_favail = (fsfilcnt_t)v[6];
    st.f_namemax = (unsigned long)v[7];
    fll_drop_req(s, idx);
    FLL_SEND(s, req, fuse_reply_statfs(req, &st));
    return NULL;
}

/* readdir / readdirplus (handle, req, size, names, nums): packs entries from the first on until
 * `size` bytes are full, replies with what fit and returns that count, so the caller knows which
 * readdirplus entries the kernel now holds a lookup reference for. names[i]'s numbers are at
 * nums[i * FLL_DIR_LEN] (readdir) or nums[i * FLL_DIRPLUS_LEN] (readdirplus). */
static napi_value reply_dir(napi_env env, napi_callback_info info, int plus) {
    BEGIN(5)
    int64_t size;
    uint32_t n;
    bool is_array;
    if (!fll_int(env, argv[2], "size", 0, 1 << 30, &size)) return NULL;
    if (napi_is_array(env, argv[3], &is_array) != napi_ok || !is_array) {
        napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "names must be an array");
        return NULL;
    }
    napi_get_array_length(env, argv[3], &n);
    size_t stride = plus ? FLL_DIRPLUS_LEN : FLL_DIR_LEN;
    const double *nums = get_nums(env, argv[4], (size_t)n * stride);
    if (!nums) return NULL;
    char *buf = malloc(size ? (size_t)size : 1);
    if (!buf) return napi_throw_error(env, "ENOMEM", "out of memory"), NULL;
    size_t used = 0;
    uint32_t count = 0;
    char name[NAME_BUF];
    for (; count < n; count++) {
        napi_value v;
        int64_t next;
        const double *a = nums + (size_t)count * stride;
        napi_get_element(env, argv[3], count, &v);
        if (!get_name(env, v, name) || !fll_check(env, a[stride - 1], "next", 0, MAX_SAFE, &next)) goto fail;
        size_t rest = (size_t)size - used, need;
        if (plus) {
            struct fuse_entry_param e;
            if (!get_entry(env, a, &e)) goto fail;
            need = fuse_add_direntry_plus(req, NULL, 0, name, NULL, 0);
            if (need > rest) break;
            fuse_add_direntry_plus(req, buf + used, rest, name, &e, (off_t)next);
        } else {
            int64_t ino, mode;
            if (!fll_check(env, a[0], "ino", 0, MAX_SAFE, &ino) || !fll_check(env, a[1], "mode", 0, 0xffffffff, &mode)) goto fail;
            need = fuse_add_direntry(req, NULL, 0, name, NULL, 0);
            if (need > rest) break;
            /* Only st_ino and the type bits of st_mode are used. */
            struct stat st = {.st_ino = (ino_t)ino, .st_mode = (mode_t)mode};
            fuse_add_direntry(req, buf + used, rest, name, &st, (off_t)next);
        }
        used += need;
    }
    fll_drop_req(s, idx);
    FLL_SEND(s, req, fuse_reply_buf(req, buf, used));
    free(buf);
    return number(env, count);
fail:
    free(buf);
    return NULL;
}

napi_value fll_js_reply_readdir(napi_env env, napi_callback_info info) { return reply_dir(env, info, 0); }
napi_value fll_js_reply_readdirplus(napi_env env, napi_callback_info info) { return reply_dir(env, info, 1); }

/* ---- notifications ---- */

/* Both write to /dev/fuse and the kernel handles them synchronously: inval_inode waits for page
 * locks, inval_entry for the parent directory's lock, which a request still waiting for a JS reply
 * may hold. Since that reply can only come from this thread, such a call would deadlock: callers
 * must not invalidate what an unanswered request is working on. */
static fll_session *live(napi_env env, napi_value h, int *err) {
    fll_session *s = fll_unwrap(env, h);
    if (s && (s->state != FLL_MOUNTED || !s->se || s->unmount_requested)) *err = -ENOTCONN;
    return s;
}

/* The arguments (h, ino, offset, length) of notifyInvalInode and notifyInvalInodeAsync: false once
 * it has thrown. `*handle` is h; `*err` -ENOTCONN when the session no longer serves. */
static int inval_args(napi_env env, napi_callback_info info, napi_value *handle, fll_session **s, int *err,
                      int64_t *ino, int64_t *off, int64_t *len) {
    size_t argc = 4;
    napi_value argv[4];
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    *handle = argv[0];
    *s = live(env, argv[0], err);
    return *s && fll_int(env, argv[1], "ino", 1, MAX_SAFE, ino) && fll_int(env, argv[2], "offset", -MAX_SAFE, MAX_SAFE, off) &&
           fll_int(env, argv[3], "length", -MAX_SAFE, MAX_SAFE, len);
}

napi_value fll_js_notify_inval_inode(napi_env env, napi_callback_info info) {
    napi_value h;
    fll_session *s;
    int err = 0;
    int64_t ino, off, len;
    if (!inval_args(env, info, &h, &s, &err, &ino, &off, &len)) return NULL;
    if (!err) {
        err = s->fd_closed ? -ENOTCONN : fuse_lowlevel_notify_inval_inode(s->se, (fuse_ino_t)ino, (off_t)off, (off_t)len);
    }
    return number(env, err);
}

/* An invalidation of pages, sent from the thread pool. The kernel locks each cached page of the
 * inode to drop it, and waits for a page that a read or write request still waiting for its reply
 * has locked: sent from the JS thread, which is the one to answer that request, it would wait
 * forever (see live()). From a pool thread it waits until JS has answered. */
typedef struct {
    napi_async_work work;
    napi_deferred deferred;
    napi_ref holder; /* the session's handle: `s` outlives the job */
    fll_session *s;
    struct fuse_session *se;
    uint64_t ino;    /* the inode, or the entry's parent */
    int64_t off, len;
    char *name;      /* owned: an entry's name (notifyInvalEntryAsync); NULL: the inode's pages */
    int err;
} inval_job;

static void inval_execute(napi_env env, void *data) {
    (void)env;
    inval_job *j = data;
    j->err = j->name ? fuse_lowlevel_notify_inval_entry(j->se, (fuse_ino_t)j->ino, j->name, strlen(j->name))
                     : fuse_lowlevel_notify_inval_inode(j->se, (fuse_ino_t)j->ino, (off_t)j->off, (off_t)j->len);
}

static void inval_complete(napi_env env, napi_status status, void *data) {
    inval_job *j = data;
    fll_session *s = j->s;
    if (--s->notifies == 0 && s->destroy_pending) {
        s->destroy_pending = 0;
        fuse_session_destroy(s->se);
        s->se = NULL;
    }
    napi_resolve_deferred(env, j->deferred, number(env, status == napi_ok ? j->err : -ECANCELED));
    napi_delete_async_work(env, j->work);
    napi_delete_reference(env, j->holder);
    free(j->name);
    free(j);
}

/* Queues `j` (its promise made, its fields set) on the thread pool; or resolves its promise with
 * `err`, or -ENOTCONN once the session no longer serves, and frees it. */
static napi_value inval_queue(napi_env env, napi_value h, inval_job *j, napi_value promise, int err, const char *what) {
    napi_value name;
    fll_session *s = j->s;
    if (err || s->fd_closed) {
        napi_resolve_deferred(env, j->deferred, number(env, err ? err : -ENOTCONN));
        free(j->name);
        free(j);
        return promise;
    }
    napi_create_string_utf8(env, what, NAPI_AUTO_LENGTH, &name);
    if (napi_create_reference(env, h, 1, &j->holder) != napi_ok ||
        napi_create_async_work(env, NULL, name, inval_execute, inval_complete, j, &j->work) != napi_ok ||
        napi_queue_async_work(env, j->work) != napi_ok) {
        napi_resolve_deferred(env, j->deferred, number(env, -EAGAIN));
        if (j->work) napi_delete_async_work(env, j->work);
        if (j->holder) napi_delete_reference(env, j->holder);
        free(j->name);
        free(j);
        return promise;
    }
    s->notifies++;
    return promise;
}

/* notifyInvalInodeAsync(h, ino, offset, length) → a promise of 0 or -errno: notifyInvalInode, sent
 * from the thread pool (pages may be dropped while requests on the inode wait for JS). */
napi_value fll_js_notify_inval_inode_async(napi_env env, napi_callback_info info) {
    napi_value h, promise;
    fll_session *s;
    int err = 0;
    int64_t ino, off, len;
    if (!inval_args(env, info, &h, &s, &err, &ino, &off, &len)) return NULL;
    inval_job *j = calloc(1, sizeof *j);
    if (!j) return napi_throw_error(env, "ENOMEM", "out of memory"), NULL;
    *j = (inval_job){.s = s, .se = s->se, .ino = (uint64_t)ino, .off = off, .len = len};
    if (napi_create_promise(env, &j->deferred, &promise) != napi_ok) {
        free(j);
        return NULL;
    }
    return inval_queue(env, h, j, promise, err, "notifyInvalInode");
}

/* The arguments (h, parent, name) of notifyInvalEntry and notifyInvalEntryAsync: the session, or
 * NULL once it has thrown. `*handle` is h; `*err` -ENOTCONN when the session no longer serves. */
static fll_session *entry_args(napi_env env, napi_callback_info info, napi_value *handle, int *err, int64_t *parent, char *name) {
    size_t argc = 3;
    napi_value argv[3];
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    *handle = argv[0];
    fll_session *s = live(env, argv[0], err);
    if (!s || !fll_int(env, argv[1], "parent", 1, MAX_SAFE, parent) || !get_name(env, argv[2], name)) return NULL;
    return s;
}

napi_value fll_js_notify_inval_entry(napi_env env, napi_callback_info info) {
    napi_value h;
    int err = 0;
    int64_t parent;
    char name[NAME_BUF];
    fll_session *s = entry_args(env, info, &h, &err, &parent, name);
    if (!s) return NULL;
    if (!err) {
        err = s->fd_closed ? -ENOTCONN : fuse_lowlevel_notify_inval_entry(s->se, (fuse_ino_t)parent, name, strlen(name));
    }
    return number(env, err);
}

/* notifyInvalEntryAsync(h, parent, name) → a promise of 0 or -errno: notifyInvalEntry, sent from
 * the thread pool. The kernel takes the parent directory's lock, which a request waiting for JS
 * may hold, or a process waiting for an inode lock that such a request holds. */
napi_value fll_js_notify_inval_entry_async(napi_env env, napi_callback_info info) {
    napi_value h, promise;
    int err = 0;
    int64_t parent;
    char name[NAME_BUF];
    fll_session *s = entry_args(env, info, &h, &err, &parent, name);
    if (!s) return NULL;
    inval_job *j = calloc(1, sizeof *j);
    char *copy = strdup(name);
    if (!j || !copy) {
        free(j);
        free(copy);
        return napi_throw_error(env, "ENOMEM", "out of memory"), NULL;
    }
    *j = (inval_job){.s = s, .se = s->se, .ino = (uint64_t)parent, .name = copy};
    if (napi_create_promise(env, &j->deferred, &promise) != napi_ok) {
        free(copy);
        free(j);
        return NULL;
    }
    return inval_queue(env, h, j, promise, err, "notifyInvalEntry");
}

/* notifyStore(h, ino, data, length): puts data[0, length) into the kernel's page cache of `ino` from
 * offset 0, so that reads of it need no request. The kernel locks each page it fills: never for a
 * node whose pages a read or write request still waiting for a reply has locked (see live()). */
napi_value fll_js_notify_store(napi_env env, napi_callback_info info) {
    size_t argc = 4;
    napi_value argv[4];
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    int err = 0;
    int64_t ino, len;
    void *data;
    size_t cap;
    fll_session *s = live(env, argv[0], &err);
    if (!s || !fll_int(env, argv[1], "ino", 1, MAX_SAFE, &ino) || !get_bytes(env, argv[2], "data", &data, &cap) ||
        !fll_int(env, argv[3], "length", 0, (double)cap, &len))
        return NULL;
    if (!err) {
        struct fuse_bufvec buf = FUSE_BUFVEC_INIT((size_t)len);
        buf.buf[0].mem = data;
        err = s->fd_closed ? -ENOTCONN : fuse_lowlevel_notify_store(s->se, (fuse_ino_t)ino, 0, &buf, 0);
    }
    return number(env, err);
}

