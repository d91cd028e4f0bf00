/* Crash-safe training checkpoints: a safetensors file with CRC-32s of its header and data
 * block in __metadata__, written through the atomic writer (see leanprop/checkpoint.h).
 *
 * The writer serialises the file itself (rather than through lp_safetensors_writer) so that
 * it knows every byte: the data CRC is computed before the header is written, and the header
 * CRC covers the length prefix and the header text with the CRC's own 8 hex digits read as
 * "00000000". The reader maps the file, validates it with lp_safetensors_open_memory, then
 * recomputes both CRCs over the mapped bytes. */
#include "leanprop/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "leanprop/alloc.h"
#include "leanprop/fileio.h"

#define KEY_VERSION "leanprop.checkpoint"
#define KEY_HEADER_CRC "leanprop.header_crc32"
#define KEY_DATA_CRC "leanprop.data_crc32"
#define KEY_JSON "leanprop.json"
/* The exact bytes the writer puts before the header CRC's hex digits. */
#define HEADER_CRC_MARK "\"" KEY_HEADER_CRC "\":\""

typedef struct {
    char *name;
    lp_dtype dtype;
    const void *data;
    int ndim;
    int64_t shape[LP_MAX_DIMS];
    size_t nbytes;
} ck_tensor;

typedef struct {
    char *key;      /* "u64.<name>" / "i64.<name>" */
    char value[24]; /* decimal */
} ck_scalar;

struct lp_checkpoint_writer {
    ck_tensor *t;
    int nt, ct;
    ck_scalar *s;
    int ns, cs;
    char *json;
};

/* ------------------------------------------------------------------ writer */

lp_checkpoint_writer *lp_checkpoint_writer_new(void)
{
    lp_checkpoint_writer *w = calloc(1, sizeof *w);
    if (!w) lp_error(LP_ERR_NOMEM, "lp_checkpoint_writer_new: out of memory");
    return w;
}

void lp_checkpoint_writer_free(lp_checkpoint_writer *w)
{
    if (!w) return;
    for (int i = 0; i < w->nt; i++) free(w->t[i].name);
    for (int i = 0; i < w->ns; i++) free(w->s[i].key);
    free(w->t);
    free(w->s);
    free(w->json);
    free(w);
}

static lp_status check_name(const char *name, const char *what)
{
    if (!name || !name[0]) return lp_error(LP_ERR_INVALID_ARG, "checkpoint: empty %s name", what);
    if (strlen(name) > LP_CHECKPOINT_NAME_MAX)
        return lp_error(LP_ERR_INVALID_ARG, "checkpoint: %s name longer than %d bytes", what, LP_CHECKPOINT_NAME_MAX);
    return LP_OK;
}

static lp_status add_tensor(lp_checkpoint_writer *w, const char *name, lp_dtype dt, const void *data,
                            const int64_t *shape, int ndim)
{
    if (!w) return lp_error(LP_ERR_INVALID_ARG, "checkpoint writer: NULL writer");
    LP_TRY(check_name(name, "tensor"));
    if (!strcmp(name, "__metadata__"))
        return lp_error(LP_ERR_INVALID_ARG, "checkpoint writer: '__metadata__' is not a tensor name");
    if (ndim < 0 || ndim > LP_MAX_DIMS || (ndim > 0 && !shape))
        return lp_error(LP_ERR_INVALID_ARG, "checkpoint writer: tensor '%s': bad rank %d", name, ndim);
    size_t esz = lp_dtype_size(dt), numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) return lp_error(LP_ERR_INVALID_ARG, "checkpoint writer: tensor '%s': negative dimension", name);
        if (shape[d] && numel > (SIZE_MAX / esz) / (size_t)shape[d])
            return lp_error(LP_ERR_INVALID_ARG, "checkpoint writer: tensor '%s': size overflows", name);
        numel *= (size_t)shape[d];
    }
    if (numel && !data) return lp_error(LP_ERR_INVALID_ARG, "checkpoint writer: tensor '%s': NULL data", name);
    for (int i = 0; i < w->nt; i++)
        if (!strcmp(w->t[i].name, name))
            return lp_error(LP_ERR_INVALID_ARG, "checkpoint writer: duplicate tensor '%s'", name);
    if (w->nt == w->ct) {
        int nc = w->ct ? 2 * w->ct : 16;
        ck_tensor *nt = realloc(w->t, (size_t)nc * sizeof *nt);
        if (!nt) return lp_error(LP_ERR_NOMEM, "checkpoint writer: out of memory");
        w->t = nt;
        w->ct = nc;
    }
    ck_tensor *t = &w->t[w->nt];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) return lp_error(LP_ERR_NOMEM, "checkpoint writer: out of memory");
    t->dtype = dt;
    t->data = data;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
    t->nbytes = numel * esz;
    w->nt++;
    return LP_OK;
}

