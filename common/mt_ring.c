/* mt_ring: see mt_ring.h for the contract. */
#include "mt_ring.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

int mt_ring_populate(void *addr, size_t len)
{
    return madvise(addr, len, MADV_POPULATE_WRITE) == 0 ? 0 : -1;
}

void mt_ring_init(void *mem, uint64_t capacity, uint32_t pid, uint32_t flags)
{
    struct mt_ring_header *r = mem;
    memset(r, 0, sizeof *r);
    r->magic = MT_RING_MAGIC;
    r->version = MT_RING_VERSION;
    r->pid = pid;
    r->flags = flags;
    r->capacity = capacity;
    r->backed = capacity;
    r->rank = -1;
    r->world_size = -1;
}

static inline char *ring_data(const struct mt_ring_header *r)
{
    return (char *)r + MT_RING_HDR_SIZE;
}

static void count_drop(struct mt_ring_header *r, uint64_t bytes)
{
    atomic_fetch_add_explicit(&r->dropped_records, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->dropped_bytes, bytes, memory_order_relaxed);
}

/* Is there room for `need` bytes after `head`?  Refreshes the producers' copy
 * of tail only when the cached one says no. */
static int has_room(struct mt_ring_header *r, uint64_t head, uint64_t need)
{
    uint64_t seen = atomic_load_explicit(&r->tail_seen, memory_order_relaxed);
    if (head + need - seen <= r->capacity)
        return 1;
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (tail != seen)
        atomic_store_explicit(&r->tail_seen, tail, memory_order_relaxed);
    return head + need - tail <= r->capacity;
}

/* Makes sure the data area up to `end` has memory behind it (the first lap
 * of a sparse ring only).  0, or -1 when tmpfs cannot back it. */
static int back_upto(struct mt_ring_header *r, uint64_t end)
{
    uint64_t cap = r->capacity;
    uint64_t want = (end + MT_RING_CHUNK - 1) / MT_RING_CHUNK * MT_RING_CHUNK;
    if (want > cap)
        want = cap;
    uint64_t have = atomic_load_explicit(&r->backed, memory_order_acquire);
    if (want <= have)
        return 0;
    /* Idempotent, so threads racing here do no harm.  The program's errno
     * is its own: a push never changes it. */
    int saved = errno;
    int failed = mt_ring_populate(ring_data(r) + have, want - have) != 0;
    errno = saved;
    if (failed)
        return -1;
    while (have < want && !atomic_compare_exchange_weak_explicit(
                              &r->backed, &have, want, memory_order_release, memory_order_acquire))
        ;
    return 0;
}

static inline int push(struct mt_ring_header *r, uint32_t meta, uint64_t ts_ns, const void *a,
                       uint32_t alen, const void *b, uint32_t blen, int solo)
{
    uint32_t len = alen + blen;
    uint64_t total = mt_rec_total(len);
    uint64_t cap = r->capacity, mask = cap - 1;
    uint64_t head, pos, pad, rec_pos;

    if (len > mt_ring_max_payload(cap)) {
        count_drop(r, len);
        return -1;
    }
    head = atomic_load_explicit(&r->head, memory_order_relaxed);
    for (;;) {
        pos = head & mask;
        pad = (pos + total > cap) ? cap - pos : 0; /* records never wrap */
        if (!has_room(r, head, pad + total)) {
            count_drop(r, len);
            return -1;
        }
        uint64_t end = head + pad + total;
        if (end > atomic_load_explicit(&r->backed, memory_order_relaxed) && head < cap &&
            (ts_ns < atomic_load_explicit(&r->back_retry_ns, memory_order_relaxed) ||
             back_upto(r, end) != 0)) {
            /* tmpfs is full: nothing is written, and the next try (a
             * system call) waits a tenth of a second. */
            if (ts_ns >= atomic_load_explicit(&r->back_retry_ns, memory_order_relaxed))
                atomic_store_explicit(&r->back_retry_ns, ts_ns + 100000000u,
                                      memory_order_relaxed);
            count_drop(r, len);
            atomic_fetch_add_explicit(&r->dropped_unbacked, 1, memory_order_relaxed);
            return -1;
        }
        if (mt_ring_move_head(r, &head, end, solo))
            break;
    }
    char *data = ring_data(r);
    if (pad >= MT_REC_HDR) { /* a shorter gap needs no header: see mt_ring_peek */
        struct mt_rec *p = (struct mt_rec *)(data + pos);
        p->len = (uint32_t)(pad - MT_REC_HDR);
        p->meta = MT_REC_META(MT_REC_PAD, 0, 0);
        p->ts_ns = 0;
        atomic_store_explicit(&p->seq, head + 1, memory_order_release);
    }
    rec_pos = head + pad;
    mt_ring_fill(r, rec_pos, meta, ts_ns, a, alen, b, blen);
    return 0;
}

