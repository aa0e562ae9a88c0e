/* The low-level callbacks, run by libfuse's dispatch inside the poll callback (fuse-ll-session.c).
 * Each copies what it needs into a record and queues it; the whole batch goes to JS once the
 * kernel's queue is empty, and JS answers later (the low-level API lets a request be answered at
 * any time). Anything that points into libfuse's receive buffer (names, write data, xattr values)
 * is only valid during the callback and is therefore copied. */
#include "fuse-ll.h"

#include <errno.h>
#include <linux/fs.h> /* FS_IOC_* */
#include <stdlib.h>
#include <string.h>

/* The largest offset (or offset plus length) JS holds exactly: its numbers are doubles. Past it,
 * JS would write at the wrong place (Node's write takes an offset it cannot hold as "the current
 * position") or fail with an error of its own, so requests that reach past it are answered here,
 * as a filesystem answers what is past its biggest file: EFBIG for writes, truncates and
 * fallocate (ext4's limit is 16 TiB; none of the layers' filesystems holds a file of 8 PiB), end of
 * file for reads, ENXIO for SEEK_DATA and SEEK_HOLE. */
#define JS_OFFSET_MAX ((int64_t)9007199254740991) /* 2^53 - 1 */

static int past_js(off_t off, uint64_t len) {
    return off < 0 || (uint64_t)off > (uint64_t)JS_OFFSET_MAX || len > (uint64_t)JS_OFFSET_MAX - (uint64_t)off;
}

const char *const fll_op_names[FLL_OP_COUNT] = {
    "lookup", "forget", "getattr", "setattr", "readlink", "mknod", "mkdir", "unlink",
    "rmdir", "symlink", "rename", "link", "open", "read", "write", "flush", "release",
    "fsync", "opendir", "readdir", "readdirplus", "releasedir", "fsyncdir", "statfs",
    "setxattr", "getxattr", "listxattr", "removexattr", "access", "create", "fallocate",
    "lseek", "ioctl", "tmpfile",
};

/* A record for `req` with its caller's credentials, or NULL after answering ENOMEM. */
static fll_rec *rec(fuse_req_t req, int kind) {
    fll_rec *r = calloc(1, sizeof *r);
    if (!r) {
        fuse_reply_err(req, ENOMEM);
        return NULL;
    }
    r->kind = kind;
    r->req = req;
    const struct fuse_ctx *c = fuse_req_ctx(req);
    r->uid = c->uid;
    r->gid = c->gid;
    r->pid = (uint32_t)c->pid;
    r->umask = c->umask;
    r->kill_suidgid = ((fll_session *)fuse_req_userdata(req))->kill_suidgid;
    return r;
}

static int dup_str(fll_rec *r, char **dst, const char *src) {
    if (!(*dst = strdup(src))) {
        fuse_reply_err(r->req, ENOMEM);
        free(r->name);
        free(r);
        return 0;
    }
    return 1;
}

static void push(fuse_req_t req, fll_rec *r) { fll_push(fuse_req_userdata(req), r); }

static void with_fi(fll_rec *r, struct fuse_file_info *fi) {
    if (fi) {
        r->fh = fi->fh;
        r->has_fh = 1;
        r->flags = (uint32_t)fi->flags;
    }
}

/* A copy of the request's data (write data, an ioctl's input) in the record, size its length: 0
 * after answering ENOMEM (the record is freed then). */
static int with_data(fll_rec *r, const void *buf, size_t size) {
    if (!(r->data = malloc(size ? size : 1))) {
        fuse_reply_err(r->req, ENOMEM);
        free(r);
        return 0;
    }
    memcpy(r->data, buf, size);
    r->size = size;
    return 1;
}

/* ---- ops identified by an inode ---- */

static void ino_op(fuse_req_t req, int kind, fuse_ino_t ino, struct fuse_file_info *fi) {
    fll_rec *r = rec(req, kind);
    if (!r) return;
    r->ino = ino;
    with_fi(r, fi);
    push(req, r);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    if (fll_cow_getattr(fuse_req_userdata(req), req, ino)) return;
    ino_op(req, FLL_GETATTR, ino, fi);
}
static void op_readlink(fuse_req_t req, fuse_ino_t ino) { ino_op(req, FLL_READLINK, ino, NULL); }
/* An open C did not answer; its size has bit 1 when it is the node's first and C took that from
 * the node (fll_fast_open): JS may then hand the kernel the file's bytes; and bit 2 when C found
 * that file uncached and started reading it. */
static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    int first = 0, uncached = 0;
    fll_session *s = fuse_req_userdata(req);
    if (fll_fast_open(s, req, ino, fi, &first, &uncached)) return;
    fll_open_to_js(req, ino, fi, first, uncached, s->kill_suidgid);
}

