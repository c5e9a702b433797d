/* The MLflow backend of the uploader: experiment and run, params and tags,
 * state, artifacts through the mlflow-artifacts proxy.  Metrics go through
 * runs/log-batch in mlflow_log.c; the REST client is mlflow_client.c.
 *
 * Its part of the cursor: {"run_id", "experiment_id", "artifact_uri",
 * "params": {key: value as sent}, "tags": {...}}. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "../../common/mt_json.h"
#include "../mt_upload_backend.h"
#include "mt_mlflow.h"

#define BODY_MAX (1000 * 1000)   /* MLflow's 1 MB log-batch limit */
#define CREATE_SETTLE_S 10       /* wait this long for a create of unknown outcome to show */

void mt_mlflow__event_http(struct mt_mlflow__be *b, const char *name, const char *what, const char *key,
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

enum mt_upload_result mt_mlflow__call(struct mt_mlflow__be *b, const char *method, const char *path,
                                  const char *body, size_t len, struct mt_mlflow_resp *r)
{
    enum mt_upload_result res = mt_mlflow_call(b->cli, method, path, body, len, r);
    mt_mlflow__counted(b, res, r);
    return res;
}

void mt_mlflow__counted(struct mt_mlflow__be *b, enum mt_upload_result res,
                        const struct mt_mlflow_resp *r)
{
    if (b->io->stats)
        b->io->stats->requests++;
    b->retry_after = res == MT_UPLOAD_RETRY ? r->retry_after : 0;
    if (res != MT_UPLOAD_OK)
        mt_mlflow_describe(r, b->last_error, sizeof(b->last_error));
}

static const char *mlf_last_error(void *p)
{
    return ((struct mt_mlflow__be *)p)->last_error;
}

/* ---- create / destroy ---- */

static void mlf_destroy(void *p)
{
    struct mt_mlflow__be *b = p;
    if (!b)
        return;
    mt_mlflow_client_destroy(b->cli);
    mt_mlflow__check_reset(&b->check);
    mt_mlflow__buf_free(&b->body);
    mt_mlflow__buf_free(&b->path);
    free(b);
}

static void *mlf_create(const struct mt_upload_opts *o, const struct mt_upload_io *io, char *err,
                        size_t errsz)
{
    struct mt_mlflow__be *b = calloc(1, sizeof(*b));
    int result = -1;
    if (!b) {
        snprintf(err, errsz, "mlflow: out of memory");
        goto out;
    }
    b->io = io;
    b->verify_next = 1;
    b->param_value_max = o->param_value_max;
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
    return ((struct mt_mlflow__be *)p)->retry_after;
}

/* ---- experiment and run ---- */

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void set_artifact_path(struct mt_mlflow__be *b, const char *uri)
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

static enum mt_upload_result get_experiment(struct mt_mlflow__be *b, const char *name, int *found)
{
    struct mt_mlflow_resp r;
    *found = 0;
    b->path.len = 0;
    b->path.overflow = 0;
    mt_mlflow__buf_str(&b->path, "api/2.0/mlflow/experiments/get-by-name?experiment_name=");
    mt_mlflow__buf_urlenc(&b->path, name);
    enum mt_upload_result res = mt_mlflow__call(b, "GET", b->path.p, NULL, 0, &r);
    if (res == MT_UPLOAD_DROP && strcmp(r.error_code, "RESOURCE_DOES_NOT_EXIST") == 0)
        return MT_UPLOAD_OK;
    if (res != MT_UPLOAD_OK) {
        if (res == MT_UPLOAD_DROP)
            mt_mlflow__event_http(b, "upload_refused", "experiment", name, &r);
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
        mt_mlflow__event_http(b, "upload_refused", "experiment deleted on the server", name, &r);
        res = MT_UPLOAD_DROP;
    } else {
        res = MT_UPLOAD_RETRY;
    }
    cJSON_Delete(j);
    return res;
}

static enum mt_upload_result ensure_experiment(struct mt_mlflow__be *b, const char *name)
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
    res = mt_mlflow__call(b, "POST", "api/2.0/mlflow/experiments/create", b->body.p, b->body.len, &r);
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
    mt_mlflow__event_http(b, "upload_refused", "experiment", name, &r);
    return res;
}

