/* mt_exec: running a helper program (git) as a child with a timeout, for the
 * agent's metadata and the CLI.  posix_spawnp, stdin from /dev/null, stdout
 * into a caller's buffer or onto a caller's fd, stderr into a buffer; the
 * child is killed (SIGKILL) and reaped when the timeout passes.  Not for the
 * shim (it allocates). */
#ifndef MT_EXEC_H
#define MT_EXEC_H

#include <stddef.h>

struct mt_exec {
    char *const *argv;     /* argv[0] is looked up in PATH */
    char *const *envp;     /* NULL: the caller's environ */
    int out_fd;            /* >= 0: the child's stdout goes there */
    char *out;             /* else stdout into out (NUL-terminated, cut at out_size - 1) */
    size_t out_size;
    char *err;             /* stderr into err (NUL-terminated), or discarded if NULL */
    size_t err_size;
    int timeout_ms;        /* <= 0: 10 s */
    /* results */
    int exit_code;         /* exit status, or 128 + signal */
    size_t out_len;
    int out_truncated;
};

/* 0 when the program ran (see exit_code), -ENOENT when it is not installed
 * (or exited 127 without a word, the old way of saying so),
 * -ETIMEDOUT when it was killed for the timeout, another -errno otherwise. */
int mt_exec_run(struct mt_exec *x);

#endif
