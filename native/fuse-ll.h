/* The libfuse3 low-level bridge, shared by its six files:
 *   fuse-ll-session.c  session lifecycle (mount, unmount), reading /dev/fuse from the libuv loop,
 *                      the batch of requests and its delivery to JS, request ids
 *   fuse-ll-ops.c      the low-level callbacks: each copies its arguments into a record and queues it
 *   fuse-ll-reply.c    the JS-facing reply and notify functions
 *   fuse-ll-passthrough.c  FUSE passthrough, which libfuse 3.14 cannot negotiate: INIT, backing
 *                      files, open replies naming them
 *   fuse-ll-fast.c     opens for reading of nodes JS has marked, and the empty read that ends a
 *                      listing, answered without JS
 *   fuse-ll-cow.c      setattrs that copy a small lower file or a directory up (or change a
 *                      copied-up directory), and getattrs and security xattrs of those lower
 *                      files, answered without JS
 *
 * One thread: /dev/fuse is non-blocking and watched by a uv_poll handle, so the JS thread itself
 * reads the requests, runs libfuse's dispatch (the callbacks), hands the batch to JS and writes the
 * replies. No request crosses a thread. The only state is the session struct, owned by the JS
 * handle object it is wrapped into. */
#ifndef LAYERFS_FUSE_LL_H
#define LAYERFS_FUSE_LL_H

#define FUSE_USE_VERSION 312
#define NAPI_VERSION 8
#include <fuse_lowlevel.h>
#include <node_api.h>
#include <stdint.h>
#include <sys/stat.h>
#include <uv.h>

/* Record kinds: the ops (names in fll_op_names, same order) and two session events. opendir, flush
 * and releasedir are answered in C and never queued (fuse-ll-ops.c). */
enum {
    FLL_LOOKUP, FLL_FORGET, FLL_GETATTR, FLL_SETATTR, FLL_READLINK, FLL_MKNOD, FLL_MKDIR, FLL_UNLINK,
    FLL_RMDIR, FLL_SYMLINK, FLL_RENAME, FLL_LINK, FLL_OPEN, FLL_READ, FLL_WRITE, FLL_FLUSH, FLL_RELEASE,
    FLL_FSYNC, FLL_OPENDIR, FLL_READDIR, FLL_READDIRPLUS, FLL_RELEASEDIR, FLL_FSYNCDIR, FLL_STATFS,
    FLL_SETXATTR, FLL_GETXATTR, FLL_LISTXATTR, FLL_REMOVEXATTR, FLL_ACCESS, FLL_CREATE, FLL_FALLOCATE,
    FLL_LSEEK, FLL_IOCTL, FLL_TMPFILE, FLL_OP_COUNT,
    FLL_EV_INIT = 100, /* the kernel's INIT was processed: mount() may resolve */
    FLL_EV_EXIT,       /* the session ended; `name` holds the reason */
};
extern const char *const fll_op_names[FLL_OP_COUNT];

/* The numbers crossing between C and JS travel in Float64Arrays, in these layouts (mirrored in
 * src/sys/fuse-ll.ts): a JS object costs a property lookup by name per field on the way in and a
 * map transition per field on the way out, which was a fifth of the daemon's time per request.
 *
 * Request fields, written by C into the array JS handed to create() before each onRequest call. */
enum {
    FLL_F_REQ, FLL_F_UID, FLL_F_GID, FLL_F_PID, FLL_F_UMASK, FLL_F_INO, FLL_F_PARENT, FLL_F_NEWPARENT,
    FLL_F_FH, FLL_F_HAS_FH, FLL_F_NLOOKUP, FLL_F_RDEV, FLL_F_SIZE, FLL_F_OFFSET, FLL_F_MODE, FLL_F_FLAGS,
    FLL_F_VALID, FLL_F_MASK, FLL_F_DATASYNC, FLL_F_ST_MODE, FLL_F_ST_UID, FLL_F_ST_GID, FLL_F_ST_SIZE,
    FLL_F_ATIME, FLL_F_ATIME_NS, FLL_F_MTIME, FLL_F_MTIME_NS, FLL_F_ANSWERED, FLL_F_WAITING,
    FLL_F_KILL_SUIDGID,
    FLL_F_COUNT
};
/* Reply layouts: an attr; an entry is an attr followed by four more; a readdirplus entry is an entry
 * followed by the next offset; a readdir entry is (ino, mode, next). */
