/* fuzz/gen_corpus.c: writes the seed files that leanprop's own writers produce (safetensors,
 * llm.c, llama2.c, config.json, adapter_config.json, PEFT adapters, model directories, split
 * files) into fuzz/corpus/<harness>/. fuzz/gen_corpus.py writes the hand-made rest.
 * Run: make fuzz-corpus (committed results; rerun only to refresh). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* the separator the multi-file harnesses split their input at (LPFUZZ_SEP in fuzz_common.h) */
#define LPFUZZ_SEP "\n@@@\n"
#include "fuzz_graph_fixture.h"
#include "leanprop/checkpoint.h"
#include "leanprop/checkpoint_llm.h"
#include "leanprop/fileio.h"
#include "leanprop/graph.h"
#include "leanprop/model_dir.h"
#include "leanprop/peft.h"
#include "leanprop/safetensors.h"
#include "leanprop/transformer.h"

static const char *g_out;

static void check(lp_status st, const char *what)
{
    if (st != LP_OK) {
        fprintf(stderr, "gen_corpus: %s: %s\n", what, lp_error_message());
        exit(1);
    }
}

static const char *seed_path(const char *harness, const char *name)
{
    static char p[4][1024];
    static int k;
    char *s = p[k++ & 3];
    snprintf(s, sizeof p[0], "%s/%s", g_out, harness);
    mkdir(s, 0755);
    snprintf(s, sizeof p[0], "%s/%s/%s", g_out, harness, name);
    return s;
}

static char *slurp(const char *path, size_t *n)
{
    char *buf;
    check(lp_file_read_all(path, 1 << 24, LP_MEM_SCRATCH, &buf, n), path);
    return buf;
}

/* Concatenate files with LPFUZZ_SEP between them into one seed. */
static void join_seed(const char *harness, const char *name, const char *const *files, int n, const char *tail)
{
    FILE *f = fopen(seed_path(harness, name), "wb");
    if (!f) { perror(name); exit(1); }
    for (int i = 0; i < n; i++) {
        size_t len;
        char *b = slurp(files[i], &len);
        if (i) fputs(LPFUZZ_SEP, f);
        fwrite(b, 1, len, f);
        lp_free(b);
    }
    if (tail) { fputs(LPFUZZ_SEP, f); fputs(tail, f); }
    fclose(f);
}

static void write_bytes(const char *path, const void *d, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(d, 1, n, f) != n || fclose(f)) { perror(path); exit(1); }
}

static void gen_safetensors(void)
{
    float a[6] = {1, -2, 3.5f, 0, 1e-3f, -1e30f}, b[4] = {0.25f, 0.5f, 0.75f, 1};
    int64_t sa[2] = {2, 3}, sb[1] = {4};
    lp_safetensors_writer *w = lp_safetensors_writer_new();
    check(lp_safetensors_writer_add_f32(w, "a", a, sa, 2), "add a");
    check(lp_safetensors_writer_add_f32(w, "b.weight", b, sb, 1), "add b");
    check(lp_safetensors_writer_set_metadata(w, "format", "pt"), "meta");
    check(lp_safetensors_writer_save(w, seed_path("safetensors", "f32.safetensors")), "save f32");
    lp_safetensors_writer_free(w);

    w = lp_safetensors_writer_new();
    int64_t s3[1] = {3}, s22[2] = {2, 2}, s2[1] = {2}, s5[1] = {5}, s1[1] = {1}, s0[2] = {0, 3};
    int64_t i64[2] = {-7, 1LL << 40};
    uint8_t u8[5] = {0, 1, 2, 254, 255}, bl[3] = {0, 1, 0};
    int32_t i32[1] = {-5};
    double f64[2] = {1.5, -0.0};
    check(lp_safetensors_writer_add_f32_as(w, "half", LP_DTYPE_F16, a, s3, 1), "f16");
    check(lp_safetensors_writer_add_f32_as(w, "brain", LP_DTYPE_BF16, b, s22, 2), "bf16");
    check(lp_safetensors_writer_add(w, "ids", LP_DTYPE_I64, i64, s2, 1), "i64");
    check(lp_safetensors_writer_add(w, "bytes", LP_DTYPE_U8, u8, s5, 1), "u8");
    check(lp_safetensors_writer_add(w, "mask", LP_DTYPE_BOOL, bl, s3, 1), "bool");
    check(lp_safetensors_writer_add(w, "i32", LP_DTYPE_I32, i32, s1, 1), "i32");
    check(lp_safetensors_writer_add(w, "f64", LP_DTYPE_F64, f64, s2, 1), "f64");
    check(lp_safetensors_writer_add_f32(w, "empty", a, s0, 2), "empty");
    check(lp_safetensors_writer_add_f32(w, "scalar", a, NULL, 0), "scalar");
    check(lp_safetensors_writer_set_metadata(w, "format", "pt"), "meta");
    check(lp_safetensors_writer_set_metadata(w, "note", "mixed dtypes"), "meta");
    check(lp_safetensors_writer_save(w, seed_path("safetensors", "mixed.safetensors")), "save mixed");
    lp_safetensors_writer_free(w);

    w = lp_safetensors_writer_new();
    check(lp_safetensors_writer_set_metadata(w, "only", "metadata"), "meta");
    check(lp_safetensors_writer_save(w, seed_path("safetensors", "no_tensors.safetensors")), "save empty");
    lp_safetensors_writer_free(w);
}

