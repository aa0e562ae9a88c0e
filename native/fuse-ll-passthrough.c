/* What libfuse 3.14 cannot negotiate or does not know, done here by hand:
 *
 * FUSE passthrough (kernel 6.9+): the kernel reads and writes an open file's backing file itself, so
 * no read or write of that file reaches the daemon.
 *   INIT     libfuse answers the kernel's INIT into a pipe standing in for /dev/fuse; the reply is
 *            amended (FUSE_PASSTHROUGH, a stacking depth of 1) and written to the device here
 *   backing  FUSE_DEV_IOC_BACKING_OPEN registers an open fd with the connection and names it by an
 *            id; FUSE_DEV_IOC_BACKING_CLOSE drops the id (open files keep their own reference)
 *   replies  an open or create reply carrying FOPEN_PASSTHROUGH and the backing id
 *
 * FUSE_HANDLE_KILLPRIV_V2 (kernel 5.11+), asked for in the same amended INIT reply: the daemon, not
 * the kernel, clears setuid/setgid after a write, truncate or O_TRUNC open by a process without
 * CAP_FSETID. The kernel then sends no getattr before each chown, and no getxattr of
 * security.capability before every write. It marks such requests with a flag libfuse does not pass
 * on, so the flag is read from the raw request (fll_kills_suidgid) before libfuse dispatches it.
 *
 * The kernel structures below are the protocol's (7.40+), spelled out because Debian's headers
 * are older. */
#include "fuse-ll.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define OP_SETATTR 4
#define OP_OPEN 14
#define OP_WRITE 16
#define OP_INIT 26
#define OP_CREATE 35
#define OP_TMPFILE 51
#define INIT_HANDLE_KILLPRIV_V2 (1u << 28)
#define INIT_EXT (1u << 30)
#define INIT2_PASSTHROUGH (1u << (37 - 32))
#define FOPEN_PASSTHROUGH (1u << 7)
#define FATTR_KILL_SUIDGID (1u << 11)
#define OPEN_KILL_SUIDGID (1u << 0)
#define WRITE_KILL_SUIDGID (1u << 2)

struct in_header {
    uint32_t len, opcode;
    uint64_t unique, nodeid;
    uint32_t uid, gid, pid;
    uint16_t total_extlen, padding;
};
struct init_in {
    uint32_t major, minor, max_readahead, flags, flags2, unused[11];
};
struct open_in {
    uint32_t flags, open_flags;
};
struct write_in {
    uint64_t fh, offset;
    uint32_t size, write_flags;
};
/* The header of the request in `buf`, or NULL when it cannot be read there (a buffer libfuse left
 * in a pipe, or one shorter than a header). */
static struct in_header *header_of(const struct fuse_buf *buf) {
    return (buf->flags & FUSE_BUF_IS_FD) || buf->size < sizeof(struct in_header) ? NULL : buf->mem;
}

struct out_header {
    uint32_t len;
    int32_t error;
    uint64_t unique;
};
struct init_out {
    uint32_t major, minor, max_readahead, flags;
    uint16_t max_background, congestion_threshold;
    uint32_t max_write, time_gran;
    uint16_t max_pages, map_alignment;
    uint32_t flags2, max_stack_depth;
    uint16_t request_timeout, unused[11];
};
struct open_out {
    uint64_t fh;
    uint32_t open_flags;
    int32_t backing_id;
};
struct kattr {
    uint64_t ino, size, blocks, atime, mtime, ctime;
    uint32_t atimensec, mtimensec, ctimensec, mode, nlink, uid, gid, rdev, blksize, flags;
};
struct entry_out {
    uint64_t nodeid, generation, entry_valid, attr_valid;
    uint32_t entry_valid_nsec, attr_valid_nsec;
    struct kattr attr;
};
struct backing_map {
    int32_t fd;
    uint32_t flags;
    uint64_t padding;
};
_Static_assert(sizeof(struct init_out) == 64, "fuse_init_out is 64 bytes");
_Static_assert(sizeof(struct entry_out) == 128, "fuse_entry_out is 128 bytes");

#define DEV_IOC_BACKING_OPEN _IOW(229, 1, struct backing_map)
#define DEV_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)

/* The INIT request in `buf` into `in` (zeroed past what the kernel sent: before 7.36 it ends after
 * `flags`); 0 when `buf` holds no INIT. */
static int read_init_in(const struct fuse_buf *buf, struct init_in *in) {
    memset(in, 0, sizeof *in);
    const size_t min = offsetof(struct init_in, flags2);
    const struct in_header *ih = header_of(buf);
    if (!ih || buf->size < sizeof *ih + min || ih->opcode != OP_INIT) return 0;
    size_t n = buf->size - sizeof *ih;
    memcpy(in, ih + 1, n < sizeof *in ? n : sizeof *in);
    return 1;
}

