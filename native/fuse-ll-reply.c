/* Replies and notifications, called from JS. Every reply first checks its arguments and only then
 * removes the request id: a bad argument throws and leaves the request answerable (the caller can
 * still reply EIO), a valid one is answered exactly once. The write itself goes through FLL_SEND:
 * once the session has closed /dev/fuse, replies only free their request. */
#include "fuse-ll.h"

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

static int prop_double(napi_env env, napi_value obj, const char *name, double *out) {
    napi_value v;
    napi_get_named_property(env, obj, name, &v);
    return get_double(env, v, name, out);
}

/* Attr (see src/sys/fuse-ll.ts) → struct stat. */
static int get_attr(napi_env env, napi_value o, struct stat *st) {
    int64_t ino, mode, nlink, uid, gid, rdev, size, blksize, blocks, as, an, ms, mn, cs, cn;
    if (!get_object(env, o, "attr")) return 0;
    if (!fll_prop_int(env, o, "ino", 0, MAX_SAFE, &ino) || !fll_prop_int(env, o, "mode", 0, 0xffffffff, &mode) ||
        !fll_prop_int(env, o, "nlink", 0, MAX_SAFE, &nlink) || !fll_prop_int(env, o, "uid", 0, 0xffffffff, &uid) ||
        !fll_prop_int(env, o, "gid", 0, 0xffffffff, &gid) || !fll_prop_int(env, o, "rdev", 0, MAX_SAFE, &rdev) ||
        !fll_prop_int(env, o, "size", 0, MAX_SAFE, &size) || !fll_prop_int(env, o, "blksize", 0, 0x7fffffff, &blksize) ||
        !fll_prop_int(env, o, "blocks", 0, MAX_SAFE, &blocks) ||
        !fll_prop_int(env, o, "atimeSec", -MAX_SAFE, MAX_SAFE, &as) || !fll_prop_int(env, o, "atimeNsec", 0, 999999999, &an) ||
        !fll_prop_int(env, o, "mtimeSec", -MAX_SAFE, MAX_SAFE, &ms) || !fll_prop_int(env, o, "mtimeNsec", 0, 999999999, &mn) ||
        !fll_prop_int(env, o, "ctimeSec", -MAX_SAFE, MAX_SAFE, &cs) || !fll_prop_int(env, o, "ctimeNsec", 0, 999999999, &cn))
        return 0;
    memset(st, 0, sizeof *st);
    st->st_ino = (ino_t)ino;
    st->st_mode = (mode_t)mode;
    st->st_nlink = (nlink_t)nlink;
    st->st_uid = (uid_t)uid;
    st->st_gid = (gid_t)gid;
    st->st_rdev = (dev_t)rdev;
    st->st_size = size;
    st->st_blksize = (blksize_t)blksize;
    st->st_blocks = blocks;
    st->st_atim = (struct timespec){as, an};
    st->st_mtim = (struct timespec){ms, mn};
    st->st_ctim = (struct timespec){cs, cn};
    return 1;
}

/* EntryOut → fuse_entry_param. */
static int get_entry(napi_env env, napi_value o, struct fuse_entry_param *e) {
    int64_t ino, gen;
    napi_value attr;
    if (!get_object(env, o, "entry")) return 0;
    memset(e, 0, sizeof *e);
    if (!fll_prop_int(env, o, "ino", 0, MAX_SAFE, &ino) || !fll_prop_int(env, o, "generation", 0, MAX_SAFE, &gen) ||
        !prop_double(env, o, "attrTimeout", &e->attr_timeout) || !prop_double(env, o, "entryTimeout", &e->entry_timeout))
        return 0;
    napi_get_named_property(env, o, "attr", &attr);
    if (!get_attr(env, attr, &e->attr)) return 0;
    e->ino = (fuse_ino_t)ino;
    e->generation = (uint64_t)gen;
    return 1;
}

/* OpenFlags → the reply fields of a fuse_file_info. */
static int get_open(napi_env env, napi_value fh_v, napi_value o, struct fuse_file_info *fi) {
    int64_t fh;
    int keep, direct, cache, nonseek;
    memset(fi, 0, sizeof *fi);
    if (!fll_int(env, fh_v, "fh", 0, MAX_SAFE, &fh)) return 0;
    napi_valuetype t;
    napi_typeof(env, o, &t);
    if (t == napi_undefined || t == napi_null) {
        fi->fh = (uint64_t)fh;
        return 1;
    }
    if (!get_object(env, o, "open") || !fll_prop_bool(env, o, "keepCache", &keep) ||
        !fll_prop_bool(env, o, "directIo", &direct) || !fll_prop_bool(env, o, "cacheReaddir", &cache) ||
        !fll_prop_bool(env, o, "nonseekable", &nonseek))
        return 0;
    fi->fh = (uint64_t)fh;
    fi->keep_cache = keep;
    fi->direct_io = direct;
    fi->cache_readdir = cache;
    fi->nonseekable = nonseek;
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
    if (napi_get_value_string_utf8(env, v, buf, NAME_BUF, &len) != napi_ok) {
        napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "entry name must be a string");
        return 0;
    }
    if (len == 0 || len >= NAME_BUF - 1 || strlen(buf) != len || strchr(buf, '/')) {
        napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "entry name must be 1..1023 bytes without '/' or NUL");
        return 0;
    }
    return 1;
}

/* ---- replies ---- */

