/* Shared between upload.c, cli/sync.c and the tests; not for other parts. */
#ifndef MT_UPLOAD_INTERNAL_H
#define MT_UPLOAD_INTERNAL_H

#include <stddef.h>

/* Delay before retry number `attempt` (0-based): uniform in
 * [0, min(cap, base * 2^attempt)] drawn with u01 in [0, 1) (full jitter), but
 * never less than the server's Retry-After. */
double mt_upload__backoff(unsigned attempt, double base, double cap, double retry_after,
                          double u01);

/* "500ms", "2s", "1m", "1h" or plain seconds. */
int mt_upload__parse_duration(const char *s, double *out);

/* Replaces path with len bytes: temp file, fsync, rename; 0600. */
int mt_upload__write_atomic(const char *path, const char *data, size_t len);

#endif
