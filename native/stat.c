/* lstat for the hot paths (getattr, lookup, readdirplus): the numbers go into a Float64Array, times
 * as seconds and nanoseconds. node:fs's Stats objects (with bigint: true, the only way it gives
 * nanoseconds) cost more than the syscall: a BigInt per field, and garbage. And a directory's
 * entries in one call: readdir, with each entry's numbers by fstatat relative to the open directory
 * (no path walk per entry), or only the kind d_type tells. On the calling thread: inode metadata,
 * microseconds on a local filesystem. */
#include "exports.h"
#include "op.h"
#include "names.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void stat_numbers(double *out, const struct stat *st) {
    out[ST_INO] = (double)st->st_ino;
    out[ST_MODE] = st->st_mode;
    out[ST_NLINK] = (double)st->st_nlink;
    out[ST_UID] = st->st_uid;
    out[ST_GID] = st->st_gid;
    out[ST_RDEV] = (double)st->st_rdev;
    out[ST_SIZE] = (double)st->st_size;
    out[ST_BLKSIZE] = (double)st->st_blksize;
    out[ST_BLOCKS] = (double)st->st_blocks;
    out[ST_ATIME] = (double)st->st_atim.tv_sec;
    out[ST_ATIME_NS] = (double)st->st_atim.tv_nsec;
    out[ST_MTIME] = (double)st->st_mtim.tv_sec;
    out[ST_MTIME_NS] = (double)st->st_mtim.tv_nsec;
    out[ST_CTIME] = (double)st->st_ctim.tv_sec;
    out[ST_CTIME_NS] = (double)st->st_ctim.tv_nsec;
    out[ST_DEV] = (double)st->st_dev;
}

static napi_value throw_type(napi_env env, const char *what) {
    napi_throw_type_error(env, NULL, what);
    return NULL;
}

/* The Float64Array argument the numbers go into, or NULL (a TypeError thrown). */
static double *numbers_arg(napi_env env, napi_value v, const char *call) {
    napi_typedarray_type type;
    size_t n = 0;
    void *data = NULL;
    if (napi_get_typedarray_info(env, v, &type, &n, &data, NULL, NULL) != napi_ok || type != napi_float64_array ||
        n < ST_FIELDS) {
        throw_type(env, call);
        return NULL;
    }
    return data;
}

static napi_value errno_value(napi_env env, int err) {
    napi_value result;
    napi_create_int32(env, err, &result);
    return result;
}

/* lstatInto(path, out: Float64Array) → 0, or the errno: an absent name is an answer, not an
 * exception. The path is read into a stack buffer: no allocation. */
napi_value js_lstat_into(napi_env env, napi_callback_info info) {
    size_t argc = 2, len = 0;
    napi_value argv[2];
    char path[PATH_MAX + 1];
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2)
        return throw_type(env, "lstatInto(path, out)");
    if (!name_copy_from_js(env, argv[0], path, sizeof path, &len))
        return throw_type(env, "lstatInto: the path must be a string or Buffer");
    double *out = numbers_arg(env, argv[1], "lstatInto: out must be a Float64Array of 16");
    if (!out) return NULL;
    struct stat st;
    if (len >= PATH_MAX) return errno_value(env, ENAMETOOLONG); /* (a longer string was cut short) */
    if (strlen(path) != len) return errno_value(env, EINVAL);   /* a NUL inside: not a path */
    if (lstat(path, &st) < 0) return errno_value(env, errno);
    stat_numbers(out, &st);
    return errno_value(env, 0);
}

/* fstatInto(fd, out: Float64Array) → 0, or the errno. */
napi_value js_fstat_into(napi_env env, napi_callback_info info) {
    size_t argc = 2;
    napi_value argv[2];
    int32_t fd;
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
        napi_get_value_int32(env, argv[0], &fd) != napi_ok)
        return throw_type(env, "fstatInto(fd, out)");
    double *out = numbers_arg(env, argv[1], "fstatInto: out must be a Float64Array of 16");
    if (!out) return NULL;
    struct stat st;
    if (fstat(fd, &st) < 0) return errno_value(env, errno);
    stat_numbers(out, &st);
    return errno_value(env, 0);
}

/* Grows *buf to hold `need` bytes. */
static int reserve(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t next = *cap ? *cap : 4096;
    while (next < need) next *= 2;
    char *p = realloc(*buf, next);
    if (!p) return ENOMEM;
    *buf = p;
    *cap = next;
    return 0;
}

