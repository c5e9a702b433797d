/* mt_store: see mt_store.h. */
#include "mt_store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <stdio_ext.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/mt_buf.h"
#include "../common/mt_safefs.h"

#define LINE_BUF (1u << 16) /* the stdio buffer of each appended file */
/* The stage of history, events and output: whole lines gathered for one
 * write.  1 MiB, not 64 KiB: large writes cost the page cache less per byte
 * (dd of 320 MB on this ext4: 0.10-0.11 s of system time in 64 KiB writes,
 * 0.07-0.09 s in 1 MiB ones); its pages are touched only as it fills. */
#define STAGE_BUF (1u << 20)

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
    FILE *lined[] = { s->history, s->events, s->output };
    for (size_t i = 0; i < 3; i++) {
        struct stat st;
        s->lines[i].good = fstat(fileno(lined[i]), &st) == 0 ? (uint64_t)st.st_size : 0;
        /* Our own buffer: glibc ignores setvbuf's size without one (it
         * takes st_blksize, 4 KiB), and mt_store_write must know it. */
        s->linebuf[i] = mt_xmalloc(LINE_BUF);
        setvbuf(lined[i], s->linebuf[i], _IOFBF, LINE_BUF);
        s->lines[i].stage = mt_xmalloc(STAGE_BUF);
    }
    return 0;
}

static int flush_lines(struct mt_store *s, FILE *f);

void mt_store_close(struct mt_store *s)
{
    FILE **files[] = { &s->history, &s->events, &s->output, &s->system };
    for (size_t i = 0; i < 3; i++)
        if (*files[i] && s->lines[i].staged)
            flush_lines(s, *files[i]);
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
    for (size_t i = 0; i < 3; i++) {
        free(s->linebuf[i]);
        s->linebuf[i] = NULL;
        free(s->lines[i].stage);
        s->lines[i].stage = NULL;
        s->lines[i].staged = 0;
    }
    free(s->root);
    free(s->dir);
    s->root = s->dir = NULL;
}