/* Takes the run id and artifact location from a run's "info" object (older
 * servers call the id run_uuid).  Returns 1 when it had an id. */
static int adopt_run(struct mt_mlflow__be *b, const cJSON *info)
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

/* runs/search in the experiment for the runs carrying our metrictap.run_id tag
 * (view: "ALL" or "ACTIVE_ONLY"); the answer in *r. */
static enum mt_upload_result search_ours(struct mt_mlflow__be *b, const char *mt_id, int max,
                                         const char *view, struct mt_mlflow_resp *r)
{
    char filter[256];
    snprintf(filter, sizeof(filter), "tags.`metrictap.run_id` = '%s'", mt_id);
    b->body.len = 0;
    b->body.overflow = 0;
    mt_mlflow__buf_str(&b->body, "{\"experiment_ids\":[");
    mt_mlflow__buf_json(&b->body, b->exp_id);
    char tail[96];
    snprintf(tail, sizeof(tail), "],\"max_results\":%d,\"run_view_type\":\"%s\",\"filter\":", max,
             view);
    mt_mlflow__buf_str(&b->body, tail);
    mt_mlflow__buf_json(&b->body, filter);
    mt_mlflow__buf_str(&b->body, "}");
    return mt_mlflow__call(b, "POST", "api/2.0/mlflow/runs/search", b->body.p, b->body.len, r);
}

/* A run created by an earlier attempt whose answer was lost carries our tag. */
static enum mt_upload_result find_run(struct mt_mlflow__be *b, const char *mt_id, int *found)
{
    struct mt_mlflow_resp r;
    *found = 0;
    enum mt_upload_result res = search_ours(b, mt_id, 1, "ALL", &r);
    if (res != MT_UPLOAD_OK)
        return res == MT_UPLOAD_DROP ? MT_UPLOAD_OK : res; /* search refused: create */
    cJSON *j = cJSON_ParseWithLength(r.body, r.len);
    const cJSON *runs = cJSON_GetObjectItemCaseSensitive(j, "runs");
    if (adopt_run(b, cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(runs, 0), "info")))
        *found = 1;
    cJSON_Delete(j);
    return MT_UPLOAD_OK;
}

void mt_mlflow__add_tag_json(struct mt_mlflow__buf *o, int *first, const char *k, const char *v)
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
    struct mt_mlflow__be *b = p;
    b->state = state;
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
    /* The experiment found by an earlier attempt stays found: a path that
     * fails every third request must not spend each attempt getting it. */
    const char *known_exp = jstr(state, "experiment_id");
    enum mt_upload_result res = MT_UPLOAD_OK;
    if (known_exp && known_exp[0])
        snprintf(b->exp_id, sizeof(b->exp_id), "%s", known_exp);
    else
        res = ensure_experiment(b, project);
    if (res != MT_UPLOAD_OK)
        return res;
    if (!known_exp) {
        cJSON_AddStringToObject(state, "experiment_id", b->exp_id);
        if (b->io->progress)
            b->io->progress(b->io->ctx);
    }
    int found = 0;
    res = find_run(b, mt_id, &found);
    if (res != MT_UPLOAD_OK)
        return res;
    /* An earlier create of unknown outcome (its answer lost, or cut off at
     * the end of a flush) may still be on its way through a busy server:
     * give it time to show before creating another run. */
    const cJSON *pending = cJSON_GetObjectItemCaseSensitive(state, "create_unknown_at");
    double now = (double)time(NULL);
    if (!found && cJSON_IsNumber(pending) && now - pending->valuedouble < CREATE_SETTLE_S &&
        now >= pending->valuedouble) {
        snprintf(b->last_error, sizeof(b->last_error),
                 "waiting for an earlier runs/create to show on the server");
        return MT_UPLOAD_RETRY;
    }
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
        cJSON_ArrayForEach(t, tags) mt_mlflow__add_tag_json(o, &first, t->string, t->valuestring);
        mt_mlflow__buf_str(o, "]}");
        cJSON_Delete(tags);
        res = mt_mlflow__call(b, "POST", "api/2.0/mlflow/runs/create", o->p, o->len, &r);
        if (res == MT_UPLOAD_DROP) {
            mt_mlflow__event_http(b, "upload_refused", "run", mt_id, &r);
            return res;
        }
        if (res != MT_UPLOAD_OK) {
            /* a run may have been created: find_run sees it next time */
            if (r.unknown) {
                cJSON_DeleteItemFromObjectCaseSensitive(state, "create_unknown_at");
                cJSON_AddNumberToObject(state, "create_unknown_at", now);
            }
            return res;
        }
        cJSON *j = cJSON_ParseWithLength(r.body, r.len);
        int id = adopt_run(b, cJSON_GetObjectItemCaseSensitive(
                                  cJSON_GetObjectItemCaseSensitive(j, "run"), "info"));
        cJSON_Delete(j);
        if (!id)
            return MT_UPLOAD_RETRY;
        b->verify_next = 0; /* a new run holds no points */
    }
    cJSON_DeleteItemFromObjectCaseSensitive(state, "create_unknown_at");
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

