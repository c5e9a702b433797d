/* mt_config: every setting of a run, described once as a table (key, type,
 * default, bounds, help) that loads, validates and documents it.
 *
 * Precedence, highest first: command-line flags (the CLI exports them as
 * METRICTAP_* variables for the agent), METRICTAP_* variables, the WANDB_*
 * variable of the same meaning, the config file (--config / ./metrictap.yaml),
 * ~/.config/metrictap/config.yaml, built-in defaults.  Every key has a variable
 * named after it: `system.interval` is METRICTAP_SYSTEM_INTERVAL.
 *
 * The config owns all its strings; mt_config_free releases them. */
#ifndef MT_CONFIG_H
#define MT_CONFIG_H

#include <stddef.h>
#include <stdint.h>

/* A rule as the config file gives it (rules: and files:); parsers/ compiles
 * it.  Lists are NULL-terminated.  `line`/`column` locate it for messages. */
struct mt_rule_spec {
    char *name;
    char *preset;     /* keyvalue | json | csv | xgboost | ... or NULL: a pattern */
    char *stream;     /* stdout | stderr | any (with watched files) | file:GLOB; default any */
    char *pattern;    /* PCRE2; named groups become fields */
    char **axes;      /* groups that are step axes (besides `step`) */
    char **config;    /* groups that are config values */
    char **tags;      /* groups that are tags */
    char **text;      /* groups kept as text when not numbers */
    int repeat;       /* match again after each match (\G continues) */
    int keep_going;   /* let later rules see a line this rule matched */
    int from_files;   /* came from a files: entry */
    int line, column;
};

/* A metrics: entry.  `name` may be a glob (val_*). */
enum { MT_SUM_LAST = 1, MT_SUM_FIRST = 2, MT_SUM_MIN = 4, MT_SUM_MAX = 8, MT_SUM_MEAN = 16,
       MT_SUM_BEST = 32, MT_SUM_NONE = 64 };
enum { MT_GOAL_NONE = 0, MT_GOAL_MIN = 1, MT_GOAL_MAX = 2 };
struct mt_metric_spec {
    char *name;
    char *step_metric; /* axis to plot against, or NULL */
    unsigned summary;  /* MT_SUM_* bits; 0: last */
    int goal;          /* MT_GOAL_* */
    int line, column;
};

struct mt_config {
    char *dir;          /* store root, default ./metrictap */
    char *project;
    char *name;
    char *group;
    char *job_type;
    char *notes;
    char *id;           /* run id to use or resume */
    char *resume;       /* allow | must | never | "" */
    char *mode;         /* online | offline | disabled */
    char *tags;         /* comma-separated */
    char *config_file;  /* the YAML file in force, if any */
    double system_interval; /* seconds; 0 disables system metrics */
    double system_window;   /* seconds */
    int code_disabled;
    char *ignore_globs;     /* comma-separated */
    char *upload_backend;   /* "" | mlflow (one backend; upload.to lists several) */
    char *upload_to;        /* comma-separated backends: mlflow,tensorboard,wandb */
    char *tensorboard_logdir; /* TensorBoard's --logdir; runs go to <logdir>/<project>/<name>-<id> */
    char *wandb_dir;        /* WANDB_DIR: W&B runs go to <dir>/wandb/ */
    char *wandb_entity;
    double wandb_sync_timeout; /* one `wandb sync` at the end of a run, at most */
    char *upload_url;
    double upload_flush_timeout;
    int upload_wait;        /* upload.wait: `run` returns once the upload is done or failed */
    uint64_t ring_size;     /* bytes per process ring */
    uint64_t line_max;      /* bytes of a line offered to the parsers */
    int python_unbuffered;  /* PYTHONUNBUFFERED=1 for Python programs */
    char *program;          /* forces the preset: as if every line came from it */
    uint64_t journal_max;   /* capture.journal_max: the journal's live size cap */
    int keep_journal;       /* capture.keep_journal: keep it once parsed */
    double linger;          /* capture.linger: how long processes outliving the root are followed */
    int strict;
    int stack_enabled;      /* stack.enabled: the agent may ptrace the run (mt_stack.h) */
    double stall_after;     /* stack.stall_after: the stall watchdog's silence, 0 off */
    char *ranks;            /* zero | all | per-rank */
    char *files_watch;      /* comma-separated globs of files to tail (with files: entries) */
    /* From the YAML file only. */
    struct mt_rule_spec *rules;     /* rules: and files: (as file:GLOB rules) */
    size_t nrules;
    struct mt_metric_spec *metrics; /* metrics: */
    size_t nmetrics;
    char **watch_globs;             /* files: globs the agent tails; NULL-terminated */
    char *config_origin;            /* the file the rules came from, for messages */
};

enum mt_config_type { MT_CFG_STRING, MT_CFG_BOOL, MT_CFG_DURATION, MT_CFG_SIZE, MT_CFG_ENUM,
                       MT_CFG_LIST /* a string; YAML lists are joined with ',' */ };

struct mt_config_key {
    const char *key;          /* dotted YAML key */
    enum mt_config_type type;
    size_t offset;            /* into struct mt_config */
    const char *def;          /* default, as text */
    const char *alias_env;    /* another variable of the same meaning (W&B's, or
                                 an older name of ours), or NULL */
    double min, max;          /* bounds for numbers (seconds for durations) */
    const char *choices;      /* for enums: "a|b|c" */
    const char *help;
};

/* The table itself, NULL-key terminated. */
extern const struct mt_config_key mt_config_keys[];

/* Loads defaults, files and the environment `envp` (NULL: the process's).
 * Files: $HOME/.config/metrictap/config.yaml, then METRICTAP_CONFIG (which
 * must exist) or ./metrictap.yaml; the environment wins over both.
 * Returns 0, or -1 with a message naming the source (file:line:column), key,
 * value and what is allowed in err.  On error cfg is still safe to free. */
int mt_config_load(struct mt_config *cfg, char *const *envp, char *err, size_t errsz);

/* Defaults only (no files, no environment). */
int mt_config_defaults(struct mt_config *cfg, char *err, size_t errsz);

/* Applies one YAML document from memory over cfg; `name` names it in
 * messages.  Returns 0 or -1 with err set.  (The fuzz target's entry.) */
int mt_config_apply_yaml(struct mt_config *cfg, const char *text, size_t len, const char *name,
                         char *err, size_t errsz);
/* The same for a file; -1 with err when it cannot be read or is bad. */
int mt_config_apply_file(struct mt_config *cfg, const char *path, char *err, size_t errsz);

/* Checks a PCRE2 pattern; on error writes "what at offset N" followed by the
 * pattern and a caret line under the offset.  0 or -1. */
int mt_config_check_pattern(const char *pattern, char *err, size_t errsz);

/* Names the summary bits ("min,max") into out. */
void mt_config_summary_names(unsigned bits, char *out, size_t size);
void mt_config_free(struct mt_config *cfg);

/* METRICTAP_SYSTEM_INTERVAL for "system.interval". */
void mt_config_env_name(const char *key, char *out, size_t size);

/* Parses "500ms", "2s", "1m", "1.5" (seconds); -1 on error. */
int mt_config_parse_duration(const char *s, double *out);
/* Parses "16M", "64k", "1G", "4096"; -1 on error. */
int mt_config_parse_size(const char *s, uint64_t *out);

/* Writes the table as help text. */
void mt_config_print_help(void *file);

#endif