static void tiny_config(lp_arch arch, lp_transformer_config *cfg)
{
    lp_transformer_config_default(cfg, arch);
    cfg->vocab_size = 8;
    cfg->hidden_size = 4;
    cfg->n_layers = 1;
    cfg->n_heads = 2;
    cfg->n_kv_heads = arch == LP_ARCH_LLAMA ? 1 : 2;
    cfg->head_dim = 2;
    cfg->intermediate_size = arch == LP_ARCH_LLAMA ? 8 : 16;
    cfg->max_positions = 4;
    if (arch == LP_ARCH_BERT) cfg->num_labels = 2;
}

static lp_transformer *tiny_model(lp_arch arch)
{
    lp_transformer_config cfg;
    tiny_config(arch, &cfg);
    lp_transformer *m;
    check(lp_transformer_new(&m, &cfg), "tiny model");
    lp_transformer_init_random(m, 1, 0.5f);
    return m;
}

static void gen_llmc(void)
{
    lp_transformer *m = tiny_model(LP_ARCH_GPT2);
    const char *p = seed_path("llmc", "tiny_f32.bin");
    check(lp_llmc_save(m, p), "llmc save");
    lp_transformer_free(m);
    /* the same model as version 5 (bf16) */
    size_t n;
    char *b = slurp(p, &n);
    size_t nv = (n - 1024) / 4;
    char *o = malloc(1024 + nv * 2);
    memcpy(o, b, 1024);
    int32_t v5 = 5;
    memcpy(o + 4, &v5, 4);
    for (size_t i = 0; i < nv; i++) {
        float f;
        memcpy(&f, b + 1024 + 4 * i, 4);
        uint16_t h = lp_f32_to_bf16(f);
        memcpy(o + 1024 + 2 * i, &h, 2);
    }
    write_bytes(seed_path("llmc", "tiny_bf16.bin"), o, 1024 + nv * 2);
    /* header only (truncated) */
    write_bytes(seed_path("llmc", "header_only.bin"), b, 1024);
    free(o);
    lp_free(b);
}

static void gen_llama2c(void)
{
    for (int shared = 0; shared < 2; shared++) {
        int32_t h[7] = {4, 8, 1, 2, 1, shared ? 8 : -8, 4};
        int64_t dim = 4, hid = 8, D = 2, kv = 2, V = 8, seq = 4;
        int64_t n = V * dim + dim + dim * dim + 2 * kv * dim + dim * dim + dim + 3 * hid * dim + dim + seq * D +
                    (shared ? 0 : V * dim);
        size_t bytes = 28 + (size_t)n * 4;
        char *buf = malloc(bytes);
        memcpy(buf, h, 28);
        for (int64_t i = 0; i < n; i++) {
            float v = (float)((i * 37) % 17) / 17.0f - 0.5f;
            memcpy(buf + 28 + 4 * i, &v, 4);
        }
        write_bytes(seed_path("llama2c", shared ? "tiny_shared.bin" : "tiny_untied.bin"), buf, bytes);
        free(buf);
    }
}

