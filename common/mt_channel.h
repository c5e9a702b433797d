/* mt_channel: how the shim, the launcher and the agent of one run find each
 * other.
 *
 * A run's channel is a private directory (0700) on tmpfs:
 *   <channel>/ctl           one page: the doorbell the agent sleeps on
 *   <channel>/ring.<pid>.<n> one capture ring per process image (mt_ring.h)
 * Children find it through the environment variables below, which the first
 * process of the tree sets for them.
 */
#ifndef MT_CHANNEL_H
#define MT_CHANNEL_H

#include <stdatomic.h>
#include <stdint.h>

/* Variables metrictap passes to the processes of a run. */
#define MT_ENV_CHANNEL  "METRICTAP_CHANNEL"   /* the channel directory */
#define MT_ENV_RUN_ID   "METRICTAP_RUN_ID_ACTIVE"
#define MT_ENV_OFF      "METRICTAP_OFF"       /* "1": the shim stays passive */
#define MT_ENV_AGENT    "METRICTAP_AGENT"     /* path of metrictap-agent (override) */
#define MT_ENV_STRICT   "METRICTAP_STRICT"

#define MT_CTL_MAGIC 0x4d54434cu /* "MTCL" */

struct mt_ctl {
    uint32_t magic;
    uint32_t agent_pid;
    /* Bytes of each process's ring (the run's capture.ring_size, rounded by
     * mt_ring_capacity_for), set by the agent before `magic`. */
    uint64_t ring_capacity;
    /* MT_CTL_OPT_* from the run's config, set by the agent before `magic`. */
    uint32_t options;
    /* The agent sets `sleeping` before it waits on `doorbell` (a futex).  A
     * producer that finds its ring filling up rings the bell only when the
     * agent sleeps, so a busy agent costs producers nothing. */
    _Alignas(64) _Atomic uint32_t sleeping;
    _Atomic uint32_t doorbell;
    /* Process images that joined the run as producers, and a flag set once
     * there is a second one (a child, a fork, an exec, another rank): from
     * then on producers stamp records with the fine clock, which the agent
     * needs to order several rings (on the line producers read anyway for
     * `sleeping`). */
    _Atomic uint32_t producers;
    _Atomic uint32_t shared;
    /* Process images that could not make a ring (tmpfs full) and so run
     * untracked; the agent records the count in the run. */
    _Atomic uint32_t rings_failed;
    /* Set when the run stops taking processes; late ones stay quiet. */
    _Alignas(64) _Atomic uint32_t closed;
    /* Set once everything of the run is written (`metrictap run` waits). */
    _Atomic uint32_t finished;
    /* Set once the program's part is written while the capture goes on for
     * processes that outlive it (capture.linger): `metrictap run` may go. */
    _Atomic uint32_t saved;
    /* Records the agent journaled and parsed, for `metrictap run`'s
     * progress line while it waits for the save. */
    _Alignas(64) _Atomic uint64_t journal_records;
    _Atomic uint64_t parsed_records;
};

#define MT_CTL_OPT_PYTHON_UNBUFFERED 1u /* capture.python_unbuffered */
#define MT_CTL_OPT_STACK 2u /* stack.enabled: processes name the agent their tracer */

#define MT_CTL_SIZE 4096u
#define MT_RING_NAME_FMT "ring.%u.%u"

/* The size of every ring of the run: the agent's capture.ring_size, kept
 * within the ring's bounds whatever the shared page says. */
uint64_t mt_ctl_ring_capacity(const struct mt_ctl *ctl);

/* Maps <dir>/ctl; NULL when absent, invalid, not the user's own (the
 * directory private to the user, ctl a plain file of theirs) or the run is
 * closed. */
struct mt_ctl *mt_channel_map_ctl(const char *dir);

/* Creates and maps a ring for this process under <dir>, published by rename so
 * the agent never sees half a header.  NULL on failure.  libc only. */
struct mt_ring_header *mt_channel_create_ring(const char *dir, uint64_t capacity,
                                              uint32_t flags, int32_t rank,
                                              int32_t world_size);

/* Marks the channel closed and removes it with everything in it (the agent at
 * the end of a run; `metrictap run` when the agent died and left it). */
void mt_channel_remove(const char *dir, struct mt_ctl *ctl);

/* Wakes the agent if it is asleep.  Async-signal-safe, errno untouched.
 * Producers call it after every record, so the usual answer (awake) is a
 * load inline. */
void mt_ctl_wake(struct mt_ctl *ctl);

static inline void mt_ctl_ring_bell(struct mt_ctl *ctl)
{
    if (atomic_load_explicit(&ctl->sleeping, memory_order_relaxed))
        mt_ctl_wake(ctl);
}

/* Agent side, in two steps so no push is missed: mt_ctl_sleep_begin marks the
 * agent asleep and returns the bell's value; the agent then looks at its rings
 * once more and, if they are empty, calls mt_ctl_sleep, which returns when the
 * bell rings or `timeout_ms` passes. */
unsigned mt_ctl_sleep_begin(struct mt_ctl *ctl);
void mt_ctl_sleep(struct mt_ctl *ctl, unsigned bell, int timeout_ms);

#endif
