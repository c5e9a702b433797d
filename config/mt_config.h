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
    char *upload_backend;   /* "" | mlflow */
    char *upload_url;
    double upload_flush_timeout;
    uint64_t ring_size;     /* bytes per process ring */
    uint64_t line_max;      /* bytes of a line offered to the parsers */
    int strict;
    char *ranks;            /* zero | all | per-rank */
    char *files_watch;      /* comma-separated globs of files to tail */
};

enum mt_config_type { MT_CFG_STRING, MT_CFG_BOOL, MT_CFG_DURATION, MT_CFG_SIZE, MT_CFG_ENUM };

struct mt_config_key {
    const char *key;          /* dotted YAML key */
    enum mt_config_type type;
    size_t offset;            /* into struct mt_config */
    const char *def;          /* default, as text */
    const char *wandb_env;    /* WANDB_* variable of the same meaning, or NULL */
    double min, max;          /* bounds for numbers (seconds for durations) */
    const char *choices;      /* for enums: "a|b|c" */
    const char *help;
};

/* The table itself, NULL-key terminated. */
extern const struct mt_config_key mt_config_keys[];

/* Loads defaults, files and the environment `envp` (NULL: the process's).
 * Returns 0, or -1 with a message naming the source, key, value and what is
 * allowed in err. */
int mt_config_load(struct mt_config *cfg, char *const *envp, char *err, size_t errsz);
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
