/* mt_safefs: see mt_safefs.h. */
#include "mt_safefs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SAY(...)                                                                                 \
    do {                                                                                         \
        if (err && errsz)                                                                        \
            snprintf(err, errsz, __VA_ARGS__);                                                   \
    } while (0)

static int refuse_stat(const struct stat *st, const char *shown, int want_dir, int flags,
                       char *err, size_t errsz)
{
    uid_t me = geteuid();
    if (want_dir && !S_ISDIR(st->st_mode)) {
        SAY("%s is not a directory", shown);
        return -ENOTDIR;
    }
    if (!want_dir && !S_ISREG(st->st_mode)) {
        SAY("%s is not a plain file", shown);
        return -EPERM;
    }
    if (st->st_uid != me) {
        SAY("%s belongs to uid %u, not to you (uid %u)", shown, (unsigned)st->st_uid,
            (unsigned)me);
        return -EPERM;
    }
    mode_t loose = (flags & MT_SAFEFS_PRIVATE) ? 077 : 022;
    if (want_dir && (st->st_mode & loose)) {
        SAY("%s is open to its group or to others (mode %04o; chmod go-rwx it)", shown,
            (unsigned)(st->st_mode & 07777));
        return -EPERM;
    }
    if (!want_dir && st->st_nlink != 1) {
        SAY("%s has %lu hard links; metrictap writes only files of its own", shown,
            (unsigned long)st->st_nlink);
        return -EPERM;
    }
    return 0;
}

int mt_safefs_check_dir(int fd, const char *shown, int flags, char *err, size_t errsz)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        SAY("cannot look at %s: %s", shown, strerror(e));
        return -e;
    }
    return refuse_stat(&st, shown, 1, flags, err, errsz);
}

static int say_open_error(int e, const char *shown, char *err, size_t errsz)
{
    if (e == ELOOP)
        SAY("%s is a symbolic link; metrictap does not follow links it did not make", shown);
    else if (e == ENOTDIR)
        SAY("%s is not a directory", shown);
    else
        SAY("cannot open %s: %s", shown, strerror(e));
    return -e;
}

int mt_safefs_name_ok(const char *name)
{
    return name && name[0] && name[0] != '.' && !strchr(name, '/') && strlen(name) < NAME_MAX;
}

/* One component below a checked directory. */
static int open_one_dir(int dirfd, const char *name, const char *shown, int flags, char *err,
                        size_t errsz)
{
    if ((flags & MT_SAFEFS_CREATE) && mkdirat(dirfd, name, 0700) != 0 && errno != EEXIST) {
        int e = errno;
        SAY("cannot create %s: %s", shown, strerror(e));
        return -e;
    }
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        struct stat st;
        /* Linux says ENOTDIR for a link under O_DIRECTORY | O_NOFOLLOW. */
        if (e == ENOTDIR && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISLNK(st.st_mode))
            e = ELOOP;
        return say_open_error(e, shown, err, errsz);
    }
    int rc = mt_safefs_check_dir(fd, shown, flags, err, errsz);
    if (rc != 0) {
        close(fd);
        return rc;
    }
    return fd;
}

int mt_safefs_open_dir(const char *path, int flags, char *err, size_t errsz)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) {
        SAY("bad directory name \"%.200s\"", path);
        return -ENAMETOOLONG;
    }
    memcpy(buf, path, n + 1);
    while (n > 1 && buf[n - 1] == '/')
        buf[--n] = '\0';
    /* The parents: the user's choice, followed; made when missing. */
    char *last = strrchr(buf, '/');
    const char *parent = ".";
    char *name = buf;
    if (last == buf) {
        parent = "/";
        name = buf + 1;
    } else if (last) {
        *last = '\0';
        parent = buf;
        name = last + 1;
    }
    if (!*name) /* "/" itself */
        name = ".";
    int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (pfd < 0 && errno == ENOENT && (flags & MT_SAFEFS_CREATE)) {
        for (char *p = buf + 1; *p; p++) {
            if (*p != '/')
                continue;
            *p = '\0';
            if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
                *p = '/';
                break;
            }
            *p = '/';
        }
        if (mkdir(parent, 0700) != 0 && errno != EEXIST) {
            int e = errno;
            SAY("cannot create %s: %s", parent, strerror(e));
            return -e;
        }
        pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (pfd < 0) {
        int e = errno;
        SAY("cannot open %s: %s", parent, strerror(e));
        return -e;
    }
    if (last)
        *last = '/';
    int fd = open_one_dir(pfd, name, buf, flags, err, errsz);
    close(pfd);
    return fd;
}

