/* Names and paths between the kernel and JS. To the kernel a name is bytes; to JS it is a string.
 * Valid UTF-8 becomes the string it spells. Every other byte (always >= 0x80: ASCII is valid) becomes
 * the lone surrogate U+DC00 + byte, Python's "surrogateescape". Valid UTF-8 never decodes to a lone
 * surrogate, so the escaped bytes cannot be confused with characters, and every name comes back to
 * its own bytes: a Latin-1 name stays Latin-1.
 *
 * JS hands a path back either as such a string or as a Buffer of the bytes themselves. */
#ifndef LAYERFS_NAMES_H
#define LAYERFS_NAMES_H

#define NAPI_VERSION 8
#include <node_api.h>
#include <stddef.h>

/* The bytes p[0..len) as a JS string, escaped where they are not UTF-8. */
napi_status name_to_js(napi_env env, const char *p, size_t len, napi_value *out);

/* A string (escapes turned back into their bytes) or a Buffer → malloc'ed, NUL-terminated bytes, and
 * their length in *len. NULL with *len == 0 when `v` is neither (nothing thrown), NULL with
 * *len == 1 when out of memory. Embedded NULs are kept: the caller decides what they mean. */
char *name_from_js(napi_env env, napi_value v, size_t *len);

/* Like name_from_js into buf[cap] without allocating, for a name or path that fits: returns 1 with
 * *len set, or 0 when `v` is neither a string nor a Buffer. Longer input is cut short and *len then
 * reports at least cap - 1, so callers compare *len with their limit. */
int name_copy_from_js(napi_env env, napi_value v, char *buf, size_t cap, size_t *len);

#endif
