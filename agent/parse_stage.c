/* The parse stage: reads the run's journal back on a thread of its own, at
 * its own pace, and does with each record what the agent does
 * (mt_collector_handle: line assembly, rules, history, output.log), plus the
 * store's periodic work: flushes, the summary, the index row, watched files.
 *
 * Checkpoints.  At the end of each journal segment (and after the output
 * has been idle a second) it records how far it got, in
 * <run>/journal/checkpoint: the journal position, the sizes of history.jsonl,
 * events.jsonl and output.log at that point, the next _step, the counters,
 * the sources still open, the run's ends seen so far, and the console lines
 * begun but not ended.  The row being assembled is written first
 * (mt_parse_flush) and summary.json beside it.  Then the segments before the
 * position are removed.  A dead agent's run is finished from there
 * (recover.c): the files are cut back to those sizes and the rest of the
 * journal is parsed again, so every line that reached the journal ends up in
 * output.log and history exactly once. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../common/mt_buf.h"
#include "mt_agent.h"
#include "mt_journal.h"
#include "mt_stack_agent.h"
#include "mt_tail.h"
#include "mt_upload.h"

#define FLUSH_EVERY_S 0.2
/* New values reach summary.json and the runs table (ls) within about a
 * second; without new values the index row is refreshed (its runtime) every
 * INDEX_EVERY_S. */
#define SUMMARY_EVERY_S 1.0
#define INDEX_CHANGED_S 1.0
#define INDEX_EVERY_S 10.0
#define IDLE_ROW_FLUSH_S 1.0
#define PARSE_NICE 19
#define CKPT_MAGIC "MTCKPT01"
#define CKPT_PARTIALS_MAX (4u << 20) /* more pending text postpones a checkpoint */
#define CKPT_NAME MT_JOURNAL_DIR "/checkpoint"

struct source {
    struct mt_ring_slot slot;
    struct mt_ring_header hdr; /* the identity part of the ring's header */
};

struct mt_parse_stage {
    pthread_t thread;
    int started;
    struct source **by_id;
    size_t cap;
    struct mt_jpos ckpt_pos;
    double last_flush, last_summary, last_index, last_ckpt_data;
    uint64_t values_at_summary, values_at_index;
    int idle_flushed; /* the row was flushed for idleness since the last data */
    struct mt_buf partials;
    uint32_t npartials, partial_parser;
};

/* ---- sources: the rings the journal's records came from ---- */

static struct source *source_of(struct mt_parse_stage *st, uint32_t id, int create)
{
    if (id < st->cap && st->by_id[id])
        return st->by_id[id];
    if (!create && id < st->cap)
        return NULL;
    if (id >= st->cap) {
        size_t cap = st->cap ? st->cap : 64;
        while (cap <= id)
            cap *= 2;
        st->by_id = mt_xrealloc(st->by_id, cap * sizeof *st->by_id);
        memset(st->by_id + st->cap, 0, (cap - st->cap) * sizeof *st->by_id);
        st->cap = cap;
    }
    struct source *src = mt_xcalloc(1, sizeof *src);
    src->slot.ring = &src->hdr;
    src->slot.pidfd = -1;
    src->slot.source = id;
    src->hdr.rank = -1;
    src->hdr.world_size = -1;
    st->by_id[id] = src;
    return src;
}

static void source_set_header(struct source *src, const char *data, uint32_t len)
{
    size_t n = len < sizeof src->hdr ? len : sizeof src->hdr;
    memcpy(&src->hdr, data, n);
    src->hdr.exe[sizeof src->hdr.exe - 1] = '\0';
    src->slot.pid = src->hdr.pid;
    src->slot.created_ns = src->hdr.created_ns;
}

static void source_close(struct mt_agent *a, struct mt_parse_stage *st, uint32_t id,
                         int close_lines, double ts)
{
    struct source *src = source_of(st, id, 0);
    if (!src)
        return;
    if (close_lines) {
        mt_parse_close_pid(mt_parser_for_ring(a, src->slot.ring), src->slot.pid, ts);
        a->console_label[0] = '\0';
    }
    free(src);
    st->by_id[id] = NULL;
}

