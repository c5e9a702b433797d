/* The trainer presets: the rules they take, the fold axis of a
 * cross-validation as the trainer's command line tells it, results that go
 * to the summary only.  The printed lines are real svm-train and
 * liblinear-train output (libsvm 3.24, liblinear 2.3); tests/golden and
 * tests/e2e/test_trainers.py hold more. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/mt_buf.h"
#include "../../config/mt_config.h"
#include "../../parsers/mt_parse.h"
#include "../../parsers/mt_presets.h"
#include "../../parsers/mt_rules.h"
#include "mt_test.h"

struct got {
    struct mt_buf rows;
    const char *program;
    char **argv; /* NULL: the command line is not known */
    int argc;
};

static void on_row(void *ctx, const char *json, size_t len)
{
    struct got *g = ctx;
    mt_buf_add(&g->rows, json, len);
    mt_buf_addc(&g->rows, '\n');
}

static const char *program_of(void *ctx, uint32_t pid)
{
    (void)pid;
    return ((struct got *)ctx)->program;
}

static char *const *argv_of(void *ctx, uint32_t pid, int *argc)
{
    struct got *g = ctx;
    (void)pid;
    *argc = g->argc;
    return g->argv;
}

/* The rows (one per line) and the summary of `out` printed by `program`
 * run as `argv`; caller frees both. */
static char *parse_output(const char *program, char **argv, const char *out, char **summary)
{
    struct mt_config cfg;
    char err[1024];
    struct got g = { .program = program, .argv = argv };
    while (argv && argv[g.argc])
        g.argc++;
    mt_buf_init(&g.rows, 1 << 20);
    MT_CHECK(mt_config_defaults(&cfg, err, sizeof err) == 0);
    struct mt_parse_opts o = { .cfg = &cfg, .start_unix = 100 };
    struct mt_parse_sink s = { .ctx = &g, .row = on_row, .program_of = program_of,
                               .argv_of = argv_of };
    mt_parse *p = mt_parse_create(&o, &s, err, sizeof err);
    MT_CHECK(p != NULL);
    mt_parse_bytes(p, 7, MT_PARSE_STDOUT, 101, out, strlen(out));
    mt_parse_close_pid(p, 7, 102);
    mt_parse_flush(p, 102);
    *summary = mt_parse_summary_json(p);
    mt_parse_destroy(p);
    mt_config_free(&cfg);
    mt_buf_addc(&g.rows, '\0');
    return g.rows.data;
}

/* How many rows hold `"fold":N` for N = 1, 2, ...: "3,3,3" */
static void folds_of(const char *rows, char *out, size_t size)
{
    int count[16] = { 0 }, max = 0;
    for (const char *r = rows; (r = strstr(r, "\"fold\":")); r++) {
        int n = atoi(r + 7);
        if (n > 0 && n < 16)
            count[n]++, max = n > max ? n : max;
    }
    out[0] = '\0';
    for (int n = 1; n <= max; n++)
        snprintf(out + strlen(out), size - strlen(out), "%s%d", n > 1 ? "," : "", count[n]);
}

/* svm-train -s 3 -v 3 (epsilon-SVR): one training per fold */
static const char svm_regression[] =
    "*\noptimization finished, #iter = 76\nnu = 0.064882\nobj = -6.744822, rho = -1.469194\n"
    "nSV = 19, nBSV = 7\n"
    "*\noptimization finished, #iter = 60\nnu = 0.066765\nobj = -6.901331, rho = -1.475430\n"
    "nSV = 18, nBSV = 10\n"
    "*\noptimization finished, #iter = 106\nnu = 0.065834\nobj = -6.722850, rho = -1.384281\n"
    "nSV = 21, nBSV = 7\n"
    "Cross Validation Mean squared error = 0.00394774\n"
    "Cross Validation Squared correlation coefficient = 0.996882\n";