int mt_safefs_open_subdir(int dirfd, const char *shown, const char *rel, int flags, char *err,
                          size_t errsz)
{
    char where[PATH_MAX];
    int fd = dup(dirfd);
    if (fd < 0)
        return -errno;
    snprintf(where, sizeof where, "%s", shown);
    for (const char *p = rel; *p;) {
        while (*p == '/')
            p++;
        size_t len = strcspn(p, "/");
        if (!len)
            break;
        char name[NAME_MAX + 1];
        if (len > NAME_MAX || (len == 2 && p[0] == '.' && p[1] == '.') ||
            (len == 1 && p[0] == '.')) {
            SAY("bad directory name \"%.*s\" below %s", (int)(len > 64 ? 64 : len), p, shown);
            close(fd);
            return -EINVAL;
        }
        memcpy(name, p, len);
        name[len] = '\0';
        size_t wl = strlen(where);
        snprintf(where + wl, sizeof where - wl, "/%s", name);
        int sub = open_one_dir(fd, name, where, flags, err, errsz);
        close(fd);
        if (sub < 0)
            return sub;
        fd = sub;
        p += len;
    }
    return fd;
}

int mt_safefs_openat(int dirfd, const char *shown, const char *name, int oflags, mode_t mode,
                     char *err, size_t errsz)
{
    char where[PATH_MAX];
    snprintf(where, sizeof where, "%s/%s", shown, name);
    if (!name[0] || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        SAY("bad file name %s", where);
        return -EINVAL;
    }
    int base = oflags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY;
    int fd;
    if ((oflags & O_CREAT) && !(oflags & O_EXCL)) {
        /* New: exclusively.  There: opened as it is, then checked. */
        fd = openat(dirfd, name, base | O_EXCL, mode);
        if (fd < 0 && errno == EEXIST)
            fd = openat(dirfd, name, base & ~O_CREAT, mode);
    } else {
        fd = openat(dirfd, name, base, mode);
    }
    if (fd < 0) {
        int e = errno;
        if (e == ELOOP)
            SAY("%s is a symbolic link; metrictap does not follow links it did not make", where);
        else
            SAY("cannot open %s: %s", where, strerror(e));
        return -e;
    }
    struct stat st;
    int rc = fstat(fd, &st) == 0 ? refuse_stat(&st, where, 0, 0, err, errsz) : -errno;
    if (rc != 0) {
        close(fd);
        return rc;
    }
    return fd;
}

int mt_safefs_open_in(const char *dir, const char *rel, int oflags, mode_t mode, char *err,
                      size_t errsz)
{
    char sub[PATH_MAX], shown[PATH_MAX];
    int flags = (oflags & O_CREAT) ? MT_SAFEFS_CREATE : 0;
    int dfd = mt_safefs_open_dir(dir, 0, err, errsz);
    if (dfd < 0)
        return dfd;
    snprintf(sub, sizeof sub, "%s", rel);
    char *slash = strrchr(sub, '/');
    const char *name = sub;
    snprintf(shown, sizeof shown, "%s", dir);
    if (slash) {
        *slash = '\0';
        name = slash + 1;
        int sfd = mt_safefs_open_subdir(dfd, dir, sub, flags, err, errsz);
        close(dfd);
        if (sfd < 0)
            return sfd;
        dfd = sfd;
        size_t sl = strlen(shown);
        snprintf(shown + sl, sizeof shown - sl, "/%s", sub);
    }
    int fd = mt_safefs_openat(dfd, shown, name, oflags, mode, err, errsz);
    close(dfd);
    return fd;
}

int mt_safefs_replaceat(int dirfd, const char *name, const void *data, size_t len)
{
    char tmp[NAME_MAX + 1];
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int n = snprintf(tmp, sizeof tmp, ".%.200s.%d.%lx.tmp", name, (int)getpid(),
                     (unsigned long)ts.tv_nsec);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return -ENAMETOOLONG;
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int rc = 0;
    for (size_t off = 0; off < len && rc == 0;) {
        ssize_t w = write(fd, (const char *)data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            rc = w < 0 ? -errno : -EIO;
        else
            off += (size_t)w;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && renameat(dirfd, tmp, dirfd, name) != 0)
        rc = -errno;
    if (rc != 0)
        unlinkat(dirfd, tmp, 0);
    return rc;
}

int mt_safefs_remove_tree(int parent, const char *name)
{
    if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
        return 0;
    if (errno != EISDIR && errno != EPERM)
        return -errno;
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        return -e;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        int r = mt_safefs_remove_tree(dirfd(d), e->d_name);
        if (r != 0 && rc == 0)
            rc = r;
    }
    closedir(d);
    if (unlinkat(parent, name, AT_REMOVEDIR) != 0 && rc == 0)
        rc = -errno;
    return rc;
}
