/* mt_ring: the capture ring between one traced process and the agent.
 *
 * One ring per process, a file in the run's channel directory (tmpfs), mapped
 * shared by the process (producer side: any number of threads) and the agent
 * (the single consumer).  The layout is part of the shim/agent contract, so
 * both sides include this header and nothing else of each other.
 *
 * Producers never block, never allocate, take no lock and leave errno alone:
 * a record is reserved with a CAS on `head`, filled, then published by
 * storing its absolute position plus one into its `seq` word with release
 * order (plus one, so the zeroed memory of a new ring does not look like a
 * record at position 0).  When the ring is full the record is dropped and
 * counted in the header (dropped_records / dropped_bytes); the
 * agent reports those counts in the run's events.
 *
 * A ring file on tmpfs is sparse: its pages get memory when first written,
 * and a store into a page that a full tmpfs cannot back raises SIGBUS.  So
 * producers populate each MT_RING_CHUNK with MADV_POPULATE_WRITE before they
 * first reserve space in it, and drop (counted) when that fails.
 *
 * Stale bytes from an earlier lap can never look published, because `seq` must
 * equal the exact 64-bit position the consumer expects.
 */
#ifndef MT_RING_H
#define MT_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define MT_RING_MAGIC    0x4d54524eu /* "MTRN" */
#define MT_RING_VERSION  2u
#define MT_RING_HDR_SIZE 4096u       /* data starts one page in */
#define MT_RING_DEFAULT_CAPACITY (16u << 20)
#define MT_RING_MIN_CAPACITY     (64u << 10)
#define MT_RING_MAX_CAPACITY     (1u << 30)
#define MT_RING_CHUNK            (1u << 20) /* populated at a time, first lap */

/* Record kinds. */
enum mt_rec_kind {
    MT_REC_PAD = 0,      /* filler up to the end of the buffer; skip */
    MT_REC_DATA = 1,     /* bytes the program wrote to a stream */
    MT_REC_EXIT = 2,     /* the process is exiting: aux = exit code */
    MT_REC_SIGNAL = 3,   /* the process died of a signal: aux = signal number */
    MT_REC_FILE_OPEN = 4,/* a watched file was opened for writing: data = absolute
                            path, NUL, uint64 size right after the open */
    MT_REC_CRASH = 5,    /* raw instruction pointers (uint64_t[]) of a crash; aux = signal */
    MT_REC_NOTE = 6,     /* free text from the shim itself (fail-open notices) */
    MT_REC_PROC = 7,     /* a process image began: struct mt_rec_proc, then its argv
                            (NUL-terminated strings, perhaps cut short) */
    MT_REC_FDS = 8,      /* what the process's fds 0, 1 and 2 are now: struct mt_rec_fds
                            (at start, and after a dup2 onto one of them) */
    MT_REC_USER = 9,     /* the process changed its effective user: data = uint32 real
                            and effective uid after the change (preload/ids.c) */
};

/* The identity of an open file, as fstat gives it: the same pipe, terminal
 * or file has the same dev and ino in every process that holds it. */
struct mt_fd_id {
    uint64_t dev, ino;
    uint32_t type; /* st_mode & S_IFMT; 0: not open */
    uint32_t rdev; /* major/minor of a device (/dev/null is 1:3) */
};

struct mt_rec_proc {
    uint32_t ppid;
    uint32_t argc;      /* the program's argc; the record may carry fewer strings */
    uint32_t truncated; /* argv strings left out (the record's size cap) */
    uint32_t reserved;
};

struct mt_rec_fds {
    struct mt_fd_id fd[3];
};

/* Bytes a process wrote to its stdout or stderr when that was not the run's
 * console (see preload/console.c), by what it was instead.  Not recorded as
 * output; counted in the ring's header. */
enum mt_elsewhere {
    MT_ELSEWHERE_PIPE = 0,    /* a pipe or FIFO: another process's input ($(...), | grep) */
    MT_ELSEWHERE_SOCKET = 1,
    MT_ELSEWHERE_DEVNULL = 2, /* /dev/null, /dev/zero */
    MT_ELSEWHERE_DEVICE = 3,  /* another terminal or device */
    MT_ELSEWHERE_FILE = 4,    /* a regular file: followed as a file source instead */
    MT_ELSEWHERE_CLOSED = 5,  /* the fd was not open */
    MT_ELSEWHERE_FAILED = 6,  /* the write failed (/dev/full, a stream in error) */
    MT_ELSEWHERE_KINDS = 7,
};

/* Streams a DATA record can belong to. */
enum mt_stream {
    MT_STREAM_STDOUT = 1,
    MT_STREAM_STDERR = 2,
    MT_STREAM_FILE = 3,  /* reserved for watched files (aux = file slot) */
};

