/* LoRA adapters: configuration and PEFT's target matching, forward/backward
 * with hash-regenerated dropout masks, merge/unmerge, and the linear hooks
 * for LoRA and QLoRA. See leanprop/lora.h. */
#include "leanprop/lora.h"

#include <cblas.h>
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "leanprop/alloc.h"
#include "leanprop/rng.h"

/* ------------------------------------------------------------ config */

void lp_lora_config_default(lp_lora_config *cfg)
{
    if (!cfg) return;
    memset(cfg, 0, sizeof *cfg);
    cfg->r = 8;
    cfg->alpha = 8.0f;
    cfg->dropout = 0.0f;
    cfg->init_lora_weights = LP_LORA_INIT_DEFAULT;
}

/* Parse "a, b,c" into names[]; *n receives the count. */
static lp_status parse_list(const char *what, const char *list, char names[][LP_LORA_NAME_MAX], int *n)
{
    int count = 0;
    const char *p = list;
    for (;;) {
        while (isspace((unsigned char)*p)) p++;
        const char *end = p;
        while (*end && *end != ',') end++;
        const char *e = end;
        while (e > p && isspace((unsigned char)e[-1])) e--;
        size_t len = (size_t)(e - p);
        if (len == 0) return lp_error(LP_ERR_INVALID_ARG, "LoRA %s \"%s\": empty name", what, list);
        if (len >= LP_LORA_NAME_MAX)
            return lp_error(LP_ERR_INVALID_ARG, "LoRA %s \"%.*s\": longer than %d characters", what, (int)len, p,
                            LP_LORA_NAME_MAX - 1);
        if (count == LP_LORA_MAX_TARGETS)
            return lp_error(LP_ERR_INVALID_ARG, "LoRA %s: more than %d names", what, LP_LORA_MAX_TARGETS);
        memcpy(names[count], p, len);
        names[count][len] = '\0';
        count++;
        if (!*end) break;
        p = end + 1;
    }
    *n = count;
    return LP_OK;
}

static lp_status check_regex(const char *what, const char *regex)
{
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)regex, PCRE2_ZERO_TERMINATED, 0, &err, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        return lp_error(LP_ERR_INVALID_ARG, "LoRA %s regular expression \"%s\": %s at offset %zu", what, regex,
                        (const char *)msg, (size_t)off);
    }
    pcre2_code_free(re);
    return LP_OK;
}

static lp_status set_regex(char *dst, const char *what, const char *regex)
{
    if (!regex || !*regex) return lp_error(LP_ERR_INVALID_ARG, "LoRA %s: empty regular expression", what);
    if (strlen(regex) >= LP_LORA_REGEX_MAX)
        return lp_error(LP_ERR_INVALID_ARG, "LoRA %s regular expression longer than %d characters", what,
                        LP_LORA_REGEX_MAX - 1);
    if (strcmp(regex, "all-linear") != 0) LP_TRY(check_regex(what, regex));
    strcpy(dst, regex);
    return LP_OK;
}

lp_status lp_lora_config_set_targets(lp_lora_config *cfg, const char *list)
{
    if (!cfg || !list) return lp_error(LP_ERR_INVALID_ARG, "lp_lora_config_set_targets: NULL argument");
    const char *p = list;
    while (isspace((unsigned char)*p)) p++;
    if (strncmp(p, "all-linear", 10) == 0 && !p[10 + strspn(p + 10, " \t")]) {
        cfg->n_targets = 0;
        strcpy(cfg->target_regex, "all-linear");
        return LP_OK;
    }
    int n;
    char tmp[LP_LORA_MAX_TARGETS][LP_LORA_NAME_MAX];
    memset(tmp, 0, sizeof tmp); /* configs compare equal with memcmp */
    LP_TRY(parse_list("target_modules", list, tmp, &n));
    memcpy(cfg->targets, tmp, sizeof tmp);
    cfg->n_targets = n;
    cfg->target_regex[0] = '\0';
    return LP_OK;
}

