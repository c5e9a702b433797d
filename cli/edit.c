/* metrictap tag RUN +x -y | rename RUN NAME | rm RUN... [--yes] [--force]:
 * changes to a finished run.  The run directory is the source of truth, so
 * run.json is rewritten first (temp file, fsync, rename; 0600) and the index
 * row is then refreshed from the files. */
#define _XOPEN_SOURCE 700
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../agent/mt_store.h"
#include "../common/mt_buf.h"
#include "../common/mt_index.h"
#include "../common/mt_safefs.h"
#include "../config/mt_config.h"
#include "mt_cli.h"
#include "select.h"

/* Replaces run.json in the checked run directory `dir_fd` atomically. */
static int write_run_json(int dir_fd, const char *dir, const cJSON *o)
{
    char *text = cJSON_Print(o);
    int rc = text ? mt_safefs_replaceat(dir_fd, "run.json", text, strlen(text)) : -ENOMEM;
    if (rc != 0)
        fprintf(stderr, "metrictap: cannot rewrite %s/run.json: %s\n", dir, strerror(-rc));
    free(text);
    return rc ? -1 : 0;
}

/* Reads the run's row back from its files into the index. */
static int refresh_row(struct mt_index *ix, const char *store, const char *dir)
{
    char project[PATH_MAX], id[PATH_MAX];
    const char *slash = strrchr(dir, '/');
    if (!slash)
        return -1;
    snprintf(id, sizeof id, "%s", slash + 1);
    int plen = 0;
    const char *p = slash;
    while (p > dir && p[-1] != '/')
        p--, plen++;
    snprintf(project, sizeof project, "%.*s", plen, p);
    struct mt_index_loaded l;
    if (mt_index_load_dir(store, project, id, &l) != 0)
        return -1;
    int rc = mt_index_put(ix, &l.run);
    if (rc != 0)
        fprintf(stderr, "metrictap: run.json is changed but the index is not (%s); run"
                        " metrictap reindex\n", mt_index_error(ix));
    mt_index_loaded_free(&l);
    return rc;
}

struct edit {
    struct mt_config cfg;
    struct mt_index *ix;
    char *id, *dir;
    cJSON *run;
    int dir_fd; /* the run directory, checked (mt_safefs.h) */
    int lock;   /* held from reading run.json to writing it: the agent waits */
};

static void edit_close(struct edit *e)
{
    mt_store_unlock(e->lock);
    if (e->dir_fd >= 0)
        close(e->dir_fd);
    cJSON_Delete(e->run);
    free(e->id);
    free(e->dir);
    mt_index_close(e->ix);
    mt_config_free(&e->cfg);
}

static int edit_open(struct edit *e, const char *arg, const char *project)
{
    memset(e, 0, sizeof *e);
    e->lock = e->dir_fd = -1;
    mt_cli_load_config(&e->cfg);
    e->ix = mt_cli_open_index(&e->cfg);
    if (!e->ix || mt_cli_find_run(e->ix, e->cfg.dir, project, arg, &e->id, &e->dir) != 0)
        return -1;
    if ((e->dir_fd = mt_cli_run_dir_fd(&e->cfg, e->dir)) < 0)
        return -1;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/run.json", e->dir);
    e->lock = mt_store_lock(e->dir);
    char *text = mt_index_read_file(path, 64 << 20, NULL);
    e->run = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!cJSON_IsObject(e->run)) {
        fprintf(stderr, "metrictap: %s is missing or unreadable\n", path);
        return -1;
    }
    return 0; /* a running run's agent keeps what was edited (agent/run.c) */
}

static int edit_save(struct edit *e)
{
    if (write_run_json(e->dir_fd, e->dir, e->run) != 0)
        return -1;
    return refresh_row(e->ix, e->cfg.dir, e->dir);
}

int mt_cmd_tag(int argc, char **argv)
{
    const char *project = mt_cli_take_project(&argc, argv);
    if (argc < 3) {
        fprintf(stderr, "usage: metrictap tag [--project P] RUN +TAG|-TAG...\n");
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        const char *t = argv[i] + (argv[i][0] == '+' || argv[i][0] == '-');
        if (!*t || strchr(t, ',')) {
            fprintf(stderr, "metrictap: bad tag \"%s\": tags are non-empty and hold no comma\n",
                    argv[i]);
            return 2;
        }
    }
    struct edit e;
    int rc = 1;
    if (edit_open(&e, argv[1], project) != 0)
        goto out;
    cJSON *tags = cJSON_GetObjectItemCaseSensitive(e.run, "tags");
    if (!cJSON_IsArray(tags)) {
        cJSON_DeleteItemFromObjectCaseSensitive(e.run, "tags");
        tags = cJSON_AddArrayToObject(e.run, "tags");
    }
    for (int i = 2; i < argc; i++) {
        int remove = argv[i][0] == '-';
        const char *t = argv[i] + (argv[i][0] == '+' || argv[i][0] == '-');
        int at = -1, k = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, tags)
        {
            if (cJSON_IsString(it) && strcmp(it->valuestring, t) == 0)
                at = k;
            k++;
        }
        if (remove && at >= 0)
            cJSON_DeleteItemFromArray(tags, at);
        else if (!remove && at < 0)
            cJSON_AddItemToArray(tags, cJSON_CreateString(t));
    }
    if (edit_save(&e) != 0)
        goto out;
    struct mt_buf b;
    mt_buf_init(&b, 1 << 20);
    const cJSON *it;
    cJSON_ArrayForEach(it, tags) if (cJSON_IsString(it))
        mt_buf_printf(&b, "%s%s", b.len ? "," : "", it->valuestring);
    printf("%s tags: %s\n", e.id, b.data ? b.data : "");
    mt_buf_free(&b);
    rc = 0;
