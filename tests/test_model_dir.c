/* Model directories (single file, sharded, adapter) and the JSON config
 * helpers they rest on. */
#include "util/test_util.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "leanprop/alloc.h"
#include "leanprop/fileio.h"
#include "leanprop/json.h"
#include "leanprop/model_dir.h"
#include "leanprop/safetensors.h"

/* ---- helpers ------------------------------------------------------------ */

static char g_root[256];

/* A fresh empty directory under the test's temp root. */
static const char *fresh_dir(const char *name)
{
    static char buf[4][512];
    static int k;
    if (!g_root[0]) {
        snprintf(g_root, sizeof g_root, "/tmp/leanprop-md-XXXXXX");
        assert_non_null(mkdtemp(g_root));
    }
    char *b = buf[k++ % 4];
    snprintf(b, 512, "%s/%s", g_root, name);
    LP_ASSERT_OK(lp_dir_create(b));
    return b;
}

static const char *in(const char *dir, const char *file)
{
    static char buf[4][700];
    static int k;
    char *b = buf[k++ % 4];
    LP_ASSERT_OK(lp_path_join(b, 700, dir, file));
    return b;
}

static void write_text(const char *dir, const char *file, const char *text)
{
    LP_ASSERT_OK(lp_file_write_atomic(in(dir, file), text, strlen(text)));
}

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlink(in(dir, e->d_name));
    closedir(d);
    rmdir(dir);
}

static int count_files(const char *dir, const char *needle)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += strstr(e->d_name, needle) != NULL;
    closedir(d);
    return n;
}

static const char *gpt2_dir(void)
{
    const char *p = lp_test_shared("fixtures/gpt2-tiny/model.safetensors");
    if (!p) return NULL;
    static char dir[4096];
    LP_ASSERT_OK(lp_path_dirname(dir, sizeof dir, p));
    return dir;
}

