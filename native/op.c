/* The generic async-work helper behind every exported function (see op.h). Arguments are copied
 * out of JS values up front because the pool thread may not touch napi, and JS may mutate or
 * collect the originals while the syscall runs. Failures reject with a plain {errno, syscall}
 * object; the TypeScript wrapper turns it into a Node-style Error, where the errno names and
 * messages match those of node:fs. */
#include "op.h"
#include "names.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_ARGS 12
#define NS_PER_SEC 1000000000LL

op *op_new(const char *syscall, op_exec_fn exec, op_done_fn done) {
    op *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    o->syscall = syscall;
    o->exec = exec;
    o->done = done;
    o->fd = o->fd2 = -1;
    return o;
}

static void op_free(op *o) {
    free(o->path);
    free(o->dest);
    free(o->name);
    free(o->data);
    free(o);
}

/* ---- argument parsing: each returns 0 after throwing a JS exception ---- */

static int bad_arg(napi_env env, size_t i, const char *what) {
    char msg[96];
    snprintf(msg, sizeof msg, "argument %zu must be %s", i + 1, what);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return 0;
}

/* A path or name: a string (escapes as names.h describes) or a Buffer of the bytes themselves. */
static int get_string(napi_env env, napi_value v, size_t i, char **out) {
    size_t len;
    char *s = name_from_js(env, v, &len);
    if (!s) return len ? (napi_throw_error(env, "ENOMEM", "out of memory"), 0) : bad_arg(env, i, "a string or Buffer");
    *out = s; /* owned by the op from here on, even if we reject it below */
    /* The C string would stop at an embedded NUL and silently name another file. */
    if (strlen(s) != len) return bad_arg(env, i, "a path without null bytes");
    return 1;
}

static int get_integer(napi_env env, napi_value v, size_t i, double min, double max, int64_t *out) {
    double d;
    if (napi_get_value_double(env, v, &d) != napi_ok) return bad_arg(env, i, "a number");
    /* napi's own int conversions truncate 1.5 or NaN silently: an offset must be exact. */
    if (!(d >= min && d <= max) || (double)(int64_t)d != d) {
        char msg[96];
        snprintf(msg, sizeof msg, "argument %zu must be an integer in range", i + 1);
        napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
        return 0;
    }
    *out = (int64_t)d;
    return 1;
}

static int get_bytes(napi_env env, napi_value v, size_t i, void **data, size_t *size) {
    bool is;
    void *src = NULL;
    size_t n = 0;
    if (napi_is_buffer(env, v, &is) == napi_ok && is) {
        napi_get_buffer_info(env, v, &src, &n);
    } else if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
        napi_typedarray_type type;
        /* Byte-sized elements only, so the element count is the byte length. */
        napi_get_typedarray_info(env, v, &type, &n, &src, NULL, NULL);
        if (type != napi_uint8_array && type != napi_int8_array && type != napi_uint8_clamped_array)
            return bad_arg(env, i, "a Buffer or Uint8Array");
    } else {
        return bad_arg(env, i, "a Buffer or Uint8Array");
    }
    *data = malloc(n ? n : 1);
    if (!*data) return napi_throw_error(env, "ENOMEM", "out of memory"), 0;
    if (n) memcpy(*data, src, n);
    *size = n;
    return 1;
}

static int get_time(napi_env env, napi_value v, size_t i, struct timespec *ts) {
    napi_valuetype t;
    napi_typeof(env, v, &t);
    if (t == napi_null || t == napi_undefined) {
        ts->tv_sec = 0;
        ts->tv_nsec = UTIME_OMIT;
        return 1;
    }
    if (t == napi_string) {
        char s[8];
        size_t len;
        napi_get_value_string_utf8(env, v, s, sizeof s, &len);
        if (strcmp(s, "now") != 0) return bad_arg(env, i, "a bigint, null or 'now'");
        ts->tv_sec = 0;
        ts->tv_nsec = UTIME_NOW;
        return 1;
    }
    /* Nanoseconds since 1970 as a bigint, which may pass int64 (2^63 ns is in 2262; the kernel takes
     * seconds up to 2^63 and each filesystem clamps them to its range, ext4's ending in 2446). */
    int sign;
    size_t words = 2;
    uint64_t w[2] = {0, 0};
    if (t != napi_bigint || napi_get_value_bigint_words(env, v, &sign, &words, w) != napi_ok)
        return bad_arg(env, i, "a bigint, null or 'now'");
    if (words > 2 || (w[1] >> 62) != 0) return napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "time out of range"), 0;
    __int128 ns = ((__int128)w[1] << 64) | w[0];
    if (sign) ns = -ns;
    /* Floor division: times before 1970 still need 0 <= tv_nsec < 1e9. */
    __int128 sec = ns / NS_PER_SEC;
    __int128 rem = ns % NS_PER_SEC;
    if (rem < 0) {
        rem += NS_PER_SEC;
        sec -= 1;
    }
    if (sec > INT64_MAX || sec < INT64_MIN) return napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "time out of range"), 0;
    ts->tv_sec = (time_t)sec;
    ts->tv_nsec = (long)rem;
    return 1;
}