/* ---- params and tags: what changed in run.json ---- */

/* Sends the key/values of `want` that differ from `sent` (the part of the
 * backend's state that remembers what the server has). */
static enum mt_upload_result send_kvs(struct mt_mlflow__be *b, cJSON *want, cJSON *sent,
                                      enum mt_mlflow__kind kind)
{
    struct mt_mlflow__kv kv[100]; /* MLflow's limit of params or tags in one log-batch */
    size_t n = 0;
    enum mt_upload_result res = MT_UPLOAD_OK;
    cJSON *it = want ? want->child : NULL;
    for (;;) {
        for (; it && n < sizeof(kv) / sizeof(kv[0]); it = it->next) {
            const cJSON *s = cJSON_GetObjectItemCaseSensitive(sent, it->string);
            if (cJSON_IsString(s) && strcmp(s->valuestring, it->valuestring) == 0)
                continue;
            kv[n].key = it->string;
            kv[n].value = it->valuestring;
            n++;
        }
        if (!n)
            break;
        res = mt_mlflow__send_items(b, kind, kv, n, NULL);
        if (res != MT_UPLOAD_OK)
            break;
        for (size_t i = 0; i < n; i++) {
            cJSON_DeleteItemFromObjectCaseSensitive(sent, kv[i].key);
            cJSON_AddStringToObject(sent, kv[i].key, kv[i].value);
        }
        n = 0;
    }
    return res;
}

/* A tag we set that run.json no longer has (`metrictap tag RUN -x`, notes
 * cleared) is deleted on the server, and forgotten once it is. */
static enum mt_upload_result delete_gone_tags(struct mt_mlflow__be *b, const cJSON *want,
                                              cJSON *sent)
{
    cJSON *it = sent ? sent->child : NULL;
    while (it) {
        cJSON *next = it->next;
        if (it->string && !cJSON_GetObjectItemCaseSensitive(want, it->string)) {
            struct mt_mlflow_resp r;
            mt_mlflow__begin_batch(b);
            mt_mlflow__buf_str(&b->body, ",\"key\":");
            mt_mlflow__buf_json(&b->body, it->string);
            mt_mlflow__buf_str(&b->body, "}");
            enum mt_upload_result res = mt_mlflow__call(b, "POST", "api/2.0/mlflow/runs/delete-tag",
                                                        b->body.p, b->body.len, &r);
            if (res == MT_UPLOAD_RETRY)
                return res;
            /* gone already (RESOURCE_DOES_NOT_EXIST), or refused: reported */
            if (res == MT_UPLOAD_DROP && strcmp(r.error_code, "RESOURCE_DOES_NOT_EXIST") != 0)
                mt_mlflow__event_http(b, "upload_dropped", "tag deletion", it->string, &r);
            cJSON_DeleteItemFromObjectCaseSensitive(sent, it->string);
        }
        it = next;
    }
    return MT_UPLOAD_OK;
}

