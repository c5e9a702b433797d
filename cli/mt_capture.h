/* How `metrictap run` captures a program (cli/capture.c, cli/capture_pump.c).
 *
 * Programs the shim can enter (dynamic ELF, scripts) are captured by the shim.
 * Static and Go programs ignore LD_PRELOAD, so the launcher captures their
 * stdout and stderr at the fd level instead (the "pump"): each stream goes
 * through a pty when the launcher's own fd is a terminal, a pipe otherwise;
 * every byte is copied unchanged to the launcher's fd and pushed into the
 * launcher's ring as MT_REC_DATA. */
#ifndef MT_CAPTURE_H
#define MT_CAPTURE_H

#include <stddef.h>
#include <sys/types.h>

struct mt_ring_header;
struct mt_ctl;

/* ---- capture.c ---- */

/* 1 when CMD (resolved through PATH) is static or Go and needs the pump, with
 * why ("is statically linked", "is a Go program") in `why`; 0 otherwise. */
int mt_capture_needs_pump(const char *cmd, char *why, size_t whysz);

/* `--watch GLOB`: appends GLOB to METRICTAP_FILES_WATCH (comma-separated).
 * 0, or -1 when GLOB is empty or holds a comma. */
int mt_capture_add_watch(const char *glob);

/* ---- capture_pump.c ---- */

struct mt_pump;

/* Sets up a pty or a pipe for each of fds 1 and 2 of this process.  NULL with
 * err set on failure (nothing is left open). */
struct mt_pump *mt_pump_create(char *err, size_t errsz);

/* "a pty", "pipes", "a pty for stdout and a pipe for stderr", ... */
const char *mt_pump_describe(const struct mt_pump *p);

/* In the forked child, before exec: puts the child's ends on fds 1 and 2. */
void mt_pump_child(struct mt_pump *p);

/* In the parent after the fork: copies the child's output to the original
 * fds and into `ring` until both streams are at EOF and the child has exited
 * (it reaps the child), forwarding window-size changes to the ptys.  Returns
 * the child's wait status. */
int mt_pump_run(struct mt_pump *p, pid_t child, struct mt_ring_header *ring,
                struct mt_ctl *ctl);

/* Waits until the copy to the original fds is written (or its reader is
 * gone), then frees everything.  Accepts NULL. */
void mt_pump_destroy(struct mt_pump *p);

#endif
