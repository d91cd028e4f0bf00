/* PEFT adapter IO: the PEFT-saved llama-tiny-lora fixture, save/reload round
 * trip, config options and their errors, malformed adapter files. */
#include "util/test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "leanprop/alloc.h"
#include "leanprop/fileio.h"
#include "leanprop/lora.h"
#include "leanprop/peft.h"
#include "leanprop/safetensors.h"
#include "leanprop/status.h"

static const char *fixture_dir(void)
{
    const char *p = lp_test_shared("fixtures/llama-tiny-lora/adapter_config.json");
    if (!p) return NULL;
    static char dir[4096];
    snprintf(dir, sizeof dir, "%s", p);
    *strrchr(dir, '/') = '\0';
    return dir;
}

/* fresh empty directory under /tmp */
static const char *temp_dir(void)
{
    static char dirs[4][64];
    static int k;
    char *d = dirs[k++ % 4];
    strcpy(d, "/tmp/leanprop-peft-XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static void remove_dir(const char *dir)
{
    char p[4200];
    static const char *const files[] = {LP_PEFT_CONFIG_NAME, LP_PEFT_WEIGHTS_NAME, "adapter_model.bin"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    LP_ASSERT_OK(lp_file_write_atomic(p, text, strlen(text)));
}

static const char *const k_modules[] = {"self_attn.q_proj", "self_attn.v_proj", "mlp.gate_proj", "mlp.up_proj",
                                        "mlp.down_proj"};
static const int64_t k_in[] = {64, 64, 64, 64, 172}, k_out[] = {64, 32, 172, 172, 64};

static void test_load_fixture(void **state)
{
    (void)state;
    const char *dir = fixture_dir();
    if (!dir) LP_SKIP("fixtures/llama-tiny-lora not found (set LEANPROP_SHARED)");
    size_t w0 = lp_mem_current(LP_MEM_WEIGHTS), g0 = lp_mem_current(LP_MEM_GRADIENTS);
    lp_peft_adapter *a;
    LP_ASSERT_OK(lp_peft_load(&a, dir, 1));
    const lp_lora_config *c = &a->config;
    assert_int_equal(c->r, 4);
    assert_true(c->alpha == 8.0f && c->dropout == 0.0f);
    assert_true(lp_lora_config_scaling(c) == 2.0f);
    assert_int_equal(c->n_targets, 5);
    assert_int_equal(c->init_lora_weights, LP_LORA_INIT_RANDOM); /* the fixture says false */
    assert_false(c->use_rslora || c->fan_in_fan_out);
    assert_string_equal(c->base_model, "../llama-tiny");
    assert_string_equal(c->task_type, "");
    assert_int_equal(a->n, 10);

    lp_safetensors *f;
    char wpath[4200], name[512];
    snprintf(wpath, sizeof wpath, "%s/%s", dir, LP_PEFT_WEIGHTS_NAME);
    LP_ASSERT_OK(lp_safetensors_open(&f, wpath));
    size_t want_bytes = 0;
    for (int layer = 0; layer < 2; layer++)
        for (int m = 0; m < 5; m++) {
            char module[128];
            snprintf(module, sizeof module, "model.layers.%d.%s", layer, k_modules[m]);
            assert_true(lp_lora_config_matches(c, module));
            lp_lora *L = lp_peft_find(a, module);
            if (!L) fail_msg("module %s not loaded", module);
            assert_int_equal(L->r, 4);
            assert_int_equal(L->C, k_in[m]);
            assert_int_equal(L->OC, k_out[m]);
            assert_true(L->scaling == 2.0f && L->dA && L->dB);
            /* values as stored */
            float *ref;
            LP_ASSERT_OK(lp_peft_tensor_name(name, sizeof name, module, 'A', NULL));
            LP_ASSERT_OK(lp_safetensors_load_f32(f, name, LP_MEM_SCRATCH, &ref, NULL));
            assert_memory_equal(L->A, ref, (size_t)(4 * k_in[m]) * 4);
            lp_free(ref);
            LP_ASSERT_OK(lp_peft_tensor_name(name, sizeof name, module, 'B', NULL));
            LP_ASSERT_OK(lp_safetensors_load_f32(f, name, LP_MEM_SCRATCH, &ref, NULL));
            assert_memory_equal(L->B, ref, (size_t)(4 * k_out[m]) * 4);
            lp_free(ref);
            want_bytes += 4 * 4 * (size_t)(k_in[m] + k_out[m]);
        }
    lp_safetensors_close(f);
    assert_null(lp_peft_find(a, "model.layers.0.self_attn.k_proj"));
    assert_int_equal(lp_mem_current(LP_MEM_WEIGHTS) - w0, want_bytes);
    assert_int_equal(lp_mem_current(LP_MEM_GRADIENTS) - g0, want_bytes);
    /* the in-memory (gradient) names of the fixture's reference file */
    LP_ASSERT_OK(lp_peft_tensor_name(name, sizeof name, "model.layers.0.mlp.down_proj", 'A', "default"));
    assert_string_equal(name, "base_model.model.model.layers.0.mlp.down_proj.lora_A.default.weight");
    const char *refp = lp_test_shared("fixtures/llama-tiny-lora/reference.safetensors");
    if (refp) {
        LP_ASSERT_OK(lp_safetensors_open(&f, refp));
        char gname[600];
        snprintf(gname, sizeof gname, "grad.%s", name);
        const lp_tensor_info *t = lp_safetensors_find(f, gname);
        assert_non_null(t);
        assert_int_equal(t->shape[0], 4);
        assert_int_equal(t->shape[1], 172);
        lp_safetensors_close(f);
    }
    lp_peft_free(a);
    assert_int_equal(lp_mem_current(LP_MEM_WEIGHTS), w0);
    assert_int_equal(lp_mem_current(LP_MEM_GRADIENTS), g0);
}

static void test_save_reload_roundtrip(void **state)
{
    (void)state;
    const char *dir = fixture_dir();
    if (!dir) LP_SKIP("fixtures/llama-tiny-lora not found (set LEANPROP_SHARED)");
    lp_peft_adapter *a, *b;
    LP_ASSERT_OK(lp_peft_load(&a, dir, 0));
    const char *out = temp_dir();
    LP_ASSERT_OK(lp_peft_save(out, &a->config, (const char *const *)a->modules, a->loras, a->n));
    LP_ASSERT_OK(lp_peft_load(&b, out, 0));
    assert_int_equal(b->n, a->n);
    assert_memory_equal(&b->config, &a->config, sizeof a->config);
    for (int i = 0; i < a->n; i++) {
        assert_string_equal(b->modules[i], a->modules[i]);
        lp_lora *x = a->loras[i], *y = b->loras[i];
        assert_true(x->C == y->C && x->OC == y->OC && x->r == y->r && x->scaling == y->scaling);
        assert_memory_equal(x->A, y->A, (size_t)(x->r * x->C) * 4);
        assert_memory_equal(x->B, y->B, (size_t)(x->OC * x->r) * 4);
    }
    /* the saved weights file: same tensor names, shapes and bytes as PEFT's */
    char p1[4200], p2[4200];
    snprintf(p1, sizeof p1, "%s/%s", dir, LP_PEFT_WEIGHTS_NAME);
    snprintf(p2, sizeof p2, "%s/%s", out, LP_PEFT_WEIGHTS_NAME);
    lp_safetensors *f1, *f2;
    LP_ASSERT_OK(lp_safetensors_open(&f1, p1));
    LP_ASSERT_OK(lp_safetensors_open(&f2, p2));
    assert_int_equal(lp_safetensors_count(f1), lp_safetensors_count(f2));
    for (int i = 0; i < lp_safetensors_count(f1); i++) {
        const lp_tensor_info *t1 = lp_safetensors_at(f1, i), *t2 = lp_safetensors_find(f2, t1->name);
        if (!t2) fail_msg("%s missing from the saved file", t1->name);
        assert_int_equal(t1->nbytes, t2->nbytes);
        assert_memory_equal(t1->data, t2->data, t1->nbytes);
    }
    assert_string_equal(lp_safetensors_metadata(f2, "format"), "pt");
    lp_safetensors_close(f1);
    lp_safetensors_close(f2);
    /* the saved config: the fields PEFT writes, keys sorted */
    char *text;
    snprintf(p2, sizeof p2, "%s/%s", out, LP_PEFT_CONFIG_NAME);
    LP_ASSERT_OK(lp_file_read_all(p2, 1 << 20, LP_MEM_SCRATCH, &text, NULL));
    cJSON *root = cJSON_Parse(text);
    assert_non_null(root);
    assert_string_equal(cJSON_GetObjectItem(root, "peft_type")->valuestring, "LORA");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(root, "task_type")));
    assert_int_equal(cJSON_GetObjectItem(root, "r")->valueint, 4);
    assert_true(cJSON_GetObjectItem(root, "lora_alpha")->valuedouble == 8.0);
    assert_true(cJSON_GetObjectItem(root, "lora_dropout")->valuedouble == 0.0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(root, "target_modules")), 5);
    assert_string_equal(cJSON_GetObjectItem(root, "bias")->valuestring, "none");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(root, "fan_in_fan_out")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(root, "inference_mode")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(root, "modules_to_save")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(root, "use_rslora")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(root, "init_lora_weights")));
    assert_string_equal(cJSON_GetObjectItem(root, "base_model_name_or_path")->valuestring, "../llama-tiny");
    const cJSON *it, *prev = NULL;
    cJSON_ArrayForEach(it, root) {
        if (prev) assert_true(strcmp(prev->string, it->string) < 0);
        prev = it;
    }
    assert_non_null(strstr(text, "\n  \"lora_dropout\": 0.0,\n"));
    cJSON_Delete(root);
    lp_free(text);
    lp_peft_free(b);

    /* filling adapters the model created itself */
    lp_lora *ls[10];
    for (int i = 0; i < a->n; i++)
        LP_ASSERT_OK(lp_lora_new(&ls[i], a->loras[i]->C, a->loras[i]->OC, &a->config, 1, 0));
    LP_ASSERT_OK(lp_peft_load_weights(p1, (const char *const *)a->modules, ls, a->n));
    for (int i = 0; i < a->n; i++) assert_memory_equal(ls[i]->B, a->loras[i]->B, (size_t)(ls[i]->OC * 4) * 4);
    /* a file tensor without an adapter here, and a shape mismatch */
    assert_int_equal(lp_peft_load_weights(p1, (const char *const *)a->modules, ls, a->n - 1), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), "has no adapter here"));
    lp_lora *wrong;
    lp_lora_config c8 = a->config;
    c8.r = 8;
    LP_ASSERT_OK(lp_lora_new(&wrong, a->loras[0]->C, a->loras[0]->OC, &c8, 1, 0));
    lp_lora *keep = ls[0];
    ls[0] = wrong;
    assert_int_equal(lp_peft_load_weights(p1, (const char *const *)a->modules, ls, a->n), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), "expected (8,"));
    ls[0] = keep;
    lp_lora_free(wrong);
    /* saving checks that adapters agree with the config */
    assert_int_equal(lp_peft_save(out, &c8, (const char *const *)a->modules, ls, a->n), LP_ERR_INVALID_ARG);
    for (int i = 0; i < a->n; i++) lp_lora_free(ls[i]);
    lp_peft_free(a);
    remove_dir(out);
}

