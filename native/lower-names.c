/* The names of lower directories, read once, for the lookups answered in C (fuse-ll-cow.c: holder,
 * file_lookup): a name a lower directory does not list needs no lstat there, nor does its `.wh.`
 * marker. Lower layers do not change while mounted (overlayfs asks the same), so a listing stays
 * true for the mount's life; the upper layer's directories are never listed here. A directory is
 * read at the LOWER_MISSES-th name found missing in it (its read costs about five syscalls, a miss
 * one lstat): a build's probes of headers next to its sources, a rename's new names. One that
 * does not exist in its layer lists nothing. Bounded: a directory of more than
 * LOWER_DIR_MAX names is never kept, and when the names kept would pass LOWER_NAMES_MAX, the
 * others are dropped (read again at their next misses), as are all records past LOWER_DIRS_MAX. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuse-ll.h"

#define LOWER_BUCKETS 4096
#define LOWER_DIR_MAX 65536
#define LOWER_NAMES_MAX 131072
#define LOWER_DIRS_MAX 65536
#define LOWER_MISSES 4 /* at 2, the bench's rename read 2.3 times as many directories (most hold one or two of its files) and made 6,000 more syscalls */

enum { LOWER_UNREAD, LOWER_READ, LOWER_NEVER };

typedef struct lower_dir {
    struct lower_dir *next;
    uint32_t hash;
    uint8_t state;
    uint8_t misses;       /* names found missing by lstat while unread */
    uint32_t count, mask; /* its names; its slots less one */
    uint32_t *slots;      /* each name's offset in blob plus one, by hash (open addressing); 0: free */
    char *blob;           /* the names, each ending in a NUL */
    char path[];
} lower_dir;

struct fll_lower_names {
    lower_dir *buckets[LOWER_BUCKETS];
    uint32_t dirs;  /* records */
    uint64_t names; /* names kept, all directories */
    uint64_t reads; /* directories read */
};

static uint32_t fnv(const char *s) {
    uint64_t h = fll_fnv1a(0, s);
    return (uint32_t)(h ^ (h >> 32));
}

static lower_dir *dir_find(const fll_lower_names *ln, const char *path, uint32_t hash) {
    for (lower_dir *d = ln->buckets[hash % LOWER_BUCKETS]; d; d = d->next)
        if (d->hash == hash && strcmp(d->path, path) == 0) return d;
    return NULL;
}

static void names_drop(fll_lower_names *ln, lower_dir *d) {
    if (d->state == LOWER_READ) ln->names -= d->count;
    free(d->slots);
    free(d->blob);
    d->slots = NULL;
    d->blob = NULL;
    d->count = d->mask = 0;
    d->misses = 0;
    d->state = LOWER_UNREAD;
}

/* Every record goes, or (keep) every directory's names but keep's. */
static void lower_clear(fll_lower_names *ln, const lower_dir *keep, int records) {
    for (uint32_t b = 0; b < LOWER_BUCKETS; b++) {
        for (lower_dir **at = &ln->buckets[b]; *at;) {
            lower_dir *d = *at;
            if (d == keep) {
                at = &d->next;
                continue;
            }
            if (d->state == LOWER_READ) names_drop(ln, d);
            if (!records) {
                at = &d->next;
                continue;
            }
            *at = d->next;
            free(d);
            ln->dirs--;
        }
    }
}

/* Reads d's names: LOWER_READ with them (none when the directory is not in its layer), or
 * LOWER_NEVER (too many, unreadable, out of memory). */
