/* Setattrs answered in C: the chmod, chown or touch of a small lower file, which copies it up
 * (`chmod -R` and `chown -R` of an image's layer are made of them). Through JS such a setattr
 * costs as much CPU again as its copy; here it is one call from request to reply. The getattrs of
 * the same marked files are answered here too (fll_cow_getattr): the lower file's lstat is all
 * JS would give; and so are their reads and lists of xattrs stored as they show (fll_cow_getxattr,
 * fll_cow_listxattr), which a chown (security.capability) and cp -a ask for. So is the getattr of
 * a directory only in the upper layer (COW_MARK_SOLE_DIR): the kernel drops a directory's
 * attributes at every create, removal and rename in it, and asks again at the next permission
 * check, one getattr per file made in a directory (cp -a, tar x, mkdir -p, atomic replaces); and
 * so are its setattrs that change only mode, owner or times, made on it by path (cow_upper_dir).
 * And the getattr of a directory copied up while mounted (COW_MARK_UPPER_DIR), which merges: its
 * upper lstat with one link.
 *
 * JS marks the nodes it may be done for (cowAllow: a lower regular file, with flush behind on and
 * no ids mapped, listed by readdirplus or looked up), with the lower file's host path and the inode
 * number JS shows for it. A setattr of such a node that changes only mode, owner or times and comes
 * with no file handle is answered here when no request read before it still waits for JS (and,
 * when it asks to clear set-ID bits, when the copy has none left). The records of copies made here
 * may wait: chmod -R sends its next setattr as soon as it has the last one's answer, often within
 * the same batch of reads (waiting for them sent every other file to JS). The copy is made as
 * Core.#stageBehind makes it (copy_small_unnamed: O_TMPFILE in the work directory, the change
 * folded in, origin and times, no flush), and the reply carries its attributes with no time to
 * live, as JS gives those of a copy not named yet. The node's mark
 * goes whatever happens. A file that turns out too big or hard-linked, or a copy that fails, goes
 * to JS as a request, which copies it up its own way (or reports the error).
 *
 * JS then gets a record in the request's place, marked answered: a setattr whose fh is the copy's
 * fd, whose size is the bytes copied, whose offset is the lower file's inode number and whose flags
 * are 1 when its data had to be read from the disk (JS then reads the next files ahead). It adopts
 * the copy as if it had made it (Core.adoptCopy: deferred, flushed and named with the others). No
 * request can come between the reply and the adoption: the record is queued first, and JS takes
 * records in order.
 *
 * With metacopy on (cowConfigure's `meta`), a setattr's copy is a metadata-only one instead, as
 * Core.copyUpNow makes one (copy_small_unnamed with `meta`: the file's size, no data, marked
 * trusted.overlay.metacopy), and it waits for no flush: it is named here at once where its
 * directory is in the upper layer, or can be copied up here with the lower ones above it, as for
 * a rename (meta_name), and JS only takes note of it (Core.adoptCopy with no fd); else JS names it
 * when it takes the record. The renames, links and setxattrs of lower files are JS's then (it
 * makes metadata-only copies for those too, where C would copy the data).
 *
 * A marked lower directory whose parent is in the upper layer by then (chmod -R and chown -R
 * change a directory before they list it) is copied up the same way, as Core.ensureUpperDir copies
 * one: under a temporary name in the work directory, with the change, its origin and times, then
 * renamed to its place, which must still be free (RENAME_NOREPLACE: anything JS did in the
 * directory since it was marked, such as a create in it, has copied it up already; the request
 * then goes to JS), and not while a record waits whose adoption may copy directories up (the copy
 * of a file whose directory is not marked as one in the upper layer: `lifts`). A parent still
 * lower goes to JS. It
 * is named at once, as JS names directories, and the reply gives its attributes the time to live
 * JS gives them. The record that follows carries flags 2 (no fd): JS updates its view of the
 * directory (Core.adoptDir). A directory once copied up (in C or by JS) is marked again, as in the
 * upper layer: its next setattrs (chown -R changes a directory after its files, whose copy-ups
 * copied it up) are made on the copy by path and answered, with no record.
 *
 * What JS keeps in step (ll-bridge.ts): before any request that may change a marked node or its name
 * (a setattr JS answers, an open for writing, xattrs, link, unlink, rename), and when it forgets
 * the node, it takes the mark away (cowDeny). And it tells C how many more copies may wait for
 * their flush (cowRoom), as Core bounds them.
 *
 * A file JS made (create, O_TMPFILE) is marked too (made), until a setxattr, removexattr or link
 * of it, or its forget: its getxattr of security.capability is answered ENODATA here (see CAPS).
 * And while the open that made it lives (until C answers its release), its setattrs that change
 * only mode, owner, times or size are made through a copy of that open's descriptor (the size
 * first, then in setattr's order),
 * and answered with its fstat and JS's time to live: tar x changes each file it writes three
 * times (owner, mode, times), cp -a twice. JS keeps nothing such a change moves (the inode number
 * a made file shows is its own), so there is no record. So is the setxattr of its access ACL
 * (made_setxattr), which cp -a makes on every file it copies, from the source's ACL or its mode,
 * and, for a file made with a name, its getattr (made_getattr: a write, above all one passed
 * through, leaves the kernel without its size and times). A set-ID bit goes to JS, which takes the
 * mark away before it answers any setattr of the node itself (madeEnd).
 *
 * A file JS opened for writing (a lower file's copy-up, an upper file reopened: touch(1) is such an
 * open, a change of its times through it, and a close) is marked the same way while that open lives
 * and the file keeps its name (JS ends the mark at an unlink or rename of it): its setattrs alone,
 * shown with the inode number JS gives it (made_shown), for a file with one link, no set-ID bit and
 * no ids mapped. Its capability, ACL and getattrs stay JS's.
 *
 * And an open for writing of a marked lower file, by root, while no file of it is open, is such a
 * copy-up's open, made here as JS would make it (fll_cow_open): the copy, passthrough to it, and
 * the writer's mark.
 *
 * A marked directory (lower, or in the upper layer) is looked up here too, by the name in its
 * parent JS gave with its mark (dir_lookup): an entry with its node id and the attributes its
 * getattr would get, and a record for JS, which counts the kernel's new reference. A lower
 * directory copied up here stays marked, as one in the upper layer, before JS has its record.
 *
 * And the setxattr of a `user.` name on a marked lower file copies it up the same way, the name
 * set on the copy (fll_cow_setxattr).
 *
 * And the rename of a marked lower file (a file's mark carries its name too) to a name missing
 * from every layer of a directory marked for its lookups is made here as JS defers one: the copy,
 * the lower directories above both names copied up, both names pending in C's lookups until JS
 * has written it (fll_cow_rename).
 *
 * And the first lookup of a small lower file in a directory JS marked for it, as a new node, from
 * node ids JS reserved, marked as JS marks a file it looks up (file_lookup). A name C knows from a
 * mark stays known after the mark goes, until JS takes it away too (unmark_src), so that no node
 * JS holds is ever looked up again as a new one.
 *
 * And a file in the upper layer that JS lists or looks up (one link, on the disk as the union
 * shows it) is marked with its own path, as `upper`: its getattrs, xattr reads and first open are
 * answered as a lower file's, its setattrs changing only mode, owner or times are made on it by
 * path (upper_file), and an open for writing by root opens it as it is (upper_open). Nothing
 * copies it (cow_copy).
 *
 * And a lower file that is not copied here, too big or with other names (a binary of the image, a
 * shared library, a file a layer holds hard links of), is marked with its path as `held`: its
 * getattrs and xattr reads are answered as a lower file's, from a path that never changes. exec(2)
 * asks for the security.capability of every program it starts, and a passed-through open's
 * mmap drops the file's atime, which the loader's fstat then asks for. Its changes and copies are
 * JS's, and so are its opens, but the opens for reading of one JS would pass through (`pass`),
 * which are passed through here (pass_open, fuse-ll-fast.c). */
#include "fuse-ll.h"
#include "names.h"
#include "op.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h> /* XATTR_LIST_MAX */
#include <stdio.h> /* RENAME_NOREPLACE */
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

/* Clear set-ID bits (FATTR_KILL_SUIDGID, killpriv v2: every chown of a file asks for it). */
#define COW_KILL (FUSE_SET_ATTR_KILL_SUID | FUSE_SET_ATTR_KILL_SGID)
/* The changes answered here; anything else (a size, a file handle, ctime) goes to JS. */
#define COW_VALID \
    (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID | FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | \
     FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW | COW_KILL)

/* What a chown and the first write of a file ask for (security_inode_need_killpriv). A file JS made
 * (create, O_TMPFILE) starts with none, and only a setxattr of it can give it one, which JS sees
 * first (madeEnd; C answers only the ACL's): until then, the answer is known without a syscall.
 * Untar, cp -a and a build make one or two such requests per file they write. A file open for
 * writing under a writer's mark is read once, at the mark (`echo x > file` sends two). */
#define CAPS "security.capability"

/* Nodes marked at most: the oldest marks go first (a walk marks every file it lists). */
#define COW_MAX 65536

/* Lower directories a rename or a metadata-only copy answered here copies up for one of its
 * directories, at most. */
#define LIFT_MAX 32

/* A marked directory's name in its parent: its lookups are answered in C (fll_cow_lookup). */
typedef struct fll_cow_name {
    struct fll_cow_name *next;
    uint64_t parent, ino;
    char name[];
} fll_cow_name;

#define COW_NAME_BUCKETS 65536

static uint32_t name_hash(uint64_t parent, const char *name) {
    uint64_t h = fll_fnv1a(parent, name);
    return (uint32_t)(h ^ (h >> 32)) & (COW_NAME_BUCKETS - 1);
}

/* The entry for `name` in the directory node `parent` in a table of names (cow_names, cow_pending;
 * NULL: none), or NULL. */
static fll_cow_name *name_entry(fll_cow_name **table, uint64_t parent, const char *name) {
    fll_cow_name *e = table ? table[name_hash(parent, name)] : NULL;
    while (e && !(e->parent == parent && strcmp(e->name, name) == 0)) e = e->next;
    return e;
}

/* The node `n` no longer answers for its name (its mark went, or another one takes it). */
static void name_drop(fll_session *s, fll_fast_node *n) {
    fll_cow_name *e = n->named;
    if (!e) return;
    n->named = NULL;
    for (fll_cow_name **at = &s->cow_names[name_hash(e->parent, e->name)]; *at; at = &(*at)->next) {
        if (*at == e) {
            *at = e->next;
            break;
        }
    }
    free(e);
}

/* `n` (node `ino`) answers for `name` in `parent`, in place of any node that did. */
static void name_set(fll_session *s, fll_fast_node *n, uint64_t ino, uint64_t parent, const char *name) {
    name_drop(s, n);
    if (!s->cow_names || !parent || !name) return;
    const fll_cow_name *had = name_entry(s->cow_names, parent, name);
    fll_fast_node *other = had ? fll_node_find(s, had->ino) : NULL;
    if (other) name_drop(s, other);
    fll_cow_name **bucket = &s->cow_names[name_hash(parent, name)];
    size_t len = strlen(name);
    fll_cow_name *e = malloc(sizeof *e + len + 1);
    if (!e) return;
    e->parent = parent;
    e->ino = ino;
    memcpy(e->name, name, len + 1);
    e->next = *bucket;
    *bucket = e;
    n->named = e;
}

static void unmark(fll_session *s, fll_fast_node *n) {
    name_drop(s, n);
    free(n->src);
    n->src = NULL;
    fll_node_drop_unused(s, n);
}

/* The mark goes, the name stays: a file whose copy was made here (a setattr's, a setxattr's, an
 * open's), or whose mark left the ring, still answers for its name in JS, which may show it as the
 * disk does not (a copy not named yet): the lookups of that name stay JS's (file_lookup) until JS
 * takes the name away too (cowDeny), at the node's forget or before it changes it. */
static void unmark_src(fll_fast_node *n) {
    free(n->src);
    n->src = NULL;
}

static int mark_node(fll_session *s, uint64_t ino, char *src, uint8_t dir, int lone, int kind, int first, int busy,
                     uint64_t parent, const char *name, uint64_t shown);

static struct timespec time_arg(const struct stat *attr, int to_set, int set, int now, int atime) {
    struct timespec t = {0, UTIME_OMIT};
    if (to_set & now) t.tv_nsec = UTIME_NOW;
    else if (to_set & set) t = atime ? attr->st_atim : attr->st_mtim;
    return t;
}

/* Record flags of an answered setattr: the copy's data came from the disk; the copy is a directory;
 * the directory's copy records its origin (the lower inode number, in the record's offset); the
 * directory was copied up for a rename answered here (fll_cow_rename), no setattr asked for it. */
enum { COW_COLD = 1, COW_DIR = 2, COW_DIR_ORIGIN = 4, COW_DIR_LIFTED = 8, COW_META = 16, COW_NAMED = 32 };
/* Record flags of an answered lookup: the node is new (file_lookup, lower_dir_lookup), its inode
 * number in the record's offset, and a directory (lower_dir_lookup), its layers in the record's
 * rdev, or a file JS copies up (held) whose opens for reading JS answers or, passed, C passes
 * through (file_lookup); else a marked directory's (dir_lookup). */
