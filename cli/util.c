/* Helpers shared by the subcommands. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../agent/mt_store.h"
#include "../common/mt_index.h"

#include "../config/mt_config.h"
#include "mt_cli.h"

void mt_cli_load_config(struct mt_config *cfg)
{
    char err[1024];
    if (mt_config_load(cfg, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "metrictap: %s\n", err);
        exit(2);
    }
}

int mt_cli_self_dir(char *out, unsigned long size)
{
    char buf[4096];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    snprintf(out, size, "%s", buf);
    return 0;
}

int mt_cli_find_beside(const char *name, char *out, unsigned long size)
{
    char dir[4096];
    if (mt_cli_self_dir(dir, sizeof dir) != 0)
        return -1;
    snprintf(out, size, "%s/%s", dir, name);
    if (access(out, F_OK) == 0)
        return 0;
    snprintf(out, size, "%s/../lib/metrictap/%s", dir, name);
    if (access(out, F_OK) == 0)
        return 0;
    return -1;
}

void mt_cli_format_duration(double s, char *out, unsigned long size)
{
    if (s < 0)
        s = 0;
    if (s < 60)
        snprintf(out, size, "%.1fs", s);
    else if (s < 3600)
        snprintf(out, size, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(out, size, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

int mt_cli_term_width(void)
{
    const char *env = getenv("COLUMNS");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end == '\0' && v > 0 && v < 100000)
            return (int)v;
    }
    struct winsize ws;
    if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 0;
}

size_t mt_cli_text_width(const char *s)
{
    size_t w = 0;
    for (; s && *s; s++)
        w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

void mt_cli_format_value(const struct mt_value *v, char *out, size_t size, int full)
{
    if (v->type == MT_V_NONE)
        snprintf(out, size, "%s", "");
    else if (v->type == MT_V_TEXT)
        snprintf(out, size, "%s", v->text);
    else if (isinf(v->num))
        snprintf(out, size, "%s", v->num > 0 ? "Infinity" : "-Infinity");
    else if (!full)
        snprintf(out, size, "%.6g", v->num);
    else {
        /* The shortest form that reads back as the same double. */
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(out, size, "%.*g", prec, v->num);
            if (strtod(out, NULL) == v->num)
                break;
        }
    }
}

void mt_cli_filter_error(const char *what, const char *text, size_t pos, const char *msg)
{
    fprintf(stderr, "metrictap: %s: %s\n  %s\n  ", what, msg, text);
    for (size_t i = 0; i < pos && text[i]; i++)
        if (((unsigned char)text[i] & 0xC0) != 0x80)
            fputc(text[i] == '\t' ? '\t' : ' ', stderr);
    fputs("^\n", stderr);
}

struct mt_index *mt_cli_open_index(struct mt_config *cfg)
{
    char err[1024];
    struct mt_index *ix = mt_index_open(cfg->dir, err, sizeof err);
    if (!ix)
        fprintf(stderr, "metrictap: %s\n", err);
    else if (*mt_index_notice(ix))
        fprintf(stderr, "metrictap: %s\n", mt_index_notice(ix));
    return ix;
}

int mt_cli_run_dir_fd(const struct mt_config *cfg, const char *dir)
{
    char project[256], err[1024];
    const char *id = strrchr(dir, '/'), *p = id;
    if (!id || id == dir)
        return -1;
    while (p > dir && p[-1] != '/')
        p--;
    snprintf(project, sizeof project, "%.*s", (int)(id - p > 255 ? 255 : id - p), p);
    int fd = mt_store_dir_fd(cfg->dir, project, id + 1, 0, err, sizeof err);
    if (fd < 0)
        fprintf(stderr, "metrictap: %s\n", err);
    return fd;
}