static void test_config_options_roundtrip(void **state)
{
    (void)state;
    lp_lora_config c, d;
    lp_lora_config_default(&c);
    c.r = 16;
    c.alpha = 32;
    c.dropout = 0.05f;
    c.use_rslora = 1;
    c.fan_in_fan_out = 1;
    c.init_lora_weights = LP_LORA_INIT_GAUSSIAN;
    strcpy(c.task_type, "CAUSAL_LM");
    strcpy(c.base_model, "gpt2 \"quoted\"\\path");
    LP_ASSERT_OK(lp_lora_config_set_target_regex(&c, ".*\\.h\\.[01]\\.attn\\.c_attn"));
    LP_ASSERT_OK(lp_lora_config_set_exclude(&c, "lm_head,wte"));
    char *text;
    LP_ASSERT_OK(lp_peft_config_to_json(&c, &text));
    assert_non_null(strstr(text, "\"lora_dropout\": 0.05,"));
    assert_non_null(strstr(text, "\"init_lora_weights\": \"gaussian\","));
    assert_non_null(strstr(text, "\"target_modules\": \".*\\\\.h\\\\.[01]\\\\.attn\\\\.c_attn\","));
    LP_ASSERT_OK(lp_peft_parse_config(&d, text, "mem.json"));
    free(text);
    assert_memory_equal(&c, &d, sizeof c);
    assert_true(lp_lora_config_scaling(&d) == 8.0f);
    assert_true(lp_lora_config_matches(&d, "transformer.h.1.attn.c_attn"));

    /* PEFT-written extras at their defaults are accepted; keys PEFT adds later too */
    LP_ASSERT_OK(lp_peft_parse_config(&d,
                                      "{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 3.5, \"target_modules\": "
                                      "[\"c_attn\"], \"use_dora\": false, \"rank_pattern\": {}, \"layers_to_transform\":"
                                      " null, \"some_future_option\": null, \"peft_version\": \"9.9\", "
                                      "\"init_lora_weights\": true}",
                                      "x.json"));
    assert_true(d.alpha == 3.5f && d.r == 2 && d.init_lora_weights == LP_LORA_INIT_DEFAULT);
    assert_true(d.dropout == 0.0f);
}