enum { COW_LOOKUP_NEW = 1, COW_LOOKUP_DIR = 2, COW_LOOKUP_HELD = 4, COW_LOOKUP_PASSED = 8 };
/* fll_fast_node.dir: a lower directory; one in the upper layer (src empty). */
/* A marked directory: a lower one (copied up at its setattr), one in the upper layer that merges
 * with a lower one (changed there), or one only in the upper layer (its getattr answered here). */
enum { COW_MARK_LOWER_DIR = 1, COW_MARK_UPPER_DIR = 2, COW_MARK_SOLE_DIR = 3 };

/* A setattr's change as copy-up.c takes it: -1 for a field left as it is; the times UTIME_OMIT
 * where they stay; empty: none of the file's bytes (an O_TRUNC open). */
typedef struct {
    int64_t uid, gid, mode;
    struct timespec times[2];
    int empty;
} cow_change;

/* A copy-up that changes nothing: the source's owner, mode and times. */
static const cow_change NO_CHANGE = {.uid = -1, .gid = -1, .mode = -1, .times = {{0, UTIME_OMIT}, {0, UTIME_OMIT}}};
/* An O_TRUNC open's: no bytes, and a new mtime (the copy's ctime is new anyway), as the open's own
 * truncation of a copy with the lower file's bytes would leave it. */
static const cow_change TRUNCATED = {.uid = -1, .gid = -1, .mode = -1, .times = {{0, UTIME_OMIT}, {0, UTIME_NOW}}, .empty = 1};

static cow_change change_of(const struct stat *attr, int to_set) {
    return (cow_change){
        .uid = to_set & FUSE_SET_ATTR_UID ? (int64_t)attr->st_uid : -1,
        .gid = to_set & FUSE_SET_ATTR_GID ? (int64_t)attr->st_gid : -1,
        .mode = to_set & FUSE_SET_ATTR_MODE ? (int64_t)(attr->st_mode & 07777) : -1,
        .times = {time_arg(attr, to_set, FUSE_SET_ATTR_ATIME, FUSE_SET_ATTR_ATIME_NOW, 1),
                  time_arg(attr, to_set, FUSE_SET_ATTR_MTIME, FUSE_SET_ATTR_MTIME_NOW, 0)},
    };
}

/* Replies with `st` as JS shows the node (its inode number; nlink 1 unless `own_links`: a copy of a
 * file has one name, a copied-up directory merges, see attrs.ts), given `timeout` seconds to live,
 * and queues `r`, the record JS takes the copy over from, when there is one. */
static void answer(fll_session *s, fuse_req_t req, fuse_ino_t ino, struct stat *st, uint64_t shown, double timeout,
                   fll_rec *r, const struct stat *attr, int to_set, int own_links) {
    st->st_ino = shown;
    if (!own_links) st->st_nlink = 1;
    s->cow_setattrs++;
    if (r) {
        r->kind = FLL_SETATTR;
        r->ino = ino;
        r->valid = (uint32_t)to_set;
        r->st = *attr;
    }
    FLL_SEND(s, req, fuse_reply_attr(req, st, timeout));
    if (r) fll_push(s, r);
}

/* A change made on a marked path in the upper layer as JS makes it: mode, owner, times, in
 * setattr's order, then its lstat in *st. 0, or the errno of the step that failed. */
static int change_path(const char *path, const cow_change *c, struct stat *st) {
    if (c->mode >= 0 && chmod(path, (mode_t)c->mode) < 0) return errno;
    if ((c->uid >= 0 || c->gid >= 0) && lchown(path, (uid_t)c->uid, (gid_t)c->gid) < 0) return errno;
    if ((c->times[0].tv_nsec != UTIME_OMIT || c->times[1].tv_nsec != UTIME_OMIT) &&
        utimensat(AT_FDCWD, path, c->times, AT_SYMLINK_NOFOLLOW) < 0)
        return errno;
    return lstat(path, st) < 0 ? errno : 0;
}

/* A marked directory in the upper layer, merging with a lower one or only there (see the top): the
 * change is made on it as JS makes it (mode, owner, times, in setattr's order), answered with its
 * attributes (a merged one's link count 1, as JS shows it), and the mark stays. No record: JS
 * keeps nothing a setattr changes. tar x changes every directory it made three times at its end. */
static void cow_upper_dir(fll_session *s, fuse_req_t req, fuse_ino_t ino, fll_fast_node *n, const cow_change *c,
                          const struct stat *attr, int to_set) {
    struct stat st;
    int err = change_path(n->src + strlen(n->src) + 1, c, &st);
    if (err) {
        s->cow_setattrs++;
        FLL_SEND(s, req, fuse_reply_err(req, err));
        return;
    }
    answer(s, req, ino, &st, n->shown, s->cow_attr_timeout, NULL, attr, to_set, n->dir == COW_MARK_SOLE_DIR);
}

/* A marked file in the upper layer (see the top): the change made on it by path, as for a directory
 * there, answered with its attributes (its own link count), and the mark stays; no record. Not while
 * JS may hold it open, nor for a file with a set-ID bit or given one (JS's handles remember those;
 * a killpriv of a file with none clears nothing), nor once it has another name. 1 when answered. */
static int upper_file(fll_session *s, fuse_req_t req, fuse_ino_t ino, fll_fast_node *n, const cow_change *c,
                      const struct stat *attr, int to_set) {
    struct stat st;
    if (n->js_open || n->made || lstat(n->src, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
        (st.st_mode & (S_ISUID | S_ISGID)) || (c->mode >= 0 && (c->mode & (S_ISUID | S_ISGID))))
        return 0;
    int err = change_path(n->src, c, &st);
    if (err) {
        s->cow_setattrs++;
        FLL_SEND(s, req, fuse_reply_err(req, err));
        return 1;
    }
    answer(s, req, ino, &st, n->shown, s->cow_attr_timeout, NULL, attr, to_set, 1);
    return 1;
}

/* The copy-up of the marked lower directory `n` (see the top), with the change `c`: named at once
 * (RENAME_NOREPLACE), its mark turned into one in the upper layer, its lstat in *st. The record JS
 * takes note from, its flags and origin filled in (the caller fills the rest and queues it); NULL,
 * and the mark gone, when it could not be made. */
static fll_rec *dir_copy(fll_session *s, fll_fast_node *n, const cow_change *c, struct stat *st) {
    /* The record first: once the copy is named, JS must hear of it. */
    fll_rec *r = calloc(1, sizeof *r);
    double src[ST_FIELDS];
    int origin = 0;
    int err = !r ? ENOMEM : copy_dir_named(n->src, s->cow_dir, n->src + strlen(n->src) + 1, c->uid, c->gid, c->mode, c->times, RENAME_NOREPLACE, src, &origin, st);
    if (err) {
        unmark(s, n);
        free(r);
        return NULL;
    }
    /* Marked at once as what it is now, a directory in the upper layer that merges ("\0dst"), as
     * JS marks it again when it takes the record (onDirCopiedUp): chmod -R looks the directory up
     * right after changing it (the kernel drops the name of a directory whose mode changed), and
     * copies the files in it up before JS has the record. */
    size_t at = strlen(n->src);
    memmove(n->src + 1, n->src + at + 1, strlen(n->src + at + 1) + 1);
    n->src[0] = '\0';
    n->dir = COW_MARK_UPPER_DIR;
    n->lone = 0;
    /* JS reads the number as a double: exact below 2^53 (else JS reads the origin itself). */
    if (origin && src[ST_INO] >= 9007199254740992.0) origin = 0;
    r->flags = COW_DIR | (origin ? COW_DIR_ORIGIN : 0);
    if (origin) r->offset = (int64_t)src[ST_INO];
    return r;
}

/* A marked lower directory's setattr (see the top): 1 when answered. */
static int cow_dir(fll_session *s, fuse_req_t req, fuse_ino_t ino, fll_fast_node *n, const cow_change *c,
                   const struct stat *attr, int to_set) {
    uint64_t shown = n->shown;
    struct stat st;
    fll_rec *r = dir_copy(s, n, c, &st);
    if (!r) return 0;
    answer(s, req, ino, &st, shown, s->cow_attr_timeout, r, attr, to_set, 0);
    return 1;
}

/* Whether adopting a copy of the marked file `n` may copy directories up (see fll_rec.lifts): its
 * directory is not marked as one in the upper layer (a directory in the upper layer is marked so
 * at its lookup, listing or mkdir, the root at the mount, and a lower one copied up, in C or by
 * JS, at once: the listing chmod -R reads after changing a directory may come from the kernel's
 * cache, its files marked while the directory was lower). A mark gone from the ring answers
 * "may": the directory's setattr then goes to JS. */
static uint8_t cow_lifts(fll_session *s, const fll_fast_node *n) {
    const fll_fast_node *p = n->parent ? fll_node_find(s, n->parent) : NULL;
    return !(p && p->src && (p->dir == COW_MARK_UPPER_DIR || p->dir == COW_MARK_SOLE_DIR));
}

/* A copy of a marked lower file made here (cow_copy), with what JS's record of it carries: its fd
 * (-1: none made, too big, hard-linked or failed), its bytes, the lower file's lstat (src), whether
 * its data came from the disk, and whether its adoption may copy directories up (cow_lifts). */
typedef struct {
    int fd, cold;
    int64_t bytes;
    uint8_t lifts;
    double src[ST_FIELDS];
} cow_copied;

/* The copy of the marked lower file `n` a copy-up here makes (copy_small_unnamed, as
 * Core.#stageBehind makes one; with `meta`, a metadata-only one, as Core.copyUpNow makes one for a
 * setattr with metacopy on), with the change `c` folded in (NULL: none), into `k`: its fd. The
 * caller takes the mark. */
static int cow_copy(fll_session *s, const fll_fast_node *n, const cow_change *c, int meta, cow_copied *k) {
    if (!c) c = &NO_CHANGE;
    *k = (cow_copied){.fd = -1};
    /* A file in the upper layer, or a held one, is copied by nobody (its callers refuse it first). */
    if (n->upper || n->held) return -1;
    /* An error leaves no fd (copy_small_unnamed gives -1). */
    copy_small_unnamed(n->src, s->cow_dir, s->cow_exact_mode, c->empty, meta, s->cow_limit, c->uid, c->gid, c->mode, c->times,
                       k->src, &k->fd, &k->bytes, &k->cold);
    k->lifts = cow_lifts(s, n);
    return k->fd;
}

/* A copy's record, adopted by JS as after a setattr answered here (Core.adoptCopy): with no has_fh,
 * its fh is the copy's fd, no file handle of the kernel's. */
static void copy_rec(fll_rec *r, const cow_copied *k) {
    r->fh = (uint64_t)k->fd;
    r->size = (size_t)k->bytes;
    r->offset = (int64_t)k->src[ST_INO];
    r->flags = k->cold ? COW_COLD : 0;
    r->lifts = k->lifts;
}

static int upper_path(fll_session *s, uint64_t ino, char *out);
static int lift_chain(fll_session *s, uint64_t ino, uint64_t *chain);
static int lift(fll_session *s, const uint64_t *chain, int depth);

/* Names the metadata-only copy `fd` of the marked file `n` at its name in its directory node
 * `parent`, as Core names such a copy at once (the directory keeps its times). A directory still
 * lower (`lifts`), and the lower ones above it, are copied up first, as for a rename answered here
 * (lift_chain, lift: JS gets their records before this one's), unless a record queued before may
 * copy directories up in JS. 1 when named; 0 when the copy is for JS to name (`lifts` still set
 * where JS must copy directories up first); -1 when naming it failed (the request then goes to
 * JS, which copies the file up its own way or says why not). `n` may have moved after. */
static int meta_name(fll_session *s, const fll_fast_node *n, uint64_t parent, cow_copied *k, int fd) {
    const fll_cow_name *e = n->named;
    char name[NAME_MAX + 1], dir[PATH_MAX], target[PATH_MAX];
    /* Taken before the lifts, whose unmarks may free names. */
    if (!e || e->parent != parent || snprintf(name, sizeof name, "%s", e->name) >= (int)sizeof name) return 0;
    if (k->lifts) {
        uint64_t chain[LIFT_MAX];
        int depth = s->queued_forgets || s->queued_lifts ? -1 : lift_chain(s, parent, chain);
        if (depth < 0 || !lift(s, chain, depth)) return 0;
        k->lifts = 0;
    }
    if (!upper_path(s, parent, dir) || snprintf(target, sizeof target, "%s/%s", dir, name) >= (int)sizeof target) return 0;
    return link_unnamed(fd, target, dir) == 0 ? 1 : -1;
}

/* A marked lower file's setattr (see the top): 1 when answered. With metacopy on (cow_meta) the
 * copy is a metadata-only one (COW_META): no data, so no flush to wait for, and no room taken from
 * the copies that wait for theirs. It is named here (COW_NAMED; JS only takes note) or, when its
 * directory is still lower, by JS as soon as it takes the record. */
static int cow_file(fll_session *s, fuse_req_t req, fuse_ino_t ino, fll_fast_node *n, const cow_change *c,
                    const struct stat *attr, int to_set) {
    int meta = s->cow_meta;
    if (!meta && s->cow_room == 0) return 0;
    cow_copied k;
    int fd = cow_copy(s, n, c, meta, &k);
    uint64_t shown = n->shown;
    struct stat st;
    fll_rec *r = fd < 0 ? NULL : calloc(1, sizeof *r);
    /* killpriv (every chown asks for it): the copy's own chown cleared setuid and setgid as the
     * kernel clears them; what JS would still clear it checks by the mode, which only a set-ID
     * bit left over leaves to it. */
    int named = -1;
    if (r && fstat(fd, &st) == 0 && !((s->kill_suidgid || (to_set & COW_KILL)) && (st.st_mode & (S_ISUID | S_ISGID)))) {
        named = meta ? meta_name(s, n, n->parent, &k, fd) : 0;
        n = fll_node_find(s, ino); /* lifted directories' copies may have moved it */
    }
    if (n) unmark_src(n);
    if (named < 0) {
        free(r);
        if (fd >= 0) close(fd);
        return 0;
    }
    copy_rec(r, &k);
    if (named) {
        close(fd);
        r->fh = 0;
        r->flags |= COW_NAMED;
    }
    if (meta) r->flags |= COW_META;
    else s->cow_room--;
    /* No time to live: the copy is not named yet (JS names it after its flush, or a metadata-only
     * one when it takes the record), or JS has not taken note of it yet. */
    answer(s, req, ino, &st, shown, 0.0, r, attr, to_set, 0);
    return 1;
}

static void made_end(fll_fast_node *n);

/* Marks `n` as open as `fh`, its setattrs made through `own` (C's own descriptor, which the mark
 * closes when it ends): a file JS made (shown 0), or one opened for writing shown with inode
 * number `shown` (named: with a name already; else a copy not named yet). See the top. */
static void made_mark(fll_fast_node *n, int own, uint64_t fh, uint64_t shown, int named) {
    made_end(n);
    n->made = 1;
    n->made_fd = own;
    n->made_fh = fh;
    n->made_shown = shown;
    n->made_named = (uint8_t)named;
    /* A writer's file with no capability (most): the getxattr of it that each write and truncate
     * by name sends is answered here while the mark lives (fll_cow_getxattr). */
    n->made_no_caps = shown && fgetxattr(own, CAPS, NULL, 0) < 0 && errno == ENODATA;
}

/* Open flags of an open for writing answered here (fll_cow_open): none of these, which ask for a
 * host descriptor of their own (files.ts, openStaged): JS's. (O_TRUNC is answered: a lower file's
 * copy gets no bytes, a file in the upper layer is truncated.) */
#define COW_OPEN_SLOW (O_APPEND | O_DIRECT | O_SYNC | O_DSYNC | O_PATH)
/* Record flags of an answered open: its data came from the disk; the reply never reached the
 * caller (interrupted), so no release will come; the file is one in the upper layer, opened as it
 * is (no copy). */
enum { COW_OPEN_COLD = 1, COW_OPEN_UNSENT = 2, COW_OPEN_UPPER = 4 };

/* Answers an open for writing of `n` passing through to `fd` (taken, whatever happens), with a
 * file handle JS reserved (cowOpenFh), and marks the file a writer's (#markWriter: its setattrs
 * made through C's own copy of `fd`, its inode number the one shown; `named`: it has its name,
 * else it is a copy not named yet, with one link and no time to live). Its opens for reading go to
 * JS from then on, as after JS's own open passing through (#replyOpen: fastDeny): answered here,
 * in the daemon's I/O mode, they would fail while this one is open. The record JS gets in the
 * request's place, marked answered (the caller adds what it knows and queues it): the open's flags
 * and file handle, `fd` (rdev), the backing id (mode); or NULL, and nothing answered, when the
 * backing file cannot be registered. */
static fll_rec *open_answer(fll_session *s, fuse_req_t req, fuse_ino_t ino, fll_fast_node *n, struct fuse_file_info *fi,
                            int fd, int named) {
    fll_rec *r = calloc(1, sizeof *r);
    int own = -1, backing = 0;
    if (r && (own = fcntl(fd, F_DUPFD_CLOEXEC, 3)) >= 0) {
        backing = fll_backing_open(s, fd);
        /* Not allowed, or a stacked upper layer (ELOOP): JS finds out, and decides for every file. */
        if (backing <= 0) {
            s->open_fhs_refused = 1;
            s->open_fh_count = 0;
        }
    }
    if (backing <= 0) {
        if (own >= 0) close(own);
        close(fd);
        free(r);
        return NULL;
    }
    uint64_t fh = s->open_fhs[--s->open_fh_count];
    n->allowed = 0;
    made_mark(n, own, fh, n->shown, named);
    s->cow_opens++;
    fi->fh = fh;
    int sent = -EBADF;
    if (s->fd_closed) fuse_reply_none(req);
    else sent = fll_reply_open_backing(req, fi, backing);
    if (sent < 0) {
        made_end(n);
        fll_node_drop_unused(s, n);
    }
    r->kind = FLL_OPEN;
    r->ino = ino;
    r->fh = fh;
    r->has_fh = 1;
    r->flags = (uint32_t)fi->flags;
    r->rdev = (uint64_t)fd;
    r->mode = (uint32_t)backing;
    r->valid = sent < 0 ? COW_OPEN_UNSENT : 0;
    return r;
}

/* An open for writing of a marked file in the upper layer (fll_cow_open's conditions): the open
 * JS's would make of it (files.ts, openEntry: the caller's flags but those that only act at a
 * create), answered as below, with no copy. Not a file with another name, a set-ID one (JS's: its
 * handles keep that), nor a metadata-only copy (its open for writing copies its bytes up: JS's).
 * O_TRUNC truncates it once it is known to be one answered here, as the open would (new mtime and
 * ctime, whatever its size), so that JS finds the others as they were (`echo > file` of files a
 * container wrote before). JS takes the open over (ll-bridge.ts, #adoptOpen:
 * Union.adoptUpperOpenSync). The mark goes whatever happens. */
static int upper_open(fll_session *s, fuse_req_t req, fuse_ino_t ino, fll_fast_node *n, struct fuse_file_info *fi) {
    int fd = open(n->src, (fi->flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC)) | O_NOFOLLOW | O_CLOEXEC);
    unmark_src(n);
    if (fd < 0) return 0;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 || (st.st_mode & (S_ISUID | S_ISGID)) ||
        fgetxattr(fd, METACOPY_XATTR, NULL, 0) >= 0 || errno != ENODATA || ((fi->flags & O_TRUNC) && ftruncate(fd, 0) < 0)) {
        close(fd);
        return 0;
    }
    fll_rec *r = open_answer(s, req, ino, n, fi, fd, 1);
    if (!r) return 0;
    r->valid |= COW_OPEN_UPPER;
    fll_push(s, r);
    return 1;
}