static void gen_config(void)
{
    static const char *names[3][2] = {{"gpt2.json", "gpt2_tiny.json"}, {"llama.json", "llama_tiny.json"},
                                      {"bert.json", "bert_tiny.json"}};
    for (int a = 0; a < 3; a++) {
        for (int tiny = 0; tiny < 2; tiny++) {
            lp_transformer_config cfg;
            if (tiny) tiny_config((lp_arch)a, &cfg);
            else lp_transformer_config_default(&cfg, (lp_arch)a);
            char *json;
            check(lp_transformer_config_to_json(&cfg, a == 1 ? "bfloat16" : "float32", &json), "config json");
            write_bytes(seed_path("config", names[a][tiny]), json, strlen(json));
            free(json);
        }
    }
}

static void gen_peft(void)
{
    lp_lora_config c;
    lp_lora_config_default(&c);
    check(lp_lora_config_set_targets(&c, "q_proj,v_proj"), "targets");
    c.r = 2;
    c.alpha = 4;
    c.dropout = 0.05f;
    snprintf(c.task_type, sizeof c.task_type, "CAUSAL_LM");
    snprintf(c.base_model, sizeof c.base_model, "tiny-llama");
    char *json;
    check(lp_peft_config_to_json(&c, &json), "peft json");
    write_bytes(seed_path("peft_config", "list.json"), json, strlen(json));
    free(json);
    lp_lora_config r = c;
    check(lp_lora_config_set_target_regex(&r, ".*\\.(q|v)_proj"), "regex");
    check(lp_lora_config_set_exclude(&r, "lm_head"), "exclude");
    r.use_rslora = 1;
    r.init_lora_weights = LP_LORA_INIT_GAUSSIAN;
    check(lp_peft_config_to_json(&r, &json), "peft json");
    write_bytes(seed_path("peft_config", "regex.json"), json, strlen(json));
    free(json);
    lp_lora_config al = c;
    check(lp_lora_config_set_targets(&al, "all-linear"), "all-linear");
    check(lp_peft_config_to_json(&al, &json), "peft json");
    write_bytes(seed_path("peft_config", "all_linear.json"), json, strlen(json));
    free(json);

    /* an adapter directory: two modules of a 4-wide model */
    char dir[] = "/tmp/lpgen-XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); exit(1); }
    const char *mods[2] = {"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj"};
    lp_lora *L[2];
    for (int i = 0; i < 2; i++) {
        check(lp_lora_new(&L[i], 4, i ? 2 : 4, &c, 7 + i, 0), "lora");
        for (int64_t k = 0; k < L[i]->OC * c.r; k++) L[i]->B[k] = 0.01f * (float)(k + 1);
    }
    check(lp_peft_save(dir, &c, mods, L, 2), "peft save");
    char p1[1100], p2[1100];
    snprintf(p1, sizeof p1, "%s/%s", dir, LP_PEFT_CONFIG_NAME);
    snprintf(p2, sizeof p2, "%s/%s", dir, LP_PEFT_WEIGHTS_NAME);
    const char *files[2] = {p1, p2};
    join_seed("peft_adapter", "two_modules", files, 2, NULL);
    unlink(p1);
    unlink(p2);
    rmdir(dir);
    for (int i = 0; i < 2; i++) lp_lora_free(L[i]);
}