/* svm-train -v 2 with three classes: three trainings, then Total nSV */
static const char svm_multiclass[] =
    "*\noptimization finished, #iter = 78\nnu = 0.619208\nobj = -63.898185, rho = 0.105875\n"
    "nSV = 89, nBSV = 83\n"
    "*\noptimization finished, #iter = 63\nnu = 0.657973\nobj = -66.677128, rho = -0.044478\n"
    "nSV = 92, nBSV = 88\n"
    "*\noptimization finished, #iter = 37\nnu = 0.298203\nobj = -22.739597, rho = -0.087609\n"
    "nSV = 43, nBSV = 38\nTotal nSV = 162\n"
    "*\noptimization finished, #iter = 56\nnu = 0.616200\nobj = -59.785235, rho = 0.245922\n"
    "nSV = 86, nBSV = 80\n"
    "*\noptimization finished, #iter = 55\nnu = 0.717890\nobj = -73.350569, rho = -0.110685\n"
    "nSV = 98, nBSV = 95\n"
    "*\noptimization finished, #iter = 45\nnu = 0.300441\nobj = -22.141582, rho = -0.054674\n"
    "nSV = 41, nBSV = 35\nTotal nSV = 163\n"
    "Cross Validation Accuracy = 94%\n";

MT_TEST(svm_train_folds_follow_its_command_line)
{
    char *sum, folds[64];
    char *reg[] = { "svm-train", "-s", "3", "-v", "3", "reg.svm", NULL };
    char *rows = parse_output("svm-train", reg, svm_regression, &sum);
    folds_of(rows, folds, sizeof folds);
    MT_CHECK_STR(folds, "1,1,1"); /* a regression trains once per fold */
    MT_CHECK(strstr(sum, "\"cv_mse\":0.00394774") && strstr(sum, "\"cv_scc\":0.996882"));
    free(rows), free(sum);

    char *cls[] = { "svm-train", "-q", "-v", "2", "multi.svm", NULL };
    rows = parse_output("svm-train", cls, svm_multiclass, &sum);
    folds_of(rows, folds, sizeof folds);
    MT_CHECK_STR(folds, "3,3"); /* a fold: one training per pair of classes */
    MT_CHECK(strstr(sum, "\"cv_accuracy\":94"));
    free(rows), free(sum);

    /* The same lines with the command line unknown (parse, import): a
     * classifier's folds, the default; and without -v there are none. */
    rows = parse_output("svm-train", NULL, svm_multiclass, &sum);
    folds_of(rows, folds, sizeof folds);
    MT_CHECK_STR(folds, "3,3");
    free(rows), free(sum);
    char *plain[] = { "svm-train", "-s", "3", "reg.svm", "model", NULL };
    rows = parse_output("svm-train", plain, svm_regression, &sum);
    MT_CHECK(!strstr(rows, "fold") && !strstr(sum, "fold"));
    MT_CHECK(strstr(rows, "\"iterations\":106")); /* the rest is as before */
    free(rows), free(sum);
}

/* liblinear-train -s 0 -v 2 (Newton) and -s 1 -v 2 (dual coordinate descent) */
static const char liblinear_newton[] =
    "iter  1 act 2.228e+01 pre 2.089e+01 delta 3.495e+00 f 1.040e+02 |g| 1.655e+01 CG   2\n"
    "iter  2 act 5.906e-01 pre 5.733e-01 delta 3.495e+00 f 8.170e+01 |g| 2.361e+00 CG   2\n"
    "iter  1 act 2.949e+01 pre 2.730e+01 delta 3.801e+00 f 1.040e+02 |g| 2.132e+01 CG   2\n"
    "cg reaches trust region boundary\n"
    "iter  2 act 1.304e+00 pre 1.245e+00 delta 3.801e+00 f 7.449e+01 |g| 3.716e+00 CG   2\n"
    "iter  3 act 1.795e-02 pre 1.786e-02 delta 3.801e+00 f 7.318e+01 |g| 3.683e-01 CG   3\n"
    "Cross Validation Accuracy = 78.6667%\n";
static const char liblinear_dual[] =
    "..*\noptimization finished, #iter = 24\nObjective value = -95.020850\nnSV = 130\n"
    "..*\noptimization finished, #iter = 24\nObjective value = -78.547969\nnSV = 118\n"
    "Cross Validation Accuracy = 78%\n";