enum {
    FLL_A_INO, FLL_A_MODE, FLL_A_NLINK, FLL_A_UID, FLL_A_GID, FLL_A_RDEV, FLL_A_SIZE, FLL_A_BLKSIZE,
    FLL_A_BLOCKS, FLL_A_ATIME, FLL_A_ATIME_NS, FLL_A_MTIME, FLL_A_MTIME_NS, FLL_A_CTIME, FLL_A_CTIME_NS,
    FLL_ATTR_LEN,
    FLL_E_NODE = FLL_ATTR_LEN, FLL_E_GENERATION, FLL_E_ATTR_TIMEOUT, FLL_E_ENTRY_TIMEOUT,
    FLL_ENTRY_LEN,
    FLL_DIRPLUS_LEN = FLL_ENTRY_LEN + 1,
    FLL_DIR_LEN = 3
};
/* What the kernel granted at INIT (fll_js_granted), one bit each. */
enum { FLL_GRANTED_PASSTHROUGH = 1, FLL_GRANTED_KILLPRIV = 2 };
/* Open reply flags, one bit each. */
enum { FLL_OPEN_KEEP_CACHE = 1, FLL_OPEN_DIRECT_IO = 2, FLL_OPEN_CACHE_READDIR = 4, FLL_OPEN_NONSEEKABLE = 8 };

/* One request (or event) as copied out of a callback. Fields are a union of what the ops need; the
 * builder in fuse-ll-session.c knows which ones each op exposes. */
typedef struct fll_rec fll_rec;
struct fll_rec {
    fll_rec *next;
    int kind;
    fuse_req_t req;
    uint32_t uid, gid, pid, umask;
    uint64_t ino, parent, newparent, fh, nlookup, rdev;
    int has_fh;
    char *name, *name2; /* owned: entry names, symlink target, xattr name, exit reason */
    void *data;         /* owned: write data, setxattr value (handed to JS as an external Buffer) */
    size_t size;        /* data length, or the size argument of read/readdir/getxattr/listxattr */
    int64_t offset;
    uint32_t mode, flags, valid, mask;
    int datasync;
    int kill_suidgid; /* setattr, open, write: clear setuid/setgid after it (killpriv v2) */
    uint8_t lifts;    /* a copy C made of a file whose directory may be lower: its adoption may
                       * copy directories up (fll_session.queued_lifts) */
    struct stat st;   /* setattr values */
};

/* Request ids handed to JS: slot index + generation, so a stale or repeated reply is detected
 * instead of touching a freed fuse_req_t. */
typedef struct {
    fuse_req_t req; /* NULL when free */
    uint32_t gen;
    uint32_t next_free;
} fll_slot;

enum { FLL_IDLE, FLL_MOUNTED, FLL_ENDED };

/* The file handle of an open answered in C (fuse-ll-fast.c); JS's own handles are small numbers. */
#define FLL_FAST_FH (1ULL << 52)
/* File handles JS keeps reserved for the opens for writing C answers (fll_cow_open). */
#define FLL_OPEN_FHS 8
/* Overlayfs's mark of a metadata-only copy (src/union/inode.ts: METACOPY_XATTR). */
#define METACOPY_XATTR "trusted.overlay.metacopy"
/* The `valid` of a record telling JS that a first open answered in C found its file uncached. */
#define FLL_OPEN_UNCACHED 8
/* The biggest file whose first open C answers, its bytes stored (ll-bridge.ts: STORE_MAX). */
#define FLL_FIRST_MAX (64 * 1024)

/* First opens of uncached files whose reads were started, answered at the end of the batch of
 * requests they came in (fuse-ll-fast.c: parked). */