static void dir_read(fll_lower_names *ln, lower_dir *d) {
    DIR *dh = opendir(d->path);
    if (!dh) {
        d->state = errno == ENOENT || errno == ENOTDIR ? LOWER_READ : LOWER_NEVER;
        ln->reads += d->state == LOWER_READ;
        return;
    }
    size_t cap = 4096, used = 0;
    uint32_t count = 0;
    char *blob = malloc(cap);
    int ok = blob != NULL;
    struct dirent *e;
    errno = 0;
    while (ok && (e = readdir(dh)) != NULL) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
        size_t len = strlen(e->d_name) + 1;
        if (count >= LOWER_DIR_MAX) {
            ok = 0;
            break;
        }
        if (used + len > cap) {
            char *bigger = realloc(blob, cap * 2);
            if (!bigger) {
                ok = 0;
                break;
            }
            blob = bigger;
            cap *= 2;
        }
        memcpy(blob + used, e->d_name, len);
        used += len;
        count++;
        errno = 0;
    }
    if (ok && errno) ok = 0; /* readdir failed */
    closedir(dh);
    uint32_t slots = 8;
    while (slots < 2 * count) slots *= 2;
    uint32_t *table = ok ? calloc(slots, sizeof *table) : NULL;
    if (!table) {
        free(blob);
        d->state = LOWER_NEVER;
        return;
    }
    if (ln->names + count > LOWER_NAMES_MAX) lower_clear(ln, d, 0);
    for (size_t at = 0; at < used; at += strlen(blob + at) + 1) {
        uint32_t i = fnv(blob + at) & (slots - 1);
        while (table[i]) i = (i + 1) & (slots - 1);
        table[i] = (uint32_t)at + 1;
    }
    d->blob = blob;
    d->slots = table;
    d->count = count;
    d->mask = slots - 1;
    d->state = LOWER_READ;
    ln->names += count;
    ln->reads++;
}

/* Whether d, read, lists `name`. */
static int lists(const lower_dir *d, const char *name) {
    if (!d->count) return 0;
    /* Never full (twice as many slots as names): a free slot ends every probe. */
    for (uint32_t i = fnv(name) & d->mask;; i = (i + 1) & d->mask) {
        uint32_t at = d->slots[i];
        if (!at) return 0;
        if (strcmp(d->blob + at - 1, name) == 0) return 1;
    }
}

/* A name was found missing from the lower directory `dir` (its record d, or none yet) by lstat:
 * the LOWER_MISSES-th miss reads its names. */
static void missed(fll_session *s, const char *dir, uint32_t hash, lower_dir *d) {
    if (!s->lower_names && !(s->lower_names = calloc(1, sizeof *s->lower_names))) return;
    fll_lower_names *ln = s->lower_names;
    if (!d) {
        if (ln->dirs >= LOWER_DIRS_MAX) lower_clear(ln, NULL, 1);
        size_t len = strlen(dir);
        if (!(d = calloc(1, sizeof *d + len + 1))) return;
        memcpy(d->path, dir, len + 1);
        d->hash = hash;
        d->next = ln->buckets[hash % LOWER_BUCKETS];
        ln->buckets[hash % LOWER_BUCKETS] = d;
        ln->dirs++;
    }
    if (d->state == LOWER_UNREAD && ++d->misses >= LOWER_MISSES) dir_read(ln, d);
}

int fll_probe_name(fll_session *s, const char *dir, int depth, const char *name, char *path, struct stat *st) {
    uint32_t hash = 0;
    lower_dir *d = NULL;
    if (depth > 0) {
        hash = fnv(dir);
        d = s->lower_names ? dir_find(s->lower_names, dir, hash) : NULL;
        if (d && d->state == LOWER_READ && !lists(d, name)) return 0;
    }
    int len = snprintf(path, PATH_MAX, "%s/%s", dir, name);
    if (len < 0 || len >= PATH_MAX) return -1;
    if (lstat(path, st) == 0) return 1;
    if (errno != ENOENT) return -1;
    if (depth > 0 && !(d && d->state != LOWER_UNREAD)) missed(s, dir, hash, d);
    return 0;
}

uint64_t fll_lower_reads(const fll_session *s) {
    return s->lower_names ? s->lower_names->reads : 0;
}

void fll_lower_free(fll_session *s) {
    if (!s->lower_names) return;
    lower_clear(s->lower_names, NULL, 1);
    free(s->lower_names);
    s->lower_names = NULL;
}