static struct mt_store_lines *lines_of(struct mt_store *s, FILE *f)
{
    return f == s->history ? &s->lines[0] : f == s->events ? &s->lines[1]
                                          : f == s->output ? &s->lines[2] : NULL;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Flushes one lined file.  On failure the file is cut back to its last whole
 * line, the buffer is thrown away and its lines are counted as lost. */
static int flush_lines(struct mt_store *s, FILE *f)
{
    struct mt_store_lines *l = lines_of(s, f);
    int ok = fflush(f) == 0;
    if (l && l->staged) {
        /* Straight to the file (O_APPEND): stdio would copy it once more. */
        ok = ok && write_all(fileno(f), l->stage, l->staged) == 0;
        l->staged = 0;
    }
    if (ok) {
        if (l) {
            struct stat st; /* what is really there: a cut never extends the file */
            if (fstat(fileno(f), &st) == 0)
                l->good = (uint64_t)st.st_size;
            l->buffered = l->lines = 0;
        }
        return 0;
    }
    s->write_errors++;
    __fpurge(f);
    clearerr(f);
    struct stat st;
    if (l) {
        /* Cut back what half got written; never past the end (zeros). */
        if (fstat(fileno(f), &st) == 0 && (uint64_t)st.st_size > l->good &&
            ftruncate(fileno(f), (off_t)l->good) != 0)
            (void)0; /* the next whole line still starts at the end */
        s->lines_lost += l->lines;
        l->buffered = l->lines = 0;
    }
    return -1;
}

void mt_store_write(struct mt_store *s, FILE *f, const char *a, size_t alen, const char *b,
                    size_t blen, int newline)
{
    if (!f)
        return;
    struct mt_store_lines *l = lines_of(s, f);
    size_t n = alen + blen + (newline != 0);
    /* Flush before a line that would not fit, so stdio never writes half
     * of one: what reaches the file ends with a whole line. */
    if (l && l->buffered && l->buffered + n >= STAGE_BUF)
        flush_lines(s, f);
    if (l && n < STAGE_BUF) { /* it fits the stage (emptied above if need be) */
        char *p = l->stage + l->staged;
        if (alen)
            memcpy(p, a, alen);
        if (blen)
            memcpy(p + alen, b, blen);
        if (newline)
            p[alen + blen] = '\n';
        l->staged += n;
        l->buffered += n;
        l->lines++;
        s->dirty = 1;
        return;
    }
    if ((alen && fwrite(a, 1, alen, f) != alen) || (blen && fwrite(b, 1, blen, f) != blen) ||
        (newline && putc('\n', f) == EOF)) {
        if (l) {
            l->buffered += n, l->lines++;
            flush_lines(s, f); /* cut the half line back out */
        } else
            s->write_errors++;
        return;
    }
    if (l) {
        l->buffered += n;
        l->lines++;
        if (l->buffered >= STAGE_BUF)
            flush_lines(s, f); /* a line longer than the buffer: written through */
    }
    s->dirty = 1;
}

void mt_store_append(struct mt_store *s, FILE *f, const char *line, size_t len)
{
    mt_store_write(s, f, line, len, NULL, 0, 1);
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
    flush_lines(s, s->events);
    mt_buf_free(&b);
}

void mt_store_flush(struct mt_store *s)
{
    if (!s->dirty)
        return;
    FILE *files[] = { s->history, s->events, s->output };
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        if (files[i])
            flush_lines(s, files[i]);
    if (s->system && fflush(s->system) != 0)
        s->write_errors++;
    s->dirty = 0;
}

/* ---- the run directory's other files ---- */

/* The checked run directory's fd, for the caller to close. */
static int run_dir_fd(const struct mt_store *s)
{
    if (s->dir_fd >= 0)
        return fcntl(s->dir_fd, F_DUPFD_CLOEXEC, 0);
    errno = EBADF;
    return -1;
}

int mt_store_open_in(const struct mt_store *s, const char *name, int flags)
{
    int dfd = run_dir_fd(s);
    if (dfd < 0)
        return -1;
    int fd = openat(dfd, name, flags | O_NOFOLLOW | O_CLOEXEC, 0600);
    int e = errno;
    close(dfd);
    errno = e;
    return fd;
}

int mt_store_make_dir(const struct mt_store *s, const char *name)
{
    int dfd = run_dir_fd(s);
    if (dfd < 0)
        return -1;
    int rc = mkdirat(dfd, name, 0700);
    if (rc != 0 && errno == EEXIST) {
        struct stat st; /* there already: only a folder of ours will do */
        rc = fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) &&
                     st.st_uid == geteuid() && !(st.st_mode & 022)
                 ? 0
                 : -1;
        if (rc != 0)
            errno = EEXIST;
    }
    int e = errno;
    close(dfd);
    errno = e;
    return rc;
}

int mt_store_rename_file(const struct mt_store *s, const char *from, const char *to)
{
    int dfd = run_dir_fd(s);
    if (dfd < 0)
        return -1;
    int rc = renameat(dfd, from, dfd, to);
    close(dfd);
    return rc;
}

static int remove_at(const struct mt_store *s, const char *name, int flags)
{
    int dfd = run_dir_fd(s);
    if (dfd < 0)
        return -1;
    int rc = unlinkat(dfd, name, flags);
    close(dfd);
    return rc;
}

int mt_store_remove_file(const struct mt_store *s, const char *name)
{
    return remove_at(s, name, 0);
}

int mt_store_remove_dir(const struct mt_store *s, const char *name)
{
    return remove_at(s, name, AT_REMOVEDIR);
}

int mt_store_truncate(struct mt_store *s, FILE *f, uint64_t size)
{
    struct mt_store_lines *l = lines_of(s, f);
    if (!f || flush_lines(s, f) != 0 || ftruncate(fileno(f), (off_t)size) != 0)
        return -1;
    if (l)
        l->good = size;
    return 0;
}

uint64_t mt_store_size(struct mt_store *s, FILE *f)
{
    struct mt_store_lines *l = lines_of(s, f);
    if (!f)
        return 0;
    flush_lines(s, f);
    return l ? l->good : 0;
}

int mt_store_hold_agent_lock(const char *run_dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/.agent.lock", run_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int mt_store_agent_alive(const char *run_dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/.agent.lock", run_dir);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int alive = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd); /* a shared lock we got goes with the fd */
    return alive;
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
    /* A file in a folder of the run directory (journal/checkpoint): opened
     * relative to the checked run directory, the folder being ours. */
    int fd = strchr(name, '/') ? mt_store_open_in(s, name, O_RDONLY)
                               : mt_store_open_file((struct mt_store *)s, name, O_RDONLY, NULL, 0);
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
