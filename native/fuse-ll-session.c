/* Session lifecycle and the request queue (see fuse-ll.h for the threading rules).
 *
 *   create   a handle object wrapping an fll_session (no FUSE state yet)
 *   mount    fuse_session_new + fuse_session_mount (so failures throw at once), then a uv_poll
 *            handle on the non-blocking /dev/fuse; the kernel's INIT arrives as an 'init' event
 *   read     when /dev/fuse is readable, on_readable reads requests until the kernel's queue is
 *            empty (or a batch is full), running libfuse's dispatch on each: the callbacks queue
 *            records, and C answers the few it can
 *   drain    the records become request objects for the JS handler, all in one callback scope so
 *            promise jobs run once per batch rather than once per request
 *   end      the kernel ends the connection (fusermount3 -u, an abort: the read fails or poll
 *            reports an error), or unmount() asks (through the async handle, so never inside the
 *            caller): the session closes /dev/fuse, unmounts lazily, destroys itself, reports
 *            'exit' and closes its handles so the event loop may end. process.exit() (shutdown) and
 *            environment teardown (cleanup hook) do the same synchronously, without the event.
 *
 * Before this design a libfuse thread read the requests and queued them to the JS thread through
 * uv_async: every request then woke two threads instead of one, and on a VM the cross-CPU wakeup
 * cost more than the request itself. */
#include "fuse-ll.h"
#include "names.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define IDX_BITS 24
#define IDX_MASK ((1u << IDX_BITS) - 1)
#define GEN_MASK ((1u << 29) - 1) /* gen << 24 stays below 2^53: ids are exact JS numbers */

/* ---- JS value helpers ---- */

static int throw_type(napi_env env, const char *name, const char *what) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be %s", name, what);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return 0;
}

int fll_int(napi_env env, napi_value v, const char *name, double min, double max, int64_t *out) {
    double d;
    if (napi_get_value_double(env, v, &d) != napi_ok) return throw_type(env, name, "a number");
    return fll_check(env, d, name, min, max, out);
}

int fll_check(napi_env env, double d, const char *name, double min, double max, int64_t *out) {
    if (!(d >= min && d <= max) || (double)(int64_t)d != d) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s must be an integer in range (got %g)", name, d);
        napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
        return 0;
    }
    *out = (int64_t)d;
    return 1;
}

fll_session *fll_session_and_int(napi_env env, napi_callback_info info, const char *name, double min, double max,
                                int64_t *n) {
    size_t argc = 2;
    napi_value argv[2];
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    fll_session *s = fll_unwrap(env, argv[0]);
    return s && fll_int(env, argv[1], name, min, max, n) ? s : NULL;
}

napi_value fll_int32(napi_env env, int32_t n) {
    napi_value v;
    napi_create_int32(env, n, &v);
    return v;
}

int fll_prop_int(napi_env env, napi_value obj, const char *name, double min, double max, int64_t *out) {
    napi_value v;
    if (napi_get_named_property(env, obj, name, &v) != napi_ok) return throw_type(env, name, "readable");
    return fll_int(env, v, name, min, max, out);
}

int fll_prop_bool(napi_env env, napi_value obj, const char *name, int *out) {
    napi_value v;
    napi_valuetype t;
    *out = 0;
    if (napi_get_named_property(env, obj, name, &v) != napi_ok) return throw_type(env, name, "readable");
    napi_typeof(env, v, &t);
    if (t == napi_undefined || t == napi_null) return 1;
    bool b;
    if (napi_get_value_bool(env, v, &b) != napi_ok) return throw_type(env, name, "a boolean");
    *out = b;
    return 1;
}

char *fll_string(napi_env env, napi_value v, const char *name) {
    size_t len;
    char *s = name_from_js(env, v, &len);
    if (!s) return len ? napi_throw_error(env, "ENOMEM", "out of memory"), NULL : (throw_type(env, name, "a string or Buffer"), NULL);
    if (strlen(s) != len) {
        free(s);
        return throw_type(env, name, "a string without null bytes"), NULL;
    }
    return s;
}

static void free_data(napi_env env, void *data, void *hint) {
    (void)env, (void)hint;
    free(data);
}

/* Hands `r->data` to JS without another copy: the Buffer frees it when collected. */
static void set_data(napi_env env, napi_value *out, fll_rec *r) {
    if (napi_create_external_buffer(env, r->size, r->data, free_data, NULL, out) == napi_ok) {
        r->data = NULL;
    } else {
        napi_create_buffer_copy(env, r->size, r->data, NULL, out);
    }
}

/* ---- request ids ---- */

