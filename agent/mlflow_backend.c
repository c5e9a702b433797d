/* The MLflow backend of the uploader: experiment and run, log-batch within
 * the server's limits, state, artifacts through the mlflow-artifacts proxy.
 *
 * MLflow appends metrics, so a batch whose outcome is unknown (the request
 * may have been applied: timeout, broken connection, 5xx) is checked against
 * metrics/get-history before it is sent again; so is the first batch after a
 * start (a previous process may have died with a request in flight), and
 * each batch after one that was found already applied. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "mt_mlflow.h"
#include "mt_upload_backend.h"

#define BODY_MAX (1000 * 1000)   /* MLflow's 1 MB log-batch limit */
#define BODY_SPLIT (900 * 1000)  /* split a batch past this */

struct mlf {
    struct mt_mlflow_client *cli;
    const struct mt_upload_io *io;
    char run_id[64], exp_id[64];
    char artifact_path[512];  /* "<exp>/<run>/artifacts" or "" when not proxied */
    int verify_next;          /* check the next batch against the server first */
    double retry_after;
    struct mt_mlflow__buf body, path;
};

enum kind { K_METRIC, K_PARAM, K_TAG };

static void event_http(struct mlf *b, const char *name, const char *what, const char *key,
                       const struct mt_mlflow_resp *r)
{
    struct mt_mlflow__buf f;
    mt_mlflow__buf_init(&f, 64 << 10);
    mt_mlflow__buf_str(&f, "\"kind\":");
    mt_mlflow__buf_json(&f, what);
    if (key) {
        mt_mlflow__buf_str(&f, ",\"key\":");
        mt_mlflow__buf_json(&f, key);
    }
    mt_mlflow__buf_printf(&f, ",\"status\":%ld", r->status);
    if (r->error_code[0]) {
        mt_mlflow__buf_str(&f, ",\"error_code\":");
        mt_mlflow__buf_json(&f, r->error_code);
    }
    if (r->body && r->len) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", r->body);
        mt_mlflow__buf_str(&f, ",\"message\":");
        mt_mlflow__buf_json(&f, msg);
    }
    b->io->event(b->io->ctx, name, f.p);
    mt_mlflow__buf_free(&f);
}

static enum mt_upload_result call(struct mlf *b, const char *method, const char *path,
                                  const char *body, size_t len, struct mt_mlflow_resp *r)
{
    enum mt_upload_result res = mt_mlflow_call(b->cli, method, path, body, len, r);
    if (b->io->stats)
        b->io->stats->requests++;
    b->retry_after = res == MT_UPLOAD_RETRY ? r->retry_after : 0;
    return res;
}

/* ---- create / destroy ---- */

static void mlf_destroy(void *p)
{
    struct mlf *b = p;
    if (!b)
        return;
    mt_mlflow_client_destroy(b->cli);
    mt_mlflow__buf_free(&b->body);
    mt_mlflow__buf_free(&b->path);
    free(b);
}

static void *mlf_create(const struct mt_upload_opts *o, const struct mt_upload_io *io, char *err,
                        size_t errsz)
{
    struct mlf *b = calloc(1, sizeof(*b));
    int result = -1;
    if (!b) {
        snprintf(err, errsz, "mlflow: out of memory");
        goto out;
    }
    b->io = io;
    b->verify_next = 1;
    mt_mlflow__buf_init(&b->body, 2 * BODY_MAX);
    mt_mlflow__buf_init(&b->path, 64 << 10);
    struct mt_mlflow_conf conf = {
        .url = o->url, .username = o->username, .password = o->password, .token = o->token,
        .ca_path = o->ca_path, .timeout_s = o->request_timeout_s, .deadline_ms = io->deadline_ms,
    };
    b->cli = mt_mlflow_client_create(&conf, err, errsz);
    if (!b->cli)
        goto out;
    result = 0;
out:
    if (result) {
        mlf_destroy(b);
        b = NULL;
    }
    return b;
}

static double mlf_retry_after(void *p)
{
    return ((struct mlf *)p)->retry_after;
}