void fll_open_to_js(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int first, int uncached, int kill_suidgid) {
    fll_rec *r = rec(req, FLL_OPEN);
    if (!r) return;
    r->kill_suidgid = kill_suidgid; /* its own: a parked open is handed on while another is dispatched */
    r->ino = ino;
    with_fi(r, fi);
    r->size = (size_t)(first | uncached << 1);
    push(req, r);
}
/* Requests whose answer JS does not decide are answered here, in C: building a JS request object
 * and calling into JS costs more than everything else a walk of a cached tree does. JS learns of
 * the ones it keeps state for (release) afterwards, as records marked `answered`. */

/* ENOSYS tells the kernel (since 5.1) that opens of directories need no request at all: it stops
 * sending opendir and releasedir, and treats every open directory as if we had answered with
 * keep_cache and cache_readdir. Listings are then kept by node (ll-bridge.ts), which is all a
 * handle would have carried. A walk of a cached tree then costs no request. */
static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    (void)ino;
    (void)fi;
    fuse_reply_err(req, ENOSYS);
}

/* flush has nothing to do (writes go straight to the upper file, close(2) comes with release), and
 * ENOSYS makes the kernel stop sending it: a close(2) then waits for no request. */
static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    (void)ino;
    (void)fi;
    fuse_reply_err(req, ENOSYS);
}

static void answered(fuse_req_t req, int kind, fuse_ino_t ino, struct fuse_file_info *fi) {
    fll_session *s = fuse_req_userdata(req);
    fll_rec *r = rec(req, kind);
    if (!r) return; /* rec() answered ENOMEM */
    r->req = NULL;
    r->ino = ino;
    with_fi(r, fi);
    fuse_reply_err(req, 0);
    fll_push(s, r);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    fll_made_release(fuse_req_userdata(req), ino, fi);
    if (fll_fast_release(fuse_req_userdata(req), req, ino, fi)) return;
    answered(req, FLL_RELEASE, ino, fi);
}
static void op_statfs(fuse_req_t req, fuse_ino_t ino) { ino_op(req, FLL_STATFS, ino, NULL); }

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
    fll_rec *r = rec(req, FLL_FSYNC);
    if (!r) return;
    r->ino = ino;
    with_fi(r, fi);
    r->datasync = datasync;
    push(req, r);
}

/* fallocate(2) on an open file: the mode (FALLOC_FL_*), the range in offset and size. */
static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length, struct fuse_file_info *fi) {
    if (length < 0 || past_js(offset, (uint64_t)length)) {
        fuse_reply_err(req, EFBIG);
        return;
    }
    fll_rec *r = rec(req, FLL_FALLOCATE);
    if (!r) return;
    r->ino = ino;
    with_fi(r, fi);
    r->mode = (uint32_t)mode;
    r->offset = offset;
    r->size = (size_t)length;
    push(req, r);
}

/* lseek with SEEK_DATA or SEEK_HOLE (the kernel answers the other whences itself). */
static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi) {
    if (past_js(off, 0)) {
        fuse_reply_err(req, ENXIO);
        return;
    }
    fll_rec *r = rec(req, FLL_LSEEK);
    if (!r) return;
    r->ino = ino;
    with_fi(r, fi);
    r->offset = off;
    r->mode = (uint32_t)whence;
    push(req, r);
}

/* ioctl: the kernel sends only restricted ones, whose argument it copies in and out by the size in
 * the command: those of file attributes (chattr and lsattr: FS_IOC_GETFLAGS and SETFLAGS,
 * FS_IOC_FSGETXATTR and FSSETXATTR) go to JS, which answers them. The input is the data (size: its
 * length), the room for the output is in offset. Any other, and any from a 32-bit caller, is
 * refused here, ENOTTY: isatty(3) asks each file it is given (TCGETS), and Python's open() asks it
 * of every file, so a program's imports sent JS one request per module read. */
static void op_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg, struct fuse_file_info *fi,
                     unsigned flags, const void *in_buf, size_t in_bufsz, size_t out_bufsz) {
    (void)arg;
    if ((flags & FUSE_IOCTL_COMPAT) ||
        (cmd != FS_IOC_GETFLAGS && cmd != FS_IOC_SETFLAGS && cmd != FS_IOC_FSGETXATTR && cmd != FS_IOC_FSSETXATTR)) {
        fuse_reply_err(req, ENOTTY);
        return;
    }
    fll_rec *r = rec(req, FLL_IOCTL);
    if (!r || !with_data(r, in_buf, in_bufsz)) return;
    r->ino = ino;
    with_fi(r, fi);
    r->mode = cmd;
    r->offset = (int64_t)out_bufsz;
    push(req, r);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
    fll_rec *r = rec(req, FLL_FSYNCDIR);
    if (!r) return;
    r->ino = ino;
    with_fi(r, fi);
    r->datasync = datasync;
    push(req, r);
}