static double slot_put(fll_session *s, fuse_req_t req) {
    if (!s->free_head) {
        uint32_t n = s->nslots ? s->nslots * 2 : 64;
        if (n > IDX_MASK) return -1;
        fll_slot *grown = realloc(s->slots, n * sizeof *grown);
        if (!grown) return -1;
        for (uint32_t i = s->nslots; i < n; i++) grown[i] = (fll_slot){NULL, 1, i + 1 < n ? i + 2 : 0};
        s->slots = grown;
        s->free_head = s->nslots + 1;
        s->nslots = n;
    }
    uint32_t idx = s->free_head - 1;
    fll_slot *sl = &s->slots[idx];
    s->free_head = sl->next_free;
    sl->req = req;
    s->outstanding++;
    return (double)(((uint64_t)sl->gen << IDX_BITS) | idx);
}

static void slot_free(fll_session *s, uint32_t idx) {
    fll_slot *sl = &s->slots[idx];
    sl->req = NULL;
    sl->gen = (sl->gen + 1) & GEN_MASK;
    if (!sl->gen) sl->gen = 1;
    sl->next_free = s->free_head;
    s->free_head = idx + 1;
    s->outstanding--;
}

fuse_req_t fll_peek_req(napi_env env, fll_session *s, napi_value id, uint32_t *idx_out) {
    int64_t n;
    if (!fll_int(env, id, "req", 0, 9007199254740991.0, &n)) return NULL;
    uint32_t idx = (uint32_t)n & IDX_MASK, gen = (uint32_t)((uint64_t)n >> IDX_BITS);
    if (idx < s->nslots && s->slots[idx].req && s->slots[idx].gen == gen) {
        *idx_out = idx;
        return s->slots[idx].req;
    }
    /* After the session ended its requests were dropped: a late reply is not a bug. */
    if (s->state == FLL_MOUNTED) napi_throw_error(env, "ERR_FUSE_REQ", "unknown request id, or request already replied");
    return NULL;
}

void fll_drop_req(fll_session *s, uint32_t idx) { slot_free(s, idx); }

/* ---- queue ---- */

/* Callbacks only run inside on_readable, which drains the queue before it returns. */
void fll_push(fll_session *s, fll_rec *r) {
    if (s->tail) s->tail->next = r;
    else s->head = r;
    s->tail = r;
    if (r->req) s->queued++; /* a forget, or what C answered itself, waits for nothing */
    if (r->lifts) s->queued_lifts++;
    if (r->kind == FLL_FORGET) s->queued_forgets++;
}

static void rec_free(fll_rec *r) {
    free(r->name);
    free(r->name2);
    free(r->data);
    free(r);
}

/* Writes `r`'s numbers into the request fields (every field, so none is left from the previous
 * request) and gives it a request id. 0 after answering ENOMEM (no id left). */
static int fill_fields(fll_session *s, fll_rec *r) {
    double *f = s->fields, id = 0;
    if (r->req) {
        id = slot_put(s, r->req);
        if (id < 0) {
            fuse_reply_err(r->req, ENOMEM);
            return 0;
        }
    }
    f[FLL_F_REQ] = id;
    f[FLL_F_UID] = r->uid;
    f[FLL_F_GID] = r->gid;
    f[FLL_F_PID] = r->pid;
    f[FLL_F_UMASK] = r->umask;
    f[FLL_F_INO] = (double)r->ino;
    f[FLL_F_PARENT] = (double)r->parent;
    f[FLL_F_NEWPARENT] = (double)r->newparent;
    f[FLL_F_FH] = (double)r->fh;
    f[FLL_F_HAS_FH] = r->has_fh;
    f[FLL_F_NLOOKUP] = (double)r->nlookup;
    f[FLL_F_RDEV] = (double)r->rdev;
    f[FLL_F_SIZE] = (double)r->size;
    f[FLL_F_OFFSET] = (double)r->offset;
    f[FLL_F_MODE] = r->mode;
    f[FLL_F_FLAGS] = r->flags;
    f[FLL_F_VALID] = r->valid;
    f[FLL_F_MASK] = r->mask;
    f[FLL_F_DATASYNC] = r->datasync;
    f[FLL_F_ST_MODE] = r->st.st_mode;
    f[FLL_F_ST_UID] = r->st.st_uid;
    f[FLL_F_ST_GID] = r->st.st_gid;
    f[FLL_F_ST_SIZE] = (double)r->st.st_size;
    f[FLL_F_ATIME] = (double)r->st.st_atim.tv_sec;
    f[FLL_F_ATIME_NS] = (double)r->st.st_atim.tv_nsec;
    f[FLL_F_MTIME] = (double)r->st.st_mtim.tv_sec;
    f[FLL_F_MTIME_NS] = (double)r->st.st_mtim.tv_nsec;
    f[FLL_F_ANSWERED] = r->req == NULL; /* no reply owed: forget, and what C answered itself */
    /* Other requests read from /dev/fuse and not answered yet: still to be delivered after this
     * one, or waiting on the thread pool. */
    f[FLL_F_WAITING] = (double)(s->queued + s->outstanding - (r->req ? 1 : 0));
    f[FLL_F_KILL_SUIDGID] = r->kill_suidgid;
    return 1;
}

