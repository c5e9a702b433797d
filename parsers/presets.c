/* The built-in presets (mt_presets.h): a table of patterns per trainer.
 * Names are chosen to agree across trainers: a cross-validation's accuracy
 * is `cv_accuracy` (libsvm and liblinear alike), a test set's `accuracy`;
 * regression gives `mse`/`scc`, and `cv_mse`/`cv_scc` under
 * cross-validation (README, "Extraction rules"). */
#include "mt_presets.h"

#include <stdlib.h>
#include <string.h>

static int is_pcre_space(char c) /* \s without UCP */
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* "^Epoch (?<epoch>..." */
static int may_be_keras_epoch(const char *line, size_t len)
{
    return len >= 6 && memcmp(line, "Epoch ", 6) == 0;
}

/* "...\s-\s..." must occur: a '-' between two blanks. */
static int may_be_keras_progress(const char *line, size_t len)
{
    for (const char *p = line, *end = line + len; (p = memchr(p, '-', (size_t)(end - p)));) {
        if (p > line && p + 1 < end && is_pcre_space(p[-1]) && is_pcre_space(p[1]))
            return 1;
        p++;
    }
    return 0;
}

/* The value of option -`letter` on a libsvm/liblinear command line ("" for
 * a flag), NULL when absent.  Their parsers read `-x value` pairs up to the
 * first word without a '-'; -q (and liblinear's -C) take no value. */
static const char *libsvm_option(int argc, char *const *argv, char letter, const char *flags)
{
    for (int i = 1; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        int flag = strchr(flags, argv[i][1]) != NULL;
        if (argv[i][1] == letter)
            return flag ? "" : i + 1 < argc ? argv[i + 1] : "";
        if (!flag)
            i++;
    }
    return NULL;
}

/* Their options that take no value: -q everywhere, liblinear-train's -C. */
#define QUIET_FLAG "q"
#define LIBLINEAR_TRAIN_FLAGS "qC"

/* svm-train: folds only under -v; a classifier's fold ends with its
 * "Total nSV" line (one training per pair of classes before it), the other
 * svm types (-s 2 one-class, 3 and 4 regression) train once per fold. */
static enum mt_fold_mode svm_folds(int argc, char *const *argv)
{
    if (!argv)
        return MT_FOLDS_BY_MODEL;
    if (!libsvm_option(argc, argv, 'v', QUIET_FLAG))
        return MT_FOLDS_OFF;
    const char *s = libsvm_option(argc, argv, 's', QUIET_FLAG);
    if (s && (strcmp(s, "2") == 0 || strcmp(s, "3") == 0 || strcmp(s, "4") == 0))
        return MT_FOLDS_PER_TRAINING;
    return MT_FOLDS_BY_MODEL;
}

/* liblinear-train: folds only under -v (and not -C, whose search prints
 * no trainings). */
static enum mt_fold_mode liblinear_folds(int argc, char *const *argv)
{
    if (argv && !libsvm_option(argc, argv, 'v', LIBLINEAR_TRAIN_FLAGS))
        return MT_FOLDS_OFF;
    return MT_FOLDS_BY_MODEL;
}

static const struct mt_preset_rule xgboost_rules[] = {
    /* [12:09:10] [3]\ttest-logloss:0.27\ttrain-logloss:0.25 (CLI and Python) */
    { .pattern = "(?:^(?:\\[[\\d:]+\\]\\s+)?\\[(?<iteration>\\d+)\\]|\\G)\\t(?<key>[^\\s:]+):"
                 "(?<value>[^\\t]+)",
      .axes = "iteration", .repeat = 1 },
    { .pattern = NULL },
};

static const struct mt_preset_rule lightgbm_rules[] = {
    /* [10]\tvalid_0's l2: 0.0451\tvalid_0's auc: 0.9 */
    { .pattern = "(?:^\\[(?<iteration>\\d+)\\]|\\G)\\t(?<key>[^\\t']+)'s (?<subkey>[^:\\t]+): "
                 "(?<value>[^\\t]+)",
      .axes = "iteration", .repeat = 1 },
    /* [LightGBM] [Info] Iteration:10, valid_1 l2 : 0.0451 */
    { .pattern = "^\\[LightGBM\\] \\[Info\\] Iteration:(?<iteration>\\d+), (?<key>\\S+) "
                 "(?<subkey>[^:]+?) : (?<value>\\S+)",
      .axes = "iteration" },
    { .pattern = "^\\[LightGBM\\] \\[Info\\] (?<elapsed_seconds>[\\d.]+) seconds elapsed, "
                 "finished iteration (?<iteration>\\d+)",
      .axes = "iteration" },
    { .pattern = "^\\[LightGBM\\] " }, /* its other chatter is not metrics */
    { .pattern = NULL },
};

