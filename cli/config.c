/* metrictap config [--help] [-c FILE]
 *
 * --help prints every key from the config table (type, default, variable,
 * what it does) and the file-only sections; without it, loads the config the
 * way a run would and prints the values in force, or the error (exit 2). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../config/mt_config.h"
#include "mt_cli.h"

static void print_sections(void)
{
    puts("\nsections only a file holds (--config FILE, ./metrictap.yaml,\n"
         "~/.config/metrictap/config.yaml):\n"
         "  rules:    list of {name, stream, pattern, axes, config, tags, text, repeat,\n"
         "            continue} or {preset, stream}; stream is stdout, stderr, any or\n"
         "            file:GLOB; named groups become metrics, `step` and axes: step axes,\n"
         "            `key`/`value` name a metric by the text matched\n"
         "  files:    list of {glob, format: csv|json|keyvalue|lines}: files to tail\n"
         "  metrics:  NAME-or-GLOB: {step_metric: AXIS, summary: [min, max, mean, first,\n"
         "            last, best] or none, goal: minimize|maximize}\n"
         "\nprecedence, highest first: command-line flags, METRICTAP_* variables, the\n"
         "WANDB_* variable of the same meaning, --config FILE or ./metrictap.yaml,\n"
         "~/.config/metrictap/config.yaml, built-in defaults.");
}

int mt_cmd_config(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            puts("usage: metrictap config [-c FILE] [--help]\n\nkeys (YAML key, then "
                 "its variable):");
            mt_config_print_help(stdout);
            print_sections();
            return 0;
        }
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
            setenv("METRICTAP_CONFIG", argv[++i], 1);
        else {
            fprintf(stderr, "usage: metrictap config [-c FILE] [--help]\n");
            return 2;
        }
    }
    struct mt_config cfg;
    mt_cli_load_config(&cfg); /* prints the error and exits 2 */
    for (const struct mt_config_key *k = mt_config_keys; k->key; k++) {
        const void *base = (const char *)&cfg + k->offset;
        switch (k->type) {
        case MT_CFG_BOOL:
            printf("%-22s %s\n", k->key, *(const int *)base ? "true" : "false");
            break;
        case MT_CFG_DURATION:
            printf("%-22s %gs\n", k->key, *(const double *)base);
            break;
        case MT_CFG_SIZE:
            printf("%-22s %llu\n", k->key, (unsigned long long)*(const uint64_t *)base);
            break;
        default:
            printf("%-22s %s\n", k->key, *(char *const *)base ? *(char *const *)base : "");
        }
    }
    printf("%-22s %zu%s%s\n", "rules", cfg.nrules, cfg.config_origin ? " from " : "",
           cfg.config_origin ? cfg.config_origin : "");
    printf("%-22s %zu\n", "metrics", cfg.nmetrics);
    mt_config_free(&cfg);
    return 0;
}