lp_status lp_lora_config_set_target_regex(lp_lora_config *cfg, const char *regex)
{
    if (!cfg) return lp_error(LP_ERR_INVALID_ARG, "lp_lora_config_set_target_regex: cfg is NULL");
    LP_TRY(set_regex(cfg->target_regex, "target_modules", regex));
    cfg->n_targets = 0;
    return LP_OK;
}

lp_status lp_lora_config_set_exclude(lp_lora_config *cfg, const char *list)
{
    if (!cfg || !list) return lp_error(LP_ERR_INVALID_ARG, "lp_lora_config_set_exclude: NULL argument");
    int n;
    char tmp[LP_LORA_MAX_TARGETS][LP_LORA_NAME_MAX];
    memset(tmp, 0, sizeof tmp); /* configs compare equal with memcmp */
    LP_TRY(parse_list("exclude_modules", list, tmp, &n));
    memcpy(cfg->exclude, tmp, sizeof tmp);
    cfg->n_exclude = n;
    cfg->exclude_regex[0] = '\0';
    return LP_OK;
}

lp_status lp_lora_config_set_exclude_regex(lp_lora_config *cfg, const char *regex)
{
    if (!cfg) return lp_error(LP_ERR_INVALID_ARG, "lp_lora_config_set_exclude_regex: cfg is NULL");
    if (regex && strcmp(regex, "all-linear") == 0)
        return lp_error(LP_ERR_INVALID_ARG, "LoRA exclude_modules: \"all-linear\" is only valid as a target");
    LP_TRY(set_regex(cfg->exclude_regex, "exclude_modules", regex));
    cfg->n_exclude = 0;
    return LP_OK;
}

lp_status lp_lora_config_validate(const lp_lora_config *cfg)
{
    if (!cfg) return lp_error(LP_ERR_INVALID_ARG, "lp_lora_config_validate: cfg is NULL");
    if (cfg->r <= 0) return lp_error(LP_ERR_INVALID_ARG, "LoRA r = %d must be positive", cfg->r);
    if (!(cfg->alpha > 0.0f) || !isfinite(cfg->alpha))
        return lp_error(LP_ERR_INVALID_ARG, "LoRA lora_alpha = %g must be positive", (double)cfg->alpha);
    if (!(cfg->dropout >= 0.0f && cfg->dropout < 1.0f))
        return lp_error(LP_ERR_INVALID_ARG, "LoRA lora_dropout = %g must be in [0, 1)", (double)cfg->dropout);
    if (cfg->init_lora_weights < LP_LORA_INIT_RANDOM || cfg->init_lora_weights > LP_LORA_INIT_GAUSSIAN)
        return lp_error(LP_ERR_INVALID_ARG, "LoRA init_lora_weights = %d unknown", cfg->init_lora_weights);
    if (cfg->n_targets < 0 || cfg->n_targets > LP_LORA_MAX_TARGETS || cfg->n_exclude < 0 ||
        cfg->n_exclude > LP_LORA_MAX_TARGETS)
        return lp_error(LP_ERR_INVALID_ARG, "LoRA config: target / exclude counts out of range");
    if (cfg->n_targets == 0 && !cfg->target_regex[0])
        return lp_error(LP_ERR_INVALID_ARG, "LoRA config: no target_modules");
    if (cfg->target_regex[0] && strcmp(cfg->target_regex, "all-linear") != 0)
        LP_TRY(check_regex("target_modules", cfg->target_regex));
    if (cfg->exclude_regex[0]) LP_TRY(check_regex("exclude_modules", cfg->exclude_regex));
    return LP_OK;
}

float lp_lora_config_scaling(const lp_lora_config *cfg)
{
    if (!cfg || cfg->r <= 0) return 0.0f;
    return cfg->use_rslora ? cfg->alpha / sqrtf((float)cfg->r) : cfg->alpha / (float)cfg->r;
}

