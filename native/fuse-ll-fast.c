/* Opens answered in C. Reading a small file the kernel has cached (a build's headers, a walk that
 * reads every file a second time) costs two requests: an open and a release. JS decides nothing on
 * either once it has opened the node for reading before: the union would open the same host file,
 * and the kernel would read no byte of it, since its pages are kept. So JS marks such a node
 * (`fastAllow`), and the next open for reading only (no O_TRUNC, O_APPEND, O_DIRECT or sync flag) is
 * answered here with keep_cache and the file handle FLL_FAST_FH, which no host file backs; its
 * release is answered here too. The node table counts each node's fast opens.
 *
 * What JS keeps in step (ll-bridge.ts):
 * - A request that needs a host file behind a fast handle (a read of pages the kernel dropped, an
 *   fstat of an unlinked file, lseek, fsync) makes JS open one for the node, its anchor,
 *   and `fastWatch` it: the release of the node's last fast open is then handed to JS (a record
 *   marked answered, fh FLL_FAST_FH), which closes the anchor.
 * - Before a node loses its name (unlink, a rename onto it) while it has fast opens, JS opens its
 *   anchor, which keeps the data as any open file does.
 * - A node JS answers in passthrough mode, one that gains a hard link (its pages would go stale)
 *   or one JS forgets is denied (`fastDeny`): its later opens go to JS again. A node JS opens while
 *   it has fast opens stays in the daemon's I/O mode (the kernel refuses to mix the two).
 *
 * A node's first open for reading is answered here too when it is a small lower file (a container
 * started again from an image used before, a build's sources, a walk that reads every file): JS
 * marks such a file with its host path for copy-ups in C (fuse-ll-cow.c) and, when no open of it
 * has been answered yet, gives it `first` with that mark. So is one in the upper layer (a
 * container started again over the changes it made before), which JS marks with its own path, as
 * `upper`: nothing copies it, and one that is a metadata-only copy (its bytes below, an earlier
 * mount's metacopy) goes to JS. The open then does what JS's first open does (ll-bridge.ts,
 * #store): it reads the file's bytes, hands them to the kernel's page cache of the node
 * (notify_store, safe only while the kernel holds no page of it, hence the first open only), tells
 * the kernel to fetch the attributes again if that read moved the file's atime, and answers as a
 * fast open. A file the host has not cached (cachestat) has its read started (RWF_NOWAIT starts
 * reading the pages in) and its open *parked* (fll_parked): the other requests of the batch read
 * from /dev/fuse are answered meanwhile, and their files' reads started too, so that the disk
 * serves several readers at once, as it would a threaded daemon's. At the end of the batch
 * (fll_fast_unpark) the opens whose reads ended are answered; if the kernel's queue is empty the
 * rest wait for theirs, else they go to JS, whose reads do not hold up the loop. A request of the
 * batch that names a parked node, or that may change a node it does not name (a rename, a link),
 * has the parked opens answered first (fll_fast_before): a copy-up or a truncation must come
 * after the bytes stored, never before. JS hears of each file read from the disk (tell_uncached)
 * and reads the next ones of its directory ahead. A file that is too big (FLL_FIRST_MAX), has
 * another name or cannot be opened goes to JS. Whoever answers a node's first open takes `first`
 * from it: an open that goes to JS carries it (size bit 1), and JS stores the file's bytes only at
 * that open, or at the first of a node it never marked. A mark pushed out of the table
 * (fuse-ll-cow.c, COW_MAX) takes `first` along: no bytes are stored at that node's first open, and
 * the kernel reads them by request.
 * An open for writing of such a file by root, while no file of it is open, is copied up and
 * answered in C too (fuse-ll-cow.c, fll_cow_open).
 *
 * And the opens for reading of a lower file JS would pass through (1 MiB or more; a `held` mark
 * with `pass`, fuse-ll-cow.c: a program, a library) are passed through here (pass_open), while JS
 * holds no file of it open: to a backing file registered at the first of them and closed with the
 * last (fast_closed). They count as the node's fast opens (FLL_FAST_FH), so JS's rules for those
 * hold, and JS's own opens of the node beside them join them on that backing id (fastJoin,
 * fastLeave): the kernel keeps an inode in one I/O mode, to one backing file, while any file of it
 * is open. */