lp_status lp_checkpoint_writer_add_tensor(lp_checkpoint_writer *w, const char *name, const float *data,
                                          const int64_t *shape, int ndim)
{
    return add_tensor(w, name, LP_DTYPE_F32, data, shape, ndim);
}

lp_status lp_checkpoint_writer_add_bytes(lp_checkpoint_writer *w, const char *name, const void *data, size_t n)
{
    if (n > (size_t)INT64_MAX) return lp_error(LP_ERR_INVALID_ARG, "checkpoint writer: blob '%s' too large", name);
    int64_t shape[1] = {(int64_t)n};
    return add_tensor(w, name, LP_DTYPE_U8, data, shape, 1);
}

static lp_status add_scalar(lp_checkpoint_writer *w, const char *kind, const char *name, const char *value)
{
    if (!w) return lp_error(LP_ERR_INVALID_ARG, "checkpoint writer: NULL writer");
    LP_TRY(check_name(name, "scalar"));
    size_t kl = strlen(kind) + 1 + strlen(name) + 1;
    char *key = malloc(kl);
    if (!key) return lp_error(LP_ERR_NOMEM, "checkpoint writer: out of memory");
    snprintf(key, kl, "%s.%s", kind, name);
    for (int i = 0; i < w->ns; i++)
        if (!strcmp(w->s[i].key, key)) {
            free(key);
            return lp_error(LP_ERR_INVALID_ARG, "checkpoint writer: duplicate %s scalar '%s'", kind, name);
        }
    if (w->ns == w->cs) {
        int nc = w->cs ? 2 * w->cs : 16;
        ck_scalar *ns = realloc(w->s, (size_t)nc * sizeof *ns);
        if (!ns) { free(key); return lp_error(LP_ERR_NOMEM, "checkpoint writer: out of memory"); }
        w->s = ns;
        w->cs = nc;
    }
    w->s[w->ns].key = key;
    snprintf(w->s[w->ns].value, sizeof w->s[0].value, "%s", value);
    w->ns++;
    return LP_OK;
}

lp_status lp_checkpoint_writer_add_u64(lp_checkpoint_writer *w, const char *name, uint64_t value)
{
    char v[24];
    snprintf(v, sizeof v, "%" PRIu64, value);
    return add_scalar(w, "u64", name, v);
}

lp_status lp_checkpoint_writer_add_i64(lp_checkpoint_writer *w, const char *name, int64_t value)
{
    char v[24];
    snprintf(v, sizeof v, "%" PRId64, value);
    return add_scalar(w, "i64", name, v);
}

lp_status lp_checkpoint_writer_add_rng(lp_checkpoint_writer *w, const char *name, const lp_rng *r)
{
    if (!r) return lp_error(LP_ERR_INVALID_ARG, "checkpoint writer: NULL generator");
    LP_TRY(check_name(name, "generator"));
    if (strlen(name) + 16 > LP_CHECKPOINT_NAME_MAX)
        return lp_error(LP_ERR_INVALID_ARG, "checkpoint writer: generator name too long");
    char key[LP_CHECKPOINT_NAME_MAX + 1];
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof key, "%s.s%d", name, i);
        LP_TRY(lp_checkpoint_writer_add_u64(w, key, r->s[i]));
    }
    uint64_t bits;
    memcpy(&bits, &r->spare, sizeof bits);
    snprintf(key, sizeof key, "%s.spare", name);
    LP_TRY(lp_checkpoint_writer_add_u64(w, key, bits));
    snprintf(key, sizeof key, "%s.has_spare", name);
    return lp_checkpoint_writer_add_u64(w, key, r->has_spare ? 1 : 0);
}