/* Every tensor of `ref` is in `m`, bit for bit, and nothing else is. */
static void assert_same_tensors(const lp_model_dir *m, const lp_safetensors *ref)
{
    assert_int_equal(lp_model_dir_tensor_count(m), lp_safetensors_count(ref));
    for (int i = 0; i < lp_safetensors_count(ref); i++) {
        const lp_tensor_info *t = lp_safetensors_at(ref, i);
        const lp_safetensors *sh = NULL;
        const lp_tensor_info *u = lp_model_dir_find(m, t->name, &sh);
        if (!u) fail_msg("tensor %s missing", t->name);
        assert_non_null(sh);
        assert_ptr_equal(lp_safetensors_find(sh, t->name), u);
        assert_int_equal(u->dtype, t->dtype);
        assert_int_equal(u->ndim, t->ndim);
        assert_memory_equal(u->shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
        assert_int_equal(u->nbytes, t->nbytes);
        assert_memory_equal(u->data, t->data, t->nbytes);
    }
    const lp_tensor_info *prev = NULL;
    for (int i = 0; i < lp_model_dir_tensor_count(m); i++) { /* sorted by name */
        const lp_tensor_info *t = lp_model_dir_tensor_at(m, i, NULL);
        if (prev) assert_true(strcmp(prev->name, t->name) < 0);
        prev = t;
    }
}

/* ---- JSON config helpers ------------------------------------------------- */

static void test_json_gpt2_config(void **state)
{
    (void)state;
    const char *p = lp_test_shared("fixtures/gpt2-tiny/config.json");
    if (!p) LP_SKIP("fixtures/gpt2-tiny/config.json not found (set LEANPROP_SHARED)");
    cJSON *c;
    LP_ASSERT_OK(lp_json_load_file(p, &c));
    assert_string_equal(lp_json_source(c), p);
    int n_embd, n_layer, n_inner, tie;
    double eps;
    float init;
    const char *act, *missing;
    LP_ASSERT_OK(lp_json_require_int(c, "n_embd", &n_embd));
    LP_ASSERT_OK(lp_json_get_int(c, "n_layer", 12, &n_layer));
    LP_ASSERT_OK(lp_json_get_int(c, "n_inner", -1, &n_inner)); /* null -> default */
    LP_ASSERT_OK(lp_json_get_double(c, "layer_norm_epsilon", 0, &eps));
    LP_ASSERT_OK(lp_json_get_float(c, "initializer_range", 0, &init));
    LP_ASSERT_OK(lp_json_require_bool(c, "tie_word_embeddings", &tie));
    LP_ASSERT_OK(lp_json_require_string(c, "activation_function", &act));
    LP_ASSERT_OK(lp_json_get_string(c, "no_such_key", "dflt", &missing));
    assert_int_equal(n_embd, 64);
    assert_int_equal(n_layer, 2);
    assert_int_equal(n_inner, -1);
    assert_true(eps == 1e-5);
    assert_true(init == 0.02f);
    assert_int_equal(tie, 1);
    assert_string_equal(act, "gelu_new");
    assert_string_equal(missing, "dflt");
    const cJSON *arch;
    LP_ASSERT_OK(lp_json_require_array(c, "architectures", &arch));
    assert_string_equal(cJSON_GetArrayItem(arch, 0)->valuestring, "GPT2LMHeadModel");
    int64_t eos[4];
    size_t n_eos;
    LP_ASSERT_OK(lp_json_get_int_list(c, "eos_token_id", eos, 4, &n_eos));
    assert_int_equal(n_eos, 1);
    assert_int_equal(eos[0], 50256);

    /* type errors name the file and the key */
    assert_int_equal(lp_json_require_int(c, "activation_function", &n_embd), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), p));
    assert_non_null(strstr(lp_error_message(), "'activation_function'"));
    assert_non_null(strstr(lp_error_message(), "expected an integer, got a string"));
    assert_int_equal(lp_json_get_int(c, "initializer_range", 0, &n_embd), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), "'initializer_range'"));
    assert_int_equal(lp_json_get_bool(c, "n_embd", 0, &tie), LP_ERR_FORMAT);
    assert_int_equal(lp_json_require_int(c, "n_kv_heads", &n_embd), LP_ERR_NOT_FOUND);
    assert_non_null(strstr(lp_error_message(), p));
    assert_non_null(strstr(lp_error_message(), "'n_kv_heads'"));
    assert_int_equal(lp_json_require_int(c, "pad_token_id", &n_embd), LP_ERR_FORMAT); /* null */
    assert_non_null(strstr(lp_error_message(), "null"));
    assert_int_equal(lp_json_get_object(c, "architectures", &arch), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), "got a list"));
    lp_json_free(c);
}