static cJSON *state_obj(struct mt_mlflow__be *b, const char *key)
{
    cJSON *o = cJSON_GetObjectItemCaseSensitive(b->state, key);
    if (!cJSON_IsObject(o)) {
        cJSON_DeleteItemFromObjectCaseSensitive(b->state, key);
        o = cJSON_AddObjectToObject(b->state, key);
    }
    return o;
}

/* A param's text: a number as it was printed ("30", "1e-3"), never
 * re-formatted; a bool as true/false; lists and objects as JSON. */
static void param_text(const cJSON *v, char *out, size_t outsz)
{
    char num[64];
    if (cJSON_IsString(v)) {
        snprintf(out, outsz, "%s", v->valuestring);
    } else if (cJSON_IsBool(v)) {
        snprintf(out, outsz, "%s", cJSON_IsTrue(v) ? "true" : "false");
    } else if (cJSON_IsNumber(v)) {
        snprintf(out, outsz, "%s", mt_json_number_text(v, num, sizeof(num)));
    } else {
        char *t = mt_json_print_literal(v, 0);
        snprintf(out, outsz, "%s", t ? t : "");
        free(t);
    }
}

static enum mt_upload_result mlf_update_run(void *p, const cJSON *run)
{
    struct mt_mlflow__be *b = p;
    cJSON *params = cJSON_CreateObject();
    cJSON *tags = cJSON_CreateObject();
    cJSON *sentp = state_obj(b, "params");
    const cJSON *it;
    size_t vmax = b->param_value_max ? b->param_value_max : 6000;
    char *val = malloc(65536);
    enum mt_upload_result res = MT_UPLOAD_RETRY;
    if (!params || !tags || !val)
        goto out;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(run, "config"))
    {
        char key[MT_UPLOAD_KEY_MAX];
        if (!it->string || mt_mlflow_key_sanitize(it->string, key, sizeof(key)) < 0)
            continue;
        param_text(it, val, 65536);
        if (strlen(val) > vmax) {
            val[vmax] = '\0';
            if (!cJSON_GetObjectItemCaseSensitive(sentp, key)) {
                char f[600];
                snprintf(f, sizeof(f), "\"kind\":\"param\",\"key\":\"%s\",\"limit\":%zu", key,
                         vmax);
                b->io->event(b->io->ctx, "upload_truncated", f);
            }
        }
        cJSON_DeleteItemFromObjectCaseSensitive(params, key);
        cJSON_AddStringToObject(params, key, val);
    }
    mlf_run_tags(run, tags);
    res = send_kvs(b, params, sentp, MT_MLFLOW__PARAM);
    if (res == MT_UPLOAD_OK)
        res = send_kvs(b, tags, state_obj(b, "tags"), MT_MLFLOW__TAG);
    if (res == MT_UPLOAD_OK)
        res = delete_gone_tags(b, tags, state_obj(b, "tags"));
out:
    free(val);
    cJSON_Delete(params);
    cJSON_Delete(tags);
    return res;
}

/* ---- state and artifacts ---- */

/* A create whose answer was lost can still land after a second create
 * went through: at the end, every other run carrying our metrictap.run_id
 * in the experiment is such an orphan (it never got a point from us), and
 * is deleted.  A search or delete that can be retried retries the end of
 * the run (runs/update again, then this), so that a path failing now and
 * then does not leave the orphan for good; one the server refuses is left. */