napi_value fll_js_reply_err(napi_env env, napi_callback_info info) {
    BEGIN(3)
    int64_t err;
    if (!fll_int(env, argv[2], "errno", 0, 4095, &err)) return NULL;
    fll_drop_req(s, idx);
    FLL_SEND(s, req, fuse_reply_err(req, (int)err));
    return NULL;
}

napi_value fll_js_reply_entry(napi_env env, napi_callback_info info) {
    BEGIN(3)
    struct fuse_entry_param e;
    if (!get_entry(env, argv[2], &e)) return NULL;
    fll_drop_req(s, idx);
    FLL_SEND(s, req, fuse_reply_entry(req, &e));
    return NULL;
}

napi_value fll_js_reply_create(napi_env env, napi_callback_info info) {
    BEGIN(5)
    struct fuse_entry_param e;
    struct fuse_file_info fi;
    if (!get_entry(env, argv[2], &e) || !get_open(env, argv[3], argv[4], &fi)) return NULL;
    fll_drop_req(s, idx);
    FLL_SEND(s, req, fuse_reply_create(req, &e, &fi));
    return NULL;
}

napi_value fll_js_reply_attr(napi_env env, napi_callback_info info) {
    BEGIN(4)
    struct stat st;
    double timeout;
    if (!get_attr(env, argv[2], &st) || !get_double(env, argv[3], "timeout", &timeout)) return NULL;
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

napi_value fll_js_reply_open(napi_env env, napi_callback_info info) {
    BEGIN(4)
    struct fuse_file_info fi;
    if (!get_open(env, argv[2], argv[3], &fi)) return NULL;
    fll_drop_req(s, idx);
    FLL_SEND(s, req, fuse_reply_open(req, &fi));
    return NULL;
}

napi_value fll_js_reply_write(napi_env env, napi_callback_info info) {
    BEGIN(3)
    int64_t count;
    if (!fll_int(env, argv[2], "count", 0, 0xffffffff, &count)) return NULL;
    fll_drop_req(s, idx);
    FLL_SEND(s, req, fuse_reply_write(req, (size_t)count));
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

/* readdir / readdirplus: packs entries from the first on until `size` bytes are full, replies with
 * what fit and returns that count, so the caller knows which readdirplus entries the kernel now
 * holds a lookup reference for. */
static napi_value reply_dir(napi_env env, napi_callback_info info, int plus) {
    BEGIN(4)
    int64_t size;
    uint32_t n;
    bool is_array;
    if (!fll_int(env, argv[2], "size", 0, 1 << 30, &size)) return NULL;
    if (napi_is_array(env, argv[3], &is_array) != napi_ok || !is_array) {
        napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "entries must be an array");
        return NULL;
    }
    napi_get_array_length(env, argv[3], &n);
    char *buf = malloc(size ? (size_t)size : 1);
    if (!buf) return napi_throw_error(env, "ENOMEM", "out of memory"), NULL;
    size_t used = 0;
    uint32_t count = 0;
    char name[NAME_BUF];
    for (; count < n; count++) {
        napi_value ent, v;
        int64_t next;
        napi_get_element(env, argv[3], count, &ent);
        if (!get_object(env, ent, "entry")) goto fail;
        napi_get_named_property(env, ent, "name", &v);
        if (!get_name(env, v, name) || !fll_prop_int(env, ent, "next", 0, MAX_SAFE, &next)) goto fail;
        size_t rest = (size_t)size - used, need;
        if (plus) {
            struct fuse_entry_param e;
            napi_get_named_property(env, ent, "entry", &v);
            if (!get_entry(env, v, &e)) goto fail;
            need = fuse_add_direntry_plus(req, NULL, 0, name, NULL, 0);
            if (need > rest) break;
            fuse_add_direntry_plus(req, buf + used, rest, name, &e, (off_t)next);
        } else {
            int64_t ino, mode;
            if (!fll_prop_int(env, ent, "ino", 0, MAX_SAFE, &ino) || !fll_prop_int(env, ent, "mode", 0, 0xffffffff, &mode))
                goto fail;
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

napi_value fll_js_notify_inval_inode(napi_env env, napi_callback_info info) {
    size_t argc = 4;
    napi_value argv[4];
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    int err = 0;
    int64_t ino, off, len;
    fll_session *s = live(env, argv[0], &err);
    if (!s || !fll_int(env, argv[1], "ino", 1, MAX_SAFE, &ino) || !fll_int(env, argv[2], "offset", -MAX_SAFE, MAX_SAFE, &off) ||
        !fll_int(env, argv[3], "length", -MAX_SAFE, MAX_SAFE, &len))
        return NULL;
    if (!err) {
        err = s->fd_closed ? -ENOTCONN : fuse_lowlevel_notify_inval_inode(s->se, (fuse_ino_t)ino, (off_t)off, (off_t)len);
    }
    return number(env, err);
}

napi_value fll_js_notify_inval_entry(napi_env env, napi_callback_info info) {
    size_t argc = 3;
    napi_value argv[3];
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    int err = 0;
    int64_t parent;
    char name[NAME_BUF];
    fll_session *s = live(env, argv[0], &err);
    if (!s || !fll_int(env, argv[1], "parent", 1, MAX_SAFE, &parent) || !get_name(env, argv[2], name)) return NULL;
    if (!err) {
        err = s->fd_closed ? -ENOTCONN : fuse_lowlevel_notify_inval_entry(s->se, (fuse_ino_t)parent, name, strlen(name));
    }
    return number(env, err);
}
