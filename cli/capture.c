/* Which capture `metrictap run` uses, and the --watch flag.  See mt_capture.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/mt_elf.h"
#include "mt_capture.h"

#define WATCH_VAR "METRICTAP_FILES_WATCH"

int mt_capture_needs_pump(const char *cmd, char *why, size_t whysz)
{
    char path[4096];
    if (mt_elf_which(cmd, path, sizeof path) != 0)
        return 0; /* exec will say what is wrong */
    switch (mt_elf_classify(path)) {
    case MT_ELF_STATIC:
        snprintf(why, whysz, "is statically linked");
        return 1;
    case MT_ELF_GO:
        snprintf(why, whysz, "is a Go program");
        return 1;
    default:
        return 0;
    }
}

int mt_capture_add_watch(const char *glob)
{
    if (!*glob || strchr(glob, ','))
        return -1;
    const char *old = getenv(WATCH_VAR);
    if (!old || !*old)
        return setenv(WATCH_VAR, glob, 1);
    size_t n = strlen(old) + strlen(glob) + 2;
    char *both = malloc(n);
    if (!both)
        return -1;
    snprintf(both, n, "%s,%s", old, glob);
    int rc = setenv(WATCH_VAR, both, 1);
    free(both);
    return rc;
}
