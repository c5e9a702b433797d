/* mt_outfile: see mt_outfile.h. */
#include "mt_outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../mt_store.h"

static int check_ours(int fd, int want_dir, const char *what, char *err, size_t errsz)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errsz, "%s: %s", what, strerror(errno));
        return -errno;
    }
    if (want_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
        snprintf(err, errsz, "%s: not a %s", what, want_dir ? "directory" : "regular file");
        return want_dir ? -ENOTDIR : -EINVAL;
    }
    if (st.st_uid != geteuid()) {
        snprintf(err, errsz, "%s is owned by uid %u, not by this user (%u); refusing to write there",
                 what, (unsigned)st.st_uid, (unsigned)geteuid());
        return -EPERM;
    }
    return 0;
}

/* mkdir -p of the directory the user named (a logdir, WANDB_DIR): links
 * on the way are the user's own path; below it nothing is followed. */
static int make_path(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return -1;
        buf[i] = c;
    }
    return 0;
}

int mt_outdir_open(const char *root, const char *const *parts, int nparts, char *err,
                   size_t errsz)
{
    int result, fd = -1;
    char what[4400];
    snprintf(what, sizeof(what), "%s", root);
    if (make_path(root) != 0) {
        result = -errno;
        snprintf(err, errsz, "cannot create %s: %s", root, strerror(errno));
        goto fail;
    }
    fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        result = -errno;
        snprintf(err, errsz, "cannot open %s: %s", root, strerror(errno));
        goto fail;
    }
    if ((result = check_ours(fd, 1, what, err, errsz)) != 0)
        goto fail;
    for (int i = 0; i < nparts; i++) {
        size_t wl = strlen(what);
        snprintf(what + wl, sizeof(what) - wl, "/%s", parts[i]);
        if (mkdirat(fd, parts[i], 0700) != 0 && errno != EEXIST) {
            result = -errno;
            snprintf(err, errsz, "cannot create %s: %s", what, strerror(errno));
            goto fail;
        }
        int next = openat(fd, parts[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) {
            result = -errno;
            struct stat ls;
            int link = fstatat(fd, parts[i], &ls, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(ls.st_mode);
            snprintf(err, errsz, "cannot open %s: %s", what,
                     link ? "a link, not followed" : strerror(-result));
            goto fail;
        }
        close(fd);
        fd = next;
        if ((result = check_ours(fd, 1, what, err, errsz)) != 0)
            goto fail;
    }
    return fd;
fail:
    if (fd >= 0)
        close(fd);
    return result;
}

void mt_outdir_component(const char *in, char *out, size_t outsz)
{
    size_t n = 0;
    for (const char *p = in; *p && n + 1 < outsz; p++) {
        unsigned char c = (unsigned char)*p;
        int bad = c == '/' || c < 0x20 || c == 0x7f || (n == 0 && c == '.');
        out[n++] = bad ? '_' : (char)c;
    }
    if (n == 0 && outsz > 1)
        out[n++] = '_';
    if (outsz)
        out[n] = '\0';
}

int mt_outfile_open(struct mt_outfile *f, int dirfd, const char *name, int create,
                    uint64_t committed, char *err, size_t errsz)
{
    int flags = O_WRONLY | O_NOFOLLOW | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0);
    int result;
    f->fd = openat(dirfd, name, flags, 0600);
    f->size = 0;
    f->shorter = 0;
    if (f->fd < 0) {
        result = -errno;
        snprintf(err, errsz, "cannot %s %s: %s", create ? "create" : "open", name,
                 strerror(errno));
        return result;
    }
    if ((result = check_ours(f->fd, 0, name, err, errsz)) != 0)
        goto fail;
    struct stat st;
    fstat(f->fd, &st);
    f->size = (uint64_t)st.st_size;
    if (f->size > committed) {
        /* written by a process that stopped before its cursor was saved */
        if (ftruncate(f->fd, (off_t)committed) != 0) {
            result = -errno;
            snprintf(err, errsz, "cannot cut %s back to %llu bytes: %s", name,
                     (unsigned long long)committed, strerror(errno));
            goto fail;
        }
        f->size = committed;
    } else if (f->size < committed) {
        f->shorter = 1; /* cut by someone else: go on from its end */
    }
    return 0;
fail:
    close(f->fd);
    f->fd = -1;
    return result;
}

int mt_outfile_append(struct mt_outfile *f, const void *p, size_t n)
{
    const char *s = p;
    size_t done = 0;
    int result = 0;
    while (done < n) {
        ssize_t w = pwrite(f->fd, s + done, n - done, (off_t)(f->size + done));
        if (w < 0) {
            if (errno == EINTR)
                continue;
            result = -errno;
            break;
        }
        done += (size_t)w;
    }
    if (!result && fdatasync(f->fd) != 0)
        result = -errno;
    if (result) {
        if (ftruncate(f->fd, (off_t)f->size) != 0)
            (void)0; /* the next open cuts it back to the cursor's size */
        return result;
    }
    f->size += n;
    return 0;
}

void mt_outfile_close(struct mt_outfile *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
}
