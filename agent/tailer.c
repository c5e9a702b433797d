/* mt_tail: following watched files.  See mt_tail.h. */
#include "mt_tail.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/mt_buf.h"
#include "../common/mt_glob.h"
#include "mt_agent.h"

#define TAIL_CHUNK       65536
#define TAIL_BUDGET      (4u << 20) /* bytes per file per poll, so one file never starves the rest */
#define TAIL_LOOK_EVERY  0.25       /* seconds between looks without an inotify event */
#define TAIL_MAX_GLOBS   64         /* what the shim loads (preload/io_open.c) */

struct tail_file {
    char *path;
    uint32_t id;
    int fd;              /* -1 while the path is missing */
    dev_t dev;
    ino_t ino;
    uint64_t offset;     /* next byte to read */
    uint64_t bytes, truncations, rotations;
    int refused;         /* told once: the path is a link or someone else's file */
};

struct mt_tail {
    mt_parse *parse;
    struct mt_store *store;
    int inotify_fd;      /* -1 when nothing is watched */
    struct tail_file *files;
    size_t nfiles;
    uint64_t refused;    /* files over MT_TAIL_MAX_FILES */
    double last_look;
    int dirty;           /* inotify saw something */
    char *chunk;
};

static void file_event(struct mt_tail *t, double now, const char *event, const char *path,
                       const char *more)
{
    struct mt_buf b;
    mt_buf_init(&b, PATH_MAX * 2 + 512);
    mt_buf_adds(&b, "\"path\":");
    mt_buf_json_string(&b, path, strlen(path));
    if (more && *more) {
        mt_buf_addc(&b, ',');
        mt_buf_adds(&b, more);
    }
    mt_store_event(t->store, now, event, b.data);
    mt_buf_free(&b);
}

static int write_watch_file(const char *globs, const char *cwd, const char *channel,
                            struct mt_store *store, char *err, size_t errsz)
{
    struct mt_buf out;
    mt_buf_init(&out, (size_t)TAIL_MAX_GLOBS * (PATH_MAX + 1));
    int result = -1, n = 0, refused = 0;
    char path[PATH_MAX], tmp[PATH_MAX + 32], abs[PATH_MAX];
    FILE *f = NULL;
    for (const char *p = globs; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t'))
            p++, len--;
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len) {
            char *g = mt_xstrndup(p, len);
            if (n < TAIL_MAX_GLOBS && mt_glob_absolute(cwd, g, abs, sizeof abs) > 0) {
                mt_buf_adds(&out, abs);
                mt_buf_addc(&out, '\n');
                n++;
            } else {
                refused++;
            }
            free(g);
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    if (refused) {
        char fields[128];
        snprintf(fields, sizeof fields, "\"refused\":%d,\"max\":%d,\"reason\":\"too many or too long\"",
                 refused, TAIL_MAX_GLOBS);
        mt_store_event(store, mt_now_unix(), "watch_globs_refused", fields);
    }
    if (n == 0) {
        result = 0;
        goto out;
    }
    snprintf(path, sizeof path, "%s/watch", channel);
    snprintf(tmp, sizeof tmp, "%s/.watch.new", channel);
    f = fopen(tmp, "w");
    int bad = !f || fwrite(out.data, 1, out.len, f) != out.len;
    if (f && fclose(f) != 0)
        bad = 1;
    f = NULL;
    if (bad) {
        snprintf(err, errsz, "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (rename(tmp, path) != 0) {
        snprintf(err, errsz, "cannot rename %s: %s", tmp, strerror(errno));
        goto out;
    }
    result = 1;
out:
    if (f)
        fclose(f);
    mt_buf_free(&out);
    return result;
}

struct mt_tail *mt_tail_create(const char *globs, const char *cwd, const char *channel,
                               mt_parse *parse, struct mt_store *store, char *err,
                               size_t errsz)
{
    struct mt_tail *t = mt_xcalloc(1, sizeof *t);
    int ok = 0;
    t->parse = parse;
    t->store = store;
    t->inotify_fd = -1;
    int rc = write_watch_file(globs ? globs : "", cwd ? cwd : "/", channel, store, err, errsz);
    if (rc < 0)
        goto out;
    if (rc > 0) {
        t->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (t->inotify_fd < 0) {
            snprintf(err, errsz, "cannot watch files: inotify: %s", strerror(errno));
            goto out;
        }
    }
    ok = 1;
out:
    if (!ok) {
        mt_tail_destroy(t);
        return NULL;
    }
    return t;
}

void mt_tail_destroy(struct mt_tail *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nfiles; i++) {
        if (t->files[i].fd >= 0)
            close(t->files[i].fd);
        free(t->files[i].path);
    }
    free(t->files);
    free(t->chunk);
    if (t->inotify_fd >= 0)
        close(t->inotify_fd);
    free(t);
}

static void add_watches(struct mt_tail *t, const char *path)
{
    inotify_add_watch(t->inotify_fd, path,
                      IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVE_SELF | IN_DELETE_SELF);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        slash[slash == dir] = '\0';
        /* A new file at the path (rotation) shows up in its directory. */
        inotify_add_watch(t->inotify_fd, dir, IN_CREATE | IN_MOVED_TO);
    }
}