/* ---- experiment and run ---- */

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void set_artifact_path(struct mlf *b, const char *uri)
{
    b->artifact_path[0] = '\0';
    if (!uri || strncmp(uri, "mlflow-artifacts:", 17) != 0)
        return;
    const char *p = uri + 17;
    if (strncmp(p, "//", 2) == 0) { /* mlflow-artifacts://host:port/path */
        p = strchr(p + 2, '/');
        if (!p)
            return;
    }
    while (*p == '/')
        p++;
    snprintf(b->artifact_path, sizeof(b->artifact_path), "%s", p);
}

static enum mt_upload_result get_experiment(struct mlf *b, const char *name, int *found)
{
    struct mt_mlflow_resp r;
    *found = 0;
    b->path.len = 0;
    b->path.overflow = 0;
    mt_mlflow__buf_str(&b->path, "api/2.0/mlflow/experiments/get-by-name?experiment_name=");
    mt_mlflow__buf_urlenc(&b->path, name);
    enum mt_upload_result res = call(b, "GET", b->path.p, NULL, 0, &r);
    if (res == MT_UPLOAD_DROP && strcmp(r.error_code, "RESOURCE_DOES_NOT_EXIST") == 0)
        return MT_UPLOAD_OK;
    if (res != MT_UPLOAD_OK) {
        if (res == MT_UPLOAD_DROP)
            event_http(b, "upload_refused", "experiment", name, &r);
        return res;
    }
    cJSON *j = cJSON_ParseWithLength(r.body, r.len);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "experiment");
    const char *id = jstr(e, "experiment_id");
    const char *stage = jstr(e, "lifecycle_stage");
    if (id && !(stage && strcmp(stage, "deleted") == 0)) {
        snprintf(b->exp_id, sizeof(b->exp_id), "%s", id);
        *found = 1;
    } else if (id) {
        event_http(b, "upload_refused", "experiment deleted on the server", name, &r);
        res = MT_UPLOAD_DROP;
    } else {
        res = MT_UPLOAD_RETRY;
    }
    cJSON_Delete(j);
    return res;
}

static enum mt_upload_result ensure_experiment(struct mlf *b, const char *name)
{
    int found;
    enum mt_upload_result res = get_experiment(b, name, &found);
    if (res != MT_UPLOAD_OK || found)
        return res;
    struct mt_mlflow_resp r;
    b->body.len = 0;
    b->body.overflow = 0;
    mt_mlflow__buf_str(&b->body, "{\"name\":");
    mt_mlflow__buf_json(&b->body, name);
    mt_mlflow__buf_str(&b->body, "}");
    res = call(b, "POST", "api/2.0/mlflow/experiments/create", b->body.p, b->body.len, &r);
    if (res == MT_UPLOAD_OK) {
        cJSON *j = cJSON_ParseWithLength(r.body, r.len);
        const char *id = jstr(j, "experiment_id");
        if (id)
            snprintf(b->exp_id, sizeof(b->exp_id), "%s", id);
        cJSON_Delete(j);
        return id ? MT_UPLOAD_OK : MT_UPLOAD_RETRY;
    }
    /* A racing client created it, or our own earlier create went through. */
    if (strcmp(r.error_code, "RESOURCE_ALREADY_EXISTS") == 0 || res == MT_UPLOAD_RETRY) {
        res = get_experiment(b, name, &found);
        if (res == MT_UPLOAD_OK && !found)
            res = MT_UPLOAD_RETRY;
        return res;
    }
    event_http(b, "upload_refused", "experiment", name, &r);
    return res;
}

/* Takes the run id and artifact location from a run's "info" object (older
 * servers call the id run_uuid).  Returns 1 when it had an id. */
static int adopt_run(struct mlf *b, const cJSON *info)
{
    const char *id = jstr(info, "run_id");
    if (!id)
        id = jstr(info, "run_uuid");
    if (!id)
        return 0;
    snprintf(b->run_id, sizeof(b->run_id), "%s", id);
    set_artifact_path(b, jstr(info, "artifact_uri"));
    return 1;
}

