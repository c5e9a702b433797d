/* The usage of each command: what `metrictap CMD --help` prints on stdout
 * (main.c) and what a command prints on stderr when it is misused. */
#include <stdio.h>
#include <string.h>

#include "mt_cli.h"
#include "select.h"

#define RUN_ARG                                                                               \
    "  RUN: a run id, a unique id prefix, a unique name, latest or -1 (the newest),\n"        \
    "  -2, -3... counting back; --project P looks only in project P\n"

static const struct {
    const char *cmd, *text;
} USAGE[] = {
    { "run",
      "usage: metrictap run [--project P] [--name N] [--tags a,b] [--group G]\n"
      "                     [--job-type J] [--notes TEXT] [--id ID]\n"
      "                     [--resume allow|must|never] [-c FILE] [--dir D]\n"
      "                     [--mode online|offline] [--watch GLOB]... [--strict] [-v]\n"
      "                     [--program NAME (the trainer whose preset parses the output)]\n"
      "                     [--to mlflow,tensorboard,wandb] [--tensorboard-dir D]\n"
      "                     [--wait-upload (return once the upload is done or failed)]\n"
      "                     -- CMD [ARGS...]\n" },
    { "ls", NULL /* built from mt_select_usage */ },
    { "stack",
      "usage: metrictap stack [--project P] RUN [--json] [--watch SECONDS [--count N]]\n"
      "       metrictap stack --pid PID [--json] [--watch SECONDS [--count N]]\n"
      "  every thread of every live process of RUN: its state and frames, innermost\n"
      "  first; --watch repeats and prints the threads whose stack changed\n" RUN_ARG },
    { "show",
      "usage: metrictap show [--project P] RUN [--metric NAME]... [--compare RUN2 ...]\n"
      "                      [--x AXIS] [--lines N] [--follow]\n"
      "  --compare: up to 10 runs side by side, differing keys first; --x: draw\n"
      "  against another axis (_step, _runtime, epoch...); --follow: redraw as rows\n"
      "  arrive, until the run ends\n" RUN_ARG },
    { "report", NULL },
    { "tag", "usage: metrictap tag [--project P] RUN +TAG|-TAG...\n" RUN_ARG },
    { "rename", "usage: metrictap rename [--project P] RUN NAME\n" RUN_ARG },
    { "rm", "usage: metrictap rm [--project P] RUN... [--yes] [--force]\n" RUN_ARG },
    { "restore",
      "usage: metrictap restore [--project P] RUN [--dir D]\n"
      "  checks out RUN's git commit on a new branch metrictap/<id> and applies its\n"
      "  diff.patch; with --dir, in a new worktree at D instead of the current tree\n" RUN_ARG },
    { "reindex", "usage: metrictap reindex\n  rebuilds index.sqlite from the run directories\n" },
    { "recover",
      "usage: metrictap recover [--project P] RUN... | --all\n"
      "  finishes runs whose agent is gone: parses what their journal holds\n"
      "  and records the state it proves\n" RUN_ARG },
    { "sync",
      "usage: metrictap sync [--to mlflow,tensorboard,wandb] [-j N] [-q] [--project P]\n"
      "                      RUN... | --all\n"
      "  RUN may also be PROJECT/ID or a run directory\n" RUN_ARG },
    { "export",
      "usage: metrictap export --to wandb|tensorboard [-j N] [-q] [--project P] RUN... | --all\n"
      "       metrictap export --csv|--json [--columns KEY,...] [--project P] RUN...\n"
      "  --to: W&B runs go to $WANDB_DIR/wandb/ (wandb.dir), TensorBoard runs to\n"
      "  tensorboard.logdir (./tensorboard); `wandb sync` uploads the former\n"
      "  --csv: the runs' history rows as CSV on stdout (run id, axes, values);\n"
      "  --json: the same as JSON lines\n" RUN_ARG },
    { "parse",
      "usage: metrictap parse [-c rules.yaml] [--program NAME] [--json|--table|--stats] FILE|-\n" },
    { "import",
      "usage: metrictap import [-c rules.yaml] [--program NAME] [--project P] [--name N]\n"
      "                        [--tags a,b] LOGFILE\n" },
    { "config", "usage: metrictap config [-c FILE] [--help]\n" },
};

const char *mt_cli_usage(const char *cmd)
{
    static char built[2048];
    if (strcmp(cmd, "ls") == 0) {
        snprintf(built, sizeof built, "usage: metrictap ls %s\n    [--group-by config.KEY]"
                 " [--json | --csv]\n", mt_select_usage());
        return built;
    }
    if (strcmp(cmd, "report") == 0) {
        snprintf(built, sizeof built, "usage: metrictap report %s\n    [--metric M]... [--x AXIS]"
                 " [--parallel summary.KEY] [--title T] -o report.html\n", mt_select_usage());
        return built;
    }
    for (size_t i = 0; i < sizeof USAGE / sizeof *USAGE; i++)
        if (strcmp(USAGE[i].cmd, cmd) == 0 && USAGE[i].text)
            return USAGE[i].text;
    return NULL;
}
