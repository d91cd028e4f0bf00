#include "cli/args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_args_init(cli_args *a, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    a->argc = argc < CLI_MAX_ARGS ? argc : CLI_MAX_ARGS;
    a->argv = argv;
    if (argc > CLI_MAX_ARGS) {
        fprintf(stderr, "leanprop: too many arguments (max %d)\n", CLI_MAX_ARGS);
        a->error = 1;
    }
    if (a->argc > 0) a->used[0] = 1;
}

/* Index of --name or --name=..., or -1. */
static int find(cli_args *a, const char *name, const char **inline_value)
{
    size_t n = strlen(name);
    for (int i = a->argc - 1; i >= 1; i--) { /* last occurrence wins */
        const char *s = a->argv[i];
        if (s[0] != '-' || s[1] != '-' || strncmp(s + 2, name, n) != 0) continue;
        if (s[2 + n] == '\0') { *inline_value = NULL; return i; }
        if (s[2 + n] == '=') { *inline_value = s + 3 + n; return i; }
    }
    return -1;
}

const char *cli_get(cli_args *a, const char *name, const char *def)
{
    const char *v;
    int i = find(a, name, &v);
    if (i < 0) return def;
    a->used[i] = 1;
    if (v) return v;
    if (i + 1 >= a->argc) {
        fprintf(stderr, "leanprop: --%s needs a value\n", name);
        a->error = 1;
        return def;
    }
    a->used[i + 1] = 1;
    return a->argv[i + 1];
}

long cli_get_long(cli_args *a, const char *name, long def)
{
    const char *s = cli_get(a, name, NULL);
    if (!s) return def;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s) {
        fprintf(stderr, "leanprop: --%s expects an integer, got '%s'\n", name, s);
        a->error = 1;
        return def;
    }
    return v;
}

double cli_get_double(cli_args *a, const char *name, double def)
{
    const char *s = cli_get(a, name, NULL);
    if (!s) return def;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s) {
        fprintf(stderr, "leanprop: --%s expects a number, got '%s'\n", name, s);
        a->error = 1;
        return def;
    }
    return v;
}

int cli_flag(cli_args *a, const char *name)
{
    const char *v;
    int i = find(a, name, &v);
    if (i < 0) return 0;
    a->used[i] = 1;
    return v ? strcmp(v, "0") != 0 && strcmp(v, "false") != 0 : 1;
}

int cli_finish(cli_args *a)
{
    for (int i = 1; i < a->argc; i++) {
        if (!a->used[i]) {
            fprintf(stderr, "leanprop %s: unknown argument '%s' (see --help)\n", a->argv[0], a->argv[i]);
            a->error = 1;
        }
    }
    return a->error;
}
