/* Metadata: git state of a throwaway repository, ELF facts of binaries built
 * here, cluster identity tables, host facts from a fixture /proc and a stub
 * NVML. */
#include "agent/mt_meta.h"
#include "common/mt_sha256.h"
#include "tests/unit/mt_test.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <sys/stat.h>

static char repo_root[PATH_MAX], stub[PATH_MAX + 32];

__attribute__((constructor)) static void find_paths(void)
{
    char tests_dir[PATH_MAX];
    mt_test_paths(tests_dir, repo_root);
    snprintf(stub, sizeof stub, "%s/libstub_nvml.so", tests_dir);
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "    command failed (%d): %s\n", rc, cmd);
    return rc;
}

/* First line of a command's output. */
static void sh_out(char *out, size_t size, const char *cmd)
{
    FILE *p = popen(cmd, "r");
    out[0] = '\0';
    if (p && fgets(out, (int)size, p))
        out[strcspn(out, "\n")] = '\0';
    if (p)
        pclose(p);
}

static void git_identity(void)
{
    setenv("GIT_AUTHOR_NAME", "t", 1);
    setenv("GIT_AUTHOR_EMAIL", "t@example.com", 1);
    setenv("GIT_COMMITTER_NAME", "t", 1);
    setenv("GIT_COMMITTER_EMAIL", "t@example.com", 1);
    setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
}

static const char *str(cJSON *j, const char *k)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int has(cJSON *j, const char *k) { return cJSON_GetObjectItemCaseSensitive(j, k) != NULL; }

static int array_has(cJSON *a, const char *s)
{
    cJSON *e;
    cJSON_ArrayForEach(e, a)
        if (cJSON_IsString(e) && strcmp(e->valuestring, s) == 0)
            return 1;
    return 0;
}

static void make_repo(char *dir)
{
    strcpy(dir, "/tmp/mt-git-XXXXXX");
    if (!mkdtemp(dir))
        abort();
    git_identity();
    MT_CHECK(sh("cd %s && git init -q && git checkout -q -b main && "
                "git remote add origin https://user:s3cret@example.com/o/r.git && "
                "echo one > f.txt && printf 'A\\000B' > bin.dat && echo '*.log' > .gitignore && "
                "git add . && git commit -qm one", dir) == 0);
}

MT_TEST(git_dirty_repo_with_binary_diff_and_untracked)
{
    char repo[64], run[] = "/tmp/mt-run-XXXXXX", head[128], cmd[256], patch[PATH_MAX];
    make_repo(repo);
    MT_CHECK(mkdtemp(run) != NULL);
    MT_CHECK(sh("cd %s && echo two >> f.txt && printf 'A\\000C\\001' > bin.dat && "
                "echo u > u1.txt && echo u > u2.txt && echo x > skip.log", repo) == 0);
    snprintf(cmd, sizeof cmd, "git -C %s rev-parse HEAD", repo);
    sh_out(head, sizeof head, cmd);

    struct mt_meta_git_opts o = {.dir = repo, .run_dir = run};
    cJSON *j = mt_meta_git_json(&o);
    MT_CHECK(j != NULL);
    MT_CHECK_STR(str(j, "remote"), "https://example.com/o/r.git");
    MT_CHECK_STR(str(j, "commit"), head);
    MT_CHECK_STR(str(j, "branch"), "main");
    MT_CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "dirty")));
    cJSON *u = cJSON_GetObjectItem(j, "untracked");
    MT_CHECK(cJSON_GetArraySize(u) == 2 && array_has(u, "u1.txt") && array_has(u, "u2.txt"));
    MT_CHECK(cJSON_IsFalse(cJSON_GetObjectItem(j, "untracked_truncated")));
    MT_CHECK_STR(str(j, "diff_patch"), "diff.patch");
    cJSON_Delete(j);

    struct stat st;
    snprintf(patch, sizeof patch, "%s/diff.patch", run);
    MT_CHECK(stat(patch, &st) == 0 && (st.st_mode & 0777) == 0600 && st.st_size > 0);
    MT_CHECK(sh("grep -q 'GIT binary patch' %s && grep -q '^+two' %s", patch, patch) == 0);
    /* The patch reproduces the tree: applied to a clean checkout of HEAD. */
    MT_CHECK(sh("cd %s && git stash -q && git apply --check %s && git apply %s && "
                "git diff --quiet stash@{0} -- f.txt bin.dat", repo, patch, patch) == 0);

    o.max_untracked = 1;
    j = mt_meta_git_json(&o);
    MT_CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(j, "untracked")) == 1);
    MT_CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "untracked_truncated")));
    cJSON_Delete(j);
    sh("rm -rf %s %s", repo, run);
}