static void test_json_nested_and_ranges(void **state)
{
    (void)state;
    static const char text[] = "{\n"
                               "  \"rope_scaling\": {\"type\": \"linear\", \"factor\": \"2\"},\n"
                               "  \"layers\": [{\"dim\": 4}, {\"dim\": 1.5}],\n"
                               "  \"big\": 3000000000, \"i64\": 9007199254740992, \"neg\": -5,\n"
                               "  \"huge\": 1e300, \"ids\": [1, 2, 3], \"bad_ids\": [1, \"x\"]\n"
                               "}";
    cJSON *c;
    LP_ASSERT_OK(lp_json_parse(text, strlen(text), "model/config.json", &c));
    const cJSON *rs, *layers, *missing;
    LP_ASSERT_OK(lp_json_get_object(c, "rope_scaling", &rs));
    assert_non_null(rs);
    LP_ASSERT_OK(lp_json_get_object(c, "absent", &missing));
    assert_null(missing);
    assert_string_equal(lp_json_source(rs), "model/config.json");
    assert_string_equal(lp_json_keypath(rs), "rope_scaling");
    double f;
    assert_int_equal(lp_json_get_double(rs, "factor", 1.0, &f), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), "model/config.json: key 'rope_scaling.factor'"));
    LP_ASSERT_OK(lp_json_require_array(c, "layers", &layers));
    const cJSON *l1 = cJSON_GetArrayItem(layers, 1);
    assert_string_equal(lp_json_keypath(l1), "layers[1]");
    int dim;
    LP_ASSERT_OK(lp_json_require_int(cJSON_GetArrayItem(layers, 0), "dim", &dim));
    assert_int_equal(dim, 4);
    assert_int_equal(lp_json_require_int(l1, "dim", &dim), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), "model/config.json: key 'layers[1].dim'"));
    assert_non_null(strstr(lp_error_message(), "fraction"));
    /* getters on an absent sub-object give defaults */
    LP_ASSERT_OK(lp_json_get_int(missing, "dim", 7, &dim));
    assert_int_equal(dim, 7);
    /* not an object */
    assert_int_equal(lp_json_get_int(layers, "dim", 7, &dim), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), "'layers'"));
    /* ranges */
    assert_int_equal(lp_json_get_int(c, "big", 0, &dim), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), "out of range"));
    int64_t v;
    LP_ASSERT_OK(lp_json_get_i64(c, "big", 0, &v));
    assert_int_equal(v, 3000000000LL);
    LP_ASSERT_OK(lp_json_require_i64(c, "i64", &v));
    assert_int_equal(v, 9007199254740992LL);
    LP_ASSERT_OK(lp_json_get_int(c, "neg", 0, &dim));
    assert_int_equal(dim, -5);
    float fl;
    assert_int_equal(lp_json_get_float(c, "huge", 0, &fl), LP_ERR_FORMAT);
    LP_ASSERT_OK(lp_json_get_double(c, "huge", 0, &f));
    int64_t ids[3];
    size_t n;
    LP_ASSERT_OK(lp_json_get_int_list(c, "ids", ids, 3, &n));
    assert_int_equal(n, 3);
    assert_int_equal(ids[2], 3);
    assert_int_equal(lp_json_get_int_list(c, "ids", ids, 2, &n), LP_ERR_FORMAT);
    assert_int_equal(lp_json_get_int_list(c, "bad_ids", ids, 3, &n), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), "'bad_ids'"));
    LP_ASSERT_OK(lp_json_get_int_list(c, "absent", ids, 3, &n));
    assert_int_equal(n, 0);
    /* labels survive duplication (strdup of one C string) */
    cJSON *dup = cJSON_Duplicate(c, 1);
    assert_string_equal(lp_json_source(cJSON_GetObjectItem(dup, "rope_scaling")), "model/config.json");
    cJSON_Delete(dup);
    /* unlabelled trees: messages without a file */
    cJSON *raw = cJSON_Parse("{\"a\": \"s\"}");
    assert_int_equal(lp_json_get_int(raw, "a", 0, &dim), LP_ERR_FORMAT);
    assert_string_equal(lp_error_message(), "key 'a': expected an integer, got a string");
    assert_string_equal(lp_json_source(raw), "");
    cJSON_Delete(raw);
    lp_json_free(c);
}

static void test_json_syntax_errors(void **state)
{
    (void)state;
    cJSON *c = (cJSON *)0x1;
    const char *bad = "{\n  \"a\": 1,\n  \"b\": ]\n}";
    assert_int_equal(lp_json_parse(bad, strlen(bad), "cfg.json", &c), LP_ERR_FORMAT);
    assert_null(c);
    assert_non_null(strstr(lp_error_message(), "cfg.json"));
    assert_non_null(strstr(lp_error_message(), "line 3"));
    assert_int_equal(lp_json_parse("", 0, "empty.json", &c), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), "empty.json"));
    assert_int_equal(lp_json_parse("{} x", 4, "trail.json", &c), LP_ERR_FORMAT);
    assert_int_equal(lp_json_parse("{}\0{}", 5, "nul.json", &c), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), "NUL"));
    const char *p = lp_test_write_temp(".json", "{\"a\": [1, 2,]}", 14);
    assert_int_equal(lp_json_load_file(p, &c), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), p));
    unlink(p);
    assert_int_equal(lp_json_load_file("/nonexistent/config.json", &c), LP_ERR_NOT_FOUND);
    assert_non_null(strstr(lp_error_message(), "/nonexistent/config.json"));
    /* non-object roots are valid JSON */
    LP_ASSERT_OK(lp_json_parse("[1]", 3, "arr.json", &c));
    int x;
    assert_int_equal(lp_json_get_int(c, "a", 0, &x), LP_ERR_FORMAT);
    lp_json_free(c);
}

