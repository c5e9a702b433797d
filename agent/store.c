/* mt_store: see mt_store.h. */
#include "mt_store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/mt_buf.h"
#include "../common/mt_safefs.h"

int mt_store_open_file(struct mt_store *s, const char *name, int oflags, char *err, size_t errsz)
{
    return mt_safefs_openat(s->dir_fd, s->dir, name, oflags, 0600, err, errsz);
}

static FILE *open_append(struct mt_store *s, const char *name, char *err, size_t errsz)
{
    int fd = mt_store_open_file(s, name, O_WRONLY | O_CREAT | O_APPEND, err, errsz);
    if (fd < 0) {
        errno = -fd;
        return NULL;
    }
    FILE *f = fdopen(fd, "a");
    if (!f) {
        close(fd);
        return NULL;
    }
    setvbuf(f, NULL, _IOFBF, 1 << 16);
    return f;
}

int mt_store_lock(const char *run_dir)
{
    int fd = mt_safefs_open_in(run_dir, ".run.lock", O_RDWR | O_CREAT, 0600, NULL, 0);
    if (fd < 0)
        return -1;
    while (flock(fd, LOCK_EX) != 0 && errno == EINTR)
        ;
    return fd;
}

void mt_store_unlock(int fd)
{
    if (fd >= 0)
        close(fd); /* releases the flock */
}

/* The message for a directory of the store that could not be had: refused
 * (someone else's, open to others, a link) or not made (a read-only disk). */
static void store_error(char *err, size_t errsz, int rc, const char *e)
{
    static const char made[] = "cannot create ";
    if (rc == -EPERM || rc == -ELOOP || rc == -ENOTDIR)
        snprintf(err, errsz, "refusing the run store: %s", e);
    else if (strncmp(e, made, sizeof made - 1) == 0)
        snprintf(err, errsz, "cannot create the run store %s", e + sizeof made - 1);
    else
        snprintf(err, errsz, "cannot open the run store: %s", e);
}

/* runs/<project>[/<id>] below the checked store directory root_fd. */
static int run_subdir(int root_fd, const char *shown, const char *project, const char *id,
                      int flags, char *err, size_t errsz)
{
    char e[600], rel[600];
    const char *bad = !mt_safefs_name_ok(project) ? project : id && !mt_safefs_name_ok(id) ? id : NULL;
    if (bad) {
        snprintf(err, errsz, "bad %s \"%.200s\": it may not contain '/' or start with '.'",
                 bad == project ? "project name" : "run id", bad);
        return -EINVAL;
    }
    snprintf(rel, sizeof rel, "runs/%s%s%s", project, id ? "/" : "", id ? id : "");
    int fd = mt_safefs_open_subdir(root_fd, shown, rel, flags, e, sizeof e);
    if (fd == -ENOENT)
        snprintf(err, errsz, "%s", e);
    else if (fd < 0)
        store_error(err, errsz, fd, e);
    return fd;
}

int mt_store_dir_fd(const char *root, const char *project, const char *id, int create, char *err,
                    size_t errsz)
{
    char e[600];
    int root_fd = mt_safefs_open_dir(root, create ? MT_SAFEFS_CREATE : 0, e, sizeof e);
    if (root_fd == -ENOENT)
        snprintf(err, errsz, "there is no run store at %s (no runs yet)", root);
    else if (root_fd < 0)
        store_error(err, errsz, root_fd, e);
    if (root_fd < 0 || !project)
        return root_fd;
    int fd = run_subdir(root_fd, root, project, id, create ? MT_SAFEFS_CREATE : 0, err, errsz);
    close(root_fd);
    return fd;
}