/* Ring flags, set by whoever created the ring. */
enum mt_ring_flags {
    MT_RING_PRIMARY = 1u << 0,  /* its EXIT/SIGNAL record ends the run */
    MT_RING_LAUNCHER = 1u << 1, /* written by `metrictap run`, not by the shim */
};

struct mt_ring_header {
    uint32_t magic;
    uint32_t version;
    uint32_t pid;
    uint32_t flags;
    uint64_t capacity;           /* bytes of data, a power of two */
    uint64_t created_ns;         /* CLOCK_MONOTONIC when created */
    int32_t rank;                /* rank in a distributed job, -1 if none */
    int32_t world_size;          /* ranks in the job, -1 if unknown */
    char exe[256];               /* /proc/self/exe of the producer, for labels */
    _Alignas(64) _Atomic uint64_t head;   /* next free position (producers) */
    _Atomic uint64_t backed;              /* bytes of the data area known to
                                             have memory behind them: a ring
                                             on a full tmpfs must drop, not
                                             raise SIGBUS in the program */
    _Atomic uint64_t back_retry_ns;       /* after a failure, when to try
                                             backing more again */
    _Atomic uint64_t tail_seen;           /* producers' copy of tail, refreshed
                                             only when the ring looks full, so
                                             they do not share tail's cache line */
    _Alignas(64) _Atomic uint64_t tail;   /* next unread position as producers see
                                             it: published in batches, so a
                                             ring that runs full does not make
                                             every push miss on this line */
    _Alignas(64) _Atomic uint64_t read_pos; /* the consumer's own position
                                               (only the consumer touches it) */
    _Alignas(64) _Atomic uint64_t dropped_records;
    _Atomic uint64_t dropped_bytes;
    _Atomic uint64_t dropped_unbacked;    /* of those, dropped because tmpfs
                                             had no memory for the ring */
    _Alignas(64) _Atomic uint64_t elsewhere_bytes[MT_ELSEWHERE_KINDS];
};

/* A record: 24 bytes of header, then `len` bytes, padded to 8. */
struct mt_rec {
    _Atomic uint64_t seq;   /* absolute position + 1 of this record once published */
    uint64_t ts_ns;         /* CLOCK_MONOTONIC_COARSE at capture */
    uint32_t len;           /* payload bytes */
    uint32_t meta;          /* kind:4 | stream:4 | aux:24 (tid, code or signal) */
};

#define MT_REC_HDR ((uint32_t)sizeof(struct mt_rec))
#define MT_REC_META(kind, stream, aux) \
    ((uint32_t)(kind) & 0xfu) | (((uint32_t)(stream) & 0xfu) << 4) | ((uint32_t)(aux) << 8)
#define MT_REC_KIND(meta)   ((meta) & 0xfu)
#define MT_REC_STREAM(meta) (((meta) >> 4) & 0xfu)
#define MT_REC_AUX(meta)    ((meta) >> 8)

static inline uint64_t mt_rec_total(uint32_t len)
{
    return ((uint64_t)MT_REC_HDR + len + 7u) & ~(uint64_t)7u;
}

/* The capacity of a ring asked to hold `bytes`: a power of two, within
 * MT_RING_MIN_CAPACITY and MT_RING_MAX_CAPACITY. */
static inline uint64_t mt_ring_capacity_for(uint64_t bytes)
{
    uint64_t cap = MT_RING_MIN_CAPACITY;
    while (cap < bytes && cap < MT_RING_MAX_CAPACITY)
        cap <<= 1;
    return cap;
}

/* The largest payload one record may carry in a ring of this capacity;
 * writers split longer data into several records. */
static inline uint32_t mt_ring_max_payload(uint64_t capacity)
{
    return (uint32_t)(capacity / 4u - MT_REC_HDR);
}

/* ---- producer side: async-signal-safe, no allocation, no lock ---- */

/* Gives [addr, addr+len) of a shared mapping its memory now
 * (MADV_POPULATE_WRITE, Linux 5.14): 0, or -1 where tmpfs has none left (a
 * store there would raise SIGBUS) or the kernel predates it (EINVAL). */
int mt_ring_populate(void *addr, size_t len);

/* Lays out a fresh header over `mem` (size MT_RING_HDR_SIZE + capacity), all
 * of it backed by memory; mt_channel_create_ring lowers `backed` for a ring
 * on tmpfs whose pages producers then populate as they first reach them. */
void mt_ring_init(void *mem, uint64_t capacity, uint32_t pid, uint32_t flags);

/* Appends one record made of up to two pieces (a+b, so puts can add its
 * newline without copying).  Returns 0, or -1 when it was dropped (counted). */
int mt_ring_push2(struct mt_ring_header *r, uint32_t meta, uint64_t ts_ns,
                  const void *a, uint32_t alen, const void *b, uint32_t blen);