#define FLL_PARKED 8
typedef struct fll_parked {
    fuse_req_t req;
    uint64_t ino;
    struct fuse_file_info fi;
    int fd;            /* owned: the file, open */
    struct stat before; /* its fstat at the open (size, atime) */
} fll_parked;

/* An entry of the node table's index (fuse-ll-fast.c): a node's ino (0: a free slot) and its place. */
typedef struct fll_node_slot {
    uint64_t ino;
    uint32_t at;
} fll_node_slot;

/* A node C answers some requests of: opens for reading (fuse-ll-fast.c), a setattr that copies it
 * up, the getxattr of security.capability of a file JS made (fuse-ll-cow.c). */
typedef struct {
    uint64_t ino; /* 0: a free slot */
    uint32_t opens;
    uint8_t allowed, watched;
    uint8_t first;   /* no open of the node has been answered: its first may be answered in C
                      * (fll_fast_open), and whoever answers it takes this */
    uint8_t no_caps; /* a file JS made: it holds no security.capability (fll_cow_getxattr) */
    uint8_t made;    /* and its creating open, made_fh, is still open: setattrs go through made_fd */
    uint8_t parked;  /* its first open waits for its file's read (fll_parked): the node stays */
    uint8_t js_open; /* JS may hold an open file of it (an open went to JS, or JS said so at its mark,
                      * until JS says its last is closed): no open for writing is answered in C */
    uint64_t parent;      /* a marked node's directory's node (0: unknown): a file's copy copies no
                           * directory up when that one is marked as in the upper layer (cow_lifts) */
    struct fll_cow_name *named; /* owned: a marked node's name in its parent, by which a directory's
                                 * lookups and a file's renames are answered in C (fll_cow_lookup,
                                 * fll_cow_rename); NULL: none */
    int made_fd;     /* owned: a dup of that open's descriptor */
    uint64_t made_fh;
    uint8_t made_named; /* and it was made with a name (not O_TMPFILE): its getattrs too */
    uint8_t made_no_caps; /* a writer's mark (made_shown): its file held no security.capability
                           * when marked, which only JS could give it (it ends the mark first) */
    uint64_t made_shown; /* not made but opened for writing (made_fh): the st_ino JS shows for it;
                          * 0: a file JS made, which shows its own */
    char *probe;     /* owned: a directory's host paths, in every layer a name in it could be in,
                      * "path\0path\0\0": a name missing from all is missing (fll_cow_lookup) */
    uint8_t positive; /* with probe: a small lower file found there may be looked up in C too, as a
                       * new node (file_lookup); JS gives it and takes it away (positiveAllow) */
    uint8_t dir;    /* with src: 1, src is a lower directory, and its copy's place follows it; 2, src
                     * is empty, and the directory in the upper layer follows it */
    uint8_t lone;   /* a lower directory only in src's layer: it shows its own link count (else 1) */
    uint8_t upper;  /* with src, a file: src is the file itself, in the upper layer, marked for its
                     * getattrs, xattr reads, first open, setattrs of mode, owner and times, and an
                     * open for writing; nothing copies it (cow_copy) */
    uint8_t held;   /* with src, a file: src is a lower file C does not copy (too big, or with other
                     * names), marked for its getattrs and xattr reads */
    uint8_t pass;   /* and JS would pass its opens for reading through: so are C's (fll_fast_open) */
    int32_t pass_backing; /* the backing id its opens counted in `opens` pass through to (0: none:
                           * they are in the daemon's I/O mode), registered at the first of them */
    char *src;      /* owned: the lower file a setattr may copy up in C; NULL: none. For a
                     * directory, "src\0dst": the lower directory, then where its copy goes */
    uint64_t shown; /* with src: the st_ino JS shows for the node */
    uint32_t cow_at; /* with src: its slot in cow_ring */
    int64_t dir_end; /* a directory: the offset its last listing JS gave ends at (0: none) */
} fll_fast_node;

/* What a marked file is (cowAllow's kind): a lower file C may copy up, a file in the upper layer
 * (upper), a lower file C does not copy (held), and one of those that JS passes through when opened
 * for reading (passed: held and pass). */
