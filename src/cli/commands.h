/* The CLI's command table. Each command is `int cmd_NAME(int argc, char **argv)`
 * (argv[0] = command name) returning the process exit code, with a help text.
 * To add a command: declare it here and add a row in commands.c. */
#ifndef LEANPROP_CLI_COMMANDS_H
#define LEANPROP_CLI_COMMANDS_H

typedef struct {
    const char *name;
    const char *summary;
    const char *help;   /* full text for `leanprop NAME --help` */
    int (*run)(int argc, char **argv);
} cli_command;

extern const cli_command cli_commands[];
extern const int cli_n_commands;

int cmd_info(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_memplan(int argc, char **argv);
int cmd_gnn(int argc, char **argv);
int cmd_finetune(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);

/* Print "leanprop: <status name>: <message>" and return exit code 1. */
int cli_fail(const char *what);

#endif
