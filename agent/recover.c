/* mt_recover: see mt_recover.h. */
#include "mt_recover.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/mt_buf.h"
#include "../common/mt_channel.h"
#include "../common/mt_redact.h"
#include "mt_agent.h"
#include "mt_indexer.h"
#include "mt_journal.h"

extern char **environ;

#define META_NAME MT_JOURNAL_DIR "/meta"
#define EVENTS_TAIL (256u << 10) /* how much of events.jsonl a view reads back */

/* Variables the agent's config came from (mt_config_load), less the run's
 * plumbing and anything that looks like a secret. */
static int config_variable(const char *kv)
{
    static const char *const plumbing[] = { MT_ENV_CHANNEL, MT_ENV_RUN_ID, MT_ENV_OFF,
                                            MT_ENV_AGENT, NULL };
    const char *eq = strchr(kv, '=');
    if (!eq)
        return 0;
    size_t n = (size_t)(eq - kv);
    for (int i = 0; plumbing[i]; i++)
        if (strlen(plumbing[i]) == n && strncmp(kv, plumbing[i], n) == 0)
            return 0;
    if (mt_redact_is_secret_name(kv, n))
        return 0;
    return strncmp(kv, "METRICTAP_", 10) == 0 || strncmp(kv, "WANDB_", 6) == 0 ||
           strncmp(kv, "HOME=", 5) == 0 || strncmp(kv, "XDG_CONFIG_HOME=", 16) == 0;
}

static int write_file(struct mt_store *s, const char *name, const char *data, size_t len)
{
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s.tmp", name);
    int fd = mt_store_open_in(s, tmp, O_WRONLY | O_CREAT | O_TRUNC);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    int rc = close(fd) == 0 && off == len ? mt_store_rename_file(s, tmp, name) : -1;
    if (rc != 0)
        mt_store_remove_file(s, tmp);
    return rc;
}

int mt_recover_write_meta(struct mt_agent *a)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "version", 1);
    cJSON_AddNumberToObject(o, "root_pid", a->root_pid);
    cJSON_AddBoolToObject(o, "launcher", a->launcher);
    cJSON_AddNumberToObject(o, "start_unix", a->start_unix);
    /* As a string: a double would round nanoseconds of uptime. */
    char mono[32];
    snprintf(mono, sizeof mono, "%llu", (unsigned long long)a->start_mono_ns);
    cJSON_AddStringToObject(o, "start_mono_ns", mono);
    cJSON_AddNumberToObject(o, "first_step", (double)a->first_step);
    cJSON_AddNumberToObject(o, "runtime_offset", a->runtime_offset);
    if (a->program)
        cJSON_AddStringToObject(o, "program", a->program);
    if (a->cwd)
        cJSON_AddStringToObject(o, "cwd", a->cwd);
    cJSON *cmd = cJSON_AddArrayToObject(o, "command");
    for (int i = 0; i < a->ncommand; i++)
        cJSON_AddItemToArray(cmd, cJSON_CreateString(a->command[i]));
    cJSON *env = cJSON_AddArrayToObject(o, "env");
    for (char **e = environ; e && *e; e++)
        if (config_variable(*e))
            cJSON_AddItemToArray(env, cJSON_CreateString(*e));
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    int rc = text ? write_file(&a->store, META_NAME, text, strlen(text)) : -1;
    free(text);
    return rc;
}

/* ---- what a view may show ---- */

/* The state of the last finish event in events.jsonl, or NULL. */
static const char *finish_state(const char *run_dir)
{
    static const char *const states[] = { "finished", "failed", "crashed", "killed", "lost",
                                          NULL };
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/events.jsonl", run_dir);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    char *buf = NULL;
    ssize_t n = 0;
    if (fstat(fd, &st) == 0) {
        off_t from = st.st_size > (off_t)EVENTS_TAIL ? st.st_size - (off_t)EVENTS_TAIL : 0;
        buf = mt_xmalloc(EVENTS_TAIL + 1);
        n = pread(fd, buf, EVENTS_TAIL, from);
    }
    close(fd);
    const char *state = NULL;
    if (buf && n > 0) {
        buf[n] = '\0';
        const char *last = NULL;
        for (const char *p = buf; (p = strstr(p, "\"event\":\"finish\"")) != NULL; p++)
            last = p;
        const char *s = last ? strstr(last, "\"state\":\"") : NULL;
        for (int i = 0; s && states[i]; i++)
            if (strncmp(s + 9, states[i], strlen(states[i])) == 0 && s[9 + strlen(states[i])] == '"')
                state = states[i];
    }
    free(buf);
    return state;
}

const char *mt_recover_state_to_show(const char *run_dir, const char *state)
{
    if (!state || strcmp(state, "running") != 0 || mt_store_agent_alive(run_dir) != 0)
        return state;
    const char *proved = finish_state(run_dir);
    return proved ? proved : "lost";
}

