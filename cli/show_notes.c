/* What `show` says beside a run's identity when the run is not whole: a
 * damaged run.json, and the processes of the run that were not tracked
 * (events.jsonl's "untracked" events: another user's process, no ring). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/mt_buf.h"
#include "../common/mt_index.h"
#include "show.h"

#define EVENTS_MAX ((size_t)64 << 20)
#define NOTES_MAX 20

static void print_untracked(const cJSON *ev)
{
    const cJSON *reason = cJSON_GetObjectItemCaseSensitive(ev, "reason");
    const cJSON *pid = cJSON_GetObjectItemCaseSensitive(ev, "pid");
    const cJSON *exe = cJSON_GetObjectItemCaseSensitive(ev, "exe");
    const cJSON *procs = cJSON_GetObjectItemCaseSensitive(ev, "processes");
    printf("untracked %s", cJSON_IsString(reason) ? reason->valuestring : "(no reason)");
    if (cJSON_IsNumber(pid))
        printf(" (pid %d%s%s)", pid->valueint, cJSON_IsString(exe) ? ", " : "",
               cJSON_IsString(exe) ? exe->valuestring : "");
    else if (cJSON_IsNumber(procs))
        printf(" (%d process%s)", procs->valueint, procs->valueint == 1 ? "" : "es");
    putchar('\n');
}

void mt_show_notes(const char *dir, const char *damage)
{
    char path[PATH_MAX];
    if (damage && *damage)
        printf("%-9s%s; shown is what the other files of %s hold\n", "damaged", damage, dir);
    snprintf(path, sizeof path, "%s/events.jsonl", dir);
    size_t len = 0;
    char *text = mt_index_read_file(path, EVENTS_MAX, &len);
    size_t shown = 0, more = 0;
    for (char *line = text, *nl; text && line < text + len; line = nl + 1) {
        nl = memchr(line, '\n', (size_t)(text + len - line));
        if (!nl)
            break; /* a torn last line */
        if (!memmem(line, (size_t)(nl - line), "\"untracked\"", 11))
            continue;
        *nl = '\0';
        cJSON *ev = cJSON_Parse(line);
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive(ev, "event");
        if (cJSON_IsString(kind) && strcmp(kind->valuestring, "untracked") == 0) {
            if (shown < NOTES_MAX) {
                print_untracked(ev);
                shown++;
            } else
                more++;
        }
        cJSON_Delete(ev);
    }
    if (more)
        printf("untracked %zu more, in %s\n", more, path);
    free(text);
}

/* A run directory under <store>/runs/<project>/ whose name starts with
 * `prefix` (the index has no row for one whose run.json is damaged). */
int mt_show_find_dir(const char *store, const char *prefix, char **id, char **dir)
{
    char runs[PATH_MAX], proj[PATH_MAX], found[PATH_MAX] = "", found_id[NAME_MAX + 1] = "";
    size_t n = 0, plen = strlen(prefix);
    snprintf(runs, sizeof runs, "%s/runs", store);
    DIR *d = opendir(runs);
    struct dirent *pe, *e;
    while (d && (pe = readdir(d))) {
        if (pe->d_name[0] == '.')
            continue;
        snprintf(proj, sizeof proj, "%s/%s", runs, pe->d_name);
        DIR *pd = opendir(proj);
        while (pd && (e = readdir(pd))) {
            if (e->d_name[0] == '.' || strncmp(e->d_name, prefix, plen) != 0)
                continue;
            if (n++ == 0) {
                snprintf(found, sizeof found, "%s/%s", proj, e->d_name);
                snprintf(found_id, sizeof found_id, "%s", e->d_name);
            }
        }
        if (pd)
            closedir(pd);
    }
    if (d)
        closedir(d);
    if (n != 1)
        return n ? 2 : 1;
    *id = mt_xstrdup(found_id);
    *dir = mt_xstrdup(found);
    return 0;
}
