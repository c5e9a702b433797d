/* metrictap restore RUN [--dir D]: recreate the code a run ran with.
 *
 * Reads metadata.git.commit from the run's run.json, then either checks the
 * commit out on a new branch metrictap/<id> in the current repository (which
 * must be clean) or adds a worktree at D on that branch, and applies the run's
 * diff.patch (`git diff HEAD --binary` as recorded). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../agent/mt_store.h"
#include "../common/mt_exec.h"
#include "../common/mt_index.h"
#include "../common/mt_safefs.h"
#include "../config/mt_config.h"
#include "mt_cli.h"
#include "select.h"

#define OUT_SIZE 65536

struct git_result {
    int rc;              /* git's exit code, or -errno */
    char out[OUT_SIZE];
    char err[4096];
};

/* git [-C dir] args...; output trimmed of trailing newlines. */
static int git(struct git_result *g, const char *dir, const char *const args[])
{
    const char *argv[24] = {"git"};
    size_t n = 1;
    if (dir) {
        argv[n++] = "-C";
        argv[n++] = dir;
    }
    for (size_t i = 0; args[i] && n < 23; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    struct mt_exec x = {.argv = (char *const *)argv, .out_fd = -1, .out = g->out,
                        .out_size = sizeof g->out, .err = g->err, .err_size = sizeof g->err,
                        .timeout_ms = 120000};
    int rc = mt_exec_run(&x);
    g->rc = rc < 0 ? rc : x.exit_code;
    for (char *s = g->out; x.out_len && s[x.out_len - 1] == '\n';)
        s[--x.out_len] = '\0';
    size_t el = strlen(g->err);
    while (el && g->err[el - 1] == '\n')
        g->err[--el] = '\0';
    return g->rc;
}

#define GIT(g, dir, ...) git((g), (dir), (const char *const[]){__VA_ARGS__, NULL})

static int usage(void)
{
    fputs(mt_cli_usage("restore"), stderr);
    return 2;
}

static int is_run_dir(const char *dir)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/run.json", dir);
    return access(p, R_OK) == 0;
}

/* Finds the run `run` names (mt_cli_find_run) in a store only the user can
 * change; 0, or 1 with a message printed. */
static int find_run(const struct mt_config *cfg, const char *project, const char *run, char *out,
                    size_t size)
{
    char why[1024], *id = NULL, *dir = NULL;
    int store = mt_store_dir_fd(cfg->dir, NULL, NULL, 0, why, sizeof why);
    if (store < 0) { /* a patch from a store others can change is not applied */
        fprintf(stderr, "metrictap restore: %s\n", why);
        return 1;
    }
    close(store);
    struct mt_index *ix = mt_cli_open_index((struct mt_config *)cfg);
    int rc = ix ? mt_cli_find_run(ix, cfg->dir, project, run, &id, &dir) : 1;
    if (rc == 0)
        snprintf(out, size, "%s", dir);
    free(id);
    free(dir);
    mt_index_close(ix);
    return rc;
}

/* metadata.git.<key> of run.json as a new string, or NULL. */
static char *run_git_field(const char *run_dir, const char *key)
{
    char p[PATH_MAX];
    FILE *f;
    long n;
    char *buf = NULL, *val = NULL;
    cJSON *j = NULL;
    snprintf(p, sizeof p, "%s/run.json", run_dir);
    if (!(f = fopen(p, "re")))
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && n < (64L << 20) &&
        fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) != NULL &&
        fread(buf, 1, (size_t)n, f) == (size_t)n) {
        buf[n] = '\0';
        j = cJSON_Parse(buf);
    }
    fclose(f);
    cJSON *v = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "metadata"), "git"),
        key);
    if (cJSON_IsString(v) && v->valuestring[0])
        val = strdup(v->valuestring);
    cJSON_Delete(j);
    free(buf);
    return val;
}