/* Python's re.fullmatch(regex, s); invalid regex -> no match. */
static int regex_fullmatch(const char *regex, const char *s)
{
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)regex, PCRE2_ZERO_TERMINATED, 0, &err, &off, NULL);
    if (!re) return 0;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    int rc = md ? pcre2_match(re, (PCRE2_SPTR)s, PCRE2_ZERO_TERMINATED, 0, PCRE2_ANCHORED | PCRE2_ENDANCHORED, md,
                              NULL)
                : -1;
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return rc >= 0;
}

/* module == name or module ends with "." + name */
static int name_matches(const char *module, const char *name)
{
    size_t lm = strlen(module), ln = strlen(name);
    if (lm == ln) return strcmp(module, name) == 0;
    return lm > ln && module[lm - ln - 1] == '.' && strcmp(module + lm - ln, name) == 0;
}

static int is_output_layer(const char *module) { return name_matches(module, "lm_head"); }

int lp_lora_config_matches(const lp_lora_config *cfg, const char *module)
{
    if (!cfg || !module) return 0;
    int hit = 0;
    if (cfg->target_regex[0]) {
        hit = strcmp(cfg->target_regex, "all-linear") == 0 ? !is_output_layer(module)
                                                             : regex_fullmatch(cfg->target_regex, module);
    } else {
        for (int i = 0; i < cfg->n_targets && i < LP_LORA_MAX_TARGETS && !hit; i++)
            hit = name_matches(module, cfg->targets[i]);
    }
    if (!hit) return 0;
    if (cfg->exclude_regex[0]) return !regex_fullmatch(cfg->exclude_regex, module);
    for (int i = 0; i < cfg->n_exclude && i < LP_LORA_MAX_TARGETS; i++)
        if (name_matches(module, cfg->exclude[i])) return 0;
    return 1;
}

lp_status lp_lora_config_resolve(lp_lora_config *cfg, const char *const *modules, int n, uint8_t *selected,
                                 int *n_selected)
{
    static const char fn[] = "lp_lora_config_resolve";
    if (!cfg || (!modules && n > 0) || n < 0) return lp_error(LP_ERR_INVALID_ARG, "%s: bad arguments", fn);
    LP_TRY(lp_lora_config_validate(cfg));
    const char *example = n > 0 ? modules[n / 2] : "(no modules)";
    int total = 0;
    for (int i = 0; i < n; i++) {
        if (!modules[i]) return lp_error(LP_ERR_INVALID_ARG, "%s: module %d is NULL", fn, i);
        int m = lp_lora_config_matches(cfg, modules[i]);
        if (selected) selected[i] = (uint8_t)m;
        total += m;
    }
    for (int t = 0; t < cfg->n_targets; t++) {
        int found = 0;
        for (int i = 0; i < n && !found; i++) found = name_matches(modules[i], cfg->targets[t]);
        if (!found)
            return lp_error(LP_ERR_NOT_FOUND,
                            "LoRA target \"%s\" matches no module of the model (module names look like \"%s\")",
                            cfg->targets[t], example);
    }
    if (total == 0)
        return lp_error(LP_ERR_NOT_FOUND, "LoRA targets match no module of the model (module names look like \"%s\")",
                        example);
    if (strcmp(cfg->target_regex, "all-linear") == 0) {
        int k = 0;
        for (int i = 0; i < n; i++) {
            if (!lp_lora_config_matches(cfg, modules[i])) continue;
            const char *dot = strrchr(modules[i], '.');
            const char *last = dot ? dot + 1 : modules[i];
            int dup = 0;
            for (int j = 0; j < k && !dup; j++) dup = strcmp(cfg->targets[j], last) == 0;
            if (dup) continue;
            if (k == LP_LORA_MAX_TARGETS || strlen(last) >= LP_LORA_NAME_MAX)
                return lp_error(LP_ERR_UNSUPPORTED, "%s: all-linear expands to too many / too long names", fn);
            strcpy(cfg->targets[k++], last);
        }
        cfg->n_targets = k;
        cfg->target_regex[0] = '\0';
    }
    if (n_selected) *n_selected = total;
    return LP_OK;
}

