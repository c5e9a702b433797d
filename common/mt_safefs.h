/* mt_safefs: files in directories that only the running user can change.
 *
 * Everything metrictap creates or appends to (the run store, the ranks'
 * meeting place, a run's channel) is reached through directory fds that were
 * checked when they were opened: a directory, not a symbolic link, owned by
 * the effective user, not writable by its group or by others (ssh refuses a
 * key file the same way).  Below such a directory nobody else can plant a
 * link or swap a file, so what is opened relative to its fd stays ours; files
 * are opened with O_NOFOLLOW too, created with O_EXCL where new, and checked
 * to be plain files of ours with one link.
 *
 * The trust anchor is the path the user names (METRICTAP_DIR, the channel):
 * its parents are followed as the user's own choice, its last component and
 * everything below are checked.
 *
 * libc only and no allocation except in mt_safefs_remove_tree, so the shim
 * links it.  Functions return an fd or 0 on success, a negative errno on
 * failure, and write one sentence naming the path into err (may be NULL). */
#ifndef MT_SAFEFS_H
#define MT_SAFEFS_H

#include <stddef.h>
#include <sys/types.h>

enum mt_safefs_flags {
    MT_SAFEFS_CREATE = 1 << 0,  /* create missing directories, mode 0700 */
    MT_SAFEFS_PRIVATE = 1 << 1, /* also refuse any access by group or others */
};

/* The checks on an open directory fd; `shown` names it in the message.
 * -ENOTDIR, -EPERM (someone else's, or writable by others). */
int mt_safefs_check_dir(int fd, const char *shown, int flags, char *err, size_t errsz);

/* Opens the directory `path` (O_DIRECTORY | O_NOFOLLOW on its last
 * component) and checks it.  With MT_SAFEFS_CREATE, missing directories on
 * the way are made (0700).  -ELOOP when the last component is a link. */
int mt_safefs_open_dir(const char *path, int flags, char *err, size_t errsz);

/* Opens `rel` (one or more components, no "..") below the checked directory
 * `dirfd`, each component O_NOFOLLOW and checked; `shown` is dirfd's path
 * for messages. */
int mt_safefs_open_subdir(int dirfd, const char *shown, const char *rel, int flags, char *err,
                          size_t errsz);

/* Opens the file `name` (one component) in the checked directory `dirfd`
 * with O_NOFOLLOW | O_CLOEXEC | O_NOCTTY added to `oflags`.  O_CREAT without
 * O_EXCL creates the file exclusively when it is missing and opens the one
 * there otherwise, which must be a plain file of ours with one link. */
int mt_safefs_openat(int dirfd, const char *shown, const char *name, int oflags, mode_t mode,
                     char *err, size_t errsz);

/* Path form of the two above, for code that holds a directory's path: checks
 * `dir` itself, then opens `rel` below it ("upload/mlflow.json": the
 * directories on the way are checked, and made when oflags has O_CREAT). */
int mt_safefs_open_in(const char *dir, const char *rel, int oflags, mode_t mode, char *err,
                      size_t errsz);

/* Replaces `name` in `dirfd` atomically: a new temp file (O_EXCL), written,
 * fsynced, renamed over it.  0 or -errno. */
int mt_safefs_replaceat(int dirfd, const char *name, const void *data, size_t len);

/* Removes `name` in `dirfd` and everything below it without following any
 * link (fd-relative all the way down).  0 or -errno; not for the shim. */
int mt_safefs_remove_tree(int dirfd, const char *name);

/* Is `name` one path component that names no parent or hidden file?  Run
 * ids and project names must be, before they become directories. */
int mt_safefs_name_ok(const char *name);

#endif