#include "fuse-ll.h"
#include "op.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>

/* Open flags the fast path answers: read-only with none of these. */
#define SLOW_FLAGS (O_ACCMODE | O_TRUNC | O_APPEND | O_DIRECT | O_SYNC | O_DSYNC | O_CREAT | O_PATH)

static uint64_t hash(uint64_t ino) {
    ino ^= ino >> 33;
    ino *= 0xff51afd7ed558ccdULL;
    return ino ^ (ino >> 33);
}

/* The node table: the nodes live in chunks of NODE_CHUNK, which never move (a node keeps its
 * address until it is removed), and an index of (ino, place) pairs, open addressing with linear
 * probing, at most half full, finds them. A probe reads 16 bytes per step and touches no node: the
 * index of 36,000 nodes takes 2 MiB where a table of the nodes themselves took 16 (and a lookup
 * there, a cache and TLB miss at each step; its growths copied every node and faulted in pages
 * the size of the whole table). Removed nodes' places are reused first. */
#define NODE_CHUNK 1024

static fll_fast_node *node_at(const fll_session *s, uint32_t at) {
    return &s->node_chunks[at / NODE_CHUNK][at % NODE_CHUNK];
}

/* The index slot holding `ino`, or the free slot that ends its probe. */
static fll_node_slot *slot_of(const fll_session *s, uint64_t ino) {
    uint32_t i = (uint32_t)hash(ino) & s->node_mask;
    while (s->node_index[i].ino != 0 && s->node_index[i].ino != ino) i = (i + 1) & s->node_mask;
    return &s->node_index[i];
}

fll_fast_node *fll_node_find(fll_session *s, uint64_t ino) {
    if (!s->node_index) return NULL;
    const fll_node_slot *slot = slot_of(s, ino);
    return slot->ino == 0 ? NULL : node_at(s, slot->at);
}

static int index_grow(fll_session *s) {
    uint32_t size = s->node_index ? (s->node_mask + 1) * 2 : 1024;
    fll_node_slot *index = calloc(size, sizeof *index);
    if (!index) return -1;
    fll_node_slot *old = s->node_index;
    uint32_t old_size = old ? s->node_mask + 1 : 0;
    s->node_index = index;
    s->node_mask = size - 1;
    for (uint32_t i = 0; i < old_size; i++)
        if (old[i].ino != 0) *slot_of(s, old[i].ino) = old[i];
    free(old);
    return 0;
}

/* A free place for a node: a removed node's, or the next of the last chunk (a new chunk). */
static int place_take(fll_session *s, uint32_t *at) {
    if (s->node_free_count > 0) {
        *at = s->node_free[--s->node_free_count];
        return 0;
    }
    if (s->node_places % NODE_CHUNK == 0) {
        uint32_t chunk = s->node_places / NODE_CHUNK;
        if (chunk == s->node_chunk_cap) {
            uint32_t cap = s->node_chunk_cap ? s->node_chunk_cap * 2 : 16;
            fll_fast_node **chunks = realloc(s->node_chunks, cap * sizeof *chunks);
            if (!chunks) return -1;
            s->node_chunks = chunks;
            s->node_chunk_cap = cap;
        }
        /* Zeroed: a place never used holds no node. */
        if (!(s->node_chunks[chunk] = calloc(NODE_CHUNK, sizeof(fll_fast_node)))) return -1;
    }
    *at = s->node_places++;
    return 0;
}