enum { COW_FILE_LOWER = 0, COW_FILE_UPPER = 1, COW_FILE_HELD = 2, COW_FILE_PASSED = 3 };

/* Names found missing by lookups in C, kept for the renames that follow them (missing_in). */
#define FLL_MISSING 16

/* The last requests, by sender: how many threads are calling at once (see on_readable). */
#define FLL_CALLERS 16

typedef struct fll_lower_names fll_lower_names; /* lower-names.c */

/* FNV-1a over the bytes of `s`, its offset basis mixed with `seed` (the name tables of
 * fuse-ll-cow.c, seeded by the parent; lower-names.c). */
static inline uint64_t fll_fnv1a(uint64_t seed, const char *s) {
    uint64_t h = 1469598103934665603ULL ^ seed;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) h = (h ^ *c) * 1099511628211ULL;
    return h;
}

typedef struct fll_session {
    napi_env env;
    napi_ref self;       /* the handle object; strong while mounted so it cannot be collected */
    napi_ref on_request; /* (kind, name?, name2?, data?) => void, the numbers in `fields` */
    napi_ref fields_ref; /* the Float64Array of request fields */
    double *fields;      /* its FLL_F_COUNT doubles */
    napi_ref on_event;   /* ('init' | 'exit', reason) => void */
    napi_async_context actx;

    uv_poll_t poll;    /* readable /dev/fuse */
    uv_async_t async;  /* unmount() ends the session from a fresh callback, never inside the caller */
    int handles_open;  /* poll and async handles initialised and not yet closed */
    int free_on_close; /* finalized while the handles were closing: free in the last close callback */

    int fd_closed; /* /dev/fuse closed: replies are dropped from then on */
    fll_rec *head, *tail;
    uint32_t queued_lifts; /* queued records with `lifts` set */
    struct fuse_buf fbuf; /* libfuse's receive buffer, reused */

    struct fuse_session *se;
    int state;
    int unmount_requested;
    int cleanup_hook; /* env cleanup hook registered */
    char *mountpoint; /* resolved absolute path */

    uint32_t max_write, max_readahead;
    uint64_t spin_ns; /* busy-poll /dev/fuse this long after answering everything (0: never) */
    unsigned spin_backoff; /* callbacks left without busy-polling, after a preempted spin */
    unsigned spin_callers; /* busy-poll only while at most this many threads send the requests */
    uint32_t callers[FLL_CALLERS]; /* who sent the last requests (a ring; 0: unknown) */
    unsigned next_caller;
    uint64_t spins, spins_skipped; /* busy-polls run, and skipped for too many callers */
    int want_passthrough;  /* ask for FUSE passthrough at INIT (fuse-ll-passthrough.c) */
    int want_posix_acl;    /* ask for FUSE_POSIX_ACL at INIT */
    int passthrough;       /* the kernel granted it */
    int killpriv;          /* the kernel granted FUSE_HANDLE_KILLPRIV_V2 */
    int kill_suidgid;      /* the request being dispatched asks for it (fll_kills_suidgid) */
    int tmpfile;           /* the create being dispatched is an O_TMPFILE open (fll_take_tmpfile) */
    int init_seen;         /* the kernel's INIT has been processed (it comes first, once) */

    /* The node table (fuse-ll-fast.c): nodes in chunks that never move, found through an index */
    fll_fast_node **node_chunks;
    uint32_t node_chunk_cap, node_places; /* chunks allocated room for; places ever used */
    struct fll_node_slot *node_index;      /* open addressing by ino, at most half full */
    uint32_t node_mask, node_count;
    uint32_t *node_free;                   /* removed nodes' places, to reuse */
    uint32_t node_free_count, node_free_cap;
    uint64_t fast_opens; /* opens answered in C */
    uint64_t first_opens; /* of them, first opens of lower files, their bytes stored (fll_fast_open) */
    uint64_t first_uncached; /* of those, the ones that read their file from the disk */
    uint64_t pass_opens;  /* of them, opens of lower files passed through (fll_fast_open) */
    uint8_t pass_refused; /* the kernel refused a lower file as a backing file: C passes none through */
    char *first_buf;      /* FLL_FIRST_MAX bytes for those, allocated at the first */
    fll_parked parked[FLL_PARKED]; /* those waiting for their reads, in the order they came */
    uint32_t parked_count;
    uint64_t dir_ends;   /* reads past the end of a listing answered in C */

    char *cow_dir;        /* where setattrs answered in C make their copies; NULL: none are (fuse-ll-cow.c) */
    int64_t cow_limit;    /* the biggest file they copy */
    uint32_t cow_room;    /* copies they may still make before JS says again */
    uint64_t *cow_ring;   /* the marked nodes, oldest first from cow_next (COW_MAX) */
    uint32_t cow_next;
    uint64_t cow_setattrs; /* setattrs answered in C */
    uint64_t cow_getattrs; /* getattrs of marked lower files, upper directories and made files answered in C */
    uint64_t cow_getxattrs; /* and their getxattrs */
    uint64_t cow_listxattrs; /* and listxattrs */
    uint64_t made_setxattrs; /* ACLs set on files JS made, through their creating open */
    uint64_t cow_lookups;    /* lookups of names missing from marked upper-only directories */
    uint64_t cow_dir_lookups; /* lookups of marked directories answered in C */
    uint64_t cow_file_lookups; /* first lookups of lower files answered in C (file_lookup) */
    uint64_t cow_dir_first_lookups; /* first lookups of lower directories answered in C (lower_dir_lookup) */
    fll_lower_names *lower_names; /* names of lower directories read for those lookups (lower-names.c) */
    uint64_t ids_next, ids_end; /* node ids JS reserved for those: [next, end) (lookupIds) */
    struct fll_cow_name **cow_names; /* the marked nodes' names, by (parent, name) hash */
    struct fll_cow_name **cow_pending; /* names renames answered in C gave their directories before
                                        * the disk has them (fll_cow_rename), by the same hash */
    uint64_t cow_renames;    /* renames of marked lower files answered in C */
    uint64_t cow_links;      /* links of marked lower files answered in C */
    uint64_t cow_setxattrs;  /* setxattrs of marked lower files answered in C (their copy-ups) */
    uint64_t js_epoch;       /* requests and forgets handed to JS so far (see missing_in) */
    struct fll_missing {     /* the last names lookups in C found missing, a ring (parent 0: none) */
        uint64_t parent, epoch; /* and js_epoch then (see missing_in) */
        char name[256];
    } missing[FLL_MISSING];
    uint32_t missing_next;
    double cow_entry_timeout; /* seconds a name looked up in C lives (JS's entry timeout) */
    uint32_t queued_forgets; /* forgets queued for JS: their nodes may be gone for JS already */
    int deliver_now; /* a record JS should have before the next request is read (lower_dir_lookup) */
    uint64_t cow_opens;      /* opens for writing of marked lower files, copied up (fll_cow_open) */
    uint64_t open_fhs[FLL_OPEN_FHS]; /* file handles JS reserved for those opens (cowOpenFh) */
    uint32_t open_fh_count;
    int open_fhs_refused;    /* a backing file C could not register: those opens are JS's */
    double cow_negative_timeout; /* seconds such an absence lives (JS's negative timeout; 0: ENOENT) */
    double cow_attr_timeout; /* seconds a copied-up directory's attributes live (JS's attr timeout) */
    double made_attr_timeout; /* seconds the attributes of a file JS made live (JS's attr timeout) */
    int cow_exact_mode;      /* copies are made with their modes (STAGE_EXACT_MODE) */
    int cow_meta;            /* a setattr's copy is a metadata-only one (metacopy=on, see cow_file) */
    int64_t cow_pass_min;    /* a lower file of this size or more passes through when opened for reading (0:
                              * none), as JS's OpenFiles.passesLower has it while passthrough is granted */

    fll_slot *slots;
    uint32_t nslots, free_head; /* free_head: index + 1, 0 = none */
    uint64_t outstanding;
    uint64_t queued;     /* requests read from /dev/fuse, not yet delivered, that await a reply */

    unsigned notifies;   /* invalidations on the thread pool (notifyInvalInodeAsync), not completed */
    int destroy_pending; /* the session ended while some were: the last one destroys `se` */
} fll_session;