static void test_json_write_file(void **state)
{
    (void)state;
    const char *dir = fresh_dir("jsonw");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "n_embd", 64);
    cJSON_AddNumberToObject(c, "eps", 1e-5);
    cJSON_AddStringToObject(c, "act", "gelu\ttab");
    cJSON *o = cJSON_AddObjectToObject(c, "nested");
    cJSON_AddTrueToObject(o, "flag");
    const char *p = in(dir, "out.json");
    LP_ASSERT_OK(lp_json_write_file(p, c));
    char *text;
    size_t len;
    LP_ASSERT_OK(lp_file_read_all(p, 1 << 20, LP_MEM_SCRATCH, &text, &len));
    assert_null(strchr(text, '\t'));
    assert_non_null(strstr(text, "\n  \"n_embd\": 64,"));
    assert_non_null(strstr(text, "\n    \"flag\": true"));
    assert_int_equal(text[len - 1], '\n');
    lp_free(text);
    cJSON *back;
    LP_ASSERT_OK(lp_json_load_file(p, &back));
    assert_true(cJSON_Compare(c, back, 1));
    const char *act;
    LP_ASSERT_OK(lp_json_require_string(back, "act", &act));
    assert_string_equal(act, "gelu\ttab");
    lp_json_free(back);
    cJSON_Delete(c);
    rm_tree(dir);
}

/* ---- model directories --------------------------------------------------- */

static void test_open_fixture_dirs(void **state)
{
    (void)state;
    const char *dir = gpt2_dir();
    if (!dir) LP_SKIP("fixtures/gpt2-tiny not found (set LEANPROP_SHARED)");
    lp_model_dir *m;
    LP_ASSERT_OK(lp_model_dir_open(&m, dir));
    assert_string_equal(lp_model_dir_path(m), dir);
    assert_false(lp_model_dir_is_sharded(m));
    assert_int_equal(lp_model_dir_shard_count(m), 1);
    assert_int_equal(lp_model_dir_tensor_count(m), 28);
    int n_embd;
    LP_ASSERT_OK(lp_json_require_int(lp_model_dir_config(m), "n_embd", &n_embd));
    assert_int_equal(n_embd, 64);
    float *w;
    const lp_tensor_info *info;
    LP_ASSERT_OK(lp_model_dir_load_f32(m, "transformer.wte.weight", LP_MEM_WEIGHTS, &w, &info));
    assert_int_equal(info->numel, 64000);
    uint32_t bits;
    memcpy(&bits, &w[0], 4);
    assert_int_equal(bits, 0x3c732c5bu);
    lp_free(w);
    float b[64];
    LP_ASSERT_OK(lp_model_dir_read_f32(m, "transformer.ln_f.bias", b, 64));
    /* missing tensor names the directory and the tensor */
    assert_int_equal(lp_model_dir_read_f32(m, "lm_head.weight", b, 64), LP_ERR_NOT_FOUND);
    assert_non_null(strstr(lp_error_message(), dir));
    assert_non_null(strstr(lp_error_message(), "'lm_head.weight'"));
    assert_null(lp_model_dir_find(m, "lm_head.weight", NULL));
    assert_int_equal(lp_model_dir_require(m, "nope", NULL), LP_ERR_NOT_FOUND);
    lp_model_dir_close(m);

    /* a PEFT adapter directory */
    const char *ad = lp_test_shared("fixtures/llama-tiny-lora/adapter_model.safetensors");
    if (ad) {
        char adir[4096];
        LP_ASSERT_OK(lp_path_dirname(adir, sizeof adir, ad));
        assert_int_equal(lp_model_dir_open(&m, adir), LP_ERR_NOT_FOUND); /* no config.json */
        assert_non_null(strstr(lp_error_message(), "config.json"));
        LP_ASSERT_OK(lp_model_dir_open_named(&m, adir, "adapter_config.json", "adapter_model"));
        int r;
        LP_ASSERT_OK(lp_json_require_int(lp_model_dir_config(m), "r", &r));
        assert_int_equal(r, 4);
        assert_int_equal(lp_model_dir_tensor_count(m), 20);
        lp_model_dir_close(m);
    }
}

