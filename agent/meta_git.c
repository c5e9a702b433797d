/* Git state of the program's working directory, by running git. */
#include "agent/mt_meta.h"
#include "common/mt_exec.h"
#include "common/mt_redact.h"
#include "common/mt_safefs.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

#define OUT_SIZE 65536

struct git {
    const char *dir;
    char **envp;
    int timeout_ms;
    char out[OUT_SIZE];
    int out_truncated;
};

static void oom(void)
{
    fputs("metrictap-agent: out of memory\n", stderr);
    abort();
}

/* environ plus settings that keep git from prompting or taking locks. */
static char **git_env(void)
{
    static char *extra[] = {"GIT_OPTIONAL_LOCKS=0", "GIT_TERMINAL_PROMPT=0", "LC_ALL=C"};
    size_t n = 0, k = 0;
    while (environ && environ[n])
        n++;
    char **e = malloc((n + 4) * sizeof *e);
    if (!e)
        oom();
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "GIT_OPTIONAL_LOCKS=", 19) && strncmp(environ[i], "LC_ALL=", 7) &&
            strncmp(environ[i], "GIT_TERMINAL_PROMPT=", 20))
            e[k++] = environ[i];
    for (size_t i = 0; i < 3; i++)
        e[k++] = extra[i];
    e[k] = NULL;
    return e;
}

/* Runs `git -C dir <args...>` (NULL-terminated); stdout into g->out, trailing
 * newlines trimmed, or onto out_fd.  Returns git's exit code, or -errno. */
