/* `leanprop gnn --max-memory`: a budget below what a 4-layer BP run on Cora
 * needs stops the run cleanly (exit 1) with a message naming the category and
 * the refused size; a sufficient budget changes nothing; a bad size is a usage
 * error (exit 2). Runs the real CLI (../leanprop beside build/tests, or
 * $LEANPROP_BIN). */
#include "util/test_util.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static char g_cli[4096];
static char g_out[8192];

static int run_cli(const char *args)
{
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "'%s' gnn %s --quiet >/tmp/leanprop-gnn-budget.log 2>&1", g_cli, args);
    int rc = system(cmd);
    FILE *f = fopen("/tmp/leanprop-gnn-budget.log", "r");
    size_t n = f ? fread(g_out, 1, sizeof g_out - 1, f) : 0;
    g_out[n] = '\0';
    if (f) fclose(f);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_budget_stops_cleanly(void **state)
{
    (void)state;
    const char *cora = lp_test_shared("data/graphs/cora.npz");
    if (!cora) LP_SKIP("shared data not found (set LEANPROP_SHARED)");
    char args[8192];
    snprintf(args, sizeof args, "--dataset '%s' --layers 4 --runs 1 --epochs 4 --max-memory 6M", cora);
    assert_int_equal(run_cli(args), 1);
    assert_non_null(strstr(g_out, "memory budget exceeded"));
    assert_non_null(strstr(g_out, "activations"));
    snprintf(args, sizeof args, "--dataset '%s' --layers 4 --runs 1 --epochs 4 --max-memory 64M", cora);
    assert_int_equal(run_cli(args), 0);
    assert_non_null(strstr(g_out, "summary"));
}

static void test_bad_size_is_usage_error(void **state)
{
    (void)state;
    assert_int_equal(run_cli("--dataset x --max-memory 12Q"), 2);
    assert_non_null(strstr(g_out, "--max-memory"));
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
        cmocka_unit_test(test_budget_stops_cleanly),
        cmocka_unit_test(test_bad_size_is_usage_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
