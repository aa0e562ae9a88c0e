/* Copy-up staging and commit, each as ONE native job. Done call by call from JavaScript, a copy
 * takes some twenty pool round trips (open, copy, chown, chmod, xattrs, times, fsync, close, rename,
 * parent times), and on small files those round trips, not the syscalls, were most of the cost.
 * stageCopy runs on the thread pool, stageCopySync on the calling thread (the union's choice: copies
 * that move no data or little, and are not fsync'd); every commit runs on the calling thread.
 *
 * stage: build a copy of SRC at TMP (in the work directory): the object itself (a regular file with
 * its data when asked, copied by reflink, else copy_file_range over data extents only so holes stay
 * holes, else read/write), then owner, mode, xattrs (not the union's private ones), the origin inode,
 * and the times; fsync when asked (a file to be fsync'd is made unnamed and named TMP once complete,
 * see create_file). On failure TMP is removed.
 * commit: rename TMP over TARGET and give the parent back its times (a copy-up is not a change users
 * see in the parent). */
#include "exports.h"
#include "op.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

enum { KIND_FILE = 0, KIND_DIR = 1, KIND_SYMLINK = 2, KIND_SPECIAL = 3 };
/* STAGE_META: a metadata-only copy (overlayfs metacopy): a sparse file of the same size marked with
 * trusted.overlay.metacopy, whose data still comes from the lower file. */
/* STAGE_UNNAMED: a regular file made with O_TMPFILE in the directory DEST (on the target's
 * filesystem) and never named here: the op hands back its fd, and linkCopy names it. */
/* STAGE_SMALL: only a regular file with one link and at most o->limit bytes is copied; anything
 * else is declined (o->fd stays -1) with nothing made. Either way the source's lstat is handed back
 * in o->numbers: the caller decides by it, with no lstat of its own (stageSmallUnnamedSync). */
/* STAGE_OWN_ORIGIN: the origin recorded is the source's own inode, as the copy's lstat reads it
 * (the caller passes none), unless it is a file with other links: the copy keeps none of them, so
 * it must not keep their inode number either. */
/* STAGE_EXACT_MODE: a file made in the work directory gets exactly the mode it is made with (the
 * process umask is 0, and the directory has no default ACL), so an unnamed copy is made with its
 * final mode and needs no chmod after (unless it has set-ID or sticky bits, which a chown would
 * clear). */
enum { STAGE_DATA = 1, STAGE_FSYNC = 2, STAGE_META = 4, STAGE_UNNAMED = 8, STAGE_SMALL = 16, STAGE_OWN_ORIGIN = 32, STAGE_EXACT_MODE = 64 };

#define ORIGIN_XATTR "trusted.layerfs.origin"
#define METACOPY_XATTR "trusted.overlay.metacopy"
#define REDIRECT_XATTR "trusted.overlay.redirect"
#define IO_CHUNK (1 << 20)

/* Mirrors isPrivateXattr in src/union/inode.ts: overlay markers (but not the escaped user copies
 * trusted.overlay.overlay.*) and the union's own namespace never travel with a copy. */
static int private_xattr(const char *name) {
    if (strncmp(name, "trusted.overlay.", 16) == 0) return strncmp(name, "trusted.overlay.overlay.", 24) != 0;
    return strncmp(name, "trusted.layerfs.", 16) == 0;
}

/* A namespace the destination refuses (user.* on a symlink, or an unsupported one) is dropped, as the
 * kernel drops what it cannot copy. */
static int dropped(int e) { return e == ENOTSUP || e == EPERM; }

#define ACCESS_ACL_XATTR "system.posix_acl_access"

/* Onto the open file `fd` when there is one (a regular file), else onto the path `dst`. Sets
 * *acl when an access ACL was copied (it carries the group and other bits of the mode too). */
