/* agent/stack.c, stack_ehframe.c, stack_format.c: the process tree from a
 * fixture procfs, the reasons for a refusal, the search table made from
 * .eh_frame, and a real dump of a child blocked in a named function. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../../agent/mt_stack.h"
#include "../../agent/mt_stack_internal.h"
#include "../../common/mt_buf.h"
#include "mt_test.h"

static char root[PATH_MAX];

static void put(const char *rel, const char *text)
{
    char path[PATH_MAX * 2], cmd[PATH_MAX * 3];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\"", path);
    if (system(cmd) != 0)
        abort();
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void fixture(void)
{
    snprintf(root, sizeof root, "/tmp/mt-test-stack-XXXXXX");
    if (!mkdtemp(root))
        abort();
}

static void fixture_done(void)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
        fprintf(stderr, "    could not remove %s\n", root);
}

static void stat_line(int pid, int ppid)
{
    char rel[64], text[128];
    snprintf(rel, sizeof rel, "%d/stat", pid);
    snprintf(text, sizeof text, "%d (a (b) c) S %d %d %d 0 -1 0 0 0 0 0 7 3\n", pid, ppid, pid, pid);
    put(rel, text);
}

MT_TEST(tree_is_the_root_and_its_descendants_breadth_first)
{
    fixture();
    stat_line(10, 1);   /* the root */
    stat_line(11, 10);
    stat_line(12, 10);
    stat_line(20, 11);  /* a grandchild */
    stat_line(30, 1);   /* not of the tree */
    stat_line(31, 30);
    pid_t out[16];
    size_t n = mt_stack_tree(root, 10, 0, out, 16);
    MT_CHECK(n == 4);
    MT_CHECK(out[0] == 10);
    MT_CHECK((out[1] == 11 && out[2] == 12) || (out[1] == 12 && out[2] == 11));
    MT_CHECK(out[3] == 20);
    n = mt_stack_tree(root, 10, 1, out, 16); /* without the launcher itself */
    MT_CHECK(n == 3);
    MT_CHECK(out[0] != 10 && out[1] != 10 && out[2] != 10);
    MT_CHECK(mt_stack_tree(root, 10, 0, out, 2) == 2); /* the cap */
    fixture_done();
}

MT_TEST(refusals_say_why)
{
    char why[512];
    fixture();
    put("5/status", "Name:\tx\nTracerPid:\t42\nUid:\t0\t0\t0\t0\n");
    put("self/status", "Name:\tme\nCapEff:\t0000000000000000\nSeccomp:\t0\n");
    mt_stack_why_refused(root, 5, EPERM, why, sizeof why);
    MT_CHECK(strstr(why, "already traced by pid 42") != NULL);

    put("6/status", "Name:\tx\nTracerPid:\t0\nUid:\t65534\t65534\t65534\t65534\n");
    mt_stack_why_refused(root, 6, EPERM, why, sizeof why);
    MT_CHECK(geteuid() == 65534 || strstr(why, "runs as uid 65534") != NULL);
    MT_CHECK(geteuid() == 65534 || strstr(why, "CAP_SYS_PTRACE") != NULL);

    char uidline[128];
    snprintf(uidline, sizeof uidline, "Name:\tx\nTracerPid:\t0\nUid:\t%u\t%u\t%u\t%u\n",
             geteuid(), geteuid(), geteuid(), geteuid());
    put("7/status", uidline);
    put("sys/kernel/yama/ptrace_scope", "3\n");
    mt_stack_why_refused(root, 7, EPERM, why, sizeof why);
    MT_CHECK(strstr(why, "ptrace_scope is 3") != NULL);
    put("sys/kernel/yama/ptrace_scope", "1\n");
    mt_stack_why_refused(root, 7, EPERM, why, sizeof why);
    MT_CHECK(strstr(why, "ptrace_scope is 1") != NULL && strstr(why, "agent") != NULL);

    mt_stack_why_refused(root, 7, ESRCH, why, sizeof why);
    MT_CHECK(strstr(why, "No such process") != NULL);
    fixture_done();
}

static int first_object(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    *(uint64_t *)data = info->dlpi_addr;
    return 1; /* the program itself comes first */
}

MT_TEST(ehframe_table_covers_this_program)
{
    uint64_t bias = 0;
    dl_iterate_phdr(first_object, &bias);
    struct mt_ehtab t;
    MT_CHECK(mt_ehtab_build("/proc/self/exe", bias, &t) == 0);
    MT_CHECK(t.n > 10);
    uint64_t here = (uint64_t)(uintptr_t)&first_object;
    MT_CHECK(here >= t.lo && here < t.hi);
    int sorted = 1, covering = 0;
    for (size_t i = 0; i < t.n; i++) {
        if (i && t.ent[i - 1][0] > t.ent[i][0])
            sorted = 0;
        uint64_t start = t.segbase + (uint64_t)(int64_t)t.ent[i][0];
        uint64_t next = i + 1 < t.n ? t.segbase + (uint64_t)(int64_t)t.ent[i + 1][0] : t.hi;
        if (here >= start && here < next)
            covering = start <= here; /* some FDE starts at or before it */
    }
    MT_CHECK(sorted);
    MT_CHECK(covering);
    mt_ehtab_free(&t);
    MT_CHECK(mt_ehtab_build("/nonexistent", 0, &t) != 0);
}

__attribute__((noinline, noclone)) static void unit_child_waits(int fd)
{
    char c;
    while (read(fd, &c, 1) > 0)
        ;
    __asm__ volatile("" ::: "memory");
}

MT_TEST(dump_of_a_child_names_its_function_and_it_carries_on)
{
    int p[2], ready[2];
    if (pipe(p) != 0 || pipe(ready) != 0)
        abort();
    pid_t child = fork();
    if (child == 0) {
        close(p[1]);
        close(ready[0]);
        if (write(ready[1], "r", 1) != 1)
            _exit(1);
        unit_child_waits(p[0]);
        _exit(7);
    }
    close(p[0]);
    char c;
    MT_CHECK(read(ready[0], &c, 1) == 1);
    int found = 0;
    for (int tries = 0; tries < 200 && !found; tries++) {
        struct mt_stack_dump d;
        MT_CHECK(mt_stack_take("/proc", &child, 1, &d) == 0);
        cJSON *j = mt_stack_json(&d);
        struct mt_buf text;
        mt_buf_init(&text, 1u << 20);
        mt_stack_text(j, &text);
        mt_buf_addc(&text, '\0');
        found = strstr(text.data, "unit_child_waits+0x") != NULL;
        MT_CHECK(d.nprocs == 1 && d.held == 1 && d.refused == 0);
        mt_buf_free(&text);
        cJSON_Delete(j);
        mt_stack_dump_free(&d);
        if (!found)
            usleep(10000); /* the child may not be in its read yet */
    }
    MT_CHECK(found);
    /* The read() that was held restarts and sees the data and the EOF. */
    MT_CHECK(write(p[1], "x", 1) == 1);
    close(p[1]);
    int status = 0;
    MT_CHECK(waitpid(child, &status, 0) == child);
    MT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7);
}

int main(void) { return mt_test_main(); }