/* Write gpt2-tiny's tensors as a sharded directory and read it back. */
static void test_sharded_write_and_read(void **state)
{
    (void)state;
    const char *src = lp_test_shared("fixtures/gpt2-tiny/model.safetensors");
    if (!src) LP_SKIP("fixtures/gpt2-tiny/model.safetensors not found (set LEANPROP_SHARED)");
    lp_safetensors *ref;
    LP_ASSERT_OK(lp_safetensors_open(&ref, src));
    lp_safetensors_writer *w = lp_safetensors_writer_new();
    for (int i = 0; i < lp_safetensors_count(ref); i++) {
        const lp_tensor_info *t = lp_safetensors_at(ref, i);
        LP_ASSERT_OK(lp_safetensors_writer_add(w, t->name, t->dtype, t->data, t->shape, t->ndim));
    }
    LP_ASSERT_OK(lp_safetensors_writer_set_metadata(w, "format", "pt"));
    cJSON *cfg = cJSON_CreateObject();
    cJSON_AddNumberToObject(cfg, "n_embd", 64);
    const char *dir = fresh_dir("sharded");

    /* expected shard count by the documented rule: name order, greedy */
    const size_t max = 200000;
    int n = lp_safetensors_count(ref), expect = 1;
    const char **names = calloc((size_t)n, sizeof *names);
    for (int i = 0; i < n; i++) names[i] = lp_safetensors_at(ref, i)->name;
    for (int i = 1; i < n; i++) /* insertion sort by strcmp */
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            const char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    size_t cur = 0, total = 0;
    for (int i = 0; i < n; i++) {
        size_t b = lp_safetensors_find(ref, names[i])->nbytes;
        if (cur > 0 && cur + b > max) {
            expect++;
            cur = 0;
        }
        cur += b;
        total += b;
    }
    free(names);
    assert_true(expect >= 3);

    LP_ASSERT_OK(lp_model_dir_write(dir, cfg, w, max));
    assert_false(lp_path_exists(in(dir, "model.safetensors")));
    assert_true(lp_file_exists(in(dir, "model.safetensors.index.json")));
    assert_int_equal(count_files(dir, "-of-"), expect);
    assert_int_equal(count_files(dir, ".tmp-"), 0);
    char first[64];
    snprintf(first, sizeof first, "model-00001-of-%05d.safetensors", expect);
    assert_true(lp_file_exists(in(dir, first)));

    lp_model_dir *m;
    LP_ASSERT_OK(lp_model_dir_open(&m, dir));
    assert_true(lp_model_dir_is_sharded(m));
    assert_int_equal(lp_model_dir_shard_count(m), expect);
    assert_same_tensors(m, ref);
    int n_embd;
    LP_ASSERT_OK(lp_json_require_int(lp_model_dir_config(m), "n_embd", &n_embd));
    assert_int_equal(n_embd, 64);
    for (int s = 0; s < expect; s++) {
        const lp_safetensors *sh = lp_model_dir_shard(m, s);
        assert_string_equal(lp_safetensors_metadata(sh, "format"), "pt");
        assert_true(lp_safetensors_data_size(sh) <= max || lp_safetensors_count(sh) == 1);
    }
    lp_model_dir_close(m);
    /* the index: total_size and a sorted weight_map */
    cJSON *idx;
    LP_ASSERT_OK(lp_json_load_file(in(dir, "model.safetensors.index.json"), &idx));
    const cJSON *meta, *wm;
    LP_ASSERT_OK(lp_json_require_object(idx, "metadata", &meta));
    int64_t ts;
    LP_ASSERT_OK(lp_json_require_i64(meta, "total_size", &ts));
    assert_int_equal(ts, (int64_t)total);
    LP_ASSERT_OK(lp_json_require_object(idx, "weight_map", &wm));
    assert_int_equal(cJSON_GetArraySize(wm), n);
    for (const cJSON *e = wm->child; e && e->next; e = e->next) assert_true(strcmp(e->string, e->next->string) < 0);
    lp_json_free(idx);

    /* rewrite in fewer shards: old shards removed; then as one file: index removed */
    LP_ASSERT_OK(lp_model_dir_write(dir, cfg, w, 400000));
    int fewer = count_files(dir, "-of-");
    assert_true(fewer >= 2 && fewer < expect);
    LP_ASSERT_OK(lp_model_dir_open(&m, dir));
    assert_int_equal(lp_model_dir_shard_count(m), fewer);
    assert_same_tensors(m, ref);
    lp_model_dir_close(m);
    LP_ASSERT_OK(lp_model_dir_write(dir, NULL, w, 0));
    assert_int_equal(count_files(dir, "-of-"), 0);
    assert_false(lp_path_exists(in(dir, "model.safetensors.index.json")));
    LP_ASSERT_OK(lp_model_dir_open(&m, dir));
    assert_false(lp_model_dir_is_sharded(m));
    assert_same_tensors(m, ref);
    lp_model_dir_close(m);
    /* the single file equals the original byte for byte */
    char *a, *b;
    size_t la, lb;
    LP_ASSERT_OK(lp_file_read_all(src, 1 << 24, LP_MEM_SCRATCH, &a, &la));
    LP_ASSERT_OK(lp_file_read_all(in(dir, "model.safetensors"), 1 << 24, LP_MEM_SCRATCH, &b, &lb));
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    lp_free(a);
    lp_free(b);

    cJSON_Delete(cfg);
    lp_safetensors_writer_free(w);
    lp_safetensors_close(ref);
    rm_tree(dir);
}

