/* mt_console: see mt_console.h. */
#include "mt_console.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

int mt_fd_identify(int fd, struct mt_fd_id *id)
{
    struct stat st;
    memset(id, 0, sizeof *id);
    if (fstat(fd, &st) != 0)
        return -1;
    id->dev = (uint64_t)st.st_dev;
    id->ino = (uint64_t)st.st_ino;
    id->type = (uint32_t)(st.st_mode & S_IFMT);
    id->rdev = (uint32_t)((major(st.st_rdev) << 20) | (minor(st.st_rdev) & 0xfffff));
    return 0;
}

void mt_console_describe(char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (int fd = 1; fd <= 2; fd++) {
        struct mt_fd_id id;
        if (mt_fd_identify(fd, &id) != 0)
            continue;
        int n = snprintf(out + used, size - used, "%s%llx:%llx", used ? "," : "",
                         (unsigned long long)id.dev, (unsigned long long)id.ino);
        if (n < 0 || (size_t)n >= size - used) {
            out[used] = '\0';
            return;
        }
        used += (size_t)n;
    }
}

static int hex(const char **p, uint64_t *out)
{
    uint64_t v = 0;
    int digits = 0;
    for (const char *s = *p;; s++, digits++) {
        int d = (*s >= '0' && *s <= '9') ? *s - '0'
                : (*s >= 'a' && *s <= 'f') ? *s - 'a' + 10
                                            : -1;
        if (d < 0 || digits > 16) {
            *p = s;
            *out = v;
            return digits > 0 && digits <= 16 ? 0 : -1;
        }
        v = v * 16 + (uint64_t)d;
    }
}

int mt_console_parse(const char *s, struct mt_console *c)
{
    memset(c, 0, sizeof *c);
    if (!s || !*s)
        return -1;
    struct mt_console got = { 0 };
    while (*s && got.n < 2) {
        if (hex(&s, &got.f[got.n].dev) != 0 || *s++ != ':' ||
            hex(&s, &got.f[got.n].ino) != 0)
            return -1;
        got.n++;
        if (*s == ',')
            s++;
        else if (*s)
            return -1;
    }
    if (*s || !got.n)
        return -1;
    *c = got;
    return 0;
}

int mt_console_has(const struct mt_console *c, const struct mt_fd_id *id)
{
    if (!id->type)
        return 0;
    for (int i = 0; i < c->n; i++)
        if (c->f[i].dev == id->dev && c->f[i].ino == id->ino)
            return 1;
    return 0;
}

int mt_elsewhere_of(const struct mt_fd_id *id)
{
    switch (id->type) {
    case 0:
        return MT_ELSEWHERE_CLOSED;
    case S_IFIFO:
        return MT_ELSEWHERE_PIPE;
    case S_IFSOCK:
        return MT_ELSEWHERE_SOCKET;
    case S_IFREG:
        return MT_ELSEWHERE_FILE;
    case S_IFCHR: {
        unsigned maj = id->rdev >> 20, min = id->rdev & 0xfffff;
        if (maj == 1 && (min == 3 || min == 5)) /* /dev/null, /dev/zero */
            return MT_ELSEWHERE_DEVNULL;
        if (maj == 1 && min == 7) /* /dev/full: every write fails */
            return MT_ELSEWHERE_FAILED;
        return MT_ELSEWHERE_DEVICE;
    }
    default:
        return MT_ELSEWHERE_DEVICE;
    }
}

const char *mt_elsewhere_name(int kind)
{
    static const char *const names[MT_ELSEWHERE_KINDS] = { "pipe", "socket", "devnull", "device",
                                                           "file", "closed", "failed" };
    return kind >= 0 && kind < MT_ELSEWHERE_KINDS ? names[kind] : "other";
}