static void sized(fuse_req_t req, int kind, fuse_ino_t ino, size_t size, off_t off,
                  struct fuse_file_info *fi) {
    fll_rec *r = rec(req, kind);
    if (!r) return;
    r->ino = ino;
    with_fi(r, fi);
    r->size = size;
    r->offset = off;
    push(req, r);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
    if (past_js(off, size)) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    sized(req, FLL_READ, ino, size, off, fi);
}
static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
    if (fll_dir_end_read(fuse_req_userdata(req), req, ino, off)) return;
    sized(req, FLL_READDIR, ino, size, off, fi);
}
static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi) {
    if (fll_dir_end_read(fuse_req_userdata(req), req, ino, off)) return;
    sized(req, FLL_READDIRPLUS, ino, size, off, fi);
}
static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
    if (fll_cow_listxattr(fuse_req_userdata(req), req, ino, size)) return;
    sized(req, FLL_LISTXATTR, ino, size, 0, NULL);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi) {
    if (past_js(off, size)) {
        fuse_reply_err(req, EFBIG);
        return;
    }
    fll_rec *r = rec(req, FLL_WRITE);
    if (!r || !with_data(r, buf, size)) return;
    r->ino = ino;
    with_fi(r, fi);
    r->offset = off;
    push(req, r);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi) {
    if ((to_set & FUSE_SET_ATTR_SIZE) && past_js(attr->st_size, 0)) {
        fuse_reply_err(req, EFBIG);
        return;
    }
    if (fll_cow_setattr(fuse_req_userdata(req), req, ino, attr, to_set, fi)) return;
    fll_rec *r = rec(req, FLL_SETATTR);
    if (!r) return;
    r->ino = ino;
    with_fi(r, fi);
    r->valid = (uint32_t)to_set;
    r->st = *attr;
    push(req, r);
}

static void op_access(fuse_req_t req, fuse_ino_t ino, int mask) {
    fll_rec *r = rec(req, FLL_ACCESS);
    if (!r) return;
    r->ino = ino;
    r->mask = (uint32_t)mask;
    push(req, r);
}

/* forget needs no answer: reply here so the kernel never waits on JS for it. */
static void forget_one(fll_session *s, const struct fuse_ctx *c, fuse_ino_t ino, uint64_t nlookup) {
    fll_dir_end_forget(s, ino);
    fll_rec *r = calloc(1, sizeof *r);
    if (!r) return; /* losing a forget only leaks a node in JS */
    r->kind = FLL_FORGET;
    r->uid = c->uid;
    r->gid = c->gid;
    r->pid = (uint32_t)c->pid;
    r->ino = ino;
    r->nlookup = nlookup;
    fll_push(s, r);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
    forget_one(fuse_req_userdata(req), fuse_req_ctx(req), ino, nlookup);
    fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets) {
    for (size_t i = 0; i < count; i++)
        forget_one(fuse_req_userdata(req), fuse_req_ctx(req), forgets[i].ino, forgets[i].nlookup);
    fuse_reply_none(req);
}

/* ---- xattrs ---- */

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                        size_t size, int flags) {
    if (fll_made_setxattr(fuse_req_userdata(req), req, ino, name, value, size, flags)) return;
    if (fll_cow_setxattr(fuse_req_userdata(req), req, ino, name, value, size, flags)) return;
    fll_rec *r = rec(req, FLL_SETXATTR);
    if (!r || !dup_str(r, &r->name, name)) return;
    r->data = malloc(size ? size : 1);
    if (!r->data) {
        free(r->name);
        free(r);
        fuse_reply_err(req, ENOMEM);
        return;
    }
    memcpy(r->data, value, size);
    r->ino = ino;
    r->size = size;
    r->flags = (uint32_t)flags;
    push(req, r);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) {
    if (fll_cow_getxattr(fuse_req_userdata(req), req, ino, name, size)) return;
    fll_rec *r = rec(req, FLL_GETXATTR);
    if (!r || !dup_str(r, &r->name, name)) return;
    r->ino = ino;
    r->size = size;
    push(req, r);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name) {
    fll_rec *r = rec(req, FLL_REMOVEXATTR);
    if (!r || !dup_str(r, &r->name, name)) return;
    r->ino = ino;
    push(req, r);
}

/* ---- ops on a directory entry ---- */

