/* TokenTune token selection: which positions of each sequence train this step.
 *
 * The built-in strategies draw with selection sampling (Knuth's Algorithm S):
 * one pass over the candidate positions, each taken with probability
 * (still needed) / (still available). Every k-subset is equally likely, the
 * output comes out ascending and no scratch memory is needed. */
#include "leanprop/tokenselect.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"

lp_tokenselect_config lp_tokenselect_defaults(void)
{
    lp_tokenselect_config c;
    memset(&c, 0, sizeof c);
    c.mode = LP_TOKENSELECT_ALL;
    c.k = 16;
    c.fraction = 0.3;
    c.strategy = LP_TOKENSELECT_RANDOM;
    c.label_shift = 1;
    return c;
}

lp_status lp_tokenselect_parse(lp_tokenselect_config *cfg, const char *spec)
{
    if (!cfg || !spec) return lp_error(LP_ERR_INVALID_ARG, "token selection: NULL argument");
    while (isspace((unsigned char)*spec)) spec++;
    if (!strcmp(spec, "all")) {
        cfg->mode = LP_TOKENSELECT_ALL;
        return LP_OK;
    }
    char *end = NULL;
    errno = 0;
    double v = strtod(spec, &end);
    if (end == spec || errno || !isfinite(v))
        return lp_error(LP_ERR_INVALID_ARG, "token selection \"%s\": expected all, a count, a fraction or a percentage", spec);
    int percent = *end == '%';
    if (percent) end++;
    if (*end != '\0')
        return lp_error(LP_ERR_INVALID_ARG, "token selection \"%s\": trailing characters", spec);
    int has_point = strpbrk(spec, ".eE") != NULL;
    if (percent || has_point) {
        double r = percent ? v / 100.0 : v;
        if (!(r > 0.0 && r <= 1.0))
            return lp_error(LP_ERR_INVALID_ARG, "token selection \"%s\": fraction must be in (0, 1]", spec);
        cfg->mode = LP_TOKENSELECT_FRACTION;
        cfg->fraction = r;
        return LP_OK;
    }
    if (v < 1 || v > INT32_MAX)
        return lp_error(LP_ERR_INVALID_ARG, "token selection \"%s\": count must be a positive integer", spec);
    cfg->mode = LP_TOKENSELECT_COUNT;
    cfg->k = (int32_t)v;
    return LP_OK;
}

lp_status lp_tokenselect_parse_strategy(lp_tokenselect_config *cfg, const char *name)
{
    if (!cfg || !name) return lp_error(LP_ERR_INVALID_ARG, "token selection strategy: NULL argument");
    if (!strcmp(name, "random")) cfg->strategy = LP_TOKENSELECT_RANDOM;
    else if (!strcmp(name, "answer")) cfg->strategy = LP_TOKENSELECT_ANSWER;
    else return lp_error(LP_ERR_INVALID_ARG, "unknown token selection strategy \"%s\" (random, answer)", name);
    return LP_OK;
}

lp_status lp_tokenselect_validate(const lp_tokenselect_config *cfg)
{
    if (!cfg) return lp_error(LP_ERR_INVALID_ARG, "token selection: NULL config");
    switch (cfg->mode) {
    case LP_TOKENSELECT_ALL: break;
    case LP_TOKENSELECT_COUNT:
        if (cfg->k < (cfg->encoder ? 1 : 2))
            return lp_error(LP_ERR_INVALID_ARG, "token selection: k = %d, need k >= %d (%s)", (int)cfg->k,
                            cfg->encoder ? 1 : 2,
                            cfg->encoder ? "[CLS]" : "position 0 and the last token are always selected");
        break;
    case LP_TOKENSELECT_FRACTION:
        if (!(cfg->fraction > 0.0 && cfg->fraction <= 1.0))
            return lp_error(LP_ERR_INVALID_ARG, "token selection: fraction %g outside (0, 1]", cfg->fraction);
        break;
    default: return lp_error(LP_ERR_INVALID_ARG, "token selection: invalid mode %d", (int)cfg->mode);
    }
    switch (cfg->strategy) {
    case LP_TOKENSELECT_RANDOM:
    case LP_TOKENSELECT_ANSWER: break;
    case LP_TOKENSELECT_CUSTOM:
        if (!cfg->custom) return lp_error(LP_ERR_INVALID_ARG, "token selection: custom strategy without a function");
        break;
    default: return lp_error(LP_ERR_INVALID_ARG, "token selection: invalid strategy %d", (int)cfg->strategy);
    }
    return LP_OK;
}