lp_status lp_checkpoint_writer_set_json(lp_checkpoint_writer *w, const char *json)
{
    if (!w || !json) return lp_error(LP_ERR_INVALID_ARG, "lp_checkpoint_writer_set_json: NULL argument");
    cJSON *j = cJSON_Parse(json);
    if (!j) return lp_error(LP_ERR_INVALID_ARG, "checkpoint writer: the JSON string does not parse");
    cJSON_Delete(j);
    char *c = strdup(json);
    if (!c) return lp_error(LP_ERR_NOMEM, "checkpoint writer: out of memory");
    free(w->json);
    w->json = c;
    return LP_OK;
}

/* Growable text in scratch memory. */
typedef struct {
    char *p;
    size_t len, cap;
    int failed;
} sbuf;

static void sb_grow(sbuf *b, size_t extra)
{
    if (b->failed) return;
    if (b->len + extra + 1 <= b->cap) return;
    size_t nc = b->cap ? b->cap : 1024;
    while (nc < b->len + extra + 1) {
        if (nc > SIZE_MAX / 2) { b->failed = 1; return; }
        nc *= 2;
    }
    char *np = lp_realloc(b->p, nc);
    if (!np) { b->failed = 1; return; }
    b->p = np;
    b->cap = nc;
}

static void sb_put(sbuf *b, const char *s, size_t n)
{
    sb_grow(b, n);
    if (b->failed) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* A JSON string literal: quotes, backslashes and control bytes escaped; other bytes as they are. */
static void sb_json_string(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') { esc[0] = '\\'; esc[1] = (char)c; sb_put(b, esc, 2); }
        else if (c < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", c); sb_put(b, esc, 6); }
        else sb_put(b, (const char *)&c, 1);
    }
    sb_put(b, "\"", 1);
}

static void hex8(char *dst, uint32_t v)
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 7; i >= 0; i--) { dst[i] = digits[v & 15]; v >>= 4; }
}

/* Header JSON (padded with spaces to a multiple of 8) with the data CRC filled in and the
 * header CRC's digits at *crc_pos (still "00000000"). */
static lp_status build_header(const lp_checkpoint_writer *w, uint32_t data_crc, sbuf *b, size_t *crc_pos)
{
    char hex[9] = {0};
    sb_str(b, "{\"__metadata__\":{\"" KEY_VERSION "\":\"1\",");
    sb_str(b, HEADER_CRC_MARK);
    *crc_pos = b->len;
    sb_str(b, "00000000\",\"" KEY_DATA_CRC "\":\"");
    hex8(hex, data_crc);
    sb_str(b, hex);
    sb_str(b, "\"");
    if (w->json) {
        sb_str(b, ",\"" KEY_JSON "\":");
        sb_json_string(b, w->json);
    }
    for (int i = 0; i < w->ns; i++) {
        sb_str(b, ",");
        sb_json_string(b, w->s[i].key);
        sb_str(b, ":\"");
        sb_str(b, w->s[i].value);
        sb_str(b, "\"");
    }
    sb_str(b, "}");
    uint64_t off = 0;
    for (int i = 0; i < w->nt; i++) {
        const ck_tensor *t = &w->t[i];
        char num[64];
        sb_str(b, ",");
        sb_json_string(b, t->name);
        sb_str(b, ":{\"dtype\":\"");
        sb_str(b, lp_dtype_name(t->dtype));
        sb_str(b, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(num, sizeof num, "%s%" PRId64, d ? "," : "", t->shape[d]);
            sb_str(b, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off, off + (uint64_t)t->nbytes);
        sb_str(b, num);
        off += t->nbytes;
    }
    sb_str(b, "}");
    while (!b->failed && (b->len % 8) != 0) sb_str(b, " ");
    if (b->failed) return lp_error(LP_ERR_NOMEM, "checkpoint writer: out of memory for the header");
    if (b->len > LP_SAFETENSORS_MAX_HEADER)
        return lp_error(LP_ERR_INVALID_ARG, "checkpoint writer: header of %zu bytes exceeds the safetensors limit",
                        b->len);
    return LP_OK;
}

lp_status lp_checkpoint_writer_save(lp_checkpoint_writer *w, const char *path)
{
    if (!w || !path) return lp_error(LP_ERR_INVALID_ARG, "lp_checkpoint_writer_save: NULL argument");
    uint32_t data_crc = 0;
    for (int i = 0; i < w->nt; i++) data_crc = lp_crc32(data_crc, w->t[i].data, w->t[i].nbytes);
    sbuf hdr = {0};
    size_t crc_pos = 0;
    lp_status st = build_header(w, data_crc, &hdr, &crc_pos);
    if (st != LP_OK) {
        lp_free(hdr.p);
        return lp_error_context(st, "%s", path);
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hdr.len >> (8 * i));
    uint32_t hcrc = lp_crc32(0, len8, 8);
    hcrc = lp_crc32(hcrc, hdr.p, hdr.len);
    hex8(hdr.p + crc_pos, hcrc);

    lp_atomic_writer *aw = NULL;
    st = lp_atomic_writer_open(&aw, path);
    if (st == LP_OK) st = lp_atomic_writer_write(aw, len8, 8);
    if (st == LP_OK) st = lp_atomic_writer_write(aw, hdr.p, hdr.len);
    for (int i = 0; i < w->nt && st == LP_OK; i++)
        if (w->t[i].nbytes) st = lp_atomic_writer_write(aw, w->t[i].data, w->t[i].nbytes);
    lp_free(hdr.p);
    if (st != LP_OK) {
        lp_atomic_writer_abort(aw);
        return st;
    }
    return lp_atomic_writer_commit(aw);
}

/* ------------------------------------------------------------------ reader */

struct lp_checkpoint {
    char *path;
    void *map;
    size_t size;
    lp_safetensors *st;
};

static int parse_hex8(const char *s, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 8; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return 0;
        v = v << 4 | (uint32_t)d;
    }
    if (s[8] != '\0') return 0;
    *out = v;
    return 1;
}

