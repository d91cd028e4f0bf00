/* leanprop command-line entry: dispatches to the command table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* libgomp's idle workers spin after each parallel region and steal the cores
 * OpenBLAS's own threads need (measured: about 2x slower training steps on 2
 * cores). libgomp reads OMP_WAIT_POLICY before main runs, so set it and
 * re-execute once unless the user chose a policy. */
static void ensure_passive_openmp(char **argv)
{
    if (getenv("OMP_WAIT_POLICY") || getenv("LEANPROP_NO_REEXEC")) return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    setenv("LEANPROP_NO_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the default policy */
}

int main(int argc, char **argv)
{
    ensure_passive_openmp(argv);
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