/* Opens the file now at f->path; 0, or -1 when there is none.  Only a
 * plain file of the run's user is followed: a link at the path (planted in a
 * shared directory, or rotated in) could point the agent at any file it may
 * read, and another user's file could feed the run whatever they write.  A
 * refusal is recorded once per file (file_refused). */
static int open_current(struct mt_tail *t, struct tail_file *f, double now)
{
    int fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
    struct stat st;
    const char *why = NULL;
    if (fd < 0 && errno == ELOOP)
        why = "the path is a symbolic link; metrictap does not follow links it did not make";
    if (fd < 0 && !why)
        return -1;
    if (!why && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
        close(fd);
        return -1;
    }
    if (!why && st.st_uid != geteuid())
        why = "the file belongs to another user";
    if (why) {
        if (fd >= 0)
            close(fd);
        if (!f->refused++) {
            char more[200];
            snprintf(more, sizeof more, "\"reason\":\"%s\"", why);
            file_event(t, now, "file_refused", f->path, more);
        }
        return -1;
    }
    f->fd = fd;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    return 0;
}

/* Files come from globs, and from redirected stdouts even without any. */
static int ready(struct mt_tail *t)
{
    if (t->inotify_fd < 0) {
        t->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (t->inotify_fd < 0)
            return -1;
    }
    if (!t->files) {
        t->files = mt_xcalloc(MT_TAIL_MAX_FILES, sizeof *t->files);
        t->chunk = mt_xmalloc(TAIL_CHUNK);
    }
    return 0;
}

void mt_tail_announce(struct mt_tail *t, uint32_t pid, const char *data, size_t len, double now)
{
    if (!t || ready(t) != 0)
        return;
    size_t plen = strnlen(data, len);
    if (plen == 0 || plen == len || data[0] != '/')
        return;
    uint64_t size_at_open = 0;
    if (len >= plen + 1 + sizeof size_at_open)
        memcpy(&size_at_open, data + plen + 1, sizeof size_at_open);
    for (size_t i = 0; i < t->nfiles; i++)
        if (strlen(t->files[i].path) == plen && memcmp(t->files[i].path, data, plen) == 0) {
            t->dirty = 1; /* already followed: truncation and rotation are seen by looking */
            return;
        }
    if (t->nfiles == MT_TAIL_MAX_FILES) {
        if (t->refused++ == 0)
            mt_store_event(t->store, now, "file_refused",
                           "\"reason\":\"too many watched files\",\"max\":256");
        return;
    }
    struct tail_file *f = &t->files[t->nfiles];
    memset(f, 0, sizeof *f);
    f->path = mt_xstrndup(data, plen);
    f->id = MT_TAIL_ID_BASE + (uint32_t)t->nfiles;
    f->fd = -1;
    t->nfiles++;
    mt_parse_file_writer(t->parse, f->path, pid); /* parse: the writer's preset */
    if (open_current(t, f, now) == 0) {
        struct stat st;
        /* Start where the program started writing; earlier contents are old. */
        if (fstat(f->fd, &st) == 0 && size_at_open <= (uint64_t)st.st_size)
            f->offset = size_at_open;
    }
    add_watches(t, f->path);
    char more[64];
    snprintf(more, sizeof more, "\"offset\":%llu", (unsigned long long)f->offset);
    file_event(t, now, "file_watch", f->path, more);
    t->dirty = 1;
}