/* A drain's notice: "name\0{fields}" for events.jsonl. */
static void agent_event(struct mt_agent *a, const struct mt_jview *v)
{
    const char *name = v->data;
    size_t n = strnlen(name, v->len);
    if (n == v->len)
        return;
    char *fields = mt_xstrndup(v->data + n + 1, v->len - n - 1);
    if (strcmp(name, "not_console") == 0) { /* counts for run.json, not an event */
        mt_procstats_not_console(a, fields);
        free(fields);
        return;
    }
    mt_store_event(&a->store, mt_agent_unix_of(a, v->ts_ns), name, fields);
    if (strcmp(name, "dropped") == 0) {
        const char *r = strstr(fields, "\"records\":"), *b = strstr(fields, "\"bytes\":");
        const char *why = strstr(fields, "\"reason\":\"");
        int reason = MT_DROP_RING_FULL;
        if (why && strstr(why, "/dev/shm"))
            reason = MT_DROP_SHM_FULL;
        else if (why && strstr(why, "died"))
            reason = MT_DROP_DIED;
        else if (why && strstr(why, mt_jdrop_reason[MT_JDROP_CAP]))
            reason = MT_DROP_JOURNAL_FULL;
        else if (why && strstr(why, mt_jdrop_reason[MT_JDROP_SPACE]))
            reason = MT_DROP_DISK_FULL;
        else if (why && strstr(why, mt_jdrop_reason[MT_JDROP_WRITE]))
            reason = MT_DROP_JOURNAL_WRITE;
        mt_run_count_drop(a, reason, r ? strtoull(r + 10, NULL, 10) : 0,
                          b ? strtoull(b + 8, NULL, 10) : 0);
    }
    free(fields);
}

static void dispatch(struct mt_agent *a, struct mt_parse_stage *st, const struct mt_jview *v)
{
    if (v->source == 0) {
        uint32_t kind = MT_REC_KIND(v->meta), id = MT_REC_AUX(v->meta);
        switch (kind) {
        case MT_JREC_SOURCE: {
            struct source *src = source_of(st, id, 1);
            source_set_header(src, v->data, v->len);
            if (a->recovering && (src->hdr.flags & MT_RING_PRIMARY))
                mt_primary_add(a, (pid_t)src->hdr.pid, (src->hdr.flags & MT_RING_LAUNCHER) != 0,
                               src->hdr.rank);
            break;
        }
        case MT_JREC_CLOSE:
            source_close(a, st, id, MT_REC_STREAM(v->meta) != 0, mt_agent_unix_of(a, v->ts_ns));
            break;
        case MT_JREC_EVENT:
            agent_event(a, v);
            break;
        default:
            break;
        }
        return;
    }
    /* A source whose announcement was lost (a full disk) still parses. */
    struct source *src = source_of(st, v->source, 1);
    struct mt_rec_view rv = {
        .kind = MT_REC_KIND(v->meta), .stream = MT_REC_STREAM(v->meta),
        .aux = MT_REC_AUX(v->meta), .len = v->len, .ts_ns = v->ts_ns, .data = v->data,
    };
    if (rv.kind == MT_REC_DATA)
        a->data_records++;
    mt_collector_handle(a, &src->slot, &rv);
    st->idle_flushed = 0;
}

/* ---- checkpoints ---- */

static void put32(struct mt_buf *b, uint32_t v) { mt_buf_add(b, &v, 4); }
static void put64(struct mt_buf *b, uint64_t v) { mt_buf_add(b, &v, 8); }

static void add_partial(void *ctx, uint32_t pid, int stream, const char *data, size_t len,
                        int cr)
{
    struct mt_parse_stage *st = ctx;
    put32(&st->partials, st->partial_parser);
    put32(&st->partials, pid);
    put32(&st->partials, (uint32_t)stream);
    put32(&st->partials, (uint32_t)cr);
    put32(&st->partials, (uint32_t)len);
    mt_buf_add(&st->partials, data, len);
    st->npartials++;
}

