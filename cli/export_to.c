/* metrictap export --to wandb|tensorboard [RUN... | --all]: writes the same
 * files the live backends write, for runs already in the store (imported
 * logs, runs made before the backend was chosen).  It is sync with a file
 * backend that hands nothing on: the cursor in upload/<backend>.json makes a
 * second export, or an export of a run written live, add only what is
 * missing.  --csv and --json write history rows on stdout instead
 * (export_history.c). */
#include <stdio.h>
#include <string.h>

#include "mt_cli.h"

static int usage(void)
{
    fputs(mt_cli_usage("export"), stderr);
    return 2;
}

int mt_cmd_export_to(int argc, char **argv)
{
    const char *to = NULL;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--csv") == 0 || strcmp(argv[i], "--json") == 0)
            return mt_cli_export_history(argc, argv);
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--to") == 0)
            to = argv[i + 1];
    if (!to) {
        fprintf(stderr, "metrictap: export: give --to wandb, --to tensorboard, --csv or --json\n");
        return usage();
    }
    for (const char *p = to; *p;) {
        size_t n = strcspn(p, ",");
        if (!((n == 5 && strncmp(p, "wandb", 5) == 0) ||
              (n == 11 && strncmp(p, "tensorboard", 11) == 0))) {
            fprintf(stderr, "metrictap: export: --to %s: give wandb or tensorboard (files); "
                            "`metrictap sync --to mlflow` uploads to a server\n", to);
            return 2;
        }
        p += n + (p[n] == ',');
    }
    return mt_cli_sync_main(argc, argv, 1);
}
