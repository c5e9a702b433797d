/* Turning bytes the program wrote into ring records. */
#include <errno.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

static MT_TLS uint32_t thread_id;

MT_HIDDEN void mt_capture_reset_thread(void)
{
    thread_id = 0;
}

static inline uint32_t tid(void)
{
    if (!thread_id)
        thread_id = (uint32_t)syscall(SYS_gettid);
    return thread_id;
}

MT_HIDDEN int mt_fine_clock;

static inline uint64_t clock_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The fine monotonic clock: the agent merges the rings of a process tree by
 * it, so output from a child that exited and its parent's next line keep
 * their order; the coarse clock's 4 ms ticks did not. */
static inline uint64_t now_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

/* A record's timestamp.  The fine clock costs ~33 ns a call on a KVM guest
 * (5% of a print-bound loop), the coarse one ~10 ns.  A process alone in its
 * run needs no order across rings (its own ring is in order), so it uses the
 * coarse clock until a second process image joins (mt_count_producer).
 * CLOCK_MONOTONIC_COARSE is the fine clock's last tick, never ahead of it:
 * the switch keeps a ring's stamps monotonic, and every record written
 * before the other process existed still sorts before that process's
 * records. */
static inline uint64_t stamp_ns(void)
{
    if (!mt_fine_clock) {
        if (!mt_ctl || !atomic_load_explicit(&mt_ctl->shared, memory_order_relaxed))
            return clock_ns(CLOCK_MONOTONIC_COARSE);
        mt_fine_clock = 1;
    }
    return now_ns();
}

MT_HIDDEN void mt_count_producer(void)
{
    if (mt_ctl && atomic_fetch_add(&mt_ctl->producers, 1) > 0) {
        mt_fine_clock = 1;
        atomic_store_explicit(&mt_ctl->shared, 1, memory_order_release);
    }
}

MT_HIDDEN void mt_capture(int stream, const void *a, size_t alen, const void *b, size_t blen)
{
    struct mt_ring_header *r = mt_ring;
    if (!r || (alen + blen) == 0)
        return;
    /* Console output only (console.c); the rest is counted, by where it went. */
    int cls = mt_fd_class(stream);
    if (__builtin_expect(cls != MT_FD_CONSOLE, 0)) {
        mt_count_elsewhere(cls, alen + blen);
        return;
    }
    /* Nothing below changes errno (see mt_ring.h and mt_channel.h). */
    uint64_t ts = stamp_ns();
    uint32_t meta = MT_REC_META(MT_REC_DATA, stream, tid());
    size_t max = mt_ring_max_payload(r->capacity);
    if (alen + blen <= max) {
        /* With one thread only a signal handler could push meanwhile, and
         * the solo reservation is safe against that. */
        if (__libc_single_threaded && !blen)
            mt_ring_push_solo(r, meta, ts, a, (uint32_t)alen);
        else if (__libc_single_threaded)
            mt_ring_push2_solo(r, meta, ts, a, (uint32_t)alen, b, (uint32_t)blen);
        else
            mt_ring_push2(r, meta, ts, a, (uint32_t)alen, b, (uint32_t)blen);
    } else {
        /* Longer than one record may be: split, in order. */
        const char *parts[2] = { a, b };
        size_t lens[2] = { alen, blen };
        for (int i = 0; i < 2; i++)
            for (size_t off = 0; off < lens[i]; off += max) {
                size_t n = lens[i] - off < max ? lens[i] - off : max;
                mt_ring_push(r, meta, ts, parts[i] + off, (uint32_t)n);
            }
    }
    if (mt_ctl)
        mt_ctl_ring_bell(mt_ctl);
}

MT_HIDDEN void mt_capture_end(int kind, int value)
{
    struct mt_ring_header *r = mt_ring;
    if (!r)
        return;
    int saved = errno;
    mt_ring_push(r, MT_REC_META(kind, 0, (uint32_t)value & 0xffffffu), now_ns(), NULL, 0);
    if (mt_ctl)
        mt_ctl_ring_bell(mt_ctl);
    errno = saved;
}