static napi_value str_or_undefined(napi_env env, const char *str) {
    napi_value v;
    /* Names are bytes to the kernel: those that are not UTF-8 come escaped (names.h). */
    if (!str || name_to_js(env, str, strlen(str), &v) != napi_ok) napi_get_undefined(env, &v);
    return v;
}

/* ---- ending ---- */

static void on_closed(uv_handle_t *h) {
    fll_session *s = h->data;
    if (--s->handles_open == 0 && s->free_on_close) free(s);
}

static void close_handles(fll_session *s) {
    if (s->handles_open != 2) return; /* already closing */
    uv_close((uv_handle_t *)&s->poll, on_closed);
    uv_close((uv_handle_t *)&s->async, on_closed);
}

/* Ends a mounted session, synchronously and without JS. Stops watching /dev/fuse (the poll handle
 * must let go of the fd before it is closed), closes it and unmounts lazily: closing the last fd
 * aborts the connection, so nothing here waits on the filesystem. Requests JS has not answered are
 * freed without a reply (the connection is gone); their late replies are dropped by fll_peek_req.
 * Records still queued are freed too. Idempotent. */
static void end_session(fll_session *s) {
    if (s->state != FLL_MOUNTED) return;
    close_handles(s);
    s->fd_closed = 1;
    fuse_session_unmount(s->se);
    s->state = FLL_ENDED;
    for (uint32_t i = 0; i < s->nslots; i++) {
        if (s->slots[i].req) {
            fuse_reply_none(s->slots[i].req);
            slot_free(s, i);
        }
    }
    for (fll_rec *r = s->head, *next; r; r = next) {
        next = r->next;
        if (r->req) fuse_reply_none(r->req);
        rec_free(r);
    }
    s->head = s->tail = NULL;
    s->queued = 0;
    s->queued_lifts = 0;
    s->queued_forgets = 0;
    /* An invalidation on the thread pool still writes through `se`: the last to complete destroys
     * it (fll_notify_done). */
    if (s->notifies > 0) {
        s->destroy_pending = 1;
    } else {
        fuse_session_destroy(s->se);
        s->se = NULL;
    }
    free(s->fbuf.mem);
    s->fbuf.mem = NULL;
}

/* The environment is going away while mounted (worker termination, embedder teardown). */
static void cleanup_hook(void *arg) {
    fll_session *s = arg;
    s->cleanup_hook = 0;
    end_session(s);
}

/* ---- delivery to JS ---- */

static void call(napi_env env, napi_ref fn_ref, size_t argc, napi_value *argv) {
    napi_value fn, undefined, result;
    napi_get_reference_value(env, fn_ref, &fn);
    napi_get_undefined(env, &undefined);
    if (napi_call_function(env, undefined, fn, argc, argv, &result) == napi_pending_exception) {
        napi_value err;
        napi_get_and_clear_last_exception(env, &err);
        napi_fatal_exception(env, err); /* 'uncaughtException', as for any callback */
    }
}

static void event(napi_env env, fll_session *s, const char *kind, const char *reason) {
    napi_value argv[2];
    napi_create_string_utf8(env, kind, NAPI_AUTO_LENGTH, &argv[0]);
    napi_create_string_utf8(env, reason ? reason : "", NAPI_AUTO_LENGTH, &argv[1]);
    call(env, s->on_event, 2, argv);
}

/* Hands the queued records to JS, then, if `reason` is set, ends the session and reports 'exit'.
 * One callback scope for all of it: promise jobs and nextTicks queued by the handlers run once, at
 * the end. A handler may call unmount(); that only wakes the async handle. */