static int parse_args(napi_env env, napi_callback_info info, const char *fmt, va_list ap) {
    napi_value argv[MAX_ARGS];
    size_t argc = MAX_ARGS;
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return 0;
    napi_value undef;
    napi_get_undefined(env, &undef);
    for (size_t i = 0; fmt[i]; i++) {
        napi_value v = i < argc ? argv[i] : undef;
        int64_t n;
        switch (fmt[i]) {
        case 's':
            if (!get_string(env, v, i, va_arg(ap, char **))) return 0;
            break;
        case 'i':
            if (!get_integer(env, v, i, INT32_MIN, INT32_MAX, &n)) return 0;
            *va_arg(ap, int *) = (int)n;
            break;
        case 'u':
            if (!get_integer(env, v, i, 0, UINT32_MAX, &n)) return 0;
            *va_arg(ap, uint32_t *) = (uint32_t)n;
            break;
        case 'l':
            /* 2^63 itself is representable as a double but not as an int64. */
            if (!get_integer(env, v, i, -9223372036854775808.0, 9223372036854774784.0, &n)) return 0;
            *va_arg(ap, int64_t *) = n;
            break;
        case 'b': {
            void **data = va_arg(ap, void **);
            size_t *size = va_arg(ap, size_t *);
            if (!get_bytes(env, v, i, data, size)) return 0;
            break;
        }
        case 't':
            if (!get_time(env, v, i, va_arg(ap, struct timespec *))) return 0;
            break;
        case 'F':
        case 'f': {
            napi_valuetype t;
            napi_typeof(env, v, &t);
            double **out = va_arg(ap, double **);
            if (fmt[i] == 'f' && (t == napi_undefined || t == napi_null)) {
                *out = NULL;
                break;
            }
            napi_typedarray_type type;
            size_t n = 0;
            void *numbers = NULL;
            if (napi_get_typedarray_info(env, v, &type, &n, &numbers, NULL, NULL) != napi_ok ||
                type != napi_float64_array || n < 16)
                return bad_arg(env, i, "a Float64Array of 16");
            *out = numbers;
            break;
        }
        case 'B': {
            bool b;
            if (napi_get_value_bool(env, v, &b) != napi_ok) return bad_arg(env, i, "a boolean");
            *va_arg(ap, uint32_t *) = b;
            break;
        }
        default:
            napi_throw_error(env, NULL, "layerfs_native: bad argument format");
            return 0;
        }
    }
    return 1;
}

/* ---- the async work itself ---- */

static void execute(napi_env env, void *data) {
    op *o = data;
    o->err = o->exec(o);
}

static napi_value failure(napi_env env, op *o, napi_status status) {
    napi_value err, v;
    bool pending = false;
    /* A napi call in done() may have thrown (e.g. allocation): reject with that exception. */
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending &&
        napi_get_and_clear_last_exception(env, &err) == napi_ok)
        return err;
    int e = o->err ? o->err : status == napi_cancelled ? ECANCELED : EIO;
    napi_create_object(env, &err);
    napi_create_int32(env, e, &v);
    napi_set_named_property(env, err, "errno", v);
    napi_create_string_utf8(env, o->syscall, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, err, "syscall", v);
    return err;
}

