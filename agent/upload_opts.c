/* The uploader's options: defaults, the config, the environment, and which
 * backends run. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../config/mt_config.h"
#include "mt_upload.h"
#include "mt_upload_backend.h"
#include "upload_internal.h"

int mt_upload__parse_duration(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !(v >= 0))
        return -EINVAL;
    if (*end == '\0' || strcmp(end, "s") == 0)
        ;
    else if (strcmp(end, "ms") == 0)
        v /= 1000;
    else if (strcmp(end, "m") == 0)
        v *= 60;
    else if (strcmp(end, "h") == 0)
        v *= 3600;
    else
        return -EINVAL;
    *out = v;
    return 0;
}

void mt_upload_opts_init(struct mt_upload_opts *o)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->backend, sizeof(o->backend), "mlflow");
    o->interval_s = 1;
    o->finish_timeout_s = 30;
    o->sync_timeout_s = 600;
    o->backoff_base_s = 0.5;
    o->backoff_max_s = 10;
    o->request_timeout_s = 30;
    o->batch_max = 1000;
    o->param_value_max = 6000;
    o->wandb_sync_timeout_s = 300;
}

static void set(char *out, size_t outsz, const char *v)
{
    if (v && *v)
        snprintf(out, outsz, "%s", v);
}

void mt_upload_opts_from_config(struct mt_upload_opts *o, const struct mt_config *cfg)
{
    set(o->backend, sizeof(o->backend), cfg->upload_backend);
    set(o->url, sizeof(o->url), cfg->upload_url);
    set(o->mode, sizeof(o->mode), cfg->mode);
    set(o->tensorboard_dir, sizeof(o->tensorboard_dir), cfg->tensorboard_logdir);
    set(o->wandb_dir, sizeof(o->wandb_dir), cfg->wandb_dir);
    set(o->wandb_entity, sizeof(o->wandb_entity), cfg->wandb_entity);
    if (cfg->upload_flush_timeout > 0)
        o->finish_timeout_s = cfg->upload_flush_timeout;
    if (cfg->wandb_sync_timeout > 0)
        o->wandb_sync_timeout_s = cfg->wandb_sync_timeout;
}

static int env_dur(const char *name, double *out, char *err, size_t errsz)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return 0;
    if (mt_upload__parse_duration(v, out) != 0) {
        snprintf(err, errsz,
                 "upload: %s=\"%s\" is not a duration; give e.g. 500ms, 2s, 1m or seconds", name,
                 v);
        return -EINVAL;
    }
    return 0;
}

int mt_upload_opts_from_env(struct mt_upload_opts *o, char *err, size_t errsz)
{
    int result = 0;
    set(o->url, sizeof(o->url), getenv("MLFLOW_TRACKING_URI"));
    set(o->url, sizeof(o->url), getenv("METRICTAP_UPLOAD_URL"));
    set(o->backend, sizeof(o->backend), getenv("METRICTAP_UPLOAD_BACKEND"));
    set(o->username, sizeof(o->username), getenv("MLFLOW_TRACKING_USERNAME"));
    set(o->password, sizeof(o->password), getenv("MLFLOW_TRACKING_PASSWORD"));
    set(o->token, sizeof(o->token), getenv("MLFLOW_TRACKING_TOKEN"));
    set(o->ca_path, sizeof(o->ca_path), getenv("MLFLOW_TRACKING_SERVER_CERT_PATH"));
    if ((result = env_dur("METRICTAP_UPLOAD_INTERVAL", &o->interval_s, err, errsz)) ||
        (result = env_dur("METRICTAP_UPLOAD_FINISH_TIMEOUT", &o->finish_timeout_s, err, errsz)) ||
        (result = env_dur("METRICTAP_UPLOAD_SYNC_TIMEOUT", &o->sync_timeout_s, err, errsz)) ||
        (result = env_dur("METRICTAP_UPLOAD_BACKOFF_MAX", &o->backoff_max_s, err, errsz)))
        goto out;
    if (!mt_upload_backend_find(o->backend)) {
        snprintf(err, errsz, "upload: METRICTAP_UPLOAD_BACKEND=\"%s\" is unknown; allowed: %s",
                 o->backend, mt_upload_backend_names());
        result = -EINVAL;
    }
out:
    return result;
}

static int mode_is(const char *v, const char *const *vals)
{
    if (!v)
        return 0;
    for (; *vals; vals++)
        if (strcasecmp(v, *vals) == 0)
            return 1;
    return 0;
}

static const char *const offline_modes[] = {"offline", "dryrun", "disabled", NULL};

int mt_upload_online(const struct mt_upload_opts *o)
{
    return !mode_is(getenv("METRICTAP_MODE"), offline_modes) &&
           !mode_is(getenv("WANDB_MODE"), offline_modes) && !mode_is(o->mode, offline_modes);
}

int mt_upload_enabled(const struct mt_upload_opts *o)
{
    return mt_upload_online(o) && o->url[0] != '\0';
}

int mt_upload_wanted(const struct mt_upload_opts *o)
{
    const struct mt_upload_backend *be =
        o->backend_ops ? o->backend_ops : mt_upload_backend_find(o->backend);
    if (!be)
        return 0;
    if (!be->local)
        return mt_upload_enabled(o);
    static const char *const off[] = {"disabled", NULL};
    return !mode_is(getenv("METRICTAP_MODE"), off) && !mode_is(getenv("WANDB_MODE"), off) &&
           !mode_is(o->mode, off);
}

int mt_upload_choose(const char *to, const struct mt_upload_opts *o, char names[][32], int max,
                     char *err, size_t errsz)
{
    int n = 0;
    if (!to || !*to) {
        if (o->url[0] && max > 0)
            snprintf(names[n++], 32, "%s", o->backend[0] ? o->backend : "mlflow");
        return n;
    }
    const char *p = to;
    while (*p) {
        size_t len = strcspn(p, ", ");
        if (len) {
            char name[32];
            snprintf(name, sizeof(name), "%.*s", (int)(len < 31 ? len : 31), p);
            if (len > 31 || !mt_upload_backend_find(name)) {
                snprintf(err, errsz, "upload: backend \"%.*s\" is unknown; allowed: %s",
                         (int)(len < 64 ? len : 64), p, mt_upload_backend_names());
                return -EINVAL;
            }
            int dup = 0;
            for (int i = 0; i < n; i++)
                dup |= strcmp(names[i], name) == 0;
            if (!dup && n < max)
                snprintf(names[n++], 32, "%s", name);
        }
        p += len;
        p += strspn(p, ", ");
    }
    return n;
}

void mt_upload_preflight(const char *to, const struct mt_upload_opts *o)
{
    char names[8][32], err[1200];
    int n = mt_upload_choose(to, o, names, 8, err, sizeof(err));
    if (n < 0) {
        fprintf(stderr, "metrictap: %s\n", err);
        return;
    }
    for (int i = 0; i < n; i++) {
        const struct mt_upload_backend *be = mt_upload_backend_find(names[i]);
        struct mt_upload_opts one = *o;
        snprintf(one.backend, sizeof(one.backend), "%s", names[i]);
        if (be && be->check && mt_upload_wanted(&one) && be->check(&one, err, sizeof(err)) != 0)
            fprintf(stderr, "metrictap: %s: %s; the run goes on without it\n", names[i], err);
    }
}