/* Both CRCs over the mapped bytes; the safetensors reader has already checked the layout. */
static lp_status verify(const lp_checkpoint *c)
{
    const unsigned char *p = c->map;
    const char *path = c->path;
    const char *ver = lp_safetensors_metadata(c->st, KEY_VERSION);
    if (!ver) return lp_error(LP_ERR_FORMAT, "%s: not a leanprop checkpoint (no \"" KEY_VERSION "\" in __metadata__)", path);
    if (strcmp(ver, "1") != 0) {
        char *end;
        long v = strtol(ver, &end, 10);
        if (*end == '\0' && end != ver && v > LP_CHECKPOINT_VERSION)
            return lp_error(LP_ERR_UNSUPPORTED, "%s: checkpoint format version %s (this build reads %d)", path, ver,
                            LP_CHECKPOINT_VERSION);
        return lp_error(LP_ERR_FORMAT, "%s: bad checkpoint format version '%s'", path, ver);
    }
    const char *hs = lp_safetensors_metadata(c->st, KEY_HEADER_CRC);
    const char *ds = lp_safetensors_metadata(c->st, KEY_DATA_CRC);
    uint32_t hwant, dwant;
    if (!hs || !parse_hex8(hs, &hwant))
        return lp_error(LP_ERR_FORMAT, "%s: missing or malformed \"" KEY_HEADER_CRC "\" (the file is corrupt)", path);
    if (!ds || !parse_hex8(ds, &dwant))
        return lp_error(LP_ERR_FORMAT, "%s: missing or malformed \"" KEY_DATA_CRC "\" (the file is corrupt)", path);
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= (uint64_t)p[i] << (8 * i);
    if (n > c->size - 8) return lp_error(LP_ERR_FORMAT, "%s: header length past the end of the file", path);
    const char *hdr = (const char *)p + 8;
    const size_t ml = sizeof HEADER_CRC_MARK - 1;
    const char *mark = memmem(hdr, (size_t)n, HEADER_CRC_MARK, ml);
    if (!mark || (size_t)(mark - hdr) + ml + 8 > n ||
        memmem(mark + ml, (size_t)n - (size_t)(mark - hdr) - ml, HEADER_CRC_MARK, ml) != NULL ||
        memcmp(mark + ml, hs, 8) != 0)
        return lp_error(LP_ERR_FORMAT, "%s: header checksum field not where the writer puts it (the file is corrupt)",
                        path);
    size_t pos = (size_t)(mark - hdr) + ml;
    uint32_t h = lp_crc32(0, p, 8);
    h = lp_crc32(h, hdr, pos);
    h = lp_crc32(h, "00000000", 8);
    h = lp_crc32(h, hdr + pos + 8, (size_t)n - pos - 8);
    if (h != hwant)
        return lp_error(LP_ERR_FORMAT, "%s: header checksum mismatch (stored %08x, computed %08x): the file is corrupt",
                        path, hwant, h);
    uint32_t d = lp_crc32(0, p + 8 + n, c->size - 8 - (size_t)n);
    if (d != dwant)
        return lp_error(LP_ERR_FORMAT,
                        "%s: data checksum mismatch (stored %08x, computed %08x over %zu bytes): the file is corrupt "
                        "or truncated",
                        path, dwant, d, c->size - 8 - (size_t)n);
    return LP_OK;
}