/* The node's entry, added if missing; NULL when out of memory. */
fll_fast_node *fll_node_add(fll_session *s, uint64_t ino) {
    fll_fast_node *n = fll_node_find(s, ino);
    if (n) return n;
    if ((!s->node_index || (s->node_count + 1) * 2 > s->node_mask + 1) && index_grow(s) != 0) return NULL;
    /* Room to give the place back at its removal, taken now: a removal cannot fail. */
    if (s->node_free_cap < s->node_places + 1) {
        uint32_t cap = s->node_free_cap ? s->node_free_cap * 2 : NODE_CHUNK;
        uint32_t *free_places = realloc(s->node_free, cap * sizeof *free_places);
        if (!free_places) return NULL;
        s->node_free = free_places;
        s->node_free_cap = cap;
    }
    uint32_t at;
    if (place_take(s, &at) != 0) return NULL;
    fll_node_slot *slot = slot_of(s, ino);
    slot->ino = ino;
    slot->at = at;
    s->node_count++;
    n = node_at(s, at);
    n->ino = ino;
    return n;
}

/* Linear probing without tombstones: the index entries after the hole that probed past it move
 * up. The node itself stays where it is, zeroed: the next node placed there starts with nothing
 * of this one's. */
static void node_remove(fll_session *s, fll_fast_node *n) {
    fll_node_slot *index = s->node_index;
    uint32_t mask = s->node_mask, hole = (uint32_t)(slot_of(s, n->ino) - index);
    s->node_free[s->node_free_count++] = index[hole].at;
    *n = (fll_fast_node){0};
    index[hole] = (fll_node_slot){0};
    s->node_count--;
    for (uint32_t i = (hole + 1) & mask; index[i].ino != 0; i = (i + 1) & mask) {
        uint32_t home = (uint32_t)hash(index[i].ino) & mask;
        /* Moves into the hole unless its home lies cyclically in (hole, i]. */
        if (((i - home) & mask) >= ((i - hole) & mask)) {
            index[hole] = index[i];
            index[i] = (fll_node_slot){0};
            hole = i;
        }
    }
}

static void fast_closed(fll_session *s, fuse_ino_t ino, fll_fast_node *n);

static int fast_reply(fll_session *s, fuse_req_t req, fll_fast_node *n, struct fuse_file_info *fi) {
    n->opens++;
    s->fast_opens++;
    fi->fh = FLL_FAST_FH;
    fi->keep_cache = 1;
    /* One that never reached the caller (interrupted) has no release to follow: this is it. */
    if (s->fd_closed) fuse_reply_none(req);
    else if (fuse_reply_open(req, fi) < 0) fast_closed(s, n->ino, n);
    return 1;
}

static int atime_moved(const struct stat *before, const struct stat *after) {
    return before->st_atim.tv_sec != after->st_atim.tv_sec || before->st_atim.tv_nsec != after->st_atim.tv_nsec;
}

/* Tells JS that a first open answered here found its file uncached: the reader goes through files
 * the host has not cached, and JS reads the next ones of the directory ahead (read-ahead.ts). */
static void tell_uncached(fll_session *s, fuse_ino_t ino) {
    fll_rec *r = calloc(1, sizeof *r);
    if (!r) return; /* out of memory: no read-ahead for it */
    r->kind = FLL_OPEN;
    r->ino = ino;
    r->valid = FLL_OPEN_UNCACHED;
    fll_push(s, r);
}

/* The end of a first open answered here once the file's `got` bytes are in first_buf: they go to
 * the kernel's page cache of the node, and the open is answered. */
static int first_stored(fll_session *s, fuse_req_t req, fuse_ino_t ino, fll_fast_node *n, struct fuse_file_info *fi, ssize_t got, int uncached) {
    if (got > 0) {
        /* A store that fails costs nothing: the kernel asks with a read then. */
        struct fuse_bufvec buf = FUSE_BUFVEC_INIT((size_t)got);
        buf.buf[0].mem = s->first_buf;
        (void)fuse_lowlevel_notify_store(s->se, ino, 0, &buf, 0);
    }
    n->allowed = 1;
    s->first_opens++;
    if (uncached) {
        s->first_uncached++;
        tell_uncached(s, ino);
    }
    return fast_reply(s, req, n, fi);
}

