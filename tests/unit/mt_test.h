/* A tiny table-friendly test harness: one binary per module, each test a
 * function, the binary ends with "N passed, N failed".
 *
 *   MT_TEST(parses_equals) { MT_CHECK(x == 1); MT_CHECK_STR(a, "b"); }
 *   int main(void) { return mt_test_main(); }
 *
 * Each test runs in a forked child with a timeout, so a crash or a hang fails
 * that test and not the binary (libuv's test runner does the same). */
#ifndef MT_TEST_H
#define MT_TEST_H

#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Paths from the test binary's own: its folder (build/tests, where the test
 * libraries such as libstub_nvml.so lie) and the repository root. */
static inline void mt_test_paths(char tests_dir[PATH_MAX], char repo_root[PATH_MAX])
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n < 0)
        abort();
    exe[n] = '\0';
    snprintf(tests_dir, PATH_MAX, "%s", dirname(exe));
    snprintf(repo_root, PATH_MAX, "%s", dirname(dirname(exe)));
}

typedef void (*mt_test_fn)(void);
struct mt_test_case { const char *name; mt_test_fn fn; };

static struct mt_test_case mt_tests[256];
static int mt_ntests;
static int mt_failed_checks;

#define MT_TEST(tname)                                                      \
    static void test_##tname(void);                                         \
    __attribute__((constructor)) static void register_##tname(void)        \
    {                                                                       \
        mt_tests[mt_ntests].name = #tname;                                  \
        mt_tests[mt_ntests++].fn = test_##tname;                            \
    }                                                                       \
    static void test_##tname(void)

#define MT_CHECK(cond)                                                      \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "    %s:%d: check failed: %s\n", __FILE__,      \
                    __LINE__, #cond);                                       \
            mt_failed_checks++;                                             \
        }                                                                   \
    } while (0)

#define MT_CHECK_STR(got, want)                                             \
    do {                                                                    \
        const char *g_ = (got), *w_ = (want);                               \
        if (!g_ || strcmp(g_, w_) != 0) {                                   \
            fprintf(stderr, "    %s:%d: got \"%s\", want \"%s\"\n",         \
                    __FILE__, __LINE__, g_ ? g_ : "(null)", w_);            \
            mt_failed_checks++;                                             \
        }                                                                   \
    } while (0)

#define MT_CHECK_NUM(got, want)                                             \
    do {                                                                    \
        double g_ = (got), w_ = (want);                                     \
        if (!(g_ == w_ || (g_ - w_ < 1e-9 && w_ - g_ < 1e-9))) {           \
            fprintf(stderr, "    %s:%d: got %.17g, want %.17g\n",           \
                    __FILE__, __LINE__, g_, w_);                            \
            mt_failed_checks++;                                             \
        }                                                                   \
    } while (0)

static int mt_test_main(void)
{
    int passed = 0, failed = 0;
    const char *only = getenv("MT_TEST_ONLY");
    for (int i = 0; i < mt_ntests; i++) {
        if (only && !strstr(mt_tests[i].name, only))
            continue;
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            alarm(60);
            mt_tests[i].fn();
            fflush(NULL);
            _exit(mt_failed_checks ? 1 : 0);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!ok && WIFSIGNALED(status))
            fprintf(stderr, "    killed by signal %d\n", WTERMSIG(status));
        printf("  %s %s\n", ok ? "ok  " : "FAIL", mt_tests[i].name);
        ok ? passed++ : failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

#endif