/* fuse-ll-ops.c */
extern const struct fuse_lowlevel_ops fll_ops;
void fll_push(fll_session *s, fll_rec *r);
/* An open for JS to answer: `first`, the node's first; `uncached`, C started reading its file;
 * `kill_suidgid`, the open asks for set-ID bits to be cleared (killpriv v2). */
void fll_open_to_js(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int first, int uncached, int kill_suidgid);

/* fuse-ll-session.c */
/* The session behind a handle object; NULL after throwing a TypeError. */
fll_session *fll_unwrap(napi_env env, napi_value v);
/* Integral JS number in [min, max] (exact: 1.5 or NaN is an error), or a named property of `obj`
 * (`name` is used in the error). Return 0 after throwing. */
int fll_int(napi_env env, napi_value v, const char *name, double min, double max, int64_t *out);
/* The same check for a number already read. */
int fll_check(napi_env env, double d, const char *name, double min, double max, int64_t *out);
/* (handle, integer): the session, the integer in *n, checked as fll_int does; NULL after throwing. */
fll_session *fll_session_and_int(napi_env env, napi_callback_info info, const char *name, double min, double max,
                                int64_t *n);
napi_value fll_int32(napi_env env, int32_t n);
int fll_prop_int(napi_env env, napi_value obj, const char *name, double min, double max, int64_t *out);
/* Boolean property; absent/undefined counts as false. */
int fll_prop_bool(napi_env env, napi_value obj, const char *name, int *out);
/* The bytes of a string (escapes as names.h describes) or a Buffer, without NUL bytes (free them);
 * NULL after throwing. */
