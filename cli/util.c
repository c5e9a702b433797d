/* Helpers shared by the subcommands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
