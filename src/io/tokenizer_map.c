/* Tokenizer plumbing: growable buffers, whole-file reads, and two open-addressing hash maps
 * (byte string -> int64, id pair -> merge). Linear probing, power-of-two tables kept at most
 * half full, so a lookup is one or two cache lines. All memory from lp_alloc (LP_MEM_DATA). */
#include "io/tokenizer_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "leanprop/alloc.h"

/* ---- growable buffers ---- */

static lp_status grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return LP_OK;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) {
        if (nc > SIZE_MAX / 2 / elem) return lp_error(LP_ERR_NOMEM, "tokenizer: buffer of %zu items overflows", need);
        nc *= 2;
    }
    void *q = *p ? lp_realloc(*p, nc * elem) : lp_alloc_array(LP_MEM_DATA, nc, elem);
    if (!q) return LP_ERR_NOMEM;
    *p = q;
    *cap = nc;
    return LP_OK;
}

lp_status tk_bytes_reserve(tk_bytes *b, size_t extra)
{
    if (extra > SIZE_MAX - b->n - 1) return lp_error(LP_ERR_NOMEM, "tokenizer: byte buffer overflows");
    return grow((void **)&b->p, &b->cap, b->n + extra + 1, 1);
}

lp_status tk_bytes_append(tk_bytes *b, const void *data, size_t n)
{
    LP_TRY(tk_bytes_reserve(b, n));
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = '\0';
    return LP_OK;
}

void tk_bytes_free(tk_bytes *b)
{
    lp_free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

lp_status tk_ids_reserve(tk_ids *v, size_t extra)
{
    if (extra > SIZE_MAX / 8 - v->n) return lp_error(LP_ERR_NOMEM, "tokenizer: id buffer overflows");
    return grow((void **)&v->p, &v->cap, v->n + extra, sizeof(int32_t));
}

lp_status tk_ids_push(tk_ids *v, int32_t id)
{
    if (v->n == v->cap) LP_TRY(tk_ids_reserve(v, 1));
    v->p[v->n++] = id;
    return LP_OK;
}

void tk_ids_free(tk_ids *v)
{
    lp_free(v->p);
    v->p = NULL;
    v->n = v->cap = 0;
}

lp_status tk_read_file(const char *path, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        return lp_error(e == ENOENT ? LP_ERR_NOT_FOUND : LP_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size < 0 || (uint64_t)sb.st_size >= SIZE_MAX / 2) {
        fclose(f);
        return lp_error(LP_ERR_IO, "%s: not a regular file", path);
    }
    long size = (long)sb.st_size;
    char *buf = lp_alloc(LP_MEM_DATA, (size_t)size + 1);
    if (!buf) {
        fclose(f);
        return lp_error_context(LP_ERR_NOMEM, "%s", path);
    }
    size_t got = size ? fread(buf, 1, (size_t)size, f) : 0;
    int err = ferror(f);
    fclose(f);
    if (got != (size_t)size || err) {
        lp_free(buf);
        return lp_error(LP_ERR_IO, "%s: read %zu of %ld bytes", path, got, size);
    }
    buf[size] = '\0';
    *out = buf;
    *len = (size_t)size;
    return LP_OK;
}

/* ---- hashing ---- */

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27; x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

uint64_t tk_hash(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (n * 0xff51afd7ed558ccdULL);
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, s, 8);
        h = (h ^ v) * 0x100000001b3ULL;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    uint64_t v = 0;
    memcpy(&v, s, n);
    h = mix64(h ^ v);
    return h ? h : 1; /* 0 marks an empty slot */
}

/* ---- byte string map ---- */

static size_t table_size(size_t expected)
{
    size_t cap = 16;
    while (cap < expected * 2 + 2) cap *= 2;
    return cap;
}

lp_status tk_map_init(tk_map *m, size_t expected)
{
    memset(m, 0, sizeof *m);
    m->cap = table_size(expected);
    m->slots = lp_alloc_array(LP_MEM_DATA, m->cap, sizeof(tk_map_slot));
    if (!m->slots) return LP_ERR_NOMEM;
    return tk_bytes_reserve(&m->keys, expected * 8 + 64);
}

void tk_map_free(tk_map *m)
{
    lp_free(m->slots);
    tk_bytes_free(&m->keys);
    memset(m, 0, sizeof *m);
}

void tk_map_clear(tk_map *m)
{
    if (m->slots) memset(m->slots, 0, m->cap * sizeof(tk_map_slot));
    m->n = 0;
    m->keys.n = 0;
}