static void expect_config_error(const char *json, lp_status want, const char *needle)
{
    lp_lora_config c;
    lp_status st = lp_peft_parse_config(&c, json, "dir/adapter_config.json");
    if (st != want) fail_msg("%s: got %s (%s)", json, lp_status_name(st), lp_error_message());
    if (!strstr(lp_error_message(), "dir/adapter_config.json") || !strstr(lp_error_message(), needle))
        fail_msg("%s: message \"%s\" lacks the file or \"%s\"", json, lp_error_message(), needle);
}

#define BASE "\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\"]"

static void test_config_errors(void **state)
{
    (void)state;
    expect_config_error("{\"peft_type\": \"LORA\", ", LP_ERR_FORMAT, "JSON");
    expect_config_error("[1, 2]", LP_ERR_FORMAT, "object");
    expect_config_error("{\"peft_type\": \"IA3\", \"target_modules\": [\"q\"]}", LP_ERR_UNSUPPORTED, "peft_type");
    expect_config_error("{\"r\": 4, \"target_modules\": [\"q\"]}", LP_ERR_FORMAT, "peft_type");
    expect_config_error("{" BASE ", \"use_dora\": true}", LP_ERR_UNSUPPORTED, "use_dora");
    expect_config_error("{" BASE ", \"bias\": \"all\"}", LP_ERR_UNSUPPORTED, "bias");
    expect_config_error("{" BASE ", \"modules_to_save\": [\"classifier\"]}", LP_ERR_UNSUPPORTED, "modules_to_save");
    expect_config_error("{" BASE ", \"rank_pattern\": {\"q_proj\": 8}}", LP_ERR_UNSUPPORTED, "rank_pattern");
    expect_config_error("{" BASE ", \"layers_to_transform\": [0]}", LP_ERR_UNSUPPORTED, "layers_to_transform");
    expect_config_error("{" BASE ", \"init_lora_weights\": \"pissa\"}", LP_ERR_UNSUPPORTED, "init_lora_weights");
    expect_config_error("{" BASE ", \"brand_new_option\": 3}", LP_ERR_UNSUPPORTED, "brand_new_option");
    expect_config_error("{\"peft_type\": \"LORA\", \"r\": \"4\", \"target_modules\": [\"q\"]}", LP_ERR_FORMAT,
                        "\"r\" must be a positive integer");
    expect_config_error("{\"peft_type\": \"LORA\", \"r\": 2.5, \"target_modules\": [\"q\"]}", LP_ERR_FORMAT, "\"r\"");
    expect_config_error("{\"peft_type\": \"LORA\", \"r\": 0, \"target_modules\": [\"q\"]}", LP_ERR_FORMAT, "\"r\"");
    expect_config_error("{" BASE ", \"lora_dropout\": 1.5}", LP_ERR_FORMAT, "lora_dropout");
    expect_config_error("{" BASE ", \"lora_alpha\": -1}", LP_ERR_FORMAT, "lora_alpha");
    expect_config_error("{" BASE ", \"fan_in_fan_out\": 1}", LP_ERR_FORMAT, "fan_in_fan_out");
    expect_config_error("{\"peft_type\": \"LORA\", \"target_modules\": null}", LP_ERR_UNSUPPORTED, "target_modules");
    expect_config_error("{\"peft_type\": \"LORA\"}", LP_ERR_FORMAT, "target_modules");
    expect_config_error("{\"peft_type\": \"LORA\", \"target_modules\": []}", LP_ERR_FORMAT, "empty");
    expect_config_error("{\"peft_type\": \"LORA\", \"target_modules\": [\"q\", 3]}", LP_ERR_FORMAT, "element 1");
    expect_config_error("{\"peft_type\": \"LORA\", \"target_modules\": \"a(b\"}", LP_ERR_INVALID_ARG,
                        "target_modules");
    expect_config_error("{" BASE ", \"task_type\": 5}", LP_ERR_FORMAT, "task_type");
    lp_lora_config c;
    assert_int_equal(lp_peft_parse_config(NULL, "{}", "x"), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_peft_read_config(&c, "/nonexistent/adapter_config.json"), LP_ERR_NOT_FOUND);
    char *t;
    assert_int_equal(lp_peft_config_to_json(NULL, &t), LP_ERR_INVALID_ARG);
    lp_lora_config_default(&c); /* no targets */
    assert_int_equal(lp_peft_config_to_json(&c, &t), LP_ERR_INVALID_ARG);
    char buf[32];
    assert_int_equal(lp_peft_tensor_name(buf, sizeof buf, "model.layers.0.self_attn.q_proj", 'A', NULL),
                     LP_ERR_INVALID_ARG);
    assert_int_equal(lp_peft_tensor_name(buf, sizeof buf, "q", 'C', NULL), LP_ERR_INVALID_ARG);
}