static void complete(napi_env env, napi_status status, void *data) {
    op *o = data;
    napi_value result;
    napi_status s = napi_generic_failure;
    if (status == napi_ok && o->err == 0) s = o->done(env, o, &result);
    if (s == napi_ok)
        napi_resolve_deferred(env, o->deferred, result);
    else
        napi_reject_deferred(env, o->deferred, failure(env, o, status));
    napi_delete_async_work(env, o->work);
    op_free(o);
}

/* Returning NULL from a callback without an exception would hand JS a bare undefined. */
static napi_value throw_if_quiet(napi_env env) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_error(env, NULL, "layerfs_native: could not start the operation");
    return NULL;
}

napi_value op_nomem(napi_env env) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
}

napi_value op_run(napi_env env, napi_callback_info info, op *o, const char *fmt, ...) {
    if (strpbrk(fmt, "Ff")) { /* the array could be gone by the time a pool thread writes it */
        op_free(o);
        napi_throw_error(env, NULL, "layerfs_native: 'F' and 'f' arguments are for calls on the JS thread");
        return NULL;
    }
    va_list ap;
    va_start(ap, fmt);
    int ok = parse_args(env, info, fmt, ap);
    va_end(ap);
    napi_value name, promise;
    if (!ok || napi_create_string_utf8(env, o->syscall, NAPI_AUTO_LENGTH, &name) != napi_ok ||
        napi_create_async_work(env, NULL, name, execute, complete, o, &o->work) != napi_ok) {
        op_free(o);
        return throw_if_quiet(env);
    }
    if (napi_create_promise(env, &o->deferred, &promise) != napi_ok) {
        napi_delete_async_work(env, o->work);
        op_free(o);
        return throw_if_quiet(env);
    }
    if (napi_queue_async_work(env, o->work) != napi_ok) {
        /* complete() will never run: settle the promise here so nobody awaits forever. */
        o->err = EAGAIN;
        napi_reject_deferred(env, o->deferred, failure(env, o, napi_generic_failure));
        napi_delete_async_work(env, o->work);
        op_free(o);
    }
    return promise;
}

/* The same op, run on the JS thread. Only for calls that cost a few microseconds on a local
 * filesystem (metadata: xattrs, mknod, renames, times), where a thread-pool round trip would cost
 * ten times the syscall. Throws the same {errno, syscall} object the promise would reject with,
 * except for o->absent, which returns undefined. */
napi_value op_run_sync(napi_env env, napi_callback_info info, op *o, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int ok = parse_args(env, info, fmt, ap);
    va_end(ap);
    if (!ok) {
        op_free(o);
        return throw_if_quiet(env);
    }
    o->err = o->exec(o);
    napi_value result = NULL;
    if (o->err != 0 && o->err == o->absent) {
        op_free(o);
        napi_get_undefined(env, &result);
        return result;
    }
    napi_status s = o->err == 0 ? o->done(env, o, &result) : napi_generic_failure;
    if (s != napi_ok) {
        napi_throw(env, failure(env, o, s));
        result = NULL;
    }
    op_free(o);
    return result;
}

/* ---- result builders ---- */

napi_status op_done_undefined(napi_env env, op *o, napi_value *out) {
    return napi_get_undefined(env, out);
}

napi_status op_done_number(napi_env env, op *o, napi_value *out) {
    return napi_create_int64(env, o->ret, out);
}

napi_status op_done_bytes(napi_env env, op *o, napi_value *out) {
    return napi_create_buffer_copy(env, o->size, o->data, NULL, out);
}

napi_status op_done_names(napi_env env, op *o, napi_value *out) {
    napi_status s = napi_create_array(env, out);
    const char *p = o->data, *end = p + o->size;
    uint32_t i = 0;
    while (s == napi_ok && p < end) {
        size_t len = strnlen(p, (size_t)(end - p));
        napi_value name;
        if (len > 0) {
            s = name_to_js(env, p, len, &name);
            if (s == napi_ok) s = napi_set_element(env, *out, i++, name);
        }
        p += len + 1;
    }
    return s;
}

napi_status op_pair(napi_env env, napi_value a, napi_value b, napi_value *out) {
    napi_status s = napi_create_array_with_length(env, 2, out);
    if (s == napi_ok) s = napi_set_element(env, *out, 0, a);
    if (s == napi_ok) s = napi_set_element(env, *out, 1, b);
    return s;
}