/* A run created by an earlier attempt whose answer was lost carries our tag. */
static enum mt_upload_result find_run(struct mlf *b, const char *mt_id, int *found)
{
    struct mt_mlflow_resp r;
    char filter[256];
    *found = 0;
    snprintf(filter, sizeof(filter), "tags.`metrictap.run_id` = '%s'", mt_id);
    b->body.len = 0;
    b->body.overflow = 0;
    mt_mlflow__buf_str(&b->body, "{\"experiment_ids\":[");
    mt_mlflow__buf_json(&b->body, b->exp_id);
    mt_mlflow__buf_str(&b->body, "],\"max_results\":1,\"run_view_type\":\"ALL\",\"filter\":");
    mt_mlflow__buf_json(&b->body, filter);
    mt_mlflow__buf_str(&b->body, "}");
    enum mt_upload_result res =
        call(b, "POST", "api/2.0/mlflow/runs/search", b->body.p, b->body.len, &r);
    if (res != MT_UPLOAD_OK)
        return res == MT_UPLOAD_DROP ? MT_UPLOAD_OK : res; /* search refused: create */
    cJSON *j = cJSON_ParseWithLength(r.body, r.len);
    const cJSON *runs = cJSON_GetObjectItemCaseSensitive(j, "runs");
    if (adopt_run(b, cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(runs, 0), "info")))
        *found = 1;
    cJSON_Delete(j);
    return MT_UPLOAD_OK;
}

static void add_tag_json(struct mt_mlflow__buf *o, int *first, const char *k, const char *v)
{
    if (!k || !v)
        return;
    mt_mlflow__buf_str(o, *first ? "{\"key\":" : ",{\"key\":");
    mt_mlflow__buf_json(o, k);
    mt_mlflow__buf_str(o, ",\"value\":");
    mt_mlflow__buf_json(o, v);
    mt_mlflow__buf_str(o, "}");
    *first = 0;
}

static int mlf_run_tags(const cJSON *run, cJSON *out);

static enum mt_upload_result mlf_open_run(void *p, const cJSON *run, cJSON *state)
{
    struct mlf *b = p;
    const char *rid = jstr(state, "run_id");
    if (rid) {
        snprintf(b->run_id, sizeof(b->run_id), "%s", rid);
        const char *eid = jstr(state, "experiment_id");
        snprintf(b->exp_id, sizeof(b->exp_id), "%s", eid ? eid : "");
        set_artifact_path(b, jstr(state, "artifact_uri"));
        return MT_UPLOAD_OK;
    }
    const char *project = jstr(run, "project");
    const char *mt_id = jstr(run, "id");
    if (!project || !project[0])
        project = "Default";
    if (!mt_id)
        return MT_UPLOAD_DROP;
    enum mt_upload_result res = ensure_experiment(b, project);
    if (res != MT_UPLOAD_OK)
        return res;
    int found = 0;
    res = find_run(b, mt_id, &found);
    if (res != MT_UPLOAD_OK)
        return res;
    if (!found) {
        struct mt_mlflow_resp r;
        const char *name = jstr(run, "name");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(run, "start_time");
        double start = cJSON_IsNumber(st) ? st->valuedouble : 0;
        cJSON *tags = cJSON_CreateObject();
        mlf_run_tags(run, tags);
        struct mt_mlflow__buf *o = &b->body;
        o->len = 0;
        o->overflow = 0;
        mt_mlflow__buf_str(o, "{\"experiment_id\":");
        mt_mlflow__buf_json(o, b->exp_id);
        if (name) {
            mt_mlflow__buf_str(o, ",\"run_name\":");
            mt_mlflow__buf_json(o, name);
        }
        const char *user = jstr(run, "user");
        if (user) {
            mt_mlflow__buf_str(o, ",\"user_id\":");
            mt_mlflow__buf_json(o, user);
        }
        mt_mlflow__buf_printf(o, ",\"start_time\":%lld,\"tags\":[", (long long)llround(start * 1000));
        int first = 1;
        const cJSON *t;
        cJSON_ArrayForEach(t, tags) add_tag_json(o, &first, t->string, t->valuestring);
        mt_mlflow__buf_str(o, "]}");
        cJSON_Delete(tags);
        res = call(b, "POST", "api/2.0/mlflow/runs/create", o->p, o->len, &r);
        if (res == MT_UPLOAD_DROP) {
            event_http(b, "upload_refused", "run", mt_id, &r);
            return res;
        }
        if (res != MT_UPLOAD_OK)
            return res; /* a run may have been created: find_run sees it next time */
        cJSON *j = cJSON_ParseWithLength(r.body, r.len);
        int id = adopt_run(b, cJSON_GetObjectItemCaseSensitive(
                                  cJSON_GetObjectItemCaseSensitive(j, "run"), "info"));
        cJSON_Delete(j);
        if (!id)
            return MT_UPLOAD_RETRY;
        b->verify_next = 0; /* a new run holds no points */
    }
    cJSON_DeleteItemFromObjectCaseSensitive(state, "run_id");
    cJSON_DeleteItemFromObjectCaseSensitive(state, "experiment_id");
    cJSON_DeleteItemFromObjectCaseSensitive(state, "artifact_uri");
    cJSON_AddStringToObject(state, "run_id", b->run_id);
    cJSON_AddStringToObject(state, "experiment_id", b->exp_id);
    if (b->artifact_path[0]) {
        char uri[600];
        snprintf(uri, sizeof(uri), "mlflow-artifacts:/%s", b->artifact_path);
        cJSON_AddStringToObject(state, "artifact_uri", uri);
    }
    return MT_UPLOAD_OK;
}