static void deliver(fll_session *s, const char *reason) {
    napi_env env = s->env;
    napi_handle_scope hs;
    napi_callback_scope cs;
    napi_value self;
    napi_open_handle_scope(env, &hs);
    napi_get_reference_value(env, s->self, &self);
    napi_open_callback_scope(env, self, s->actx, &cs);
    s->deliver_now = 0;
    while (s->head) {
        fll_rec *r = s->head;
        s->head = r->next;
        if (!s->head) s->tail = NULL;
        if (r->req) s->queued--;
        if (r->lifts) s->queued_lifts--;
        if (r->kind == FLL_FORGET) s->queued_forgets--;
        /* A request or a forget: JS may make or free names at it (what C answered itself only takes
         * JS's note, and names nothing that was missing: see missing_in). */
        if (r->req || r->kind == FLL_FORGET) s->js_epoch++;
        if (r->kind == FLL_EV_INIT) {
            event(env, s, "init", NULL);
        } else if (s->state == FLL_MOUNTED) {
            napi_handle_scope rs; /* one per request: a big batch must not pile up handles */
            napi_open_handle_scope(env, &rs);
            if (fill_fields(s, r)) {
                napi_value argv[4];
                napi_create_uint32(env, (uint32_t)r->kind, &argv[0]);
                argv[1] = str_or_undefined(env, r->name);
                argv[2] = str_or_undefined(env, r->name2);
                if (r->data) set_data(env, &argv[3], r);
                else napi_get_undefined(env, &argv[3]);
                call(env, s->on_request, 4, argv);
            }
            napi_close_handle_scope(env, rs);
        } else if (r->req) {
            fuse_reply_none(r->req); /* a handler's shutdown() ended the session mid-batch */
        }
        rec_free(r);
    }
    int ended = 0;
    if (reason && s->state == FLL_MOUNTED) {
        end_session(s);
        if (s->cleanup_hook) napi_remove_env_cleanup_hook(env, cleanup_hook, s);
        s->cleanup_hook = 0;
        event(env, s, "exit", reason);
        ended = 1;
    }
    napi_close_callback_scope(env, cs);
    napi_close_handle_scope(env, hs);
    if (ended) {
        napi_async_destroy(env, s->actx);
        s->actx = NULL;
        napi_reference_unref(env, s->self, NULL); /* collectable again */
    }
}

/* Requests per callback: past this, other handles (thread-pool completions carrying data replies)
 * get their turn before the rest; the poll handle is level-triggered and fires again at once. */
#define BATCH 64

/* Reads and dispatches requests until the kernel's queue is empty, BATCH are done or a record JS
 * should have before the next is queued (deliver_now); returns how many were read. Sets *reason
 * when the connection ended. */
static int read_batch(fll_session *s, const char **reason, char *failed, size_t cap) {
    int n = 0, drained = 0;
    while (!*reason && n < BATCH && !s->deliver_now) {
        int res = fuse_session_receive_buf(s->se, &s->fbuf);
        if (res == -EAGAIN) { /* the kernel's queue is empty (or a request was withdrawn) */
            drained = 1;
            break;
        }
        if (res == -EINTR) continue;
        if (res == 0 || fuse_session_exited(s->se)) {
            *reason = "unmounted (the kernel ended the connection)"; /* ENODEV */
        } else if (res < 0) {
            snprintf(failed, cap, "FUSE read failed: %s", strerror(-res));
            *reason = failed;
        } else {
            if (!s->init_seen && fll_is_init(&s->fbuf)) {
                fll_process_init(s);
            } else {
                uint32_t caller = fll_caller(&s->fbuf);
                if (caller) s->callers[s->next_caller++ % FLL_CALLERS] = caller;
                s->kill_suidgid = s->killpriv && fll_kills_suidgid(&s->fbuf);
                s->tmpfile = fll_take_tmpfile(&s->fbuf);
                if (s->parked_count) fll_fast_before(s, &s->fbuf);
                fuse_session_process_buf(s->se, &s->fbuf);
            }
            n++;
        }
    }
    /* First opens parked while their files are read (fuse-ll-fast.c): waited for once every
     * request the kernel had is answered or on its way to JS. */
    fll_fast_unpark(s, drained && !*reason);
    return n;
}

/* How many threads may send requests while the daemon busy-polls: one per CPU this process may run
 * on, less the daemon's own (at least one). */
static unsigned spin_callers(void) {
    cpu_set_t cpus;
    int n = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : 2;
    return n > 2 ? (unsigned)n - 1 : 1;
}

/* Whether more than `max` threads sent the last FLL_CALLERS requests. */
static int many_callers(const fll_session *s, unsigned max) {
    uint32_t seen[FLL_CALLERS];
    unsigned n = 0;
    for (unsigned i = 0; i < FLL_CALLERS; i++) {
        uint32_t c = s->callers[i];
        unsigned j = 0;
        while (j < n && seen[j] != c) j++;
        if (!c || j < n) continue;
        if (n == max) return 1;
        seen[n++] = c;
    }
    return 0;
}