/* The file type bits of a directory entry's d_type; 0 when the type takes an lstat to know (a char
 * device may be a whiteout, which its rdev tells; DT_UNKNOWN on filesystems without d_type). */
static mode_t dtype_mode(unsigned char type) {
    switch (type) {
    case DT_REG: return S_IFREG;
    case DT_DIR: return S_IFDIR;
    case DT_LNK: return S_IFLNK;
    case DT_FIFO: return S_IFIFO;
    case DT_SOCK: return S_IFSOCK;
    case DT_BLK: return S_IFBLK;
    default: return 0;
    }
}

enum { LIST_STATS = 1, LIST_NAMES = 2 };

/* o->data: the entries' numbers, ST_FIELDS doubles each; o->name: their names back to back,
 * NUL-terminated, o->len bytes; o->ret: how many. Without LIST_STATS in o->flags only the type
 * bits of ST_MODE are filled, from d_type, and an entry is stat'ed only when d_type cannot tell;
 * with LIST_NAMES nothing is stat'ed (the type bits are d_type's, or 0). */
static int list_exec(op *o) {
    DIR *dir = opendir(o->path);
    if (!dir) return errno;
    int fd = dirfd(dir);
    char *nums = NULL, *names = NULL;
    size_t nums_cap = 0, names_cap = 0, names_len = 0, count = 0;
    int err = 0;
    struct dirent *e;
    errno = 0;
    while (!err && (e = readdir(dir)) != NULL) {
        const char *n = e->d_name;
        if (n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0'))) continue;
        struct stat st;
        int names_only = (o->flags & LIST_NAMES) != 0;
        mode_t type = (o->flags & LIST_STATS) ? 0 : dtype_mode(e->d_type);
        if (!type && !names_only && fstatat(fd, n, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT) continue; /* removed since the readdir */
            err = errno;
            break;
        }
        size_t len = strlen(n) + 1;
        err = reserve(&nums, &nums_cap, (count + 1) * ST_FIELDS * sizeof(double));
        if (!err) err = reserve(&names, &names_cap, names_len + len);
        if (err) break;
        double *slots = (double *)nums + count * ST_FIELDS;
        if (type || names_only) {
            memset(slots, 0, ST_FIELDS * sizeof(double));
            slots[ST_MODE] = type;
        } else {
            stat_numbers(slots, &st);
        }
        memcpy(names + names_len, n, len);
        names_len += len;
        count++;
        errno = 0;
    }
    if (!err && errno != 0) err = errno;
    closedir(dir);
    /* The op owns (and frees) both buffers from here, on success or not. */
    o->data = nums;
    o->name = names;
    o->len = (int64_t)names_len;
    o->ret = (int64_t)count;
    return err;
}

/* [names: string[], numbers: Float64Array] */
static napi_status list_done(napi_env env, op *o, napi_value *out) {
    size_t nums_len = (size_t)o->ret * ST_FIELDS * sizeof(double);
    void *copy = NULL;
    napi_value buffer, numbers, names;
    napi_status s = napi_create_arraybuffer(env, nums_len, &copy, &buffer);
    if (s == napi_ok && nums_len) memcpy(copy, o->data, nums_len);
    if (s == napi_ok) s = napi_create_typedarray(env, napi_float64_array, nums_len / sizeof(double), buffer, 0, &numbers);
    if (s == napi_ok) s = napi_create_array_with_length(env, (size_t)o->ret, &names);
    const char *p = o->name, *end = o->name ? o->name + o->len : NULL;
    for (uint32_t i = 0; s == napi_ok && p < end; i++) {
        size_t len = strlen(p);
        napi_value name;
        s = name_to_js(env, p, len, &name);
        if (s == napi_ok) s = napi_set_element(env, names, i, name);
        p += len + 1;
    }
    if (s == napi_ok) s = op_pair(env, names, numbers, out);
    return s;
}

/* listDir(path, flags) → [names, numbers]: numbers holds ST_FIELDS per name, in the same order;
 * all of them with LIST_STATS, else the type bits (see list_exec) */
napi_value js_list_dir(napi_env env, napi_callback_info info) {
    op *o = op_new("scandir", list_exec, list_done);
    if (!o) return op_nomem(env);
    return op_run_sync(env, info, o, "su", &o->path, &o->flags);
}

/* listDirAsync(path, flags) → Promise<[names, numbers]>: listDir on the thread pool. */
napi_value js_list_dir_async(napi_env env, napi_callback_info info) {
    op *o = op_new("scandir", list_exec, list_done);
    if (!o) return op_nomem(env);
    return op_run(env, info, o, "su", &o->path, &o->flags);
}