MT_TEST(git_code_disabled_records_no_commit_or_diff)
{
    char repo[64], run[] = "/tmp/mt-run-XXXXXX", patch[PATH_MAX];
    make_repo(repo);
    MT_CHECK(mkdtemp(run) != NULL);
    sh("cd %s && echo two >> f.txt && echo u > u1.txt", repo);
    struct mt_meta_git_opts o = {.dir = repo, .run_dir = run, .code_disabled = true};
    cJSON *j = mt_meta_git_json(&o);
    MT_CHECK(j && !has(j, "commit") && !has(j, "diff_patch") && !has(j, "untracked"));
    MT_CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "code_disabled")));
    MT_CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "dirty")));
    cJSON_Delete(j);
    snprintf(patch, sizeof patch, "%s/diff.patch", run);
    MT_CHECK(access(patch, F_OK) != 0);
    sh("rm -rf %s %s", repo, run);
}

MT_TEST(git_clean_repo_no_patch_no_repo_no_git)
{
    char repo[64], run[] = "/tmp/mt-run-XXXXXX", patch[PATH_MAX];
    make_repo(repo);
    MT_CHECK(mkdtemp(run) != NULL);
    struct mt_meta_git_opts o = {.dir = repo, .run_dir = run};
    cJSON *j = mt_meta_git_json(&o);
    MT_CHECK(j && cJSON_IsFalse(cJSON_GetObjectItem(j, "dirty")) && !has(j, "diff_patch"));
    cJSON_Delete(j);
    snprintf(patch, sizeof patch, "%s/diff.patch", run);
    MT_CHECK(access(patch, F_OK) != 0);

    o.dir = run;   /* not a repository */
    setenv("GIT_CEILING_DIRECTORIES", "/tmp", 1);
    MT_CHECK(mt_meta_git_json(&o) == NULL);
    o.dir = repo;
    setenv("PATH", "/nonexistent", 1);   /* git not installed */
    MT_CHECK(mt_meta_git_json(&o) == NULL);
    sh("/bin/rm -rf %s %s", repo, run);
}