static const struct mt_preset_rule fasttext_rules[] = {
    /* -autotune-validation: \rProgress:  58.6% Trials:    2 Best score:  0.98 ETA: ...
     * (the score is "unknown" until a trial ends: no value then).  Its
     * progress is the search's, not a training's: a name of its own. */
    { .pattern = "^Progress:\\s*(?<autotune_progress>[-\\d.]+%)\\s+Trials:\\s*(?<trials>\\d+)"
                 "\\s+Best score:\\s*(?<best_score>\\S+)" },
    /* \rProgress:  45.2% words/sec/thread:  82998 lr:  0.0274 avg.loss:  0.0247 ETA: ... */
    { .pattern = "^Progress:\\s*(?<progress>[-\\d.]+%)|\\G\\s+(?<key>words/sec/thread|lr|"
                 "avg\\.loss):\\s*(?<value>\\S+)",
      .repeat = 1 },
    { .pattern = "^Number of (?<key>words|labels|tokens):\\s+(?<value>\\d+)" },
    { .pattern = "^(?:Read \\d+M words|Training again with best arguments)" },
    /* fasttext test: N, P@1, R@1 */
    { .pattern = "^(?<key>N|P@\\d+|R@\\d+)\\t(?<value>\\S+)$" },
    { .pattern = NULL },
};

static const struct mt_preset_rule keras_rules[] = {
    { .pattern = "^Epoch (?<epoch>\\d+)/\\d+\\s*$", .axes = "epoch",
      .may_match = may_be_keras_epoch },
    /* 1875/1875 [====] - 3s 2ms/step - loss: 0.2300 - accuracy: 0.9100 - val_loss: ... */
    { .pattern = "(?:^\\s*(?<batch>\\d+)/\\d+\\s.*?|\\G)\\s-\\s(?!ETA\\b)(?<key>[A-Za-z_][\\w.]*):"
                 "\\s(?<value>[-+\\w.]+)",
      .axes = "batch", .repeat = 1, .may_match = may_be_keras_progress },
    { .pattern = NULL },
};

/* svm-train (libsvm): one block per training, "Total nSV" after a
 * classifier's trainings (one per pair of classes). */
static const struct mt_preset_rule svm_rules[] = {
    { .pattern = "^optimization finished, #iter = (?<iterations>\\d+)", .fold = MT_FOLD_BEGIN },
    { .pattern = "^nu = (?<nu>[^,\\s]+)" },
    { .pattern = "^obj = (?<obj>[^,\\s]+), rho = (?<rho>[^,\\s]+)" },
    { .pattern = "^nSV = (?<nSV>\\d+), nBSV = (?<nBSV>\\d+)" },
    { .pattern = "^Total nSV = (?<total_nSV>\\d+)", .fold = MT_FOLD_END },
    { .pattern = "^Cross Validation Accuracy = (?<cv_accuracy>\\S+)" },
    { .pattern = "^Cross Validation Mean squared error = (?<cv_mse>\\S+)" },
    { .pattern = "^Cross Validation Squared correlation coefficient = (?<cv_scc>\\S+)" },
    { .pattern = "^[.*]+$" },
    { .pattern = NULL },
};

/* liblinear-train 2.x: the trust-region Newton solvers (-s 0, 2, 11) print
 * "iter N act ..." from 1 in each training (2.4 and later "init f" first),
 * the coordinate-descent ones dots, then "optimization finished",
 * "Objective value" and "nSV" (-s 6 "iter N #CD cycles" before).  -C's
 * search prints one line per C (and p) tried, then the best. */
