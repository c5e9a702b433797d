/* The run record: identity, run.json, summary.json, the index row and the
 * final state. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "../common/mt_buf.h"
#include "../common/mt_console.h"
#include "../common/mt_json.h"
#include "mt_agent.h"
#include "mt_indexer.h"

double mt_now_unix(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t mt_now_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double mt_agent_unix_of(const struct mt_agent *a, uint64_t mono_ns)
{
    if (!mono_ns)
        return mt_now_unix();
    return a->start_unix + ((double)(int64_t)(mono_ns - a->start_mono_ns)) / 1e9;
}

void mt_run_make_id(char out[16])
{
    static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    unsigned char r[8];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        uint64_t x = mt_now_mono_ns() ^ ((uint64_t)getpid() << 32);
        memcpy(r, &x, sizeof r);
    }
    for (int i = 0; i < 8; i++)
        out[i] = alphabet[r[i] % 36];
    out[8] = '\0';
}

static int state_rank(const char *s)
{
    static const char *order[] = { "finished", "failed", "killed", "crashed", "lost", NULL };
    for (int i = 0; order[i]; i++)
        if (strcmp(order[i], s) == 0)
            return i;
    return 0;
}

static const char *state_of(int have_end, int code, int sig)
{
    if (!have_end)
        return "lost";
    if (sig)
        return (sig == SIGTERM || sig == SIGINT || sig == SIGKILL || sig == SIGHUP) ? "killed"
                                                                                   : "crashed";
    return code == 0 ? "finished" : "failed";
}

/* The exit code and signal decide the state (DESIGN.md "The run model"); when
 * several ranks share the run, the worst of their ends. */
void mt_run_decide_state(struct mt_agent *a)
{
    if (!a->end_unix) /* a recovery dates the end by the last output */
        a->end_unix = mt_now_unix(); /* one end time for run.json and the index */
    if (!a->have_end && !a->launcher && a->last_have_end) {
        /* The root left no end of its own (daemon(): its parent _exits
         * inside libc): the last process of the run to end tells. */
        a->have_end = 1;
        a->exit_code = a->last_exit_code;
        a->exit_signal = a->last_exit_signal;
    }
    a->state = state_of(a->have_end, a->exit_code, a->exit_signal);
    for (size_t i = 0; i < a->nprimaries; i++) {
        const struct mt_primary *p = &a->primaries[i];
        if (p->pid == a->root_pid)
            continue;
        const char *s = state_of(p->have_end, p->exit_code, p->exit_signal);
        if (state_rank(s) > state_rank(a->state))
            a->state = s;
    }
}

static cJSON *string_array(char **items, int n)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(items[i]));
    return arr;
}

static cJSON *tags_array(const char *tags)
{
    cJSON *arr = cJSON_CreateArray();
    const char *item;
    size_t n;
    for (const char *p = tags; mt_list_next(&p, &item, &n);) {
        char *t = mt_xstrndup(item, n);
        cJSON_AddItemToArray(arr, cJSON_CreateString(t));
        free(t);
    }
    return arr;
}

