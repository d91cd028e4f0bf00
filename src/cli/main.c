/* leanprop command-line entry: dispatches to the command table. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "leanprop/threads.h"
#include "leanprop/version.h"

static void usage(FILE *out)
{
    fprintf(out,
            "leanprop %s: memory-lean training of transformers (TokenTune, LoRA, QLoRA)\n"
            "and graph neural networks (ForwardGNN).\n\n"
            "usage: leanprop <command> [flags]     leanprop <command> --help\n\n"
            "commands:\n",
            lp_version());
    for (int i = 0; i < cli_n_commands; i++) fprintf(out, "  %-10s %s\n", cli_commands[i].name, cli_commands[i].summary);
    fprintf(out,
            "\nenvironment:\n"
            "  LEANPROP_THREADS   threads for OpenMP and OpenBLAS (default: all CPUs)\n"
            "  LEANPROP_LOG       error|warn|info|debug (default info)\n"
            "  LEANPROP_PROGRESS  0 turns the progress bar off (it is off anyway when stderr is not a terminal)\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("leanprop %s\n", lp_version());
        return 0;
    }
    lp_threads_init();
    for (int i = 0; i < cli_n_commands; i++) {
        if (strcmp(argv[1], cli_commands[i].name) != 0) continue;
        for (int j = 2; j < argc; j++) {
            if (!strcmp(argv[j], "--help") || !strcmp(argv[j], "-h")) {
                fputs(cli_commands[i].help, stdout);
                return 0;
            }
        }
        return cli_commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "leanprop: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