const char *lp_lora_targets_for(const char *model_type, int all_linear)
{
    if (!model_type) return NULL;
    static const char *const llama_like[] = {"llama", "mistral", "qwen2", "mixtral", "gemma", NULL};
    for (int i = 0; llama_like[i]; i++)
        if (strcmp(model_type, llama_like[i]) == 0)
            return all_linear ? "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj" : "q_proj,v_proj";
    if (strcmp(model_type, "gpt2") == 0) return all_linear ? "c_attn,c_proj,c_fc" : "c_attn";
    if (strcmp(model_type, "bert") == 0) return all_linear ? "query,key,value,dense" : "query,value";
    return NULL;
}

static inline uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t lp_lora_seed_for(uint64_t seed, const char *module)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ mix64(seed);
    for (const char *p = module ? module : ""; *p; p++) h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    return mix64(h);
}

/* ------------------------------------------------------------ adapter */

lp_status lp_lora_new(lp_lora **out, int64_t C, int64_t OC, const lp_lora_config *cfg, uint64_t seed,
                      int with_grads)
{
    static const char fn[] = "lp_lora_new";
    if (!out) return lp_error(LP_ERR_INVALID_ARG, "%s: out is NULL", fn);
    *out = NULL;
    if (!cfg) return lp_error(LP_ERR_INVALID_ARG, "%s: cfg is NULL", fn);
    if (C <= 0 || OC <= 0 || C > INT_MAX || OC > INT_MAX)
        return lp_error(LP_ERR_INVALID_ARG, "%s: in/out features (%lld, %lld) must be positive and fit in int", fn,
                        (long long)C, (long long)OC);
    if (cfg->r <= 0 || !(cfg->alpha > 0.0f) || !(cfg->dropout >= 0.0f && cfg->dropout < 1.0f))
        return lp_error(LP_ERR_INVALID_ARG, "%s: r = %d, alpha = %g, dropout = %g (need r > 0, alpha > 0, 0 <= p < 1)",
                        fn, cfg->r, (double)cfg->alpha, (double)cfg->dropout);
    lp_lora *L = calloc(1, sizeof *L);
    if (!L) return lp_error(LP_ERR_NOMEM, "%s: out of memory", fn);
    L->C = C;
    L->OC = OC;
    L->r = cfg->r;
    L->alpha = cfg->alpha;
    L->scaling = lp_lora_config_scaling(cfg);
    L->dropout = cfg->dropout;
    L->training = 1;
    L->seed = mix64(seed ^ 0x6c6f7261ULL);
    size_t na = (size_t)cfg->r * (size_t)C, nb = (size_t)OC * (size_t)cfg->r;
    L->A = lp_alloc_array(LP_MEM_WEIGHTS, na, sizeof(float));
    L->B = lp_alloc_array(LP_MEM_WEIGHTS, nb, sizeof(float));
    if (L->A && L->B && with_grads) {
        L->dA = lp_alloc_array(LP_MEM_GRADIENTS, na, sizeof(float));
        L->dB = lp_alloc_array(LP_MEM_GRADIENTS, nb, sizeof(float));
    }
    if (!L->A || !L->B || (with_grads && (!L->dA || !L->dB))) {
        lp_lora_free(L);
        return lp_error_context(LP_ERR_NOMEM, "%s: LoRA (r %d, %lld -> %lld)", fn, cfg->r, (long long)C,
                                (long long)OC);
    }
    lp_rng rng;
    lp_rng_seed(&rng, seed);
    float ba = 1.0f / sqrtf((float)C);
    if (cfg->init_lora_weights == LP_LORA_INIT_GAUSSIAN) lp_rng_fill_normal(&rng, L->A, na, 0.0f, 1.0f / (float)cfg->r);
    else lp_rng_fill_uniform(&rng, L->A, na, -ba, ba);
    if (cfg->init_lora_weights == LP_LORA_INIT_RANDOM) {
        float bb = 1.0f / sqrtf((float)cfg->r);
        lp_rng_fill_uniform(&rng, L->B, nb, -bb, bb);
    }
    *out = L;
    return LP_OK;
}