/* The tags MLflow's UI understands, and ours.  Values are strings. */
static int mlf_run_tags(const cJSON *run, cJSON *out)
{
    const char *v;
    if ((v = jstr(run, "name")))
        cJSON_AddStringToObject(out, "mlflow.runName", v);
    if ((v = jstr(run, "user")))
        cJSON_AddStringToObject(out, "mlflow.user", v);
    if ((v = jstr(run, "program")))
        cJSON_AddStringToObject(out, "mlflow.source.name", v);
    cJSON_AddStringToObject(out, "mlflow.source.type", "LOCAL");
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(run, "metadata");
    const cJSON *git = cJSON_GetObjectItemCaseSensitive(md, "git");
    if ((v = jstr(git, "commit")) && v[0])
        cJSON_AddStringToObject(out, "mlflow.source.git.commit", v);
    if ((v = jstr(git, "branch")) && v[0])
        cJSON_AddStringToObject(out, "mlflow.source.git.branch", v);
    if ((v = jstr(git, "remote")) && v[0])
        cJSON_AddStringToObject(out, "mlflow.source.git.repoURL", v);
    if ((v = jstr(run, "notes")) && v[0])
        cJSON_AddStringToObject(out, "mlflow.note.content", v);
    if ((v = jstr(run, "id")))
        cJSON_AddStringToObject(out, "metrictap.run_id", v);
    if ((v = jstr(run, "group")) && v[0])
        cJSON_AddStringToObject(out, "metrictap.group", v);
    if ((v = jstr(run, "job_type")) && v[0])
        cJSON_AddStringToObject(out, "metrictap.job_type", v);
    if ((v = jstr(run, "host")) && v[0])
        cJSON_AddStringToObject(out, "metrictap.host", v);
    const cJSON *tags = cJSON_GetObjectItemCaseSensitive(run, "tags");
    const cJSON *t;
    char key[MT_UPLOAD_KEY_MAX];
    cJSON_ArrayForEach(t, tags)
    {
        if (!cJSON_IsString(t) || mt_mlflow_key_sanitize(t->valuestring, key, sizeof(key)) < 0)
            continue;
        if (!cJSON_GetObjectItemCaseSensitive(out, key))
            cJSON_AddStringToObject(out, key, "true");
    }
    char *joined = NULL;
    size_t jl = 0;
    cJSON_ArrayForEach(t, tags)
    {
        if (!cJSON_IsString(t))
            continue;
        size_t n = strlen(t->valuestring);
        char *nj = realloc(joined, jl + n + 2);
        if (!nj)
            break;
        joined = nj;
        if (jl)
            joined[jl++] = ',';
        memcpy(joined + jl, t->valuestring, n + 1);
        jl += n;
    }
    if (joined) {
        cJSON_AddStringToObject(out, "metrictap.tags", joined);
        free(joined);
    }
    return 0;
}

