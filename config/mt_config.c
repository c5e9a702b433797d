/* mt_config: the table, the environment loader and the order of sources.
 * YAML files go through the same table (mt_config_yaml.c). */
#include "mt_config.h"
#include "mt_config_int.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OFF(f) offsetof(struct mt_config, f)

const struct mt_config_key mt_config_keys[] = {
    { "dir", MT_CFG_STRING, OFF(dir), "./metrictap", "WANDB_DIR", 0, 0, NULL,
      "where the run store lives" },
    { "project", MT_CFG_STRING, OFF(project), "uncategorized", "WANDB_PROJECT", 0, 0, NULL,
      "project the run belongs to" },
    { "name", MT_CFG_STRING, OFF(name), "", "WANDB_NAME", 0, 0, NULL,
      "display name of the run (default: program name and id)" },
    { "group", MT_CFG_STRING, OFF(group), "", "WANDB_RUN_GROUP", 0, 0, NULL,
      "group of related runs" },
    { "job_type", MT_CFG_STRING, OFF(job_type), "", "WANDB_JOB_TYPE", 0, 0, NULL,
      "kind of job, e.g. train or eval" },
    { "notes", MT_CFG_STRING, OFF(notes), "", "WANDB_NOTES", 0, 0, NULL, "free text" },
    { "id", MT_CFG_STRING, OFF(id), "", "WANDB_RUN_ID", 0, 0, NULL,
      "run id (8 base-36 characters are generated when empty)" },
    { "resume", MT_CFG_ENUM, OFF(resume), "", "WANDB_RESUME", 0, 0, "|allow|must|never",
      "resume the run given by id" },
    { "mode", MT_CFG_ENUM, OFF(mode), "online", "WANDB_MODE", 0, 0,
      "online|offline|disabled|dryrun", "offline keeps everything local" },
    { "tags", MT_CFG_LIST, OFF(tags), "", "WANDB_TAGS", 0, 0, NULL,
      "tags of the run (a YAML list, or comma-separated)" },
    { "config", MT_CFG_STRING, OFF(config_file), "", NULL, 0, 0, NULL,
      "YAML config file (default ./metrictap.yaml)" },
    { "system.interval", MT_CFG_DURATION, OFF(system_interval), "2s", NULL, 0, 3600, NULL,
      "system metrics sampling interval; 0 disables" },
    { "system.window", MT_CFG_DURATION, OFF(system_window), "15s", NULL, 0, 86400, NULL,
      "system metrics are averaged over this window" },
    { "code.disabled", MT_CFG_BOOL, OFF(code_disabled), "false", "WANDB_DISABLE_CODE", 0, 0,
      NULL, "record neither git commit nor diff" },
    { "code.ignore_globs", MT_CFG_LIST, OFF(ignore_globs), "", "WANDB_IGNORE_GLOBS", 0, 0,
      NULL, "globs of files kept out of uploads (a YAML list, or comma-separated)" },
    { "upload.backend", MT_CFG_ENUM, OFF(upload_backend), "", NULL, 0, 0,
      "|mlflow|tensorboard|wandb",
      "tracking server to upload to" },
    { "upload.to", MT_CFG_LIST, OFF(upload_to), "", NULL, 0, 0, NULL,
      "backends to send the run to: mlflow, tensorboard, wandb (a YAML list, or "
      "comma-separated; default mlflow when a tracking URL is set)" },
    { "tensorboard.logdir", MT_CFG_STRING, OFF(tensorboard_logdir), "./tensorboard",
      "METRICTAP_TENSORBOARD_DIR", 0, 0, NULL,
      "TensorBoard event files go to <logdir>/<project>/<name>-<id>/ (relative to the run's "
      "start directory); `tensorboard --logdir` it" },
    { "wandb.dir", MT_CFG_STRING, OFF(wandb_dir), ".", "WANDB_DIR", 0, 0, NULL,
      "W&B offline runs go to <dir>/wandb/offline-run-<time>-<id>/ (relative to the run's "
      "start directory)" },
    { "wandb.entity", MT_CFG_STRING, OFF(wandb_entity), "", "WANDB_ENTITY", 0, 0, NULL,
      "W&B entity (user or team) of the run; empty: the account's default" },
    { "wandb.sync_timeout", MT_CFG_DURATION, OFF(wandb_sync_timeout), "5m", NULL, 0, 86400, NULL,
      "how long `wandb sync` may take at the end of a run (online mode, wandb installed)" },
    { "upload.url", MT_CFG_STRING, OFF(upload_url), "", NULL, 0, 0, NULL,
      "tracking server URL (default MLFLOW_TRACKING_URI)" },
    { "upload.flush_timeout", MT_CFG_DURATION, OFF(upload_flush_timeout), "30s", NULL, 0,
      86400, NULL, "how long the end of a run waits for the upload" },
    { "upload.wait", MT_CFG_BOOL, OFF(upload_wait), "false", NULL, 0, 0, NULL,
      "`metrictap run` returns only once the upload is complete or has failed (--wait-upload), "
      "for scripts that read the server right after" },
    { "capture.ring_size", MT_CFG_SIZE, OFF(ring_size), "16M", "METRICTAP_RING_SIZE", 65536,
      1073741824.0, NULL, "capture ring bytes per process (rounded up to a power of two)" },
    { "capture.line_max", MT_CFG_SIZE, OFF(line_max), "64k", NULL, 256, 16777216.0, NULL,
      "longest line offered to the parsers; longer ones are cut and counted" },
    { "capture.python_unbuffered", MT_CFG_BOOL, OFF(python_unbuffered), "true", NULL, 0, 0,
      NULL, "run Python programs with PYTHONUNBUFFERED=1 (unless the environment sets it), "
      "so their lines are recorded when printed, not when a buffer fills; same bytes" },
    { "program", MT_CFG_STRING, OFF(program), "", NULL, 0, 0, NULL,
      "the trainer whose preset parses the output (xgboost, fasttext, ...); default: "
      "the name of the process that printed each line" },
    { "capture.journal_max", MT_CFG_SIZE, OFF(journal_max), "4G", NULL, 1048576.0,
      1099511627776.0, NULL,
      "most bytes the run's journal of unparsed output may hold; past it (or when the disk "
      "has less than 256 MiB, or a twentieth of it, free) output is dropped and counted" },
    { "capture.keep_journal", MT_CFG_BOOL, OFF(keep_journal), "false", NULL, 0, 0, NULL,
      "keep the run's journal (journal/ in the run directory) once it is parsed" },
    { "capture.linger", MT_CFG_DURATION, OFF(linger), "60s", NULL, 0, 86400, NULL,
      "how long the capture goes on for processes that outlive the run's first one; "
      "those still running then are counted (processes_outlived)" },
    { "strict", MT_CFG_BOOL, OFF(strict), "false", NULL, 0, 0, NULL,
      "refuse to run the program when tracking cannot start" },
    { "ranks", MT_CFG_ENUM, OFF(ranks), "zero", NULL, 0, 0, "zero|all|per-rank",
      "which ranks of a distributed job are parsed for metrics" },
    { "files.watch", MT_CFG_LIST, OFF(files_watch), "", NULL, 0, 0, NULL,
      "comma-separated globs of files the program writes that are tailed and parsed "
      "(relative to the run's start directory, or absolute; '*' stops at '/')" },
    { "stack.enabled", MT_CFG_BOOL, OFF(stack_enabled), "true", NULL, 0, 0, NULL,
      "let the run's agent read its native stacks (`metrictap stack RUN`, the stall "
      "watchdog): each process names the agent as its tracer (Yama ptrace_scope 1)" },
    { "stack.stall_after", MT_CFG_DURATION, OFF(stall_after), "10m", NULL, 0, 604800, NULL,
      "a run that prints nothing and uses no CPU this long gets its stacks written to "
      "stacks.txt and a stalled event; 0 turns the watchdog off" },
    { NULL, 0, 0, NULL, NULL, 0, 0, NULL, NULL },
};