static void entry_op(fuse_req_t req, int kind, fuse_ino_t parent, const char *name, mode_t mode,
                     dev_t rdev, struct fuse_file_info *fi) {
    fll_rec *r = rec(req, kind);
    if (!r || !dup_str(r, &r->name, name)) return;
    r->parent = parent;
    r->mode = mode;
    r->rdev = rdev;
    with_fi(r, fi);
    push(req, r);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
    if (fll_cow_lookup(fuse_req_userdata(req), req, parent, name)) return;
    entry_op(req, FLL_LOOKUP, parent, name, 0, 0, NULL);
}
static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev) {
    entry_op(req, FLL_MKNOD, parent, name, mode, rdev, NULL);
}
static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode) {
    entry_op(req, FLL_MKDIR, parent, name, mode, 0, NULL);
}
static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name) {
    entry_op(req, FLL_UNLINK, parent, name, 0, 0, NULL);
}
static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name) {
    entry_op(req, FLL_RMDIR, parent, name, 0, 0, NULL);
}
static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi) {
    entry_op(req, ((fll_session *)fuse_req_userdata(req))->tmpfile ? FLL_TMPFILE : FLL_CREATE, parent, name, mode, 0, fi);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name) {
    fll_rec *r = rec(req, FLL_SYMLINK);
    if (!r || !dup_str(r, &r->name, name) || !dup_str(r, &r->name2, link)) return;
    r->parent = parent;
    push(req, r);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags) {
    if (fll_cow_rename(fuse_req_userdata(req), req, parent, name, newparent, newname, flags)) return;
    fll_rec *r = rec(req, FLL_RENAME);
    if (!r || !dup_str(r, &r->name, name) || !dup_str(r, &r->name2, newname)) return;
    r->parent = parent;
    r->newparent = newparent;
    r->flags = flags;
    push(req, r);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname) {
    if (fll_cow_link(fuse_req_userdata(req), req, ino, newparent, newname)) return;
    fll_rec *r = rec(req, FLL_LINK);
    if (!r || !dup_str(r, &r->name2, newname)) return;
    r->ino = ino;
    r->newparent = newparent;
    push(req, r);
}

/* init: the kernel's INIT, before any request. */
static void op_init(void *userdata, struct fuse_conn_info *conn) {
    fll_session *s = userdata;
    /* O_TRUNC arrives in open() flags instead of as a separate setattr. */
    if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
    if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
    if (conn->capable & FUSE_CAP_READDIRPLUS_AUTO) conn->want |= FUSE_CAP_READDIRPLUS_AUTO;
    /* Writes must reach JS as they happen (JS owns the data), so no writeback cache. */
    conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
    /* libfuse3 enables HANDLE_KILLPRIV by default, which would leave clearing setuid/setgid on a
     * write by an unprivileged user to the filesystem. Let the kernel do it (it sends a setattr). */
    conn->want &= ~(unsigned)FUSE_CAP_HANDLE_KILLPRIV;
    conn->want &= ~(unsigned)(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
    /* auto_inval_data makes the kernel re-check mtime (a getattr) before using cached pages or a
     * cached listing: a guard against files changed behind its back. Nothing is: every change comes
     * through the kernel or is announced by an invalidation (ll-bridge.ts). */
    conn->want &= ~(unsigned)FUSE_CAP_AUTO_INVAL_DATA;
    /* POSIX ACLs: the kernel enforces them (default_permissions alone checks the mode bits only,
     * so an ACL that denies would be ignored), reading and writing them as system.posix_acl_*
     * xattrs. And it sends a new object's mode unmasked, with the caller's umask beside it: the
     * union applies the umask unless the parent has a default ACL, which POSIX lets decide. */
    if (s->want_posix_acl && (conn->capable & FUSE_CAP_POSIX_ACL)) conn->want |= FUSE_CAP_POSIX_ACL;
    if (conn->capable & FUSE_CAP_DONT_MASK) conn->want |= FUSE_CAP_DONT_MASK;
    /* The kernel keeps a symlink's target in its page cache: a node's target never changes (a
     * copy-up keeps it, and a new link at that name is a new node), and the loader reads the same
     * library links at every program's start. */
    if (conn->capable & FUSE_CAP_CACHE_SYMLINKS) conn->want |= FUSE_CAP_CACHE_SYMLINKS;
    conn->max_write = s->max_write; /* libfuse clamps it to its receive buffer (1 MiB) */
    if (s->max_readahead && s->max_readahead < conn->max_readahead) conn->max_readahead = s->max_readahead;
    conn->time_gran = 1;

    fll_rec *r = calloc(1, sizeof *r);
    if (!r) return; /* mount() then never resolves; the caller's timeout reports it */
    r->kind = FLL_EV_INIT;
    fll_push(s, r);
}

const struct fuse_lowlevel_ops fll_ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .readlink = op_readlink,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .symlink = op_symlink,
    .rename = op_rename,
    .link = op_link,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .flush = op_flush,
    .release = op_release,
    .fsync = op_fsync,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .fsyncdir = op_fsyncdir,
    .statfs = op_statfs,
    .setxattr = op_setxattr,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
    .removexattr = op_removexattr,
    .access = op_access,
    .create = op_create,
    .fallocate = op_fallocate,
    .lseek = op_lseek,
    .ioctl = op_ioctl,
};