static int offers_passthrough(const struct init_in *in) {
    return in->major == 7 && in->minor >= 40 && (in->flags & INIT_EXT) && (in->flags2 & INIT2_PASSTHROUGH);
}

int fll_is_init(const struct fuse_buf *buf) {
    const struct in_header *ih = header_of(buf);
    return ih && ih->opcode == OP_INIT;
}

int fll_take_tmpfile(struct fuse_buf *buf) {
    struct in_header *ih = header_of(buf);
    if (!ih || ih->opcode != OP_TMPFILE) return 0;
    ih->opcode = OP_CREATE;
    return 1;
}

uint32_t fll_caller(const struct fuse_buf *buf) {
    const struct in_header *ih = header_of(buf);
    return ih ? ih->pid : 0;
}

uint32_t fll_opcode(const struct fuse_buf *buf, uint64_t *nodeid) {
    const struct in_header *ih = header_of(buf);
    *nodeid = ih ? ih->nodeid : 0;
    return ih ? ih->opcode : 0;
}

int fll_leaves_others(uint32_t opcode) {
    switch (opcode) {
    case 1:  /* LOOKUP */
    case 2:  /* FORGET */
    case 3:  /* GETATTR */
    case 5:  /* READLINK */
    case 14: /* OPEN */
    case 15: /* READ */
    case 17: /* STATFS */
    case 18: /* RELEASE */
    case 22: /* GETXATTR */
    case 23: /* LISTXATTR */
    case 25: /* FLUSH */
    case 27: /* OPENDIR */
    case 28: /* READDIR */
    case 29: /* RELEASEDIR */
    case 34: /* ACCESS */
    case 36: /* INTERRUPT */
    case 42: /* BATCH_FORGET */
    case 44: /* READDIRPLUS */
    case 52: /* STATX */
        return 1;
    default:
        return 0;
    }
}

int fll_kills_suidgid(const struct fuse_buf *buf) {
    const struct in_header *ih = header_of(buf);
    if (!ih) return 0;
    const void *arg = ih + 1;
    size_t len = buf->size - sizeof *ih;
    switch (ih->opcode) {
    case OP_SETATTR: /* fuse_setattr_in starts with `valid` */
        return len >= sizeof(uint32_t) && (*(const uint32_t *)arg & FATTR_KILL_SUIDGID);
    case OP_OPEN:
        return len >= sizeof(struct open_in) && (((const struct open_in *)arg)->open_flags & OPEN_KILL_SUIDGID);
    case OP_WRITE:
        return len >= sizeof(struct write_in) && (((const struct write_in *)arg)->write_flags & WRITE_KILL_SUIDGID);
    default:
        return 0;
    }
}

/* libfuse processes the INIT in `s->fbuf` with its reply going into a pipe put in place of the
 * device's fd number for the call (the device stays open through a duplicate); the reply is then
 * amended and written to the device. Without an offer of what is wanted, or if the detour cannot be
 * set up, libfuse answers directly. */
void fll_process_init(fll_session *s) {
    s->init_seen = 1;
    s->passthrough = 0;
    s->killpriv = 0;
    struct init_in in;
    int seen = read_init_in(&s->fbuf, &in);
    int passthrough = seen && s->want_passthrough && offers_passthrough(&in);
    int killpriv = seen && (in.flags & INIT_HANDLE_KILLPRIV_V2);
    if (!passthrough && !killpriv) {
        fuse_session_process_buf(s->se, &s->fbuf);
        return;
    }
    int fd = fuse_session_fd(s->se), p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        fuse_session_process_buf(s->se, &s->fbuf);
        return;
    }
    int saved = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (saved < 0 || dup3(p[1], fd, O_CLOEXEC) < 0) {
        if (saved >= 0) close(saved);
        close(p[0]);
        close(p[1]);
        fuse_session_process_buf(s->se, &s->fbuf);
        return;
    }
    fuse_session_process_buf(s->se, &s->fbuf);
    dup3(saved, fd, O_CLOEXEC);
    close(saved);
    close(p[1]);

    struct {
        struct out_header h;
        struct init_out o;
    } reply;
    memset(&reply, 0, sizeof reply);
    ssize_t n = read(p[0], &reply, sizeof reply);
    close(p[0]);
    if (n < (ssize_t)sizeof reply.h) return; /* nothing written: libfuse failed; the mount times out */
    if (reply.h.error == 0) {
        reply.h.len = sizeof reply; /* an older libfuse may have sent a shorter init_out */
        if (passthrough) {
            reply.o.flags |= INIT_EXT;
            reply.o.flags2 |= INIT2_PASSTHROUGH;
            /* Backing files on a filesystem that is not stacked (depth 0); the mount itself then
             * counts as depth 1, so an overlayfs may still be mounted over it. */
            reply.o.max_stack_depth = 1;
        }
        if (killpriv) reply.o.flags |= INIT_HANDLE_KILLPRIV_V2;
        n = sizeof reply;
    }
    if (write(fd, &reply, (size_t)n) == n && reply.h.error == 0) {
        s->passthrough = passthrough;
        s->killpriv = killpriv;
    }
}

