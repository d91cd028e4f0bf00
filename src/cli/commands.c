#include "cli/commands.h"

#include <stdio.h>

#include "leanprop/status.h"

int cli_fail(const char *what)
{
    fprintf(stderr, "leanprop: %s%s%s\n", what ? what : "", what && *what ? ": " : "", lp_error_message());
    return 1;
}

const cli_command cli_commands[] = {
    {"info", "show version, threads, BLAS and a memory self-check",
     "usage: leanprop info [--threads N]\n"
     "  Prints the version, thread count, OpenBLAS configuration, the measured\n"
     "  sgemm rate of this machine and the accounting allocator's report.\n"
     "  --threads N   threads for OpenMP and OpenBLAS (default: $LEANPROP_THREADS or all CPUs)\n",
     cmd_info},
};
const int cli_n_commands = (int)(sizeof cli_commands / sizeof cli_commands[0]);