/* ---- finishing a run ---- */

static cJSON *read_json(const char *run_dir, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", run_dir, name);
    size_t len = 0;
    char *text = mt_index_read_file(path, (size_t)64 << 20, &len);
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    free(text);
    return o;
}

static const char *str_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num_of(const cJSON *o, const char *key, double def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

/* <root>/runs/<project>/<id> -> <root> */
static int store_root(const char *run_dir, char *out, size_t n)
{
    char abs[PATH_MAX];
    if (!realpath(run_dir, abs))
        return -1;
    for (int up = 0; up < 3; up++) {
        char *slash = strrchr(abs, '/');
        if (!slash || slash == abs)
            return -1;
        *slash = '\0';
    }
    snprintf(out, n, "%s", abs);
    return 0;
}

static char **env_of(const cJSON *meta)
{
    const cJSON *env = cJSON_GetObjectItemCaseSensitive(meta, "env"), *it;
    int n = cJSON_GetArraySize(env);
    char **out = mt_xcalloc((size_t)n + 1, sizeof *out);
    int k = 0;
    cJSON_ArrayForEach(it, env)
        if (cJSON_IsString(it))
            out[k++] = mt_xstrdup(it->valuestring);
    return out;
}

static void free_strv(char **v)
{
    for (char **p = v; p && *p; p++)
        free(*p);
    free(v);
}

/* The run's config as the agent loaded it: its variables, in its directory. */
static void load_config(struct mt_agent *a, const cJSON *meta)
{
    char **env = env_of(meta);
    const char *cwd = str_of(meta, "cwd");
    int here = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int moved = cwd && chdir(cwd) == 0;
    char err[1024];
    if (mt_config_load(&a->cfg, env, err, sizeof err) != 0) {
        mt_config_free(&a->cfg);
        mt_config_defaults(&a->cfg, err, sizeof err);
    }
    if (moved && here >= 0 && fchdir(here) != 0)
        (void)0;
    if (here >= 0)
        close(here);
    free_strv(env);
}

static char *tags_joined(const cJSON *run)
{
    struct mt_buf b;
    mt_buf_init(&b, 1 << 20);
    mt_buf_adds(&b, "");
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(run, "tags"))
        if (cJSON_IsString(t)) {
            if (b.len)
                mt_buf_addc(&b, ',');
            mt_buf_adds(&b, t->valuestring);
        }
    return b.data;
}

/* Everything the agent knew that run.json and the journal's meta keep. */
static int rebuild_agent(struct mt_agent *a, cJSON *run, const cJSON *meta, const char *root,
                         char *msg, size_t msgsz)
{
    load_config(a, meta);
    a->recovering = 1;
    a->exit_code = -1;
    a->root_pidfd = a->inotify_fd = a->agent_lock = -1;
    snprintf(a->id, sizeof a->id, "%s", str_of(run, "id"));
    a->project = mt_xstrdup(str_of(run, "project"));
    a->name = mt_xstrdup(str_of(run, "name") ? str_of(run, "name") : a->id);
    if (str_of(run, "group"))
        a->group = mt_xstrdup(str_of(run, "group"));
    free(a->cfg.tags);
    a->cfg.tags = tags_joined(run);
    a->root_pid = (pid_t)num_of(meta, "root_pid", 0);
    a->launcher = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(meta, "launcher"));
    a->start_unix = num_of(meta, "start_unix", num_of(run, "start_time", 0));
    a->created_unix = num_of(run, "start_time", a->start_unix);
    const char *mono = str_of(meta, "start_mono_ns");
    a->start_mono_ns = mono ? strtoull(mono, NULL, 10) : 0;
    a->first_step = (uint64_t)num_of(meta, "first_step", 0);
    a->runtime_offset = num_of(meta, "runtime_offset", 0);
    a->resumed = (int)num_of(run, "resumed", 0);
    if (str_of(meta, "program"))
        a->program = mt_xstrdup(str_of(meta, "program"));
    if (str_of(meta, "cwd"))
        a->cwd = mt_xstrdup(str_of(meta, "cwd"));
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(run, "command"), *it;
    a->command = mt_xcalloc((size_t)cJSON_GetArraySize(cmd) + 1, sizeof *a->command);
    cJSON_ArrayForEach(it, cmd)
        if (cJSON_IsString(it))
            a->command[a->ncommand++] = mt_xstrdup(it->valuestring);
    cJSON *v;
    if (cJSON_IsObject(v = cJSON_GetObjectItemCaseSensitive(run, "config")))
        a->prev_config = cJSON_DetachItemViaPointer(run, v);
    if (cJSON_IsObject(v = cJSON_GetObjectItemCaseSensitive(run, "metadata"))) {
        a->meta = cJSON_DetachItemViaPointer(run, v);
        cJSON_DeleteItemFromObjectCaseSensitive(a->meta, "capture_counts");
        cJSON_DeleteItemFromObjectCaseSensitive(a->meta, "capture");
    }
    a->state = "running";
    int exists = 0;
    if (mt_store_open(&a->store, root, a->project, a->id, &exists, msg, msgsz) != 0)
        return -1;
    a->journal = mt_journal_open(&a->store, a->cfg.keep_journal);
    if (a->journal && mt_parse_stage_restore(a) != 0)
        mt_journal_seek(a->journal, (struct mt_jpos){ 0, 0 });
    struct mt_parse_opts po = {
        .cfg = &a->cfg, .program = a->program, .start_unix = a->start_unix,
        .first_step = a->first_step, .runtime_offset = a->runtime_offset,
        .argv = a->command, .argc = a->ncommand,
    };
    struct mt_parse_sink sink = mt_agent_sink(a);
    a->parse = mt_parse_create(&po, &sink, msg, msgsz);
    if (!a->parse)
        return -1;
    char *summary = mt_store_read(&a->store, "summary.json", NULL);
    if (summary) {
        mt_parse_restore_summary(a->parse, summary);
        free(summary);
    }
    mt_parse_stage_refeed(a);
    if (!mt_primary_add(a, a->root_pid, a->launcher, -1))
        return -1;
    a->indexer = mt_indexer_start(root);
    return 0;
}