/* The longest one readable callback keeps the loop, busy-polling included. */
#define SPIN_MAX 2000000u

/* Empty polls between checks for preemption, and callbacks without spinning after one. */
#define SPIN_CHECK 16
#define SPIN_BACKOFF 256

/* How often the scheduler took the CPU from this thread (it wanted it for another task). */
static long involuntary_switches(void) {
    struct rusage ru;
    return getrusage(RUSAGE_THREAD, &ru) == 0 ? ru.ru_nivcsw : 0;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_readable(uv_poll_t *h, int status, int events) {
    (void)events;
    fll_session *s = h->data;
    if (s->state != FLL_MOUNTED) return;
    const char *reason = NULL;
    char failed[160];
    /* An error from poll: the connection was aborted or unmounted (the kernel reports POLLERR). */
    if (status < 0) reason = "unmounted (the kernel ended the connection)";
    else read_batch(s, &reason, failed, sizeof failed);
    if (s->head || reason) deliver(s, reason);
    /* Busy-poll for a while once every request is answered: a caller that waits for each answer
     * usually sends its next request within microseconds, and catching it here saves the sleep and
     * the cross-CPU wakeup (tens of microseconds on a VM) that waiting in epoll would cost. Not
     * while a request waits on the thread pool (its completion needs the loop), and never longer
     * than SPIN_MAX in all, so that timers and setImmediate work still run between bursts. Not
     * either when the CPU is wanted elsewhere. Callers that keep every other CPU busy need this one
     * to send their requests: when more threads than that sent the last requests, the daemon
     * sleeps. (Reading all small files with 4 threads, that took 20% less of its CPU, and the
     * pass 3% less time.) And a spin that was preempted anyway is cut short, and the next
     * SPIN_BACKOFF callbacks sleep. */
    if (!s->spin_ns) return;
    if (many_callers(s, s->spin_callers)) {
        s->spins_skipped++;
        return;
    }
    if (s->spin_backoff > 0) {
        s->spin_backoff--;
        return;
    }
    s->spins++;
    long preempted = involuntary_switches();
    uint64_t start = now_ns(), deadline = start + s->spin_ns, now = start;
    for (unsigned i = 1; s->state == FLL_MOUNTED && !reason && s->outstanding == 0 && now < deadline && now - start < SPIN_MAX; i++) {
        if (read_batch(s, &reason, failed, sizeof failed) > 0 || reason) {
            deliver(s, reason);
            deadline = now_ns() + s->spin_ns;
        }
        if (i % SPIN_CHECK == 0 && involuntary_switches() != preempted) {
            s->spin_backoff = SPIN_BACKOFF;
            return;
        }
        now = now_ns();
    }
}

static void on_async(uv_async_t *h) {
    fll_session *s = h->data;
    if (s->state == FLL_MOUNTED && s->unmount_requested) deliver(s, "unmount() called");
}

/* unmount(): the session ends in on_async, outside whatever JS code asked. */
static void request_end(fll_session *s) {
    if (s->unmount_requested || s->state != FLL_MOUNTED) return;
    s->unmount_requested = 1;
    uv_async_send(&s->async);
}

/* ---- create ---- */

static void finalize(napi_env env, void *data, void *hint) {
    (void)hint;
    fll_session *s = data;
    /* Never while mounted: `self` is a strong reference until the exit event. */
    if (s->on_request) napi_delete_reference(env, s->on_request);
    if (s->fields_ref) napi_delete_reference(env, s->fields_ref);
    if (s->on_event) napi_delete_reference(env, s->on_event);
    if (s->self) napi_delete_reference(env, s->self);
    if (s->cleanup_hook) napi_remove_env_cleanup_hook(env, cleanup_hook, s);
    free(s->mountpoint);
    free(s->slots);
    fll_fast_free(s);
    fll_cow_free(s);
    if (s->handles_open) s->free_on_close = 1; /* the last on_closed frees it */
    else free(s);
}

fll_session *fll_unwrap(napi_env env, napi_value v) {
    void *p = NULL;
    if (napi_unwrap(env, v, &p) != napi_ok || !p) {
        napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "not a FUSE session handle");
        return NULL;
    }
    return p;
}

