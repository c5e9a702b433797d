/* Where each backend of a run stands, for `show` and the UPLOAD column of
 * `ls`: from its cursor (upload/<backend>.json: how far history and system
 * metrics went, the state it was given, where it writes or which remote
 * run), whether its agent still holds the upload lock, and the last problem
 * events.jsonl recorded for it.  Read-only: it never takes the lock (that
 * could make a finishing agent skip its last flush). */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cjson/cJSON.h>

#include "mt_cli.h"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *t = NULL;
    size_t cap = 0;
    if (getdelim(&t, &cap, '\0', f) < 0) {
        free(t);
        t = NULL;
    }
    fclose(f);
    return t;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The last problem recorded for `backend`, and how many there were. */
static void last_problem(const char *run_dir, const char *backend, char *out, size_t outsz,
                         unsigned *count, char *cause, size_t causesz)
{
    if (cause)
        cause[0] = '\0';
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/events.jsonl", run_dir);
    FILE *f = fopen(path, "r");
    out[0] = '\0';
    *count = 0;
    if (!f)
        return;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        if (!strstr(line, backend))
            continue;
        cJSON *e = cJSON_Parse(line);
        const char *ev = jstr(e, "event"), *be = jstr(e, "backend");
        const cJSON *ok = cJSON_GetObjectItemCaseSensitive(e, "ok");
        int problem = ev && be && strcmp(be, backend) == 0 &&
                      (strcmp(ev, "upload_error") == 0 || strcmp(ev, "upload_refused") == 0 ||
                       strcmp(ev, "upload_write_error") == 0 || strcmp(ev, "upload_dropped") == 0 ||
                       (strcmp(ev, "wandb_sync") == 0 && cJSON_IsFalse(ok)));
        if (ev && be && strcmp(be, backend) == 0 &&
            ((strcmp(ev, "wandb_sync") == 0 && cJSON_IsTrue(ok)) ||
             strcmp(ev, "upload_complete") == 0))
        {
            out[0] = '\0'; /* a later sync went through */
            *count = 0;
            if (cause)
                cause[0] = '\0';
        }
        if (problem) {
            const char *m = jstr(e, "message");
            snprintf(out, outsz, "%s: %s", ev, m ? m : "");
            (*count)++;
            const cJSON *st = cJSON_GetObjectItemCaseSensitive(e, "status");
            if (cause && strcmp(ev, "upload_dropped") != 0) {
                if (jstr(e, "cause"))
                    snprintf(cause, causesz, "%s", jstr(e, "cause"));
                else if (cJSON_IsNumber(st) && st->valuedouble > 0)
                    snprintf(cause, causesz, "HTTP %.0f", st->valuedouble);
                else
                    snprintf(cause, causesz, "%.200s", m ? m : ev);
            }
        }
        cJSON_Delete(e);
    }
    free(line);
    fclose(f);
}

/* Is the upload lock of this backend held by a process (its agent, or a
 * sync)?  Read from /proc/locks rather than by trying the lock. */
static int lock_held(const char *run_dir, const char *backend)
{
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof(path), "%s/upload/%s.lock", run_dir, backend);
    if (stat(path, &st) != 0)
        return 0;
    FILE *f = fopen("/proc/locks", "r");
    if (!f)
        return 0;
    char want[96], line[512];
    snprintf(want, sizeof(want), " %02x:%02x:%llu ", major(st.st_dev), minor(st.st_dev),
             (unsigned long long)st.st_ino);
    int held = 0;
    while (!held && fgets(line, sizeof(line), f))
        held = strstr(line, "FLOCK") && strstr(line, want);
    fclose(f);
    return held;
}

static int is_axis(const cJSON *run, const char *key)
{
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(run, "axes"))
    {
        if (cJSON_IsString(a) && strcmp(a->valuestring, key) == 0)
            return 1;
    }
    return 0;
}

