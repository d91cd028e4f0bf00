/* `leanprop convert --merge`: the PEFT fixture adapter merged into llama-tiny
 * by the real CLI gives a plain Hugging Face directory whose logits equal the
 * float64 reference computed by PEFT with the adapter applied
 * (|a - b| <= 2e-5 * max|b| + 1e-5 * |b|), and a bad adapter directory fails
 * with a message naming it. */
#include "test_finetune_util.h"

#include <libgen.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_cli[4096];

static int run_cli(const char *args, const char *log)
{
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "'%s' %s >'%s' 2>&1", g_cli, args, log);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_merge_matches_peft_reference(void **state)
{
    (void)state;
    const char *base = lp_test_shared("fixtures/llama-tiny");
    char base_dir[4096], adapter_dir[4096], ref_path[4200], out_dir[] = "/tmp/leanprop-merge-XXXXXX", args[16384];
    if (!base) LP_SKIP("shared fixtures not found (set LEANPROP_SHARED)");
    snprintf(base_dir, sizeof base_dir, "%s", base);
    snprintf(adapter_dir, sizeof adapter_dir, "%s", lp_test_shared("fixtures/llama-tiny-lora"));
    snprintf(ref_path, sizeof ref_path, "%s/reference.safetensors", adapter_dir);
    assert_non_null(mkdtemp(out_dir));
    snprintf(args, sizeof args, "convert --model '%s' --merge '%s' --out '%s'", base_dir, adapter_dir, out_dir);
    assert_int_equal(run_cli(args, "/tmp/leanprop-merge.log"), 0);

    lp_transformer *m;
    LP_ASSERT_OK(lp_transformer_load(&m, out_dir));
    lp_safetensors *ref;
    LP_ASSERT_OK(lp_safetensors_open(&ref, ref_path));
    int64_t n;
    int32_t *ids = ft_ref_i32(ref, "input_ids", &n);
    const lp_tensor_info *ti = lp_safetensors_find(ref, "input_ids");
    const lp_tensor_info *tl = lp_safetensors_find(ref, "logits");
    assert_non_null(tl);
    float *want = malloc(tl->numel * sizeof(float)), *got = malloc(tl->numel * sizeof(float));
    LP_ASSERT_OK(lp_safetensors_read_f32(ref, "logits", want, tl->numel));
    lp_transformer_batch b = {.B = ti->shape[0], .T = ti->shape[1], .input_ids = ids};
    lp_transformer_forward_opts o = {.logits = got};
    float loss;
    LP_ASSERT_OK(lp_transformer_forward(m, &b, &o, &loss));
    float maxabs = 0;
    for (int64_t i = 0; i < tl->numel; i++) maxabs = fmaxf(maxabs, fabsf(want[i]));
    lp_test_assert_allclose(got, want, tl->numel, 2e-5 * maxabs, 1e-5, "merged logits vs PEFT reference");
    /* and the merge changed something: the base model alone is far from it */
    lp_transformer *plain;
    LP_ASSERT_OK(lp_transformer_load(&plain, base_dir));
    LP_ASSERT_OK(lp_transformer_forward(plain, &b, &o, &loss));
    assert_true(lp_test_close_ratio(got, want, tl->numel, 2e-5 * maxabs, 1e-5, NULL) > 10.0);
    lp_transformer_free(plain);
    free(want);
    free(got);
    free(ids);
    lp_safetensors_close(ref);
    lp_transformer_free(m);
    snprintf(args, sizeof args, "rm -rf '%s'", out_dir);
    assert_int_equal(system(args), 0);
}

static void test_merge_bad_adapter_dir(void **state)
{
    (void)state;
    const char *base = lp_test_shared("fixtures/llama-tiny");
    if (!base) LP_SKIP("shared fixtures not found (set LEANPROP_SHARED)");
    char args[8192];
    snprintf(args, sizeof args, "convert --model '%s' --merge /nonexistent-adapter --out /tmp/leanprop-merge-bad", base);
    assert_int_equal(run_cli(args, "/tmp/leanprop-merge-bad.log"), 1);
    FILE *f = fopen("/tmp/leanprop-merge-bad.log", "r");
    assert_non_null(f);
    char text[4096] = "";
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    assert_non_null(strstr(text, "/nonexistent-adapter"));
}

int main(int argc, char **argv)
{
    (void)argc;
    char self[4096];
    snprintf(self, sizeof self, "%s", argv[0]);
    const char *env = getenv("LEANPROP_BIN");
    if (env) snprintf(g_cli, sizeof g_cli, "%s", env);
    else snprintf(g_cli, sizeof g_cli, "%s/../leanprop", dirname(self));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_matches_peft_reference),
        cmocka_unit_test(test_merge_bad_adapter_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
