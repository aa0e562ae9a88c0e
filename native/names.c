/* Byte-exact names: see names.h. Decoding checks UTF-8 as strictly as V8 does (no overlong forms,
 * no surrogates, nothing past U+10FFFF), so what passes is handed to napi_create_string_utf8 as is
 * and only other names pay for the escaping. */
#include "names.h"
#include "exports.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ESCAPE_BASE 0xDC00 /* byte b (>= 0x80) ↔ U+DC00 + b: U+DC80..U+DCFF */

/* Length of the valid UTF-8 sequence at p[0..left), or 0 when there is none. Sets *cp. */
static size_t utf8_sequence(const unsigned char *p, size_t left, uint32_t *cp) {
    unsigned char b = p[0];
    if (b < 0x80) return *cp = b, 1;
    size_t n;
    uint32_t c, min;
    if (b >= 0xC2 && b <= 0xDF) n = 2, c = b & 0x1F, min = 0x80;
    else if (b >= 0xE0 && b <= 0xEF) n = 3, c = b & 0x0F, min = 0x800;
    else if (b >= 0xF0 && b <= 0xF4) n = 4, c = b & 0x07, min = 0x10000;
    else return 0;
    if (left < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (p[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    return n;
}

static int utf8_valid(const unsigned char *p, size_t len) {
    uint32_t cp;
    for (size_t i = 0; i < len;) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = utf8_sequence(p + i, len - i, &cp);
        if (!n) return 0;
        i += n;
    }
    return 1;
}

napi_status name_to_js(napi_env env, const char *p, size_t len, napi_value *out) {
    const unsigned char *b = (const unsigned char *)p;
    if (utf8_valid(b, len)) return napi_create_string_utf8(env, p, len, out);
    /* Each byte yields at most one UTF-16 unit, except a 4-byte sequence: two units for four. */
    char16_t *u = malloc((len ? len : 1) * sizeof *u);
    if (!u) return napi_generic_failure;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = utf8_sequence(b + i, len - i, &cp);
        if (!k) {
            u[n++] = (char16_t)(ESCAPE_BASE + b[i]);
            i++;
        } else if (cp >= 0x10000) {
            u[n++] = (char16_t)(0xD800 + ((cp - 0x10000) >> 10));
            u[n++] = (char16_t)(0xDC00 + ((cp - 0x10000) & 0x3FF));
            i += k;
        } else {
            u[n++] = (char16_t)cp;
            i += k;
        }
    }
    napi_status s = napi_create_string_utf16(env, u, n, out);
    free(u);
    return s;
}

/* UTF-16 → bytes, escapes back to their byte; out holds at least 3 bytes per unit, plus a NUL. */
static size_t encode_units(const char16_t *u, size_t n, unsigned char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = u[i];
        if (c >= 0xD800 && c <= 0xDBFF && i + 1 < n && u[i + 1] >= 0xDC00 && u[i + 1] <= 0xDFFF) {
            c = 0x10000 + ((c - 0xD800) << 10) + (u[++i] - 0xDC00);
            out[o++] = (unsigned char)(0xF0 | (c >> 18));
            out[o++] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
            out[o++] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
            out[o++] = (unsigned char)(0x80 | (c & 0x3F));
        } else if (c >= ESCAPE_BASE + 0x80 && c <= ESCAPE_BASE + 0xFF) {
            out[o++] = (unsigned char)(c - ESCAPE_BASE);
        } else {
            if (c >= 0xD800 && c <= 0xDFFF) c = 0xFFFD; /* another lone surrogate: as V8 writes it */
            if (c < 0x80) {
                out[o++] = (unsigned char)c;
            } else if (c < 0x800) {
                out[o++] = (unsigned char)(0xC0 | (c >> 6));
                out[o++] = (unsigned char)(0x80 | (c & 0x3F));
            } else {
                out[o++] = (unsigned char)(0xE0 | (c >> 12));
                out[o++] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
                out[o++] = (unsigned char)(0x80 | (c & 0x3F));
            }
        }
    }
    out[o] = '\0';
    return o;
}