static int write_checkpoint(struct mt_agent *a, struct mt_parse_stage *st, struct mt_jpos pos)
{
    mt_buf_reset(&st->partials);
    st->npartials = 0;
    mt_parse *parsers[2] = { a->parse, a->parse_console };
    for (uint32_t i = 0; i < 2; i++)
        if (parsers[i]) {
            st->partial_parser = i;
            mt_parse_each_partial(parsers[i], add_partial, st);
        }
    if (st->partials.refused || st->partials.len > CKPT_PARTIALS_MAX)
        return -1; /* postponed: too much begun and not ended */
    for (int i = 0; i < 2; i++)
        if (parsers[i])
            mt_parse_flush(parsers[i], 0);
    mt_store_flush(&a->store);
    struct mt_parse_stats ps;
    mt_parse_stats(a->parse, &ps);
    struct mt_buf b;
    mt_buf_init(&b, (size_t)64 << 20);
    mt_buf_add(&b, CKPT_MAGIC, 8);
    put32(&b, 1);
    put32(&b, pos.seg);
    put64(&b, pos.off);
    put64(&b, mt_store_size(&a->store, a->store.history));
    put64(&b, mt_store_size(&a->store, a->store.events));
    put64(&b, mt_store_size(&a->store, a->store.output));
    put64(&b, ps.next_step);
    for (int i = 0; i < 4; i++)
        put64(&b, a->stream_bytes[i]);
    put64(&b, a->dropped_records);
    put64(&b, a->dropped_bytes);
    put64(&b, ps.lines + a->lines_offset);
    put64(&b, ps.rows + a->rows_offset);
    put64(&b, a->data_records);
    int32_t ends[6] = { a->have_end, a->exit_code, a->exit_signal,
                        a->last_have_end, a->last_exit_code, a->last_exit_signal };
    mt_buf_add(&b, ends, sizeof ends);
    for (int i = 0; i < MT_DROP_N; i++) {
        put64(&b, a->drop_reasons[i]);
        put64(&b, a->drop_reason_bytes[i]);
    }
    put32(&b, (uint32_t)a->nprimaries);
    for (size_t i = 0; i < a->nprimaries; i++) {
        const struct mt_primary *p = &a->primaries[i];
        int32_t f[7] = { p->pid, p->launcher, p->rank, p->done, p->have_end, p->exit_code,
                         p->exit_signal };
        mt_buf_add(&b, f, sizeof f);
    }
    uint32_t nsrc = 0;
    for (size_t i = 0; i < st->cap; i++)
        nsrc += st->by_id[i] != NULL;
    put32(&b, nsrc);
    for (size_t i = 0; i < st->cap; i++)
        if (st->by_id[i]) {
            put32(&b, (uint32_t)i);
            mt_buf_add(&b, &st->by_id[i]->hdr, sizeof st->by_id[i]->hdr);
        }
    put32(&b, st->npartials);
    mt_buf_add(&b, st->partials.data ? st->partials.data : "", st->partials.len);
    put32(&b, mt_crc32c(0, b.data, b.len));
    mt_run_write_summary(a);
    int rc = -1;
    int fd = mt_store_open_in(&a->store, CKPT_NAME ".tmp", O_WRONLY | O_CREAT | O_TRUNC);
    if (fd >= 0) {
        size_t off = 0;
        while (off < b.len) {
            ssize_t w = write(fd, b.data + off, b.len - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            off += (size_t)w;
        }
        rc = close(fd) == 0 && off == b.len &&
                     mt_store_rename_file(&a->store, CKPT_NAME ".tmp", CKPT_NAME) == 0
                 ? 0
                 : -1;
    }
    mt_buf_free(&b);
    if (rc != 0) {
        a->store.write_errors++;
        return -1;
    }
    st->ckpt_pos = pos;
    mt_journal_release(a->journal, pos);
    return 0;
}

struct reader {
    const char *p, *end;
    int bad;
};

static const void *take(struct reader *r, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = 1;
        return NULL;
    }
    const void *at = r->p;
    r->p += n;
    return at;
}

static uint32_t get32(struct reader *r)
{
    uint32_t v = 0;
    const void *p = take(r, 4);
    if (p)
        memcpy(&v, p, 4);
    return v;
}

static uint64_t get64(struct reader *r)
{
    uint64_t v = 0;
    const void *p = take(r, 8);
    if (p)
        memcpy(&v, p, 8);
    return v;
}

static struct mt_parse_stage *stage_new(void)
{
    struct mt_parse_stage *st = mt_xcalloc(1, sizeof *st);
    mt_buf_init(&st->partials, (size_t)CKPT_PARTIALS_MAX * 2);
    return st;
}