void lp_lora_free(lp_lora *L)
{
    if (!L) return;
    lp_free(L->A);
    lp_free(L->B);
    lp_free(L->dA);
    lp_free(L->dB);
    free(L);
}

void lp_lora_zero_grad(lp_lora *L)
{
    if (!L) return;
    if (L->dA) memset(L->dA, 0, (size_t)L->r * (size_t)L->C * sizeof(float));
    if (L->dB) memset(L->dB, 0, (size_t)L->OC * (size_t)L->r * sizeof(float));
}

void lp_lora_set_training(lp_lora *L, int training)
{
    if (L) L->training = training ? 1 : 0;
}

void lp_lora_next_step(lp_lora *L)
{
    if (L) {
        L->step++;
        L->advance = 0;
    }
}

size_t lp_lora_weight_bytes(const lp_lora *L)
{
    return L ? lp_alloc_size(L->A) + lp_alloc_size(L->B) : 0;
}

size_t lp_lora_grad_bytes(const lp_lora *L)
{
    return L && L->dA ? lp_alloc_size(L->dA) + lp_alloc_size(L->dB) : 0;
}

static int dropout_on(const lp_lora *L) { return L->training && L->dropout > 0.0f; }

static uint64_t step_key(const lp_lora *L, uint64_t step) { return mix64(L->seed ^ mix64(step + 1)); }

/* x (C) -> keep (C) 0/1 for the generation `key`: a hash of the row id (id >= 0) or else of the
 * row's bits, and the column */
static void row_mask(uint8_t *keep, const float *x, int64_t C, int64_t id, uint64_t key, float p)
{
    uint64_t h = key;
    if (id >= 0) {
        h = mix64(h ^ mix64((uint64_t)id ^ 0x726f7769ULL));
    } else {
        for (int64_t c = 0; c < C; c++) {
            uint32_t bits;
            memcpy(&bits, &x[c], sizeof bits);
            h = (h ^ bits) * 0x100000001b3ULL;
        }
        h = mix64(h);
    }
    uint64_t thresh = (uint64_t)ldexp((double)p, 32);
    for (int64_t c = 0; c < C; c++)
        keep[c] = (mix64(h + (uint64_t)c * 0xd1342543de82ef95ULL) >> 32) >= thresh;
}

/* x (nr,C), ids (nr) or NULL -> h (nr,C) = x * keep / (1-p), keep (nr,C) */
static void apply_dropout(float *h, uint8_t *keep, const float *x, const int64_t *ids, int64_t nr, int64_t C,
                          uint64_t key, float p)
{
    float inv = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static) if (nr * C >= 65536)
    for (int64_t n = 0; n < nr; n++) {
        row_mask(keep + n * C, x + n * C, C, ids ? ids[n] : -1, key, p);
        for (int64_t c = 0; c < C; c++) h[n * C + c] = keep[n * C + c] ? x[n * C + c] * inv : 0.0f;
    }
}

static int64_t chunk_rows(const lp_lora *L, int64_t N)
{
    int64_t ch = (int64_t)(LP_LORA_CHUNK_BYTES / sizeof(float)) / L->C;
    if (ch < 1) ch = 1;
    return ch < N ? ch : N;
}

static lp_status check_call(const char *fn, const lp_lora *L, const void *a, const char *an, const void *b,
                            const char *bn, int64_t N)
{
    if (!L) return lp_error(LP_ERR_INVALID_ARG, "%s: L is NULL", fn);
    if (!a) return lp_error(LP_ERR_INVALID_ARG, "%s: %s is NULL", fn, an);
    if (!b) return lp_error(LP_ERR_INVALID_ARG, "%s: %s is NULL", fn, bn);
    if (N <= 0 || N > INT_MAX)
        return lp_error(LP_ERR_INVALID_ARG, "%s: N = %lld must be in [1, INT_MAX]", fn, (long long)N);
    return LP_OK;
}