/* opNames() → the op names, indexed by record kind (the `kind` onRequest receives) */
napi_value fll_js_op_names(napi_env env, napi_callback_info info) {
    (void)info;
    napi_value arr, v;
    napi_create_array_with_length(env, FLL_OP_COUNT, &arr);
    for (uint32_t i = 0; i < FLL_OP_COUNT; i++) {
        napi_create_string_utf8(env, fll_op_names[i], NAPI_AUTO_LENGTH, &v);
        napi_set_element(env, arr, i, v);
    }
    return arr;
}

/* create(onRequest, onEvent, fields) → handle; fields: a Float64Array of FLL_F_COUNT or more */
napi_value fll_js_create(napi_env env, napi_callback_info info) {
    size_t argc = 3;
    napi_value argv[3], obj;
    napi_valuetype t0, t1;
    napi_typedarray_type ft;
    size_t flen = 0;
    void *fdata = NULL;
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    if (argc < 3 || napi_typeof(env, argv[0], &t0) != napi_ok || napi_typeof(env, argv[1], &t1) != napi_ok ||
        t0 != napi_function || t1 != napi_function ||
        napi_get_typedarray_info(env, argv[2], &ft, &flen, &fdata, NULL, NULL) != napi_ok || ft != napi_float64_array ||
        flen < FLL_F_COUNT) {
        napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "create(onRequest, onEvent, fields) takes two functions and a Float64Array");
        return NULL;
    }
    fll_session *s = calloc(1, sizeof *s);
    if (!s) return napi_throw_error(env, "ENOMEM", "out of memory"), NULL;
    s->env = env;
    napi_create_object(env, &obj);
    if (napi_wrap(env, obj, s, finalize, NULL, NULL) != napi_ok) {
        free(s);
        return napi_throw_error(env, NULL, "napi_wrap failed"), NULL;
    }
    napi_create_reference(env, argv[0], 1, &s->on_request);
    napi_create_reference(env, argv[2], 1, &s->fields_ref); /* keeps `fields` (and its memory) alive */
    s->fields = fdata;
    napi_create_reference(env, argv[1], 1, &s->on_event);
    napi_create_reference(env, obj, 0, &s->self);
    return obj;
}

/* ---- mount ---- */

/* Escapes ',' and '\' for libfuse's -o parser. */
static void opt_append(char *buf, size_t cap, const char *key, const char *val) {
    size_t n = strlen(buf);
    if (n && n + 1 < cap) buf[n++] = ',';
    for (const char *p = key; *p && n + 1 < cap; p++) buf[n++] = *p;
    if (val) {
        if (n + 1 < cap) buf[n++] = '=';
        for (const char *p = val; *p && n + 2 < cap; p++) {
            if (*p == ',' || *p == '\\') buf[n++] = '\\';
            buf[n++] = *p;
        }
    }
    buf[n] = 0;
}

static napi_value throw_errno(napi_env env, int err, const char *fmt, const char *arg) {
    char msg[PATH_MAX + 200], code[32];
    snprintf(msg, sizeof msg, fmt, arg, strerror(err));
    const char *name = strerrorname_np(err);
    snprintf(code, sizeof code, "%s", name ? name : "EIO");
    napi_throw_error(env, code, msg);
    return NULL;
}

/* mount(handle, mountpoint, {fsname, subtype, allowOther, defaultPermissions, readOnly, maxWrite,
 * maxReadahead, debug, passthrough, posixAcl, kernelFlags?}) → undefined; throws on failure. The 'init' event
 * follows. */
