/* mt_rank: where the ranks meet, and what a joining rank takes from there. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../common/mt_channel.h"
#include "../../common/mt_rank.h"
#include "../../common/mt_safefs.h"
#include "mt_test.h"

static char base[PATH_MAX];

static void fresh_xdg(void)
{
    snprintf(base, sizeof base, "/tmp/mt-rank-XXXXXX");
    if (!mkdtemp(base))
        abort();
    setenv("XDG_RUNTIME_DIR", base, 1);
}

static void cleanup(void)
{
    int fd = open("/tmp", O_RDONLY | O_DIRECTORY);
    mt_safefs_remove_tree(fd, base + 5);
    close(fd);
}

static struct mt_rank_info group(const char *g)
{
    struct mt_rank_info ri = { .rank = 1, .world_size = 2, .mode = "zero" };
    snprintf(ri.group, sizeof ri.group, "%s", g);
    return ri;
}

static int never_start(void *ctx, struct mt_agent_answer *ans)
{
    (void)ctx;
    snprintf(ans->error, sizeof ans->error, "must not lead");
    return -1;
}

MT_TEST(meeting_place_is_under_a_private_xdg_runtime_dir)
{
    char dir[512], err[256], want[PATH_MAX];
    fresh_xdg();
    struct mt_rank_info ri = group("g1");
    MT_CHECK(mt_rank_rendezvous_dir(&ri, "proj", dir, sizeof dir, err, sizeof err) == 0);
    snprintf(want, sizeof want, "%s/metrictap/rdv-", base);
    MT_CHECK(strncmp(dir, want, strlen(want)) == 0);
    struct stat st;
    snprintf(want, sizeof want, "%s/metrictap", base);
    MT_CHECK(stat(want, &st) == 0 && (st.st_mode & 0777) == 0700);
    /* The same group and project meet in the same place. */
    char again[512];
    MT_CHECK(mt_rank_rendezvous_dir(&ri, "proj", again, sizeof again, err, sizeof err) == 0);
    MT_CHECK_STR(again, dir);
    cleanup();
}

MT_TEST(an_error_answer_is_not_repeated)
{
    char dir[512], err[256], path[PATH_MAX];
    fresh_xdg();
    struct mt_rank_info ri = group("g2");
    MT_CHECK(mt_rank_rendezvous_dir(&ri, "proj", dir, sizeof dir, err, sizeof err) == 0);
    MT_CHECK(mkdir(dir, 0700) == 0);
    snprintf(path, sizeof path, "%s/answer", dir);
    int fd = open(path, O_WRONLY | O_CREAT, 0600);
    MT_CHECK(write(fd, "ERR rm -rf your words here\n", 27) == 27);
    close(fd);
    struct mt_agent_answer ans = { 0 };
    int leader = -1;
    MT_CHECK(mt_rank_rendezvous(dir, never_start, NULL, 2000, &ans, &leader) == -1);
    MT_CHECK(leader == 0);
    MT_CHECK(strstr(ans.error, "your words") == NULL);
    MT_CHECK(strstr(ans.error, "first rank") != NULL);
    cleanup();
}

MT_TEST(a_meeting_place_open_to_others_is_not_read)
{
    char dir[512], err[256], path[PATH_MAX];
    fresh_xdg();
    struct mt_rank_info ri = group("g3");
    MT_CHECK(mt_rank_rendezvous_dir(&ri, "proj", dir, sizeof dir, err, sizeof err) == 0);
    MT_CHECK(mkdir(dir, 0700) == 0);
    chmod(dir, 0777);
    snprintf(path, sizeof path, "%s/answer", dir);
    int fd = open(path, O_WRONLY | O_CREAT, 0600);
    MT_CHECK(write(fd, "OK abc /tmp /tmp\n", 17) == 17);
    close(fd);
    struct mt_agent_answer ans = { 0 };
    int leader = -1;
    MT_CHECK(mt_rank_rendezvous(dir, never_start, NULL, 2000, &ans, &leader) == -1);
    MT_CHECK(strstr(ans.error, "not private") != NULL);
    MT_CHECK(ans.channel[0] == '\0');
    cleanup();
}

MT_TEST(an_answer_whose_channel_is_not_ours_is_not_joined)
{
    char dir[512], err[256], path[PATH_MAX], chan[PATH_MAX];
    fresh_xdg();
    struct mt_rank_info ri = group("g4");
    MT_CHECK(mt_rank_rendezvous_dir(&ri, "proj", dir, sizeof dir, err, sizeof err) == 0);
    MT_CHECK(mkdir(dir, 0700) == 0);
    /* A channel open to others, with a ctl that looks right. */
    snprintf(chan, sizeof chan, "%s/chan", base);
    mkdir(chan, 0700);
    chmod(chan, 0777);
    snprintf(path, sizeof path, "%s/ctl", chan);
    int fd = open(path, O_RDWR | O_CREAT, 0600);
    MT_CHECK(ftruncate(fd, 4096) == 0);
    uint32_t magic = MT_CTL_MAGIC;
    MT_CHECK(pwrite(fd, &magic, 4, 0) == 4);
    close(fd);
    MT_CHECK(mt_channel_map_ctl(chan) == NULL);
    chmod(chan, 0700);
    struct mt_ctl *ctl = mt_channel_map_ctl(chan);
    MT_CHECK(ctl != NULL); /* the same channel, private: fine */
    if (ctl)
        munmap(ctl, MT_CTL_SIZE);
    chmod(chan, 0777);
    snprintf(path, sizeof path, "%s/answer", dir);
    fd = open(path, O_WRONLY | O_CREAT, 0600);
    char line[PATH_MAX * 2];
    int n = snprintf(line, sizeof line, "OK abc %s %s\n", chan, chan);
    MT_CHECK(write(fd, line, (size_t)n) == n);
    close(fd);
    struct mt_agent_answer ans = { 0 };
    int leader = -1;
    /* Taken for stale: cleared, and this rank would lead the next election. */
    MT_CHECK(mt_rank_rendezvous(dir, never_start, NULL, 2000, &ans, &leader) == -1);
    MT_CHECK(leader == 1);
    cleanup();
}

int main(void)
{
    return mt_test_main();
}