int mt_parse_stage_restore(struct mt_agent *a)
{
    if (!a->stage)
        a->stage = stage_new();
    struct mt_parse_stage *st = a->stage;
    size_t len = 0;
    char *text = mt_store_read(&a->store, CKPT_NAME, &len);
    if (!text)
        return -1;
    struct reader r = { text, text + len, 0 };
    uint32_t crc = 0;
    if (len >= 12) {
        memcpy(&crc, text + len - 4, 4);
        r.end -= 4;
    }
    const void *magic = take(&r, 8);
    if (len < 12 || !magic || memcmp(magic, CKPT_MAGIC, 8) != 0 || get32(&r) != 1 ||
        mt_crc32c(0, text, len - 4) != crc) {
        free(text);
        return -1;
    }
    struct mt_jpos pos;
    pos.seg = get32(&r);
    pos.off = get64(&r);
    uint64_t hist = get64(&r), events = get64(&r), output = get64(&r);
    uint64_t next_step = get64(&r);
    for (int i = 0; i < 4; i++)
        a->stream_bytes[i] = get64(&r);
    a->dropped_records = get64(&r);
    a->dropped_bytes = get64(&r);
    a->lines_offset = get64(&r);
    a->rows_offset = get64(&r);
    a->data_records = get64(&r);
    const int32_t *ends = take(&r, 6 * sizeof(int32_t));
    if (ends) {
        a->have_end = ends[0], a->exit_code = ends[1], a->exit_signal = ends[2];
        a->last_have_end = ends[3], a->last_exit_code = ends[4], a->last_exit_signal = ends[5];
    }
    for (int i = 0; i < MT_DROP_N; i++) {
        a->drop_reasons[i] = get64(&r);
        a->drop_reason_bytes[i] = get64(&r);
    }
    uint32_t np = get32(&r);
    for (uint32_t i = 0; i < np && !r.bad; i++) {
        const int32_t *f = take(&r, 7 * sizeof(int32_t));
        struct mt_primary *p = f ? mt_primary_add(a, f[0], f[1], f[2]) : NULL;
        if (p) {
            p->done = f[3], p->have_end = f[4], p->exit_code = f[5], p->exit_signal = f[6];
        }
    }
    uint32_t ns = get32(&r);
    for (uint32_t i = 0; i < ns && !r.bad; i++) {
        uint32_t id = get32(&r);
        const void *hdr = take(&r, sizeof(struct mt_ring_header));
        if (hdr)
            source_set_header(source_of(st, id, 1), hdr, sizeof(struct mt_ring_header));
    }
    /* Kept for mt_parse_stage_refeed, once the parser exists. */
    st->npartials = get32(&r);
    mt_buf_reset(&st->partials);
    if (!r.bad)
        mt_buf_add(&st->partials, r.p, (size_t)(r.end - r.p));
    free(text);
    if (r.bad)
        return -1;
    /* What came after the checkpoint is parsed again: cut it away. */
    mt_store_truncate(&a->store, a->store.history, hist);
    mt_store_truncate(&a->store, a->store.events, events);
    mt_store_truncate(&a->store, a->store.output, output);
    a->first_step = next_step;
    st->ckpt_pos = pos;
    mt_journal_seek(a->journal, pos);
    return 0;
}

void mt_parse_stage_refeed(struct mt_agent *a)
{
    struct mt_parse_stage *st = a->stage;
    if (!st)
        return;
    struct reader r = { st->partials.data, st->partials.data + st->partials.len, 0 };
    struct {
        uint32_t parser, pid, stream, cr, len;
    } h;
    for (uint32_t i = 0; i < st->npartials && !r.bad; i++) {
        const void *hp = take(&r, sizeof h);
        if (!hp)
            break;
        memcpy(&h, hp, sizeof h);
        const char *data = take(&r, h.len);
        mt_parse *p = h.parser ? a->parse_console : a->parse;
        if (!data || !p)
            continue;
        mt_parse_bytes(p, h.pid, (int)h.stream, mt_now_unix(), data, h.len);
        if (h.cr)
            mt_parse_bytes(p, h.pid, (int)h.stream, mt_now_unix(), "\r", 1);
    }
    mt_buf_reset(&st->partials);
    st->npartials = 0;
}

/* ---- the loop ---- */

static void periodic(struct mt_agent *a, struct mt_parse_stage *st, double now)
{
    /* The trainer became known, or metrics were defined: run.json first,
     * then the rows that use it. */
    if (a->run_json_dirty && !a->recovering) {
        a->run_json_dirty = 0;
        mt_run_write_json(a);
        st->last_index = 0;
    }
    if (now - st->last_flush >= FLUSH_EVERY_S) {
        mt_store_flush(&a->store);
        for (int i = 0; i < a->nuploaders; i++)
            mt_uploader_notify(a->uploaders[i]);
        st->last_flush = now;
    }
    if (a->recovering)
        return; /* recover.c writes the summary and the index once, at the end */
    struct mt_parse_stats ps;
    mt_parse_stats(a->parse, &ps);
    if (now - st->last_summary >= SUMMARY_EVERY_S && ps.values != st->values_at_summary) {
        mt_run_write_summary(a);
        st->values_at_summary = ps.values;
        st->last_summary = now;
    }
    double since_index = now - st->last_index;
    if (since_index >= INDEX_EVERY_S ||
        (since_index >= INDEX_CHANGED_S && ps.values != st->values_at_index)) {
        mt_run_update_index(a);
        st->values_at_index = ps.values;
        st->last_index = now;
    }
    mt_stack_watch_tick(a, now);
}