int mt_ring_push2(struct mt_ring_header *r, uint32_t meta, uint64_t ts_ns,
                  const void *a, uint32_t alen, const void *b, uint32_t blen)
{
    return push(r, meta, ts_ns, a, alen, b, blen, 0);
}

int mt_ring_push2_solo(struct mt_ring_header *r, uint32_t meta, uint64_t ts_ns,
                       const void *a, uint32_t alen, const void *b, uint32_t blen)
{
    return push(r, meta, ts_ns, a, alen, b, blen, 1);
}

/* The consumer's position: read_pos, handed to producers through `tail`
 * every PUBLISH_EVERY bytes.  When a ring runs full, every push looks at
 * `tail`; were it stored per record, each look would be a cache miss on the
 * consumer's line (measured: a 1 MiB ring that stays full made the print
 * loop 1.66x slower, a 64 MiB one that never filled 1.06x). */
static inline uint64_t publish_every(const struct mt_ring_header *r)
{
    uint64_t eighth = r->capacity / 8;
    return eighth < (64u << 10) ? eighth : (64u << 10);
}

static inline void advance(struct mt_ring_header *r, uint64_t to)
{
    atomic_store_explicit(&r->read_pos, to, memory_order_relaxed);
    if (to - atomic_load_explicit(&r->tail, memory_order_relaxed) >= publish_every(r))
        atomic_store_explicit(&r->tail, to, memory_order_release);
}

void mt_ring_release(struct mt_ring_header *r)
{
    uint64_t pos = atomic_load_explicit(&r->read_pos, memory_order_relaxed);
    if (atomic_load_explicit(&r->tail, memory_order_relaxed) != pos)
        atomic_store_explicit(&r->tail, pos, memory_order_release);
}

int mt_ring_peek(struct mt_ring_header *r, struct mt_rec_view *out)
{
    uint64_t mask = r->capacity - 1;
    for (;;) {
        /* No look at `head` here: reading producers' cache line for every
         * record would slow them down.  A record is there when its seq says
         * so; stale bytes can never match the position. */
        uint64_t tail = atomic_load_explicit(&r->read_pos, memory_order_relaxed);
        uint64_t room = r->capacity - (tail & mask);
        if (room < MT_REC_HDR) {
            if (tail == atomic_load_explicit(&r->head, memory_order_acquire)) {
                mt_ring_release(r);
                return 0;
            }
            /* Too small for a record or a filler header: the producer that
             * reserved past the end skipped it, and so do we. */
            advance(r, tail + room);
            continue;
        }
        struct mt_rec *rec = (struct mt_rec *)(ring_data(r) + (tail & mask));
        if (atomic_load_explicit(&rec->seq, memory_order_acquire) != tail + 1) {
            mt_ring_release(r); /* caught up: hand back all the room */
            return 0;           /* (or reserved, still being written) */
        }
        uint32_t meta = rec->meta;
        if (mt_rec_total(rec->len) > room)
            return -1; /* a record may never cross the end: the ring is corrupt */
        if (MT_REC_KIND(meta) == MT_REC_PAD) {
            advance(r, tail + mt_rec_total(rec->len));
            continue;
        }
        out->kind = MT_REC_KIND(meta);
        out->stream = MT_REC_STREAM(meta);
        out->aux = MT_REC_AUX(meta);
        out->len = rec->len;
        out->ts_ns = rec->ts_ns;
        out->data = (const char *)(rec + 1);
        return 1;
    }
}

void mt_ring_consume(struct mt_ring_header *r)
{
    uint64_t tail = atomic_load_explicit(&r->read_pos, memory_order_relaxed);
    struct mt_rec *rec = (struct mt_rec *)(ring_data(r) + (tail & (r->capacity - 1)));
    advance(r, tail + mt_rec_total(rec->len));
}

uint64_t mt_ring_pending(const struct mt_ring_header *r)
{
    return atomic_load_explicit(&r->head, memory_order_acquire) -
           atomic_load_explicit(&r->read_pos, memory_order_relaxed);
}

int mt_ring_validate(const struct mt_ring_header *r, uint64_t mapped_size)
{
    if (mapped_size < MT_RING_HDR_SIZE || r->magic != MT_RING_MAGIC ||
        r->version != MT_RING_VERSION)
        return -1;
    uint64_t cap = r->capacity;
    if (cap < MT_RING_MIN_CAPACITY || cap > MT_RING_MAX_CAPACITY || (cap & (cap - 1)) ||
        MT_RING_HDR_SIZE + cap > mapped_size)
        return -1;
    return 0;
}