char *fll_string(napi_env env, napi_value v, const char *name);
/* The fuse_req_t behind a JS request id, still in the table (arguments are checked before
 * fll_drop_req, so a bad argument throws and leaves the request answerable); NULL after throwing
 * (unknown id while mounted) or silently (the session has ended: late replies are dropped). */
fuse_req_t fll_peek_req(napi_env env, fll_session *s, napi_value id, uint32_t *idx);
void fll_drop_req(fll_session *s, uint32_t idx);
/* Runs `send` (a fuse_reply_* call on `req`) unless the fd is closed; then frees the request. */
#define FLL_SEND(s, req, send)                    \
    do {                                          \
        if ((s)->fd_closed) fuse_reply_none(req); \
        else (void)(send);                        \
    } while (0)
napi_value fll_js_create(napi_env env, napi_callback_info info);
napi_value fll_js_op_names(napi_env env, napi_callback_info info);
napi_value fll_js_mount(napi_env env, napi_callback_info info);
napi_value fll_js_unmount(napi_env env, napi_callback_info info);
napi_value fll_js_shutdown(napi_env env, napi_callback_info info);
napi_value fll_js_loop_stats(napi_env env, napi_callback_info info);
napi_value fll_js_sole_caller(napi_env env, napi_callback_info info);