static int run_git(struct git *g, int out_fd, const char *const args[])
{
    const char *argv[24] = {"git", "-C", g->dir};
    size_t n = 3;
    for (size_t i = 0; args[i] && n < 23; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    struct mt_exec x = {.argv = (char *const *)argv, .envp = g->envp, .out_fd = out_fd,
                        .out = out_fd < 0 ? g->out : NULL, .out_size = OUT_SIZE,
                        .timeout_ms = g->timeout_ms};
    int rc = mt_exec_run(&x);
    if (rc < 0)
        return rc;
    g->out_truncated = x.out_truncated;
    while (x.out_len > 0 && (g->out[x.out_len - 1] == '\n' || g->out[x.out_len - 1] == '\r'))
        g->out[--x.out_len] = '\0';
    return x.exit_code;
}

#define GIT(g, ...) run_git((g), -1, (const char *const[]){__VA_ARGS__, NULL})

static void add_remote(struct git *g, cJSON *j)
{
    char name[256];
    if (GIT(g, "config", "--get", "remote.origin.url") != 0 || !g->out[0]) {
        if (GIT(g, "remote") != 0 || !g->out[0])
            return;
        size_t len = strcspn(g->out, "\n");
        if (len >= sizeof name - 32)
            return;
        char key[300];
        memcpy(name, g->out, len);
        name[len] = '\0';
        snprintf(key, sizeof key, "remote.%s.url", name);
        if (GIT(g, "config", "--get", key) != 0 || !g->out[0])
            return;
    }
    char *url = mt_redact_strip_url(g->out);
    cJSON_AddStringToObject(j, "remote", url);
    free(url);
}

static void add_untracked(struct git *g, cJSON *j, unsigned max)
{
    cJSON *list;
    unsigned n = 0;
    int truncated;
    if (GIT(g, "ls-files", "--others", "--exclude-standard", "-z") != 0)
        return;
    truncated = g->out_truncated;
    list = cJSON_AddArrayToObject(j, "untracked");
    /* -z: NUL-separated; run_git's buffer is NUL-terminated after the data */
    for (const char *p = g->out; *p; p += strlen(p) + 1) {
        if (n == max) {
            truncated = 1;
            break;
        }
        if (truncated && p[strlen(p) + 1] == '\0')
            break;   /* the last name may be cut off */
        cJSON_AddItemToArray(list, cJSON_CreateString(p));
        n++;
    }
    cJSON_AddBoolToObject(j, "untracked_truncated", truncated);
}

static void add_diff(struct git *g, cJSON *j, const char *run_dir)
{
    char path[4096];
    struct stat st;
    int fd, rc;
    if ((size_t)snprintf(path, sizeof path, "%s/diff.patch", run_dir) >= sizeof path)
        return;
    /* Checked: the run directory ours, diff.patch no link (mt_safefs.h). */
    fd = mt_safefs_open_in(run_dir, "diff.patch", O_WRONLY | O_CREAT | O_TRUNC, 0600, NULL, 0);
    if (fd < 0)
        return;
    rc = run_git(g, fd, (const char *const[]){"-c", "core.quotepath=off", "diff", "HEAD",
                                              "--binary", "--no-color", "--no-ext-diff",
                                              "--src-prefix=a/", "--dst-prefix=b/", NULL});
    if (rc == 0 && fstat(fd, &st) == 0 && st.st_size > 0 && fsync(fd) == 0) {
        cJSON_AddStringToObject(j, "diff_patch", "diff.patch");
        cJSON_AddNumberToObject(j, "diff_bytes", (double)st.st_size);
    } else {
        unlink(path);
    }
    close(fd);
}

cJSON *mt_meta_git_json(const struct mt_meta_git_opts *o)
{
    struct git *g = calloc(1, sizeof *g);
    cJSON *j = NULL;
    int have_commit = 0;
    if (!g)
        oom();
    g->dir = o->dir ? o->dir : ".";
    g->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 5000;
    g->envp = git_env();
    if (GIT(g, "rev-parse", "--is-inside-work-tree") != 0 || strcmp(g->out, "true") != 0)
        goto out;   /* no git, not a repository, or a bare one */
    if (!(j = cJSON_CreateObject()))
        oom();
    add_remote(g, j);
    if (GIT(g, "symbolic-ref", "--short", "-q", "HEAD") == 0 && g->out[0])
        cJSON_AddStringToObject(j, "branch", g->out);
    if (GIT(g, "status", "--porcelain", "--untracked-files=no") == 0)
        cJSON_AddBoolToObject(j, "dirty", g->out[0] != '\0');
    if (o->code_disabled) {
        cJSON_AddBoolToObject(j, "code_disabled", 1);
        goto out;
    }
    if (GIT(g, "rev-parse", "-q", "--verify", "HEAD") == 0 && g->out[0]) {
        cJSON_AddStringToObject(j, "commit", g->out);
        have_commit = 1;
    }
    add_untracked(g, j, o->max_untracked ? o->max_untracked : 100);
    if (have_commit && o->run_dir)
        add_diff(g, j, o->run_dir);
out:
    free(g->envp);
    free(g);
    return j;
}

char **mt_meta_globs_split(const char *csv, size_t *n)
{
    size_t cap = 1, k = 0;
    for (const char *p = csv ? csv : ""; *p; p++)
        cap += *p == ',';
    char **v = calloc(cap + 1, sizeof *v);
    if (!v)
        oom();
    for (const char *p = csv ? csv : ""; *p;) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (b > a && !(v[k++] = strndup(a, (size_t)(b - a))))
            oom();
        p = *end ? end + 1 : end;
    }
    if (n)
        *n = k;
    return v;
}

void mt_meta_globs_free(char **globs)
{
    for (size_t i = 0; globs && globs[i]; i++)
        free(globs[i]);
    free(globs);
}

int mt_meta_ignored(const char *relpath, char **globs, size_t n)
{
    const char *base = strrchr(relpath, '/');
    base = base ? base + 1 : relpath;
    for (size_t i = 0; i < n; i++) {
        if (fnmatch(globs[i], relpath, 0) == 0)
            return 1;
        if (!strchr(globs[i], '/') && fnmatch(globs[i], base, 0) == 0)
            return 1;
    }
    return 0;
}
