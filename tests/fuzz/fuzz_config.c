/* libFuzzer target for the config loader: arbitrary bytes as a YAML file.
 * Loading must either succeed or fail with a message that names the file;
 * a config that loads must compile into rules (mt_parse_create) and parse a
 * few lines. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../config/mt_config.h"
#include "../../parsers/mt_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mt_config cfg;
    char err[4096];
    if (mt_config_defaults(&cfg, err, sizeof err) != 0)
        abort();
    err[0] = '\0';
    int rc = mt_config_apply_yaml(&cfg, (const char *)data, size, "fuzz.yaml", err, sizeof err);
    if (rc != 0 && strncmp(err, "fuzz.yaml", 9) != 0) {
        fprintf(stderr, "error without its source: %s\n", err);
        abort();
    }
    if (rc == 0) {
        if (cfg.line_max > 65536)
            cfg.line_max = 65536;
        struct mt_parse_opts opts = { .cfg = &cfg, .program = "xgboost" };
        struct mt_parse_sink sink = { 0 };
        mt_parse *p = mt_parse_create(&opts, &sink, err, sizeof err);
        if (!p) {
            fprintf(stderr, "a config that loaded did not compile: %s\n", err);
            abort();
        }
        static const char lines[] = "epoch 1\nloss: 0.5 acc=0.7\n[3]\ttest-rmse:0.1\n"
                                    "{\"a\": {\"b\": 2}}\nProgress: 50.0% lr: 0.1\r\n";
        mt_parse_bytes(p, 1, 1, 1.0, lines, sizeof lines - 1);
        mt_parse_file_bytes(p, "logs/a.csv", 1.0, "x,y\n1,2\n", 8);
        mt_parse_flush(p, 2.0);
        free(mt_parse_summary_json(p));
        mt_parse_destroy(p);
    }
    mt_config_free(&cfg);
    return 0;
}