/* An open for writing of a marked lower file, by root, while no file of it is open: the copy-up
 * JS's open would make (copy_small_unnamed, as Core.#stageBehind makes it, with no change; for an
 * O_TRUNC open, with no bytes and a new mtime), answered passing through to it (open_answer). No
 * file of it open (no open answered here, none JS may hold: js_open): the kernel holds it in no
 * I/O mode, and JS would pass a root writer's open of a copy with one link through (the kernel
 * drops the pages earlier reads cached when such an open is answered). JS's record carries,
 * besides open_answer's, the copy's bytes (size), the lower inode number (offset) and whether the
 * data came from the disk (valid); JS adopts the copy as after a setattr answered here, and
 * records the open as its own (ll-bridge.ts, #adoptOpen). touch(1) of a lower file is such an
 * open, a setattr of its times through it (made_setattr) and a release; `echo x > file` is an
 * O_TRUNC one. So is that of a marked file in the upper layer (upper_open). 1 when answered; the
 * mark goes whatever happens, as at a setattr. */
int fll_cow_open(fll_session *s, fuse_req_t req, fuse_ino_t ino, fll_fast_node *n, struct fuse_file_info *fi) {
    int access = fi->flags & O_ACCMODE;
    if (!s->cow_dir || s->queued || s->open_fh_count == 0 || !s->passthrough || !n->src || n->dir || n->held || n->made ||
        n->opens || n->js_open || (access != O_WRONLY && access != O_RDWR) || (fi->flags & COW_OPEN_SLOW) ||
        fuse_req_ctx(req)->uid != 0)
        return 0;
    if (n->upper) return upper_open(s, req, ino, n, fi);
    if (s->cow_room == 0) return 0;
    cow_copied k;
    int fd = cow_copy(s, n, fi->flags & O_TRUNC ? &TRUNCATED : NULL, 0, &k);
    /* The mark goes (the caller drops the node if nothing else keeps it). */
    unmark_src(n);
    if (fd < 0) return 0;
    /* A set-ID file is JS's: its handles keep that, and a writer's changes clear those bits. The
     * copy has the lower file's mode (and one link: a hard-linked file is not copied here). */
    if ((mode_t)k.src[ST_MODE] & (S_ISUID | S_ISGID)) {
        close(fd);
        return 0;
    }
    fll_rec *r = open_answer(s, req, ino, n, fi, fd, 0);
    if (!r) return 0;
    s->cow_room--;
    r->size = (size_t)k.bytes;
    r->offset = (int64_t)k.src[ST_INO];
    r->valid |= k.cold ? COW_OPEN_COLD : 0;
    r->lifts = k.lifts;
    fll_push(s, r);
    return 1;
}

/* The getattr of a file JS made with a name, while the open that made it lives: its fstat, as JS
 * would give it (its own inode number, its links), with JS's time to live. A program that writes
 * a file and then stats it (the write changed the size and times the kernel held, and a write
 * that passed through never reached the daemon) sends one. Not for an O_TMPFILE one, whose
 * attributes JS gives no time to live until a link names it. 1 when answered. */
static int made_getattr(fll_session *s, fuse_req_t req, fll_fast_node *n) {
    struct stat st;
    if (fstat(n->made_fd, &st) < 0) return 0;
    s->cow_getattrs++;
    FLL_SEND(s, req, fuse_reply_attr(req, &st, s->made_attr_timeout));
    return 1;
}

/* The attributes of the marked node `n` as JS shows them (attrs.ts): the lstat of its host path (a
 * lower file's or directory's; a directory in the upper layer, its copy's) under the inode number
 * JS shows, with one link for a directory that merges (one in the upper layer that merges with a
 * lower one, a lower one in more than one layer). 0 when the path cannot be read, or a directory's
 * is no directory. */
static int mark_attrs(const fll_fast_node *n, struct stat *st) {
    const char *path = n->dir && n->dir != COW_MARK_LOWER_DIR ? n->src + strlen(n->src) + 1 : n->src;
    if (lstat(path, st) < 0 || (n->dir && !S_ISDIR(st->st_mode))) return 0;
    st->st_ino = n->shown;
    if (n->dir == COW_MARK_UPPER_DIR || (n->dir == COW_MARK_LOWER_DIR && !n->lone)) st->st_nlink = 1;
    return 1;
}

/* Else the getattr of a marked lower file: its lstat, as attrs.ts shows a lower file's (the inode
 * number JS shows, the rest as the layer has it), given JS's time to live. The mark stays: reading
 * changes nothing. A file handle changes nothing: JS's handles on a lower file are that file. */
int fll_cow_getattr(fll_session *s, fuse_req_t req, fuse_ino_t ino) {
    fll_fast_node *n = fll_node_find(s, ino);
    if (n && n->made && n->made_named && !n->made_shown) return made_getattr(s, req, n);
    if (!s->cow_dir || !n || !n->src) return 0;
    /* A directory in the upper layer shows its own lstat too, under the inode number JS shows: its
     * link count as well when it is only there, 1 when it merges with a lower one (a rename in it
     * moves its attributes, and the next permission check in it asks: the rename workload's
     * directories). Even with requests still queued for JS: none of them has changed anything
     * yet, the host path included (a rename that moves a directory drops its mark before JS makes
     * it; a merged one is not renamed at all), so the answer is the state before them, which the
     * kernel may be given while it has not had their replies. A lower directory shows its topmost
     * layer's lstat, 1 link when it merges (attrs.ts), as a lower file does: not while requests
     * wait for JS, any of which could copy it up (a create in it) or remove it. The kernel asks for
     * a directory's attributes after every listing of it (its atime): chmod -R of a tree walked
     * before, find -ls, ls -lR. */
    if ((!n->dir || n->dir == COW_MARK_LOWER_DIR) && s->queued) return 0;
    struct stat st;
    if (!mark_attrs(n, &st)) return 0;
    s->cow_getattrs++;
    FLL_SEND(s, req, fuse_reply_attr(req, &st, s->cow_attr_timeout));
    return 1;
}

/* The access ACL, which cp -a sets on every file it makes (made_setxattr). */
#define ACL_ACCESS "system.posix_acl_access"

/* The lookup of a name in a directory JS marked with its host paths in every layer that could hold
 * a name in it (probeAllow: the upper layer's, made or not, and each contributing lower one's),
 * when the name is missing from all of them: then no layer holds it, whatever whiteouts or opaque
 * marks say, and JS would find it missing too, so the absence is answered here as JS answers it (a
 * negative entry living JS's negative timeout, or ENOENT). Every file made through the mount is
 * looked up first (tar x, cp -a, a build writing its objects), and compilers and module loaders
 * probe many names that are not there. A name that is there anywhere (a whiteout included), or any
 * other error, goes to JS. JS takes the mark away before anything may give the directory a name
 * that is not on the disk yet (a rename of a lower file into it, which may be written after its
 * copy's flush) and before anything moves it or takes its name. Read-only, as the getattr:
 * answered even with requests queued for JS, which have changed nothing yet. */