napi_value fll_js_mount(napi_env env, napi_callback_info info) {
    size_t argc = 3;
    napi_value argv[3];
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    if (argc < 3) return napi_throw_type_error(env, NULL, "mount(handle, mountpoint, options)"), NULL;
    fll_session *s = fll_unwrap(env, argv[0]);
    if (!s) return NULL;
    if (s->state != FLL_IDLE) return napi_throw_error(env, "ERR_FUSE_STATE", "session already mounted once"), NULL;

    char *mnt = fll_string(env, argv[1], "mountpoint");
    if (!mnt) return NULL;
    napi_value o = argv[2], v;
    int64_t max_write = 1 << 20, max_ra = 0, spin_us = 0;
    int allow_other, default_perms, ro, debug, passthrough, posix_acl;
    char *fsname = NULL, *subtype = NULL, *kernel_flags = NULL;
    napi_valuetype t;
    if (!fll_prop_bool(env, o, "allowOther", &allow_other) || !fll_prop_bool(env, o, "defaultPermissions", &default_perms) ||
        !fll_prop_bool(env, o, "readOnly", &ro) || !fll_prop_bool(env, o, "debug", &debug) ||
        !fll_prop_bool(env, o, "passthrough", &passthrough) || !fll_prop_bool(env, o, "posixAcl", &posix_acl))
        goto fail;
    napi_get_named_property(env, o, "maxWrite", &v);
    if (napi_typeof(env, v, &t) == napi_ok && t != napi_undefined && !fll_int(env, v, "maxWrite", 4096, 1 << 30, &max_write)) goto fail;
    napi_get_named_property(env, o, "maxReadahead", &v);
    if (napi_typeof(env, v, &t) == napi_ok && t != napi_undefined && !fll_int(env, v, "maxReadahead", 0, 1 << 30, &max_ra)) goto fail;
    napi_get_named_property(env, o, "spinUs", &v);
    if (napi_typeof(env, v, &t) == napi_ok && t != napi_undefined && !fll_int(env, v, "spinUs", 0, 1000000, &spin_us)) goto fail;
    napi_get_named_property(env, o, "fsname", &v);
    if (!(fsname = fll_string(env, v, "fsname"))) goto fail;
    napi_get_named_property(env, o, "subtype", &v);
    if (!(subtype = fll_string(env, v, "subtype"))) goto fail;
    /* mount(8) flags for libfuse to apply (suid, nodev, noexec, ...): it mounts nosuid,nodev unless
     * told otherwise. Words of lowercase letters, comma-separated. */
    napi_get_named_property(env, o, "kernelFlags", &v);
    if (napi_typeof(env, v, &t) == napi_ok && t != napi_undefined) {
        if (!(kernel_flags = fll_string(env, v, "kernelFlags"))) goto fail;
        for (const char *p = kernel_flags; *p; p++) {
            if ((*p < 'a' || *p > 'z') && *p != ',') {
                napi_throw_type_error(env, NULL, "kernelFlags: lowercase words separated by commas");
                goto fail;
            }
        }
    }

    /* Checked here for a clear message: fuse_session_mount only prints to stderr. */
    char real[PATH_MAX];
    struct stat st;
    if (!realpath(mnt, real)) {
        throw_errno(env, errno, "cannot mount on %s: %s", mnt);
        goto fail;
    }
    if (stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
        throw_errno(env, ENOTDIR, "cannot mount on %s: %s", real);
        goto fail;
    }

    char opts[1024] = "";
    opt_append(opts, sizeof opts, "fsname", fsname);
    if (*subtype) opt_append(opts, sizeof opts, "subtype", subtype);
    if (allow_other) opt_append(opts, sizeof opts, "allow_other", NULL);
    if (default_perms) opt_append(opts, sizeof opts, "default_permissions", NULL);
    if (ro) opt_append(opts, sizeof opts, "ro", NULL);
    if (kernel_flags && *kernel_flags) {
        for (char *save = NULL, *flag = strtok_r(kernel_flags, ",", &save); flag; flag = strtok_r(NULL, ",", &save))
            opt_append(opts, sizeof opts, flag, NULL);
    }
    char *args_v[] = {"layerfs", "-o", opts, debug ? "-d" : NULL, NULL};
    struct fuse_args args = FUSE_ARGS_INIT(debug ? 4 : 3, args_v);

    s->max_write = (uint32_t)max_write;
    s->spin_ns = (uint64_t)spin_us * 1000;
    s->spin_callers = spin_callers();
    s->max_readahead = (uint32_t)max_ra;
    s->want_passthrough = passthrough;
    s->want_posix_acl = posix_acl;
    s->se = fuse_session_new(&args, &fll_ops, sizeof fll_ops, s);
    fuse_opt_free_args(&args);
    if (!s->se) {
        napi_throw_error(env, "ERR_FUSE_OPTIONS", "fuse_session_new failed (rejected options; libfuse printed why on stderr)");
        goto fail;
    }
    errno = 0;
    if (fuse_session_mount(s->se, real) != 0) {
        int err = errno ? errno : EIO;
        fuse_session_destroy(s->se);
        s->se = NULL; /* still FLL_IDLE: mount may be retried */
        throw_errno(env, err, "fuse_session_mount(%s) failed: %s", real);
        goto fail;
    }
    s->mountpoint = strdup(real);
    /* Non-blocking: the poll handle says when to read, and on_readable reads until EAGAIN. */
    int fd = fuse_session_fd(s->se);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    uv_loop_t *loop;
    napi_get_uv_event_loop(env, &loop);
    int err = uv_poll_init(loop, &s->poll, fd);
    if (err) {
        fuse_session_unmount(s->se);
        fuse_session_destroy(s->se);
        s->se = NULL;
        s->state = FLL_ENDED;
        throw_errno(env, -err, "cannot watch /dev/fuse for %s: %s", real);
        goto fail;
    }
    uv_async_init(loop, &s->async, on_async);
    s->poll.data = s->async.data = s;
    s->handles_open = 2;
    uv_poll_start(&s->poll, UV_READABLE, on_readable);
    s->state = FLL_MOUNTED;
    napi_value self;
    napi_get_reference_value(env, s->self, &self);
    napi_async_init(env, self, argv[1], &s->actx);
    napi_reference_ref(env, s->self, NULL);
    napi_add_env_cleanup_hook(env, cleanup_hook, s);
    s->cleanup_hook = 1;
    free(mnt);
    free(fsname);
    free(subtype);
    free(kernel_flags);
    return NULL;
fail:
    free(mnt);
    free(fsname);
    free(subtype);
    free(kernel_flags);
    return NULL;
}