static void add_str(cJSON *o, const char *k, const char *v)
{
    if (v && *v)
        cJSON_AddStringToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

/* parse: the run's config, the values a resumed run had first, then what
 * the command line and the rules give that it did not have.  Caller frees. */
static cJSON *run_config(struct mt_agent *a)
{
    cJSON *o = a->prev_config ? cJSON_Duplicate(a->prev_config, 1) : cJSON_CreateObject();
    char *config = a->parse ? mt_parse_config_json(a->parse) : NULL;
    cJSON *now = config ? mt_json_parse_literal(config) : NULL, *it;
    cJSON_ArrayForEach(it, now)
        if (it->string && !cJSON_GetObjectItemCaseSensitive(o, it->string))
            cJSON_AddItemToObject(o, it->string, cJSON_Duplicate(it, 1));
    cJSON_Delete(now);
    free(config);
    return o;
}

/* The run's tags: given ones, then those captured from the output, once each. */
static cJSON *run_tags(struct mt_agent *a)
{
    cJSON *tags = tags_array(a->cfg.tags), *it;
    if (a->parse) { /* parse: tags captured from the output */
        char *captured = mt_parse_tags_json(a->parse);
        cJSON *ct = cJSON_Parse(captured);
        cJSON_ArrayForEach(it, ct) {
            if (!cJSON_IsString(it))
                continue;
            int dup = 0;
            cJSON *t;
            cJSON_ArrayForEach(t, tags) dup |= strcmp(t->valuestring, it->valuestring) == 0;
            if (!dup)
                cJSON_AddItemToArray(tags, cJSON_CreateString(it->valuestring));
        }
        cJSON_Delete(ct);
        free(captured);
    }
    return tags;
}

static char *join_tags(const cJSON *tags)
{
    struct mt_buf b;
    const cJSON *t;
    mt_buf_init(&b, 1 << 20);
    mt_buf_adds(&b, "");
    cJSON_ArrayForEach(t, tags) {
        if (b.len)
            mt_buf_addc(&b, ',');
        mt_buf_adds(&b, t->valuestring);
    }
    return b.data;
}

/* `metrictap tag` and `rename` may edit run.json while the run goes on: what
 * differs from what the agent wrote last is theirs, and is kept. */
static void adopt_cli_edits(struct mt_agent *a)
{
    if (!a->written_name)
        return;
    char *text = mt_store_read(&a->store, "run.json", NULL);
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    free(text);
    cJSON *name = cJSON_GetObjectItem(o, "name"), *tags = cJSON_GetObjectItem(o, "tags");
    if (cJSON_IsString(name) && strcmp(name->valuestring, a->written_name) != 0) {
        free(a->name);
        a->name = mt_xstrdup(name->valuestring);
    }
    char *now_tags = cJSON_IsArray(tags) ? cJSON_PrintUnformatted(tags) : NULL;
    if (now_tags && a->written_tags && strcmp(now_tags, a->written_tags) != 0) {
        free(a->cfg.tags);
        a->cfg.tags = join_tags(tags);
    }
    free(now_tags);
    cJSON_Delete(o);
}

/* run.json, rewritten whole and atomically each time. */
int mt_run_write_json(struct mt_agent *a)
{
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    struct passwd *pw = getpwuid(getuid());
    int ended = a->state && strcmp(a->state, "running") != 0;
    double end = ended ? a->end_unix : 0;
    int lock = mt_store_lock(a->store.dir);
    adopt_cli_edits(a);

    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", a->id);
    cJSON_AddStringToObject(o, "project", a->project);
    add_str(o, "name", a->name);
    add_str(o, "group", a->group);
    add_str(o, "job_type", a->cfg.job_type);
    add_str(o, "notes", a->cfg.notes);
    cJSON *tags = run_tags(a);
    free(a->written_tags);
    a->written_tags = cJSON_PrintUnformatted(tags);
    free(a->written_name);
    a->written_name = mt_xstrdup(a->name ? a->name : "");
    cJSON_AddItemToObject(o, "tags", tags);
    cJSON_AddStringToObject(o, "state", a->state ? a->state : "running");
    cJSON_AddNumberToObject(o, "start_time", a->created_unix ? a->created_unix : a->start_unix);
    if (ended) {
        cJSON_AddNumberToObject(o, "end_time", end);
        cJSON_AddNumberToObject(o, "runtime", end - a->start_unix + a->runtime_offset);
    } else {
        cJSON_AddNullToObject(o, "end_time");
        cJSON_AddNumberToObject(o, "runtime", mt_now_unix() - a->start_unix + a->runtime_offset);
    }
    if (ended && a->exit_code >= 0)
        cJSON_AddNumberToObject(o, "exit_code", a->exit_code);
    else
        cJSON_AddNullToObject(o, "exit_code");
    if (ended && a->exit_signal)
        cJSON_AddNumberToObject(o, "signal", a->exit_signal);
    else
        cJSON_AddNullToObject(o, "signal");
    cJSON_AddItemToObject(o, "command", string_array(a->command, a->ncommand));
    add_str(o, "program", a->program);
    /* The process whose lines gave the metrics (or the first that is not a
     * shell or relay), when it is not the command itself. */
    add_str(o, "trainer_command", a->trainer_command);
    add_str(o, "cwd", a->cwd);
    add_str(o, "host", host);
    add_str(o, "user", pw ? pw->pw_name : NULL);
    cJSON_AddNumberToObject(o, "resumed", a->resumed);
    /* parse: the command line's options and captured config values (a
     * resumed run keeps the values it had and adds new keys), and the
     * per-metric settings (step_metric, summary, goal, unit) */
    cJSON_AddItemToObject(o, "config", run_config(a));
    if (a->parse)
        a->metrics_gen_written = mt_parse_metrics_gen(a->parse);
    char *metrics = a->parse ? mt_parse_metrics_json(a->parse) : NULL;
    cJSON *metrics_obj = metrics ? cJSON_Parse(metrics) : NULL;
    cJSON_AddItemToObject(o, "metrics", metrics_obj ? metrics_obj : cJSON_CreateObject());
    free(metrics);
    char *axes = a->parse ? mt_parse_axes_json(a->parse) : NULL;
    cJSON *axes_arr = axes ? cJSON_Parse(axes) : NULL;
    cJSON_AddItemToObject(o, "axes", axes_arr ? axes_arr : cJSON_CreateArray());
    free(axes);
    cJSON *meta = a->meta ? cJSON_Duplicate(a->meta, 1) : cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "capture", a->launcher ? "launcher+preload" : "preload");
    cJSON *streams = cJSON_CreateObject();
    cJSON_AddNumberToObject(streams, "stdout_bytes", (double)a->stream_bytes[1]);
    cJSON_AddNumberToObject(streams, "stderr_bytes", (double)a->stream_bytes[2]);
    cJSON_AddNumberToObject(streams, "dropped_records", (double)a->dropped_records);
    cJSON_AddNumberToObject(streams, "dropped_bytes", (double)a->dropped_bytes);
    { /* why, and what else was cut or lost: what `run`, `show` and `ls` tell */
        cJSON *why = cJSON_AddObjectToObject(streams, "dropped_reasons");
        for (int i = 0; i < MT_DROP_N; i++)
            if (a->drop_reasons[i] || a->drop_reason_bytes[i])
                cJSON_AddNumberToObject(why, mt_drop_reason_key[i], (double)a->drop_reasons[i]);
        struct mt_parse_stats ps;
        if (a->parse) {
            mt_parse_stats(a->parse, &ps);
            cJSON_AddNumberToObject(streams, "lines", (double)(ps.lines + a->lines_offset));
            cJSON_AddNumberToObject(streams, "lines_truncated", (double)ps.lines_truncated);
        }
        cJSON_AddNumberToObject(streams, "records", (double)a->data_records);
        cJSON_AddNumberToObject(streams, "write_errors", (double)a->store.write_errors);
        cJSON_AddNumberToObject(streams, "lines_lost_write", (double)a->store.lines_lost);
        if (a->outlived)
            cJSON_AddNumberToObject(streams, "processes_outlived", (double)a->outlived);
    }
    cJSON_AddItemToObject(streams, "processes", mt_procstats_json(a));
    if (a->procs_untracked)
        cJSON_AddNumberToObject(streams, "processes_untracked", (double)a->procs_untracked);
    /* What went to pipes, /dev/null, files... instead of the console. */
    cJSON *elsewhere = cJSON_AddObjectToObject(streams, "not_console_bytes");
    for (int k = 0; k < MT_ELSEWHERE_KINDS; k++)
        cJSON_AddNumberToObject(elsewhere, mt_elsewhere_name(k), (double)a->elsewhere_bytes[k]);
    cJSON_AddItemToObject(meta, "capture_counts", streams);
    if (a->nprimaries > 1 || (a->nprimaries == 1 && a->primaries[0].rank >= 0)) {
        cJSON *ranks = cJSON_AddArrayToObject(meta, "ranks");
        for (size_t i = 0; i < a->nprimaries; i++) {
            const struct mt_primary *p = &a->primaries[i];
            cJSON *r = cJSON_CreateObject();
            cJSON_AddNumberToObject(r, "rank", p->rank);
            cJSON_AddNumberToObject(r, "pid", p->pid);
            if (p->have_end && !p->exit_signal)
                cJSON_AddNumberToObject(r, "exit_code", p->exit_code);
            if (p->exit_signal)
                cJSON_AddNumberToObject(r, "signal", p->exit_signal);
            cJSON_AddStringToObject(r, "state", p->done ? state_of(p->have_end, p->exit_code,
                                                                   p->exit_signal)
                                                        : "running");
            cJSON_AddItemToArray(ranks, r);
        }
    }
    cJSON_AddItemToObject(o, "metadata", meta);
    char *text = mt_json_print_literal(o, 1);
    cJSON_Delete(o);
    int rc = mt_store_replace(&a->store, "run.json", text, strlen(text));
    mt_store_unlock(lock);
    free(text);
    return rc;
}