/* The points of path's complete lines from the cursor's position on: each
 * value of a key that is not internal (_step...) nor a step axis. */
static unsigned long long points_after(const char *path, const cJSON *pos, const cJSON *run)
{
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(pos, "offset");
    const cJSON *skip = cJSON_GetObjectItemCaseSensitive(pos, "skip");
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    if (cJSON_IsNumber(off) && fseeko(f, (off_t)off->valuedouble, SEEK_SET) != 0) {
        fclose(f);
        return 0;
    }
    unsigned long long n = 0;
    long long first_skip = cJSON_IsNumber(skip) ? (long long)skip->valuedouble : 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] != '\n')
            break; /* torn: not sent yet, not counted either */
        cJSON *row = cJSON_Parse(line);
        const cJSON *v;
        long long k = 0;
        cJSON_ArrayForEach(v, row)
        {
            if (!v->string || v->string[0] == '_' || is_axis(run, v->string))
                continue;
            if (cJSON_IsNumber(v) || cJSON_IsString(v))
                k++;
        }
        cJSON_Delete(row);
        k -= first_skip;
        first_skip = 0;
        if (k > 0)
            n += (unsigned long long)k;
    }
    free(line);
    fclose(f);
    return n;
}

/* Collects the backends of a run: those with a cursor, and those that only
 * left a problem in events.jsonl (an upload that never got as far as a
 * cursor: a server unreachable from the start). */
static int backends_of(const char *run_dir, char names[][32], int max)
{
    char path[PATH_MAX];
    int n = 0;
    snprintf(path, sizeof(path), "%s/upload", run_dir);
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d)) && n < max) {
        size_t len = strlen(e->d_name);
        if (len < 6 || len - 5 >= 32 || strcmp(e->d_name + len - 5, ".json") != 0 ||
            e->d_name[0] == '.')
            continue;
        snprintf(names[n++], 32, "%.*s", (int)(len - 5), e->d_name);
    }
    if (d)
        closedir(d);
    snprintf(path, sizeof(path), "%s/events.jsonl", run_dir);
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    while (f && getline(&line, &cap, f) > 0 && n < max) {
        if (!strstr(line, "\"upload_error\"") && !strstr(line, "\"upload_refused\""))
            continue;
        cJSON *ev = cJSON_Parse(line);
        const char *be = jstr(ev, "backend");
        int known = !be || strlen(be) >= 32;
        for (int i = 0; !known && i < n; i++)
            known = strcmp(names[i], be) == 0;
        if (!known)
            snprintf(names[n++], 32, "%s", be);
        cJSON_Delete(ev);
    }
    free(line);
    if (f)
        fclose(f);
    return n;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* One backend's state in words: "uploaded", "written" (files of a backend
 * that has no server, or a W&B run not handed to `wandb sync`),
 * "uploading[, N points pending]", "pending N points", "failed: cause". */
static void state_of(const char *run_dir, const char *name, const cJSON *run, const cJSON *cur,
                     char *out, size_t outsz)
{
    char path[PATH_MAX], problem[1200], cause[300];
    unsigned count;
    last_problem(run_dir, name, problem, sizeof(problem), &count, cause, sizeof(cause));
    snprintf(path, sizeof(path), "%s/history.jsonl", run_dir);
    unsigned long long pending =
        points_after(path, cJSON_GetObjectItemCaseSensitive(cur, "history"), run);
    snprintf(path, sizeof(path), "%s/system.jsonl", run_dir);
    pending += points_after(path, cJSON_GetObjectItemCaseSensitive(cur, "system"), run);
    const char *rs = jstr(run, "state"), *cs = jstr(cur, "state");
    int ended = rs && strcmp(rs, "running") != 0;
    int done = ended && cs && strcmp(cs, rs) == 0 && pending == 0;
    const cJSON *be = cJSON_GetObjectItemCaseSensitive(cur, "backend");
    if (lock_held(run_dir, name)) {
        if (pending)
            snprintf(out, outsz, "uploading, %llu points pending", pending);
        else
            snprintf(out, outsz, "uploading");
    } else if (done && strcmp(name, "wandb") == 0) {
        snprintf(out, outsz, "%s", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(be, "synced"))
                                       ? "uploaded"
                                   : problem[0] ? "written; wandb sync failed"
                                                : "written");
    } else if (done) {
        snprintf(out, outsz, "%s", strcmp(name, "tensorboard") == 0 ? "written" : "uploaded");
    } else if (cause[0]) {
        snprintf(out, outsz, "failed: %s", cause);
    } else if (!cur) {
        snprintf(out, outsz, "pending");
    } else {
        snprintf(out, outsz, "pending %llu points", pending);
    }
}