static inline int mt_ring_push(struct mt_ring_header *r, uint32_t meta, uint64_t ts_ns,
                               const void *data, uint32_t len)
{
    return mt_ring_push2(r, meta, ts_ns, data, len, NULL, 0);
}

/* mt_ring_push2 for a caller that is the ring's only producer thread (a
 * process with one thread): the same record, reserved without a locked
 * instruction.  A signal handler on the same thread may still push. */
int mt_ring_push2_solo(struct mt_ring_header *r, uint32_t meta, uint64_t ts_ns,
                       const void *a, uint32_t alen, const void *b, uint32_t blen);

/* Moves head from *expected to `desired`, or loads the current head into
 * *expected.  `solo`: the caller's thread is the ring's only producer, so
 * only a signal handler on this same thread could move head meanwhile, and a
 * single instruction cannot be interrupted halfway: x86's cmpxchg without the
 * lock prefix suffices, and it does not wait for the store buffer to drain as
 * a locked one does on every record. */
static inline int mt_ring_move_head(struct mt_ring_header *r, uint64_t *expected,
                                    uint64_t desired, int solo)
{
#if defined(__x86_64__)
    if (solo) {
        uint64_t prev = *expected;
        __asm__ volatile("cmpxchgq %2, %1"
                         : "+a"(prev), "+m"(*(uint64_t *)&r->head)
                         : "r"(desired)
                         : "memory", "cc");
        if (prev == *expected)
            return 1;
        *expected = prev;
        return 0;
    }
#else
    (void)solo;
#endif
    return atomic_compare_exchange_weak_explicit(&r->head, expected, desired,
                                                 memory_order_relaxed, memory_order_relaxed);
}

/* Writes and publishes the record reserved at absolute position `pos`. */
static inline void mt_ring_fill(struct mt_ring_header *r, uint64_t pos, uint32_t meta,
                                uint64_t ts_ns, const void *a, uint32_t alen, const void *b,
                                uint32_t blen)
{
    char *data = (char *)r + MT_RING_HDR_SIZE;
    struct mt_rec *rec = (struct mt_rec *)(data + (pos & (r->capacity - 1)));
    rec->ts_ns = ts_ns;
    rec->len = alen + blen;
    rec->meta = meta;
    if (alen)
        __builtin_memcpy((char *)(rec + 1), a, alen);
    if (blen)
        __builtin_memcpy((char *)(rec + 1) + alen, b, blen);
    atomic_store_explicit(&rec->seq, pos + 1, memory_order_release);
}

/* mt_ring_push2_solo of one piece, with its common case inline for the
 * shim's stdio path: the record fits before the end of the data area, in
 * memory already backed, with room by the producers' copy of tail.
 * Anything else (wrap, first touch of a chunk, a ring that looks full) takes
 * the general path. */
static inline int mt_ring_push_solo(struct mt_ring_header *r, uint32_t meta, uint64_t ts_ns,
                                    const void *data, uint32_t len)
{
    uint64_t cap = r->capacity;
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t end = head + mt_rec_total(len);
    if (len <= mt_ring_max_payload(cap) && (head & (cap - 1)) + (end - head) <= cap &&
        (head >= cap || end <= atomic_load_explicit(&r->backed, memory_order_relaxed)) &&
        end - atomic_load_explicit(&r->tail_seen, memory_order_relaxed) <= cap &&
        mt_ring_move_head(r, &head, end, 1)) {
        mt_ring_fill(r, head, meta, ts_ns, data, len, NULL, 0);
        return 0;
    }
    return mt_ring_push2_solo(r, meta, ts_ns, data, len, NULL, 0);
}

/* ---- consumer side: exactly one consumer per ring ---- */

struct mt_rec_view {
    uint32_t kind, stream, aux, len;
    uint64_t ts_ns;
    const char *data;
};

/* Reads the next published record without consuming it.
 * Returns 1 with *out filled, 0 when nothing is published yet, -1 when the
 * ring is corrupt (the consumer should stop reading it). */
int mt_ring_peek(struct mt_ring_header *r, struct mt_rec_view *out);

/* Consumes the record last returned by mt_ring_peek.  The room it frees is
 * handed to producers in batches (an eighth of the ring, at most 64 KiB),
 * when mt_ring_peek finds the ring empty, or by mt_ring_release. */
void mt_ring_consume(struct mt_ring_header *r);

/* Hands all the room consumed so far back to producers. */
void mt_ring_release(struct mt_ring_header *r);

/* Bytes reserved but not yet consumed (published or still being written). */
uint64_t mt_ring_pending(const struct mt_ring_header *r);

/* Checks a mapped header before trusting it: 0 if sane, -1 if not. */
int mt_ring_validate(const struct mt_ring_header *r, uint64_t mapped_size);

#endif
