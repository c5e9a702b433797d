/* Golden files for the parsers: each folder of tests/golden holds input.*
 * (the bytes a program printed), optionally config.yaml (the rules) and
 * program (the program's name, which picks presets), and expected.jsonl: what
 * `metrictap parse --json` must print for them, byte for byte.
 * MT_GOLDEN_UPDATE=1 rewrites expected.jsonl (review the diff!). */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mt_test.h"

#define GOLDEN "tests/golden"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap)
            buf = realloc(buf, (cap *= 2) + 1);
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

/* Runs the CLI on one case; returns its stdout. */
static char *run_case(const char *dir, const char *input, size_t *len, int *status)
{
    char cfg[512], prog_path[512], in[512];
    snprintf(cfg, sizeof cfg, "%s/config.yaml", dir);
    snprintf(prog_path, sizeof prog_path, "%s/program", dir);
    snprintf(in, sizeof in, "%s/%s", dir, input);
    char *program = slurp(prog_path, NULL);
    if (program)
        program[strcspn(program, "\n")] = '\0';
    char *argv[10];
    int k = 0;
    argv[k++] = "build/metrictap";
    argv[k++] = "parse";
    argv[k++] = "--json";
    if (access(cfg, F_OK) == 0)
        argv[k++] = "-c", argv[k++] = cfg;
    if (program)
        argv[k++] = "--program", argv[k++] = program;
    argv[k++] = in;
    argv[k] = NULL;
    char outpath[] = "/tmp/mt-golden-XXXXXX";
    int fd = mkstemp(outpath);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, 1);
        setenv("HOME", "/nonexistent", 1); /* no user config */
        unsetenv("METRICTAP_CONFIG");
        execv(argv[0], argv);
        _exit(127);
    }
    waitpid(pid, status, 0);
    close(fd);
    free(program);
    char *out = slurp(outpath, len);
    unlink(outpath);
    return out;
}

MT_TEST(every_golden_case_matches)
{
    DIR *d = opendir(GOLDEN);
    MT_CHECK(d != NULL);
    if (!d)
        return;
    int update = getenv("MT_GOLDEN_UPDATE") && *getenv("MT_GOLDEN_UPDATE") == '1';
    int cases = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char dir[512];
        snprintf(dir, sizeof dir, "%s/%s", GOLDEN, e->d_name);
        DIR *c = opendir(dir);
        if (!c)
            continue;
        char input[256] = "";
        struct dirent *f;
        while ((f = readdir(c)) != NULL)
            if (strncmp(f->d_name, "input.", 6) == 0)
                snprintf(input, sizeof input, "%s", f->d_name);
        closedir(c);
        if (!*input)
            continue;
        cases++;
        size_t got_len = 0, want_len = 0;
        int status = 0;
        char *got = run_case(dir, input, &got_len, &status);
        char expected[600];
        snprintf(expected, sizeof expected, "%s/expected.jsonl", dir);
        if (update) {
            FILE *w = fopen(expected, "wb");
            fwrite(got, 1, got_len, w);
            fclose(w);
        }
        char *want = slurp(expected, &want_len);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "    %s: metrictap parse exited with status %d\n", e->d_name, status);
            mt_failed_checks++;
        } else if (!want || want_len != got_len || memcmp(want, got, got_len) != 0) {
            fprintf(stderr, "    %s: output differs from expected.jsonl; got:\n%s\n", e->d_name,
                    got ? got : "(nothing)");
            mt_failed_checks++;
        }
        free(got);
        free(want);
    }
    closedir(d);
    MT_CHECK(cases >= 15);
}

MT_TEST(bad_config_exits_nonzero_with_the_error)
{
    char cfg[] = "/tmp/mt-golden-cfg-XXXXXX";
    int fd = mkstemp(cfg);
    const char *y = "rules:\n  - pattern: '(?<loss>\\d+'\n";
    MT_CHECK(write(fd, y, strlen(y)) == (ssize_t)strlen(y));
    close(fd);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "HOME=/nonexistent build/metrictap parse -c %s /dev/null 2>&1", cfg);
    FILE *p = popen(cmd, "r");
    char out[2048] = "";
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    unlink(cfg);
    MT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 2);
    MT_CHECK(strstr(out, ":2:14: rules[0]: pattern: bad regular expression: missing closing "
                         "parenthesis at offset 11") != NULL);
    MT_CHECK(strstr(out, "    (?<loss>\\d+\n               ^") != NULL);
}

int main(void)
{
    return mt_test_main();
}
