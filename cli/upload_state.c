/* Where each backend of a run stands, for `show`: its cursor
 * (upload/<backend>.json: the state it was given, where it writes or which
 * remote run) and the last problem events.jsonl recorded for it. */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
                         unsigned *count)
{
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
        if (ev && be && strcmp(be, backend) == 0 && strcmp(ev, "wandb_sync") == 0 &&
            cJSON_IsTrue(ok))
            out[0] = '\0'; /* a later sync went through */
        if (problem) {
            const char *m = jstr(e, "message");
            snprintf(out, outsz, "%s: %s", ev, m ? m : "");
            (*count)++;
        }
        cJSON_Delete(e);
    }
    free(line);
    fclose(f);
}

void mt_cli_print_uploads(const char *run_dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/upload", run_dir);
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    int header = 0;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".json") != 0 || e->d_name[0] == '.')
            continue;
        char name[64];
        snprintf(name, sizeof(name), "%.*s", (int)(n - 5 < 63 ? n - 5 : 63), e->d_name);
        snprintf(path, sizeof(path), "%s/upload/%s", run_dir, e->d_name);
        char *txt = slurp(path);
        cJSON *c = txt ? cJSON_Parse(txt) : NULL;
        free(txt);
        if (!c)
            continue;
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
        last_problem(run_dir, name, problem, sizeof(problem), &count);
        if (!header++)
            printf("upload:\n");
        printf("  %-12s %-9s %s%s\n", name, jstr(c, "state") ? jstr(c, "state") : "pending", wbuf,
               cJSON_IsTrue(synced) ? " (wandb sync done)" : "");
        if (problem[0])
            printf("  %-12s %s%s\n", "", problem, count > 1 ? " (and earlier ones)" : "");
        cJSON_Delete(c);
    }
    closedir(d);
}