/* V8 writes a lone surrogate as U+FFFD (EF BF BD): only a string whose UTF-8 holds one can carry an
 * escape, and only such a string is read again, as UTF-16. */
static int may_hold_escape(const char *s, size_t len) {
    return memmem(s, len, "\xEF\xBF\xBD", 3) != NULL;
}

static char *escaped_string_bytes(napi_env env, napi_value v, size_t *len) {
    size_t units;
    napi_get_value_string_utf16(env, v, NULL, 0, &units);
    char16_t *u = malloc((units + 1) * sizeof *u);
    unsigned char *out = malloc(units * 3 + 1);
    if (!u || !out) {
        free(u);
        free(out);
        *len = 1;
        return NULL;
    }
    napi_get_value_string_utf16(env, v, u, units + 1, &units);
    *len = encode_units(u, units, out);
    free(u);
    return (char *)out;
}

char *name_from_js(napi_env env, napi_value v, size_t *len) {
    bool is;
    if (napi_is_buffer(env, v, &is) == napi_ok && is) {
        void *data;
        size_t n;
        napi_get_buffer_info(env, v, &data, &n);
        char *s = malloc(n + 1);
        if (!s) return *len = 1, NULL;
        memcpy(s, data, n);
        s[n] = '\0';
        *len = n;
        return s;
    }
    size_t n;
    if (napi_get_value_string_utf8(env, v, NULL, 0, &n) != napi_ok) return *len = 0, NULL;
    char *s = malloc(n + 1);
    if (!s) return *len = 1, NULL;
    napi_get_value_string_utf8(env, v, s, n + 1, &n);
    if (!may_hold_escape(s, n)) return *len = n, s;
    free(s);
    return escaped_string_bytes(env, v, len);
}

int name_copy_from_js(napi_env env, napi_value v, char *buf, size_t cap, size_t *len) {
    bool is;
    if (napi_is_buffer(env, v, &is) == napi_ok && is) {
        void *data;
        size_t n;
        napi_get_buffer_info(env, v, &data, &n);
        size_t k = n < cap ? n : cap - 1;
        memcpy(buf, data, k);
        buf[k] = '\0';
        *len = n;
        return 1;
    }
    if (napi_get_value_string_utf8(env, v, buf, cap, len) != napi_ok) return 0;
    if (!may_hold_escape(buf, *len)) return 1;
    size_t n;
    char *s = escaped_string_bytes(env, v, &n);
    if (!s) return *len = cap, 1; /* out of memory: reported as too long, the caller's error path */
    size_t k = n < cap ? n : cap - 1;
    memcpy(buf, s, k);
    buf[k] = '\0';
    free(s);
    *len = n;
    return 1;
}

/* nameBytes(name: string) → Buffer: the bytes a name stands for. */
napi_value js_name_bytes(napi_env env, napi_callback_info info) {
    size_t argc = 1, len;
    napi_value argv[1], out;
    napi_valuetype t;
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
        napi_typeof(env, argv[0], &t) != napi_ok || t != napi_string) {
        napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "nameBytes(name: string)");
        return NULL;
    }
    char *s = name_from_js(env, argv[0], &len);
    if (!s) return napi_throw_error(env, "ENOMEM", "out of memory"), NULL;
    napi_status st = napi_create_buffer_copy(env, len, s, NULL, &out);
    free(s);
    return st == napi_ok ? out : NULL;
}

/* nameFromBytes(bytes: Uint8Array) → string, escaped where the bytes are not UTF-8. */
napi_value js_name_from_bytes(napi_env env, napi_callback_info info) {
    size_t argc = 1, len = 0;
    napi_value argv[1], out;
    void *data = NULL;
    bool is = false;
    napi_typedarray_type type = napi_int8_array;
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc >= 1 &&
        napi_is_typedarray(env, argv[0], &is) == napi_ok && is)
        napi_get_typedarray_info(env, argv[0], &type, &len, &data, NULL, NULL);
    if (type != napi_uint8_array) {
        napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "nameFromBytes(bytes: Uint8Array)");
        return NULL;
    }
    if (name_to_js(env, data, len, &out) != napi_ok) return napi_throw_error(env, "ENOMEM", "out of memory"), NULL;
    return out;
}