static int copy_xattrs(const char *src, int fd, const char *dst, int *acl) {
    ssize_t size = llistxattr(src, NULL, 0);
    if (size < 0) return errno == ENOTSUP ? 0 : errno;
    if (size == 0) return 0;
    char *names = malloc((size_t)size);
    char *value = NULL;
    size_t cap = 0;
    int err = 0;
    if (!names) return ENOMEM;
    size = llistxattr(src, names, (size_t)size);
    if (size < 0) err = errno;
    for (char *n = names; !err && n < names + size; n += strlen(n) + 1) {
        if (private_xattr(n)) continue;
        ssize_t len = lgetxattr(src, n, NULL, 0);
        if (len < 0) {
            if (errno != ENODATA) err = errno;
            continue;
        }
        if ((size_t)len > cap) {
            char *grown = realloc(value, (size_t)len);
            if (!grown) { err = ENOMEM; break; }
            value = grown;
            cap = (size_t)len;
        }
        len = lgetxattr(src, n, value, (size_t)len);
        if (len < 0) {
            if (errno != ENODATA) err = errno;
            continue;
        }
        int set = fd >= 0 ? fsetxattr(fd, n, value, (size_t)len, 0) : lsetxattr(dst, n, value, (size_t)len, 0);
        if (set < 0 && !dropped(errno)) err = errno;
        if (set == 0 && strcmp(n, ACCESS_ACL_XATTR) == 0) *acl = 1;
    }
    free(value);
    free(names);
    return err;
}

static int write_all(int fd, const char *buf, size_t len, off_t pos) {
    while (len > 0) {
        ssize_t n = pwrite(fd, buf, len, pos);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        buf += n;
        len -= (size_t)n;
        pos += n;
    }
    return 0;
}

/* [start, end) from in to out at the same offsets; *moved counts bytes. */
static int copy_range(int in, int out, off_t start, off_t end, int *use_cfr, char **buf, int64_t *moved) {
    off_t pos = start;
    while (pos < end) {
        ssize_t n;
        if (*use_cfr) {
            loff_t i = pos, o = pos;
            n = syscall(SYS_copy_file_range, in, &i, out, &o, (size_t)(end - pos), 0u);
            if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) {
                *use_cfr = 0;
                continue;
            }
        } else {
            if (!*buf && !(*buf = malloc(IO_CHUNK))) return ENOMEM;
            size_t want = (size_t)(end - pos) < IO_CHUNK ? (size_t)(end - pos) : IO_CHUNK;
            n = pread(in, *buf, want, pos);
            if (n > 0) {
                int err = write_all(out, *buf, (size_t)n, pos);
                if (err) return err;
            }
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (n == 0) break; /* the source shrank under us: copy what there was */
        pos += n;
        *moved += n;
    }
    return 0;
}

/* Set once FICLONE said the upper filesystem cannot share extents at all (ext4): not tried again. */
static volatile int no_reflink;

/* Copies SIZE bytes of IN, whose own blocks are BLOCKS (512-byte units). */
static int copy_data(int in, int out, off_t size, blkcnt_t blocks, int64_t *moved) {
    if (!no_reflink) {
        if (ioctl(out, FICLONE, in) == 0) {
            *moved = size;
            return 0;
        }
        if (errno == EOPNOTSUPP) no_reflink = 1;
    }
    int use_cfr = 1, err = 0;
    char *buf = NULL;
    /* Blocks for every byte: no holes to look for (were there some after all, the copy would only be
     * less sparse), nor a size left to set. */
    if ((off_t)blocks * 512 >= size) {
        err = copy_range(in, out, 0, size, &use_cfr, &buf, moved);
        free(buf);
        if (!err && *moved < size && ftruncate(out, size) < 0) err = errno;
        return err;
    }
    off_t off = 0;
    while (!err && off < size) {
        off_t data = lseek(in, off, SEEK_DATA), hole;
        if (data < 0 && errno == ENXIO) break; /* only holes from here on */
        if (data < 0) {
            if (errno != EINVAL) { err = errno; break; }
            data = off; /* no SEEK_DATA here: treat the rest as data */
            hole = size;
        } else {
            hole = lseek(in, data, SEEK_HOLE);
            if (hole < 0 || hole > size) hole = size;
        }
        if (data >= size) break;
        err = copy_range(in, out, data, hole, &use_cfr, &buf, moved);
        off = hole;
    }
    free(buf);
    /* Trailing holes, and a file that is all hole, need the size set explicitly. */
    if (!err && ftruncate(out, size) < 0) err = errno;
    return err;
}