/* A read that moved the file's atime: the kernel's is stale (read in part or not at all, it may
 * still have moved it). */
static void atime_check(fll_session *s, fuse_ino_t ino, int fd, const struct stat *before) {
    struct stat after;
    if (fstat(fd, &after) == 0 && atime_moved(before, &after)) fuse_lowlevel_notify_inval_inode(s->se, ino, -1, 0);
}

/* The first open of `n`, a marked lower file, or a file in the upper layer (see the top): 1 when
 * answered, or parked (see the top). */
static int first_open(fll_session *s, fuse_req_t req, fuse_ino_t ino, fll_fast_node *n, struct fuse_file_info *fi, int *uncached) {
    if (!n->src || n->dir || s->fd_closed) return 0;
    /* A metadata-only copy (an earlier mount's metacopy) has its bytes in a lower layer: JS's. */
    if (n->upper && (lgetxattr(n->src, METACOPY_XATTR, NULL, 0) >= 0 || errno != ENODATA)) return 0;
    if (!s->first_buf && !(s->first_buf = malloc(FLL_FIRST_MAX))) return 0;
    int fd = open(n->src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (fi->flags & O_NOATIME));
    if (fd < 0) return 0;
    struct stat before = {.st_size = -1};
    ssize_t got = -2; /* no size matches */
    if (fstat(fd, &before) == 0 && S_ISREG(before.st_mode) && before.st_nlink == 1 && before.st_size <= FLL_FIRST_MAX) {
        struct iovec v = {s->first_buf, (size_t)before.st_size};
        if (before.st_size == 0) {
            got = 0;
        } else {
            /* Asked without reading: a read that may not wait starts reading the pages in. */
            *uncached = first_page_cached(fd) == 0;
            got = preadv2(fd, &v, 1, 0, RWF_NOWAIT);
            if (got != before.st_size && *uncached && s->parked_count < FLL_PARKED) {
                /* Parked: answered at the end of the batch (fll_fast_unpark). */
                s->parked[s->parked_count++] = (fll_parked){.req = req, .ino = ino, .fi = *fi, .fd = fd, .before = before};
                n->parked = 1;
                return 1;
            }
            atime_check(s, ino, fd, &before);
        }
    }
    close(fd);
    if (got != before.st_size) return 0;
    return first_stored(s, req, ino, n, fi, got, *uncached);
}

void fll_fast_unpark(fll_session *s, int may_wait) {
    uint32_t count = s->parked_count;
    if (count == 0) return;
    s->parked_count = 0;
    /* Those read meanwhile first, then the rest in turn: the first wait lets the others' reads end. */
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t i = 0; i < count; i++) {
            fll_parked *p = &s->parked[i];
            if (p->fd < 0) continue;
            const size_t size = (size_t)p->before.st_size;
            struct iovec v = {s->first_buf, size};
            ssize_t got = preadv2(p->fd, &v, 1, 0, pass == 1 && may_wait ? 0 : RWF_NOWAIT);
            if ((size_t)got != size && pass == 0) continue;
            atime_check(s, p->ino, p->fd, &p->before);
            close(p->fd);
            p->fd = -1;
            fll_fast_node *n = fll_node_find(s, p->ino); /* never gone: parked keeps it */
            if (n) n->parked = 0;
            if (n && (size_t)got == size) {
                first_stored(s, p->req, p->ino, n, &p->fi, got, 1);
            } else {
                /* JS answers it (a first open that carries `first`), and may hold the file open. */
                if (n) n->js_open = 1;
                fll_open_to_js(p->req, p->ino, &p->fi, 1, 1, 0); /* (never asked at an open for reading) */
            }
        }
    }
}