/* An ioctl on the session's /dev/fuse: its result, or -errno. */
static int dev_ioctl(fll_session *s, unsigned long request, void *arg) {
    if (s->fd_closed) return -EBADF;
    int res = ioctl(fuse_session_fd(s->se), request, arg);
    return res < 0 ? -errno : res;
}

/* Registers `fd` as a backing file: its id (> 0), or -errno (EOPNOTSUPP with no passthrough). */
int fll_backing_open(fll_session *s, int fd) {
    struct backing_map map = {.fd = fd};
    return s->passthrough ? dev_ioctl(s, DEV_IOC_BACKING_OPEN, &map) : -EOPNOTSUPP;
}

int fll_backing_close(fll_session *s, int32_t id) {
    uint32_t id32 = (uint32_t)id;
    return dev_ioctl(s, DEV_IOC_BACKING_CLOSE, &id32);
}

/* granted(handle) → what the kernel granted at INIT: FLL_GRANTED_PASSTHROUGH | FLL_GRANTED_KILLPRIV. */
napi_value fll_js_granted(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1];
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    fll_session *s = fll_unwrap(env, argv[0]);
    if (!s) return NULL;
    return fll_int32(env, (s->passthrough ? FLL_GRANTED_PASSTHROUGH : 0) | (s->killpriv ? FLL_GRANTED_KILLPRIV : 0));
}

/* backingOpen(handle, fd) → id > 0, or -errno (EOPNOTSUPP when the connection has no passthrough). */
napi_value fll_js_backing_open(napi_env env, napi_callback_info info) {
    int64_t fd;
    fll_session *s = fll_session_and_int(env, info, "fd", 0, INT_MAX, &fd);
    if (!s) return NULL;
    return fll_int32(env, fll_backing_open(s, (int)fd));
}

/* backingClose(handle, id) → 0 or -errno. */
napi_value fll_js_backing_close(napi_env env, napi_callback_info info) {
    int64_t id;
    fll_session *s = fll_session_and_int(env, info, "backing id", 1, INT32_MAX, &id);
    if (!s) return NULL;
    return fll_int32(env, fll_backing_close(s, (int32_t)id));
}

int fll_reply_open_backing(fuse_req_t req, const struct fuse_file_info *fi, int32_t backing) {
    struct open_out o = {.fh = fi->fh, .open_flags = FOPEN_PASSTHROUGH, .backing_id = backing};
    return fuse_reply_buf(req, (const char *)&o, sizeof o);
}

static uint64_t secs(double t) {
    return t <= 0 ? 0 : t >= (double)UINT64_MAX ? UINT64_MAX : (uint64_t)t;
}

static uint32_t nsecs(double t) {
    return t <= 0 || t >= (double)UINT64_MAX ? 0 : (uint32_t)((t - (double)(uint64_t)t) * 1e9);
}

int fll_reply_create_backing(fuse_req_t req, const struct fuse_entry_param *e, const struct fuse_file_info *fi,
                             int32_t backing) {
    struct {
        struct entry_out e;
        struct open_out o;
    } out;
    memset(&out, 0, sizeof out);
    const struct stat *st = &e->attr;
    out.e.nodeid = e->ino;
    out.e.generation = e->generation;
    out.e.entry_valid = secs(e->entry_timeout);
    out.e.entry_valid_nsec = nsecs(e->entry_timeout);
    out.e.attr_valid = secs(e->attr_timeout);
    out.e.attr_valid_nsec = nsecs(e->attr_timeout);
    out.e.attr = (struct kattr){
        .ino = st->st_ino, .size = (uint64_t)st->st_size, .blocks = (uint64_t)st->st_blocks,
        .atime = (uint64_t)st->st_atim.tv_sec, .mtime = (uint64_t)st->st_mtim.tv_sec, .ctime = (uint64_t)st->st_ctim.tv_sec,
        .atimensec = (uint32_t)st->st_atim.tv_nsec, .mtimensec = (uint32_t)st->st_mtim.tv_nsec,
        .ctimensec = (uint32_t)st->st_ctim.tv_nsec, .mode = st->st_mode, .nlink = (uint32_t)st->st_nlink,
        .uid = st->st_uid, .gid = st->st_gid, .rdev = (uint32_t)st->st_rdev, .blksize = (uint32_t)st->st_blksize,
    };
    out.o = (struct open_out){.fh = fi->fh, .open_flags = FOPEN_PASSTHROUGH, .backing_id = backing};
    return fuse_reply_buf(req, (const char *)&out, sizeof out);
}
