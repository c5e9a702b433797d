/* metrictap: the command-line tool.  Each subcommand is one function in its
 * own file; add a line to the table to add a command. */
#include <stdio.h>
#include <string.h>

#include "mt_cli.h"

struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
};

static const struct command commands[] = {
    { "run", mt_cmd_run, "run a program and track it: metrictap run [options] -- CMD ARGS..." },
    { "ls", mt_cmd_ls, "the runs table: metrictap ls [--project P] [--tag T] [--filter EXPR]"
                       " [--sort [-]COL] [--columns C,...] [--json|--csv]" },
    { "show", mt_cmd_show, "one run with charts: metrictap show RUN [--metric M] [--compare RUN2...]" },
    { "report", mt_cmd_report, "an HTML report: metrictap report [ls filters] -o report.html" },
    { "tag", mt_cmd_tag, "add or remove tags: metrictap tag RUN +x -y" },
    { "rename", mt_cmd_rename, "rename a run: metrictap rename RUN NAME" },
    { "rm", mt_cmd_rm, "delete runs and their files: metrictap rm RUN... [--yes]" },
    { "restore", mt_cmd_restore, "recreate a run's code: metrictap restore RUN [--dir D]" },
    { "reindex", mt_cmd_reindex, "rebuild the index from the run directories" },
    { "recover", mt_cmd_recover, "finish runs whose agent died: metrictap recover RUN... | --all" },
    { "sync", mt_cmd_sync, "upload what runs kept: metrictap sync [-j N] RUN... | --all" },
    { "export", mt_cmd_export_to, "write runs of the store as W&B or TensorBoard files: "
                                  "metrictap export --to wandb|tensorboard RUN... | --all" },
    { "parse", mt_cmd_parse, "try extraction rules on a log: metrictap parse [-c FILE] LOG" },
    { "import", mt_cmd_import, "turn a log into a run: metrictap import [-c FILE] LOG" },
    { "stack", mt_cmd_stack, "native stacks of a live run: metrictap stack RUN [--json] "
                             "[--watch SECONDS [--count N]] | --pid PID" },
    { "config", mt_cmd_config, "check the config, or list its keys: metrictap config --help" },
    { NULL, NULL, NULL },
};

static int usage(FILE *f)
{
    fprintf(f, "usage: metrictap COMMAND [ARGS]\n\ncommands:\n");
    for (const struct command *c = commands; c->name; c++)
        fprintf(f, "  %-8s %s\n", c->name, c->help);
    return f == stderr ? 2 : 0;
}

/* CMD --help anywhere before "--", or -h right after CMD (later a -h may be
 * a tag to remove).  run's command may start without "--" at its first
 * word, whose own --help is the program's.  config prints its keys itself. */
static int wants_help(int argc, char **argv)
{
    int is_run = strcmp(argv[1], "run") == 0;
    if (strcmp(argv[1], "config") == 0)
        return 0;
    for (int i = 2; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--help") == 0 || (i == 2 && strcmp(argv[i], "-h") == 0))
            return 1;
        if (is_run && argv[i][0] != '-')
            return 0;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr);
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0 ||
        strcmp(argv[1], "version") == 0) {
        printf("metrictap %s\n", MT_VERSION);
        return 0;
    }
    if (argc > 2 && strcmp(argv[1], "help") == 0 && strcmp(argv[2], "config") != 0 &&
        mt_cli_usage(argv[2])) {
        fputs(mt_cli_usage(argv[2]), stdout);
        return 0;
    }
    if (wants_help(argc, argv) && mt_cli_usage(argv[1])) {
        fputs(mt_cli_usage(argv[1]), stdout);
        return 0;
    }
    if (argc > 2 && strcmp(argv[1], "help") == 0 && strcmp(argv[2], "config") == 0)
        return mt_cmd_config(2, (char *[]){ argv[2], "--help", NULL });
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0)
        return usage(stdout);
    for (const struct command *c = commands; c->name; c++)
        if (strcmp(argv[1], c->name) == 0)
            return c->fn(argc - 1, argv + 1);
    fprintf(stderr, "metrictap: unknown command \"%s\"\n", argv[1]);
    return usage(stderr);
}