/* ---- log-batch ---- */

static void begin_batch(struct mlf *b)
{
    b->body.len = 0;
    b->body.overflow = 0;
    mt_mlflow__buf_str(&b->body, "{\"run_id\":");
    mt_mlflow__buf_json(&b->body, b->run_id);
}

static void add_points(struct mt_mlflow__buf *o, const struct mt_upload_point *pts, size_t n,
                       const unsigned char *skip)
{
    mt_mlflow__buf_str(o, ",\"metrics\":[");
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        if (skip && skip[i])
            continue;
        char v[64];
        mt_mlflow_fmt_value(v, sizeof(v), pts[i].value);
        mt_mlflow__buf_str(o, first ? "{\"key\":" : ",{\"key\":");
        mt_mlflow__buf_json(o, pts[i].key);
        mt_mlflow__buf_printf(o, ",\"value\":%s,\"timestamp\":%lld,\"step\":%lld}", v,
                              (long long)pts[i].ts_ms, (long long)pts[i].step);
        first = 0;
    }
    mt_mlflow__buf_str(o, "]");
}

static void add_kvs(struct mt_mlflow__buf *o, const char *field, const struct mt_upload_kv *kv,
                    size_t n)
{
    mt_mlflow__buf_printf(o, ",\"%s\":[", field);
    int first = 1;
    for (size_t i = 0; i < n; i++)
        add_tag_json(o, &first, kv[i].key, kv[i].value);
    mt_mlflow__buf_str(o, "]");
}

/* Is this refusal about the items (drop them) rather than the run or our
 * credentials (stop and leave everything for later)? */
static int item_level(const struct mt_mlflow_resp *r)
{
    return r->status == 400 && (strcmp(r->error_code, "INVALID_PARAMETER_VALUE") == 0 ||
                                r->error_code[0] == '\0');
}

/* Sends items [0, n) of one kind; on an item-level refusal, halves until the
 * offending items are found, dropped and reported. */
static enum mt_upload_result send_items(struct mlf *b, enum kind k, const void *items, size_t n,
                                        const unsigned char *skip)
{
    if (n == 0)
        return MT_UPLOAD_OK;
    if (skip) {
        size_t live = 0;
        for (size_t i = 0; i < n; i++)
            live += !skip[i];
        if (!live)
            return MT_UPLOAD_OK;
    }
    begin_batch(b);
    if (k == K_METRIC)
        add_points(&b->body, items, n, skip);
    else
        add_kvs(&b->body, k == K_PARAM ? "params" : "tags", items, n);
    mt_mlflow__buf_str(&b->body, "}");
    if ((b->body.overflow || b->body.len > BODY_SPLIT) && n > 1) {
        size_t h = n / 2;
        size_t sz = k == K_METRIC ? sizeof(struct mt_upload_point) : sizeof(struct mt_upload_kv);
        enum mt_upload_result res = send_items(b, k, items, h, skip);
        if (res != MT_UPLOAD_OK)
            return res;
        return send_items(b, k, (const char *)items + h * sz, n - h, skip ? skip + h : NULL);
    }
    struct mt_mlflow_resp r;
    enum mt_upload_result res;
    if (k == K_METRIC) {
        res = mt_mlflow_call_once(b->cli, "api/2.0/mlflow/runs/log-batch", b->body.p, b->body.len,
                                  &r);
        if (b->io->stats)
            b->io->stats->requests++;
        b->retry_after = res == MT_UPLOAD_RETRY ? r.retry_after : 0;
    } else {
        res = call(b, "POST", "api/2.0/mlflow/runs/log-batch", b->body.p, b->body.len, &r);
    }
    if (res == MT_UPLOAD_RETRY) {
        if (k == K_METRIC && r.unknown)
            b->verify_next = 1;
        return res;
    }
    if (res == MT_UPLOAD_OK) {
        if (b->io->stats) {
            size_t live = n;
            if (skip)
                for (size_t i = 0; i < n; i++)
                    live -= skip[i] != 0;
            if (k == K_METRIC)
                b->io->stats->points_sent += live;
            else if (k == K_PARAM)
                b->io->stats->params_sent += live;
            else
                b->io->stats->tags_sent += live;
        }
        return res;
    }
    if (!item_level(&r)) {
        event_http(b, "upload_refused", k == K_METRIC ? "metrics" : k == K_PARAM ? "params" : "tags",
                   NULL, &r);
        return MT_UPLOAD_DROP;
    }
    if (n == 1) {
        const char *key = k == K_METRIC ? ((const struct mt_upload_point *)items)->key
                                        : ((const struct mt_upload_kv *)items)->key;
        event_http(b, "upload_dropped", k == K_METRIC ? "metric" : k == K_PARAM ? "param" : "tag",
                   key, &r);
        if (b->io->stats && k == K_METRIC)
            b->io->stats->points_dropped++;
        return MT_UPLOAD_OK;
    }
    size_t h = n / 2;
    size_t sz = k == K_METRIC ? sizeof(struct mt_upload_point) : sizeof(struct mt_upload_kv);
    res = send_items(b, k, items, h, skip);
    if (res != MT_UPLOAD_OK)
        return res;
    return send_items(b, k, (const char *)items + h * sz, n - h, skip ? skip + h : NULL);
}

