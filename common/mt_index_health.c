/* The index's health: the store it lives in is checked before SQLite opens
 * anything there, and a damaged index.sqlite (random bytes, a file cut
 * short) is moved aside and made anew from the run directories, which stay
 * the source of truth. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mt_buf.h"
#include "mt_index_internal.h"
#include "mt_safefs.h"

/* index.sqlite and the files SQLite keeps beside it. */
static const char *const DB_FILES[] = { "index.sqlite", "index.sqlite-wal", "index.sqlite-shm",
                                        "index.sqlite-journal" };

int mt_index__open_root(struct mt_index *ix, const char *store_dir, char *err, size_t errsz)
{
    char e[600], link[64], buf[4096];
    int fd = mt_safefs_open_dir(store_dir, 0, e, sizeof e);
    if (fd == -ENOENT) {
        snprintf(err, errsz, "there is no run store at %s (no runs yet)", store_dir);
        return fd;
    }
    if (fd < 0) {
        snprintf(err, errsz, "refusing the run store: %s", e);
        return fd;
    }
    ix->root_fd = fd;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, buf, sizeof buf - 1);
    if (n > 0 && buf[0] == '/') {
        buf[n] = '\0';
        ix->root = mt_xstrdup(buf);
    } else
        ix->root = mt_xstrdup(store_dir);
    return 0;
}

int mt_index__check_files(struct mt_index *ix, char *err, size_t errsz)
{
    ix->db_dev = 0;
    ix->db_ino = 0;
    for (size_t i = 0; i < sizeof DB_FILES / sizeof *DB_FILES; i++) {
        struct stat st;
        if (fstatat(ix->root_fd, DB_FILES[i], &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue; /* not there yet */
        const char *why = S_ISLNK(st.st_mode)      ? "is a symbolic link"
                          : !S_ISREG(st.st_mode)   ? "is not a plain file"
                          : st.st_uid != geteuid() ? "belongs to another user"
                          : st.st_nlink != 1       ? "has several hard links"
                                                   : NULL;
        if (why) {
            snprintf(err, errsz, "refusing the run store: %s/%s %s", ix->root, DB_FILES[i], why);
            return -1;
        }
        if (i == 0) {
            ix->db_dev = st.st_dev;
            ix->db_ino = st.st_ino;
        }
    }
    return 0;
}

void mt_index__note_damage(struct mt_index *ix)
{
    int code = ix->db ? sqlite3_errcode(ix->db) & 0xff : 0;
    if (code != SQLITE_CORRUPT && code != SQLITE_NOTADB)
        return;
    ix->damaged = 1;
    snprintf(ix->damage, sizeof ix->damage, "%s", sqlite3_errmsg(ix->db));
}

void mt_index__unlock(struct mt_index *ix)
{
    if (ix->lock_fd >= 0)
        close(ix->lock_fd); /* releases the flock */
    ix->lock_fd = -1;
}

/* Under .index.lock, so that two processes finding the damage at once move
 * it aside once: the second finds a different file there and just reopens. */
int mt_index__move_aside(struct mt_index *ix, char *err, size_t errsz)
{
    char e[600];
    mt_index__close_db(ix);
    ix->damaged = 0;
    ix->moved = 0;
    ix->lock_fd = mt_safefs_openat(ix->root_fd, ix->root, ".index.lock", O_RDWR | O_CREAT, 0600,
                                   e, sizeof e);
    if (ix->lock_fd < 0) {
        snprintf(err, errsz, "the index is damaged and cannot be replaced: %s", e);
        return -1;
    }
    while (flock(ix->lock_fd, LOCK_EX) != 0 && errno == EINTR)
        ;
    struct stat st;
    if (fstatat(ix->root_fd, DB_FILES[0], &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        st.st_dev != ix->db_dev || st.st_ino != ix->db_ino)
        return 0; /* someone else has replaced it meanwhile */
    time_t now = time(NULL);
    struct tm tm;
    char stamp[32];
    localtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &tm);
    snprintf(ix->aside, sizeof ix->aside, "index.sqlite.damaged-%s-%d", stamp, (int)getpid());
    if (renameat(ix->root_fd, DB_FILES[0], ix->root_fd, ix->aside) != 0) {
        snprintf(err, errsz, "the index %s/index.sqlite is damaged (%s) and cannot be moved aside: %s",
                 ix->root, ix->damage, strerror(errno));
        return -1;
    }
    /* Its log goes with it; the shared-memory index belongs to it alone. */
    char name[160];
    snprintf(name, sizeof name, "%s-wal", ix->aside);
    renameat(ix->root_fd, DB_FILES[1], ix->root_fd, name);
    snprintf(name, sizeof name, "%s-journal", ix->aside);
    renameat(ix->root_fd, DB_FILES[3], ix->root_fd, name);
    unlinkat(ix->root_fd, DB_FILES[2], 0);
    ix->moved = 1;
    return 0;
}

int mt_index__rebuilt(struct mt_index *ix)
{
    if (!ix->moved)
        return 0;
    struct mt_index_sync_stats st;
    if (mt_index_reindex(ix, &st) != 0)
        return -1;
    snprintf(ix->notice, sizeof ix->notice,
             "the runs index %s/index.sqlite was damaged (%s); it is kept as %s and a new one"
             " was built from the run directories (%zu runs)",
             ix->root, ix->damage, ix->aside, st.added);
    ix->moved = 0;
    return 0;
}

int mt_index_damaged(const struct mt_index *ix)
{
    return ix->damaged;
}

const char *mt_index_notice(const struct mt_index *ix)
{
    return ix->notice;
}