static enum mt_upload_result delete_orphans(struct mt_mlflow__be *b, const char *mt_id)
{
    struct mt_mlflow_resp r;
    enum mt_upload_result res = search_ours(b, mt_id, 20, "ACTIVE_ONLY", &r);
    if (res != MT_UPLOAD_OK)
        return res == MT_UPLOAD_DROP ? MT_UPLOAD_OK : res;
    cJSON *j = cJSON_ParseWithLength(r.body, r.len);
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "runs"))
    {
        const cJSON *info = cJSON_GetObjectItemCaseSensitive(it, "info");
        const char *id = jstr(info, "run_id");
        if (!id || strcmp(id, b->run_id) == 0)
            continue;
        char body[200], f[300];
        snprintf(body, sizeof(body), "{\"run_id\":\"%.64s\"}", id);
        enum mt_upload_result del =
            mt_mlflow__call(b, "POST", "api/2.0/mlflow/runs/delete", body, strlen(body), &r);
        if (del == MT_UPLOAD_OK) {
            snprintf(f, sizeof(f), "\"kind\":\"run\",\"key\":\"%.64s\",\"message\":\"an orphan "
                     "of a create whose answer was lost; deleted\"", id);
            b->io->event(b->io->ctx, "upload_duplicate_removed", f);
        } else if (del == MT_UPLOAD_RETRY) {
            res = del;
        }
    }
    cJSON_Delete(j);
    return res;
}

static enum mt_upload_result mlf_set_state(void *p, const cJSON *run, const char *state)
{
    const cJSON *et = cJSON_GetObjectItemCaseSensitive(run, "end_time");
    double end_time = cJSON_IsNumber(et) ? et->valuedouble : -1;
    struct mt_mlflow__be *b = p;
    const char *st = "RUNNING";
    if (strcmp(state, "finished") == 0)
        st = "FINISHED";
    else if (strcmp(state, "killed") == 0)
        st = "KILLED";
    else if (strcmp(state, "running") != 0)
        st = "FAILED"; /* failed, crashed, lost */
    mt_mlflow__begin_batch(b);
    mt_mlflow__buf_printf(&b->body, ",\"status\":\"%s\"", st);
    if (end_time > 0 && strcmp(st, "RUNNING") != 0)
        mt_mlflow__buf_printf(&b->body, ",\"end_time\":%lld", (long long)llround(end_time * 1000));
    mt_mlflow__buf_str(&b->body, "}");
    struct mt_mlflow_resp r;
    enum mt_upload_result res =
        mt_mlflow__call(b, "POST", "api/2.0/mlflow/runs/update", b->body.p, b->body.len, &r);
    if (res == MT_UPLOAD_DROP)
        mt_mlflow__event_http(b, "upload_refused", "state", state, &r);
    if (res == MT_UPLOAD_OK && strcmp(st, "RUNNING") != 0 && jstr(run, "id"))
        res = delete_orphans(b, jstr(run, "id"));
    return res;
}

static enum mt_upload_result mlf_put_file(void *p, const char *name, const char *file)
{
    struct mt_mlflow__be *b = p;
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
    mt_mlflow__counted(b, res, &r);
    if (res == MT_UPLOAD_DROP)
        mt_mlflow__event_http(b, "upload_dropped", "artifact", name, &r);
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

/* The tracking URI without a trailing slash, and the experiment (the
 * run's project). */
static void mlf_target(const struct mt_upload_opts *o, const cJSON *run, char *out, size_t outsz)
{
    size_t n = strlen(o->url);
    while (n && o->url[n - 1] == '/')
        n--;
    const char *project = jstr(run, "project");
    snprintf(out, outsz, "%.*s experiment %s", (int)n, o->url,
             project && project[0] ? project : "Default");
}

const struct mt_upload_backend mt_mlflow_backend = {
    .name = "mlflow",
    .max_points = 1000,
    .map_key = mlf_map_key,
    .create = mlf_create,
    .destroy = mlf_destroy,
    .open_run = mlf_open_run,
    .update_run = mlf_update_run,
    .send_points = mt_mlflow__send_points,
    .set_state = mlf_set_state,
    .put_file = mlf_put_file,
    .retry_after = mlf_retry_after,
    .target = mlf_target,
    .last_error = mlf_last_error,
};