static void gen_model_dir(void)
{
    char dir[] = "/tmp/lpgen-XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); exit(1); }
    float a[16], b[16];
    for (int i = 0; i < 16; i++) { a[i] = (float)i; b[i] = -(float)i; }
    int64_t s[2] = {4, 4};
    lp_safetensors_writer *w = lp_safetensors_writer_new();
    check(lp_safetensors_writer_add_f32(w, "model.embed_tokens.weight", a, s, 2), "add");
    check(lp_safetensors_writer_add_f32(w, "model.norm.weight", b, s, 1), "add");
    cJSON *cfg = cJSON_Parse("{\"model_type\":\"llama\",\"hidden_size\":4}");
    check(lp_model_dir_write(dir, cfg, w, 64), "model dir write");
    cJSON_Delete(cfg);
    lp_safetensors_writer_free(w);
    char p[4][1100];
    static const char *const names[4] = {"config.json", "model.safetensors.index.json",
                                         "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    const char *files[4];
    for (int i = 0; i < 4; i++) {
        snprintf(p[i], sizeof p[i], "%s/%s", dir, names[i]);
        files[i] = p[i];
        if (!lp_file_exists(p[i])) { fprintf(stderr, "gen_corpus: %s not written\n", p[i]); exit(1); }
    }
    join_seed("model_dir", "two_shards", files, 4, NULL);
    /* each shard alone is also a safetensors seed */
    for (int i = 2; i < 4; i++) {
        size_t n;
        char *d = slurp(p[i], &n);
        write_bytes(seed_path("safetensors", names[i]), d, n);
        lp_free(d);
    }
    for (int i = 0; i < 4; i++) unlink(p[i]);
    rmdir(dir);
}

static void gen_split(void)
{
    char dir[] = "/tmp/lpgen-XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); exit(1); }
    char e[1100], l[1100];
    snprintf(e, sizeof e, "%s/f.edges.txt", dir);
    snprintf(l, sizeof l, "%s/f.labels.txt", dir);
    write_bytes(e, lpfuzz_fixture_edges, sizeof lpfuzz_fixture_edges - 1);
    write_bytes(l, lpfuzz_fixture_labels, sizeof lpfuzz_fixture_labels - 1);
    lp_graph_dataset *ds;
    check(lp_graph_dataset_load_text(&ds, e, l, NULL, NULL), "fixture");
    lp_graph_splits *s;
    check(lp_graph_splits_node(&s, ds, 2, 11), "node split");
    check(lp_graph_splits_save(s, seed_path("split", "node.split")), "save node");
    lp_graph_splits_free(s);
    check(lp_graph_splits_link(&s, ds->graph, 2, 0.2, 0.2, 5), "link split");
    check(lp_graph_splits_save(s, seed_path("split", "link.split")), "save link");
    lp_graph_splits_free(s);
    lp_graph_dataset_free(ds);
    /* the fixture itself seeds the text-graph harness */
    const char *gfiles[2] = {e, l};
    join_seed("graph_text", "fixture", gfiles, 2, NULL);
    unlink(e);
    unlink(l);
    rmdir(dir);
}

static void gen_checkpoint(void)
{
    float w[6] = {1, 2, 3, -4, 0.5f, -0.0f}, m[2] = {1e-3f, 2e-3f};
    int64_t s23[2] = {2, 3}, s2[1] = {2};
    lp_rng r;
    lp_rng_seed(&r, 5);
    (void)lp_rng_normal(&r);
    lp_checkpoint_writer *w8 = lp_checkpoint_writer_new();
    check(lp_checkpoint_writer_add_tensor(w8, "lora_A", w, s23, 2), "ckpt tensor");
    check(lp_checkpoint_writer_add_tensor(w8, "adam.m", m, s2, 1), "ckpt tensor");
    check(lp_checkpoint_writer_add_bytes(w8, "loader", "pos\0", 4), "ckpt bytes");
    check(lp_checkpoint_writer_add_u64(w8, "step", 42), "ckpt u64");
    check(lp_checkpoint_writer_add_u64(w8, "data.position", 1234), "ckpt u64");
    check(lp_checkpoint_writer_add_i64(w8, "epoch", -1), "ckpt i64");
    check(lp_checkpoint_writer_add_rng(w8, "rng", &r), "ckpt rng");
    check(lp_checkpoint_writer_set_json(w8, "{\"lr\": 0.001, \"method\": \"lora\"}"), "ckpt json");
    check(lp_checkpoint_writer_save(w8, seed_path("checkpoint", "full.safetensors")), "ckpt save");
    lp_checkpoint_writer_free(w8);
    w8 = lp_checkpoint_writer_new();
    check(lp_checkpoint_writer_add_u64(w8, "step", 0), "ckpt u64");
    check(lp_checkpoint_writer_save(w8, seed_path("checkpoint", "scalars_only.safetensors")), "ckpt save");
    lp_checkpoint_writer_free(w8);
}

int main(int argc, char **argv)
{
    g_out = argc > 1 ? argv[1] : "fuzz/corpus";
    mkdir(g_out, 0755);
    gen_safetensors();
    gen_llmc();
    gen_llama2c();
    gen_config();
    gen_peft();
    gen_model_dir();
    gen_split();
    gen_checkpoint();
    return 0;
}
