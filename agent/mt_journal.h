/* mt_journal: persist, then parse (DESIGN.md "Processes and data flow").
 *
 * The drain copies every ring record, as it was, into the run's journal and
 * does nothing else with it; the parse stage reads the journal back at its
 * own pace.  Parse lag then delays metrics and never loses them: a ring
 * fills only when a program outprints a memcpy into the page cache.
 *
 *   <run>/journal/00000001.seg ...  segments of at most MT_JOURNAL_SEGMENT
 *                                   bytes, written append-only in chunks
 *   <run>/journal/meta             what recovery needs to parse it again
 *   <run>/journal/checkpoint       how far the parse stage got (parse_stage.c)
 *
 * A segment is a 16-byte header, then chunks: a 16-byte chunk header (magic,
 * payload length, record count, CRC-32C of the payload), then records of a
 * 24-byte header and their bytes padded to 8.  A record carries the ring
 * record's own timestamp, length and meta word verbatim (whatever its kind:
 * the journal filters nothing), and the source it came from: a ring
 * announced earlier by an MT_JREC_SOURCE record of source 0.  Source 0 is
 * the agent's own: sources opening and closing, events, the end.
 *
 * The journal's live size (written minus parsed and removed) is bounded by
 * capture.journal_max and by the free space of its filesystem (it always
 * leaves MT_JOURNAL_RESERVE, or a twentieth of a small filesystem, for the
 * run's own files).  Beyond either, DATA records are dropped and counted with
 * the reason; the other kinds (processes starting and ending) are always
 * written while the disk takes them.
 *
 * One writer thread and one reader thread share a journal; the counters are
 * atomic, the rest belongs to one side. */
#ifndef MT_JOURNAL_H
#define MT_JOURNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct mt_store;

#define MT_JOURNAL_DIR "journal"
#define MT_JOURNAL_SEGMENT (64u << 20)  /* a segment is closed past this */
#define MT_JOURNAL_CHUNK (1u << 20)     /* the drain writes at most this at once */
#define MT_JOURNAL_RESERVE (256ull << 20)

/* Kinds of source-0 records (in the meta word). */
enum mt_jrec_kind {
    MT_JREC_SOURCE = 1, /* data: a ring's header as it was (identity); aux: its source id */
    MT_JREC_CLOSE = 2,  /* the source's process is gone; aux: its source id */
    MT_JREC_EVENT = 3,  /* data: event name, NUL, JSON fields: for events.jsonl */
    MT_JREC_END = 4,    /* nothing follows: the capture is over */
};

/* Why a record was not journaled. */
enum mt_jdrop { MT_JDROP_CAP, MT_JDROP_SPACE, MT_JDROP_WRITE, MT_JDROP_N };
extern const char *const mt_jdrop_reason[MT_JDROP_N];

struct mt_journal_counts {
    _Atomic uint64_t data_records, data_bytes; /* DATA records journaled */
    _Atomic uint64_t written, removed;         /* bytes of segments */
    _Atomic uint64_t peak;                     /* largest live size */
    _Atomic uint64_t parsed_records;           /* records the parse stage read */
    _Atomic uint64_t records;                  /* records journaled, all kinds */
    _Atomic uint64_t dropped_records[MT_JDROP_N], dropped_bytes[MT_JDROP_N];
    _Atomic uint64_t damaged_bytes;            /* skipped: failed checksums, torn ends */
};

struct mt_journal;

/* The drain side: creates <run>/journal and its first segment (first_seg:
 * 1 for a new run; a resumed run starts after what is there). */
struct mt_journal *mt_journal_create(struct mt_store *s, uint64_t max_bytes, int keep,
                                     char *err, size_t errsz);
/* The recovery side: the journal a dead agent left, read only. NULL if none. */
struct mt_journal *mt_journal_open(struct mt_store *s, int keep);
void mt_journal_destroy(struct mt_journal *j);
struct mt_journal_counts *mt_journal_counts(struct mt_journal *j);

/* Queues one record; 0, or -1 when it was dropped (counted).  Records are
 * written when a chunk fills and by mt_journal_commit. */
int mt_journal_put(struct mt_journal *j, uint32_t source, uint32_t meta, uint64_t ts_ns,
                   const void *data, uint32_t len);
/* Writes what is queued and wakes the reader. */
void mt_journal_commit(struct mt_journal *j);
/* Writes the END record and wakes the reader for the last time. */
void mt_journal_end(struct mt_journal *j);

/* ---- the parse side ---- */

struct mt_jview {
    uint32_t source, meta, len;
    uint64_t ts_ns;
    const char *data;
};

/* Position of the next unread chunk. */
struct mt_jpos {
    uint32_t seg;
    uint64_t off;
};

/* Starts reading at `at` (a checkpoint's position; {0,0}: the beginning). */
int mt_journal_seek(struct mt_journal *j, struct mt_jpos at);
/* The next record: 1 (in *v, valid until the next call), 0 none yet, -1
 * the END record was read or, for a dead writer, nothing valid is left.
 * `*chunk_end` says the record was its chunk's last. */
int mt_journal_next(struct mt_journal *j, struct mt_jview *v, int *chunk_end);
/* The position after the last chunk read whole. */
struct mt_jpos mt_journal_tell(const struct mt_journal *j);
/* Waits for the writer at most timeout_ms (returns at once if it wrote). */
void mt_journal_wait(struct mt_journal *j, int timeout_ms);
/* Removes the segments before `upto`'s (unless the journal is kept). */
void mt_journal_release(struct mt_journal *j, struct mt_jpos upto);
/* Removes what is left of the journal (unless kept): the run is complete. */
void mt_journal_remove(struct mt_journal *j);
/* Is the writer of this journal gone (recovery) or done? */
int mt_journal_writer_done(const struct mt_journal *j);

uint32_t mt_crc32c(uint32_t crc, const void *data, size_t len);

#endif
