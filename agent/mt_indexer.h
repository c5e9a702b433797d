/* mt_indexer: the agent's writer of its run's row in index.sqlite, on a
 * thread of its own (agent/indexer.c), so that a busy or damaged index never
 * holds up the program's start or the run's end.  Only the newest row
 * matters: each post replaces the one not yet written, and a failed put is
 * retried with capped backoff.  The run directory stays the source of truth;
 * what never reaches the index is put back by `metrictap ls`. */
#ifndef MT_INDEXER_H
#define MT_INDEXER_H

#include <stddef.h>

struct mt_index_run;
struct mt_indexer;

/* Starts the thread; the index is opened there, when the first row comes. */
struct mt_indexer *mt_indexer_start(const char *store_root);
/* Copies the row; returns at once. */
void mt_indexer_post(struct mt_indexer *x, const struct mt_index_run *r);
/* Waits up to timeout_s for the newest row to be written: 0, or -1 with why
 * (the last error, or "the index is busy"). */
int mt_indexer_wait(struct mt_indexer *x, double timeout_s, char *why, size_t whysz);
/* A repair the index's open made (a damaged index.sqlite moved aside and
 * rebuilt), once: 1 with the line in out, else 0. */
int mt_indexer_take_notice(struct mt_indexer *x, char *out, size_t size);
/* Waits up to timeout_s for the last row, then ends the thread. */
void mt_indexer_stop(struct mt_indexer *x, double timeout_s);

#endif