static lp_status check_ids(const char *fn, const int64_t *ids, int64_t N)
{
    for (int64_t n = 0; ids && n < N; n++)
        if (ids[n] < 0) return lp_error(LP_ERR_INVALID_ARG, "%s: row id %lld of row %lld is negative", fn,
                                        (long long)ids[n], (long long)n);
    return LP_OK;
}

lp_status lp_lora_dropout_mask(const lp_lora *L, uint8_t *mask, const float *x, const int64_t *ids, int64_t N)
{
    LP_TRY(check_call("lp_lora_dropout_mask", L, mask, "mask", x, "x", N));
    if (!dropout_on(L)) {
        memset(mask, 1, (size_t)N * (size_t)L->C);
        return LP_OK;
    }
    uint64_t key = step_key(L, L->step + (L->advance ? 1 : 0));
    LP_TRY(check_ids("lp_lora_dropout_mask", ids, N));
    for (int64_t n = 0; n < N; n++)
        row_mask(mask + n * L->C, x + n * L->C, L->C, ids ? ids[n] : -1, key, L->dropout);
    return LP_OK;
}

/* x (N,C) -> out (N,OC) += s * (drop(x) A^T) B^T */
lp_status lp_lora_forward(lp_lora *L, float *out, const float *x, int64_t N)
{
    return lp_lora_forward_ids(L, out, x, NULL, N);
}

lp_status lp_lora_backward(lp_lora *L, float *dx, const float *dout, const float *x, int64_t N)
{
    return lp_lora_backward_ids(L, dx, dout, x, NULL, N);
}

/* x (N,C), ids (N) or NULL -> out (N,OC) += s * (drop(x) A^T) B^T */
lp_status lp_lora_forward_ids(lp_lora *L, float *out, const float *x, const int64_t *ids, int64_t N)
{
    static const char fn[] = "lp_lora_forward";
    LP_TRY(check_call(fn, L, out, "out", x, "x", N));
    LP_TRY(check_ids(fn, ids, N));
    if (L->merged) return LP_OK;
    int C = (int)L->C, OC = (int)L->OC, r = L->r;
    int drop = dropout_on(L);
    if (drop && L->advance) {
        L->step++;
        L->advance = 0;
    }
    int64_t ch = drop ? chunk_rows(L, N) : N;
    float *u = lp_alloc_array(LP_MEM_SCRATCH, (size_t)N * (size_t)r, sizeof(float));
    float *h = drop ? lp_alloc_array(LP_MEM_SCRATCH, (size_t)ch * (size_t)C, sizeof(float)) : NULL;
    uint8_t *keep = drop ? lp_alloc_array(LP_MEM_SCRATCH, (size_t)ch * (size_t)C, 1) : NULL;
    if (!u || (drop && (!h || !keep))) {
        lp_free(u);
        lp_free(h);
        lp_free(keep);
        return lp_error_context(LP_ERR_NOMEM, "%s", fn);
    }
    uint64_t key = step_key(L, L->step);
    for (int64_t n0 = 0; n0 < N; n0 += ch) {
        int nr = (int)(N - n0 < ch ? N - n0 : ch);
        const float *hc = x + n0 * C;
        if (drop) {
            apply_dropout(h, keep, hc, ids ? ids + n0 : NULL, nr, C, key, L->dropout);
            hc = h;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, r, C, 1.0f, hc, C, L->A, C, 0.0f, u + n0 * r, r);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, OC, r, L->scaling, u, r, L->B, r, 1.0f, out, OC);
    lp_free(u);
    lp_free(h);
    lp_free(keep);
    return LP_OK;
}

/* dout (N,OC), x (N,C) -> dB (OC,r) += s dout^T u, dA (r,C) += du^T drop(x), dx (N,C) += drop'(du A),
 * with u = drop(x) A^T and du = s dout B recomputed per row chunk */
