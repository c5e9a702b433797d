/* The capture ring: ordering, wrap-around, drops, and many producers. */
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>

#include "../../common/mt_ring.h"
#include "mt_test.h"

static struct mt_ring_header *make_ring(uint64_t cap)
{
    /* Zeroed like a fresh ftruncate'd ring file. */
    void *mem = aligned_alloc(64, MT_RING_HDR_SIZE + cap);
    memset(mem, 0, MT_RING_HDR_SIZE + cap);
    mt_ring_init(mem, cap, 42, 0);
    return mem;
}

MT_TEST(a_fresh_zeroed_ring_holds_no_record)
{
    struct mt_ring_header *r = make_ring(MT_RING_MIN_CAPACITY);
    struct mt_rec_view v;
    MT_CHECK(mt_ring_peek(r, &v) == 0);
    free(r);
}

MT_TEST(records_come_out_in_order_with_their_fields)
{
    struct mt_ring_header *r = make_ring(MT_RING_MIN_CAPACITY);
    MT_CHECK(mt_ring_validate(r, MT_RING_HDR_SIZE + MT_RING_MIN_CAPACITY) == 0);
    MT_CHECK(mt_ring_push(r, MT_REC_META(MT_REC_DATA, 1, 7), 100, "hello", 5) == 0);
    MT_CHECK(mt_ring_push2(r, MT_REC_META(MT_REC_DATA, 2, 8), 200, "ab", 2, "\n", 1) == 0);
    MT_CHECK(mt_ring_push(r, MT_REC_META(MT_REC_EXIT, 0, 3), 300, NULL, 0) == 0);
    struct mt_rec_view v;
    MT_CHECK(mt_ring_peek(r, &v) == 1);
    MT_CHECK(v.kind == MT_REC_DATA && v.stream == 1 && v.aux == 7 && v.ts_ns == 100);
    MT_CHECK(v.len == 5 && memcmp(v.data, "hello", 5) == 0);
    mt_ring_consume(r);
    MT_CHECK(mt_ring_peek(r, &v) == 1);
    MT_CHECK(v.stream == 2 && v.len == 3 && memcmp(v.data, "ab\n", 3) == 0);
    mt_ring_consume(r);
    MT_CHECK(mt_ring_peek(r, &v) == 1);
    MT_CHECK(v.kind == MT_REC_EXIT && v.aux == 3 && v.len == 0);
    mt_ring_consume(r);
    MT_CHECK(mt_ring_peek(r, &v) == 0);
    MT_CHECK(mt_ring_pending(r) == 0);
    free(r);
}

MT_TEST(a_full_ring_drops_and_counts_instead_of_blocking)
{
    uint64_t cap = MT_RING_MIN_CAPACITY;
    struct mt_ring_header *r = make_ring(cap);
    char payload[1000];
    memset(payload, 'x', sizeof payload);
    int pushed = 0, dropped = 0;
    for (int i = 0; i < 200; i++)
        mt_ring_push(r, MT_REC_META(MT_REC_DATA, 1, 1), 1, payload, sizeof payload) == 0
            ? pushed++ : dropped++;
    MT_CHECK(pushed > 0 && dropped > 0);
    MT_CHECK(pushed * mt_rec_total(sizeof payload) <= cap);
    MT_CHECK(atomic_load(&r->dropped_records) == (uint64_t)dropped);
    MT_CHECK(atomic_load(&r->dropped_bytes) == (uint64_t)dropped * sizeof payload);
    /* What was kept is intact. */
    struct mt_rec_view v;
    int got = 0;
    while (mt_ring_peek(r, &v) == 1) {
        MT_CHECK(v.len == sizeof payload && v.data[0] == 'x' && v.data[999] == 'x');
        mt_ring_consume(r);
        got++;
    }
    MT_CHECK(got == pushed);
    free(r);
}

MT_TEST(records_never_wrap_and_survive_many_laps)
{
    uint64_t cap = MT_RING_MIN_CAPACITY;
    struct mt_ring_header *r = make_ring(cap);
    char buf[3000];
    uint32_t next_in = 0, next_out = 0;
    for (int lap = 0; lap < 2000; lap++) {
        uint32_t len = 1 + (uint32_t)((lap * 7919) % 2999);
        memset(buf, (char)('a' + next_in % 26), len);
        memcpy(buf, &next_in, len >= 4 ? 4 : len);
        if (mt_ring_push(r, MT_REC_META(MT_REC_DATA, 1, len), next_in, buf, len) == 0)
            next_in++;
        if (lap % 3 == 0) {
            struct mt_rec_view v;
            while (mt_ring_peek(r, &v) == 1) {
                MT_CHECK(v.ts_ns == next_out);
                MT_CHECK(v.len == v.aux);
                MT_CHECK(v.data[v.len - 1] == (char)('a' + next_out % 26) || v.len <= 4);
                mt_ring_consume(r);
                next_out++;
            }
        }
    }
    MT_CHECK(next_out > 1000);
    free(r);
}