void fll_fast_before(fll_session *s, const struct fuse_buf *buf) {
    uint64_t nodeid;
    uint32_t opcode = fll_opcode(buf, &nodeid);
    int named = 0;
    for (uint32_t i = 0; i < s->parked_count && !named; i++) named = s->parked[i].ino == nodeid;
    if (named || !fll_leaves_others(opcode)) fll_fast_unpark(s, 0);
}

/* An open for reading of a lower file JS passes through (a mark of kind passed: too big to copy
 * here, and at least the size JS passes through; see the top): passed through as JS would pass it,
 * to the backing file the node's other open files pass through to, or, at the first, to the file
 * opened and registered now. Not while JS may hold a file of the node open (its mode could be
 * another). The id goes with the node's last such open (fast_closed). 1 when answered. */
static int pass_open(fll_session *s, fuse_req_t req, fuse_ino_t ino, fll_fast_node *n, struct fuse_file_info *fi) {
    if (!n->pass || !n->src || n->js_open || n->allowed || s->pass_refused || s->fd_closed) return 0;
    if (!n->pass_backing) {
        if (n->opens) return 0; /* never: opens in the daemon's mode come with allowed */
        int fd = open(n->src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (fi->flags & O_NOATIME));
        if (fd < 0) return 0;
        int id = fll_backing_open(s, fd);
        close(fd); /* the kernel keeps its own reference */
        /* Not allowed, or a stacked layer (ELOOP): JS finds out which, and decides for every file. */
        if (id <= 0) {
            s->pass_refused = 1;
            return 0;
        }
        n->pass_backing = id;
    }
    n->opens++;
    fi->fh = FLL_FAST_FH;
    if (fll_reply_open_backing(req, fi, n->pass_backing) < 0) {
        /* It never reached the caller (interrupted): no release follows, so this is it. */
        fast_closed(s, ino, n);
        return 1;
    }
    s->fast_opens++;
    s->pass_opens++;
    return 1;
}

/* 1 when answered; else *first is 1 when this is the node's first open (see the top), and
 * *uncached 1 when C found that file uncached, its read started. */
int fll_fast_open(fll_session *s, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int *first, int *uncached) {
    fll_fast_node *n = fll_node_find(s, ino);
    if (!n) return 0;
    *first = n->first;
    n->first = 0;
    if (!(fi->flags & SLOW_FLAGS)) {
        /* Files of the node C passed through hold it in that mode: no other open is answered here. */
        if (n->allowed && !n->pass_backing) return fast_reply(s, req, n, fi);
        if (pass_open(s, req, ino, n, fi)) return 1;
        if (*first && !n->pass_backing && first_open(s, req, ino, n, fi, uncached)) {
            *first = 0;
            return 1;
        }
    } else if (fll_cow_open(s, req, ino, n, fi)) {
        *first = 0;
        return 1;
    }
    /* JS answers it: it may hold the file open from now on (see fll_cow_open). */
    n->js_open = 1;
    fll_node_drop_unused(s, n);
    return 0;
}

int fll_fast_release(fll_session *s, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    if (fi->fh != FLL_FAST_FH) return 0;
    FLL_SEND(s, req, fuse_reply_err(req, 0));
    fll_fast_node *n = fll_node_find(s, ino);
    if (n && n->opens > 0) fast_closed(s, ino, n); /* else never: every fast open was counted */
    return 1;
}

/* One of the opens of node `ino` answered here is closed: with its last, the backing id they passed
 * through to goes (the kernel's files keep their own references), and JS hears of it when it
 * watches them. */