void mt_config_env_name(const char *key, char *out, size_t size)
{
    size_t n = (size_t)snprintf(out, size, "METRICTAP_");
    for (const char *p = key; *p && n + 1 < size; p++)
        out[n++] = (*p == '.') ? '_' : (char)toupper((unsigned char)*p);
    out[n < size ? n : size - 1] = '\0';
}

int mt_config_parse_duration(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !isfinite(v) || v < 0)
        return -1;
    if (!*end || strcmp(end, "s") == 0)
        ;
    else if (strcmp(end, "ms") == 0)
        v /= 1000.0;
    else if (strcmp(end, "m") == 0)
        v *= 60.0;
    else if (strcmp(end, "h") == 0)
        v *= 3600.0;
    else
        return -1;
    *out = v;
    return 0;
}

int mt_config_parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || errno)
        return -1;
    int shift = 0;
    if (*end == 'k' || *end == 'K')
        shift = 10, end++;
    else if (*end == 'm' || *end == 'M')
        shift = 20, end++;
    else if (*end == 'g' || *end == 'G')
        shift = 30, end++;
    if (*end == 'i')
        end++;
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end || v > (UINT64_MAX >> shift))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    static const char *yes[] = { "1", "true", "yes", "on", NULL };
    static const char *no[] = { "0", "false", "no", "off", "", NULL };
    for (int i = 0; yes[i]; i++)
        if (strcasecmp(s, yes[i]) == 0)
            return *out = 1, 0;
    for (int i = 0; no[i]; i++)
        if (strcasecmp(s, no[i]) == 0)
            return *out = 0, 0;
    return -1;
}