/* Split a fixture's tensors into two shard files by hand (odd/even index)
 * with a hand-written index, as another tool might lay them out. */
static const char *write_two_shards(const lp_safetensors *ref, const char *dir)
{
    for (int part = 0; part < 2; part++) {
        lp_safetensors_writer *w = lp_safetensors_writer_new();
        for (int i = part; i < lp_safetensors_count(ref); i += 2) {
            const lp_tensor_info *t = lp_safetensors_at(ref, i);
            LP_ASSERT_OK(lp_safetensors_writer_add(w, t->name, t->dtype, t->data, t->shape, t->ndim));
        }
        LP_ASSERT_OK(lp_safetensors_writer_save(w, in(dir, part ? "b.safetensors" : "a.safetensors")));
        lp_safetensors_writer_free(w);
    }
    cJSON *idx = cJSON_CreateObject();
    cJSON *wm = cJSON_AddObjectToObject(idx, "weight_map");
    for (int i = 0; i < lp_safetensors_count(ref); i++)
        cJSON_AddStringToObject(wm, lp_safetensors_at(ref, i)->name, i % 2 ? "b.safetensors" : "a.safetensors");
    const char *p = in(dir, "model.safetensors.index.json");
    LP_ASSERT_OK(lp_json_write_file(p, idx));
    cJSON_Delete(idx);
    write_text(dir, "config.json", "{\"model_type\": \"gpt2\"}");
    return p;
}

static void test_hand_split_fixture(void **state)
{
    (void)state;
    const char *src = lp_test_shared("fixtures/gpt2-tiny/model.safetensors");
    if (!src) LP_SKIP("fixtures/gpt2-tiny/model.safetensors not found (set LEANPROP_SHARED)");
    lp_safetensors *ref;
    LP_ASSERT_OK(lp_safetensors_open(&ref, src));
    const char *dir = fresh_dir("split");
    write_two_shards(ref, dir);
    lp_model_dir *m;
    LP_ASSERT_OK(lp_model_dir_open(&m, dir));
    assert_int_equal(lp_model_dir_shard_count(m), 2);
    assert_same_tensors(m, ref);
    const lp_safetensors *sh;
    assert_non_null(lp_model_dir_find(m, lp_safetensors_at(ref, 1)->name, &sh));
    assert_string_equal(lp_path_basename(lp_safetensors_path(sh)), "b.safetensors");
    float v[192];
    LP_ASSERT_OK(lp_model_dir_read_f32(m, "transformer.h.0.attn.c_attn.bias", v, 192));
    lp_model_dir_close(m);
    lp_safetensors_close(ref);
    rm_tree(dir);
}