/* The file a copy is written to. A copy that is fsync'd is made with O_TMPFILE and linked in only
 * once complete: fsync of a file created by name also writes out its new directory entry (ext4
 * syncs the parent of a new inode), which costs as much again, and the union does not need that
 * entry to survive a crash. Elsewhere (or where O_TMPFILE is not supported), by name. *linked tells
 * which: 0 when the file still needs linking to TMP. */
static int create_file(const char *tmp, int flags, mode_t mode, int *linked) {
    *linked = 1;
    if (flags & STAGE_UNNAMED) {
        /* Read-write: the union's opens of the copy before it is named share this description. Like
         * the O_TMPFILE copy below, it has no name to be opened by until it is complete, so it may
         * have its mode from the start (STAGE_EXACT_MODE). */
        *linked = 0;
        return open(tmp, O_TMPFILE | O_RDWR | O_CLOEXEC, (flags & STAGE_EXACT_MODE) ? mode : 0600);
    }
    if (flags & STAGE_FSYNC) {
        char dir[PATH_MAX];
        const char *slash = strrchr(tmp, '/');
        size_t len = slash ? (size_t)(slash - tmp) : 0;
        if (slash && len > 0 && len < sizeof dir) {
            memcpy(dir, tmp, len);
            dir[len] = '\0';
            int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, (flags & STAGE_EXACT_MODE) ? mode : 0600);
            if (fd >= 0) {
                *linked = 0;
                return fd;
            }
            if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) return -1;
        }
    }
    return open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
}

/* Whether the first byte of `fd` is in the page cache: cachestat says, else (less surely: see
 * first_page_cached) a read that may not wait for the disk (RWF_NOWAIT) gets it. Where the kernel
 * refuses the flag, say yes. */
static int page_cached(int fd) {
    int cached = first_page_cached(fd);
    if (cached >= 0) return cached;
    char byte;
    struct iovec iov = {&byte, 1};
    return preadv2(fd, &iov, 1, 0, RWF_NOWAIT) >= 0 || errno != EAGAIN;
}