static void free_agent(struct mt_agent *a)
{
    mt_parse_stage_stop(a);
    mt_journal_destroy(a->journal);
    mt_parse_destroy(a->parse);
    mt_parse_destroy(a->parse_console);
    mt_indexer_stop(a->indexer, 5.0); /* the recovered run's row, written before we go */
    a->indexer = NULL;
    mt_procstats_free(a);
    mt_proctree_free(a);
    mt_store_close(&a->store);
    cJSON_Delete(a->meta);
    cJSON_Delete(a->prev_config);
    for (int i = 0; i < a->ncommand; i++)
        free(a->command[i]);
    free(a->command);
    free(a->project);
    free(a->name);
    free(a->group);
    free(a->program);
    free(a->cwd);
    free(a->written_name);
    free(a->written_tags);
    mt_config_free(&a->cfg);
}

/* A run with no journal to parse (its agent died before making one, or
 * wrote its end but not run.json): its state from what is known. */
static int settle_without_journal(const char *run_dir, cJSON *run, const char *root,
                                  const struct mt_recover_opts *o, char *msg, size_t msgsz)
{
    const char *state = finish_state(run_dir);
    const char *how = "its finish event";
    struct mt_agent tmp = { 0 };
    if (!state && o && o->have_status) {
        tmp.have_end = 1, tmp.exit_code = o->exit_code, tmp.exit_signal = o->exit_signal;
        mt_run_decide_state(&tmp);
        state = tmp.state;
        how = "the exit status `metrictap run` saw";
    }
    if (!state) {
        state = "lost";
        how = "its agent is gone and nothing tells how it ended";
    }
    cJSON_ReplaceItemInObjectCaseSensitive(run, "state", cJSON_CreateString(state));
    if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(run, "end_time")))
        cJSON_ReplaceItemInObjectCaseSensitive(run, "end_time", cJSON_CreateNumber(mt_now_unix()));
    if (tmp.have_end && tmp.exit_code >= 0)
        cJSON_ReplaceItemInObjectCaseSensitive(run, "exit_code", cJSON_CreateNumber(tmp.exit_code));
    if (tmp.exit_signal)
        cJSON_ReplaceItemInObjectCaseSensitive(run, "signal", cJSON_CreateNumber(tmp.exit_signal));
    struct mt_store s;
    int exists = 0;
    const char *project = str_of(run, "project"), *id = str_of(run, "id");
    if (!project || !id || mt_store_open(&s, root, project, id, &exists, msg, msgsz) != 0)
        return MT_RECOVER_ERROR;
    char *text = cJSON_Print(run);
    int lock = mt_store_lock(s.dir);
    int rc = mt_store_replace(&s, "run.json", text, strlen(text));
    mt_store_unlock(lock);
    free(text);
    char fields[256];
    snprintf(fields, sizeof fields, "\"state\":\"%s\",\"how\":\"%s\"", state, how);
    mt_store_event(&s, mt_now_unix(), "settled", fields);
    mt_store_close(&s);
    char ixerr[256];
    struct mt_index *ix = mt_index_open(root, ixerr, sizeof ixerr);
    struct mt_index_loaded l;
    if (ix && mt_index_load_dir(root, project, id, &l) == 0) {
        mt_index_put(ix, &l.run);
        mt_index_loaded_free(&l);
    }
    mt_index_close(ix);
    if (rc != 0) {
        snprintf(msg, msgsz, "cannot write %s/run.json: %s", run_dir, strerror(errno));
        return MT_RECOVER_ERROR;
    }
    snprintf(msg, msgsz, "run %s: %s (%s)", id, state, how);
    return MT_RECOVER_DONE;
}

