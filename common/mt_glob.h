/* mt_glob: matching watched-file globs against absolute paths, and making a
 * path absolute, without allocating.
 *
 * Used by the shim on every open() for writing, so it takes no lock, calls no
 * libc function that allocates (glibc's fnmatch converts to wide characters,
 * with malloc, under a multibyte locale) and works byte by byte.  The agent
 * uses the same functions, so both sides agree on what matches.
 *
 * Syntax: fnmatch(3) with FNM_PATHNAME: '*' and '?' do not match '/',
 * "[a-z]" and "[!a-z]" classes, '\' quotes the next character. */
#ifndef MT_GLOB_H
#define MT_GLOB_H

#include <stddef.h>

/* 1 when `path` matches `glob`, else 0. */
int mt_glob_match(const char *glob, const char *path);

/* Joins `base` (absolute) and `path` (absolute or relative) into `out` and
 * removes ".", ".." and repeated '/' lexically (symlinks are not resolved).
 * Returns the length, or -1 when it does not fit in `size` or base is not
 * absolute. */
int mt_glob_absolute(const char *base, const char *path, char *out, size_t size);

#endif
