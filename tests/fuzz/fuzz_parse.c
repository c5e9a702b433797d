/* libFuzzer target for the line parser: arbitrary bytes through line
 * assembly (\r, CRLF, ANSI, the length cap), every preset and a few custom
 * rules, the step logic and the JSON it writes.  The first input byte picks
 * the program (hence the presets) and how the bytes are cut into writes;
 * every row and the summary must be valid JSON. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../config/mt_config.h"
#include "../../parsers/mt_parse.h"

static struct mt_config cfg_presets, cfg_rules;
static int ready;

static void check_json(const char *json, size_t len)
{
    cJSON *o = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(o))
        abort(); /* a row or a summary that is not a JSON object */
    cJSON_Delete(o);
}

static void on_row(void *ctx, const char *json, size_t len)
{
    (void)ctx;
    check_json(json, len);
}

static void setup(void)
{
    char err[4096];
    const char *rules = "capture: {line_max: 512}\n"
                        "rules:\n"
                        "  - pattern: '^(?<timestamp>\\S+) it (?<it>\\d+) (?<key>\\w+)=(?<value>\\S+)'\n"
                        "    axes: [it]\n"
                        "  - pattern: '(?:^\\[(?<iteration>\\d+)\\]|\\G)\\t(?<key>[^:]+):(?<value>\\S+)'\n"
                        "    repeat: true\n"
                        "    continue: true\n"
                        "  - pattern: 'lr=(?<lr>\\S+) tag=(?<t>\\w+) s=(?<s>\\w+) (?<x>(a|b)*c)'\n"
                        "    config: [lr]\n"
                        "    tags: [t]\n"
                        "    text: [s]\n"
                        "  - preset: json\n"
                        "  - {preset: csv, stream: stderr}\n"
                        "  - preset: keyvalue\n"
                        "metrics:\n"
                        "  '*loss*': {summary: [min, max, mean, first, last]}\n"
                        "  'acc*': {summary: best, goal: maximize, step_metric: epoch}\n";
    if (mt_config_defaults(&cfg_presets, err, sizeof err) != 0 ||
        mt_config_defaults(&cfg_rules, err, sizeof err) != 0 ||
        mt_config_apply_yaml(&cfg_rules, rules, strlen(rules), "fuzz", err, sizeof err) != 0) {
        fprintf(stderr, "fuzz setup: %s\n", err);
        abort();
    }
    cfg_presets.line_max = 1024;
    ready = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready)
        setup();
    if (size < 1)
        return 0;
    static const char *programs[] = { "xgboost", "lightgbm", "fasttext", "svm-train",
                                      "liblinear-train", "darknet", "python3", NULL };
    uint8_t sel = data[0];
    data++, size--;
    int custom = sel & 0x80;
    char *argv[] = { "train", "--lr", "0.1", "-epoch", "5", "x=1", "--flag", NULL };
    struct mt_parse_opts opts = {
        .cfg = custom ? &cfg_rules : &cfg_presets,
        .program = programs[sel % 8],
        .start_unix = 1700000000.0,
        .argv = argv,
        .argc = 7,
        .log_time = sel & 0x40,
    };
    struct mt_parse_sink sink = { .row = on_row };
    char err[1024];
    mt_parse *p = mt_parse_create(&opts, &sink, err, sizeof err);
    if (!p)
        abort();
    size_t chunk = 1 + (sel & 0x1f) * 7;
    for (size_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        int stream = (off / chunk) % 3 == 2 ? 2 : 1;
        mt_parse_bytes(p, 100 + (uint32_t)((off / chunk) % 2), stream, 1700000000.0 + off,
                       (const char *)data + off, n);
        if (sel & 0x20)
            mt_parse_file_bytes(p, "logs/x.csv", 1700000000.0, (const char *)data + off, n);
    }
    mt_parse_close_pid(p, 100, 1700000001.0);
    mt_parse_close_pid(p, 101, 1700000001.0);
    mt_parse_flush(p, 1700000002.0);
    char *s = mt_parse_summary_json(p);
    check_json(s, strlen(s));
    if (mt_parse_restore_summary(p, s) != 0)
        abort();
    free(s);
    char *j = mt_parse_metrics_json(p);
    check_json(j, strlen(j));
    free(j);
    j = mt_parse_config_json(p);
    check_json(j, strlen(j));
    free(j);
    j = mt_parse_tags_json(p);
    free(j);
    mt_parse_destroy(p);
    return 0;
}