MT_TEST(oversized_records_are_refused_and_counted)
{
    struct mt_ring_header *r = make_ring(MT_RING_MIN_CAPACITY);
    static char big[MT_RING_MIN_CAPACITY];
    MT_CHECK(mt_ring_push(r, MT_REC_META(MT_REC_DATA, 1, 1), 1, big, sizeof big / 2) == -1);
    MT_CHECK(atomic_load(&r->dropped_records) == 1);
    free(r);
}

MT_TEST(a_corrupt_length_is_detected_not_followed)
{
    struct mt_ring_header *r = make_ring(MT_RING_MIN_CAPACITY);
    mt_ring_push(r, MT_REC_META(MT_REC_DATA, 1, 1), 1, "abc", 3);
    struct mt_rec *rec = (struct mt_rec *)((char *)r + MT_RING_HDR_SIZE);
    rec->len = 0x7fffffff;
    struct mt_rec_view v;
    MT_CHECK(mt_ring_peek(r, &v) == -1);
    free(r);
}

struct producer { struct mt_ring_header *r; uint32_t id; };
#define PER_THREAD 20000

static void *produce(void *arg)
{
    struct producer *p = arg;
    for (uint32_t i = 0; i < PER_THREAD;) {
        char line[32];
        int n = snprintf(line, sizeof line, "t%u %u\n", p->id, i);
        if (mt_ring_push(p->r, MT_REC_META(MT_REC_DATA, 1, p->id), i, line, (uint32_t)n) == 0)
            i++;
    }
    return NULL;
}

MT_TEST(eight_threads_lose_nothing_and_keep_their_order)
{
    struct mt_ring_header *r = make_ring(1u << 20);
    pthread_t th[8];
    struct producer ps[8];
    for (uint32_t t = 0; t < 8; t++) {
        ps[t] = (struct producer){ r, t };
        pthread_create(&th[t], NULL, produce, &ps[t]);
    }
    uint32_t expect[8] = { 0 };
    uint32_t total = 0;
    while (total < 8 * PER_THREAD) {
        struct mt_rec_view v;
        if (mt_ring_peek(r, &v) != 1)
            continue;
        char want[32];
        int n = snprintf(want, sizeof want, "t%u %u\n", v.aux, expect[v.aux]);
        MT_CHECK(v.ts_ns == expect[v.aux]);
        MT_CHECK((int)v.len == n && memcmp(v.data, want, v.len) == 0);
        expect[v.aux]++;
        total++;
        mt_ring_consume(r);
    }
    for (int t = 0; t < 8; t++) {
        pthread_join(th[t], NULL);
        MT_CHECK(expect[t] == PER_THREAD);
    }
    free(r);
}

/* A sparse ring whose next chunk cannot be given memory (a full tmpfs; here
 * a read-only page range, which MADV_POPULATE_WRITE refuses the same way):
 * the push drops and counts instead of storing into it, the next try waits
 * 0.1 s of record time, and once memory is there the ring goes on. */
