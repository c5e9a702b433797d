/* The config loader: precedence, YAML sections, and what errors say. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../config/mt_config.h"
#include "mt_test.h"

static char err[4096];

static int apply(struct mt_config *cfg, const char *yaml)
{
    err[0] = '\0';
    if (mt_config_defaults(cfg, err, sizeof err) != 0)
        return -2;
    return mt_config_apply_yaml(cfg, yaml, strlen(yaml), "t.yaml", err, sizeof err);
}

#define CHECK_ERR_HAS(s)                                                                 \
    do {                                                                                 \
        if (!strstr(err, (s))) {                                                         \
            fprintf(stderr, "    %s:%d: error \"%s\" lacks \"%s\"\n", __FILE__, __LINE__, \
                    err, (s));                                                           \
            mt_failed_checks++;                                                          \
        }                                                                                \
    } while (0)

MT_TEST(design_example_loads)
{
    struct mt_config c;
    const char *y = "project: mnist\n"
                    "tags: [baseline, lr-sweep]\n"
                    "rules:\n"
                    "  - name: epoch\n"
                    "    stream: stdout\n"
                    "    pattern: '^Epoch (?<epoch>\\d+)/\\d+ .*loss: (?<loss>\\S+) - acc: "
                    "(?<acc>\\S+)'\n"
                    "    axes: [epoch]\n"
                    "  - preset: keyvalue\n"
                    "files:\n"
                    "  - glob: 'logs/*.csv'\n"
                    "    format: csv\n"
                    "metrics:\n"
                    "  train_acc: { step_metric: batch, summary: max }\n"
                    "  val_acc:   { step_metric: epoch, summary: [max, last], goal: maximize }\n"
                    "system: { interval: 2s, window: 15s }\n"
                    "code:   { disabled: false, ignore_globs: ['*.patch'] }\n"
                    "upload: { backend: mlflow, url: http://127.0.0.1:5000 }\n";
    MT_CHECK(apply(&c, y) == 0);
    MT_CHECK_STR(err, "");
    MT_CHECK_STR(c.project, "mnist");
    MT_CHECK_STR(c.tags, "baseline,lr-sweep");
    MT_CHECK_STR(c.ignore_globs, "*.patch");
    MT_CHECK_STR(c.upload_backend, "mlflow");
    MT_CHECK_NUM(c.system_interval, 2);
    MT_CHECK(c.nrules == 3);
    MT_CHECK_STR(c.rules[0].name, "epoch");
    MT_CHECK_STR(c.rules[0].axes[0], "epoch");
    MT_CHECK(c.rules[0].axes[1] == NULL);
    MT_CHECK_STR(c.rules[1].preset, "keyvalue");
    MT_CHECK_STR(c.rules[2].stream, "file:logs/*.csv");
    MT_CHECK_STR(c.rules[2].preset, "csv");
    MT_CHECK(c.rules[2].from_files == 1);
    MT_CHECK_STR(c.watch_globs[0], "logs/*.csv");
    MT_CHECK(c.nmetrics == 2);
    MT_CHECK(c.metrics[0].summary == MT_SUM_MAX);
    MT_CHECK(c.metrics[1].summary == (MT_SUM_MAX | MT_SUM_LAST));
    MT_CHECK(c.metrics[1].goal == MT_GOAL_MAX);
    MT_CHECK_STR(c.metrics[1].step_metric, "epoch");
    mt_config_free(&c);
}

MT_TEST(unknown_key_lists_valid_ones)
{
    struct mt_config c;
    MT_CHECK(apply(&c, "project: a\nprojet: b\n") == -1);
    CHECK_ERR_HAS("t.yaml:2:1: unknown key \"projet\"");
    CHECK_ERR_HAS("valid keys: dir, project, name");
    CHECK_ERR_HAS("rules, files, metrics");
    mt_config_free(&c);
}

MT_TEST(unknown_nested_key_lists_its_section)
{
    struct mt_config c;
    MT_CHECK(apply(&c, "system:\n  intervl: 2s\n") == -1);
    CHECK_ERR_HAS("t.yaml:2:3: unknown key \"system.intervl\"; valid keys under system: "
                  "interval, window");
    mt_config_free(&c);
}

MT_TEST(bad_duration_names_value_and_allowed)
{
    struct mt_config c;
    MT_CHECK(apply(&c, "system:\n  interval: 2x\n") == -1);
    CHECK_ERR_HAS("t.yaml:2:13: system.interval: bad value \"2x\"; allowed: a duration");
    mt_config_free(&c);
}

MT_TEST(bad_enum_lists_choices)
{
    struct mt_config c;
    MT_CHECK(apply(&c, "mode: sometimes\n") == -1);
    CHECK_ERR_HAS("t.yaml:1:7: mode: bad value \"sometimes\"; allowed: online|offline");
    mt_config_free(&c);
}

MT_TEST(bad_regex_has_caret_under_offset)
{
    struct mt_config c;
    MT_CHECK(apply(&c, "rules:\n  - pattern: 'loss: (?<loss>\\S+'\n") == -1);
    CHECK_ERR_HAS("t.yaml:2:14: rules[0]: pattern: bad regular expression: missing closing "
                  "parenthesis at offset 17");
    CHECK_ERR_HAS("\n    loss: (?<loss>\\S+\n                     ^");
    mt_config_free(&c);
}

MT_TEST(axis_must_be_a_group)
{
    struct mt_config c;
    MT_CHECK(apply(&c, "rules:\n  - pattern: 'e (?<ep>\\d+)'\n    axes: [epoch]\n") == -1);
    CHECK_ERR_HAS("rules[0]: axes: \"epoch\" is not a named group of the pattern");
    mt_config_free(&c);
}

MT_TEST(rule_unknown_key_and_preset)
{
    struct mt_config c;
    MT_CHECK(apply(&c, "rules:\n  - preset: keyvalue\n    streem: stdout\n") == -1);
    CHECK_ERR_HAS("t.yaml:3:5: rules[0]: unknown key \"streem\"; valid keys: name, preset, "
                  "stream");
    mt_config_free(&c);
    MT_CHECK(apply(&c, "rules:\n  - preset: tensorflow\n") == -1);
    CHECK_ERR_HAS("preset: bad value \"tensorflow\"; allowed: keyvalue, json, csv, xgboost");
    mt_config_free(&c);
    MT_CHECK(apply(&c, "rules:\n  - preset: json\n    stream: stdin\n") == -1);
    CHECK_ERR_HAS("stream: bad value \"stdin\"; allowed: stdout, stderr, any, file:GLOB");
    mt_config_free(&c);
}

MT_TEST(metric_summary_and_goal_checked)
{
    struct mt_config c;
    MT_CHECK(apply(&c, "metrics:\n  loss: {summary: median}\n") == -1);
    CHECK_ERR_HAS("metrics.loss.summary: bad value \"median\"; allowed: min, max, mean");
    mt_config_free(&c);
    MT_CHECK(apply(&c, "metrics:\n  loss: {summary: best}\n") == -1);
    CHECK_ERR_HAS("metrics.loss: summary \"best\" needs goal");
    mt_config_free(&c);
    MT_CHECK(apply(&c, "metrics:\n  'val_*': {summary: none}\n") == 0);
    MT_CHECK(c.metrics[0].summary == MT_SUM_NONE);
    MT_CHECK_STR(c.metrics[0].name, "val_*");
    mt_config_free(&c);
}

MT_TEST(yaml_syntax_error_has_position)
{
    struct mt_config c;
    MT_CHECK(apply(&c, "project: [a\n") == -1);
    CHECK_ERR_HAS("t.yaml:2:1: not valid YAML");
    mt_config_free(&c);
    MT_CHECK(apply(&c, "- a\n- b\n") == -1);
    CHECK_ERR_HAS("t.yaml:1:1: the file must be a mapping");
    mt_config_free(&c);
    MT_CHECK(apply(&c, "") == 0);
    mt_config_free(&c);
}

MT_TEST(list_where_value_expected)
{
    struct mt_config c;
    MT_CHECK(apply(&c, "project: [a, b]\n") == -1);
    CHECK_ERR_HAS("t.yaml:1:10: project: bad value: a list is not allowed here");
    mt_config_free(&c);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

MT_TEST(precedence_files_then_wandb_then_metrictap)
{
    char dir[] = "/tmp/mt-config-test-XXXXXX";
    MT_CHECK(mkdtemp(dir) != NULL);
    char home_cfg[512], job[512], path[512];
    snprintf(path, sizeof path, "%s/.config", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/.config/metrictap", dir);
    mkdir(path, 0700);
    snprintf(home_cfg, sizeof home_cfg, "%s/config.yaml", path);
    write_file(home_cfg, "project: from-home\nnotes: home-notes\ngroup: home-group\n");
    snprintf(job, sizeof job, "%s/job.yaml", dir);
    write_file(job, "project: from-job\ngroup: job-group\n");
    char e_home[600], e_cfg[600];
    snprintf(e_home, sizeof e_home, "HOME=%s", dir);
    snprintf(e_cfg, sizeof e_cfg, "METRICTAP_CONFIG=%s", job);

    struct mt_config c;
    char *env1[] = { e_home, NULL };
    char cwd[4096];
    MT_CHECK(getcwd(cwd, sizeof cwd) != NULL);
    MT_CHECK(chdir(dir) == 0); /* no ./metrictap.yaml here */
    MT_CHECK(mt_config_load(&c, env1, err, sizeof err) == 0);
    MT_CHECK_STR(c.project, "from-home");
    mt_config_free(&c);

    char *env2[] = { e_home, e_cfg, NULL };
    MT_CHECK(mt_config_load(&c, env2, err, sizeof err) == 0);
    MT_CHECK_STR(c.project, "from-job");
    MT_CHECK_STR(c.notes, "home-notes");
    MT_CHECK_STR(c.group, "job-group");
    mt_config_free(&c);

    char *env3[] = { e_home, e_cfg, "WANDB_PROJECT=from-wandb", NULL };
    MT_CHECK(mt_config_load(&c, env3, err, sizeof err) == 0);
    MT_CHECK_STR(c.project, "from-wandb");
    mt_config_free(&c);

    char *env4[] = { e_home, e_cfg, "WANDB_PROJECT=from-wandb", "METRICTAP_PROJECT=from-var",
                     NULL };
    MT_CHECK(mt_config_load(&c, env4, err, sizeof err) == 0);
    MT_CHECK_STR(c.project, "from-var");
    mt_config_free(&c);

    /* ./metrictap.yaml is used when no --config is given */
    snprintf(path, sizeof path, "%s/metrictap.yaml", dir);
    write_file(path, "project: from-cwd\n");
    MT_CHECK(mt_config_load(&c, env1, err, sizeof err) == 0);
    MT_CHECK_STR(c.project, "from-cwd");
    mt_config_free(&c);

    /* a missing --config file is an error, not a silent default */
    char *env5[] = { e_home, "METRICTAP_CONFIG=/nonexistent/x.yaml", NULL };
    MT_CHECK(mt_config_load(&c, env5, err, sizeof err) == -1);
    CHECK_ERR_HAS("config file /nonexistent/x.yaml: No such file or directory");
    mt_config_free(&c);

    /* a bad home file names itself */
    write_file(home_cfg, "system: {window: forever}\n");
    MT_CHECK(mt_config_load(&c, env1, err, sizeof err) == -1);
    CHECK_ERR_HAS("config.yaml:1:18: system.window: bad value \"forever\"");
    mt_config_free(&c);

    /* leave nothing in /tmp (one directory per run of the suite, before) */
    MT_CHECK(chdir(cwd) == 0);
    unlink(home_cfg);
    unlink(job);
    snprintf(path, sizeof path, "%s/metrictap.yaml", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/.config/metrictap", dir);
    rmdir(path);
    snprintf(path, sizeof path, "%s/.config", dir);
    rmdir(path);
    MT_CHECK(rmdir(dir) == 0);
}

/* Found by fuzz_config: 68 files: entries loaded, then the parser refused
 * them ("more than 64 rules") with no file:line. */
MT_TEST(too_many_rules_is_a_config_error)
{
    struct mt_config c;
    static char y[16384];
    size_t n = (size_t)snprintf(y, sizeof y, "files:\n");
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(y + n, sizeof y - n, "  - glob: '*.csv'\n");
    MT_CHECK(apply(&c, y) == -1);
    /* Every trainer's preset is compiled beside the rules (MT_RULES_RESERVED). */
    CHECK_ERR_HAS("t.yaml:194:5: files[192]: too many rules: at most 192 patterns");
    mt_config_free(&c);
    MT_CHECK(apply(&c, "rules:\n  - preset: svm-train\n  - preset: keyvalue\n") == 0);
    mt_config_free(&c);
}

MT_TEST(summary_names)
{
    char out[64];
    mt_config_summary_names(MT_SUM_MAX | MT_SUM_LAST, out, sizeof out);
    MT_CHECK_STR(out, "last,max");
}

int main(void)
{
    return mt_test_main();
}