/* Reads f from its offset to EOF, up to `budget` bytes. */
static size_t read_new(struct mt_tail *t, struct tail_file *f, size_t budget, double now)
{
    size_t total = 0;
    while (total < budget) {
        ssize_t n = pread(f->fd, t->chunk, TAIL_CHUNK, (off_t)f->offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        mt_parse_file_bytes(t->parse, f->path, now, t->chunk, (size_t)n); /* parse: per-file rules */
        f->offset += (uint64_t)n;
        f->bytes += (uint64_t)n;
        total += (size_t)n;
    }
    return total;
}

static size_t look(struct mt_tail *t, struct tail_file *f, size_t budget, double now)
{
    size_t got = 0;
    struct stat ps, fs;
    if (f->fd < 0) {
        if (open_current(t, f, now) != 0)
            return 0;
        f->offset = 0; /* a file that appeared later is new */
    }
    if (stat(f->path, &ps) == 0 && (ps.st_ino != f->ino || ps.st_dev != f->dev)) {
        /* Rotated: finish the old file, then follow the new one from 0. */
        got += read_new(t, f, SIZE_MAX, now);
        mt_parse_close_file(t->parse, f->path, now);
        close(f->fd);
        f->fd = -1;
        f->rotations++;
        file_event(t, now, "file_rotated", f->path, NULL);
        if (open_current(t, f, now) != 0)
            return got;
        f->offset = 0;
    }
    if (fstat(f->fd, &fs) == 0 && (uint64_t)fs.st_size < f->offset) {
        char more[96];
        snprintf(more, sizeof more, "\"size\":%llu,\"was_at\":%llu",
                 (unsigned long long)fs.st_size, (unsigned long long)f->offset);
        mt_parse_close_file(t->parse, f->path, now);
        f->offset = 0;
        f->truncations++;
        file_event(t, now, "file_truncated", f->path, more);
    }
    return got + read_new(t, f, budget, now);
}

size_t mt_tail_poll(struct mt_tail *t, double now)
{
    if (!t || t->inotify_fd < 0 || !t->files)
        return 0;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    while (read(t->inotify_fd, buf, sizeof buf) > 0)
        t->dirty = 1; /* which file does not matter: looking is cheap */
    if (!t->dirty && now - t->last_look < TAIL_LOOK_EVERY)
        return 0;
    t->dirty = 0;
    t->last_look = now;
    size_t got = 0;
    for (size_t i = 0; i < t->nfiles; i++)
        got += look(t, &t->files[i], TAIL_BUDGET, now);
    if (got)
        t->dirty = 1; /* a file may have more past the budget */
    return got;
}

void mt_tail_finish(struct mt_tail *t, double now)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nfiles; i++) {
        struct tail_file *f = &t->files[i];
        look(t, f, SIZE_MAX, now);
        mt_parse_close_file(t->parse, f->path, now);
        char more[160];
        snprintf(more, sizeof more, "\"bytes\":%llu,\"truncations\":%llu,\"rotations\":%llu",
                 (unsigned long long)f->bytes, (unsigned long long)f->truncations,
                 (unsigned long long)f->rotations);
        file_event(t, now, "file", f->path, more);
    }
    if (t->refused) {
        char fields[96];
        snprintf(fields, sizeof fields, "\"files\":%llu,\"reason\":\"too many watched files\"",
                 (unsigned long long)t->refused);
        mt_store_event(t->store, now, "file_refused_total", fields);
    }
}