static cJSON *read_json(const char *path)
{
    char *txt = slurp(path);
    cJSON *j = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    return j;
}

void mt_cli_upload_column(const char *run_dir, char *out, size_t outsz)
{
    char names[8][32], path[PATH_MAX], st[400];
    out[0] = '\0';
    int n = backends_of(run_dir, names, 8);
    if (!n)
        return;
    qsort(names, (size_t)n, sizeof(names[0]), cmp_name);
    snprintf(path, sizeof(path), "%s/run.json", run_dir);
    cJSON *run = read_json(path);
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/upload/%s.json", run_dir, names[i]);
        cJSON *cur = read_json(path);
        state_of(run_dir, names[i], run, cur, st, sizeof(st));
        cJSON_Delete(cur);
        int w = n == 1 ? snprintf(out + len, outsz - len, "%s", st)
                       : snprintf(out + len, outsz - len, "%s%s %s", i ? "; " : "", names[i], st);
        if (w < 0 || (size_t)w >= outsz - len)
            break;
        len += (size_t)w;
    }
    cJSON_Delete(run);
}

void mt_cli_print_uploads(const char *run_dir)
{
    char names[8][32], path[PATH_MAX], st[400];
    int n = backends_of(run_dir, names, 8);
    if (!n)
        return;
    qsort(names, (size_t)n, sizeof(names[0]), cmp_name);
    snprintf(path, sizeof(path), "%s/run.json", run_dir);
    cJSON *run = read_json(path);
    printf("upload:\n");
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/upload/%s.json", run_dir, names[i]);
        cJSON *c = read_json(path);
        const cJSON *be = cJSON_GetObjectItemCaseSensitive(c, "backend");
        const char *where = jstr(be, "dir");
        char wbuf[PATH_MAX + 64];
        if (where && jstr(be, "file"))
            snprintf(wbuf, sizeof(wbuf), "%s/%s", where, jstr(be, "file"));
        else if (jstr(be, "run_id"))
            snprintf(wbuf, sizeof(wbuf), "run %s", jstr(be, "run_id"));
        else
            wbuf[0] = '\0';
        const cJSON *synced = cJSON_GetObjectItemCaseSensitive(be, "synced");
        char problem[1200];
        unsigned count;
        last_problem(run_dir, names[i], problem, sizeof(problem), &count, NULL, 0);
        state_of(run_dir, names[i], run, c, st, sizeof(st));
        printf("  %-12s %s%s%s%s\n", names[i], st, wbuf[0] ? "  " : "", wbuf,
               cJSON_IsTrue(synced) ? " (wandb sync done)" : "");
        const char *target = jstr(c, "target");
        if (target)
            printf("  %-12s to %s\n", "", target);
        const cJSON *o;
        cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(c, "others"))
        {
            if (o->string)
                printf("  %-12s also sent to %s (state %s)\n", "", o->string,
                       jstr(o, "state") ? jstr(o, "state") : "pending");
        }
        if (problem[0])
            printf("  %-12s %s%s\n", "", problem, count > 1 ? " (and earlier ones)" : "");
        cJSON_Delete(c);
    }
    cJSON_Delete(run);
}