static void fast_closed(fll_session *s, fuse_ino_t ino, fll_fast_node *n) {
    if (--n->opens > 0) return;
    if (n->pass_backing) {
        (void)fll_backing_close(s, n->pass_backing);
        n->pass_backing = 0;
    }
    if (n->watched) {
        n->watched = 0;
        fll_rec *r = calloc(1, sizeof *r);
        if (r) { /* lost only when out of memory: the anchor then stays open until the node is forgotten */
            r->kind = FLL_RELEASE;
            r->ino = ino;
            r->fh = FLL_FAST_FH;
            r->has_fh = 1;
            fll_push(s, r);
        }
    }
    fll_node_drop_unused(s, n);
}

void fll_node_drop_unused(fll_session *s, fll_fast_node *n) {
    /* A name stays until JS takes it away (cowDeny): a copy made here keeps it (see unmark_src). */
    if (!n->allowed && !n->first && n->opens == 0 && !n->src && !n->dir_end && !n->no_caps && !n->made && !n->probe &&
        !n->named && !n->parked)
        node_remove(s, n);
}

/* The end of a listing. A reader of a directory reads until a reply comes back empty, so every
 * pass costs one request more than its entries need: the read at the offset where the last reply
 * ended. JS keeps a pass's listing until then (ll-bridge.ts, #readdir); instead, when a reply of
 * its reaches the end, it drops the listing and tells C where it ended (dirEnd), and the read there
 * is answered here, empty, as JS would answer it from that listing. The end holds for that listing
 * only: any other read of the directory goes to JS and takes the end away first (JS sets it again
 * if its reply ends the new listing), and so does the node's forget. */
int fll_dir_end_read(fll_session *s, fuse_req_t req, fuse_ino_t ino, off_t off) {
    fll_fast_node *n = fll_node_find(s, ino);
    if (!n || !n->dir_end) return 0;
    int at_end = off == n->dir_end;
    n->dir_end = 0;
    fll_node_drop_unused(s, n);
    if (!at_end) return 0;
    s->dir_ends++;
    FLL_SEND(s, req, fuse_reply_buf(req, NULL, 0));
    return 1;
}

void fll_dir_end_forget(fll_session *s, fuse_ino_t ino) {
    fll_fast_node *n = fll_node_find(s, ino);
    if (!n || !n->dir_end) return;
    n->dir_end = 0;
    fll_node_drop_unused(s, n);
}

void fll_fast_free(fll_session *s) {
    for (uint32_t at = 0; at < s->node_places; at++) {
        fll_fast_node *n = node_at(s, at);
        if (n->ino == 0) continue;
        free(n->src);
        free(n->probe);
        if (n->made) close(n->made_fd);
    }
    for (uint32_t chunk = 0; chunk * NODE_CHUNK < s->node_places; chunk++) free(s->node_chunks[chunk]);
    free(s->node_chunks);
    free(s->node_index);
    free(s->node_free);
    s->node_chunks = NULL;
    s->node_index = NULL;
    s->node_free = NULL;
    s->node_count = s->node_places = s->node_chunk_cap = s->node_free_count = s->node_free_cap = 0;
    s->node_mask = 0;
    free(s->first_buf);
    s->first_buf = NULL;
}

/* fastAllow(handle, node) → 1, or 0 when out of memory (the node's opens then go to JS). */
napi_value fll_js_fast_allow(napi_env env, napi_callback_info info) {
    int64_t ino;
    fll_session *s = fll_session_and_int(env, info, "node", 1, 9007199254740991.0, &ino);
    if (!s) return NULL;
    fll_fast_node *n = fll_node_add(s, ino);
    if (n) n->allowed = 1;
    return fll_int32(env, n != NULL);
}

/* fastDeny(handle, node) → the node's fast opens still open (its entry goes once they are closed).
 * Its first open, if none was answered yet, is JS's too. */
