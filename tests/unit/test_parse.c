/* mt_parse with rules: file sources, command-line config, captured config
 * and tags, summary modes across a resume, the match limit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/mt_buf.h"
#include "../../config/mt_config.h"
#include "../../parsers/mt_parse.h"
#include "mt_test.h"

struct got {
    struct mt_buf rows;
    int nrows;
    char tags[256];
};

static void on_row(void *ctx, const char *json, size_t len)
{
    struct got *g = ctx;
    mt_buf_add(&g->rows, json, len);
    mt_buf_addc(&g->rows, '\n');
    g->nrows++;
}

static void on_tag(void *ctx, const char *tag)
{
    struct got *g = ctx;
    size_t n = strlen(g->tags);
    snprintf(g->tags + n, sizeof g->tags - n, "%s;", tag);
}

static mt_parse *make(struct mt_config *cfg, const char *yaml, struct got *g, const char *program)
{
    char err[2048];
    memset(g, 0, sizeof *g);
    mt_buf_init(&g->rows, 1 << 20);
    MT_CHECK(mt_config_defaults(cfg, err, sizeof err) == 0);
    if (yaml && mt_config_apply_yaml(cfg, yaml, strlen(yaml), "t.yaml", err, sizeof err) != 0) {
        fprintf(stderr, "    %s\n", err);
        mt_failed_checks++;
    }
    struct mt_parse_opts o = { .cfg = cfg, .program = program, .start_unix = 100 };
    struct mt_parse_sink s = { .ctx = g, .row = on_row, .tag = on_tag };
    mt_parse *p = mt_parse_create(&o, &s, err, sizeof err);
    MT_CHECK(p != NULL);
    return p;
}

MT_TEST(csv_files_keep_their_own_header_and_only_match_their_glob)
{
    struct mt_config cfg;
    struct got g;
    mt_parse *p = make(&cfg, "files:\n  - {glob: 'logs/*.csv', format: csv}\n", &g, "train");
    MT_CHECK_STR(cfg.files_watch, "logs/*.csv");
    mt_parse_file_bytes(p, "/run/logs/a.csv", 101, "step,loss\n1,0.5\n", 16);
    mt_parse_file_bytes(p, "/run/logs/b.csv", 101, "epoch,acc\n", 10);
    mt_parse_file_bytes(p, "/run/logs/a.csv", 102, "2,0.25\n", 7);
    mt_parse_file_bytes(p, "/run/logs/b.csv", 102, "3,0.9\n", 6);
    /* not a csv: the default presets read it */
    mt_parse_file_bytes(p, "/run/other.txt", 103, "lr: 0.5\n", 8);
    mt_parse_flush(p, 104);
    MT_CHECK_STR(g.rows.data,
                 "{\"_step\":0,\"_runtime\":1.000,\"_timestamp\":101.000000,\"step\":1,\"loss\":0.5}\n"
                 "{\"_step\":1,\"_runtime\":3.000,\"_timestamp\":103.000000,\"step\":2,\"epoch\":3,"
                 "\"loss\":0.25,\"acc\":0.9,\"lr\":0.5}\n");
    mt_parse_destroy(p);
    mt_config_free(&cfg);
    mt_buf_free(&g.rows);
}

MT_TEST(files_section_and_files_watch_mapping_both_load)
{
    struct mt_config cfg;
    char err[1024];
    MT_CHECK(mt_config_defaults(&cfg, err, sizeof err) == 0);
    const char *y = "files:\n  watch: ['out/*.log', 'm.csv']\n";
    MT_CHECK(mt_config_apply_yaml(&cfg, y, strlen(y), "t.yaml", err, sizeof err) == 0);
    MT_CHECK_STR(cfg.files_watch, "out/*.log,m.csv");
    mt_config_free(&cfg);
}

MT_TEST(command_line_becomes_typed_config)
{
    char *argv[] = { "fasttext", "supervised", "-input", "d.txt", "-lr", "0.5", "-epoch", "25",
                     "--verbose", "--no-cache", "--name=run one", "eta=0.3", "--lr-decay",
                     "-1e-3", "--api-token", "abc", "--", "--after", "1", NULL };
    char *j = mt_argv_config_json(19, argv);
    MT_CHECK_STR(j, "{\"input\":\"d.txt\",\"lr\":0.5,\"epoch\":25,\"verbose\":true,"
                    "\"no_cache\":true,\"name\":\"run one\",\"eta\":0.3,\"lr_decay\":-1e-3,"
                    "\"api_token\":\"[redacted]\"}");
    free(j);
}

