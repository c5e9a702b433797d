/* mt_safefs: checked directories and files, planted links, loose modes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../common/mt_safefs.h"
#include "mt_test.h"

static char base[PATH_MAX];

/* A fresh private directory for one test (each runs in its own child). */
static const char *fresh(void)
{
    snprintf(base, sizeof base, "/tmp/mt-safefs-XXXXXX");
    if (!mkdtemp(base))
        abort();
    return base;
}

static void cleanup(void)
{
    int fd = open("/tmp", O_RDONLY | O_DIRECTORY);
    mt_safefs_remove_tree(fd, base + 5);
    close(fd);
}

static void path_of(char *out, const char *rel)
{
    snprintf(out, PATH_MAX, "%s/%s", base, rel);
}

static int exists(const char *rel)
{
    char p[PATH_MAX];
    struct stat st;
    path_of(p, rel);
    return lstat(p, &st) == 0;
}

MT_TEST(open_dir_creates_missing_directories_private)
{
    char p[PATH_MAX], err[256] = "";
    fresh();
    path_of(p, "a/b/store");
    int fd = mt_safefs_open_dir(p, MT_SAFEFS_CREATE, err, sizeof err);
    MT_CHECK(fd >= 0);
    struct stat st;
    MT_CHECK(fstat(fd, &st) == 0 && (st.st_mode & 07777) == 0700);
    close(fd);
    /* Without CREATE a missing directory is -ENOENT. */
    path_of(p, "missing");
    MT_CHECK(mt_safefs_open_dir(p, 0, err, sizeof err) == -ENOENT);
    cleanup();
}

MT_TEST(open_dir_refuses_a_link_as_last_component)
{
    char p[PATH_MAX], target[PATH_MAX], err[256] = "";
    fresh();
    path_of(target, "elsewhere");
    mkdir(target, 0700);
    path_of(p, "store");
    MT_CHECK(symlink(target, p) == 0);
    MT_CHECK(mt_safefs_open_dir(p, MT_SAFEFS_CREATE, err, sizeof err) == -ELOOP);
    MT_CHECK(strstr(err, "symbolic link") != NULL);
    MT_CHECK(strstr(err, p) != NULL);
    cleanup();
}

MT_TEST(open_dir_refuses_loose_modes)
{
    char p[PATH_MAX], err[256] = "";
    fresh();
    path_of(p, "store");
    mkdir(p, 0700);
    chmod(p, 0777);
    MT_CHECK(mt_safefs_open_dir(p, 0, err, sizeof err) == -EPERM);
    MT_CHECK(strstr(err, "mode 0777") != NULL);
    chmod(p, 0770);
    MT_CHECK(mt_safefs_open_dir(p, 0, err, sizeof err) == -EPERM);
    chmod(p, 0755); /* readable is fine for the store ... */
    int fd = mt_safefs_open_dir(p, 0, err, sizeof err);
    MT_CHECK(fd >= 0);
    close(fd);
    /* ... but not for a private place */
    MT_CHECK(mt_safefs_open_dir(p, MT_SAFEFS_PRIVATE, err, sizeof err) == -EPERM);
    cleanup();
}

MT_TEST(open_dir_refuses_another_users_directory)
{
    char p[PATH_MAX], err[256] = "";
    if (geteuid() != 0) {
        fprintf(stderr, "    (skipped: needs root to chown)\n");
        return;
    }
    fresh();
    path_of(p, "store");
    mkdir(p, 0700);
    MT_CHECK(chown(p, 65534, 65534) == 0);
    MT_CHECK(mt_safefs_open_dir(p, MT_SAFEFS_CREATE, err, sizeof err) == -EPERM);
    MT_CHECK(strstr(err, "belongs to uid 65534") != NULL);
    cleanup();
}

MT_TEST(open_subdir_checks_every_component)
{
    char p[PATH_MAX], err[256] = "";
    fresh();
    int root = mt_safefs_open_dir(base, 0, err, sizeof err);
    MT_CHECK(root >= 0);
    int fd = mt_safefs_open_subdir(root, base, "runs/proj/id1", MT_SAFEFS_CREATE, err,
                                   sizeof err);
    MT_CHECK(fd >= 0);
    close(fd);
    MT_CHECK(exists("runs/proj/id1"));
    /* A link in the middle is refused and nothing is made behind it. */
    path_of(p, "outside");
    mkdir(p, 0700);
    char link[PATH_MAX];
    path_of(link, "runs/evil");
    MT_CHECK(symlink(p, link) == 0);
    fd = mt_safefs_open_subdir(root, base, "runs/evil/id2", MT_SAFEFS_CREATE, err, sizeof err);
    MT_CHECK(fd == -ELOOP);
    MT_CHECK(strstr(err, "runs/evil") != NULL);
    MT_CHECK(!exists("outside/id2"));
    /* ".." may not climb out. */
    MT_CHECK(mt_safefs_open_subdir(root, base, "runs/../..", 0, err, sizeof err) == -EINVAL);
    close(root);
    cleanup();
}

