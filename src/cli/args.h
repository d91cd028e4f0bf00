/* Minimal flag parser shared by the CLI commands.
 *
 *   cli_args a; cli_args_init(&a, argc, argv);     // argv[0] = command name
 *   const char *data = cli_get(&a, "data", NULL);  // --data PATH or --data=PATH
 *   long runs = cli_get_long(&a, "runs", 5);
 *   int verbose = cli_flag(&a, "verbose");          // --verbose
 *   if (cli_finish(&a) != 0) return 2;              // unknown flags -> message
 */
#ifndef LEANPROP_CLI_ARGS_H
#define LEANPROP_CLI_ARGS_H

#define CLI_MAX_ARGS 128

typedef struct {
    int argc;
    char **argv;
    unsigned char used[CLI_MAX_ARGS];
    int error;
} cli_args;

void cli_args_init(cli_args *a, int argc, char **argv);
const char *cli_get(cli_args *a, const char *name, const char *def);
long cli_get_long(cli_args *a, const char *name, long def);
double cli_get_double(cli_args *a, const char *name, double def);
int cli_flag(cli_args *a, const char *name);
/* Returns 0 if every argument was consumed and parsed; else prints to stderr. */
int cli_finish(cli_args *a);

#endif