/* One test per way an index can be wrong. */
static void expect_dir_fails(const char *dir, lp_status want, const char *n1, const char *n2)
{
    lp_model_dir *m = (lp_model_dir *)0x1;
    lp_status st = lp_model_dir_open(&m, dir);
    if (st != want) fail_msg("%s: expected %s, got %s: %s", dir, lp_status_name(want), lp_status_name(st),
                             lp_error_message());
    assert_null(m);
    if (n1 && !strstr(lp_error_message(), n1)) fail_msg("message lacks '%s': %s", n1, lp_error_message());
    if (n2 && !strstr(lp_error_message(), n2)) fail_msg("message lacks '%s': %s", n2, lp_error_message());
}

static void test_bad_index(void **state)
{
    (void)state;
    const char *src = lp_test_shared("fixtures/gpt2-tiny/model.safetensors");
    if (!src) LP_SKIP("fixtures/gpt2-tiny/model.safetensors not found (set LEANPROP_SHARED)");
    lp_safetensors *ref;
    LP_ASSERT_OK(lp_safetensors_open(&ref, src));
    const char *dir = fresh_dir("badindex");
    const char *index = write_two_shards(ref, dir); /* odd tensors (wte, ln_f.weight) in b */
    const char *t1 = lp_safetensors_at(ref, 1)->name;

    /* a shard the index names is missing: names the index, the shard, a tensor */
    unlink(in(dir, "b.safetensors"));
    expect_dir_fails(dir, LP_ERR_NOT_FOUND, index, "'b.safetensors'");
    assert_non_null(strstr(lp_error_message(), t1));
    rm_tree(dir);

    dir = fresh_dir("badindex2");
    index = write_two_shards(ref, dir);
    /* a listed tensor that its shard does not hold */
    write_text(dir, "model.safetensors.index.json",
               "{\"weight_map\": {\"transformer.wte.weight\": \"b.safetensors\", \"ghost.weight\": \"b.safetensors\"}}");
    expect_dir_fails(dir, LP_ERR_FORMAT, "'ghost.weight'", "'b.safetensors'");
    /* a tensor in two shards */
    lp_safetensors_writer *w = lp_safetensors_writer_new();
    float x = 1;
    int64_t s1[1] = {1};
    LP_ASSERT_OK(lp_safetensors_writer_add_f32(w, "transformer.wte.weight", &x, s1, 1));
    LP_ASSERT_OK(lp_safetensors_writer_save(w, in(dir, "c.safetensors")));
    lp_safetensors_writer_free(w);
    write_text(dir, "model.safetensors.index.json",
               "{\"weight_map\": {\"transformer.wte.weight\": \"b.safetensors\", \"x\": \"c.safetensors\"}}");
    expect_dir_fails(dir, LP_ERR_FORMAT, "'x'", "c.safetensors"); /* listed tensor x absent from c */
    write_text(dir, "model.safetensors.index.json",
               "{\"weight_map\": {\"transformer.wte.weight\": \"c.safetensors\", \"transformer.ln_f.weight\": "
               "\"b.safetensors\"}}");
    expect_dir_fails(dir, LP_ERR_FORMAT, "'transformer.wte.weight'", "two shards");
    /* structural errors */
    write_text(dir, "model.safetensors.index.json", "{\"weight_map\": [\"a.safetensors\"]}");
    expect_dir_fails(dir, LP_ERR_FORMAT, "model.safetensors.index.json", "'weight_map'");
    write_text(dir, "model.safetensors.index.json", "{\"metadata\": {}}");
    expect_dir_fails(dir, LP_ERR_NOT_FOUND, "model.safetensors.index.json", "'weight_map'");
    write_text(dir, "model.safetensors.index.json", "{\"weight_map\": {}}");
    expect_dir_fails(dir, LP_ERR_FORMAT, "model.safetensors.index.json", "empty");
    write_text(dir, "model.safetensors.index.json", "{\"weight_map\": {\"t\": 3}}");
    expect_dir_fails(dir, LP_ERR_FORMAT, "'t'", "not a file name");
    write_text(dir, "model.safetensors.index.json", "{\"weight_map\": {\"t\": \"../a.safetensors\"}}");
    expect_dir_fails(dir, LP_ERR_FORMAT, "'t'", "../a.safetensors");
    write_text(dir, "model.safetensors.index.json", "{\"weight_map\": {\"t\": \"/etc/passwd\"}}");
    expect_dir_fails(dir, LP_ERR_FORMAT, "'t'", "plain file name");
    write_text(dir, "model.safetensors.index.json", "{\"weight_map\": {\"t\": \"a.safetensors\",}");
    expect_dir_fails(dir, LP_ERR_FORMAT, "model.safetensors.index.json", "line 1");
    /* a corrupt shard: the error names the shard file and the index */
    write_text(dir, "a.safetensors", "garbage!!");
    write_text(dir, "model.safetensors.index.json", "{\"weight_map\": {\"t\": \"a.safetensors\"}}");
    expect_dir_fails(dir, LP_ERR_FORMAT, "a.safetensors", "index.json");
    /* no weights at all; no config */
    unlink(in(dir, "model.safetensors.index.json"));
    expect_dir_fails(dir, LP_ERR_NOT_FOUND, "no weights", "model.safetensors.index.json");
    unlink(in(dir, "config.json"));
    expect_dir_fails(dir, LP_ERR_NOT_FOUND, "config.json", NULL);
    expect_dir_fails("/nonexistent/model", LP_ERR_NOT_FOUND, "/nonexistent/model", NULL);
    lp_safetensors_close(ref);
    rm_tree(dir);
}