int32_t lp_tokenselect_count(const lp_tokenselect_config *cfg, int32_t len)
{
    if (len <= 0) return 0;
    int32_t lo = cfg->encoder ? 1 : (len < 2 ? len : 2);
    int64_t k;
    switch (cfg->mode) {
    case LP_TOKENSELECT_COUNT: k = cfg->k; break;
    case LP_TOKENSELECT_FRACTION: k = (int64_t)floor(cfg->fraction * (double)len + 0.5 + 1e-9); break;
    default: k = len; break;
    }
    if (k < lo) k = lo;
    if (k > len) k = len;
    return (int32_t)k;
}

void lp_tokenselect_rng_for_step(lp_rng *r, uint64_t seed, int64_t step)
{
    /* splitmix64 finaliser of (seed, step): neighbouring steps get unrelated streams */
    uint64_t z = seed + 0x9e3779b97f4a7c15ULL * ((uint64_t)step + 1u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    lp_rng_seed(r, z ^ 0x546f6b656e54756eULL /* "TokenTun" */);
}

lp_status lp_tokenselect_init(lp_token_selection *sel, int32_t B, int32_t T)
{
    if (!sel) return lp_error(LP_ERR_INVALID_ARG, "token selection: NULL selection");
    memset(sel, 0, sizeof *sel);
    if (B <= 0 || T <= 0) return lp_error(LP_ERR_INVALID_ARG, "token selection: batch %d x %d", (int)B, (int)T);
    size_t bt = (size_t)B * (size_t)T;
    sel->offsets = lp_alloc_array(LP_MEM_DATA, (size_t)B + 1, sizeof(int32_t));
    sel->positions = lp_alloc_array(LP_MEM_DATA, bt, sizeof(int32_t));
    sel->mask = lp_alloc_array(LP_MEM_DATA, bt, 1);
    if (!sel->offsets || !sel->positions || !sel->mask) {
        lp_tokenselect_free(sel);
        return LP_ERR_NOMEM;
    }
    sel->B = B;
    sel->T = T;
    return LP_OK;
}

void lp_tokenselect_free(lp_token_selection *sel)
{
    if (!sel) return;
    lp_free(sel->offsets);
    lp_free(sel->positions);
    lp_free(sel->mask);
    memset(sel, 0, sizeof *sel);
}

/* Forced positions of a sequence: 0, and len-1 for decoders. Returns how many. */
static int32_t forced_count(const lp_tokenselect_config *cfg, int32_t len)
{
    if (len <= 0) return 0;
    if (cfg->encoder || len == 1) return 1;
    return 2;
}

static lp_status check_k(int32_t k, int32_t len, int32_t nf, const char *who)
{
    if (k < 0 || k > len || (len > 0 && k < nf))
        return lp_error(LP_ERR_INVALID_ARG, "token selection (%s): %d positions asked of a sequence of %d "
                        "(needs %d..%d)", who, (int)k, (int)len, (int)nf, (int)len);
    return LP_OK;
}

lp_status lp_tokenselect_random(int32_t *out, int32_t k, int32_t len, const uint8_t *trained,
                                const lp_tokenselect_config *cfg, lp_rng *rng, void *user)
{
    (void)trained; (void)user;
    int32_t nf = forced_count(cfg, len);
    LP_TRY(check_k(k, len, nf, "random"));
    if (len == 0) return LP_OK;
    int32_t hi = cfg->encoder ? len : len - 1; /* interior is [1, hi) */
    int32_t need = k - nf, n = 0;
    out[n++] = 0;
    for (int32_t i = 1; i < hi && need > 0; i++) {
        if ((int64_t)lp_rng_below(rng, (uint64_t)(hi - i)) < need) {
            out[n++] = i;
            need--;
        }
    }
    if (nf == 2) out[n++] = len - 1;
    return n == k ? LP_OK : lp_error(LP_ERR_INTERNAL, "token selection: drew %d of %d", (int)n, (int)k);
}

lp_status lp_tokenselect_answer(int32_t *out, int32_t k, int32_t len, const uint8_t *trained,
                                const lp_tokenselect_config *cfg, lp_rng *rng, void *user)
{
    if (!trained) return lp_tokenselect_random(out, k, len, NULL, cfg, rng, user);
    int32_t nf = forced_count(cfg, len);
    LP_TRY(check_k(k, len, nf, "answer"));
    if (len == 0) return LP_OK;
    int32_t hi = cfg->encoder ? len : len - 1;
    int32_t avail_a = 0;
    for (int32_t i = 1; i < hi; i++) avail_a += trained[i] != 0;
    int32_t avail_r = (hi > 1 ? hi - 1 : 0) - avail_a;
    int32_t need = k - nf;
    int32_t need_a = need < avail_a ? need : avail_a;
    int32_t need_r = need - need_a;
    int32_t n = 0;
    out[n++] = 0;
    /* two interleaved selection samplers: answer positions, then the rest */
    for (int32_t i = 1; i < hi; i++) {
        if (trained[i]) {
            if ((int64_t)lp_rng_below(rng, (uint64_t)avail_a) < need_a) { out[n++] = i; need_a--; }
            avail_a--;
        } else {
            if ((int64_t)lp_rng_below(rng, (uint64_t)avail_r) < need_r) { out[n++] = i; need_r--; }
            avail_r--;
        }
    }
    if (nf == 2) out[n++] = len - 1;
    return n == k ? LP_OK : lp_error(LP_ERR_INTERNAL, "token selection: drew %d of %d", (int)n, (int)k);
}

lp_status lp_tokenselect_select(lp_token_selection *sel, const lp_tokenselect_config *cfg, int32_t B, int32_t T,
                                const int32_t *lens, const int32_t *labels, lp_rng *rng)
{
    if (!sel || !sel->offsets || !lens || !rng)
        return lp_error(LP_ERR_INVALID_ARG, "token selection: NULL argument or uninitialised selection");
    LP_TRY(lp_tokenselect_validate(cfg));
    if (B < 1 || B > sel->B || T < 1 || T > sel->T)
        return lp_error(LP_ERR_INVALID_ARG, "token selection: batch %d x %d exceeds the capacity %d x %d",
                        (int)B, (int)T, (int)sel->B, (int)sel->T);
    for (int32_t b = 0; b < B; b++)
        if (lens[b] < 0 || lens[b] > T)
            return lp_error(LP_ERR_INVALID_ARG, "token selection: sequence %d has length %d outside [0, %d]",
                            (int)b, (int)lens[b], (int)T);
    lp_tokenselect_fn fn = cfg->strategy == LP_TOKENSELECT_ANSWER ? lp_tokenselect_answer
                         : cfg->strategy == LP_TOKENSELECT_CUSTOM ? cfg->custom : lp_tokenselect_random;
    void *user = cfg->strategy == LP_TOKENSELECT_CUSTOM ? cfg->custom_user : NULL;
    /* The ANSWER strategy's per-position flags live in the mask row until the
     * row is rewritten below (the mask is (B,T), one row per sequence). */
    int want_trained = labels && cfg->strategy != LP_TOKENSELECT_RANDOM;
    memset(sel->mask, 0, (size_t)B * (size_t)T);
    sel->n_capped = 0;
    sel->total_real = 0;
    int32_t off = 0;
    for (int32_t b = 0; b < B; b++) {
        int32_t len = lens[b];
        uint8_t *row = sel->mask + (size_t)b * (size_t)T;
        int32_t k = lp_tokenselect_count(cfg, len);
        if (cfg->mode == LP_TOKENSELECT_COUNT && len > 0 && cfg->k > len) sel->n_capped++;
        const uint8_t *trained = NULL;
        if (want_trained && len > 0) {
            const int32_t *lab = labels + (size_t)b * (size_t)T;
            int sh = cfg->label_shift ? 1 : 0;
            for (int32_t t = 0; t < len; t++) row[t] = (t + sh < len) && lab[t + sh] != -100;
            trained = row;
        }
        int32_t *out = sel->positions + off;
        lp_status st = fn(out, k, len, trained, cfg, rng, user);
        if (st != LP_OK) return lp_error_context(st, "sequence %d", (int)b);
        memset(row, 0, (size_t)T);
        for (int32_t i = 0; i < k; i++) {
            if (out[i] < 0 || out[i] >= len || (i > 0 && out[i] <= out[i - 1]))
                return lp_error(LP_ERR_INTERNAL, "token selection strategy returned position %d (index %d) for "
                                "sequence %d of length %d: not ascending, distinct and in range",
                                (int)out[i], (int)i, (int)b, (int)len);
            row[out[i]] = 1;
        }
        sel->offsets[b] = off;
        off += k;
        sel->total_real += len;
    }
    sel->offsets[B] = off;
    sel->n_seq = B;
    sel->T_used = T;
    sel->total_selected = off;
    return LP_OK;
}