static int enum_allows(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = choices;;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0)
            return 1;
        if (!bar)
            return 0;
        p = bar + 1;
    }
}

/* Sets one key from text; `source` names where it came from, for errors. */
int mt_config__set(struct mt_config *cfg, const struct mt_config_key *k, const char *v,
                     const char *source, char *err, size_t errsz)
{
    char *base = (char *)cfg + k->offset;
    double d;
    uint64_t u;
    int b;
    switch (k->type) {
    case MT_CFG_ENUM:
        if (!enum_allows(k->choices, v)) {
            snprintf(err, errsz, "%s: %s: bad value \"%s\"; allowed: %s", source, k->key, v,
                     k->choices[0] == '|' ? k->choices + 1 : k->choices);
            return -1;
        }
        /* fall through */
    case MT_CFG_LIST:
    case MT_CFG_STRING: {
        char *copy = strdup(v);
        if (!copy)
            abort();
        free(*(char **)base);
        *(char **)base = copy;
        return 0;
    }
    case MT_CFG_BOOL:
        if (parse_bool(v, &b) != 0) {
            snprintf(err, errsz, "%s: %s: bad value \"%s\"; allowed: true or false", source,
                     k->key, v);
            return -1;
        }
        *(int *)base = b;
        return 0;
    case MT_CFG_DURATION:
        if (mt_config_parse_duration(v, &d) != 0 || d < k->min || d > k->max) {
            snprintf(err, errsz,
                     "%s: %s: bad value \"%s\"; allowed: a duration such as 500ms, 2s, 1m "
                     "between %gs and %gs",
                     source, k->key, v, k->min, k->max);
            return -1;
        }
        *(double *)base = d;
        return 0;
    case MT_CFG_SIZE:
        if (mt_config_parse_size(v, &u) != 0 || (double)u < k->min || (double)u > k->max) {
            snprintf(err, errsz,
                     "%s: %s: bad value \"%s\"; allowed: a size such as 64k or 16M between "
                     "%.0f and %.0f bytes",
                     source, k->key, v, k->min, k->max);
            return -1;
        }
        *(uint64_t *)base = u;
        return 0;
    }
    return -1;
}

static const char *env_get(char *const *envp, const char *name)
{
    if (!envp)
        return getenv(name);
    size_t n = strlen(name);
    for (; *envp; envp++)
        if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
            return *envp + n + 1;
    return NULL;
}