static void tell_progress(struct mt_agent *a)
{
    if (a->ctl)
        atomic_store(&a->ctl->parsed_records,
                     atomic_load(&mt_journal_counts(a->journal)->parsed_records));
}

/* Watched and followed files; their rows are flushed when they go idle too. */
static size_t poll_files(struct mt_agent *a, struct mt_parse_stage *st, double now)
{
    size_t tailed = a->tail ? mt_tail_poll(a->tail, now) : 0;
    if (tailed) {
        st->idle_flushed = 0;
        a->last_data_unix = now;
    }
    return tailed;
}

static void chunk_done(struct mt_agent *a, struct mt_parse_stage *st)
{
    tell_progress(a);
    struct mt_jpos pos = mt_journal_tell(a->journal);
    /* A segment parsed whole: checkpoint, so that it can go. */
    if (pos.seg != st->ckpt_pos.seg)
        write_checkpoint(a, st, pos);
    double now = mt_now_unix();
    periodic(a, st, now);
    poll_files(a, st, now);
}

/* Nothing more in the journal for now. */
static void caught_up(struct mt_agent *a, struct mt_parse_stage *st)
{
    tell_progress(a);
    double now = mt_now_unix();
    size_t tailed = poll_files(a, st, now);
    if (!st->idle_flushed && !tailed && a->last_data_unix &&
        now - a->last_data_unix > IDLE_ROW_FLUSH_S) {
        mt_parse_flush(a->parse, now);
        st->idle_flushed = 1;
        struct mt_jpos pos = mt_journal_tell(a->journal);
        /* The row was flushed anyway: a checkpoint here splits nothing. */
        if (pos.seg != st->ckpt_pos.seg || pos.off != st->ckpt_pos.off)
            write_checkpoint(a, st, pos);
    }
    periodic(a, st, now);
}

/* Parses until the END record (or, recovering, the end of what is there). */
static void parse_loop(struct mt_agent *a, int wait)
{
    struct mt_parse_stage *st = a->stage;
    struct mt_jview v;
    int chunk_end;
    uint64_t n = 0;
    for (;;) {
        int rc = mt_journal_next(a->journal, &v, &chunk_end);
        if (rc == 1) {
            dispatch(a, st, &v);
            if (chunk_end)
                chunk_done(a, st);
            else if ((++n & 4095) == 0)
                periodic(a, st, mt_now_unix());
            continue;
        }
        if (rc < 0 || !wait)
            break;
        caught_up(a, st);
        mt_journal_wait(a->journal, 50);
    }
}

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *stage_main(void *arg)
{
    /* Below the drain: where the two share a CPU (a 2-core machine, the
     * program on the other), an equal share let the ring fill while the
     * drain waited for the parser (measured: 24,494 of 2,000,000 lines
     * dropped at nice 10 beside the drain, 0 at 19).  Parse lag only delays. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), PARSE_NICE) != 0)
        (void)0; /* not fatal: the ring still absorbs bursts */
    struct mt_agent *a = arg;
    mt_run_collect_metadata(a);
    mt_run_write_json(a);
    parse_loop(a, 1);
    a->parse_cpu_s = thread_cpu_s();
    return NULL;
}

int mt_parse_stage_start(struct mt_agent *a, char *err, size_t errsz)
{
    if (!a->stage)
        a->stage = stage_new();
    /* Where a recovery starts when nothing was parsed yet. */
    write_checkpoint(a, a->stage, mt_journal_tell(a->journal));
    int rc = pthread_create(&a->stage->thread, NULL, stage_main, a);
    if (rc != 0) {
        snprintf(err, errsz, "cannot start the parse stage: %s", strerror(rc));
        return -1;
    }
    a->stage->started = 1;
    return 0;
}

void mt_parse_stage_stop(struct mt_agent *a)
{
    struct mt_parse_stage *st = a->stage;
    if (!st)
        return;
    if (st->started)
        pthread_join(st->thread, NULL);
    for (size_t i = 0; i < st->cap; i++)
        free(st->by_id[i]);
    free(st->by_id);
    mt_buf_free(&st->partials);
    free(st);
    a->stage = NULL;
}

void mt_parse_stage_run_to_end(struct mt_agent *a)
{
    if (!a->stage)
        a->stage = stage_new();
    parse_loop(a, 0);
}

void mt_parse_stage_progress(struct mt_agent *a, uint64_t *parsed, uint64_t *total)
{
    struct mt_journal_counts *c = mt_journal_counts(a->journal);
    *parsed = atomic_load(&c->parsed_records);
    *total = atomic_load(&c->records);
}