/* an adapter dir with the given tensors (all (r=2, 3) / (4, 2) unless noted) */
static const char *make_adapter(const char *const *names, const int64_t (*shapes)[2], int n)
{
    const char *dir = temp_dir();
    write_text(dir, LP_PEFT_CONFIG_NAME,
               "{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 4, \"target_modules\": [\"q_proj\"]}");
    static float data[64];
    lp_safetensors_writer *w = lp_safetensors_writer_new();
    for (int i = 0; i < n; i++) LP_ASSERT_OK(lp_safetensors_writer_add_f32(w, names[i], data, shapes[i], 2));
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, LP_PEFT_WEIGHTS_NAME);
    LP_ASSERT_OK(lp_safetensors_writer_save(w, p));
    lp_safetensors_writer_free(w);
    return dir;
}

static void expect_load_error(const char *dir, lp_status want, const char *needle)
{
    lp_peft_adapter *a = (lp_peft_adapter *)1;
    size_t w0 = lp_mem_current(LP_MEM_WEIGHTS);
    lp_status st = lp_peft_load(&a, dir, 1);
    if (st != want) fail_msg("%s: got %s (%s)", dir, lp_status_name(st), lp_error_message());
    if (!strstr(lp_error_message(), needle)) fail_msg("message \"%s\" lacks \"%s\"", lp_error_message(), needle);
    assert_null(a);
    assert_int_equal(lp_mem_current(LP_MEM_WEIGHTS), w0);
    remove_dir(dir);
}