MT_TEST(liblinear_folds_make_iter_an_axis_within_each_fold)
{
    char *sum, folds[64];
    char *cv[] = { "liblinear-train", "-s", "0", "-v", "2", "train.svm", NULL };
    char *rows = parse_output("liblinear-train", cv, liblinear_newton, &sum);
    folds_of(rows, folds, sizeof folds);
    MT_CHECK_STR(folds, "2,3");
    /* iter is the first axis of each row, the fold the one around it */
    MT_CHECK(strstr(rows, "\"iter\":1,\"fold\":2,\"act\":2.949e+01"));
    MT_CHECK(strstr(rows, "\"iter\":3,\"fold\":2,\"act\":1.795e-02"));
    free(rows), free(sum);

    char *dual[] = { "liblinear-train", "-s", "1", "-v", "2", "train.svm", NULL };
    rows = parse_output("liblinear-train", dual, liblinear_dual, &sum);
    folds_of(rows, folds, sizeof folds);
    MT_CHECK_STR(folds, "1,1");
    MT_CHECK(strstr(rows, "\"fold\":2,\"iterations\":24,\"objective\":-78.547969,\"nSV\":118"));
    free(rows), free(sum);

    char *plain[] = { "liblinear-train", "-s", "0", "train.svm", NULL };
    rows = parse_output("liblinear-train", plain, liblinear_newton, &sum);
    MT_CHECK(!strstr(rows, "fold"));
    free(rows), free(sum);
}

/* liblinear-train -C: the accuracy of each C tried, then the best */
static const char liblinear_search[] =
    "Doing parameter search with 5-fold cross validation.\n"
    "log2c=  -1.00\trate=79.3333\n"
    "log2c=   0.00\trate=79.6667\n"
    "log2c=   1.00\trate=79.3333\n"
    "warning: maximum C reached.\n"
    "Best C = 1  CV accuracy = 79.6667%\n";

MT_TEST(the_best_c_of_a_search_is_summary_not_history)
{
    char *sum;
    char *argv[] = { "liblinear-train", "-C", "train.svm", NULL };
    char *rows = parse_output("liblinear-train", argv, liblinear_search, &sum);
    MT_CHECK_STR(rows, "{\"_step\":0,\"_runtime\":1.000,\"_timestamp\":101.000000,"
                       "\"log2c\":-1.00,\"cv_accuracy\":79.3333}\n"
                       "{\"_step\":1,\"_runtime\":1.000,\"_timestamp\":101.000000,"
                       "\"log2c\":0.00,\"cv_accuracy\":79.6667}\n"
                       "{\"_step\":2,\"_runtime\":1.000,\"_timestamp\":101.000000,"
                       "\"log2c\":1.00,\"cv_accuracy\":79.3333}\n");
    /* the search's result: the best C and its accuracy, not the last tried */
    MT_CHECK(strstr(sum, "\"cv_accuracy\":79.6667") && strstr(sum, "\"best_c\":1"));
    free(rows), free(sum);
}

/* -q and liblinear's -C take no value: the word after them is no value of
 * theirs (here the training file). */
MT_TEST(a_trainer_flag_is_true_in_the_config)
{
    char *ll[] = { "/usr/bin/liblinear-train", "-s", "0", "-C", "train.svm", NULL };
    char *j = mt_argv_config_json(5, ll);
    MT_CHECK_STR(j, "{\"s\":0,\"C\":true}");
    free(j);
    char *svm[] = { "svm-train", "-q", "-v", "4", "train.svm", NULL };
    j = mt_argv_config_json(5, svm);
    MT_CHECK_STR(j, "{\"q\":true,\"v\":4}");
    free(j);
    char *other[] = { "train", "-C", "x", NULL }; /* no preset: as before */
    j = mt_argv_config_json(3, other);
    MT_CHECK_STR(j, "{\"C\":\"x\"}");
    free(j);
}

MT_TEST(presets_fit_the_rules_kept_for_them_and_are_all_listed)
{
    int patterns = 0;
    for (const struct mt_preset *p = mt_presets__all; p->name; p++) {
        if (p->programs || strcmp(p->name, "hf") == 0 || strcmp(p->name, "keras") == 0 ||
            strcmp(p->name, "keyvalue") == 0)
            patterns += mt_preset_rule_count(p->name);
        char quoted[64];
        snprintf(quoted, sizeof quoted, " %s,", p->name);
        char list[512];
        snprintf(list, sizeof list, " %s,", mt_preset_list());
        MT_CHECK(strstr(list, quoted) != NULL);
        MT_CHECK(mt_preset_known(p->name));
    }
    MT_CHECK(patterns <= MT_RULES_RESERVED);
}

int main(void)
{
    return mt_test_main();
}
