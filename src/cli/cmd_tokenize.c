/* `leanprop tokenize`: encode text with any supported tokenizer (ids, tokens, or a count with
 * the encode speed), or decode a list of ids. All the work is lp_tokenizer_*; this file parses
 * flags and prints. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "leanprop/alloc.h"
#include "leanprop/fileio.h"
#include "leanprop/log.h"
#include "leanprop/tokenizer.h"

#define MAX_INPUT ((size_t)1 << 31)

/* "1,2,3" (commas and/or spaces between ids) -> lp_alloc'd ids; 0 on success. */
static int parse_ids(const char *s, int32_t **ids, size_t *n)
{
    size_t cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',' || *p == ' ';
    *n = 0;
    *ids = lp_alloc_array(LP_MEM_DATA, cap, sizeof **ids);
    if (!*ids) return -1;
    for (const char *p = s;;) {
        while (*p == ',' || *p == ' ' || *p == '\t' || *p == '\n') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX || (*end && !strchr(", \t\n", *end))) {
            fprintf(stderr, "leanprop tokenize: --decode: '%.*s' is not an id\n", (int)strcspn(p, ", \t\n"), p);
            return -1;
        }
        (*ids)[(*n)++] = (int32_t)v;
        p = end;
    }
    return 0;
}

/* Standard input into an lp_alloc'd buffer. */
static lp_status read_stdin(char **out, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = lp_alloc(LP_MEM_DATA, cap + 1);
    if (!buf) return LP_ERR_NOMEM;
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, stdin)) > 0) {
        n += got;
        if (n == cap) {
            char *b = cap < MAX_INPUT ? lp_realloc(buf, 2 * cap + 1) : NULL;
            if (!b) { lp_free(buf); return lp_error(LP_ERR_NOMEM, "standard input: more than %zu bytes", cap); }
            buf = b;
            cap *= 2;
        }
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return LP_OK;
}

/* A token as the file spells it, with control bytes and backslashes escaped. */
static void print_token(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F) printf("\\x%02X", c);
        else if (c == '\\') fputs("\\\\", stdout);
        else putchar(c);
    }
}

static int run_decode(lp_tokenizer *tok, const char *list, unsigned flags)
{
    int32_t *ids;
    size_t n;
    if (parse_ids(list, &ids, &n) != 0) {
        lp_free(ids);
        return 2;
    }
    char *text;
    size_t len;
    lp_status st = lp_tokenizer_decode(tok, ids, n, flags, &text, &len);
    lp_free(ids);
    if (st != LP_OK) return cli_fail("tokenize --decode");
    fwrite(text, 1, len, stdout);
    putchar('\n');
    lp_free(text);
    return 0;
}

static int run_encode(lp_tokenizer *tok, const char *text, size_t len, unsigned flags, int ids_only, int count)
{
    int32_t *ids;
    size_t n;
    double t0 = lp_time_now();
    lp_status st = lp_tokenizer_encode(tok, text, len, flags, &ids, &n);
    double dt = lp_time_now() - t0;
    if (st != LP_OK) return cli_fail("tokenize");
    if (count) {
        printf("tokens %zu\nbytes %zu\n", n, len);
        printf("encode %.6f s (%.1f MB/s, %.0f tokens/s, one thread)\n", dt, dt > 0 ? len / dt * 1e-6 : 0.0,
               dt > 0 ? n / dt : 0.0);
    } else if (ids_only) {
        for (size_t i = 0; i < n; i++) printf("%s%d", i ? "," : "", ids[i]);
        putchar('\n');
    } else {
        for (size_t i = 0; i < n; i++) {
            size_t tl;
            const char *s = lp_tokenizer_token(tok, ids[i], &tl);
            printf("%d\t", ids[i]);
            print_token(s ? s : "", s ? tl : 0);
            putchar('\n');
        }
    }
    lp_free(ids);
    return 0;
}

int cmd_tokenize(int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, argc, argv);
    const char *path = cli_get(&a, "tokenizer", NULL);
    const char *text = cli_get(&a, "text", NULL);
    const char *file = cli_get(&a, "file", NULL);
    const char *list = cli_get(&a, "decode", NULL);
    unsigned flags = (cli_flag(&a, "bos") ? LP_TOKENIZER_ADD_BOS : 0) | (cli_flag(&a, "eos") ? LP_TOKENIZER_ADD_EOS : 0) |
                     (cli_flag(&a, "special") ? LP_TOKENIZER_ADD_SPECIAL : 0) |
                     (cli_flag(&a, "special-as-text") ? LP_TOKENIZER_SPECIAL_AS_TEXT : 0) |
                     (cli_flag(&a, "skip-special") ? LP_TOKENIZER_SKIP_SPECIAL : 0);
    int ids_only = cli_flag(&a, "ids"), count = cli_flag(&a, "count");
    if (cli_finish(&a)) return 2;
    if (!path || (!!text + !!file + !!list) != 1) {
        fprintf(stderr, "leanprop tokenize: need --tokenizer PATH and one of --text, --file or --decode (see --help)\n");
        return 2;
    }
    lp_tokenizer *tok;
    if (lp_tokenizer_open(&tok, path) != LP_OK) return cli_fail("tokenize");
    int rc;
    if (list) {
        rc = run_decode(tok, list, flags);
    } else if (text) {
        rc = run_encode(tok, text, strlen(text), flags, ids_only, count);
    } else {
        char *buf;
        size_t len;
        lp_status st = strcmp(file, "-") ? lp_file_read_all(file, MAX_INPUT, LP_MEM_DATA, &buf, &len)
                                         : read_stdin(&buf, &len);
        rc = st == LP_OK ? run_encode(tok, buf, len, flags, ids_only, count) : cli_fail("tokenize");
        if (st == LP_OK) lp_free(buf);
    }
    lp_tokenizer_close(tok);
    return rc;
}