MT_TEST(a_chunk_without_memory_drops_then_recovers)
{
    uint64_t cap = 4 * MT_RING_CHUNK;
    char *mem = mmap(NULL, MT_RING_HDR_SIZE + cap, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    MT_CHECK(mem != MAP_FAILED);
    if (mt_ring_populate(mem, 4096) != 0) {
        /* Linux < 5.14: rings are then backed whole at creation, and this
         * path is never taken. */
        fprintf(stderr, "    (no MADV_POPULATE_WRITE here: nothing to check)\n");
        munmap(mem, MT_RING_HDR_SIZE + cap);
        return;
    }
    struct mt_ring_header *r = (struct mt_ring_header *)mem;
    mt_ring_init(r, cap, 42, 0);
    r->backed = MT_RING_CHUNK; /* as mt_channel_create_ring leaves a tmpfs ring */
    char *chunk2 = mem + MT_RING_HDR_SIZE + MT_RING_CHUNK;
    MT_CHECK(mprotect(chunk2, cap - MT_RING_CHUNK, PROT_READ) == 0);
    char line[1000];
    memset(line, 'x', sizeof line);
    uint64_t ts = 1000000000ull, pushed = 0;
    while (mt_ring_push(r, MT_REC_META(MT_REC_DATA, 1, 1), ts, line, sizeof line) == 0)
        pushed++;
    MT_CHECK(pushed > 0 && pushed * (MT_REC_HDR + sizeof line) <= MT_RING_CHUNK);
    MT_CHECK(r->dropped_records == 1 && r->dropped_unbacked == 1);
    MT_CHECK(r->backed == MT_RING_CHUNK);
    /* Memory is back, but the next try waits for 0.1 s of record time. */
    MT_CHECK(mprotect(chunk2, cap - MT_RING_CHUNK, PROT_READ | PROT_WRITE) == 0);
    MT_CHECK(mt_ring_push(r, MT_REC_META(MT_REC_DATA, 1, 1), ts + 1000000, line, sizeof line) != 0);
    MT_CHECK(r->dropped_unbacked == 2);
    MT_CHECK(mt_ring_push(r, MT_REC_META(MT_REC_DATA, 1, 1), ts + 200000000, line, sizeof line) == 0);
    MT_CHECK(r->backed == 2 * MT_RING_CHUNK);
    /* Everything that was pushed comes out, in order. */
    struct mt_rec_view v;
    uint64_t seen = 0;
    while (mt_ring_peek(r, &v) == 1) {
        MT_CHECK(v.len == sizeof line);
        mt_ring_consume(r);
        seen++;
    }
    MT_CHECK(seen == pushed + 1);
    munmap(mem, MT_RING_HDR_SIZE + cap);
}

/* The shim's single-threaded path (mt_ring_push_solo, inline, falling back
 * to mt_ring_push2_solo) must lay out byte for byte what the locked path
 * does: across laps and wrap padding, when the ring is full, and when a new
 * chunk of a sparse ring needs memory first. */
MT_TEST(solo_pushes_lay_out_what_locked_pushes_do)
{
    uint64_t cap = 2 * MT_RING_CHUNK, size = MT_RING_HDR_SIZE + cap;
    struct mt_ring_header *ring[2];
    for (int k = 0; k < 2; k++) {
        ring[k] = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        MT_CHECK(ring[k] != MAP_FAILED);
        mt_ring_init(ring[k], cap, 42, 0);
        if (mt_ring_populate(ring[k], 4096) == 0)
            ring[k]->backed = MT_RING_CHUNK; /* the second chunk on first reach */
    }
    char buf[5000];
    uint64_t pushed[2] = { 0, 0 }, consumed[2] = { 0, 0 };
    for (uint32_t i = 0; i < 20000; i++) {
        uint32_t len = (i * 2654435761u) % 4000u; /* 0..3999, some fit, some wrap */
        memset(buf, (char)('a' + i % 26), len);
        uint32_t meta = MT_REC_META(MT_REC_DATA, 1 + i % 2, i & 0xffffff);
        if (mt_ring_push(ring[0], meta, i, buf, len) == 0)
            pushed[0]++;
        if (mt_ring_push_solo(ring[1], meta, i, buf, len) == 0)
            pushed[1]++;
        if (i % 1000 < 700) /* the consumer keeps up, then falls behind */
            continue;
        for (int k = 0; k < 2; k++) {
            struct mt_rec_view v;
            for (int n = 0; n < 3 && mt_ring_peek(ring[k], &v) == 1; n++) {
                mt_ring_consume(ring[k]);
                consumed[k]++;
            }
        }
    }
    MT_CHECK(pushed[0] == pushed[1] && consumed[0] == consumed[1]);
    MT_CHECK(ring[0]->dropped_records > 0);
    MT_CHECK(ring[0]->dropped_records == ring[1]->dropped_records);
    MT_CHECK(atomic_load(&ring[0]->head) == atomic_load(&ring[1]->head));
    MT_CHECK(atomic_load(&ring[0]->head) > 2 * cap);
    MT_CHECK(memcmp((char *)ring[0] + MT_RING_HDR_SIZE, (char *)ring[1] + MT_RING_HDR_SIZE, cap) == 0);
    for (int k = 0; k < 2; k++)
        munmap(ring[k], size);
}

int main(void)
{
    return mt_test_main();
}