/* ---- verification of a batch whose outcome is unknown ---- */

struct spt {
    int64_t ts, step;
    double value;
};

static int spt_cmp(const void *a, const void *b)
{
    const struct spt *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    if (x->step != y->step)
        return x->step < y->step ? -1 : 1;
    return 0;
}

static double jnum(const cJSON *v)
{
    if (cJSON_IsNumber(v))
        return v->valuedouble;
    if (cJSON_IsString(v)) {
        if (strcmp(v->valuestring, "NaN") == 0)
            return NAN;
        if (strcmp(v->valuestring, "Infinity") == 0)
            return INFINITY;
        if (strcmp(v->valuestring, "-Infinity") == 0)
            return -INFINITY;
        return strtod(v->valuestring, NULL);
    }
    return NAN;
}

/* The server's points of one key, sorted by (timestamp, step). */
static enum mt_upload_result fetch_history(struct mlf *b, const char *key, struct spt **out,
                                           size_t *nout)
{
    struct spt *v = NULL;
    size_t n = 0, cap = 0;
    char *token = NULL;
    enum mt_upload_result res = MT_UPLOAD_OK;
    for (;;) {
        struct mt_mlflow_resp r;
        b->path.len = 0;
        b->path.overflow = 0;
        mt_mlflow__buf_str(&b->path, "api/2.0/mlflow/metrics/get-history?run_id=");
        mt_mlflow__buf_urlenc(&b->path, b->run_id);
        mt_mlflow__buf_str(&b->path, "&metric_key=");
        mt_mlflow__buf_urlenc(&b->path, key);
        if (token) {
            mt_mlflow__buf_str(&b->path, "&max_results=25000&page_token=");
            mt_mlflow__buf_urlenc(&b->path, token);
        }
        res = call(b, "GET", b->path.p, NULL, 0, &r);
        if (res != MT_UPLOAD_OK) {
            if (res == MT_UPLOAD_DROP)
                res = MT_UPLOAD_RETRY; /* cannot check: do not send */
            break;
        }
        cJSON *j = cJSON_ParseWithLength(r.body, r.len);
        if (!j) {
            res = MT_UPLOAD_RETRY;
            break;
        }
        const cJSON *m;
        cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(j, "metrics"))
        {
            if (n == cap) {
                cap = cap ? cap * 2 : 256;
                struct spt *nv = realloc(v, cap * sizeof(*v));
                if (!nv) {
                    res = MT_UPLOAD_RETRY;
                    break;
                }
                v = nv;
            }
            const cJSON *ts = cJSON_GetObjectItemCaseSensitive(m, "timestamp");
            const cJSON *st = cJSON_GetObjectItemCaseSensitive(m, "step");
            v[n].ts = cJSON_IsNumber(ts) ? (int64_t)ts->valuedouble : 0;
            v[n].step = cJSON_IsNumber(st) ? (int64_t)st->valuedouble : 0;
            v[n].value = jnum(cJSON_GetObjectItemCaseSensitive(m, "value"));
            n++;
        }
        free(token);
        token = NULL;
        const char *nt = jstr(j, "next_page_token");
        if (nt && nt[0])
            token = strdup(nt);
        cJSON_Delete(j);
        if (res != MT_UPLOAD_OK || !token)
            break;
    }
    free(token);
    if (res != MT_UPLOAD_OK) {
        free(v);
        return res;
    }
    if (n)
        qsort(v, n, sizeof(*v), spt_cmp);
    *out = v;
    *nout = n;
    return MT_UPLOAD_OK;
}