lp_status lp_lora_backward_ids(lp_lora *L, float *dx, const float *dout, const float *x, const int64_t *ids, int64_t N)
{
    static const char fn[] = "lp_lora_backward";
    LP_TRY(check_call(fn, L, dout, "dout", x, "x", N));
    LP_TRY(check_ids(fn, ids, N));
    if (L->merged)
        return lp_error(LP_ERR_INVALID_ARG, "%s: the adapter is merged into its base weight; unmerge to train", fn);
    int C = (int)L->C, OC = (int)L->OC, r = L->r;
    int drop = dropout_on(L);
    int64_t ch = drop ? chunk_rows(L, N) : N;
    float *u = lp_alloc_array(LP_MEM_SCRATCH, (size_t)ch * (size_t)r, sizeof(float));
    float *du = lp_alloc_array(LP_MEM_SCRATCH, (size_t)ch * (size_t)r, sizeof(float));
    float *h = drop ? lp_alloc_array(LP_MEM_SCRATCH, (size_t)ch * (size_t)C, sizeof(float)) : NULL;
    uint8_t *keep = drop ? lp_alloc_array(LP_MEM_SCRATCH, (size_t)ch * (size_t)C, 1) : NULL;
    lp_status st = LP_OK;
    if (!u || !du || (drop && (!h || !keep))) {
        st = lp_error_context(LP_ERR_NOMEM, "%s", fn);
        goto done;
    }
    uint64_t key = step_key(L, L->step);
    float inv = drop ? 1.0f / (1.0f - L->dropout) : 1.0f;
    for (int64_t n0 = 0; n0 < N; n0 += ch) {
        int nr = (int)(N - n0 < ch ? N - n0 : ch);
        const float *hc = x + n0 * C, *dc = dout + n0 * OC;
        if (drop) {
            apply_dropout(h, keep, hc, ids ? ids + n0 : NULL, nr, C, key, L->dropout);
            hc = h;
        }
        if (L->dB) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, r, C, 1.0f, hc, C, L->A, C, 0.0f, u, r);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, r, nr, L->scaling, dc, OC, u, r, 1.0f, L->dB, r);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, r, OC, L->scaling, dc, OC, L->B, r, 0.0f, du, r);
        if (L->dA)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, C, nr, 1.0f, du, r, hc, C, 1.0f, L->dA, C);
        if (!dx) continue;
        float *dxc = dx + n0 * C;
        if (!drop) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, C, r, 1.0f, du, r, L->A, C, 1.0f, dxc, C);
        } else { /* dh into h (no longer needed), then masked accumulate */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, C, r, 1.0f, du, r, L->A, C, 0.0f, h, C);
            for (int64_t i = 0; i < (int64_t)nr * C; i++)
                if (keep[i]) dxc[i] += h[i] * inv;
        }
    }
    if (drop) L->advance = 1;
done:
    lp_free(u);
    lp_free(du);
    lp_free(h);
    lp_free(keep);
    return st;
}

/* ------------------------------------------------------------ merge */

/* W (OC,C) (fan_in_fan_out: (C,OC)) += sign * s * B A */
static lp_status merge_signed(lp_lora *L, float *W, int fan_in_fan_out, float sign)
{
    int C = (int)L->C, OC = (int)L->OC, r = L->r;
    float a = sign * L->scaling;
    if (!fan_in_fan_out)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OC, C, r, a, L->B, r, L->A, C, 1.0f, W, C);
    else
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, C, OC, r, a, L->A, C, L->B, r, 1.0f, W, OC);
    return LP_OK;
}

lp_status lp_lora_merge(lp_lora *L, float *W, int fan_in_fan_out)
{
    if (!L || !W) return lp_error(LP_ERR_INVALID_ARG, "lp_lora_merge: %s is NULL", L ? "W" : "L");
    if (L->merged) return lp_error(LP_ERR_INVALID_ARG, "lp_lora_merge: the adapter is already merged");
    merge_signed(L, W, fan_in_fan_out, 1.0f);
    L->merged = 1;
    return LP_OK;
}

lp_status lp_lora_unmerge(lp_lora *L, float *W, int fan_in_fan_out)
{
    if (!L || !W) return lp_error(LP_ERR_INVALID_ARG, "lp_lora_unmerge: %s is NULL", L ? "W" : "L");
    if (!L->merged) return lp_error(LP_ERR_INVALID_ARG, "lp_lora_unmerge: the adapter is not merged");
    merge_signed(L, W, fan_in_fan_out, -1.0f);
    L->merged = 0;
    return LP_OK;
}

