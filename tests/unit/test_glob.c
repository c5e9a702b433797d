/* mt_glob: watched-file globs and absolute paths, checked against fnmatch. */
#include <fnmatch.h>

#include "../../common/mt_glob.h"
#include "mt_test.h"

static const struct {
    const char *glob, *path;
    int want;
} cases[] = {
    { "/run/train.log", "/run/train.log", 1 },
    { "/run/train.log", "/run/train.log2", 0 },
    { "/run/*.log", "/run/train.log", 1 },
    { "/run/*.log", "/run/sub/train.log", 0 },   /* '*' stops at '/' */
    { "/run/*/*.csv", "/run/sub/metrics.csv", 1 },
    { "/run/*/*.csv", "/run/metrics.csv", 0 },
    { "/run/?.log", "/run/a.log", 1 },
    { "/run/?.log", "/run/ab.log", 0 },
    { "/run/[abc].log", "/run/b.log", 1 },
    { "/run/[!abc].log", "/run/b.log", 0 },
    { "/run/[a-c]x", "/run/cx", 1 },
    { "/run/[a-c]x", "/run/dx", 0 },
    { "/run/\\*.log", "/run/*.log", 1 },
    { "/run/\\*.log", "/run/a.log", 0 },
    { "/run/*a*b", "/run/xaybzb", 1 },
    { "/run/*a*b", "/run/xaybzc", 0 },
    { "/run/**", "/run/x", 1 },
    { "*", "/run", 0 },
    { "/*", "/run", 1 },
    { "/run/[.log", "/run/[.log", 1 },
    { "/run/metrics*", "/run/metrics.csv", 1 },
    { "", "", 1 },
};

MT_TEST(glob_cases_match_as_fnmatch_pathname_does)
{
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int got = mt_glob_match(cases[i].glob, cases[i].path);
        int libc = fnmatch(cases[i].glob, cases[i].path, FNM_PATHNAME) == 0;
        if (got != cases[i].want || libc != cases[i].want)
            fprintf(stderr, "    %s vs %s: got %d, fnmatch %d, want %d\n", cases[i].glob,
                    cases[i].path, got, libc, cases[i].want);
        MT_CHECK(got == cases[i].want);
        MT_CHECK(libc == cases[i].want);
    }
}

MT_TEST(absolute_joins_and_normalizes)
{
    char out[64];
    MT_CHECK(mt_glob_absolute("/home/u/run", "train.log", out, sizeof out) > 0);
    MT_CHECK_STR(out, "/home/u/run/train.log");
    MT_CHECK(mt_glob_absolute("/home/u/run", "./logs//a.csv", out, sizeof out) > 0);
    MT_CHECK_STR(out, "/home/u/run/logs/a.csv");
    MT_CHECK(mt_glob_absolute("/home/u/run", "../x/../y.log", out, sizeof out) > 0);
    MT_CHECK_STR(out, "/home/u/y.log");
    MT_CHECK(mt_glob_absolute("/home/u/run", "/tmp/./a/../b", out, sizeof out) > 0);
    MT_CHECK_STR(out, "/tmp/b");
    MT_CHECK(mt_glob_absolute("/", "../../a", out, sizeof out) > 0);
    MT_CHECK_STR(out, "/a");
    MT_CHECK(mt_glob_absolute("/a", "..", out, sizeof out) == 1);
    MT_CHECK_STR(out, "/");
    MT_CHECK(mt_glob_absolute("relative", "x", out, sizeof out) == -1);
    MT_CHECK(mt_glob_absolute("/a", "0123456789012345678901234567890123456789012345678901234567890123",
                              out, sizeof out) == -1);
}

int main(void)
{
    return mt_test_main();
}