int mt_store_run_exists(const char *root, const char *project, const char *id)
{
    char err[16];
    struct stat st;
    int fd = mt_store_dir_fd(root, project, id, 0, err, sizeof err);
    if (fd < 0)
        return 0;
    int yes = fstatat(fd, "run.json", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
    close(fd);
    return yes;
}

/* The absolute path of an open directory, for the index and messages. */
static char *path_of_fd(int fd, const char *fallback)
{
    char link[64], buf[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, buf, sizeof buf - 1);
    if (n <= 0 || buf[0] != '/')
        return mt_xstrdup(fallback);
    buf[n] = '\0';
    return mt_xstrdup(buf);
}

int mt_store_open(struct mt_store *s, const char *root, const char *project, const char *id,
                  int *exists, char *err, size_t errsz)
{
    char e[1024];
    memset(s, 0, sizeof *s);
    s->root_fd = s->dir_fd = -1;
    /* Every directory on the way from the store down is checked (ours, not
     * writable by others, no link), so nobody else can plant a link below
     * it; the files are opened relative to the run directory's fd. */
    s->root_fd = mt_store_dir_fd(root, NULL, NULL, 1, err, errsz);
    if (s->root_fd < 0)
        return -1;
    s->root = path_of_fd(s->root_fd, root);
    s->dir_fd = run_subdir(s->root_fd, s->root, project, id, MT_SAFEFS_CREATE, err, errsz);
    if (s->dir_fd < 0) {
        mt_store_close(s);
        return -1;
    }
    s->dir = path_of_fd(s->dir_fd, s->root);
    struct stat st;
    *exists = fstatat(s->dir_fd, "run.json", &st, AT_SYMLINK_NOFOLLOW) == 0;
    s->history = open_append(s, "history.jsonl", e, sizeof e);
    if (s->history)
        s->events = open_append(s, "events.jsonl", e, sizeof e);
    if (s->events)
        s->output = open_append(s, "output.log", e, sizeof e);
    if (s->output)
        s->system = open_append(s, "system.jsonl", e, sizeof e);
    if (!s->system) {
        snprintf(err, errsz, "cannot write in the run store: %s", e);
        mt_store_close(s);
        return -1;
    }
    return 0;
}

void mt_store_close(struct mt_store *s)
{
    FILE **files[] = { &s->history, &s->events, &s->output, &s->system };
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        if (*files[i]) {
            fclose(*files[i]);
            *files[i] = NULL;
        }
    if (s->root && s->root_fd >= 0)
        close(s->root_fd);
    if (s->dir && s->dir_fd >= 0)
        close(s->dir_fd);
    s->root_fd = s->dir_fd = -1;
    free(s->root);
    free(s->dir);
    s->root = s->dir = NULL;
}

void mt_store_append(struct mt_store *s, FILE *f, const char *line, size_t len)
{
    if (!f)
        return;
    if (fwrite(line, 1, len, f) != len || putc('\n', f) == EOF)
        s->write_errors++;
    s->dirty = 1;
}

void mt_store_event(struct mt_store *s, double ts, const char *event, const char *fields_json)
{
    struct mt_buf b;
    mt_buf_init(&b, 1 << 20);
    mt_buf_printf(&b, "{\"_timestamp\":%.6f,\"event\":", ts);
    mt_buf_json_string(&b, event, strlen(event));
    if (fields_json && *fields_json) {
        mt_buf_addc(&b, ',');
        mt_buf_adds(&b, fields_json);
    }
    mt_buf_addc(&b, '}');
    mt_store_append(s, s->events, b.data, b.len);
    fflush(s->events);
    mt_buf_free(&b);
}

void mt_store_flush(struct mt_store *s)
{
    if (!s->dirty)
        return;
    FILE *files[] = { s->history, s->events, s->output, s->system };
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        if (files[i] && fflush(files[i]) != 0)
            s->write_errors++;
    s->dirty = 0;
}

int mt_store_replace(struct mt_store *s, const char *name, const char *data, size_t len)
{
    int rc = mt_safefs_replaceat(s->dir_fd, name, data, len);
    if (rc != 0) {
        s->write_errors++;
        errno = -rc;
        return -1;
    }
    return 0;
}

char *mt_store_read(const struct mt_store *s, const char *name, size_t *len)
{
    int fd = mt_store_open_file((struct mt_store *)s, name, O_RDONLY, NULL, 0);
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    struct mt_buf b;
    mt_buf_init(&b, (size_t)1 << 30);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        mt_buf_add(&b, chunk, n);
    fclose(f);
    if (!b.data)
        mt_buf_add(&b, "", 0);
    if (len)
        *len = b.len;
    return b.data;
}