static int make_object(op *o, const struct stat *st, int *out, int *linked) {
    const char *src = o->path, *tmp = o->dest;
    *linked = 1;
    switch (o->mode) {
    case KIND_FILE: {
        *out = create_file(tmp, o->flags, st->st_mode & 0777, linked);
        if (*out < 0) return errno;
        if (o->flags & STAGE_META) return ftruncate(*out, st->st_size) < 0 ? errno : 0;
        if (!(o->flags & STAGE_DATA) || st->st_size == 0) return 0;
        /* Completing a metacopy: the bytes come from the lower file, everything else from src. */
        const char *from = o->size > 0 ? (const char *)o->data : src;
        int in = open(from, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (in < 0) return errno;
        if (o->flags & STAGE_SMALL) o->cold = !page_cached(in);
        struct stat data_st;
        blkcnt_t blocks = st->st_blocks; /* of the bytes' own file: a metacopy's upper file has none */
        if (o->size > 0) blocks = fstat(in, &data_st) == 0 ? data_st.st_blocks : 0;
        int err = copy_data(in, *out, st->st_size, blocks, &o->ret);
        close(in);
        return err;
    }
    case KIND_DIR:
        return mkdir(tmp, 0700) < 0 ? errno : 0;
    case KIND_SYMLINK: {
        char target[PATH_MAX + 1];
        ssize_t n = readlink(src, target, PATH_MAX);
        if (n < 0) return errno;
        target[n] = '\0';
        return symlink(target, tmp) < 0 ? errno : 0;
    }
    default:
        return mknod(tmp, st->st_mode, st->st_rdev) < 0 ? errno : 0;
    }
}

/* The metadata of a copy, through its fd when it has one (a regular file), else by path. */
static int set_owner(const char *path, int fd, const struct stat *st) {
    /* The copy is the daemon's; usually root's, like most of an image, and then already right. (The
     * daemon never changes its ids: they are read once.) */
    static uid_t euid = (uid_t)-1;
    static gid_t egid = (gid_t)-1;
    if (euid == (uid_t)-1) {
        euid = geteuid();
        egid = getegid();
    }
    if (st->st_uid == euid && st->st_gid == egid) return 0;
    int r = fd >= 0 ? fchown(fd, st->st_uid, st->st_gid) : lchown(path, st->st_uid, st->st_gid);
    return r < 0 && errno != EPERM ? errno : 0;
}

static int set_mode(const char *path, int fd, const struct stat *st) {
    return (fd >= 0 ? fchmod(fd, st->st_mode & 07777) : chmod(path, st->st_mode & 07777)) < 0 ? errno : 0;
}

static int set_xattr(const char *path, int fd, const char *name, const char *value, size_t len) {
    return (fd >= 0 ? fsetxattr(fd, name, value, len, 0) : lsetxattr(path, name, value, len, 0)) < 0 ? errno : 0;
}

static int set_times(const char *path, int fd, const struct stat *st) {
    struct timespec times[2] = {st->st_atim, st->st_mtim};
    int r = fd >= 0 ? futimens(fd, times) : utimensat(AT_FDCWD, path, times, AT_SYMLINK_NOFOLLOW);
    return r < 0 ? errno : 0;
}

/* Give an O_TMPFILE file the name PATH: by its fd (needs CAP_DAC_READ_SEARCH), else through
 * /proc/self/fd (needs /proc). */
static int link_tmpfile(int fd, const char *path) {
    if (linkat(fd, "", AT_FDCWD, path, AT_EMPTY_PATH) == 0) return 0;
    if (errno != ENOENT && errno != EPERM) return errno;
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    return linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) < 0 ? errno : 0;
}

/* The caller's own change, applied to the copy before it is named (a setattr that copied the object
 * up): OWNER_KEEP where a field stays as copied; the times are UTIME_OMIT where they stay. */
#define OWNER_KEEP (-1)

/* The user's chown, on the copy: after mode and xattrs, so that the kernel clears the set-ID bits
 * and security.capability as a chown of the named file would. */
static int change_owner(const char *path, int fd, const op *o) {
    if (o->off == OWNER_KEEP && o->off2 == OWNER_KEEP) return 0;
    uid_t uid = o->off == OWNER_KEEP ? (uid_t)-1 : (uid_t)o->off;
    gid_t gid = o->off2 == OWNER_KEEP ? (gid_t)-1 : (gid_t)o->off2;
    return (fd >= 0 ? fchown(fd, uid, gid) : lchown(path, uid, gid)) < 0 ? errno : 0;
}

/* STAGE_OWN_ORIGIN: o->name, the origin, from the source's lstat. */
static int own_origin(op *o, const struct stat *st) {
    char origin[24] = "";
    if (!S_ISREG(st->st_mode) || st->st_nlink == 1) snprintf(origin, sizeof origin, "%llu", (unsigned long long)st->st_ino);
    char *copy = strdup(origin);
    if (!copy) return ENOMEM;
    free(o->name);
    o->name = copy;
    return 0;
}