static int same_point(const struct mt_upload_point *a, const struct mt_upload_point *b)
{
    if (strcmp(a->key, b->key) != 0 || a->ts_ms != b->ts_ms || a->step != b->step)
        return 0;
    return (isnan(a->value) && isnan(b->value)) || a->value == b->value;
}

/* present[i] = 1 for the points of the batch the server already holds.  For
 * each distinct point T of the batch: the server holds s copies, the store
 * has p copies before the batch (sent already), so s - p of the batch's
 * copies landed. */
static enum mt_upload_result verify(struct mlf *b, const struct mt_upload_point *pts, size_t n,
                                    unsigned char *present)
{
    enum mt_upload_result res = MT_UPLOAD_OK;
    unsigned *prior = calloc(n ? n : 1, sizeof(*prior));
    unsigned char *assigned = calloc(n ? n : 1, 1);
    if (!prior || !assigned) {
        res = MT_UPLOAD_RETRY;
        goto out;
    }
    if (b->io->count_prior(b->io->ctx, pts, n, prior) != 0) {
        res = MT_UPLOAD_RETRY;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (assigned[i])
            continue;
        struct spt *srv = NULL;
        size_t ns = 0;
        res = fetch_history(b, pts[i].key, &srv, &ns);
        if (res != MT_UPLOAD_OK)
            break;
        for (size_t k = i; k < n; k++) {
            if (assigned[k] || strcmp(pts[k].key, pts[i].key) != 0)
                continue;
            struct spt want = {pts[k].ts_ms, pts[k].step, 0};
            struct spt *hit = ns ? bsearch(&want, srv, ns, sizeof(*srv), spt_cmp) : NULL;
            long s = 0;
            if (hit) {
                struct spt *lo = hit, *hi = hit;
                while (lo > srv && spt_cmp(lo - 1, &want) == 0)
                    lo--;
                while (hi + 1 < srv + ns && spt_cmp(hi + 1, &want) == 0)
                    hi++;
                for (struct spt *q = lo; q <= hi; q++)
                    s += mt_mlflow_value_equal(pts[k].value, q->value);
            }
            long arrived = s - (long)prior[k];
            for (size_t m = k; m < n; m++) {
                if (assigned[m] || !same_point(&pts[m], &pts[k]))
                    continue;
                present[m] = arrived > 0;
                arrived--;
                assigned[m] = 1;
            }
        }
        free(srv);
    }
out:
    free(prior);
    free(assigned);
    return res;
}

static enum mt_upload_result mlf_send_points(void *p, const struct mt_upload_point *pts, size_t n)
{
    struct mlf *b = p;
    if (!b->verify_next)
        return send_items(b, K_METRIC, pts, n, NULL);
    unsigned char *present = calloc(n ? n : 1, 1);
    if (!present)
        return MT_UPLOAD_RETRY;
    enum mt_upload_result res = verify(b, pts, n, present);
    if (res == MT_UPLOAD_OK) {
        size_t have = 0;
        for (size_t i = 0; i < n; i++)
            have += present[i];
        if (b->io->stats)
            b->io->stats->points_verified_present += have;
        b->verify_next = 0;
        res = send_items(b, K_METRIC, pts, n, present);
        /* All of it had landed: the next batch may have too. */
        if (res == MT_UPLOAD_OK && n && have == n)
            b->verify_next = 1;
    }
    free(present);
    return res;
}