lp_status lp_checkpoint_open(lp_checkpoint **out, const char *path)
{
    if (!out || !path) return lp_error(LP_ERR_INVALID_ARG, "lp_checkpoint_open: NULL argument");
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return lp_error(LP_ERR_NOT_FOUND, "%s: no such checkpoint", path);
        return lp_error(LP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return lp_error(LP_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return lp_error(LP_ERR_FORMAT, "%s: not a regular file", path);
    }
    if (sb.st_size < 16) {
        close(fd);
        return lp_error(LP_ERR_FORMAT, "%s: truncated checkpoint (%lld bytes)", path, (long long)sb.st_size);
    }
    lp_checkpoint *c = calloc(1, sizeof *c);
    if (!c || !(c->path = strdup(path))) {
        close(fd);
        free(c);
        return lp_error(LP_ERR_NOMEM, "%s: out of memory", path);
    }
    c->size = (size_t)sb.st_size;
    c->map = mmap(NULL, c->size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (c->map == MAP_FAILED) {
        c->map = NULL;
        lp_checkpoint_close(c);
        return lp_error(LP_ERR_IO, "%s: cannot map: %s", path, strerror(e));
    }
    lp_status st = lp_safetensors_open_memory(&c->st, c->map, c->size, c->path);
    if (st == LP_OK) st = verify(c);
    if (st != LP_OK) {
        lp_checkpoint_close(c);
        return st;
    }
    *out = c;
    return LP_OK;
}

void lp_checkpoint_close(lp_checkpoint *c)
{
    if (!c) return;
    lp_safetensors_close(c->st);
    if (c->map) munmap(c->map, c->size);
    free(c->path);
    free(c);
}

const char *lp_checkpoint_path(const lp_checkpoint *c) { return c ? c->path : NULL; }
int lp_checkpoint_tensor_count(const lp_checkpoint *c) { return c ? lp_safetensors_count(c->st) : 0; }

const lp_tensor_info *lp_checkpoint_tensor_at(const lp_checkpoint *c, int i)
{
    return c && i >= 0 && i < lp_safetensors_count(c->st) ? lp_safetensors_at(c->st, i) : NULL;
}

const lp_tensor_info *lp_checkpoint_find(const lp_checkpoint *c, const char *name)
{
    return c && name ? lp_safetensors_find(c->st, name) : NULL;
}

static lp_status require(const lp_checkpoint *c, const char *name, lp_dtype dt, const lp_tensor_info **t)
{
    if (!c || !name) return lp_error(LP_ERR_INVALID_ARG, "checkpoint: NULL argument");
    *t = lp_safetensors_find(c->st, name);
    if (!*t) return lp_error(LP_ERR_NOT_FOUND, "%s: no tensor '%s' in the checkpoint", c->path, name);
    if ((*t)->dtype != dt)
        return lp_error(LP_ERR_FORMAT, "%s: tensor '%s' is %s, expected %s", c->path, name, lp_dtype_name((*t)->dtype),
                        lp_dtype_name(dt));
    return LP_OK;
}

lp_status lp_checkpoint_get_tensor(const lp_checkpoint *c, const char *name, float *dst, size_t n)
{
    const lp_tensor_info *t = NULL;
    LP_TRY(require(c, name, LP_DTYPE_F32, &t));
    if ((size_t)t->numel != n)
        return lp_error(LP_ERR_FORMAT, "%s: tensor '%s' has %lld elements, expected %zu", c->path, name,
                        (long long)t->numel, n);
    if (n && !dst) return lp_error(LP_ERR_INVALID_ARG, "%s: tensor '%s': NULL destination", c->path, name);
    if (n) memcpy(dst, t->data, n * sizeof(float));
    return LP_OK;
}

lp_status lp_checkpoint_get_bytes(const lp_checkpoint *c, const char *name, void *dst, size_t n)
{
    const lp_tensor_info *t = NULL;
    LP_TRY(require(c, name, LP_DTYPE_U8, &t));
    if (t->nbytes != n)
        return lp_error(LP_ERR_FORMAT, "%s: blob '%s' has %zu bytes, expected %zu", c->path, name, t->nbytes, n);
    if (n && !dst) return lp_error(LP_ERR_INVALID_ARG, "%s: blob '%s': NULL destination", c->path, name);
    if (n) memcpy(dst, t->data, n);
    return LP_OK;
}

static lp_status scalar_text(const lp_checkpoint *c, const char *kind, const char *name, const char **out)
{
    if (!c || !name || !out) return lp_error(LP_ERR_INVALID_ARG, "checkpoint: NULL argument");
    char key[LP_CHECKPOINT_NAME_MAX + 8];
    if (strlen(name) > LP_CHECKPOINT_NAME_MAX)
        return lp_error(LP_ERR_INVALID_ARG, "checkpoint: scalar name too long");
    snprintf(key, sizeof key, "%s.%s", kind, name);
    *out = lp_safetensors_metadata(c->st, key);
    if (!*out) return lp_error(LP_ERR_NOT_FOUND, "%s: no %s scalar '%s' in the checkpoint", c->path, kind, name);
    return LP_OK;
}

lp_status lp_checkpoint_get_u64(const lp_checkpoint *c, const char *name, uint64_t *out)
{
    const char *s;
    LP_TRY(scalar_text(c, "u64", name, &s));
    uint64_t v = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) break;
        v = v * 10 + d;
    }
    if (p == s || *p != '\0') return lp_error(LP_ERR_FORMAT, "%s: u64 scalar '%s' = '%s' is not a valid value", c->path, name, s);
    *out = v;
    return LP_OK;
}