static void test_bad_adapter_files(void **state)
{
    (void)state;
    const char *A = "base_model.model.m.q_proj.lora_A.weight", *B = "base_model.model.m.q_proj.lora_B.weight";
    const int64_t ok[2][2] = {{2, 3}, {4, 2}};
    /* a valid minimal adapter loads */
    const char *dir = make_adapter((const char *const[]){A, B}, ok, 2);
    lp_peft_adapter *a;
    LP_ASSERT_OK(lp_peft_load(&a, dir, 0));
    assert_int_equal(a->n, 1);
    assert_string_equal(a->modules[0], "m.q_proj");
    assert_true(a->loras[0]->C == 3 && a->loras[0]->OC == 4);
    lp_peft_free(a);
    remove_dir(dir);
    expect_load_error(make_adapter((const char *const[]){A}, ok, 1), LP_ERR_NOT_FOUND, "lora_B.weight\" missing");
    expect_load_error(make_adapter((const char *const[]){B}, ok + 1, 1), LP_ERR_NOT_FOUND, "lora_A.weight\" missing");
    const int64_t bad_r[2][2] = {{3, 3}, {4, 3}};
    expect_load_error(make_adapter((const char *const[]){A, B}, bad_r, 2), LP_ERR_FORMAT, "r = 2");
    const int64_t bad_b[2][2] = {{2, 3}, {2, 4}};
    expect_load_error(make_adapter((const char *const[]){A, B}, bad_b, 2), LP_ERR_FORMAT, "m.q_proj");
    expect_load_error(make_adapter((const char *const[]){A, B, "base_model.model.m.embed.lora_embedding_A"},
                                   (const int64_t[3][2]){{2, 3}, {4, 2}, {2, 2}}, 3),
                      LP_ERR_UNSUPPORTED, "lora_embedding_A");
    expect_load_error(make_adapter((const char *const[]){A, B, "classifier.weight"},
                                   (const int64_t[3][2]){{2, 3}, {4, 2}, {2, 2}}, 3),
                      LP_ERR_FORMAT, "classifier.weight");
    /* pickled weights, missing weights, missing directory */
    dir = temp_dir();
    write_text(dir, LP_PEFT_CONFIG_NAME,
               "{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 4, \"target_modules\": [\"q_proj\"]}");
    expect_load_error(dir, LP_ERR_NOT_FOUND, LP_PEFT_WEIGHTS_NAME);
    dir = temp_dir();
    write_text(dir, LP_PEFT_CONFIG_NAME,
               "{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 4, \"target_modules\": [\"q_proj\"]}");
    write_text(dir, "adapter_model.bin", "PK");
    expect_load_error(dir, LP_ERR_UNSUPPORTED, "safetensors");
    lp_peft_adapter *none = NULL;
    assert_int_equal(lp_peft_load(&none, "/nonexistent-dir", 0), LP_ERR_NOT_FOUND);
    assert_int_equal(lp_peft_load(NULL, "x", 0), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_peft_save(NULL, NULL, NULL, NULL, 0), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_peft_load_weights("x", NULL, NULL, 0), LP_ERR_INVALID_ARG);
    assert_null(lp_peft_find(NULL, "x"));
    lp_peft_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_fixture),
        cmocka_unit_test(test_save_reload_roundtrip),
        cmocka_unit_test(test_config_options_roundtrip),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_bad_adapter_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