static enum mt_upload_result mlf_send_params(void *p, const struct mt_upload_kv *kv, size_t n)
{
    return send_items(p, K_PARAM, kv, n, NULL);
}

static enum mt_upload_result mlf_send_tags(void *p, const struct mt_upload_kv *kv, size_t n)
{
    return send_items(p, K_TAG, kv, n, NULL);
}

static enum mt_upload_result mlf_set_state(void *p, const char *state, double end_time)
{
    struct mlf *b = p;
    const char *st = "RUNNING";
    if (strcmp(state, "finished") == 0)
        st = "FINISHED";
    else if (strcmp(state, "killed") == 0)
        st = "KILLED";
    else if (strcmp(state, "running") != 0)
        st = "FAILED"; /* failed, crashed, lost */
    begin_batch(b);
    mt_mlflow__buf_printf(&b->body, ",\"status\":\"%s\"", st);
    if (end_time > 0 && strcmp(st, "RUNNING") != 0)
        mt_mlflow__buf_printf(&b->body, ",\"end_time\":%lld", (long long)llround(end_time * 1000));
    mt_mlflow__buf_str(&b->body, "}");
    struct mt_mlflow_resp r;
    enum mt_upload_result res =
        call(b, "POST", "api/2.0/mlflow/runs/update", b->body.p, b->body.len, &r);
    if (res == MT_UPLOAD_DROP)
        event_http(b, "upload_refused", "state", state, &r);
    return res;
}

static enum mt_upload_result mlf_put_file(void *p, const char *name, const char *file)
{
    struct mlf *b = p;
    if (!b->artifact_path[0]) {
        char f[300];
        snprintf(f, sizeof(f), "\"kind\":\"artifact\",\"key\":\"%s\",\"message\":\"the run's "
                 "artifact_uri is not served by the mlflow-artifacts proxy\"", name);
        b->io->event(b->io->ctx, "upload_skipped", f);
        return MT_UPLOAD_DROP;
    }
    b->path.len = 0;
    b->path.overflow = 0;
    mt_mlflow__buf_str(&b->path, "api/2.0/mlflow-artifacts/artifacts/");
    mt_mlflow__buf_str(&b->path, b->artifact_path);
    mt_mlflow__buf_str(&b->path, "/");
    mt_mlflow__buf_urlenc(&b->path, name);
    struct mt_mlflow_resp r;
    enum mt_upload_result res = mt_mlflow_put_file(b->cli, b->path.p, file, &r);
    if (b->io->stats)
        b->io->stats->requests++;
    b->retry_after = res == MT_UPLOAD_RETRY ? r.retry_after : 0;
    if (res == MT_UPLOAD_DROP)
        event_http(b, "upload_dropped", "artifact", name, &r);
    else if (res == MT_UPLOAD_OK && b->io->stats)
        b->io->stats->artifacts_sent++;
    return res;
}

static int mlf_map_key(const char *key, int system, char *out, size_t outsz, double *scale)
{
    *scale = 1;
    if (system)
        return mt_mlflow_system_key(key, out, outsz, scale);
    return mt_mlflow_key_sanitize(key, out, outsz) < 0 ? -1 : 0;
}

const struct mt_upload_backend mt_mlflow_backend = {
    .name = "mlflow",
    .max_points = 1000,
    .max_params = 100,
    .max_tags = 100,
    .map_key = mlf_map_key,
    .run_tags = mlf_run_tags,
    .create = mlf_create,
    .destroy = mlf_destroy,
    .open_run = mlf_open_run,
    .send_points = mlf_send_points,
    .send_params = mlf_send_params,
    .send_tags = mlf_send_tags,
    .set_state = mlf_set_state,
    .put_file = mlf_put_file,
    .retry_after = mlf_retry_after,
};