static void test_write_errors_and_big_tensor(void **state)
{
    (void)state;
    assert_int_equal(lp_model_dir_write("/nonexistent/a/b", NULL, NULL, 0), LP_ERR_INVALID_ARG);
    lp_safetensors_writer *w = lp_safetensors_writer_new();
    float big[100] = {0}, small[2] = {1, 2};
    int64_t s100[1] = {100}, s2[1] = {2};
    LP_ASSERT_OK(lp_safetensors_writer_add_f32(w, "a.small", small, s2, 1));
    LP_ASSERT_OK(lp_safetensors_writer_add_f32(w, "b.big", big, s100, 1));
    LP_ASSERT_OK(lp_safetensors_writer_add_f32(w, "c.small", small, s2, 1));
    assert_int_equal(lp_model_dir_write("/nonexistent/a/b", NULL, w, 0), LP_ERR_NOT_FOUND);
    /* a tensor bigger than the shard limit gets a shard of its own */
    const char *dir = fresh_dir("bigtensor");
    LP_ASSERT_OK(lp_model_dir_write_named(dir, NULL, NULL, "model", w, 64));
    assert_int_equal(count_files(dir, "-of-00003"), 3);
    lp_model_dir *m;
    LP_ASSERT_OK(lp_model_dir_open_named(&m, dir, NULL, "model"));
    assert_null(lp_model_dir_config(m));
    const lp_safetensors *sh;
    assert_non_null(lp_model_dir_find(m, "b.big", &sh));
    assert_int_equal(lp_safetensors_count(sh), 1);
    assert_string_equal(lp_path_basename(lp_safetensors_path(sh)), "model-00002-of-00003.safetensors");
    float got[2];
    LP_ASSERT_OK(lp_model_dir_read_f32(m, "c.small", got, 2));
    assert_true(got[1] == 2.0f);
    lp_model_dir_close(m);
    /* everything fits: one file, no index */
    LP_ASSERT_OK(lp_model_dir_write_named(dir, NULL, NULL, "model", w, 1 << 20));
    assert_true(lp_file_exists(in(dir, "model.safetensors")));
    assert_int_equal(count_files(dir, "-of-"), 0);
    assert_int_equal(count_files(dir, "index"), 0);
    lp_safetensors_writer_free(w);
    rm_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_gpt2_config),
        cmocka_unit_test(test_json_nested_and_ranges),
        cmocka_unit_test(test_json_syntax_errors),
        cmocka_unit_test(test_json_write_file),
        cmocka_unit_test(test_open_fixture_dirs),
        cmocka_unit_test(test_sharded_write_and_read),
        cmocka_unit_test(test_hand_split_fixture),
        cmocka_unit_test(test_bad_index),
        cmocka_unit_test(test_write_errors_and_big_tensor),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (g_root[0]) rmdir(g_root);
    return rc;
}