int mt_cmd_restore(int argc, char **argv)
{
    const char *run = NULL, *dir = NULL;
    char run_dir[PATH_MAX], abs_run[PATH_MAX], patch[PATH_MAX + 16], branch[300], *id;
    char *commit = NULL, *remote = NULL;
    struct mt_config cfg;
    int result = 1, have_patch, cfg_loaded = 0, run_fd = -1, patch_fd = -1;
    struct stat st;
    struct git_result *g = calloc(1, sizeof *g);
    if (!g)
        abort();

    const char *project = mt_cli_take_project(&argc, argv);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strncmp(argv[i], "--dir=", 6) == 0)
            dir = argv[i] + 6;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage();
            result = 0;
            goto out;
        } else if ((argv[i][0] != '-' || mt_cli_is_run_position(argv[i])) && !run)
            run = argv[i];
        else {
            result = usage();
            goto out;
        }
    }
    if (!run || (dir && !*dir)) {
        result = usage();
        goto out;
    }

    /* The run: a run directory given as a path, or an id (prefix) in the store. */
    if (strchr(run, '/') && is_run_dir(run)) {
        snprintf(run_dir, sizeof run_dir, "%s", run);
    } else {
        mt_cli_load_config(&cfg);
        cfg_loaded = 1;
        if (find_run(&cfg, project, run, run_dir, sizeof run_dir) != 0)
            goto out;
    }
    if (!realpath(run_dir, abs_run)) {
        fprintf(stderr, "metrictap restore: %s: %s\n", run_dir, strerror(errno));
        goto out;
    }
    /* What is applied to the user's tree must come from a directory only
     * they can change, and diff.patch must be a plain file of theirs. */
    char why[1024];
    run_fd = mt_safefs_open_dir(abs_run, 0, why, sizeof why);
    if (run_fd < 0) {
        fprintf(stderr, "metrictap restore: refusing the run: %s\n", why);
        goto out;
    }
    id = strrchr(abs_run, '/') + 1;
    commit = run_git_field(abs_run, "commit");
    remote = run_git_field(abs_run, "remote");
    if (!commit) {
        fprintf(stderr, "metrictap restore: run %s recorded no git commit (it did not run in a "
                        "git repository, or code saving was disabled)\n", id);
        goto out;
    }
    if (strspn(commit, "0123456789abcdef") != strlen(commit) || strlen(commit) < 7 ||
        strlen(commit) > 64) {
        fprintf(stderr, "metrictap restore: run %s recorded \"%.80s\" as its commit, which is no"
                        " commit id\n", id, commit);
        goto out;
    }
    patch_fd = mt_safefs_openat(run_fd, abs_run, "diff.patch", O_RDONLY | O_NONBLOCK, 0, why,
                                sizeof why);
    if (patch_fd < 0 && patch_fd != -ENOENT) {
        fprintf(stderr, "metrictap restore: refusing the run's patch: %s\n", why);
        goto out;
    }
    /* git reads the very file checked, through the fd it inherits. */
    if (patch_fd >= 0)
        fcntl(patch_fd, F_SETFD, 0);
    snprintf(patch, sizeof patch, "/proc/self/fd/%d", patch_fd);
    have_patch = patch_fd >= 0 && fstat(patch_fd, &st) == 0 && st.st_size > 0;
    snprintf(branch, sizeof branch, "metrictap/%s", id);

    if (GIT(g, NULL, "rev-parse", "--show-toplevel") != 0) {
        fprintf(stderr, "metrictap restore: not inside a git repository%s%s%s\n",
                remote ? " (the run's remote is " : "", remote ? remote : "", remote ? ")" : "");
        goto out;
    }
    char commit_ref[256];
    snprintf(commit_ref, sizeof commit_ref, "%s^{commit}", commit);
    if (GIT(g, NULL, "cat-file", "-e", commit_ref) != 0) {
        fprintf(stderr, "metrictap restore: commit %s is not in this repository; fetch it first%s%s\n",
                commit, remote ? " from " : "", remote ? remote : "");
        goto out;
    }
    char head_ref[320];
    snprintf(head_ref, sizeof head_ref, "refs/heads/%s", branch);
    if (GIT(g, NULL, "rev-parse", "-q", "--verify", head_ref) == 0) {
        fprintf(stderr, "metrictap restore: branch %s already exists; delete it (git branch -D %s) "
                        "to restore again\n", branch, branch);
        goto out;
    }

    if (!dir) {
        if (GIT(g, NULL, "status", "--porcelain", "--untracked-files=no") != 0) {
            fprintf(stderr, "metrictap restore: git status failed: %s\n", g->err);
            goto out;
        }
        if (g->out[0]) {
            fprintf(stderr, "metrictap restore: the working tree has uncommitted changes; "
                            "refusing to touch it (commit or stash them, or restore into a new "
                            "worktree with --dir D):\n%s\n", g->out);
            goto out;
        }
        if (GIT(g, NULL, "checkout", "-q", "-b", branch, commit) != 0) {
            fprintf(stderr, "metrictap restore: git checkout failed: %s\n", g->err);
            goto out;
        }
    } else if (GIT(g, NULL, "worktree", "add", "-q", "-b", branch, dir, commit) != 0) {
        fprintf(stderr, "metrictap restore: git worktree add %s failed: %s\n", dir, g->err);
        goto out;
    }

    if (have_patch && GIT(g, dir, "apply", "--binary", "--whitespace=nowarn", patch) != 0) {
        fprintf(stderr, "metrictap restore: %s is on branch %s at %.12s, but diff.patch did not "
                        "apply: %s\n", dir ? dir : "the working tree", branch, commit, g->err);
        goto out;
    }
    printf("restored run %s: %s%s on branch %s at %.12s, %s\n", id, dir ? "worktree " : "",
           dir ? dir : "working tree", branch, commit,
           have_patch ? "diff.patch applied" : "no diff.patch (the run's tree was clean)");
    result = 0;
out:
    if (run_fd >= 0)
        close(run_fd);
    if (patch_fd >= 0)
        close(patch_fd);
    if (cfg_loaded)
        mt_config_free(&cfg);
    free(commit);
    free(remote);
    free(g);
    return result;
}