static int stage_exec(op *o) {
    struct stat st;
    int out = -1, linked = 1, err, acl = 0;
    o->ret = 0;
    if (lstat(o->path, &st) < 0) return errno;
    if (o->numbers) stat_numbers(o->numbers, &st);
    if ((o->flags & STAGE_SMALL) && (!S_ISREG(st.st_mode) || st.st_nlink != 1 || st.st_size > o->limit)) return 0;
    if ((o->flags & STAGE_OWN_ORIGIN) && (err = own_origin(o, &st))) return err;
    /* The caller's mode and times replace the copied ones. */
    if (o->len >= 0) st.st_mode = (st.st_mode & S_IFMT) | (mode_t)(o->len & 07777);
    err = make_object(o, &st, &out, &linked);
    if (o->times[0].tv_nsec != UTIME_OMIT) st.st_atim = o->times[0];
    if (o->times[1].tv_nsec != UTIME_OMIT) st.st_mtim = o->times[1];
    /* Made with its mode already (STAGE_EXACT_MODE, an O_TMPFILE file: not linked yet), a file
     * without set-ID or sticky bits. */
    int has_mode = (o->flags & STAGE_EXACT_MODE) && o->mode == KIND_FILE && !linked && !(st.st_mode & 07000);
    /* Owner before mode (chown clears set-ID bits), mode before xattrs (chown also drops
     * security.capability), times last (every change before bumps them). */
    if (!err) err = set_owner(o->dest, out, &st);
    if (!err && o->mode != KIND_SYMLINK && !has_mode) err = set_mode(o->dest, out, &st);
    if (!err) err = copy_xattrs(o->path, out, o->dest, &acl);
    /* An access ACL sets the group and other bits again: a caller's chmod is made over it, as a
     * chmod of the named file changes the ACL's mask and other entries. */
    if (!err && acl && o->len >= 0) err = set_mode(o->dest, out, &st);
    if (!err) err = change_owner(o->dest, out, o);
    if (!err && o->name && o->name[0]) {
        err = set_xattr(o->dest, out, ORIGIN_XATTR, o->name, strlen(o->name));
        if (dropped(err)) {
            err = 0;
            o->name[0] = '\0'; /* none recorded, and the caller may ask (copy_dir_named) */
        }
    }
    if (!err && (o->flags & STAGE_META)) err = set_xattr(o->dest, out, METACOPY_XATTR, "", 0);
    if (!err) err = set_times(o->dest, out, &st);
    if (!err && out >= 0 && (o->flags & STAGE_FSYNC) && fsync(out) < 0) err = errno;
    if (!err && (o->flags & STAGE_UNNAMED)) {
        o->fd = out;
        return 0;
    }
    if (!err && !linked) {
        err = link_tmpfile(out, o->dest);
        linked = !err;
    }
    if (out >= 0 && close(out) < 0 && !err) err = errno;
    if (err && linked) {
        if (o->mode == KIND_DIR) rmdir(o->dest);
        else unlink(o->dest);
    }
    return err;
}

/* Give directory DIR back the times it had (`before`). */
static int restore_times(const char *dir, const struct stat *before) {
    struct timespec times[2] = {before->st_atim, before->st_mtim};
    return utimensat(AT_FDCWD, dir, times, AT_SYMLINK_NOFOLLOW) < 0 ? errno : 0;
}

static int commit_exec(op *o) {
    struct stat parent;
    if (lstat(o->name, &parent) < 0) return errno;
    if (rename(o->path, o->dest) < 0) return errno;
    return restore_times(o->name, &parent);
}

/* Names an unnamed copy TARGET (free: link(2) never replaces), gives PARENT back its times, and
 * closes the fd whatever happens. */
static int link_exec(op *o) {
    int err = link_unnamed(o->fd, o->dest, o->name);
    close(o->fd);
    return err;
}

int link_unnamed(int fd, const char *target, const char *parent) {
    struct stat before;
    int err = lstat(parent, &before) < 0 ? errno : link_tmpfile(fd, target);
    return err ? err : restore_times(parent, &before);
}

/* fill: the metadata-only copy open for writing as OUT given its data in place, as overlayfs
 * gives it: the bytes of IN (-1: none, the copy is made empty, for an open that truncates it)
 * written into it at their offsets (holes stay holes), an fsync when asked (STAGE_FSYNC), and
 * only then its metacopy and redirect marks removed: until that last step it reads from below, so
 * a crash or a full disk at any point leaves it as it was. Its inode, and so the number it shows,
 * stays (a new copy renamed over it would be a new inode). Its mtime is the time of the copy, as
 * overlayfs's is once it has written the data (an open for writing alone moves it there). */
