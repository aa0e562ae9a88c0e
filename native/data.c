/* File data calls: hole detection, in-kernel copies with explicit offsets (so no shared file
 * position is touched) and reflink clones for copy-up, space allocation (fallocate), reads and
 * writes that never wait, and reading files ahead into the page cache. */
#include "exports.h"
#include "op.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
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

static int syncfs_exec(op *o) { return syncfs(o->fd) < 0 ? errno : 0; }

static int fallocate_exec(op *o) { return fallocate(o->fd, (int)o->flags, (off_t)o->off, (off_t)o->len) < 0 ? errno : 0; }

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

/* syncfs(fd): writes out every dirty inode and page of the filesystem holding fd, and waits. One
 * flush for a batch of copy-ups (see Core's deferred copies) costs a fraction of one fsync each. */
napi_value js_syncfs(napi_env env, napi_callback_info info) {
    op *o = op_new("syncfs", syncfs_exec, op_done_undefined);
    if (!o) return op_nomem(env);
    return op_run(env, info, o, "i", &o->fd);
}

/* fallocate(fd, mode, offset, length), on the pool: allocating or zeroing a range may write. */
napi_value js_fallocate(napi_env env, napi_callback_info info) {
    op *o = op_new("fallocate", fallocate_exec, op_done_undefined);
    if (!o) return op_nomem(env);
    return op_run(env, info, o, "iull", &o->fd, &o->flags, &o->off, &o->len);
}

/* ---- whether data is cached ---- */

#ifndef SYS_cachestat
#define SYS_cachestat 451
#endif

/* Whether the first page of the file open as `fd` is in the page cache: 1, 0, or -1 when cachestat(2)
 * (Linux 6.5) cannot tell (missing, or refused). cachestat only looks. A read that may not wait
 * (RWF_NOWAIT) is no such probe: it starts reading the page in, and on a fast disk (a VM's, cached
 * by its host) finds it read before it gives up, and returns the byte as if it had been cached. */
int first_page_cached(int fd) {
    struct {
        uint64_t off, len;
    } range = {0, 1};
    struct {
        uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
    } cs;
    if (syscall(SYS_cachestat, fd, &range, &cs, 0) < 0) return -1;
    return cs.nr_cache > 0;
}

/* firstPageCached(fd) → 1, 0, or -1 (unknown; see first_page_cached). */
napi_value js_first_page_cached(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1], result;
    int32_t fd;
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
        napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "(fd)");
        return NULL;
    }
    napi_create_int32(env, first_page_cached(fd), &result);
    return result;
}

/* ---- reads and writes that never wait ---- */

/* preadNowait(fd, buffer, length, position) / pwriteNowait(...) → bytes, or -errno.
 * preadv2/pwritev2 with RWF_NOWAIT, on the calling thread: served from the page cache or not at all
 * (-EAGAIN, or -EOPNOTSUPP where the filesystem cannot promise it). The caller sends the rest to
 * the thread pool, so the common case, cached data, costs no round trip while a disk read still
 * never stalls the JS thread. Errors are returned, not thrown: every one means "use the pool". */
static napi_value rw_nowait(napi_env env, napi_callback_info info, int writing) {
    size_t argc = 4;
    napi_value argv[4], result;
    int32_t fd;
    int64_t len, pos;
    void *buf;
    size_t cap;
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    if (argc < 4 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
        napi_get_buffer_info(env, argv[1], &buf, &cap) != napi_ok || napi_get_value_int64(env, argv[2], &len) != napi_ok ||
        napi_get_value_int64(env, argv[3], &pos) != napi_ok || len < 0 || (uint64_t)len > cap || pos < 0) {
        napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "(fd, buffer, length <= buffer.length, position >= 0)");
        return NULL;
    }
    struct iovec iov = {buf, (size_t)len};
    ssize_t n = writing ? pwritev2(fd, &iov, 1, (off_t)pos, RWF_NOWAIT) : preadv2(fd, &iov, 1, (off_t)pos, RWF_NOWAIT);
    napi_create_int64(env, n < 0 ? -(int64_t)errno : (int64_t)n, &result);
    return result;
}

napi_value js_pread_nowait(napi_env env, napi_callback_info info) { return rw_nowait(env, info, 0); }
napi_value js_pwrite_nowait(napi_env env, napi_callback_info info) { return rw_nowait(env, info, 1); }

/* Reads small files into the page cache: o->data holds NUL-terminated paths back to back; each
 * regular file of 1 to o->len bytes is read whole. readahead(2) queues them all first, so the disk
 * gets them together; then each is read on this pool thread, since readahead is advisory (the
 * kernel may read less than asked): the second pass reads what it left, and otherwise finds the
 * pages cached. Paths that fail are skipped: whoever reads them later gets the error. The count
 * of files read or found cached, plus PREFETCH_COLD times the count of those whose first page was
 * not cached (the reader it reads for goes through files the page cache does not hold). */
#define PREFETCH_CHUNK (64 * 1024)
#define PREFETCH_MAX 256
#define PREFETCH_COLD 65536

static int prefetch_exec(op *o) {
    const char *p = o->data, *end = p + o->size;
    int fds[PREFETCH_MAX];
    off_t sizes[PREFETCH_MAX];
    int n = 0, cold = 0, warm = 0;
    while (p < end && n < PREFETCH_MAX) {
        size_t len = strnlen(p, (size_t)(end - p));
        if (len == (size_t)(end - p)) break; /* no NUL: not a path */
        int fd = open(p, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        struct stat st;
        int wanted = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 && st.st_size <= o->len;
        /* A file whose first page is cached was read before (or is being read): left as it is. */
        int cached = wanted ? first_page_cached(fd) : -1;
        if (cached == 1) warm++;
        else if (cached == 0) cold++;
        if (wanted && cached != 1 && readahead(fd, 0, (size_t)st.st_size) == 0) {
            fds[n] = fd;
            sizes[n++] = st.st_size;
        } else if (fd >= 0) {
            close(fd);
        }
        p += len + 1;
    }
    char *buf = n > 0 ? malloc(PREFETCH_CHUNK) : NULL;
    int64_t count = warm;
    for (int i = 0; i < n; i++) {
        off_t at = 0;
        ssize_t got;
        while (buf && at < sizes[i] && (got = pread(fds[i], buf, PREFETCH_CHUNK, at)) > 0) at += got;
        if (at >= sizes[i]) count++;
        close(fds[i]);
    }
    free(buf);
    o->ret = count + (int64_t)cold * PREFETCH_COLD;
    return 0;
}

napi_value js_prefetch(napi_env env, napi_callback_info info) {
    op *o = op_new("readahead", prefetch_exec, op_done_number);
    if (!o) return op_nomem(env);
    return op_run(env, info, o, "bl", &o->data, &o->size, &o->len);
}