int mt_config_defaults(struct mt_config *cfg, char *err, size_t errsz)
{
    memset(cfg, 0, sizeof *cfg);
    for (const struct mt_config_key *k = mt_config_keys; k->key; k++)
        if (mt_config__set(cfg, k, k->def, "built-in default", err, errsz) != 0)
            return -1;
    return 0;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ./metrictap.yaml is found, not named: in a directory others share it may
 * be theirs, and a config decides where runs are stored and uploaded (git
 * refuses a repository of "dubious ownership" for the same reason). */
static int trusted_here(const char *path, char *err, size_t errsz)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return 0;
    if (st.st_uid != geteuid())
        snprintf(err, errsz, "refusing ./%s: it belongs to uid %u, not to you (uid %u); name a"
                             " config with --config if you mean it", path, (unsigned)st.st_uid,
                 (unsigned)geteuid());
    else if (st.st_mode & 022)
        snprintf(err, errsz, "refusing ./%s: others can write it (mode %04o)", path,
                 (unsigned)(st.st_mode & 07777));
    else
        return 0;
    return -1;
}

int mt_config_load(struct mt_config *cfg, char *const *envp, char *err, size_t errsz)
{
    if (mt_config_defaults(cfg, err, errsz) != 0)
        return -1;
    /* Files, lowest first: the user's, then the job's. */
    const char *home = env_get(envp, "HOME");
    char path[4096];
    if (home && *home) {
        snprintf(path, sizeof path, "%s/.config/metrictap/config.yaml", home);
        if (file_exists(path) && mt_config_apply_file(cfg, path, err, errsz) != 0)
            return -1;
    }
    const char *given = env_get(envp, "METRICTAP_CONFIG");
    if (given && *given) {
        if (mt_config_apply_file(cfg, given, err, errsz) != 0)
            return -1;
    } else if (file_exists("metrictap.yaml")) {
        if (trusted_here("metrictap.yaml", err, errsz) != 0 ||
            mt_config_apply_file(cfg, "metrictap.yaml", err, errsz) != 0)
            return -1;
    }
    /* Environment: METRICTAP_<KEY> wins over a key's alias (WANDB_*), both
     * over files. */
    for (const struct mt_config_key *k = mt_config_keys; k->key; k++) {
        char name[128], source[160];
        mt_config_env_name(k->key, name, sizeof name);
        const char *v = env_get(envp, name);
        const char *from = name;
        if (!v && k->alias_env) {
            v = env_get(envp, k->alias_env);
            from = k->alias_env;
        }
        if (!v)
            continue;
        snprintf(source, sizeof source, "environment variable %s", from);
        if (k->offset == OFF(mode) && strcmp(v, "dryrun") == 0)
            v = "offline";
        if (mt_config__set(cfg, k, v, source, err, errsz) != 0)
            return -1;
    }
    return 0;
}

void mt_config_free(struct mt_config *cfg)
{
    if (!cfg)
        return;
    for (const struct mt_config_key *k = mt_config_keys; k->key; k++)
        if (k->type == MT_CFG_STRING || k->type == MT_CFG_ENUM || k->type == MT_CFG_LIST) {
            char **p = (char **)((char *)cfg + k->offset);
            free(*p);
            *p = NULL;
        }
    mt_config__free_sections(cfg);
}

void mt_config_print_help(void *file)
{
    FILE *f = file;
    static const char *types[] = { "text", "bool", "duration", "size", "one of", "list" };
    for (const struct mt_config_key *k = mt_config_keys; k->key; k++) {
        char env[128], what[256];
        mt_config_env_name(k->key, env, sizeof env);
        if (k->type == MT_CFG_ENUM)
            snprintf(what, sizeof what, "one of %s",
                     k->choices[0] == '|' ? k->choices + 1 : k->choices);
        else if (k->type == MT_CFG_DURATION)
            snprintf(what, sizeof what, "duration, %gs to %gs", k->min, k->max);
        else if (k->type == MT_CFG_SIZE)
            snprintf(what, sizeof what, "size, %.0f to %.0f bytes", k->min, k->max);
        else
            snprintf(what, sizeof what, "%s", types[k->type]);
        fprintf(f, "  %-22s %s\n  %-22s   %s; default: %s\n  %-22s   variable %s%s%s\n",
                k->key, k->help, "", what, *k->def ? k->def : "none", "", env,
                k->alias_env ? ", or " : "", k->alias_env ? k->alias_env : "");
    }
}