MT_TEST(ignore_globs)
{
    size_t n;
    char **g = mt_meta_globs_split(" *.patch, secrets/* ,,data/*.bin", &n);
    MT_CHECK(n == 3);
    MT_CHECK_STR(g[0], "*.patch");
    MT_CHECK_STR(g[1], "secrets/*");
    MT_CHECK(g[3] == NULL);
    static const struct { const char *path; int ignored; } t[] = {
        {"diff.patch", 1}, {"files/sub/x.patch", 1}, {"secrets/key", 1}, {"data/a.bin", 1},
        {"output.log", 0}, {"data/a.txt", 0}, {"patch", 0}, {"other/secrets/key", 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        MT_CHECK(mt_meta_ignored(t[i].path, g, n) == t[i].ignored);
    mt_meta_globs_free(g);
    g = mt_meta_globs_split(NULL, &n);
    MT_CHECK(n == 0 && g[0] == NULL);
    MT_CHECK(mt_meta_ignored("x.patch", g, n) == 0);
    mt_meta_globs_free(g);
}

static const char prog[] =
    "#include <math.h>\n#include <stdio.h>\n"
    "__attribute__((section(GOSEC), used)) static const char gb[32] = \"\\xff Go buildinf:\";\n"
    "int main(int c, char **v) { (void)v; printf(\"%f\\n\", cos((double)c)); return 0; }\n";

MT_TEST(elf_dynamic_static_go_script)
{
    char dir[] = "/tmp/mt-elf-XXXXXX", p[PATH_MAX], interp[256];
    MT_CHECK(mkdtemp(dir) != NULL);
    snprintf(p, sizeof p, "%s/p.c", dir);
    FILE *f = fopen(p, "w");
    fputs(prog, f);
    fclose(f);
    MT_CHECK(sh("cd %s && cc -O0 -fno-builtin -DGOSEC='\".data.x\"' -o dyn p.c -lm "
                "-Wl,--no-as-needed -Wl,--build-id=0x0123456789abcdef && "
                "cc -O0 -static -DGOSEC='\".data.x\"' -o stat p.c -lm && "
                "cc -O0 -DGOSEC='\".go.buildinfo\"' -o gofake p.c -lm && "
                "printf '#!/bin/sh -e\\necho hi\\n' > s.sh && echo text > t.txt", dir) == 0);

    snprintf(p, sizeof p, "%s/dyn", dir);
    MT_CHECK(mt_meta_elf_kind(p, interp, sizeof interp) == MT_META_ELF_DYNAMIC);
    MT_CHECK(strstr(interp, "ld-linux") != NULL);
    cJSON *j = mt_meta_binary_json(p);
    MT_CHECK(j != NULL);
    MT_CHECK_STR(str(j, "build_id"), "0123456789abcdef");
    MT_CHECK_STR(str(j, "kind"), "dynamic");
    MT_CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "dynamic")));
    MT_CHECK_STR(str(j, "interpreter"), interp);
    cJSON *needed = cJSON_GetObjectItem(j, "needed");
    MT_CHECK(array_has(needed, "libm.so.6") && array_has(needed, "libc.so.6"));
    char want[80], cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "sha256sum %s | cut -d' ' -f1", p);
    sh_out(want, sizeof want, cmd);   /* an independent oracle */
    MT_CHECK_STR(str(j, "sha256"), want);
    struct stat st;
    stat(p, &st);
    MT_CHECK(cJSON_GetObjectItem(j, "size")->valuedouble == (double)st.st_size);
    cJSON_Delete(j);

    snprintf(p, sizeof p, "%s/stat", dir);
    MT_CHECK(mt_meta_elf_kind(p, interp, sizeof interp) == MT_META_ELF_STATIC);
    MT_CHECK_STR(interp, "");
    j = mt_meta_binary_json(p);
    MT_CHECK(j && cJSON_IsFalse(cJSON_GetObjectItem(j, "dynamic")) && !has(j, "needed"));
    cJSON_Delete(j);

    snprintf(p, sizeof p, "%s/gofake", dir);
    MT_CHECK(mt_meta_elf_kind(p, NULL, 0) == MT_META_ELF_GO);
    snprintf(p, sizeof p, "%s/s.sh", dir);
    MT_CHECK(mt_meta_elf_kind(p, interp, sizeof interp) == MT_META_ELF_SCRIPT);
    MT_CHECK_STR(interp, "/bin/sh");
    snprintf(p, sizeof p, "%s/t.txt", dir);
    MT_CHECK(mt_meta_elf_kind(p, NULL, 0) == MT_META_ELF_OTHER);
    snprintf(p, sizeof p, "%s/missing", dir);
    MT_CHECK(mt_meta_elf_kind(p, NULL, 0) == -ENOENT);
    MT_CHECK(mt_meta_binary_json(p) == NULL);
    sh("rm -rf %s", dir);
}

MT_TEST(which_follows_path)
{
    char out[PATH_MAX];
    MT_CHECK(mt_meta_which("sh", "/nonexistent:/bin:/usr/bin", out, sizeof out) == 0);
    MT_CHECK(strcmp(out, "/bin/sh") == 0 || strcmp(out, "/usr/bin/sh") == 0);
    MT_CHECK(mt_meta_which("no-such-prog-mt", "/bin:/usr/bin", out, sizeof out) == -ENOENT);
    MT_CHECK(mt_meta_which("/bin/sh", NULL, out, sizeof out) == 0);
    MT_CHECK_STR(out, "/bin/sh");
}