static const struct mt_preset_rule liblinear_rules[] = {
    { .pattern = "^(?:iter\\s+1\\s+(?:act|#CD)\\s|init f\\s)", .keep_going = 1,
      .fold = MT_FOLD_NEXT },
    { .pattern = "^iter\\s+(?<iter>\\d+)\\s+act\\s+(?<act>\\S+)\\s+pre\\s+(?<pre>\\S+)\\s+delta\\s+"
                 "(?<delta>\\S+)\\s+f\\s+(?<f>\\S+)\\s+\\|g\\|\\s+(?<g_norm>\\S+)\\s+CG\\s+"
                 "(?<cg>\\d+)",
      .axes = "iter" },
    { .pattern = "^iter\\s+(?<iter>\\d+)\\s+#CD cycles\\s+(?<cd_cycles>\\d+)", .axes = "iter" },
    { .pattern = "^init f\\s+(?<f>\\S+)\\s+\\|g\\|\\s+(?<g_norm>\\S+)" },
    { .pattern = "^optimization finished, #iter = (?<iterations>\\d+)", .fold = MT_FOLD_BEGIN },
    { .pattern = "^Objective value = (?<objective>\\S+)", .fold = MT_FOLD_END },
    { .pattern = "^nSV = (?<nSV>\\d+)" },
    { .pattern = "^#nonzeros/#features = (?<nonzeros>\\d+)/\\d+" },
    { .pattern = "^Cross Validation Accuracy = (?<cv_accuracy>\\S+)" },
    { .pattern = "^Cross Validation Mean squared error = (?<cv_mse>\\S+)" },
    { .pattern = "^Cross Validation Squared correlation coefficient = (?<cv_scc>\\S+)" },
    /* -C: the accuracy (or MSE) of each C tried, by cross-validation */
    { .pattern = "^log2c=\\s*(?<log2c>\\S+)\\s+rate=(?<cv_accuracy>\\S+)", .axes = "log2c" },
    { .pattern = "^log2c=\\s*(?<log2c>\\S+)\\s+p=\\s*(?<p>\\S+)\\s+Mean squared error="
                 "(?<cv_mse>\\S+)",
      .axes = "log2c,p" },
    /* the search's outcome: the summary, not another point of the search */
    { .pattern = "^Best C = (?<best_c>\\S+)\\s+CV accuracy = (?<cv_accuracy>\\S+)",
      .summary = "best_c,cv_accuracy" },
    { .pattern = "^Best C = (?<best_c>\\S+)\\s+Best p = (?<best_p>\\S+)\\s+CV MSE = "
                 "(?<cv_mse>\\S+)",
      .summary = "best_c,best_p,cv_mse" },
    { .pattern = "^(?:[.*]+|=+|cg reaches trust region boundary|(?:WARNING|warning): .*|"
                 "Doing parameter search with \\d+-fold cross validation\\.)$" },
    { .pattern = NULL },
};

/* svm-predict and liblinear-predict print the same lines:
 * "Accuracy = 97% (97/100) (classification)", or for regression
 * "Mean squared error = 0.0025 (regression)" and
 * "Squared correlation coefficient = 0.998 (regression)". */
static const struct mt_preset_rule predict_rules[] = {
    { .pattern = "^Accuracy = (?<accuracy>[^\\s(]+)" },
    { .pattern = "^Mean squared error = (?<mse>\\S+)" },
    { .pattern = "^Squared correlation coefficient = (?<scc>\\S+)" },
    { .pattern = NULL },
};

static const struct mt_preset_rule darknet_rules[] = {
    /* 1: 701.565918, 701.565918 avg, 0.000000 rate, 5.236329 seconds, 64 images */
    { .pattern = "^\\s*(?<batch>\\d+): (?<loss>[^,\\s]+), (?<avg_loss>[^,\\s]+) avg(?: loss)?, "
                 "(?<rate>[^,\\s]+) rate, (?<seconds>[^,\\s]+) seconds, (?<images>\\d+) images",
      .axes = "batch" },
    { .pattern = NULL },
};

static const struct mt_preset_metric keras_metrics[] = {
    { "val_*", "epoch" }, { NULL, NULL } };
static const struct mt_preset_metric hf_metrics[] = {
    { "eval_*", "epoch" }, { NULL, NULL } };

const struct mt_preset mt_presets__all[] = {
    { .name = "keyvalue", .kind = MT_PRESET_KEYVALUE },
    { .name = "json", .kind = MT_PRESET_JSON },
    { .name = "csv", .kind = MT_PRESET_CSV },
    { .name = "xgboost", .programs = "xgboost*", .rules = xgboost_rules },
    { .name = "lightgbm", .programs = "lightgbm*", .rules = lightgbm_rules },
    { .name = "fasttext", .programs = "fasttext*", .rules = fasttext_rules },
    { .name = "keras", .rules = keras_rules, .metrics = keras_metrics },
    { .name = "hf", .kind = MT_PRESET_JSON, .metrics = hf_metrics },
    { .name = "svm-train", .programs = "svm-train*", .rules = svm_rules, .folds = svm_folds,
      .flags = QUIET_FLAG },
    { .name = "svm-predict", .programs = "svm-predict*", .rules = predict_rules,
      .flags = QUIET_FLAG },
    { .name = "liblinear-train", .programs = "liblinear-train*", .rules = liblinear_rules,
      .folds = liblinear_folds, .flags = LIBLINEAR_TRAIN_FLAGS },
    { .name = "liblinear-predict", .programs = "liblinear-predict*", .rules = predict_rules,
      .flags = QUIET_FLAG },
    { .name = "darknet", .programs = "darknet*", .rules = darknet_rules },
    { .name = NULL },
};

const struct mt_preset *mt_presets__find(const char *name)
{
    for (const struct mt_preset *p = mt_presets__all; p->name; p++)
        if (strcmp(p->name, name) == 0)
            return p;
    return NULL;
}