static int fill_fds(int out, int in, int flags, int64_t *moved) {
    struct stat st, data_st;
    int err = fstat(out, &st) < 0 ? errno : !S_ISREG(st.st_mode) ? EINVAL : 0;
    if (!err && in >= 0) err = fstat(in, &data_st) < 0 ? errno : copy_data(in, out, st.st_size, data_st.st_blocks, moved);
    else if (!err && ftruncate(out, 0) < 0) err = errno;
    if (!err && (flags & STAGE_FSYNC) && fsync(out) < 0) err = errno;
    if (!err && fremovexattr(out, METACOPY_XATTR) < 0 && errno != ENODATA) err = errno;
    if (!err && fremovexattr(out, REDIRECT_XATTR) < 0 && errno != ENODATA) err = errno;
    return err;
}

/* fill_fds of the copy at PATH, with the bytes of the file at the NUL-terminated path DATA (none:
 * empty). */
static int fill_exec(op *o) {
    o->ret = 0;
    int out = open(o->path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
    if (out < 0) return errno;
    int in = o->size > 0 ? open((const char *)o->data, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
    int err = o->size > 0 && in < 0 ? errno : fill_fds(out, in, o->flags, &o->ret);
    if (in >= 0) close(in);
    if (close(out) < 0 && !err) err = errno;
    return err;
}

/* fill_fds of the copy open as o->fd (a file with no name left), with the bytes of o->fd2. */
static int fill_fd_exec(op *o) {
    o->ret = 0;
    return fill_fds(o->fd, o->fd2, o->flags, &o->ret);
}

/* fillCopy(path, dataFrom, flags) → bytes of data written: fill_exec on the pool; fillCopySync on
 * the calling thread; fillCopyFdSync(fd, dataFd, flags), fill_fd_exec on the calling thread. */
napi_value js_fill_copy(napi_env env, napi_callback_info info) {
    op *o = op_new("copyup", fill_exec, op_done_number);
    if (!o) return op_nomem(env);
    return op_run(env, info, o, "sbu", &o->path, &o->data, &o->size, &o->flags);
}

napi_value js_fill_copy_sync(napi_env env, napi_callback_info info) {
    op *o = op_new("copyup", fill_exec, op_done_number);
    if (!o) return op_nomem(env);
    return op_run_sync(env, info, o, "sbu", &o->path, &o->data, &o->size, &o->flags);
}

napi_value js_fill_copy_fd_sync(napi_env env, napi_callback_info info) {
    op *o = op_new("copyup", fill_fd_exec, op_done_number);
    if (!o) return op_nomem(env);
    return op_run_sync(env, info, o, "iiu", &o->fd, &o->fd2, &o->flags);
}

/* The op slots of the caller's change (see stage_exec). */
#define CHANGE_ARGS(o) &(o)->off, &(o)->off2, &(o)->len, &(o)->times[0], &(o)->times[1]

/* [bytes copied, fd] of an unnamed copy */
static napi_status done_unnamed(napi_env env, op *o, napi_value *out) {
    napi_value bytes, fd;
    napi_status s = napi_create_int64(env, o->ret, &bytes);
    if (s == napi_ok) s = napi_create_int32(env, o->fd, &fd);
    if (s == napi_ok) s = op_pair(env, bytes, fd, out);
    return s;
}

/* stageCopy(src, tmp, kind, flags, origin, dataFrom, uid, gid, mode, atime, mtime) → bytes of data
 * copied; dataFrom: a NUL-terminated path as bytes, empty for "src itself"; uid, gid, mode: the
 * caller's change, -1 for none; atime, mtime: the caller's, null for none. */
napi_value js_stage_copy(napi_env env, napi_callback_info info) {
    op *o = op_new("copyup", stage_exec, op_done_number);
    if (!o) return op_nomem(env);
    return op_run(env, info, o, "ssuusbllltt", &o->path, &o->dest, &o->mode, &o->flags, &o->name, &o->data, &o->size, CHANGE_ARGS(o));
}

/* The same on the calling thread, for copies without data (directories, links, metadata-only
 * copies, O_TRUNC opens): a few metadata calls, cheaper than the pool round trip. A last argument,
 * a Float64Array, receives src's lstat numbers (with STAGE_OWN_ORIGIN, the caller's only lstat);
 * stageCopyUnnamedSync takes it too. */
napi_value js_stage_copy_sync(napi_env env, napi_callback_info info) {
    op *o = op_new("copyup", stage_exec, op_done_number);
    if (!o) return op_nomem(env);
    return op_run_sync(env, info, o, "ssuusblllttf", &o->path, &o->dest, &o->mode, &o->flags, &o->name, &o->data, &o->size,
                       CHANGE_ARGS(o), &o->numbers);
}

/* commitCopy(tmp, target, parentDir), on the calling thread: a rename and a utimensat. */
napi_value js_commit_copy(napi_env env, napi_callback_info info) {
    op *o = op_new("rename", commit_exec, op_done_undefined);
    if (!o) return op_nomem(env);
    return op_run_sync(env, info, o, "sss", &o->path, &o->dest, &o->name);
}

/* stageCopyUnnamed(src, dir, flags, origin, dataFrom, uid, gid, mode, atime, mtime) → [bytes, fd]:
 * a regular file's copy made with O_TMPFILE in DIR, on the pool; and the same on the calling
 * thread. */
napi_value js_stage_copy_unnamed(napi_env env, napi_callback_info info) {
    op *o = op_new("copyup", stage_exec, done_unnamed);
    if (!o) return op_nomem(env);
    o->mode = KIND_FILE;
    return op_run(env, info, o, "ssusbllltt", &o->path, &o->dest, &o->flags, &o->name, &o->data, &o->size, CHANGE_ARGS(o));
}

napi_value js_stage_copy_unnamed_sync(napi_env env, napi_callback_info info) {
    op *o = op_new("copyup", stage_exec, done_unnamed);
    if (!o) return op_nomem(env);
    o->mode = KIND_FILE;
    return op_run_sync(env, info, o, "ssusblllttf", &o->path, &o->dest, &o->flags, &o->name, &o->data, &o->size, CHANGE_ARGS(o),
                       &o->numbers);
}

/* stageSmallUnnamedSync(src, dir, flags, maxSize, numbers, dataFrom, uid, gid, mode, atime, mtime)
 * → [bytes, fd], fd -1 when declined: stageCopyUnnamedSync for a small file with one link, its
 * origin its own inode, and src's lstat in `numbers` (STAGE_SMALL, STAGE_OWN_ORIGIN): a copy-up's
 * one lstat. */
static int stage_small_exec(op *o) {
    o->flags |= STAGE_SMALL | STAGE_UNNAMED | STAGE_OWN_ORIGIN;
    return stage_exec(o);
}

napi_value js_stage_small_unnamed_sync(napi_env env, napi_callback_info info) {
    op *o = op_new("copyup", stage_small_exec, done_unnamed);
    if (!o) return op_nomem(env);
    o->mode = KIND_FILE;
    return op_run_sync(env, info, o, "ssulFbllltt", &o->path, &o->dest, &o->flags, &o->limit, &o->numbers, &o->data,
                       &o->size, CHANGE_ARGS(o));
}

int copy_small_unnamed(const char *src, const char *dir, int exact_mode, int empty, int meta, int64_t limit, int64_t uid, int64_t gid,
                       int64_t mode, const struct timespec times[2], double *numbers, int *fd, int64_t *bytes, int *cold) {
    op o = {.path = (char *)src, .dest = (char *)dir, .fd = -1, .fd2 = -1, .mode = KIND_FILE,
            .flags = (meta ? STAGE_META : empty ? 0 : STAGE_DATA) | (exact_mode ? STAGE_EXACT_MODE : 0),
            .limit = meta ? INT64_MAX : limit, .off = uid, .off2 = gid, .len = mode, .times = {times[0], times[1]}, .numbers = numbers};
    int err = stage_small_exec(&o);
    free(o.name); /* the origin own_origin made; path and dest are the caller's */
    *fd = err ? -1 : o.fd;
    *bytes = o.ret;
    *cold = o.cold;
    return err;
}

int copy_dir_named(const char *src, const char *dir, const char *target, int64_t uid, int64_t gid, int64_t mode,
                   const struct timespec times[2], unsigned rename_flags, double *numbers, int *origin, struct stat *out) {
    static unsigned long seq;
    char tmp[PATH_MAX], parent[PATH_MAX];
    const char *slash = strrchr(target, '/');
    if (!slash || slash == target || (size_t)(slash - target) >= sizeof parent) return EINVAL;
    memcpy(parent, target, (size_t)(slash - target));
    parent[slash - target] = '\0';
    static pid_t pid; /* the daemon's own, read once (it never forks) */
    if (!pid) pid = getpid();
    if (snprintf(tmp, sizeof tmp, "%s/#lfs-%d-c%lu", dir, (int)pid, ++seq) >= (int)sizeof tmp) return ENAMETOOLONG;
    /* The parent's times, given back after the rename; and a parent not in the upper layer yet
     * (fuse-ll-cow.c marks lower directories whatever their parent) is ENOENT before any work. */
    struct stat before;
    if (lstat(parent, &before) < 0) return errno;
    op o = {.path = (char *)src, .dest = tmp, .fd = -1, .fd2 = -1, .mode = KIND_DIR, .flags = STAGE_OWN_ORIGIN,
            .off = uid, .off2 = gid, .len = mode, .times = {times[0], times[1]}, .numbers = numbers};
    int err = stage_exec(&o); /* removes tmp when it fails */
    if (origin) *origin = o.name && o.name[0];
    free(o.name);
    if (err) return err;
    if (syscall(SYS_renameat2, AT_FDCWD, tmp, AT_FDCWD, target, rename_flags) < 0) {
        err = errno;
        rmdir(tmp);
        return err;
    }
    /* Named: the copy-up happened. Its attributes are taken after the rename, which gave it a new
     * ctime; should that lstat fail, the request goes to JS, whose copy-up takes this one over
     * (copyDirSync never renames over it). */
    restore_times(parent, &before);
    return out && lstat(target, out) < 0 ? errno : 0;
}

static int copy_dir_exec(op *o) {
    int origin = 0;
    int err = copy_dir_named(o->path, o->dest, o->name, o->off, o->off2, o->len, o->times, RENAME_NOREPLACE, o->numbers, &origin, NULL);
    o->ret = origin;
    return err;
}

/* copyDirSync(src, dir, target, numbers, uid, gid, mode, atime, mtime) → whether the copy records
 * its origin: copy_dir_named for the union, on the calling thread (one call where staging and
 * naming took two), src's lstat in `numbers`. Never over a directory there (EEXIST): that is a copy
 * C named (fuse-ll-cow.c) before the union heard of it, which the union takes over (ensureUpperDir)
 * with whatever C did in it since (a rename's new times). */
napi_value js_copy_dir_sync(napi_env env, napi_callback_info info) {
    op *o = op_new("copyup", copy_dir_exec, op_done_number);
    if (!o) return op_nomem(env);
    return op_run_sync(env, info, o, "sssFllltt", &o->path, &o->dest, &o->name, &o->numbers, CHANGE_ARGS(o));
}

static int link_fd_exec(op *o) { return link_tmpfile(o->fd, o->dest); }

/* linkFd(fd, target), on the calling thread: gives the O_TMPFILE file open as fd the name target
 * (fd stays open). */
napi_value js_link_fd(napi_env env, napi_callback_info info) {
    op *o = op_new("link", link_fd_exec, op_done_undefined);
    if (!o) return op_nomem(env);
    return op_run_sync(env, info, o, "is", &o->fd, &o->dest);
}

/* linkCopy(fd, target, parentDir), on the calling thread: names an unnamed copy (and closes it). */
napi_value js_link_copy(napi_env env, napi_callback_info info) {
    op *o = op_new("link", link_exec, op_done_undefined);
    if (!o) return op_nomem(env);
    return op_run_sync(env, info, o, "iss", &o->fd, &o->dest, &o->name);
}