MT_TEST(openat_refuses_planted_links_and_hard_links)
{
    char p[PATH_MAX], target[PATH_MAX], err[256] = "";
    fresh();
    int root = mt_safefs_open_dir(base, 0, err, sizeof err);
    /* A dangling link: opening for append must not create its target. */
    path_of(target, "victim");
    path_of(p, "output.log");
    MT_CHECK(symlink(target, p) == 0);
    int fd = mt_safefs_openat(root, base, "output.log", O_WRONLY | O_CREAT | O_APPEND, 0600, err,
                              sizeof err);
    MT_CHECK(fd == -ELOOP);
    MT_CHECK(!exists("victim"));
    /* A hard link to a file elsewhere. */
    int v = open(target, O_WRONLY | O_CREAT, 0600);
    close(v);
    path_of(p, "events.jsonl");
    MT_CHECK(link(target, p) == 0);
    fd = mt_safefs_openat(root, base, "events.jsonl", O_WRONLY | O_APPEND, 0, err, sizeof err);
    MT_CHECK(fd == -EPERM);
    MT_CHECK(strstr(err, "hard links") != NULL);
    /* A new file, and the same file again. */
    fd = mt_safefs_openat(root, base, "history.jsonl", O_WRONLY | O_CREAT | O_APPEND, 0600, err,
                          sizeof err);
    MT_CHECK(fd >= 0);
    MT_CHECK(write(fd, "x\n", 2) == 2);
    close(fd);
    fd = mt_safefs_openat(root, base, "history.jsonl", O_WRONLY | O_CREAT | O_APPEND, 0600, err,
                          sizeof err);
    MT_CHECK(fd >= 0);
    struct stat st;
    MT_CHECK(fstat(fd, &st) == 0 && st.st_size == 2 && (st.st_mode & 0777) == 0600);
    close(fd);
    /* A FIFO is no plain file. */
    path_of(p, "fifo");
    mkfifo(p, 0600);
    MT_CHECK(mt_safefs_openat(root, base, "fifo", O_RDONLY | O_NONBLOCK, 0, err, sizeof err) ==
             -EPERM);
    MT_CHECK(mt_safefs_openat(root, base, "../x", O_RDONLY, 0, err, sizeof err) == -EINVAL);
    close(root);
    cleanup();
}

MT_TEST(open_in_makes_and_checks_the_way)
{
    char run[PATH_MAX], err[256] = "";
    fresh();
    path_of(run, "run");
    mkdir(run, 0700);
    int fd = mt_safefs_open_in(run, "upload/mlflow.json", O_WRONLY | O_CREAT, 0600, err,
                               sizeof err);
    MT_CHECK(fd >= 0);
    close(fd);
    MT_CHECK(exists("run/upload/mlflow.json"));
    char up[PATH_MAX];
    path_of(up, "run/upload");
    chmod(up, 0777);
    MT_CHECK(mt_safefs_open_in(run, "upload/mlflow.json", O_RDONLY, 0, err, sizeof err) == -EPERM);
    cleanup();
}

MT_TEST(replaceat_swaps_in_new_content_and_leaves_no_temp)
{
    char err[256] = "", p[PATH_MAX];
    fresh();
    int root = mt_safefs_open_dir(base, 0, err, sizeof err);
    MT_CHECK(mt_safefs_replaceat(root, "run.json", "{\"a\":1}", 7) == 0);
    MT_CHECK(mt_safefs_replaceat(root, "run.json", "{}", 2) == 0);
    path_of(p, "run.json");
    struct stat st;
    MT_CHECK(stat(p, &st) == 0 && st.st_size == 2);
    /* A link planted as run.json is replaced, not followed. */
    char target[PATH_MAX];
    path_of(target, "victim");
    unlink(p);
    MT_CHECK(symlink(target, p) == 0);
    MT_CHECK(mt_safefs_replaceat(root, "run.json", "{}", 2) == 0);
    MT_CHECK(!exists("victim"));
    MT_CHECK(lstat(p, &st) == 0 && S_ISREG(st.st_mode));
    int n = 0;
    DIR *d = opendir(base);
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.' || strstr(e->d_name, ".tmp") != NULL;
    closedir(d);
    MT_CHECK(n == 1);
    close(root);
    cleanup();
}

MT_TEST(remove_tree_does_not_follow_links_out)
{
    char err[256] = "", p[PATH_MAX], out[PATH_MAX];
    fresh();
    path_of(out, "outside");
    mkdir(out, 0700);
    path_of(p, "outside/keep");
    close(open(p, O_WRONLY | O_CREAT, 0600));
    int root = mt_safefs_open_dir(base, 0, err, sizeof err);
    int fd = mt_safefs_open_subdir(root, base, "run/sub", MT_SAFEFS_CREATE, err, sizeof err);
    close(fd);
    path_of(p, "run/sub/link");
    MT_CHECK(symlink(out, p) == 0);
    MT_CHECK(mt_safefs_remove_tree(root, "run") == 0);
    MT_CHECK(!exists("run"));
    MT_CHECK(exists("outside/keep"));
    close(root);
    cleanup();
}

MT_TEST(name_ok_takes_one_plain_component)
{
    MT_CHECK(mt_safefs_name_ok("mnist"));
    MT_CHECK(mt_safefs_name_ok("a1b2c3d4"));
    MT_CHECK(!mt_safefs_name_ok(""));
    MT_CHECK(!mt_safefs_name_ok(".."));
    MT_CHECK(!mt_safefs_name_ok(".hidden"));
    MT_CHECK(!mt_safefs_name_ok("a/b"));
    MT_CHECK(!mt_safefs_name_ok(NULL));
}

int main(void)
{
    return mt_test_main();
}