/* shutdown(handle): for process.on('exit'), where no further event can be delivered: ends the
 * session synchronously so the process does not leave a dead mount behind. */
napi_value fll_js_shutdown(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1];
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    if (argc < 1) return napi_throw_type_error(env, NULL, "shutdown(handle)"), NULL;
    fll_session *s = fll_unwrap(env, argv[0]);
    if (!s || s->state != FLL_MOUNTED) return NULL;
    if (s->cleanup_hook) napi_remove_env_cleanup_hook(env, cleanup_hook, s);
    s->cleanup_hook = 0;
    end_session(s);
    if (s->actx) napi_async_destroy(env, s->actx);
    s->actx = NULL;
    napi_reference_unref(env, s->self, NULL);
    return NULL;
}

/* loopStats(handle) → [busy-polls run, busy-polls skipped for too many callers, the callers allowed,
 * opens, setattrs, getattrs, listing ends, getxattrs, listxattrs and lookups answered in C, of
 * the opens the first ones, the ACLs set on files JS made, the opens for writing copied up, the
 * lookups of directories, the renames, the setxattrs of lower files, the first lookups of lower
 * files, the lower directories whose names those lookups read, the links of lower files, of
 * the opens, those passed through, of the first opens, those that read from the disk, and the first
 * lookups of lower directories]: in the order of LOOP_STATS (src/sys/fuse-ll.ts), which names them. */
napi_value fll_js_loop_stats(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1], out, v;
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    if (argc < 1) return napi_throw_type_error(env, NULL, "loopStats(handle)"), NULL;
    fll_session *s = fll_unwrap(env, argv[0]);
    if (!s) return NULL;
    const double stats[] = {(double)s->spins,        (double)s->spins_skipped, (double)s->spin_callers,
                        (double)s->fast_opens,   (double)s->cow_setattrs,  (double)s->cow_getattrs,
                        (double)s->dir_ends,     (double)s->cow_getxattrs, (double)s->cow_listxattrs,
                        (double)s->cow_lookups,  (double)s->first_opens,  (double)s->made_setxattrs,
                        (double)s->cow_opens,    (double)s->cow_dir_lookups, (double)s->cow_renames,
                        (double)s->cow_setxattrs, (double)s->cow_file_lookups,
                        (double)fll_lower_reads(s), (double)s->cow_links, (double)s->pass_opens,
                        (double)s->first_uncached, (double)s->cow_dir_first_lookups};
    const uint32_t count = sizeof stats / sizeof *stats;
    napi_create_array_with_length(env, count, &out);
    for (uint32_t i = 0; i < count; i++) {
        napi_create_double(env, stats[i], &v);
        napi_set_element(env, out, i, v);
    }
    return out;
}

/* soleCaller(handle) → whether one thread sent all of the last FLL_CALLERS requests (those seen so
 * far, at the start): a listing it waits for may be read at the reply (ll-bridge.ts, #readdir). */
napi_value fll_js_sole_caller(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1], out;
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    if (argc < 1) return napi_throw_type_error(env, NULL, "soleCaller(handle)"), NULL;
    fll_session *s = fll_unwrap(env, argv[0]);
    if (!s) return NULL;
    napi_get_boolean(env, !many_callers(s, 1), &out);
    return out;
}

/* unmount(handle): ask the loop to end; the 'exit' event follows. Idempotent, never blocks on the
 * filesystem (it may be called from a request handler). */
napi_value fll_js_unmount(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1];
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    if (argc < 1) return napi_throw_type_error(env, NULL, "unmount(handle)"), NULL;
    fll_session *s = fll_unwrap(env, argv[0]);
    if (!s) return NULL;
    if (s->state == FLL_MOUNTED) request_end(s);
    return NULL;
}
