/* mt_tail: the agent's file tailer for watched files (config `files.watch`,
 * `metrictap run --watch GLOB`).
 *
 * The shim reports each watched file the program opens for writing, and each
 * regular file a process's stdout or stderr goes to instead of the console
 * (MT_REC_FILE_OPEN); the tailer then reads the file itself, so it sees every
 * way of writing it (stdio, write, mmap).  New bytes go to the parsers as
 * stream MT_PARSE_FILE under a per-file id (MT_TAIL_ID_BASE + n), so lines of
 * different files never mix.  A file that shrinks was truncated: reading
 * restarts at 0.  A new inode at the path is a rotation: the old file is read
 * to its end, then the new one from 0.  inotify says when to look; a slow
 * periodic look catches writes inotify does not report (mmap).  Everything
 * is counted per file in events.jsonl (file_watch, file_truncated,
 * file_rotated as they happen, `file` with the byte counts at the end).
 *
 * Globs are made absolute against the run's start directory and written to
 * <channel>/watch, one per line, for the shim of every process to load. */
#ifndef MT_TAIL_H
#define MT_TAIL_H

#include <stddef.h>
#include <stdint.h>

#include "../parsers/mt_parse.h"

struct mt_store;
struct mt_tail;

#define MT_TAIL_ID_BASE  0x80000000u /* above any pid */
#define MT_TAIL_MAX_FILES 256        /* more are refused and counted */

/* `globs` is comma-separated (may be empty: nothing is watched).  NULL with
 * err set when the watch file cannot be written. */
struct mt_tail *mt_tail_create(const char *globs, const char *cwd, const char *channel,
                               mt_parse *parse, struct mt_store *store, char *err,
                               size_t errsz);
void mt_tail_destroy(struct mt_tail *t);

/* A MT_REC_FILE_OPEN payload from process `pid`: starts following that file
 * (a watched file it opened, or the regular file its stdout or stderr was
 * redirected to: preload/console.c), its lines parsed with pid's preset. */
void mt_tail_announce(struct mt_tail *t, uint32_t pid, const char *data, size_t len,
                      double now);

/* Reads what is new; returns the bytes read (0: nothing happened). */
size_t mt_tail_poll(struct mt_tail *t, double now);

/* End of the run: reads everything left, ends partial lines and writes the
 * per-file counts to events.jsonl. */
void mt_tail_finish(struct mt_tail *t, double now);

#endif