out:
    edit_close(&e);
    return rc;
}

int mt_cmd_rename(int argc, char **argv)
{
    const char *project = mt_cli_take_project(&argc, argv);
    if (argc != 3 || !argv[2][0]) {
        fprintf(stderr, "usage: metrictap rename [--project P] RUN NAME\n");
        return 2;
    }
    struct edit e;
    int rc = 1;
    if (edit_open(&e, argv[1], project) != 0)
        goto out;
    cJSON_DeleteItemFromObjectCaseSensitive(e.run, "name");
    cJSON_AddStringToObject(e.run, "name", argv[2]);
    if (edit_save(&e) != 0)
        goto out;
    printf("%s name: %s\n", e.id, argv[2]);
    rc = 0;
out:
    edit_close(&e);
    return rc;
}

/* Asks on the terminal; anything but y/yes is no. */
static int confirm(const char *question)
{
    FILE *tty = fopen("/dev/tty", "r+e");
    if (!tty)
        return 0;
    fprintf(tty, "%s [y/N] ", question);
    fflush(tty);
    char answer[16] = "";
    int yes = fgets(answer, sizeof answer, tty) &&
              (strcmp(answer, "y\n") == 0 || strcmp(answer, "yes\n") == 0);
    fclose(tty);
    return yes;
}

int mt_cmd_rm(int argc, char **argv)
{
    int yes = 0, force = 0, rc = 1;
    char *ids[1024], *dirs[1024];
    size_t n = 0;
    struct mt_config cfg;
    struct mt_index *ix = NULL;
    const char *project = mt_cli_take_project(&argc, argv);
    for (int i = 1; i < argc; i++) {
        if (mt_cli_is_run_position(argv[i]))
            continue; /* -1, -2: runs, not options */
        if (strcmp(argv[i], "--yes") == 0 || strcmp(argv[i], "-y") == 0)
            yes = 1;
        else if (strcmp(argv[i], "--force") == 0)
            force = 1;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: metrictap rm [--project P] RUN... [--yes] [--force]\n");
            return 2;
        }
    }
    mt_cli_load_config(&cfg);
    ix = mt_cli_open_index(&cfg);
    if (!ix)
        goto out;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && !mt_cli_is_run_position(argv[i]))
            continue;
        if (n == 1024) {
            fprintf(stderr, "metrictap: at most 1024 runs at once\n");
            goto out;
        }
        if (mt_cli_find_run(ix, cfg.dir, project, argv[i], &ids[n], &dirs[n]) != 0)
            goto out;
        n++;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/run.json", dirs[n - 1]);
        char *text = mt_index_read_file(path, 64 << 20, NULL);
        cJSON *o = text ? cJSON_Parse(text) : NULL;
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "state");
        int running = cJSON_IsString(st) && strcmp(st->valuestring, "running") == 0;
        cJSON_Delete(o);
        free(text);
        if (running && !force) {
            fprintf(stderr, "metrictap: %s is still running; stop it first or give --force\n",
                    ids[n - 1]);
            goto out;
        }
    }
    if (!n) {
        fprintf(stderr, "usage: metrictap rm RUN... [--yes] [--force]\n");
        rc = 2;
        goto out;
    }
    if (!yes) {
        char q[256];
        snprintf(q, sizeof q, "remove %zu run%s (%s%s) and all their files?", n,
                 n == 1 ? "" : "s", ids[0], n > 1 ? ", ..." : "");
        if (!isatty(STDIN_FILENO) && !isatty(STDERR_FILENO)) {
            fprintf(stderr, "metrictap: not removing without --yes (no terminal to ask on)\n");
            goto out;
        }
        if (!confirm(q)) {
            fprintf(stderr, "metrictap: nothing removed\n");
            goto out;
        }
    }
    rc = 0;
    for (size_t i = 0; i < n; i++) {
        /* Out of sight first (one rename), then out of the index, then gone;
         * all of it through the project directory's checked fd, never
         * following a link. */
        char trash[300], project[PATH_MAX];
        const char *slash = strrchr(dirs[i], '/');
        snprintf(project, sizeof project, "%.*s", (int)(slash - dirs[i]), dirs[i]);
        snprintf(trash, sizeof trash, ".rm-%s-%ld", ids[i], (long)getpid());
        int pfd = mt_cli_run_dir_fd(&cfg, dirs[i]); /* checks the run directory */
        int proj = pfd >= 0 ? openat(pfd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
        if (pfd >= 0)
            close(pfd);
        if (proj < 0 || renameat(proj, slash + 1, proj, trash) != 0) {
            if (proj >= 0)
                fprintf(stderr, "metrictap: cannot remove %s: %s\n", dirs[i], strerror(errno));
            if (proj >= 0)
                close(proj);
            rc = 1;
            continue;
        }
        if (mt_index_delete(ix, ids[i]) != 0) {
            fprintf(stderr, "metrictap: %s is gone but still indexed (%s); the next ls"
                            " repairs it\n", ids[i], mt_index_error(ix));
            rc = 1;
        }
        int gone = mt_safefs_remove_tree(proj, trash);
        if (gone != 0) {
            fprintf(stderr, "metrictap: could not delete all of %s/%s: %s\n", project, trash,
                    strerror(-gone));
            rc = 1;
        }
        close(proj);
        printf("removed %s\n", ids[i]);
    }
out:
    for (size_t i = 0; i < n; i++) {
        free(ids[i]);
        free(dirs[i]);
    }
    mt_index_close(ix);
    mt_config_free(&cfg);
    return rc;
}