const int64_t *tk_map_get(const tk_map *m, const void *key, size_t len)
{
    if (!m->slots) return NULL;
    uint64_t h = tk_hash(key, len);
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        const tk_map_slot *s = &m->slots[i];
        if (!s->hash) return NULL;
        if (s->hash == h && s->len == len && memcmp(m->keys.p + s->off, key, len) == 0) return &s->val;
    }
}

static lp_status map_rehash(tk_map *m)
{
    size_t ncap = m->cap * 2;
    tk_map_slot *ns = lp_alloc_array(LP_MEM_DATA, ncap, sizeof(tk_map_slot));
    if (!ns) return LP_ERR_NOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].hash) continue;
        size_t j = (size_t)m->slots[i].hash & (ncap - 1);
        while (ns[j].hash) j = (j + 1) & (ncap - 1);
        ns[j] = m->slots[i];
    }
    lp_free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    return LP_OK;
}

lp_status tk_map_put(tk_map *m, const void *key, size_t len, int64_t val, int *inserted)
{
    if (inserted) *inserted = 0;
    if (len > UINT32_MAX || m->keys.n > UINT32_MAX - len - 1)
        return lp_error(LP_ERR_NOMEM, "tokenizer: hash map keys past 4 GiB");
    if ((m->n + 1) * 2 > m->cap) LP_TRY(map_rehash(m));
    uint64_t h = tk_hash(key, len);
    size_t mask = m->cap - 1, i = (size_t)h & mask;
    for (;; i = (i + 1) & mask) {
        tk_map_slot *s = &m->slots[i];
        if (!s->hash) break;
        if (s->hash == h && s->len == len && memcmp(m->keys.p + s->off, key, len) == 0) return LP_OK;
    }
    size_t off = m->keys.n;
    LP_TRY(tk_bytes_append(&m->keys, key, len));
    m->slots[i] = (tk_map_slot){ .hash = h, .off = (uint32_t)off, .len = (uint32_t)len, .val = val };
    m->n++;
    if (inserted) *inserted = 1;
    return LP_OK;
}

/* ---- pair map ---- */

#define PAIR_EMPTY UINT64_MAX

static inline uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

lp_status tk_pairmap_init(tk_pairmap *m, size_t expected)
{
    memset(m, 0, sizeof *m);
    m->cap = table_size(expected);
    m->slots = lp_alloc_array(LP_MEM_DATA, m->cap, sizeof(tk_pair_slot));
    if (!m->slots) return LP_ERR_NOMEM;
    for (size_t i = 0; i < m->cap; i++) m->slots[i].key = PAIR_EMPTY;
    return LP_OK;
}

void tk_pairmap_free(tk_pairmap *m)
{
    lp_free(m->slots);
    memset(m, 0, sizeof *m);
}

const tk_pair_slot *tk_pairmap_get(const tk_pairmap *m, int32_t a, int32_t b)
{
    if (!m->slots) return NULL;
    uint64_t k = pair_key(a, b);
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)mix64(k) & mask;; i = (i + 1) & mask) {
        if (m->slots[i].key == k) return &m->slots[i];
        if (m->slots[i].key == PAIR_EMPTY) return NULL;
    }
}

lp_status tk_pairmap_put(tk_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t merged, int *inserted)
{
    if (inserted) *inserted = 0;
    if ((m->n + 1) * 2 > m->cap) {
        size_t ncap = m->cap * 2;
        tk_pair_slot *ns = lp_alloc_array(LP_MEM_DATA, ncap, sizeof(tk_pair_slot));
        if (!ns) return LP_ERR_NOMEM;
        for (size_t i = 0; i < ncap; i++) ns[i].key = PAIR_EMPTY;
        for (size_t i = 0; i < m->cap; i++) {
            if (m->slots[i].key == PAIR_EMPTY) continue;
            size_t j = (size_t)mix64(m->slots[i].key) & (ncap - 1);
            while (ns[j].key != PAIR_EMPTY) j = (j + 1) & (ncap - 1);
            ns[j] = m->slots[i];
        }
        lp_free(m->slots);
        m->slots = ns;
        m->cap = ncap;
    }
    uint64_t k = pair_key(a, b);
    size_t mask = m->cap - 1, i = (size_t)mix64(k) & mask;
    for (; m->slots[i].key != PAIR_EMPTY; i = (i + 1) & mask)
        if (m->slots[i].key == k) return LP_OK; /* first (lowest rank) wins */
    m->slots[i] = (tk_pair_slot){ .key = k, .rank = rank, .merged = merged };
    m->n++;
    if (inserted) *inserted = 1;
    return LP_OK;
}
