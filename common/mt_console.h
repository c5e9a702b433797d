/* mt_console: which open files are the run's console.
 *
 * A run's console is what a person saw: the stdout and stderr that the run's
 * first process had when it started (a terminal, or the pipe or file they were
 * redirected to by the user's shell), identified by the open file (dev and
 * inode), not by fd number.  The first process of a tree (the shim's start of
 * a run, or `metrictap run`) describes them in METRICTAP_CONSOLE for every
 * process below it; each process's shim then tells, for each write to its fd
 * 1 or 2, whether it reached the console or went elsewhere (preload/console.c
 * has the rule).  Shared by the shim and the launcher: libc only, no
 * allocation. */
#ifndef MT_CONSOLE_H
#define MT_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

#include "mt_ring.h"

#define MT_ENV_CONSOLE "METRICTAP_CONSOLE" /* "dev:ino,dev:ino" in hex */

struct mt_console {
    int n; /* 0: unknown (the variable is missing): fds 1 and 2 are the console */
    struct {
        uint64_t dev, ino;
    } f[2];
};

/* fstat of fd as an mt_fd_id; -1 when fd is not open (id->type is 0 then). */
int mt_fd_identify(int fd, struct mt_fd_id *id);

/* Writes this process's fds 1 and 2 as a console description into out. */
void mt_console_describe(char *out, size_t size);

/* Reads a description; 0, or -1 (c->n is 0) when it is missing or malformed. */
int mt_console_parse(const char *s, struct mt_console *c);

/* Is the open file `id` one of the console's? */
int mt_console_has(const struct mt_console *c, const struct mt_fd_id *id);

/* What an open file that is not the console is (enum mt_elsewhere). */
int mt_elsewhere_of(const struct mt_fd_id *id);

/* The names of enum mt_elsewhere, for the run's record: "pipe", "socket",
 * "devnull", "device", "file", "closed", "failed". */
const char *mt_elsewhere_name(int kind);

#endif