MT_TEST(cluster_identity_table)
{
    static const struct {
        const char *env[8];
        int rank, local, world;
        const char *from, *group;
    } t[] = {
        {{"RANK=3", "LOCAL_RANK=1", "WORLD_SIZE=8", "TORCHELASTIC_RUN_ID=abc", NULL},
         3, 1, 8, "RANK", "abc"},
        {{"OMPI_COMM_WORLD_RANK=2", "OMPI_COMM_WORLD_SIZE=4", "OMPI_COMM_WORLD_LOCAL_RANK=0", NULL},
         2, 0, 4, "OMPI_COMM_WORLD_RANK", ""},
        {{"PMI_RANK=5", "PMI_SIZE=6", NULL}, 5, -1, 6, "PMI_RANK", ""},
        {{"SLURM_PROCID=7", "SLURM_NTASKS=16", "SLURM_LOCALID=3", "SLURM_JOB_ID=991",
          "SLURM_STEP_ID=0", "TORCHELASTIC_RUN_ID=zz", NULL}, 7, 3, 16, "SLURM_PROCID", "991"},
        {{"RANK=1", "SLURM_PROCID=9", "SLURM_NTASKS=2", NULL}, 1, -1, 2, "RANK", ""},
        {{"RANK=x", "WORLD_SIZE=-2", "HOME=/root", NULL}, -1, -1, -1, NULL, ""},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        struct mt_meta_cluster c;
        int found = mt_meta_cluster_from_env((char *const *)t[i].env, &c);
        MT_CHECK(c.rank == t[i].rank && c.local_rank == t[i].local && c.world_size == t[i].world);
        MT_CHECK(found == (t[i].rank >= 0 || t[i].world >= 0 || t[i].group[0]));
        MT_CHECK(t[i].from ? c.rank_from && strcmp(c.rank_from, t[i].from) == 0 : !c.rank_from);
        MT_CHECK_STR(c.group, t[i].group);
        cJSON *j = mt_meta_cluster_json(&c);
        MT_CHECK(found ? j != NULL : j == NULL);
        cJSON_Delete(j);
    }
    struct mt_meta_cluster c;
    char *env[] = {"SLURM_JOB_ID=42", "SLURM_STEP_ID=1", NULL};
    mt_meta_cluster_from_env(env, &c);
    cJSON *j = mt_meta_cluster_json(&c);
    char *s = cJSON_PrintUnformatted(j);
    MT_CHECK_STR(s, "{\"slurm_job_id\":\"42\",\"slurm_step_id\":\"1\",\"group\":\"42\"}");
    free(s);
    cJSON_Delete(j);
}

MT_TEST(host_facts_from_fixture_and_stub_nvml)
{
    char root[PATH_MAX + 64];
    snprintf(root, sizeof root, "%s/tests/fixtures/proc-t0", repo_root);
    cJSON *j = mt_meta_host_json(root, stub);
    MT_CHECK_STR(str(j, "cpu_model"), "Intel(R) Xeon(R) Test CPU @ 2.00GHz");
    MT_CHECK(cJSON_GetObjectItem(j, "cpu_count")->valuedouble == 2);
    MT_CHECK(cJSON_GetObjectItem(j, "memory_total_mb")->valuedouble == 16384);
    cJSON *g = cJSON_GetObjectItem(j, "gpus");
    MT_CHECK(cJSON_GetArraySize(g) == 2);
    MT_CHECK_STR(str(cJSON_GetArrayItem(g, 1), "name"), "Stub GPU 1");
    MT_CHECK(cJSON_GetObjectItem(cJSON_GetArrayItem(g, 0), "memory_total_mb")->valuedouble == 80000);
    cJSON_Delete(j);
    j = mt_meta_host_json("/nonexistent", "");
    MT_CHECK(j && has(j, "cpu_count") && !has(j, "gpus") && !has(j, "cpu_model"));
    cJSON_Delete(j);
}

int main(void) { return mt_test_main(); }