/* The lookup of a marked directory by its name (name_set): its attributes as fll_cow_getattr gives
 * them, with JS's time to live, under its node id, and a record for JS, which counts the kernel's
 * new reference (ll-bridge.ts, #lookedUp). Not while a request waits for JS (it could remove or
 * rename the directory), nor while a forget does (JS may drop the node at it: the reference
 * counted after it would name a node JS no longer has). The kernel drops the name of a directory
 * whose mode changes and looks it up again at once: chmod -R, one per directory. 1 when
 * answered. */
static int dir_lookup(fll_session *s, fuse_req_t req, fuse_ino_t parent, const char *name) {
    if (!s->cow_names || s->queued || s->queued_forgets) return 0;
    const fll_cow_name *e = name_entry(s->cow_names, parent, name);
    fll_fast_node *n = e ? fll_node_find(s, e->ino) : NULL;
    if (!n || !n->src || !n->dir) return 0;
    fll_rec *r = calloc(1, sizeof *r);
    struct fuse_entry_param out;
    memset(&out, 0, sizeof out);
    if (!r || !mark_attrs(n, &out.attr)) {
        free(r);
        return 0;
    }
    out.ino = e->ino;
    out.attr_timeout = s->cow_attr_timeout;
    out.entry_timeout = s->cow_entry_timeout;
    s->cow_dir_lookups++;
    /* Counted whether or not the reply arrives, as JS counts its own entry replies. */
    r->kind = FLL_LOOKUP;
    r->parent = parent;
    r->ino = e->ino;
    fll_push(s, r);
    FLL_SEND(s, req, fuse_reply_entry(req, &out));
    return 1;
}

/* A name a rename answered here gave a directory (by node) or took from it before the disk shows
 * that: JS writes the rename after its copy's flush, and says so (pendingDrop). Until then the name
 * is neither missing nor the lower file, whatever the layers hold. */
static int pending_has(const fll_session *s, uint64_t parent, const char *name) {
    return name_entry(s->cow_pending, parent, name) != NULL;
}

static int pending_add(fll_session *s, uint64_t parent, const char *name) {
    size_t len = strlen(name);
    fll_cow_name *e = malloc(sizeof *e + len + 1);
    if (!e) return 0;
    /* A lookup's finding that the name was missing is void from now on: pending, the name is not
     * missing, and once JS has written what gave it the name and dropped it (with no request, so
     * js_epoch stays), the disk holds it (found_missing must not answer for it then). */
    for (uint32_t i = 0; i < FLL_MISSING; i++) {
        struct fll_missing *m = &s->missing[i];
        if (m->parent == parent && strcmp(m->name, name) == 0) m->parent = 0;
    }
    e->parent = parent;
    e->ino = 0;
    memcpy(e->name, name, len + 1);
    fll_cow_name **bucket = &s->cow_pending[name_hash(parent, name)];
    e->next = *bucket;
    *bucket = e;
    return 1;
}

/* One of the name's entries goes (a name renamed to twice before either was written has two). */
static void pending_drop(fll_session *s, uint64_t parent, const char *name) {
    for (fll_cow_name **at = s->cow_pending ? &s->cow_pending[name_hash(parent, name)] : NULL; at && *at; at = &(*at)->next) {
        if ((*at)->parent == parent && strcmp((*at)->name, name) == 0) {
            fll_cow_name *e = *at;
            *at = e->next;
            free(e);
            return;
        }
    }
}

/* A rename answered here, written by JS after its copy's flush: both its names are pending until
 * then (JS drops each, pendingDrop), the new one as missing_in says above, and the old one, which
 * the disk shows as the lower file until the whiteout is written (file_lookup). Both, or neither
 * (out of memory). */
static int pending_pair(fll_session *s, uint64_t parent, const char *name, uint64_t newparent, const char *newname) {
    if (!pending_add(s, newparent, newname)) return 0;
    if (pending_add(s, parent, name)) return 1;
    pending_drop(s, newparent, newname);
    return 0;
}

/* Whether one of the last lookups answered here found `name` missing from the directory node
 * `parent` and nothing since could have given it one (see missing_in). */
static int found_missing(const fll_session *s, fuse_ino_t parent, const char *name) {
    for (uint32_t i = 0; i < FLL_MISSING; i++) {
        const struct fll_missing *m = &s->missing[i];
        if (m->parent == parent && m->epoch == s->js_epoch && strcmp(m->name, name) == 0) return 1;
    }
    return 0;
}

/* holder: no layer holds the name; one could not be asked (an error but ENOENT, a path too long). */
enum { HOLDER_NONE = -1, HOLDER_UNKNOWN = -2 };

/* The first of the host paths of the directory node `n` (marked for its lookups: probe) that holds
 * `name`, by its place in them (0: the upper layer's), its path in `path` (PATH_MAX) and its lstat
 * in *st; or HOLDER_NONE, or HOLDER_UNKNOWN. */
static int holder(fll_session *s, const fll_fast_node *n, const char *name, char *path, struct stat *st) {
    int depth = 0;
    for (const char *dir = n->probe; *dir; dir += strlen(dir) + 1, depth++) {
        int there = fll_probe_name(s, dir, depth, name, path, st);
        if (there < 0) return HOLDER_UNKNOWN;
        if (there) return depth;
    }
    return HOLDER_NONE;
}

/* Whether `name` is missing from every layer of the directory node `parent`, as JS marked it for
 * its lookups (probeAllow), and no rename answered here gave it that name yet unwritten. With
 * `recent`, a name one of the last lookups answered here found missing is taken as missing without
 * the lstats, when nothing since could have given it one: the kernel looks a rename's new name up
 * under the lock of its directory, which it holds until the rename's reply (so no create, link or
 * rename into it comes between), JS has had no request or forget since (it may have made a name
 * at one; the records of what C answered only take its note, and name nothing that was missing: a
 * directory copied up was in a lower layer), and a rename answered here since made it pending. */
static int missing_in(fll_session *s, fuse_ino_t parent, const char *name, int recent) {
    const fll_fast_node *n = fll_node_find(s, parent);
    if (!n || !n->probe || pending_has(s, parent, name)) return 0;
    if (recent && found_missing(s, parent, name)) return 1;
    char path[PATH_MAX];
    struct stat st;
    return holder(s, n, name, path, &st) == HOLDER_NONE;
}

/* Whether a request queued for JS (read before this lookup, not handed to JS yet) names the directory
 * node `parent` (as its node, directory or new directory), other than the lookup of another name in
 * it: JS answers it first, from the state before, and it could give JS a node for `name` there (a
 * listing) before it takes the record of the node C gives it. The lookup of another name makes a
 * node for that name alone (the kernel looks one name up at a time, and any request about a file
 * comes after its lookup's reply). */
static int queue_touches(const fll_session *s, uint64_t parent, const char *name) {
    for (const fll_rec *r = s->head; r; r = r->next) {
        if (!r->req || !(r->ino == parent || r->parent == parent || r->newparent == parent)) continue;
        if (r->kind != FLL_LOOKUP || r->parent != parent || !r->name || strcmp(r->name, name) == 0) return 1;
    }
    return 0;
}

/* Whether the first lookup of `name` in the directory node `p` (`parent`) may give it a new node
 * here (file_lookup, lower_dir_lookup): JS marked the directory for it (positiveAllow), no forget
 * waits for JS (it could drop a node of the directory's, or of a name not written yet), JS has ids
 * left to give, nor a request about the directory but the lookup of another name waits
 * (queue_touches); no node JS holds answers for the name unless C knows it by that name (in
 * cow_names: then the lookup is JS's, which gives that node); not a `.wh.` name. */
static int may_name_new(const fll_session *s, const fll_fast_node *p, fuse_ino_t parent, const char *name) {
    return p->positive && !s->queued_forgets && s->ids_next < s->ids_end && strncmp(name, ".wh.", 4) != 0 &&
           !name_entry(s->cow_names, parent, name) && !(s->queued && queue_touches(s, parent, name));
}

/* Whether a layer above `depth` of the directory node `p`'s host paths holds a `.wh.` file for
 * `name` (the union's walk looks for one in every layer but the last, resolver.ts), or could not
 * be asked. */
static int marked_above(fll_session *s, const fll_fast_node *p, int depth, const char *name) {
    /* (A name of the kernel's has at most NAME_MAX bytes; its marker may be too long to exist.) */
    char marker[NAME_MAX + 5], marker_path[PATH_MAX];
    struct stat ms;
    snprintf(marker, sizeof marker, ".wh.%s", name);
    const char *above = p->probe;
    for (int i = 0; i < depth; i++, above += strlen(above) + 1)
        if (fll_probe_name(s, above, i, marker, marker_path, &ms) != 0) return 1;
    return 0;
}

/* Gives the new node `ino` (the next of the ids JS reserved) the name `name` in `parent` for JS: a
 * record of the lookup answered here, with the node's inode number (offset), where the name was
 * found in the directory's host paths (size), and for a directory (COW_LOOKUP_DIR in `flags`) the
 * host paths it merges, a bit each (rdev); then the reply. */
static void answer_new(fll_session *s, fuse_req_t req, fll_rec *r, fuse_ino_t parent, uint64_t ino, int depth,
                       const struct stat *st, uint32_t flags, uint64_t layers) {
    s->ids_next++;
    struct fuse_entry_param out;
    memset(&out, 0, sizeof out);
    out.ino = ino;
    out.attr = *st;
    out.attr_timeout = s->cow_attr_timeout;
    out.entry_timeout = s->cow_entry_timeout;
    r->kind = FLL_LOOKUP;
    r->parent = parent;
    r->ino = ino;
    r->offset = (int64_t)st->st_ino;
    r->flags = COW_LOOKUP_NEW | flags;
    r->size = (size_t)depth; /* where JS finds it too, without a walk (Union.learnLowerSync) */
    r->rdev = layers;
    fll_push(s, r);
    FLL_SEND(s, req, fuse_reply_entry(req, &out));
}

/*
 * The first lookup of a lower file, answered as a new node, with an id JS reserved for it, marked
 * as JS marks a lower file it looks up (cowAllow: its name; a small one, which C copies up, its
 * first open too; a bigger one, held, its getattrs and xattr reads, and its opens for reading
 * passed through from the size OpenFiles.passesLower says), and a record from which JS
 * makes the node (ll-bridge.ts, #lookedUpNew). A build's stats of its sources, a module loader's of
 * the files it finds, the lookup of each file `mv` renames, a program's and its libraries'.
 *
 * The caller found the name first in the layer at `depth` of the directory node `p` (holder: its
 * host path `path`, its lstat *st), not pending. Answered only when JS would show the name as the
 * disk holds it (may_name_new). JS takes the directory's mark away for good before it holds a node
 * for such a file that C does not know by name, or shows a name there otherwise than the disk does
 * (a copy of its own not named yet: ll-bridge.ts, #taint). The name must be missing from the upper
 * layer (depth 0) and found in a lower one as a regular file with one link (JS gives the names of
 * a file with more no attributes to keep while another passes through, ll-bridge.ts, #attrTimeout),
 * with no `.wh.` file for it in the layers above (marked_above; the probe paths stop at the first
 * opaque directory). Anything else goes to JS. 1 when answered.
 */
static int file_lookup(fll_session *s, fuse_req_t req, const fll_fast_node *p, fuse_ino_t parent, const char *name,
                       int depth, const char *path, const struct stat *st) {
    if (depth == 0 || !S_ISREG(st->st_mode) || st->st_nlink != 1 || (double)st->st_ino >= 9007199254740992.0 ||
        !may_name_new(s, p, parent, name) || marked_above(s, p, depth, name))
        return 0;
    /* (JS's Core.copiesBehind, OpenFiles.passesLower.) */
    int copied = st->st_size <= s->cow_limit;
    int passed = !copied && s->cow_pass_min > 0 && s->passthrough && st->st_size >= s->cow_pass_min && !(st->st_mode & 06000);
    int kind = copied ? COW_FILE_LOWER : passed ? COW_FILE_PASSED : COW_FILE_HELD;
    uint64_t ino = s->ids_next;
    fll_rec *r = calloc(1, sizeof *r);
    char *src = strdup(path);
    if (!r || !src || !(r->name = strdup(name))) {
        if (r) free(r->name);
        free(r);
        free(src);
        return 0;
    }
    /* (p may move: mark_node adds a node.) */
    if (!mark_node(s, ino, src, 0, 0, kind, copied, 0, parent, name, (uint64_t)st->st_ino)) {
        free(r->name);
        free(r);
        return 0;
    }
    s->cow_file_lookups++;
    answer_new(s, req, r, parent, ino, depth, st, copied ? 0 : passed ? COW_LOOKUP_PASSED : COW_LOOKUP_HELD, 0);
    return 1;
}

/* The lower directory host paths a directory's node may merge: as many as the bits of a number JS
 * reads exactly. */
#define DIR_LAYERS_MAX 53

/* Whether the directory at `path` is opaque, as the union reads it (whiteout.ts, hasOpaqueXattr and
 * the `.wh..wh..opq` marker): 1, 0, or -1 when it could not be asked. */
