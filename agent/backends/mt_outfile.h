/* mt_outfile: the output directories and append-only files of the backends
 * that write files (tensorboard.c, wandb.c), outside the run store.
 *
 * The root (a logdir, WANDB_DIR) is what the user named: missing parts are
 * created 0700 and links in it are followed, but it must be a directory of
 * ours.  Below it every directory and file is created by us or must already
 * be ours: opened with O_NOFOLLOW, never through a link we did not make, and
 * refused when another user owns it.
 *
 * An outfile appends whole records: each append reaches the file (written and
 * fdatasync'ed) or none of it does (cut back).  `size` is what was written;
 * the backend keeps it in its cursor state and reopens with it, so that bytes
 * written after the cursor was last saved are cut off instead of doubled. */
#ifndef MT_OUTFILE_H
#define MT_OUTFILE_H

#include <stddef.h>
#include <stdint.h>

/* Opens root/parts[0]/.../parts[n-1] as a directory (O_PATH is not enough:
 * files are created in it), creating what is missing.  Returns a directory fd,
 * or -errno with a message naming the path in err. */
int mt_outdir_open(const char *root, const char *const *parts, int nparts, char *err,
                   size_t errsz);

/* A component of a path made from a run's name or project: '/', NUL and
 * control characters become '_', and a leading '.' too (no "..", no hidden). */
void mt_outdir_component(const char *in, char *out, size_t outsz);

struct mt_outfile {
    int fd;
    uint64_t size;            /* bytes written, all of them whole records */
    int shorter;              /* on open the file was shorter than `committed` */
};

/* Opens dirfd/name for appending: created (O_EXCL) when `create`, else it must
 * exist; a regular file of ours.  Bytes past `committed` are cut off.
 * Returns 0 or -errno (err says what). */
int mt_outfile_open(struct mt_outfile *f, int dirfd, const char *name, int create,
                    uint64_t committed, char *err, size_t errsz);

/* Appends n bytes at f->size and syncs them; on failure cuts the file back
 * and returns -errno (-ENOSPC: the disk is full). */
int mt_outfile_append(struct mt_outfile *f, const void *p, size_t n);

void mt_outfile_close(struct mt_outfile *f);

#endif