/* The capture channel a dead agent left on tmpfs (metrictap-<id>-XXXXXX,
 * main.c's make_channel): removed when it is ours and its agent is gone, so
 * killed agents do not fill /dev/shm. */
static void remove_dead_channels(const char *id)
{
    const char *bases[] = { "/dev/shm", getenv("TMPDIR"), "/tmp" };
    char prefix[64];
    snprintf(prefix, sizeof prefix, "metrictap-%s-", id);
    for (size_t i = 0; i < sizeof bases / sizeof *bases; i++) {
        if (!bases[i] || !*bases[i])
            continue;
        DIR *d = opendir(bases[i]);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
                continue;
            char dir[PATH_MAX];
            snprintf(dir, sizeof dir, "%s/%s", bases[i], e->d_name);
            struct stat st;
            if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
                continue;
            struct mt_ctl *ctl = mt_channel_map_ctl(dir);
            pid_t agent = ctl ? (pid_t)ctl->agent_pid : 0;
            if (ctl && agent > 0 && kill(agent, 0) != 0 && errno == ESRCH)
                mt_channel_remove(dir, ctl);
            else if (ctl)
                munmap(ctl, MT_CTL_SIZE);
        }
        if (d)
            closedir(d);
    }
}

int mt_recover_run(const char *run_dir, const struct mt_recover_opts *o, char *msg,
                   size_t msgsz)
{
    msg[0] = '\0';
    int lock = mt_store_hold_agent_lock(run_dir);
    if (lock < 0) {
        if (errno == EWOULDBLOCK) {
            snprintf(msg, msgsz, "the run in %s is being written by its agent", run_dir);
            return MT_RECOVER_BUSY;
        }
        snprintf(msg, msgsz, "cannot lock %s: %s", run_dir, strerror(errno));
        return MT_RECOVER_ERROR;
    }
    int result = MT_RECOVER_NOTHING;
    char root[PATH_MAX], journal[PATH_MAX];
    cJSON *run = read_json(run_dir, "run.json"), *meta = NULL;
    snprintf(journal, sizeof journal, "%s/" MT_JOURNAL_DIR, run_dir);
    struct stat st;
    int has_journal = lstat(journal, &st) == 0 && S_ISDIR(st.st_mode);
    const char *state = str_of(run, "state");
    if (!run || !state) {
        snprintf(msg, msgsz, "%s/run.json cannot be read", run_dir);
        result = MT_RECOVER_ERROR;
        goto out;
    }
    if (strcmp(state, "running") != 0 && !has_journal)
        goto out;
    if (store_root(run_dir, root, sizeof root) != 0) {
        snprintf(msg, msgsz, "%s is not a run directory of a store", run_dir);
        result = MT_RECOVER_ERROR;
        goto out;
    }
    meta = has_journal ? read_json(run_dir, META_NAME) : NULL;
    if (!meta) {
        result = settle_without_journal(run_dir, run, root, o, msg, msgsz);
        goto out;
    }
    struct mt_agent *a = mt_xcalloc(1, sizeof *a);
    if (rebuild_agent(a, run, meta, root, msg, msgsz) != 0) {
        free_agent(a);
        free(a);
        result = MT_RECOVER_ERROR;
        goto out;
    }
    uint64_t before = 0, total = 0;
    mt_parse_stage_progress(a, &before, &total);
    mt_parse_stage_run_to_end(a);
    uint64_t parsed = 0;
    mt_parse_stage_progress(a, &parsed, &total);
    if (o && o->have_status && !a->have_end) {
        a->have_end = 1;
        a->exit_code = o->exit_code;
        a->exit_signal = o->exit_signal;
    }
    double now = mt_now_unix();
    a->end_unix = a->last_data_unix > a->start_unix ? a->last_data_unix : now;
    mt_parse_flush(a->parse, now);
    char fields[256];
    snprintf(fields, sizeof fields,
             "\"records\":%llu,\"reason\":\"its agent was gone; the journal was parsed from "
             "its last checkpoint\"",
             (unsigned long long)(parsed - before));
    mt_store_event(&a->store, now, "recovered", fields);
    mt_run_write_end(a, now);
    snprintf(msg, msgsz, "run %s: %s, %llu records parsed from its journal", a->id, a->state,
             (unsigned long long)(parsed - before));
    result = MT_RECOVER_DONE;
    remove_dead_channels(a->id);
    free_agent(a);
    free(a);
out:
    cJSON_Delete(run);
    cJSON_Delete(meta);
    mt_store_unlock(lock);
    return result;
}