lp_status lp_lora_merge_nf4(lp_lora *L, lp_nf4 **q)
{
    static const char fn[] = "lp_lora_merge_nf4";
    if (!L || !q || !*q) return lp_error(LP_ERR_INVALID_ARG, "%s: NULL argument", fn);
    if (L->merged) return lp_error(LP_ERR_INVALID_ARG, "%s: the adapter is already merged", fn);
    if ((*q)->OC != L->OC || (*q)->C != L->C)
        return lp_error(LP_ERR_INVALID_ARG, "%s: NF4 weight (%lld, %lld) but adapter (%lld, %lld)", fn,
                        (long long)(*q)->OC, (long long)(*q)->C, (long long)L->OC, (long long)L->C);
    float *W = lp_alloc_array(LP_MEM_SCRATCH, (size_t)L->OC * (size_t)L->C, sizeof(float));
    if (!W) return lp_error_context(LP_ERR_NOMEM, "%s", fn);
    lp_nf4 *nq = NULL;
    lp_status st = lp_nf4_dequantize(W, *q);
    if (st == LP_OK) {
        merge_signed(L, W, 0, 1.0f);
        st = lp_nf4_quantize(&nq, W, L->OC, L->C, (*q)->double_quant);
    }
    lp_free(W);
    if (st != LP_OK) return lp_error_context(st, "%s", fn);
    lp_nf4_free(*q);
    *q = nq;
    L->merged = 1;
    return LP_OK;
}

/* ------------------------------------------------------------ hooks */

static lp_status hook_dims(const char *fn, int64_t C, int64_t OC, int64_t in, int64_t out)
{
    if (C != in || OC != out)
        return lp_error(LP_ERR_INVALID_ARG, "%s: linear is %lld -> %lld but the adapter / weight is %lld -> %lld", fn,
                        (long long)in, (long long)out, (long long)C, (long long)OC);
    return LP_OK;
}

lp_status lp_lora_hook_base_forward(void *ctx, float *y, const float *x, int64_t N, int64_t in, int64_t out)
{
    const lp_lora_target *t = ctx;
    if (!t || !t->nf4) return lp_error(LP_ERR_INVALID_ARG, "lp_lora_hook_base_forward: no NF4 weight in ctx");
    return lp_nf4_linear_forward(y, x, t->nf4, NULL, N, in, out);
}

lp_status lp_lora_hook_base_backward(void *ctx, float *dx, const float *dy, int64_t N, int64_t in, int64_t out)
{
    const lp_lora_target *t = ctx;
    if (!t || !t->nf4) return lp_error(LP_ERR_INVALID_ARG, "lp_lora_hook_base_backward: no NF4 weight in ctx");
    return lp_nf4_linear_backward(dx, dy, t->nf4, N, in, out);
}

lp_status lp_lora_hook_forward(void *ctx, float *y, const float *x, int64_t N, int64_t in, int64_t out)
{
    const lp_lora_target *t = ctx;
    if (!t) return lp_error(LP_ERR_INVALID_ARG, "lp_lora_hook_forward: ctx is NULL");
    if (!t->lora) return LP_OK;
    LP_TRY(hook_dims("lp_lora_hook_forward", t->lora->C, t->lora->OC, in, out));
    return lp_lora_forward(t->lora, y, x, N);
}

lp_status lp_lora_hook_backward(void *ctx, float *dx, const float *dy, const float *x, int64_t N, int64_t in,
                                int64_t out)
{
    const lp_lora_target *t = ctx;
    if (!t) return lp_error(LP_ERR_INVALID_ARG, "lp_lora_hook_backward: ctx is NULL");
    if (!t->lora) return LP_OK;
    LP_TRY(hook_dims("lp_lora_hook_backward", t->lora->C, t->lora->OC, in, out));
    return lp_lora_backward(t->lora, dx, dy, x, N);
}
