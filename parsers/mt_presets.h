/* The built-in presets: their patterns, the programs they are for, and how
 * their cross-validation folds are counted.  Data for rules.c (which
 * compiles and matches them); internal to parsers/ (the names reach config/
 * through mt_rules.h). */
#ifndef MT_PRESETS_H
#define MT_PRESETS_H

#include <stddef.h>

enum { MT_PRESET_REGEX, MT_PRESET_KEYVALUE, MT_PRESET_JSON, MT_PRESET_CSV };

/* What a matching line does to its source's `fold` counter (the axis of a
 * cross-validation's folds, which the trainers do not print): */
enum mt_fold_action {
    MT_FOLD_NONE = 0,
    MT_FOLD_BEGIN, /* a training starts, unless one is under way (a fold of
                      svm-train's multi-class models trains several) */
    MT_FOLD_NEXT,  /* a training starts: always the next fold */
    MT_FOLD_END,   /* the fold's model is complete */
};

/* How a source's folds are counted, from the trainer's command line. */
enum mt_fold_mode {
    MT_FOLDS_BY_MODEL = 0,  /* BEGIN...END is one fold (the default) */
    MT_FOLDS_PER_TRAINING,  /* every BEGIN is a fold (one model per training) */
    MT_FOLDS_OFF,           /* not a cross-validation: no fold axis */
};

struct mt_preset_rule {
    const char *pattern;
    const char *axes;    /* comma-separated groups that are step axes */
    const char *summary; /* comma-separated groups that go to the summary only */
    int repeat;
    int keep_going;      /* the rules after it see the line too */
    enum mt_fold_action fold;
    /* A cheap test the line must pass for the pattern to have any chance
     * (NULL: none).  The generic presets run on every line a program
     * prints; this keeps their regexes off the lines that cannot match. */
    int (*may_match)(const char *line, size_t len);
};

struct mt_preset_metric {
    const char *glob, *step_metric;
};

struct mt_preset {
    const char *name;
    const char *programs; /* fnmatch patterns of program names, '|'-separated */
    int kind;             /* MT_PRESET_* */
    const struct mt_preset_rule *rules; /* ends with a NULL pattern */
    const struct mt_preset_metric *metrics;
    /* The fold mode of a source from its trainer's command line (argv NULL:
     * not known, as in `metrictap parse`); NULL: MT_FOLDS_BY_MODEL. */
    enum mt_fold_mode (*folds)(int argc, char *const *argv);
    /* Its single-dash options that take no value ("qC": -q, -C), so that
     * `liblinear-train -C train.svm` has C=true in its config, not a C
     * named after the data file; NULL: none. */
    const char *flags;
};

/* The presets, ending with a NULL name.  Those with `programs` are the
 * trainer presets, chosen by program name. */
extern const struct mt_preset mt_presets__all[];

const struct mt_preset *mt_presets__find(const char *name);

#endif
