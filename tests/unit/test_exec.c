/* Child processes with captured output and a timeout. */
#include "common/mt_exec.h"
#include "tests/unit/mt_test.h"

#include <errno.h>
#include <time.h>

MT_TEST(captures_stdout_stderr_and_exit_code)
{
    char out[64], err[64];
    char *argv[] = {"sh", "-c", "echo hi; echo oops >&2; exit 3", NULL};
    struct mt_exec x = {.argv = argv, .out_fd = -1, .out = out, .out_size = sizeof out,
                        .err = err, .err_size = sizeof err};
    MT_CHECK(mt_exec_run(&x) == 0);
    MT_CHECK_STR(out, "hi\n");
    MT_CHECK_STR(err, "oops\n");
    MT_CHECK(x.exit_code == 3);
    MT_CHECK(x.out_len == 3 && !x.out_truncated);
}

MT_TEST(missing_program_is_enoent)
{
    char *argv[] = {"metrictap-no-such-program", NULL};
    struct mt_exec x = {.argv = argv, .out_fd = -1};
    MT_CHECK(mt_exec_run(&x) == -ENOENT);
}

MT_TEST(timeout_kills_the_child)
{
    char *argv[] = {"sleep", "10", NULL};
    struct mt_exec x = {.argv = argv, .out_fd = -1, .timeout_ms = 100};
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    MT_CHECK(mt_exec_run(&x) == -ETIMEDOUT);
    clock_gettime(CLOCK_MONOTONIC, &b);
    MT_CHECK(b.tv_sec - a.tv_sec < 3);
}

MT_TEST(long_output_is_cut_and_drained)
{
    char out[100];
    char *argv[] = {"head", "-c", "100000", "/dev/zero", NULL};
    struct mt_exec x = {.argv = argv, .out_fd = -1, .out = out, .out_size = sizeof out};
    MT_CHECK(mt_exec_run(&x) == 0);
    MT_CHECK(x.exit_code == 0 && x.out_truncated && x.out_len == 99);
}

MT_TEST(stdout_onto_an_fd)
{
    char path[] = "/tmp/mt-exec-XXXXXX", buf[16] = "";
    int fd = mkstemp(path);
    char *argv[] = {"printf", "abc", NULL};
    struct mt_exec x = {.argv = argv, .out_fd = fd};
    MT_CHECK(mt_exec_run(&x) == 0);
    MT_CHECK(pread(fd, buf, sizeof buf - 1, 0) == 3);
    MT_CHECK_STR(buf, "abc");
    close(fd);
    unlink(path);
}

int main(void) { return mt_test_main(); }