static int opaque_dir(const char *path) {
    static const char *const names[] = {"trusted.overlay.opaque", "user.overlay.opaque"};
    char value[64];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        ssize_t len = lgetxattr(path, names[i], value, sizeof value);
        if (len >= 1 && value[0] == 'y') return 1;
        /* Absent, no xattrs here, refused on this kind of file; a value longer than this is JS's to
         * read (ERANGE, like any other error). */
        if (len < 0 && errno != ENODATA && errno != ENOTSUP && errno != EPERM && errno != EACCES) return -1;
    }
    char marker[PATH_MAX];
    struct stat st;
    int len = snprintf(marker, sizeof marker, "%s/.wh..wh..opq", path);
    if (len < 0 || len >= (int)sizeof marker) return 0; /* a marker too long to exist */
    if (lstat(marker, &st) == 0) return 1;
    return errno == ENOENT || errno == ENAMETOOLONG ? 0 : -1;
}

/* The host paths the lower directory `name`, found first at `depth` of the directory node `p`'s
 * (its host path `path`), merges, as the union's walk merges them (resolver.ts, #walk): that one,
 * then each below where the name is a directory too, past those without it that hold no `.wh.`
 * marker for it, until one holds anything else or a marker, or the last merged one is opaque. A
 * bit each, by its place in p's host paths; 0 when one could not be asked, or they are too many. */
static uint64_t dir_layers(fll_session *s, const fll_fast_node *p, const char *name, int depth, const char *path) {
    const char *dirs[DIR_LAYERS_MAX];
    int count = 0;
    for (const char *dir = p->probe; *dir; dir += strlen(dir) + 1) {
        if (count == DIR_LAYERS_MAX) return 0;
        dirs[count++] = dir;
    }
    uint64_t layers = (uint64_t)1 << depth;
    char merged[PATH_MAX], probe[PATH_MAX], marker[NAME_MAX + 5];
    snprintf(merged, sizeof merged, "%s", path);
    snprintf(marker, sizeof marker, ".wh.%s", name);
    for (int i = depth + 1; i < count; i++) {
        int opaque = opaque_dir(merged);
        if (opaque < 0) return 0;
        if (opaque) break;
        struct stat st;
        int there = fll_probe_name(s, dirs[i], i, name, probe, &st);
        if (there < 0) return 0;
        if (!there) {
            if (i == count - 1) break;
            int hidden = fll_probe_name(s, dirs[i], i, marker, probe, &st);
            if (hidden < 0) return 0;
            if (hidden) break;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) break; /* a whiteout or a non-directory ends the merge */
        layers |= (uint64_t)1 << i;
        memcpy(merged, probe, sizeof merged);
    }
    return layers;
}

/*
 * The first lookup of a lower directory, answered as a new node, with an id JS reserved for it,
 * marked as JS marks a lower directory it looks up (cowAllow, for its getattrs, its setattrs'
 * copy-up, its later lookups by name), and a record from which JS makes the node and marks it for
 * the lookups in it (ll-bridge.ts, #lookedUpNew: its host paths are JS's to give, which knows of
 * renames into it not written yet). `mv` of files in directories nothing looked up before, a
 * build's or a loader's walk down to its files, `stat` of a deep path.
 *
 * As file_lookup answers a file (may_name_new, no `.wh.` file for it above), for a directory found
 * first in a lower layer, whose layers could all be asked (dir_layers). Its attributes are its
 * topmost layer's lstat, with one link when it merges more than one (attrs.ts). 1 when answered.
 */
static int lower_dir_lookup(fll_session *s, fuse_req_t req, const fll_fast_node *p, fuse_ino_t parent, const char *name,
                            int depth, const char *path, const struct stat *st) {
    if (depth == 0 || !S_ISDIR(st->st_mode) || (double)st->st_ino >= 9007199254740992.0 || !may_name_new(s, p, parent, name) ||
        marked_above(s, p, depth, name))
        return 0;
    uint64_t layers = dir_layers(s, p, name, depth, path);
    if (!layers) return 0;
    /* Its copy's place in the upper layer: the directory's host path there (the first). */
    size_t src_len = strlen(path), dst_len = strlen(p->probe) + 1 + strlen(name);
    char *src = malloc(src_len + 1 + dst_len + 1);
    fll_rec *r = calloc(1, sizeof *r);
    if (!src || !r || !(r->name = strdup(name))) {
        free(src);
        if (r) free(r->name);
        free(r);
        return 0;
    }
    memcpy(src, path, src_len + 1);
    sprintf(src + src_len + 1, "%s/%s", p->probe, name);
    struct stat shown = *st;
    int lone = (layers & (layers - 1)) == 0;
    if (!lone) shown.st_nlink = 1;
    /* (p may move: mark_node adds a node.) */
    uint64_t ino = s->ids_next;
    if (!mark_node(s, ino, src, COW_MARK_LOWER_DIR, lone, COW_FILE_LOWER, 0, 0, parent, name, (uint64_t)st->st_ino)) {
        free(r->name);
        free(r);
        return 0;
    }
    s->cow_dir_first_lookups++;
    answer_new(s, req, r, parent, ino, depth, &shown, COW_LOOKUP_DIR, layers);
    /* JS marks it for the lookups in it from the record: the batch ends here, so that the next
     * lookup, in it most often, finds it marked. */
    s->deliver_now = 1;
    return 1;
}

int fll_cow_lookup(fll_session *s, fuse_req_t req, fuse_ino_t parent, const char *name) {
    if (!s->cow_dir) return 0;
    if (dir_lookup(s, req, parent, name)) return 1;
    /* One walk of the directory's layers for both answers: missing, or a lower file. */
    const fll_fast_node *n = fll_node_find(s, parent);
    if (!n || !n->probe || pending_has(s, parent, name)) return 0;
    char path[PATH_MAX];
    struct stat st;
    int depth = holder(s, n, name, path, &st);
    if (depth != HOLDER_NONE)
        return depth > 0 && (S_ISDIR(st.st_mode) ? lower_dir_lookup(s, req, n, parent, name, depth, path, &st)
                                                 : file_lookup(s, req, n, parent, name, depth, path, &st));
    s->cow_lookups++;
    size_t len = strlen(name);
    struct fll_missing *m = &s->missing[s->missing_next];
    if (len < sizeof m->name) {
        memcpy(m->name, name, len + 1);
        m->parent = parent;
        m->epoch = s->js_epoch;
        s->missing_next = (s->missing_next + 1) % FLL_MISSING;
    }
    if (s->cow_negative_timeout > 0) {
        struct fuse_entry_param e;
        memset(&e, 0, sizeof e);
        e.attr_timeout = s->cow_attr_timeout;
        e.entry_timeout = s->cow_negative_timeout;
        FLL_SEND(s, req, fuse_reply_entry(req, &e));
    } else {
        FLL_SEND(s, req, fuse_reply_err(req, ENOENT));
    }
    return 1;
}

/* The marked lower directories from the directory node `ino` up to the first one marked as in the
 * upper layer, into chain (LIFT_MAX), `ino` first: their count, or -1 when a mark on the way is
 * gone or there are more. */
static int lift_chain(fll_session *s, uint64_t ino, uint64_t *chain) {
    int depth = 0;
    fll_fast_node *n = fll_node_find(s, ino);
    for (; n && n->src && n->dir == COW_MARK_LOWER_DIR; n = n->parent ? fll_node_find(s, n->parent) : NULL) {
        if (depth == LIFT_MAX) return -1;
        chain[depth++] = n->ino;
    }
    return n && n->src && (n->dir == COW_MARK_UPPER_DIR || n->dir == COW_MARK_SOLE_DIR) ? depth : -1;
}

/* Copies the lower directories of a lift_chain up, top down (those still lower), each as a
 * setattr's copy of it (dir_copy, with no change): JS gets each one's record, with COW_DIR_LIFTED, and takes note as
 * after that setattr. 0 when a copy fails (the copies made stay: they are named, and JS has their
 * records); the rename then goes to JS, which copies the rest. */
static int lift(fll_session *s, const uint64_t *chain, int depth) {
    while (depth > 0) {
        /* Found again each time: a failed copy's unmark may drop a node, which moves others. */
        uint64_t dir = chain[--depth];
        fll_fast_node *n = fll_node_find(s, dir);
        /* Copied up already: the other directory's chain shares this part. */
        if (n && n->src && (n->dir == COW_MARK_UPPER_DIR || n->dir == COW_MARK_SOLE_DIR)) continue;
        struct stat st;
        fll_rec *r = n && n->src && n->dir == COW_MARK_LOWER_DIR ? dir_copy(s, n, &NO_CHANGE, &st) : NULL;
        if (!r) return 0;
        r->kind = FLL_SETATTR;
        r->ino = dir;
        r->flags |= COW_DIR_LIFTED;
        fll_push(s, r);
    }
    return 1;
}

/* The host path of the directory node `ino` in the upper layer ("\0dst", marked as one there, by
 * now), copied to `out` (PATH_MAX): 0 when it no longer is, or does not fit. */
static int upper_path(fll_session *s, uint64_t ino, char *out) {
    const fll_fast_node *n = fll_node_find(s, ino);
    if (!n || !n->src || (n->dir != COW_MARK_UPPER_DIR && n->dir != COW_MARK_SOLE_DIR)) return 0;
    size_t len = strlen(n->src + 1);
    if (len >= PATH_MAX) return 0;
    memcpy(out, n->src + 1, len + 1);
    return 1;
}

/* Whether a request queued for JS (read before the one being answered, not handed to JS yet) names
 * one of the nodes `ids` (as its node, directory or new directory): JS will answer it before it
 * takes the record of what C answers now, from the state before it. */
static int queue_names(const fll_session *s, const uint64_t *ids, int count) {
    for (const fll_rec *r = s->head; r; r = r->next) {
        if (!r->req) continue;
        for (int i = 0; i < count; i++)
            if (r->ino == ids[i] || r->parent == ids[i] || r->newparent == ids[i]) return 1;
    }
    return 0;
}

/* A rename or link of a marked lower file answered here (move_copy): the nodes it changes (the
 * file, both directories, and the lower directories above each that it copies up, lift_chain),
 * which move_lift copies; and the file's copy (cow_copy). */
typedef struct {
    uint64_t ids[2 * LIFT_MAX + 3];
    int from_lifts, to_lifts;
    cow_copied copy;
} cow_move;

/* 0 when it cannot be answered here: a chain of lower directories too long or not marked, or a
 * request waiting for JS that names one of those nodes (JS answers it first, from the state before). */
static int move_chains(fll_session *s, uint64_t ino, uint64_t parent, uint64_t newparent, cow_move *m) {
    m->from_lifts = lift_chain(s, parent, m->ids + 1);
    m->to_lifts = newparent == parent ? 0 : lift_chain(s, newparent, m->ids + 1 + (m->from_lifts > 0 ? m->from_lifts : 0));
    m->ids[0] = ino;
    if (m->from_lifts < 0 || m->to_lifts < 0) return 0;
    int count = 1 + m->from_lifts + m->to_lifts;
    if (m->from_lifts == 0) m->ids[count++] = parent;
    if (newparent != parent && m->to_lifts == 0) m->ids[count++] = newparent;
    return !(s->queued && queue_names(s, m->ids, count));
}

/* Copies up the lower directories of move_chains, above the file's directory, then above the other. */
static int move_lift(fll_session *s, const cow_move *m) {
    return lift(s, m->ids + 1, m->from_lifts) && lift(s, m->ids + 1 + m->from_lifts, m->to_lifts);
}

/* The start of a rename or link of the marked file `n` (node `ino`) from the directory node
 * `parent` to `newname` in `newparent`: a lower file no open holds (JS's or C's), the new name
 * missing from every layer there (missing_in), the nodes it changes free of requests waiting for
 * JS (move_chains), and the file copied into m (cow_copy). 0 when it cannot be answered here. */
static int move_copy(fll_session *s, const fll_fast_node *n, uint64_t ino, uint64_t parent, uint64_t newparent,
                     const char *newname, cow_move *m) {
    if (!n || !n->src || n->dir || n->upper || n->held || n->made || n->opens || n->js_open || !missing_in(s, newparent, newname, 1) ||
        !move_chains(s, ino, parent, newparent, m))
        return 0;
    return cow_copy(s, n, NULL, 0, &m->copy) >= 0;
}

/* The copy a rename or link answered here carries to JS: its fd (fh), its bytes (size), the lower
 * inode number (offset), and whether its data came from the disk (valid). */
static void move_rec(fll_rec *r, const cow_move *m) {
    r->fh = (uint64_t)m->copy.fd;
    r->size = (size_t)m->copy.bytes;
    r->offset = (int64_t)m->copy.src[ST_INO];
    r->valid = m->copy.cold ? COW_COLD : 0;
}

/* A directory in the upper layer changed now (a rename in it): its mtime and ctime, as JS's
 * rename gives them (namespace.ts, movedBehind). */
