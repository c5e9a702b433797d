/* Shared between the W&B backend's files: wandb.c (the offline run
 * directory and its transaction log) and wandb_sync.c (W&B's own client
 * uploading it); and the tests.  Not for other parts. */
#ifndef MT_WANDB_H
#define MT_WANDB_H

#include <stddef.h>

/* The `wandb` program: `command` when given, else the first on PATH.
 * 0, or -ENOENT with out empty. */
int mt_wandb__find(const char *command, char *out, size_t outsz);

/* Runs `wandb sync dir` for at most timeout_s (then stops its process group).
 * 0 when it exited 0 without an ERROR line, else -1; msg gets the line that
 * says what happened. */
int mt_wandb__sync(const char *wandb, const char *dir, double timeout_s, char *msg, size_t msgsz);

/* The W&B name of a metrictap system metric ("system.proc.memory_rss_mb" is
 * "proc.memory.rssMB") and the factor for its value (cpu_count: the machine's
 * CPUs, W&B's `cpu` is per machine).  Keys W&B has no name for keep their own
 * without "system."; -1 for keys to leave out. */
int mt_wandb__stats_key(const char *key, int cpu_count, char *out, size_t outsz, double *scale);

struct cJSON;
struct mt_enc;

/* A protobuf string field: protobuf strings must be UTF-8 (W&B's Go reader
 * checks), so each invalid byte becomes U+FFFD. */
void mt_wandb__pb_text(struct mt_enc *e, unsigned field, const char *s, size_t n);

/* The JSON text of a value as W&B writes it: numbers as printed, the
 * store's "NaN"/"Infinity"/"-Infinity" strings as bare NaN/Infinity.
 * Caller frees. */
char *mt_wandb__value_json(const struct cJSON *v);

/* metrictap's flat summary ("loss", "loss.min") in W&B's shape, given
 * run.json's metrics; a new object, caller frees. */
struct cJSON *mt_wandb__summary(const struct cJSON *summary, const struct cJSON *metrics);

#endif