/* fuse-ll-fast.c */
/* Answers the open or release in C when it may (then 1). */
int fll_fast_open(fll_session *s, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int *first, int *uncached);
int fll_fast_release(fll_session *s, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
/* Before the request in `buf` is processed: parked first opens it could bear on are answered. */
void fll_fast_before(fll_session *s, const struct fuse_buf *buf);
/* At the end of a batch: the parked first opens are answered, their reads waited for when
 * `may_wait` (else those not read yet go to JS). */
void fll_fast_unpark(fll_session *s, int may_wait);
void fll_fast_free(fll_session *s);
/* Answers a readdir at the end of the listing JS last gave of the directory (then 1); any other
 * readdir of it, and its forget, take that end away. */
int fll_dir_end_read(fll_session *s, fuse_req_t req, fuse_ino_t ino, off_t off);
void fll_dir_end_forget(fll_session *s, fuse_ino_t ino);
/* The table of nodes C answers for (shared with fuse-ll-cow.c): find, add (NULL when out of
 * memory), and remove an entry nothing uses any more. */
fll_fast_node *fll_node_find(fll_session *s, uint64_t ino);
fll_fast_node *fll_node_add(fll_session *s, uint64_t ino);
void fll_node_drop_unused(fll_session *s, fll_fast_node *n);
napi_value fll_js_fast_allow(napi_env env, napi_callback_info info);
napi_value fll_js_fast_deny(napi_env env, napi_callback_info info);
napi_value fll_js_fast_opens(napi_env env, napi_callback_info info);
napi_value fll_js_fast_passing(napi_env env, napi_callback_info info);
napi_value fll_js_fast_join(napi_env env, napi_callback_info info);
napi_value fll_js_fast_leave(napi_env env, napi_callback_info info);
napi_value fll_js_fast_watch(napi_env env, napi_callback_info info);
napi_value fll_js_dir_end(napi_env env, napi_callback_info info);

/* fuse-ll-cow.c */
/* Answers the getattr of a marked lower file or upper-only directory in C when it may (then 1). */
int fll_cow_getattr(fll_session *s, fuse_req_t req, fuse_ino_t ino);
int fll_cow_open(fll_session *s, fuse_req_t req, fuse_ino_t ino, fll_fast_node *n, struct fuse_file_info *fi);
/* Answers the getxattr of a marked lower file in C, for a name outside `trusted.`, when it may (then 1). */
int fll_cow_getxattr(fll_session *s, fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
/* Answers the listxattr of a marked lower file that holds no `trusted.` name in C when it may (then 1). */
int fll_cow_listxattr(fll_session *s, fuse_req_t req, fuse_ino_t ino, size_t size);
/* Answers the lookup of a name missing from every layer of a marked directory (then 1). */
int fll_cow_lookup(fll_session *s, fuse_req_t req, fuse_ino_t parent, const char *name);
/* Answers the rename of a marked lower file to a missing name in C when it may (then 1). */
int fll_cow_rename(fll_session *s, fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                   const char *newname, unsigned int flags);
/* Answers the link of a marked lower file to a missing name in C when it may (then 1). */
int fll_cow_link(fll_session *s, fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);
/* Answers the setattr in C when it may (then 1). */
int fll_cow_setattr(fll_session *s, fuse_req_t req, fuse_ino_t ino, const struct stat *attr, int to_set,
                    const struct fuse_file_info *fi);
void fll_cow_free(fll_session *s);

/* lower-names.c. Whether `name` is in `dir`, the probe path at `depth` of a directory marked for
 * its lookups (0: the upper layer's, which changes; the others lower, which never do): 1, with its
 * host path in `path` (PATH_MAX) and its lstat in *st; 0, not there; -1, unknown (an error but
 * ENOENT, a path too long). A lower directory's names, once read, spare the lstat of a name it does
 * not list. */
int fll_probe_name(fll_session *s, const char *dir, int depth, const char *name, char *path, struct stat *st);
/* Lower directories read so far (loopStats). */
uint64_t fll_lower_reads(const fll_session *s);
void fll_lower_free(fll_session *s);
napi_value fll_js_cow_configure(napi_env env, napi_callback_info info);
napi_value fll_js_cow_room(napi_env env, napi_callback_info info);
napi_value fll_js_cow_open_fh(napi_env env, napi_callback_info info);
napi_value fll_js_cow_idle(napi_env env, napi_callback_info info);
napi_value fll_js_cow_busy(napi_env env, napi_callback_info info);
napi_value fll_js_cow_allow(napi_env env, napi_callback_info info);
napi_value fll_js_cow_deny(napi_env env, napi_callback_info info);
napi_value fll_js_pending_drop(napi_env env, napi_callback_info info);
napi_value fll_js_pending_add(napi_env env, napi_callback_info info);
/* The release of a file JS made: its creating open's ends the setattrs answered through it. */
void fll_made_release(fll_session *s, fuse_ino_t ino, const struct fuse_file_info *fi);
int fll_made_setxattr(fll_session *s, fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                      size_t size, int flags);
/* Answers the setxattr of a `user.` name on a marked lower file in C, copying it up (then 1). */
int fll_cow_setxattr(fll_session *s, fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                     size_t size, int flags);
napi_value fll_js_made(napi_env env, napi_callback_info info);
napi_value fll_js_made_end(napi_env env, napi_callback_info info);
napi_value fll_js_probe_allow(napi_env env, napi_callback_info info);
napi_value fll_js_probe_deny(napi_env env, napi_callback_info info);
napi_value fll_js_positive_allow(napi_env env, napi_callback_info info);
napi_value fll_js_lookup_ids(napi_env env, napi_callback_info info);

/* fuse-ll-passthrough.c */
int fll_is_init(const struct fuse_buf *buf);
void fll_process_init(fll_session *s);
/* Whether the request in `buf` asks the daemon to clear setuid/setgid (killpriv v2). */
int fll_kills_suidgid(const struct fuse_buf *buf);
/* The thread that sent the request in `buf`, as the daemon's pid namespace numbers it (0: none it
 * can see, or the kernel's own). */
uint32_t fll_caller(const struct fuse_buf *buf);
/* The opcode of the request in `buf`, and the node it names (0 when it cannot be read). */
uint32_t fll_opcode(const struct fuse_buf *buf, uint64_t *nodeid);
/* Whether a request of `opcode` leaves every node it does not name (by its nodeid) as it was:
 * lookups, reads, listings, opens, releases, forgets. */
int fll_leaves_others(uint32_t opcode);
/* FUSE_TMPFILE (an O_TMPFILE open, Linux 6.1+), which libfuse 3.14 does not know: its arguments are
 * a create's (the name is "/"), and so is the reply it wants. The request in `buf` becomes a
 * create that op_create hands on as a tmpfile; whether it was one. */
int fll_take_tmpfile(struct fuse_buf *buf);
int fll_reply_open_backing(fuse_req_t req, const struct fuse_file_info *fi, int32_t backing);
int fll_backing_open(fll_session *s, int fd);
int fll_backing_close(fll_session *s, int32_t id);
int fll_reply_create_backing(fuse_req_t req, const struct fuse_entry_param *e, const struct fuse_file_info *fi,
                             int32_t backing);
napi_value fll_js_granted(napi_env env, napi_callback_info info);
napi_value fll_js_backing_open(napi_env env, napi_callback_info info);
napi_value fll_js_backing_close(napi_env env, napi_callback_info info);

/* fuse-ll-reply.c */
napi_value fll_js_reply_err(napi_env env, napi_callback_info info);
napi_value fll_js_reply_entry(napi_env env, napi_callback_info info);
napi_value fll_js_reply_create(napi_env env, napi_callback_info info);
napi_value fll_js_reply_attr(napi_env env, napi_callback_info info);
napi_value fll_js_reply_readlink(napi_env env, napi_callback_info info);
napi_value fll_js_reply_open(napi_env env, napi_callback_info info);
napi_value fll_js_reply_write(napi_env env, napi_callback_info info);
napi_value fll_js_reply_lseek(napi_env env, napi_callback_info info);
napi_value fll_js_reply_ioctl(napi_env env, napi_callback_info info);
napi_value fll_js_reply_buf(napi_env env, napi_callback_info info);
napi_value fll_js_reply_xattr(napi_env env, napi_callback_info info);
napi_value fll_js_reply_statfs(napi_env env, napi_callback_info info);
napi_value fll_js_reply_readdir(napi_env env, napi_callback_info info);
napi_value fll_js_reply_readdirplus(napi_env env, napi_callback_info info);
napi_value fll_js_notify_inval_inode(napi_env env, napi_callback_info info);
napi_value fll_js_notify_inval_inode_async(napi_env env, napi_callback_info info);
napi_value fll_js_notify_inval_entry(napi_env env, napi_callback_info info);
napi_value fll_js_notify_inval_entry_async(napi_env env, napi_callback_info info);
napi_value fll_js_notify_store(napi_env env, napi_callback_info info);

#endif