static void touch_dir(const char *path) {
    const struct timespec now[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
    (void)utimensat(AT_FDCWD, path, now, AT_SYMLINK_NOFOLLOW);
}

/*
 * The rename of a marked lower file (found by its name: JS gives a file's mark its name too) to a
 * name missing from every layer of a directory marked for its lookups (missing_in): mv of lower
 * files, in place or into another directory (the rename workload). Answered here as JS answers it
 * when its copy may wait for its flush (namespace.ts, movedBehind; Core.deferMove). The file is
 * copied up as a setattr's copy is (copy_small_unnamed: O_TMPFILE in the work directory, its
 * origin and times, no flush); both directories are in the upper layer by then (marked lower
 * ones are copied up as ensureUpperDir would: lift_chain, lift) and take their new times now; both
 * names are pending in C's lookups until JS has written the rename (pendingDrop, pending_pair); the
 * node's mark and name go. JS then gets a record in the request's place, marked answered: the
 * rename's names, the copy's fd (fh), its bytes (size), the lower inode number (offset) and
 * whether its data was read from the disk (valid). It takes the copy over as a rename it deferred
 * itself (Core.adoptMove): linked at the old name after the copy's flush, then renamed to the new
 * one, leaving the whiteout.
 *
 * Not while a request waiting for JS names the file, either directory or one of the lower ones it
 * copies up (JS answers it first, from the state before this; a request that could give the new
 * name, or take the old one, cannot be waiting: the kernel holds both directories locked from the
 * lookup of the new name to the rename's reply, and the file's inode too), nor while a forget
 * waits (JS may drop a node at it), nor behind the record of a copy whose adoption may copy
 * directories up. Only RENAME_NOREPLACE among the flags (the name is missing anyway), for a file
 * with no open of it (JS moves the readers of a file it renames to the copy; C's would stay on the
 * lower one), and no `.wh.` name (JS refuses those). A file too big or hard-linked, a copy that
 * fails or a directory that cannot be copied up goes to JS as a request. 1 when answered.
 */
int fll_cow_rename(fll_session *s, fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                   const char *newname, unsigned int flags) {
    if (!s->cow_dir || s->cow_meta || !s->cow_names || !s->cow_pending || s->queued_forgets || s->queued_lifts || s->cow_room == 0 ||
        (flags & ~(unsigned int)RENAME_NOREPLACE) || strncmp(newname, ".wh.", 4) == 0)
        return 0;
    const fll_cow_name *e = name_entry(s->cow_names, parent, name);
    if (!e) return 0;
    uint64_t ino = e->ino;
    fll_fast_node *n = fll_node_find(s, ino);
    cow_move m;
    if (!move_copy(s, n, ino, parent, newparent, newname, &m)) return 0;
    char from[PATH_MAX], to[PATH_MAX];
    fll_rec *r = NULL;
    if (!move_lift(s, &m) || !upper_path(s, parent, from) ||
        (newparent != parent && !upper_path(s, newparent, to)) ||
        !(r = calloc(1, sizeof *r)) || !(r->name = strdup(name)) || !(r->name2 = strdup(newname)) ||
        !pending_pair(s, parent, name, newparent, newname)) {
        if (r) {
            free(r->name);
            free(r->name2);
            free(r);
        }
        close(m.copy.fd);
        return 0;
    }
    touch_dir(from);
    if (newparent != parent) touch_dir(to);
    n = fll_node_find(s, ino); /* lift's copies may have moved it */
    if (n) unmark(s, n);
    s->cow_room--;
    s->cow_renames++;
    r->kind = FLL_RENAME;
    r->parent = parent;
    r->newparent = newparent;
    r->flags = flags;
    move_rec(r, &m);
    FLL_SEND(s, req, fuse_reply_err(req, 0));
    fll_push(s, r);
    return 1;
}

/*
 * The link of a marked lower file to a name missing from every layer of a directory marked for its
 * lookups (missing_in): `cp -al` of a lower tree, `ln` of a lower file. Answered here as JS answers
 * it when its copy may wait for its flush (namespace.ts, linkNow; Core.deferLink): the file is
 * copied up as a setattr's copy is (copy_small_unnamed), the lower directories above it and above
 * the new name are copied up (lift_chain, lift), the new name's directory takes its new times, and
 * the new name is pending in C's lookups until JS has written the link (pendingDrop). The new name
 * is a new node (one per name, as JS gives each name of a file its own), from the ids JS reserved
 * for the lookups C answers, and the reply gives its attributes as JS gives a name of a copy not
 * named yet: the copy's, under the inode number JS shows, with two links and no time to live. The
 * kernel is told first that the file's own node changed (its link count), as JS tells it, and that
 * node's mark goes (its name stays, as at a setattr's copy). JS then gets a record in the request's
 * place, marked answered: the link's names, the new node's id (rdev), the copy's fd (fh), its bytes
 * (size), the lower inode number (offset) and whether its data was read from the disk (valid). It
 * takes the copy over as a link it deferred itself (Union.adoptLinkSync): the copy linked at the
 * file's name after its flush, then at the new one.
 *
 * Under the conditions of a rename answered here (fll_cow_rename: no request waiting for JS names
 * the file, either directory or a lower one copied up, no forget waiting, no `.wh.` name, no open of
 * the file), and while JS has ids left to give. 1 when answered.
 */
int fll_cow_link(fll_session *s, fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname) {
    if (!s->cow_dir || s->cow_meta || !s->cow_pending || s->queued_forgets || s->queued_lifts || s->cow_room == 0 ||
        s->ids_next >= s->ids_end || strncmp(newname, ".wh.", 4) == 0)
        return 0;
    fll_fast_node *n = fll_node_find(s, ino);
    if (!n || !n->parent) return 0;
    uint64_t parent = n->parent, shown = n->shown;
    cow_move m;
    if (!move_copy(s, n, ino, parent, newparent, newname, &m)) return 0;
    char to[PATH_MAX];
    struct stat st;
    fll_rec *r = NULL;
    if (!move_lift(s, &m) || !upper_path(s, newparent, to) ||
        fstat(m.copy.fd, &st) < 0 || !(r = calloc(1, sizeof *r)) || !(r->name2 = strdup(newname)) ||
        !pending_add(s, newparent, newname)) {
        if (r) free(r->name2);
        free(r);
        close(m.copy.fd);
        return 0;
    }
    touch_dir(to);
    /* The mark goes, the name stays (unmark_src: the disk shows the name as the lower file until JS
     * names the copy), and its opens go to JS, as after any link JS answers (#fastDenyIno). */
    n = fll_node_find(s, ino); /* lift's copies may have moved it */
    if (n) {
        unmark_src(n);
        n->allowed = 0;
    }
    uint64_t child = s->ids_next++;
    s->cow_room--;
    s->cow_links++;
    r->kind = FLL_LINK;
    r->ino = ino;
    r->newparent = newparent;
    r->rdev = child;
    move_rec(r, &m);
    if (!s->fd_closed) (void)fuse_lowlevel_notify_inval_inode(s->se, ino, -1, 0);
    struct fuse_entry_param out;
    memset(&out, 0, sizeof out);
    out.ino = child;
    out.attr = st;
    out.attr.st_ino = shown;
    out.attr.st_nlink = 2;
    out.attr_timeout = 0;
    out.entry_timeout = s->cow_entry_timeout;
    FLL_SEND(s, req, fuse_reply_entry(req, &out));
    fll_push(s, r);
    return 1;
}

/* Whether an xattr name is stored under the name it shows: every name outside `trusted.` (JS
 * hides the union's own trusted.overlay. and trusted.layerfs. names and unescapes the user's
 * trusted.overlay.overlay. ones: inode.ts). */
static int shown_as_stored(const char *name) { return strncmp(name, "trusted.", 8) != 0; }

/* lgetxattr of `name`, or llistxattr when `name` is NULL, where the xattrs of node `ino` show
 * from, when C may answer for it now (no request read before this one still waits for JS, which
 * may change the node first; records of what C answered change only their own nodes, unmarked
 * already): a marked lower file's host path, or, for a directory marked for lookups (probe), the
 * first of its host paths that exists, the upper layer's first (each lower one there holds the
 * directory): the layer attrs.ts reads a directory's from, the topmost that holds it. The call's
 * result (errno set when -1), or -2 when C may not answer. */
static ssize_t source_xattr(fll_session *s, fuse_ino_t ino, const char *name, char *buf, size_t size) {
    fll_fast_node *n = s->cow_dir && !s->queued ? fll_node_find(s, ino) : NULL;
    if (!n) return -2;
    if (n->src && !n->dir) return name ? lgetxattr(n->src, name, buf, size) : llistxattr(n->src, buf, size);
    for (const char *dir = n->probe; dir && *dir; dir += strlen(dir) + 1) {
        ssize_t len = name ? lgetxattr(dir, name, buf, size) : llistxattr(dir, buf, size);
        if (len >= 0 || errno != ENOENT) return len;
    }
    return -2;
}

/* The getxattr of a marked lower file or directory (see source_xattr), of a name stored as it
 * shows, as attrs.ts reads it. Every chown asks for security.capability first (the kernel decides
 * whether the change must drop it), so chown -R of a layer asks once per file; cp -a asks for the
 * source's ACL (system.posix_acl_access), and ls -l for every entry's (and a directory's default
 * ACL, and its SELinux label). trusted. names, and errors other than ENODATA and ERANGE, go to JS. */
int fll_cow_getxattr(fll_session *s, fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) {
    /* Even with requests queued for JS, as a getattr: a setxattr among them has changed nothing
     * yet, so the answer is the state before it (with four writers at once, a third of these
     * found one queued). */
    if (strcmp(name, CAPS) == 0) {
        fll_fast_node *made = fll_node_find(s, ino);
        if (made && (made->no_caps || (made->made && made->made_no_caps))) {
            s->cow_getxattrs++;
            FLL_SEND(s, req, fuse_reply_err(req, ENODATA));
            return 1;
        }
    }
    if (!shown_as_stored(name)) return 0;
    char *value = size ? malloc(size) : NULL;
    if (size && !value) return 0;
    ssize_t len = source_xattr(s, ino, name, value, size);
    int err = len == -1 ? errno : 0;
    if (len == -2 || (err && err != ENODATA && err != ERANGE)) {
        free(value);
        return 0;
    }
    s->cow_getxattrs++;
    if (err) FLL_SEND(s, req, fuse_reply_err(req, err));
    else if (!size) FLL_SEND(s, req, fuse_reply_xattr(req, (size_t)len));
    else FLL_SEND(s, req, fuse_reply_buf(req, value, (size_t)len));
    free(value);
    return 1;
}

/* The listxattr of a marked lower file or directory (see source_xattr) whose names all show as
 * they are stored (no trusted. name: most hold none at all); cp -a and tar --xattrs list every
 * file and directory they copy, twice (size, then names). Any trusted. name (an upper directory's
 * origin or opaque mark among them), or an error, and JS lists it. */
int fll_cow_listxattr(fll_session *s, fuse_req_t req, fuse_ino_t ino, size_t size) {
    char names[XATTR_LIST_MAX];
    ssize_t len = source_xattr(s, ino, NULL, names, sizeof names);
    if (len < 0) return 0;
    for (ssize_t at = 0; at < len; at += (ssize_t)strlen(names + at) + 1)
        if (!shown_as_stored(names + at)) return 0;
    s->cow_listxattrs++;
    if (!size) FLL_SEND(s, req, fuse_reply_xattr(req, (size_t)len));
    else if ((size_t)len > size) FLL_SEND(s, req, fuse_reply_err(req, ERANGE));
    else FLL_SEND(s, req, fuse_reply_buf(req, names, (size_t)len));
    return 1;
}

/* The changes answered on a file JS made, through its creating open: mode, owner, times and size,
 * and the clearing of set-ID bits a chown or truncate asks for, which such a file never has (see
 * made_setattr). */
#define MADE_VALID (COW_VALID | FUSE_SET_ATTR_SIZE)

/* The made file's setattrs go to JS again: C's descriptor closes. */
static void made_end(fll_fast_node *n) {
    if (n->made) close(n->made_fd);
    n->made = n->made_named = n->made_no_caps = 0;
    n->made_shown = 0;
}

void fll_made_release(fll_session *s, fuse_ino_t ino, const struct fuse_file_info *fi) {
    fll_fast_node *n = fi ? fll_node_find(s, ino) : NULL;
    if (!n || !n->made || n->made_fh != fi->fh) return;
    made_end(n);
    fll_node_drop_unused(s, n);
}

/* A setattr of a file JS made, while the open that made it lives, or of one JS opened for writing
 * (see the top): 1 when answered. */
static int made_setattr(fll_session *s, fuse_req_t req, fuse_ino_t ino, const struct stat *attr, int to_set,
                        const struct fuse_file_info *fi) {
    if (s->queued || (to_set & ~MADE_VALID)) return 0;
    fll_fast_node *n = fll_node_find(s, ino);
    if (!n || !n->made || (fi && fi->fh != n->made_fh)) return 0;
    cow_change c = change_of(attr, to_set);
    /* Set-ID bits are JS's to give: its handles remember whether their file has them. JS marks no
     * file made with them, and takes the mark away before it answers any setattr itself, so a
     * marked file has none, and a chown or a write has none to clear. */
    if (c.mode >= 0 && (c.mode & (S_ISUID | S_ISGID))) return 0;
    int fd = n->made_fd, err = 0;
    struct stat st;
    /* A size first (`truncate -s` of a lower file opens it for writing, then truncates through
     * that open): a descriptor not open for writing (a file made by a read-only create) leaves the
     * whole change to JS, which truncates by name. The file has one link: no other name's pages
     * to drop (JS's #dropSiblingPages); the kernel drops the node's own past the new size. */
    if ((to_set & FUSE_SET_ATTR_SIZE) && ftruncate(fd, attr->st_size) < 0) {
        if (errno == EINVAL || errno == EBADF) return 0;
        err = errno;
    }
    if (!err && c.mode >= 0 && fchmod(fd, (mode_t)c.mode) < 0) err = errno;
    if (!err && (c.uid >= 0 || c.gid >= 0) && fchown(fd, (uid_t)c.uid, (gid_t)c.gid) < 0) err = errno;
    if (!err && (c.times[0].tv_nsec != UTIME_OMIT || c.times[1].tv_nsec != UTIME_OMIT) && futimens(fd, c.times) < 0)
        err = errno;
    if (!err && fstat(fd, &st) < 0) err = errno;
    s->cow_setattrs++;
    if (err) {
        FLL_SEND(s, req, fuse_reply_err(req, err));
    } else if (n->made_shown) {
        /* As JS shows a file opened for writing: its inode number; a copy not named yet (JS names
         * it after its flush) with the one link it is about to get and no time to live, as JS
         * gives none to such a copy (C cannot tell when it is named: it stays so). */
        st.st_ino = n->made_shown;
        if (!n->made_named) st.st_nlink = 1;
        FLL_SEND(s, req, fuse_reply_attr(req, &st, n->made_named ? s->made_attr_timeout : 0.0));
    } else {
        FLL_SEND(s, req, fuse_reply_attr(req, &st, s->made_attr_timeout));
    }
    return 1;
}

/* The access ACL of a file JS made, set through its creating open (see the top): 1 when answered.
 * The host filesystem turns an ACL the mode can hold into that mode, and stores any other, as it
 * does when JS sets it by name; such a file has no set-ID bit for it to clear. */
int fll_made_setxattr(fll_session *s, fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                      size_t size, int flags) {
    if (s->queued || strcmp(name, ACL_ACCESS) != 0) return 0;
    fll_fast_node *n = fll_node_find(s, ino);
    /* Not for a file opened for writing (made_shown): JS names a copy before any xattr of it. */
    if (!n || !n->made || n->made_shown) return 0;
    int err = fsetxattr(n->made_fd, name, value, size, flags) < 0 ? errno : 0;
    s->made_setxattrs++;
    FLL_SEND(s, req, fuse_reply_err(req, err));
    return 1;
}

/* The setxattr of a `user.` name on a marked lower file (setfattr of an image's files): the copy a
 * setattr would make here (copy_small_unnamed, with no change), the name set on it through its fd,
 * and a record for JS as after a setattr answered here, with no change: JS adopts the copy
 * (Core.adoptCopy). Answered with the setxattr's own result: as in overlayfs (and in JS), the
 * copy-up stays when the setxattr then fails (XATTR_CREATE of a name the file has, XATTR_REPLACE of
 * one it lacks). Not a set-ID file (JS's), nor `user.overlay.` names (a `userxattr` union's
 * markers). 1 when answered; the mark goes whatever happens, as at a setattr. */
int fll_cow_setxattr(fll_session *s, fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                     size_t size, int flags) {
    if (!s->cow_dir || s->cow_meta || s->queued || s->cow_room == 0 || strncmp(name, "user.", 5) != 0 ||
        strncmp(name, "user.overlay.", 13) == 0)
        return 0;
    fll_fast_node *n = fll_node_find(s, ino);
    if (!n || !n->src || n->dir || n->upper || n->held) return 0;
    cow_copied k;
    int fd = cow_copy(s, n, NULL, 0, &k);
    unmark_src(n);
    if (fd < 0) return 0;
    fll_rec *r = calloc(1, sizeof *r);
    if (!r || ((mode_t)k.src[ST_MODE] & (S_ISUID | S_ISGID))) {
        free(r);
        close(fd);
        return 0;
    }
    int set = fsetxattr(fd, name, value, size, flags) < 0 ? errno : 0;
    r->kind = FLL_SETATTR;
    r->ino = ino;
    copy_rec(r, &k);
    s->cow_room--;
    s->cow_setxattrs++;
    FLL_SEND(s, req, fuse_reply_err(req, set));
    fll_push(s, r);
    return 1;
}

int fll_cow_setattr(fll_session *s, fuse_req_t req, fuse_ino_t ino, const struct stat *attr, int to_set,
                    const struct fuse_file_info *fi) {
    if (made_setattr(s, req, ino, attr, to_set, fi)) return 1;
    if (!s->cow_dir || s->queued || fi || (to_set & ~COW_VALID)) return 0;
    fll_fast_node *n = fll_node_find(s, ino);
    if (!n || !n->src || n->held) return 0;
    cow_change c = change_of(attr, to_set);
    if (n->upper) return upper_file(s, req, ino, n, &c, attr, to_set);
    if (!n->dir) return cow_file(s, req, ino, n, &c, attr, to_set);
    /* Set-ID bits to clear are JS's to judge (the kernel asks only for files). */
    if (s->kill_suidgid || (to_set & COW_KILL)) return 0;
    /* Not behind the record of a copy made here whose adoption may copy directories up: it could
     * copy this one up in JS, over this copy (a file in it changed just before it). A copy in a
     * directory in the upper layer copies none: chmod -R of a layer changes each directory before
     * its files, right behind the copies of the files listed before it. */
    if (n->dir == COW_MARK_LOWER_DIR) return !s->queued_lifts && cow_dir(s, req, ino, n, &c, attr, to_set);
    cow_upper_dir(s, req, ino, n, &c, attr, to_set);
    return 1;
}

static void names_free(fll_cow_name ***names) {
    for (uint32_t i = 0; *names && i < COW_NAME_BUCKETS; i++) {
        for (fll_cow_name *e = (*names)[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    }
    free(*names);
    *names = NULL;
}

void fll_cow_free(fll_session *s) {
    fll_lower_free(s);
    names_free(&s->cow_names);
    names_free(&s->cow_pending);
    free(s->cow_dir);
    s->cow_dir = NULL;
    free(s->cow_ring);
    s->cow_ring = NULL;
}

/* The call's arguments into argv (*argc: its room, then how many came), its session (argv[0]) and
 * node id (argv[1]): NULL after throwing. */
static fll_session *session_node_args(napi_env env, napi_callback_info info, napi_value *argv, size_t *argc, int64_t *ino) {
    if (napi_get_cb_info(env, info, argc, argv, NULL, NULL) != napi_ok) return NULL;
    fll_session *s = fll_unwrap(env, argv[0]);
    return s && fll_int(env, argv[1], "node", 1, 9007199254740991.0, ino) ? s : NULL;
}

/* argv[i] as a number of seconds, at least 0: 0 after throwing a TypeError that names it. */
static int seconds_arg(napi_env env, const napi_value *argv, size_t argc, size_t i, const char *name, double *out) {
    if (i < argc && napi_get_value_double(env, argv[i], out) == napi_ok && *out >= 0) return 1;
    char msg[96];
    snprintf(msg, sizeof msg, "%s: expected a number of seconds, at least 0", name);
    napi_throw_type_error(env, "EINVAL", msg);
    return 0;
}

/* argv[i] as a boolean: 0 after throwing a TypeError that names it. */
static int bool_arg(napi_env env, const napi_value *argv, size_t argc, size_t i, const char *name, bool *out) {
    if (i < argc && napi_get_value_bool(env, argv[i], out) == napi_ok) return 1;
    char msg[64];
    snprintf(msg, sizeof msg, "%s: expected a boolean", name);
    napi_throw_type_error(env, "EINVAL", msg);
    return 0;
}

/* cowConfigure(handle, workDir, maxSize, attrTimeout, exactModes, negativeTimeout, entryTimeout, passLowerMin,
 * meta): setattrs of
 * marked nodes may be answered in C, their copies made in workDir, for files of at most maxSize
 * bytes; a directory's attributes are given attrTimeout seconds to live; exactModes: copies may be
 * made with their modes (STAGE_EXACT_MODE, see Stager.exactModes); a name missing from a directory
 * marked with probeAllow, negativeTimeout seconds (0: answered ENOENT); meta: metacopy is on (the
 * copies of setattrs are metadata-only ones; renames, links and setxattrs of lower files go to JS,
 * which makes those too). */
napi_value fll_js_cow_configure(napi_env env, napi_callback_info info) {
    size_t argc = 9;
    napi_value argv[9];
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
    fll_session *s = fll_unwrap(env, argv[0]);
    int64_t limit, pass_min = 0;
    double timeout, negative, entry;
    bool exact_mode = false, meta = false;
    if (!s || !fll_int(env, argv[2], "maxSize", 0, 9007199254740991.0, &limit) ||
        !seconds_arg(env, argv, argc, 3, "attrTimeout", &timeout) || !bool_arg(env, argv, argc, 4, "exactModes", &exact_mode) ||
        !seconds_arg(env, argv, argc, 5, "negativeTimeout", &negative) || !seconds_arg(env, argv, argc, 6, "entryTimeout", &entry) ||
        (argc > 7 && !fll_int(env, argv[7], "passLowerMin", 0, 9007199254740991.0, &pass_min)) ||
        !bool_arg(env, argv, argc, 8, "meta", &meta))
        return NULL;
    char *dir = fll_string(env, argv[1], "workDir");
    if (!dir) return NULL;
    uint64_t *ring = s->cow_ring ? s->cow_ring : calloc(COW_MAX, sizeof *ring);
    fll_cow_name **names = s->cow_names ? s->cow_names : calloc(COW_NAME_BUCKETS, sizeof *names);
    fll_cow_name **pending = s->cow_pending ? s->cow_pending : calloc(COW_NAME_BUCKETS, sizeof *pending);
    if (!ring || !names || !pending) {
        if (ring != s->cow_ring) free(ring);
        if (names != s->cow_names) free(names);
        if (pending != s->cow_pending) free(pending);
        free(dir);
        napi_throw_error(env, "ENOMEM", "out of memory");
        return NULL;
    }
    free(s->cow_dir);
    s->cow_dir = dir;
    s->cow_ring = ring;
    s->cow_names = names;
    s->cow_pending = pending;
    s->cow_entry_timeout = entry;
    s->cow_limit = limit;
    s->cow_attr_timeout = timeout;
    s->cow_negative_timeout = negative;
    s->cow_exact_mode = exact_mode;
    s->cow_meta = meta;
    s->cow_pass_min = pass_min;
    return NULL;
}

/* cowRoom(handle, n): how many more copies may be made in C before JS says again. */
napi_value fll_js_cow_room(napi_env env, napi_callback_info info) {
    int64_t n;
    fll_session *s = fll_session_and_int(env, info, "room", 0, 4294967295.0, &n);
    if (s) s->cow_room = (uint32_t)n;
    return NULL;
}

/* cowOpenFh(handle, fh) → 1 when C keeps the file handle fh, which JS reserved, for an open for
 * writing it may answer (fll_cow_open); 0 when it keeps enough, or answers none. */
napi_value fll_js_cow_open_fh(napi_env env, napi_callback_info info) {
    int64_t fh;
    fll_session *s = fll_session_and_int(env, info, "fh", 1, 9007199254740991.0, &fh);
    if (!s) return NULL;
    if (s->open_fhs_refused || s->open_fh_count == FLL_OPEN_FHS) return fll_int32(env, 0);
    s->open_fhs[s->open_fh_count++] = (uint64_t)fh;
    return fll_int32(env, 1);
}

/* js_open of the node named by the call's second argument, set to `busy`. */
static napi_value set_js_open(napi_env env, napi_callback_info info, uint8_t busy) {
    int64_t ino;
    fll_session *s = fll_session_and_int(env, info, "node", 1, 9007199254740991.0, &ino);
    if (!s) return NULL;
    fll_fast_node *n = fll_node_find(s, (uint64_t)ino);
    if (n) n->js_open = busy;
    return NULL;
}

/* cowBusy(handle, node): JS holds an open file of the node, one it answered. The open went to JS
 * with js_open set, but a cowIdle for JS's earlier files may have cleared that before JS took the
 * open (both delivered at once, the release first): no open is answered in C beside JS's
 * (fll_cow_open, and pass_open in fuse-ll-fast.c, whose files would take the node into another
 * I/O mode or to another backing file: EIO). */
napi_value fll_js_cow_busy(napi_env env, napi_callback_info info) {
    return set_js_open(env, info, 1);
}

/* cowIdle(handle, node): JS holds no open file of the node any more (see fll_cow_open). */
napi_value fll_js_cow_idle(napi_env env, napi_callback_info info) {
    return set_js_open(env, info, 0);
}

/* Marks node `ino` as cowAllow describes: `src` (owned, taken whatever happens), `dir` (0: a file,
 * or a COW_MARK_*), `lone`, a file's `kind` (a COW_FILE_*), `first`, `busy`, its directory node
 * `parent` and `name` in it (NULL: none), shown as inode `shown`. 1, or 0 when out of memory. */
static int mark_node(fll_session *s, uint64_t ino, char *src, uint8_t dir, int lone, int kind, int first, int busy,
                     uint64_t parent, const char *name, uint64_t shown) {
    fll_fast_node *n = fll_node_add(s, ino);
    if (!n) {
        free(src);
        return 0;
    }
    free(n->src);
    n->src = src;
    n->dir = dir;
    n->lone = dir == COW_MARK_LOWER_DIR && lone;
    n->upper = !dir && kind == COW_FILE_UPPER;
    n->held = !dir && (kind == COW_FILE_HELD || kind == COW_FILE_PASSED);
    n->pass = !dir && kind == COW_FILE_PASSED;
    if (first && !dir && !n->held) n->first = 1;
    n->js_open = busy;
    n->parent = parent;
    /* A node answers for its name in its parent: a directory's lookups, a file's renames. */
    name_set(s, n, ino, parent, name);
    n->shown = shown;
    /* The mark made COW_MAX marks ago goes, unless it was used, denied or made again since (the
     * node's ring slot is then another), and so does its first open (JS then stores no bytes at
     * it, and the kernel reads them by request): a walk marks every file it lists, and the node
     * table holds no more of them than this. Its name stays (unmark_src). */
    uint32_t slot = s->cow_next;
    uint64_t old = s->cow_ring[slot];
    s->cow_ring[slot] = ino;
    s->cow_next = (slot + 1) % COW_MAX;
    n->cow_at = slot;
    if (old && old != ino) {
        fll_fast_node *o = fll_node_find(s, old);
        if (o && o->src && o->cow_at == slot) {
            o->first = 0;
            unmark_src(o);
            fll_node_drop_unused(s, o);
        }
    }
    return 1;
}

/* cowAllow(handle, node, src, shownIno, dst?, sole?, first?, busy?, parent?, name?, kind?) → 1, or 0
 * when not configured or out of memory. With dst (where its copy goes in the upper layer), src is a
 * lower directory, else a file (kind: a COW_FILE_*, a lower file by default); with dst and src '',
 * dst is a directory in the upper layer that merges with a lower one, or with sole true one that is
 * only there. A lower directory with sole true is only in src's layer (it shows its own link
 * count). first, for a file: no open of it was answered yet, and its first may be answered in C
 * (fll_fast_open). busy: JS holds an open file of it (until cowIdle). parent: the node's
 * directory's node (0: unknown); name, for a directory: its name there, by which its lookups are
 * answered in C. */
napi_value fll_js_cow_allow(napi_env env, napi_callback_info info) {
    size_t argc = 11;
    napi_value argv[11];
    int64_t ino, shown;
    fll_session *s = session_node_args(env, info, argv, &argc, &ino);
    if (!s || !fll_int(env, argv[3], "shownIno", 0, 9007199254740991.0, &shown))
        return NULL;
    if (!s->cow_ring) return fll_int32(env, 0);
    napi_valuetype dst_type = napi_undefined;
    if (argc > 4 && napi_typeof(env, argv[4], &dst_type) != napi_ok) return NULL;
    bool sole = false, first = false;
    napi_valuetype sole_type = napi_undefined;
    if (argc > 5 && (napi_typeof(env, argv[5], &sole_type) != napi_ok ||
                     (sole_type == napi_boolean && napi_get_value_bool(env, argv[5], &sole) != napi_ok)))
        return NULL;
    bool busy = false;
    if (argc > 6 && !bool_arg(env, argv, argc, 6, "first", &first)) return NULL;
    if (argc > 7 && !bool_arg(env, argv, argc, 7, "busy", &busy)) return NULL;
    int64_t parent = 0;
    if (argc > 8 && !fll_int(env, argv[8], "parent", 0, 9007199254740991.0, &parent)) return NULL;
    char *name = NULL;
    napi_valuetype name_type = napi_undefined;
    if (argc > 9 && napi_typeof(env, argv[9], &name_type) != napi_ok) return NULL;
    if (name_type != napi_undefined && !(name = fll_string(env, argv[9], "name"))) return NULL;
    int64_t kind = COW_FILE_LOWER;
    if (argc > 10 && !fll_int(env, argv[10], "kind", COW_FILE_LOWER, COW_FILE_PASSED, &kind)) {
        free(name);
        return NULL;
    }
    char *src = fll_string(env, argv[2], "src");
    if (!src) {
        free(name);
        return NULL;
    }
    if (dst_type != napi_undefined) {
        /* One allocation: "src\0dst\0". */
        char *dst = fll_string(env, argv[4], "dst");
        if (!dst) {
            free(src);
            free(name);
            return NULL;
        }
        char *both = malloc(strlen(src) + strlen(dst) + 2);
        if (both) {
            strcpy(both, src);
            strcpy(both + strlen(src) + 1, dst);
        }
        free(src);
        free(dst);
        if (!both) {
            free(name);
            return fll_int32(env, 0);
        }
        src = both;
    }
    uint8_t dir = dst_type == napi_undefined ? 0 : src[0] ? COW_MARK_LOWER_DIR : sole ? COW_MARK_SOLE_DIR : COW_MARK_UPPER_DIR;
    int marked = mark_node(s, (uint64_t)ino, src, dir, sole, (int)kind, first, busy, (uint64_t)parent, name, (uint64_t)shown);
    free(name);
    return fll_int32(env, marked);
}

/* made(handle, node, fh, fd, attrTimeout, named, shown): the node is a file JS made, so it holds no
 * security.capability, and it is open as JS's handle fh, on the host descriptor fd (-1: none to
 * change it through, the capability alone); its attributes live attrTimeout seconds; named: made
 * with a name (not O_TMPFILE), so its getattrs may be answered through fd too. With shown (not 0),
 * the node was not made but opened for writing as fh (a copy-up's open, touch's): its setattrs
 * alone are answered through fd, with the inode number shown, and its capability is left to JS;
 * named false: a copy not named yet (see made_setattr). A file still open as the open that made
 * it keeps that mark. 1, or 0 when out of memory (and, with shown, when the descriptor could not
 * be copied: nothing is marked then). */
napi_value fll_js_made(napi_env env, napi_callback_info info) {
    size_t argc = 7;
    napi_value argv[7];
    int64_t ino, fh, fd, shown = 0;
    double timeout;
    bool named = false;
    fll_session *s = session_node_args(env, info, argv, &argc, &ino);
    if (!s || !fll_int(env, argv[2], "fh", 0, 9007199254740991.0, &fh) || !fll_int(env, argv[3], "fd", -1, INT_MAX, &fd) ||
        !seconds_arg(env, argv, argc, 4, "attrTimeout", &timeout) || !bool_arg(env, argv, argc, 5, "named", &named) ||
        (argc > 6 && !fll_int(env, argv[6], "shown", 0, 9007199254740991.0, &shown)))
        return NULL;
    fll_fast_node *n = fll_node_add(s, (uint64_t)ino);
    if (!n) return fll_int32(env, 0);
    /* The open that made the file, still open, keeps its mark: a writer's changes go to JS. */
    if (shown && n->made && !n->made_shown) return fll_int32(env, 1);
    made_end(n);
    if (!shown) n->no_caps = 1;
    /* A descriptor of C's own: JS may close its handle's before C hears of the release. */
    int own = fd >= 0 ? fcntl((int)fd, F_DUPFD_CLOEXEC, 3) : -1;
    if (own >= 0) {
        made_mark(n, own, (uint64_t)fh, (uint64_t)shown, named);
        s->made_attr_timeout = timeout;
    } else if (shown) {
        /* A writer with no descriptor to go through has no mark at all. */
        fll_node_drop_unused(s, n);
        return fll_int32(env, 0);
    }
    return fll_int32(env, 1);
}

/* madeEnd(handle, node, all, writer): the node's setattrs go to JS again; with all, its getxattrs
 * too; with writer, only if its mark is a writer's (made with shown). */
napi_value fll_js_made_end(napi_env env, napi_callback_info info) {
    size_t argc = 4;
    napi_value argv[4];
    int64_t ino;
    bool all = false, writer = false;
    fll_session *s = session_node_args(env, info, argv, &argc, &ino);
    if (!s || !bool_arg(env, argv, argc, 2, "all", &all) || !bool_arg(env, argv, argc, 3, "writer", &writer)) return NULL;
    fll_fast_node *n = fll_node_find(s, (uint64_t)ino);
    if (!n || (writer && !n->made_shown)) return NULL;
    if (all) n->no_caps = 0;
    made_end(n);
    fll_node_drop_unused(s, n);
    return NULL;
}

/* (handle, node, bytes): the session, the node id in *ino, and the third argument, a string or
 * Buffer, as malloc'ed bytes in *bytes (name_from_js: NUL-terminated, their length in *len). NULL
 * after throwing a TypeError that calls it `what`; the session with *bytes NULL when out of
 * memory. */
static fll_session *node_bytes_args(napi_env env, napi_callback_info info, const char *what, int64_t *ino, char **bytes,
                                    size_t *len) {
    size_t argc = 3;
    napi_value argv[3];
    fll_session *s = session_node_args(env, info, argv, &argc, ino);
    if (!s) return NULL;
    *len = 0;
    *bytes = argc > 2 ? name_from_js(env, argv[2], len) : NULL;
    if (*bytes || *len) return s;
    char msg[64];
    snprintf(msg, sizeof msg, "%s: expected a string or Buffer", what);
    napi_throw_type_error(env, "EINVAL", msg);
    return NULL;
}

/* probeAllow(handle, node, paths) → 1, or 0 when out of memory: paths (a string or Buffer) are the
 * directory's host paths in the layers, each ended by a null byte (see fll_cow_lookup). */
napi_value fll_js_probe_allow(napi_env env, napi_callback_info info) {
    int64_t ino;
    char *paths;
    size_t len;
    fll_session *s = node_bytes_args(env, info, "paths", &ino, &paths, &len);
    if (!s) return NULL;
    if (!paths) return fll_int32(env, 0); /* out of memory */
    if (len == 0 || paths[len - 1] != '\0') {
        free(paths);
        napi_throw_type_error(env, "EINVAL", "paths: expected paths each ended by a null byte");
        return NULL;
    }
    /* The list's end: one more null byte after the last path's own. */
    char *list = realloc(paths, len + 2);
    if (!list) {
        free(paths);
        return fll_int32(env, 0);
    }
    list[len] = list[len + 1] = '\0';
    fll_fast_node *n = fll_node_add(s, (uint64_t)ino);
    if (!n) {
        free(list);
        return fll_int32(env, 0);
    }
    free(n->probe);
    n->probe = list;
    n->positive = 0;
    return fll_int32(env, 1);
}

/* probeDeny(handle, node): lookups in the node go to JS again. */
napi_value fll_js_probe_deny(napi_env env, napi_callback_info info) {
    int64_t ino;
    fll_session *s = fll_session_and_int(env, info, "node", 1, 9007199254740991.0, &ino);
    if (!s) return NULL;
    fll_fast_node *n = fll_node_find(s, (uint64_t)ino);
    if (!n || !n->probe) return NULL;
    free(n->probe);
    n->probe = NULL;
    n->positive = 0;
    fll_node_drop_unused(s, n);
    return NULL;
}

/* positiveAllow(handle, node, on) → 1 when on and the node is marked for its lookups (probeAllow),
 * else 0: on, a small lower file found in it may be looked up in C as a new node (file_lookup);
 * off, no more, until JS says again. A probeAllow takes it away too. */
napi_value fll_js_positive_allow(napi_env env, napi_callback_info info) {
    size_t argc = 3;
    napi_value argv[3];
    int64_t ino;
    bool on = false;
    fll_session *s = session_node_args(env, info, argv, &argc, &ino);
    if (!s || !bool_arg(env, argv, argc, 2, "on", &on)) return NULL;
    fll_fast_node *n = fll_node_find(s, (uint64_t)ino);
    if (!n || !n->probe) return fll_int32(env, 0);
    n->positive = on;
    return fll_int32(env, on);
}

/* lookupIds(handle, first, count): the node ids [first, first + count) are C's to give the files it
 * looks up (file_lookup), in place of any not given yet. */
napi_value fll_js_lookup_ids(napi_env env, napi_callback_info info) {
    size_t argc = 3;
    napi_value argv[3];
    int64_t first, count;
    fll_session *s = session_node_args(env, info, argv, &argc, &first);
    if (!s || !fll_int(env, argv[2], "count", 0, 1 << 20, &count)) return NULL;
    s->ids_next = (uint64_t)first;
    s->ids_end = (uint64_t)(first + count);
    return NULL;
}

/* pendingAdd(handle, parent, name) → whether C took it: a name JS gave the directory node `parent`
 * (a link it deferred) before the disk has it, kept out of C's answers to lookups as a pending
 * rename's is, until pendingDrop. False (out of memory, no copy-ups in C): JS keeps the directory
 * unmarked instead. */
napi_value fll_js_pending_add(napi_env env, napi_callback_info info) {
    int64_t parent;
    char *name;
    size_t len;
    fll_session *s = node_bytes_args(env, info, "name", &parent, &name, &len);
    if (!s) return NULL;
    bool added = name && s->cow_pending && pending_add(s, (uint64_t)parent, name);
    free(name);
    napi_value out;
    napi_get_boolean(env, added, &out);
    return out;
}

/* pendingDrop(handle, parent, name): the rename answered in C that gave the directory node `parent`
 * the name `name` (or the link JS deferred there: pendingAdd) is written (or lost): the name is on
 * the disk as the union shows it (see fll_cow_rename). */
napi_value fll_js_pending_drop(napi_env env, napi_callback_info info) {
    int64_t parent;
    char *name;
    size_t len;
    fll_session *s = node_bytes_args(env, info, "name", &parent, &name, &len);
    /* Out of memory, the entry stays: the name's lookups go to JS. */
    if (!s || !name) return NULL;
    pending_drop(s, (uint64_t)parent, name);
    free(name);
    return NULL;
}

/* cowDeny(handle, node): the node's setattrs go to JS again. */
napi_value fll_js_cow_deny(napi_env env, napi_callback_info info) {
    int64_t ino;
    fll_session *s = fll_session_and_int(env, info, "node", 1, 9007199254740991.0, &ino);
    if (!s) return NULL;
    fll_fast_node *n = fll_node_find(s, (uint64_t)ino);
    if (n && (n->src || n->named)) unmark(s, n);
    return NULL;
}
