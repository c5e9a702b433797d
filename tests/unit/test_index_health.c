/* mt_index's open: the store checked first, a planted link refused, a
 * damaged index.sqlite moved aside and rebuilt, no store is no error text. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../common/mt_index.h"
#include "../../common/mt_safefs.h"
#include "mt_test.h"

static char base[PATH_MAX];

static void fresh(void)
{
    snprintf(base, sizeof base, "/tmp/mt-index-XXXXXX");
    if (!mkdtemp(base))
        abort();
}

static void cleanup(void)
{
    int fd = open("/tmp", O_RDONLY | O_DIRECTORY);
    mt_safefs_remove_tree(fd, base + 5);
    close(fd);
}

static void put_file(const char *rel, const char *text)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", base, rel);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        abort();
    close(fd);
}

MT_TEST(no_store_is_enoent_and_creates_nothing)
{
    char err[512], p[PATH_MAX];
    fresh();
    snprintf(p, sizeof p, "%s/none", base);
    errno = 0;
    MT_CHECK(mt_index_open(p, err, sizeof err) == NULL);
    MT_CHECK(errno == ENOENT);
    MT_CHECK(strstr(err, "no runs yet") != NULL);
    MT_CHECK(access(p, F_OK) != 0);
    cleanup();
}

MT_TEST(a_link_planted_as_index_sqlite_is_refused)
{
    char err[512], p[PATH_MAX], target[PATH_MAX];
    fresh();
    snprintf(p, sizeof p, "%s/index.sqlite", base);
    snprintf(target, sizeof target, "%s/elsewhere.db", base);
    MT_CHECK(symlink(target, p) == 0);
    MT_CHECK(mt_index_open(base, err, sizeof err) == NULL);
    MT_CHECK(strstr(err, "symbolic link") != NULL);
    MT_CHECK(access(target, F_OK) != 0);
    cleanup();
}

static int count_row(void *ctx, const struct mt_index_run *r)
{
    *(int *)ctx += strcmp(r->id, "r1") == 0;
    return 0;
}

MT_TEST(a_damaged_index_is_moved_aside_and_rebuilt_from_the_runs)
{
    char err[512], p[PATH_MAX];
    fresh();
    snprintf(p, sizeof p, "%s/runs/proj/r1", base);
    char mk[PATH_MAX + 16];
    snprintf(mk, sizeof mk, "%s/runs", base);
    mkdir(mk, 0700);
    snprintf(mk, sizeof mk, "%s/runs/proj", base);
    mkdir(mk, 0700);
    mkdir(p, 0700);
    put_file("runs/proj/r1/run.json", "{\"id\":\"r1\",\"state\":\"finished\",\"start_time\":1}");
    char junk[8192];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (char)(i * 7 + 3);
    snprintf(p, sizeof p, "%s/index.sqlite", base);
    int fd = open(p, O_WRONLY | O_CREAT, 0600);
    MT_CHECK(write(fd, junk, sizeof junk) == (ssize_t)sizeof junk);
    close(fd);
    struct mt_index *ix = mt_index_open(base, err, sizeof err);
    MT_CHECK(ix != NULL);
    if (!ix) {
        fprintf(stderr, "    %s\n", err);
        cleanup();
        return;
    }
    MT_CHECK(strstr(mt_index_notice(ix), "was damaged") != NULL);
    MT_CHECK(strstr(mt_index_notice(ix), "(1 runs)") != NULL);
    int found = 0;
    MT_CHECK(mt_index_find(ix, "r1", count_row, &found) == 0);
    MT_CHECK(found == 1);
    mt_index_close(ix);
    /* ... and the damaged one kept beside it, once. */
    int aside = 0;
    DIR *d = opendir(base);
    for (struct dirent *e; d && (e = readdir(d));)
        aside += strncmp(e->d_name, "index.sqlite.damaged-", 21) == 0 &&
                 !strstr(e->d_name, "-wal") && !strstr(e->d_name, "-journal");
    if (d)
        closedir(d);
    MT_CHECK(aside == 1);
    /* A second open finds a sound index and says nothing. */
    ix = mt_index_open(base, err, sizeof err);
    MT_CHECK(ix && *mt_index_notice(ix) == '\0');
    mt_index_close(ix);
    cleanup();
}

int main(void)
{
    return mt_test_main();
}
