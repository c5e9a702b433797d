/* Finding the run a command names (select.h): every command that takes a
 * RUN goes through mt_cli_find_run, so they all accept the same forms. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/mt_buf.h"
#include "../common/mt_index.h"
#include "mt_cli.h"
#include "select.h"
#include "show.h"

#define SHOWN_MAX 10 /* matches listed for an ambiguous name */

struct match {
    char *id, *dir, *name, *project;
    double start;
};

struct matches {
    struct match v[SHOWN_MAX + 1];
    size_t n;
    size_t skip; /* MT_INDEX_BY_NEWEST: rows to pass over first */
};

static int take(void *ctx, const struct mt_index_run *r)
{
    struct matches *m = ctx;
    if (m->skip) {
        m->skip--;
        return 0;
    }
    if (m->n == SHOWN_MAX + 1)
        return 1;
    struct match *x = &m->v[m->n++];
    x->id = mt_xstrdup(r->id);
    x->dir = mt_xstrdup(r->dir);
    x->name = mt_xstrdup(r->name ? r->name : "");
    x->project = mt_xstrdup(r->project ? r->project : "");
    x->start = r->start_time;
    return 0;
}

static void matches_free(struct matches *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->v[i].id);
        free(m->v[i].dir);
        free(m->v[i].name);
        free(m->v[i].project);
    }
    m->n = 0;
}

/* "latest" is 1, "-N" is N (N >= 1); 0 for anything else. */
static size_t position(const char *arg)
{
    if (strcmp(arg, "latest") == 0)
        return 1;
    if (arg[0] != '-' || !arg[1])
        return 0;
    size_t n = 0;
    for (const char *p = arg + 1; *p; p++) {
        if (*p < '0' || *p > '9' || n > 100000000)
            return 0;
        n = n * 10 + (size_t)(*p - '0');
    }
    return n;
}

int mt_cli_is_run_position(const char *arg)
{
    return position(arg) != 0;
}

/* Looks `arg` up; fills m with what matched.  0 or -1. */
static int lookup(struct mt_index *ix, const char *project, const char *arg, struct matches *m,
                  int *by_name)
{
    size_t pos = position(arg);
    *by_name = 0;
    if (pos) {
        m->skip = pos - 1;
        return mt_index_lookup(ix, project, MT_INDEX_BY_NEWEST, NULL, pos, take, m) < 0 ? -1 : 0;
    }
    /* An exact id wins over everything; then a unique id prefix and a
     * unique name together (a word that is both is ambiguous). */
    if (mt_index_lookup(ix, project, MT_INDEX_BY_ID, arg, SHOWN_MAX + 1, take, m) < 0)
        return -1;
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->v[i].id, arg) == 0) {
            struct match exact = m->v[i];
            memset(&m->v[i], 0, sizeof m->v[i]);
            matches_free(m);
            m->v[0] = exact;
            m->n = 1;
            return 0;
        }
    size_t by_id = m->n;
    struct matches names = { .n = 0 };
    if (mt_index_lookup(ix, project, MT_INDEX_BY_NAME, arg, SHOWN_MAX + 1, take, &names) < 0) {
        matches_free(&names);
        return -1;
    }
    for (size_t i = 0; i < names.n; i++) {
        int dup = 0;
        for (size_t k = 0; k < by_id; k++)
            dup |= strcmp(m->v[k].id, names.v[i].id) == 0;
        if (!dup && m->n < SHOWN_MAX + 1) {
            m->v[m->n++] = names.v[i];
            memset(&names.v[i], 0, sizeof names.v[i]);
        }
    }
    *by_name = names.n > 0 && by_id == 0;
    matches_free(&names);
    return 0;
}

static void list_matches(const char *arg, const struct matches *m, int by_name)
{
    fprintf(stderr, "metrictap: \"%s\" is ambiguous: it %s %s%zu runs; give one of their ids:\n", arg,
            by_name ? "names" : "matches", m->n > SHOWN_MAX ? "more than " : "",
            m->n > SHOWN_MAX ? (size_t)SHOWN_MAX : m->n);
    for (size_t i = 0; i < m->n && i < SHOWN_MAX; i++) {
        char when[64];
        time_t t = (time_t)m->v[i].start;
        struct tm tm;
        localtime_r(&t, &tm);
        strftime(when, sizeof when, "%Y-%m-%d %H:%M", &tm);
        fprintf(stderr, "  %s  %-24s %-16s %s\n", m->v[i].id, m->v[i].name, m->v[i].project,
                when);
    }
}

int mt_cli_find_run(struct mt_index *ix, const char *store, const char *project, const char *arg,
                    char **id, char **dir)
{
    struct matches m = { .n = 0 };
    int by_name = 0, rc = 1;
    size_t pos = position(arg);
    if (!*arg) {
        fprintf(stderr, "metrictap: an empty run name\n");
        return 1;
    }
    int got = lookup(ix, project, arg, &m, &by_name);
    if (got == 0 && m.n == 0 && mt_index_sync(ix, project, NULL) == 0)
        got = lookup(ix, project, arg, &m, &by_name); /* the index may be behind */
    if (got < 0) {
        fprintf(stderr, "metrictap: cannot read the index in %s: %s\n", store, mt_index_error(ix));
        goto out;
    }
    if (m.n == 1) {
        *id = m.v[0].id;
        *dir = m.v[0].dir;
        m.v[0].id = m.v[0].dir = NULL;
        rc = 0;
        goto out;
    }
    if (m.n > 1) {
        list_matches(arg, &m, by_name);
        goto out;
    }
    const char *scope = project ? project : "the store";
    if (pos) {
        fprintf(stderr, "metrictap: %s: %s has fewer runs than that\n", arg, scope);
        goto out;
    }
    /* No row, but maybe a directory: its run.json is damaged or not there. */
    int d = mt_show_find_dir(store, arg, id, dir);
    if (d == 0) {
        char why[256] = "";
        cJSON *run = mt_index_read_run_json(*dir, why, sizeof why);
        size_t plen = project ? strlen(project) : 0;
        const char *slash = strrchr(*dir, '/');
        int in_scope = !project || (slash && (size_t)(slash - *dir) > plen &&
                                    slash[-(long)plen - 1] == '/' &&
                                    strncmp(slash - plen, project, plen) == 0);
        cJSON_Delete(run);
        if (!run && in_scope) {
            fprintf(stderr, "metrictap: run %s is not in the index: %s, %s\n", *id, *dir, why);
            rc = 0; /* what its other files hold can still be shown */
            goto out;
        }
        free(*id);
        free(*dir);
        *id = *dir = NULL;
        d = 1; /* a readable run the index still lacks is not this one */
    }
    if (d == 2)
        fprintf(stderr, "metrictap: %s matches several run directories; give more of the id\n",
                arg);
    else
        fprintf(stderr, "metrictap: no run %s in %s (an id, id prefix, name, latest or -N)\n",
                arg, project ? project : store);
out:
    matches_free(&m);
    return rc;
}

const char *mt_cli_take_project(int *argc, char **argv)
{
    const char *project = NULL;
    int out = 0;
    for (int i = 0; i < *argc; i++) {
        if (strcmp(argv[i], "--") == 0) { /* the rest is not ours */
            while (i < *argc)
                argv[out++] = argv[i++];
            break;
        }
        if (strcmp(argv[i], "--project") == 0 && i + 1 < *argc) {
            project = argv[++i];
            continue;
        }
        if (strncmp(argv[i], "--project=", 10) == 0) {
            project = argv[i] + 10;
            continue;
        }
        argv[out++] = argv[i];
    }
    *argc = out;
    argv[out] = NULL;
    return project;
}