lp_status lp_checkpoint_get_i64(const lp_checkpoint *c, const char *name, int64_t *out)
{
    const char *s;
    LP_TRY(scalar_text(c, "i64", name, &s));
    int neg = *s == '-';
    const char *p = s + neg;
    uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    const char *start = p;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (lim - d) / 10) break;
        v = v * 10 + d;
    }
    if (p == start || *p != '\0')
        return lp_error(LP_ERR_FORMAT, "%s: i64 scalar '%s' = '%s' is not a valid value", c->path, name, s);
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return LP_OK;
}

lp_status lp_checkpoint_get_rng(const lp_checkpoint *c, const char *name, lp_rng *r)
{
    if (!c || !name || !r) return lp_error(LP_ERR_INVALID_ARG, "lp_checkpoint_get_rng: NULL argument");
    if (strlen(name) + 16 > LP_CHECKPOINT_NAME_MAX) return lp_error(LP_ERR_INVALID_ARG, "checkpoint: generator name too long");
    char key[LP_CHECKPOINT_NAME_MAX + 1];
    lp_rng tmp;
    uint64_t bits, has;
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof key, "%s.s%d", name, i);
        LP_TRY(lp_checkpoint_get_u64(c, key, &tmp.s[i]));
    }
    snprintf(key, sizeof key, "%s.spare", name);
    LP_TRY(lp_checkpoint_get_u64(c, key, &bits));
    snprintf(key, sizeof key, "%s.has_spare", name);
    LP_TRY(lp_checkpoint_get_u64(c, key, &has));
    if (has > 1) return lp_error(LP_ERR_FORMAT, "%s: generator '%s': has_spare = %llu", c->path, name, (unsigned long long)has);
    if (!(tmp.s[0] | tmp.s[1] | tmp.s[2] | tmp.s[3]))
        return lp_error(LP_ERR_FORMAT, "%s: generator '%s': all-zero state (xoshiro would stay at zero)", c->path, name);
    memcpy(&tmp.spare, &bits, sizeof bits);
    tmp.has_spare = (int)has;
    *r = tmp;
    return LP_OK;
}

const char *lp_checkpoint_json(const lp_checkpoint *c) { return c ? lp_safetensors_metadata(c->st, KEY_JSON) : NULL; }