napi_value fll_js_fast_deny(napi_env env, napi_callback_info info) {
    int64_t ino;
    fll_session *s = fll_session_and_int(env, info, "node", 1, 9007199254740991.0, &ino);
    if (!s) return NULL;
    fll_fast_node *n = fll_node_find(s, ino);
    if (!n) return fll_int32(env, 0);
    uint32_t opens = n->opens;
    n->allowed = 0;
    n->first = 0;
    fll_node_drop_unused(s, n);
    return fll_int32(env, (int32_t)opens);
}

/* dirEnd(handle, node, offset) → 1, or 0 when out of memory: the listing JS just gave of the
 * directory `node` ends at `offset` (at least 1), where a read is answered in C. */
napi_value fll_js_dir_end(napi_env env, napi_callback_info info) {
    size_t argc = 3;
    napi_value argv[3];
    int64_t ino, end;
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
    fll_session *s = fll_unwrap(env, argv[0]);
    if (!s || !fll_int(env, argv[1], "node", 1, 9007199254740991.0, &ino) ||
        !fll_int(env, argv[2], "offset", 1, 9007199254740991.0, &end))
        return NULL;
    fll_fast_node *n = fll_node_add(s, (uint64_t)ino);
    if (n) n->dir_end = end;
    return fll_int32(env, n != NULL);
}

/* fastOpens(handle, node) → the node's fast opens. */
napi_value fll_js_fast_opens(napi_env env, napi_callback_info info) {
    int64_t ino;
    fll_session *s = fll_session_and_int(env, info, "node", 1, 9007199254740991.0, &ino);
    if (!s) return NULL;
    fll_fast_node *n = fll_node_find(s, ino);
    return fll_int32(env, n ? (int32_t)n->opens : 0);
}

/* fastPassing(handle, node) → 1 when the node's opens answered in C pass through (pass_open): the
 * kernel holds it in that mode, to their backing file, until they are released. */
napi_value fll_js_fast_passing(napi_env env, napi_callback_info info) {
    int64_t ino;
    fll_session *s = fll_session_and_int(env, info, "node", 1, 9007199254740991.0, &ino);
    if (!s) return NULL;
    fll_fast_node *n = fll_node_find(s, ino);
    return fll_int32(env, n && n->opens > 0 && n->pass_backing ? 1 : 0);
}

/* fastJoin(handle, node) → the backing id the node's opens answered here pass through to (0: they
 * do not, or there are none), which JS's own files of the node then pass through to as well: they
 * count as one more of those opens, which keeps the id, until fastLeave. */
napi_value fll_js_fast_join(napi_env env, napi_callback_info info) {
    int64_t ino;
    fll_session *s = fll_session_and_int(env, info, "node", 1, 9007199254740991.0, &ino);
    if (!s) return NULL;
    fll_fast_node *n = fll_node_find(s, ino);
    if (!n || n->opens == 0 || !n->pass_backing) return fll_int32(env, 0);
    n->opens++;
    return fll_int32(env, n->pass_backing);
}

/* fastLeave(handle, node): JS's files of the node that joined its opens answered here are closed. */
napi_value fll_js_fast_leave(napi_env env, napi_callback_info info) {
    int64_t ino;
    fll_session *s = fll_session_and_int(env, info, "node", 1, 9007199254740991.0, &ino);
    if (!s) return NULL;
    fll_fast_node *n = fll_node_find(s, ino);
    if (n && n->opens > 0) fast_closed(s, (fuse_ino_t)ino, n);
    return NULL;
}

/* fastWatch(handle, node) → the node's fast opens; while there are any, the last one's release is
 * handed to JS. */
napi_value fll_js_fast_watch(napi_env env, napi_callback_info info) {
    int64_t ino;
    fll_session *s = fll_session_and_int(env, info, "node", 1, 9007199254740991.0, &ino);
    if (!s) return NULL;
    fll_fast_node *n = fll_node_find(s, ino);
    if (!n || n->opens == 0) return fll_int32(env, 0);
    n->watched = 1;
    return fll_int32(env, (int32_t)n->opens);
}
