/* One generic operation: JS arguments are copied into an `op`, and the syscall runs either on the
 * libuv thread pool, settling a promise on the JS thread (op_run), or at once on the calling thread
 * (op_run_sync). Every exported function is a few lines on top of this, so argument ownership, error
 * reporting and cleanup live in exactly one place. */
#ifndef LAYERFS_OP_H
#define LAYERFS_OP_H

#define NAPI_VERSION 8
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct op op;

/* Runs on a pool thread, must not touch napi. Returns 0 or the errno to reject with. */
typedef int (*op_exec_fn)(op *o);
/* Runs on the JS thread after success: builds the resolution value. */
typedef napi_status (*op_done_fn)(napi_env env, op *o, napi_value *out);

struct op {
    const char *syscall; /* reported to JS on failure */
    op_exec_fn exec;
    op_done_fn done;
    napi_deferred deferred;
    napi_async_work work;
    int err;

    /* Arguments: each op uses the slots it needs; strings and data are owned and freed with the op. */
    char *path, *dest, *name;
    int fd, fd2;
    int64_t off, off2, len, dev;
    uint32_t mode, flags;
    struct timespec times[2];
    void *data; /* value to write, or bytes read back */
    size_t size;

    double *numbers; /* 'F', 'f': the caller's Float64Array (op_run_sync only), for numbers handed back */
    int64_t limit;   /* an op's bound (a copy's largest size) */

    int64_t ret; /* numeric result for op_done_number */
    int cold;    /* a copy-up found its source's first page not in the page cache (STAGE_SMALL) */
    int absent;  /* op_run_sync: this errno is an answer ("nothing there"), returned as undefined
                  * instead of thrown: an exception costs more than the syscall */
};

/* NULL when out of memory: return op_nomem(env) then. */
op *op_new(const char *syscall, op_exec_fn exec, op_done_fn done);
napi_value op_nomem(napi_env env);

/* Parses the call's arguments per `fmt`, then queues the op and returns its promise. Takes ownership
 * of `o`; on bad arguments it throws and returns NULL.
 *   s  char **        string without NUL bytes (copied)
 *   i  int *          int32 (file descriptors)
 *   u  uint32_t *     uint32 (mode, flags)
 *   l  int64_t *      integral number (offsets, lengths, dev)
 *   b  void **, size_t *   Buffer / TypedArray contents (copied)
 *   t  struct timespec *   bigint ns since the epoch, null (UTIME_OMIT) or 'now' (UTIME_NOW)
 *   B  uint32_t *     boolean, as 0 or 1
 *   F  double **      Float64Array of at least 16 (the stat numbers' ST_FIELDS), NOT copied: the op
 *                     writes into the caller's array, so op_run_sync only (op_run refuses it)
 *   f  double **      the same, or undefined/null for none (NULL) */
napi_value op_run(napi_env env, napi_callback_info info, op *o, const char *fmt, ...);

/* Like op_run, but runs the syscall now, on the calling thread, and returns the value (or throws). */
napi_value op_run_sync(napi_env env, napi_callback_info info, op *o, const char *fmt, ...);

/* The slots of one object's stat numbers; src/sys/native.ts (ST) names the same. */
enum {
    ST_INO, ST_MODE, ST_NLINK, ST_UID, ST_GID, ST_RDEV, ST_SIZE, ST_BLKSIZE, ST_BLOCKS,
    ST_ATIME, ST_ATIME_NS, ST_MTIME, ST_MTIME_NS, ST_CTIME, ST_CTIME_NS, ST_DEV, ST_FIELDS
};

/* A struct stat as the ST_FIELDS numbers JS reads (stat.c; src/sys/native.ts names the slots): what
 * an 'F' argument receives. */
struct stat;
void stat_numbers(double *out, const struct stat *st);

/* copy-up.c, for the FUSE bridge's setattrs answered in C (fuse-ll-cow.c): stageSmallUnnamedSync's
 * copy of SRC, made with O_TMPFILE in DIR, with the caller's change (uid, gid, mode: -1 for none;
 * times: UTIME_OMIT for none). 0 with *fd -1 when declined (not a regular file with one link of at
 * most `limit` bytes), 0 with the copy's fd and its bytes, or an errno (nothing left behind).
 * `numbers` receives SRC's lstat (ST_FIELDS); *cold whether its data had to be read from the disk.
 * `exact_mode`: a file made in DIR gets exactly the mode it is made with (see STAGE_EXACT_MODE);
 * `empty`: the copy gets none of SRC's bytes (an O_TRUNC open's); `meta`: it is a metadata-only copy
 * (overlayfs metacopy: SRC's size with no data, marked trusted.overlay.metacopy), of any size. */
int copy_small_unnamed(const char *src, const char *dir, int exact_mode, int empty, int meta, int64_t limit, int64_t uid, int64_t gid,
                       int64_t mode, const struct timespec times[2], double *numbers, int *fd, int64_t *bytes, int *cold);

/* Names the unnamed copy open as FD (copy_small_unnamed) TARGET, which must be free, in the directory
 * PARENT, which keeps its times (as linkCopy names one; FD stays open): 0 or an errno. */
int link_unnamed(int fd, const char *target, const char *parent);

/* The same for the lower directory SRC (a setattr of it answered in C, and every directory copy-up
 * of the union): copied up as stageCopySync copies a directory, under a temporary name in DIR,
 * with the caller's change and its own origin, then renamed to TARGET (renameat2 with
 * `rename_flags`: RENAME_NOREPLACE where TARGET must not exist yet), and TARGET's parent given
 * back its times. 0 with the copy's lstat in *out,
 * or an errno: nothing named and nothing left behind, unless only the lstat after the rename
 * failed. Any of `numbers` (SRC's lstat, ST_FIELDS), *origin (whether the origin could be
 * recorded) and `out` may be NULL. */
int copy_dir_named(const char *src, const char *dir, const char *target, int64_t uid, int64_t gid, int64_t mode,
                   const struct timespec times[2], unsigned rename_flags, double *numbers, int *origin, struct stat *out);

/* data.c: whether the first page of `fd` is in the page cache (1, 0; -1 when that cannot be told). */
int first_page_cached(int fd);

napi_status op_done_undefined(napi_env env, op *o, napi_value *out);
napi_status op_done_number(napi_env env, op *o, napi_value *out);
napi_status op_done_bytes(napi_env env, op *o, napi_value *out);
/* o->data holds NUL-terminated names back to back (the listxattr format). */
napi_status op_done_names(napi_env env, op *o, napi_value *out);
/* [a, b]: the two-value results (a copy's bytes and fd, a listing's names and numbers). */
napi_status op_pair(napi_env env, napi_value a, napi_value b, napi_value *out);

#endif