MT_TEST(rules_capture_config_and_tags_and_command_line_is_config)
{
    struct mt_config cfg;
    struct got g;
    char err[1024];
    memset(&g, 0, sizeof g);
    mt_buf_init(&g.rows, 1 << 20);
    MT_CHECK(mt_config_defaults(&cfg, err, sizeof err) == 0);
    const char *y = "rules:\n  - pattern: 'opt=(?<opt>\\w+) bs=(?<bs>\\d+) phase=(?<phase>\\w+)'\n"
                    "    config: [opt, bs]\n    tags: [phase]\n  - preset: keyvalue\n";
    MT_CHECK(mt_config_apply_yaml(&cfg, y, strlen(y), "t.yaml", err, sizeof err) == 0);
    char *argv[] = { "train", "--lr", "0.1", "--bs", "8", NULL };
    struct mt_parse_opts o = { .cfg = &cfg, .argv = argv, .argc = 5 };
    struct mt_parse_sink s = { .ctx = &g, .row = on_row, .tag = on_tag };
    mt_parse *p = mt_parse_create(&o, &s, err, sizeof err);
    const char *out = "opt=adam bs=32 phase=warmup\nloss: 1\nopt=adam bs=32 phase=warmup\n";
    mt_parse_bytes(p, 1, MT_PARSE_STDOUT, 1, out, strlen(out));
    char *c = mt_parse_config_json(p), *t = mt_parse_tags_json(p);
    MT_CHECK_STR(c, "{\"lr\":0.1,\"bs\":32,\"opt\":\"adam\"}");
    MT_CHECK_STR(t, "[\"warmup\"]");
    MT_CHECK_STR(g.tags, "warmup;");
    free(c);
    free(t);
    mt_parse_destroy(p);
    mt_config_free(&cfg);
    mt_buf_free(&g.rows);
}

MT_TEST(summary_statistics_survive_a_resume)
{
    struct mt_config cfg;
    struct got g;
    const char *y = "metrics:\n  loss: {summary: [min, last]}\n  'acc*': {summary: best, goal: "
                    "maximize}\n";
    mt_parse *p = make(&cfg, y, &g, NULL);
    const char *out = "loss: 0.5 acc: 0.7\nloss: 0.2 acc: 0.9\nloss: 0.4 acc: 0.8\n";
    mt_parse_bytes(p, 1, MT_PARSE_STDOUT, 101, out, strlen(out));
    mt_parse_flush(p, 102);
    char *s = mt_parse_summary_json(p);
    MT_CHECK_STR(s, "{\"loss\":0.4,\"loss.min\":0.2,\"acc.best\":0.9,\"_step\":2}");
    mt_parse_destroy(p);
    /* a resumed run starts from that summary */
    struct got g2;
    struct mt_config cfg2;
    mt_parse *q = make(&cfg2, y, &g2, NULL);
    MT_CHECK(mt_parse_restore_summary(q, s) == 0);
    mt_parse_bytes(q, 1, MT_PARSE_STDOUT, 103, "loss: 0.3 acc: 0.85\n", 20);
    mt_parse_flush(q, 104);
    char *s2 = mt_parse_summary_json(q);
    MT_CHECK_STR(s2, "{\"loss\":0.3,\"loss.min\":0.2,\"acc.best\":0.9,\"_step\":0}");
    free(s);
    free(s2);
    mt_parse_destroy(q);
    mt_config_free(&cfg);
    mt_config_free(&cfg2);
    mt_buf_free(&g.rows);
    mt_buf_free(&g2.rows);
}

MT_TEST(pathological_pattern_hits_the_match_limit_and_is_counted)
{
    struct mt_config cfg;
    struct got g;
    mt_parse *p = make(&cfg, "rules:\n  - pattern: '^(a+)+$(?<x>\\d)'\n", &g, NULL);
    char line[4096];
    memset(line, 'a', 4000);
    line[4000] = 'b';
    line[4001] = '\n';
    mt_parse_bytes(p, 1, MT_PARSE_STDOUT, 101, line, 4002);
    struct mt_parse_stats st;
    mt_parse_stats(p, &st);
    MT_CHECK(st.limit_hits == 1);
    MT_CHECK(st.lines == 1);
    mt_parse_destroy(p);
    mt_config_free(&cfg);
    mt_buf_free(&g.rows);
}

MT_TEST(program_name_picks_the_preset)
{
    struct mt_config cfg;
    struct got g;
    mt_parse *p = make(&cfg, NULL, &g, "/usr/bin/svm-train");
    MT_CHECK_STR(mt_parse_rules(p), "svm-train,hf,keras,keyvalue");
    mt_parse_destroy(p);
    mt_config_free(&cfg);
    mt_buf_free(&g.rows);
    p = make(&cfg, "rules:\n  - preset: darknet\n", &g, "xgboost");
    MT_CHECK_STR(mt_parse_rules(p), "darknet"); /* configured rules win */
    mt_parse_destroy(p);
    mt_config_free(&cfg);
    mt_buf_free(&g.rows);
}

int main(void)
{
    return mt_test_main();
}