void mt_run_write_summary(struct mt_agent *a)
{
    char *json = mt_parse_summary_json(a->parse);
    mt_store_replace(&a->store, "summary.json", json, strlen(json));
    free(json);
}

/* The index thread's open found index.sqlite damaged and rebuilt it. */
static void report_index_notice(struct mt_agent *a)
{
    char notice[800];
    if (!mt_indexer_take_notice(a->indexer, notice, sizeof notice))
        return;
    struct mt_buf b;
    mt_buf_init(&b, 4096);
    mt_buf_adds(&b, "\"message\":");
    mt_buf_json_string(&b, notice, strlen(notice));
    mt_store_event(&a->store, mt_now_unix(), "index_rebuilt", b.data);
    mt_buf_free(&b);
}

void mt_run_update_index(struct mt_agent *a)
{
    if (!a->indexer)
        return;
    char *summary = mt_parse_summary_json(a->parse);
    cJSON *config_obj = run_config(a); /* parse */
    char *config = mt_json_print_literal(config_obj, 0);
    cJSON_Delete(config_obj);
    int ended = a->state && strcmp(a->state, "running") != 0;
    double now = ended ? a->end_unix : mt_now_unix();
    cJSON *tag_list = run_tags(a);
    char *tags = join_tags(tag_list);
    cJSON_Delete(tag_list);
    struct mt_index_run r = {
        .id = a->id, .project = a->project, .name = a->name, .group = a->group,
        .job_type = a->cfg.job_type, .state = a->state ? a->state : "running",
        .dir = a->store.dir, .tags = tags, .config_json = config,
        .summary_json = summary,
        .start_time = a->created_unix ? a->created_unix : a->start_unix, .end_time = ended ? now : 0,
        .runtime = now - a->start_unix + a->runtime_offset,
        .exit_code = ended ? a->exit_code : -1, .signal = ended ? a->exit_signal : 0,
        .dropped = (double)(a->dropped_records + a->store.lines_lost),
    };
    if (a->parse) {
        struct mt_parse_stats ps;
        mt_parse_stats(a->parse, &ps);
        r.cut = (double)ps.lines_truncated;
    }
    mt_indexer_post(a->indexer, &r); /* written by the index thread */
    free(summary);
    free(config);
    free(tags);
    report_index_notice(a);
}

void mt_run_index_settle(struct mt_agent *a, double timeout_s)
{
    char why[600], fields[900];
    if (mt_indexer_wait(a->indexer, timeout_s, why, sizeof why) != 0) {
        struct mt_buf b;
        mt_buf_init(&b, sizeof fields);
        mt_buf_adds(&b, "\"message\":");
        mt_buf_json_string(&b, why, strlen(why));
        mt_buf_adds(&b, ",\"repair\":\"the row is retried a while longer; metrictap ls puts it"
                        " back from the run directory\"");
        mt_store_event(&a->store, mt_now_unix(), "index_pending", b.data);
        mt_buf_free(&b);
    }
    report_index_notice(a);
}
