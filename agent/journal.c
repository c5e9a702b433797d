/* mt_journal: see mt_journal.h. */
#include "mt_journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "../common/mt_buf.h"
#include "../common/mt_ring.h"
#include "mt_store.h"

#define SEG_MAGIC "MTJRNL01"
#define SEG_HDR 16u
#define CHUNK_MAGIC 0x434a544du /* "MTJC" */
#define CHUNK_HDR 16u
#define REC_HDR 24u
#define SPACE_CHECK_EVERY (4u << 20) /* bytes written between looks at free space */
#define MAX_CHUNK_PAYLOAD ((uint64_t)MT_RING_MAX_CAPACITY + REC_HDR + 8)

const char *const mt_jdrop_reason[MT_JDROP_N] = {
    [MT_JDROP_CAP] = "journal full (capture.journal_max)",
    [MT_JDROP_SPACE] = "disk full: no space left for the journal",
    [MT_JDROP_WRITE] = "journal write failed",
};

struct chunk_hdr {
    uint32_t magic, len, count, crc;
};

struct rec_hdr {
    uint64_t ts_ns;
    uint32_t len, meta, source, flags;
};

struct mt_journal {
    struct mt_store *store;
    struct mt_journal_counts c;
    uint64_t max_bytes;
    int keep;
    /* writer */
    int wfd;
    uint32_t wseg;
    uint64_t wsize;
    char *buf;          /* a chunk header's room, then records */
    size_t blen;
    uint32_t bcount;
    uint64_t space_checked_at, space_free, space_reserve;
    /* Records put since the counts in `c` were last brought up to date: a
     * locked add per record cost the drain about a fifth of its time on
     * short lines (perf, 10M printf lines/s); published at each chunk. */
    uint64_t unpub_records, unpub_data_records, unpub_data_bytes;
    /* reader */
    int rfd;
    uint32_t rseg, first_seg;
    uint64_t roff, rnext;
    char *rbuf;
    size_t rcap, rpos, rlen;
    uint32_t rleft;
    /* between them */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t commits, seen;
    int ended;          /* END written (or, recovering, no writer at all) */
};

/* ---- CRC-32C (Castagnoli): the SSE4.2 instruction where there is one ---- */

static uint32_t crc_table[8][256];

static void crc_init_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1)));
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

static uint32_t crc_soft(uint32_t crc, const unsigned char *p, size_t n)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, crc_init_table);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= crc;
        crc = crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^
              crc_table[5][(w >> 16) & 0xff] ^ crc_table[4][(w >> 24) & 0xff] ^
              crc_table[3][(w >> 32) & 0xff] ^ crc_table[2][(w >> 40) & 0xff] ^
              crc_table[1][(w >> 48) & 0xff] ^ crc_table[0][w >> 56];
        p += 8, n -= 8;
    }
    while (n--)
        crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
    return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const unsigned char *p,
                                                        size_t n)
{
    uint64_t c = crc;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = __builtin_ia32_crc32di(c, w);
        p += 8, n -= 8;
    }
    while (n--)
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
    return (uint32_t)c;
}
#endif

uint32_t mt_crc32c(uint32_t crc, const void *data, size_t len)
{
    crc = ~crc;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2"))
        return ~crc_hw(crc, data, len);
#endif
    return ~crc_soft(crc, data, len);
}

/* ---- files ---- */

static void seg_name(char *out, size_t n, uint32_t seg)
{
    snprintf(out, n, MT_JOURNAL_DIR "/%08u.seg", seg);
}

static int write_all(int fd, const struct iovec *iov, int n)
{
    struct iovec v[4];
    memcpy(v, iov, (size_t)n * sizeof *v);
    struct iovec *p = v;
    while (n > 0) {
        ssize_t w = writev(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return -1;
        }
        while (n > 0 && (size_t)w >= p->iov_len)
            w -= (ssize_t)p->iov_len, p++, n--;
        if (n > 0) {
            p->iov_base = (char *)p->iov_base + w;
            p->iov_len -= (size_t)w;
        }
    }
    return 0;
}

static int open_segment(struct mt_journal *j, uint32_t seg)
{
    char name[64];
    seg_name(name, sizeof name, seg);
    int fd = mt_store_open_in(j->store, name, O_WRONLY | O_CREAT | O_EXCL | O_APPEND);
    if (fd < 0)
        return -1;
    char hdr[SEG_HDR] = SEG_MAGIC;
    memcpy(hdr + 8, &seg, 4);
    struct iovec v = { hdr, sizeof hdr };
    if (write_all(fd, &v, 1) != 0) {
        close(fd);
        mt_store_remove_file(j->store, name);
        return -1;
    }
    j->wfd = fd;
    j->wseg = seg;
    j->wsize = SEG_HDR;
    atomic_fetch_add(&j->c.written, SEG_HDR);
    return 0;
}

static int segment_exists(struct mt_journal *j, uint32_t seg)
{
    char name[64];
    seg_name(name, sizeof name, seg);
    int fd = mt_store_open_in(j->store, name, O_RDONLY);
    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

static struct mt_journal *journal_new(struct mt_store *s, int keep)
{
    struct mt_journal *j = mt_xcalloc(1, sizeof *j);
    j->store = s;
    j->keep = keep;
    j->wfd = j->rfd = -1;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    return j;
}

struct mt_journal *mt_journal_create(struct mt_store *s, uint64_t max_bytes, int keep,
                                     char *err, size_t errsz)
{
    struct mt_journal *j = journal_new(s, keep);
    j->max_bytes = max_bytes;
    j->buf = mt_xmalloc(CHUNK_HDR + MT_JOURNAL_CHUNK);
    j->blen = CHUNK_HDR;
    uint32_t seg = 1;
    if (mt_store_make_dir(s, MT_JOURNAL_DIR) != 0)
        goto fail;
    while (segment_exists(j, seg)) /* a resumed run's journal goes on after it */
        seg++;
    j->first_seg = j->rseg = seg;
    if (open_segment(j, seg) != 0)
        goto fail;
    return j;
fail:
    snprintf(err, errsz, "cannot create the journal in %s/%s: %s", s->dir, MT_JOURNAL_DIR,
             strerror(errno));
    mt_journal_destroy(j);
    return NULL;
}

struct mt_journal *mt_journal_open(struct mt_store *s, int keep)
{
    int fd = mt_store_open_in(s, MT_JOURNAL_DIR, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return NULL;
    close(fd);
    struct mt_journal *j = journal_new(s, keep);
    j->ended = 1; /* nobody writes it any more */
    j->first_seg = j->rseg = 1;
    return j;
}

void mt_journal_destroy(struct mt_journal *j)
{
    if (!j)
        return;
    if (j->wfd >= 0)
        close(j->wfd);
    if (j->rfd >= 0)
        close(j->rfd);
    free(j->buf);
    free(j->rbuf);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

struct mt_journal_counts *mt_journal_counts(struct mt_journal *j)
{
    return &j->c;
}

/* ---- the writer ---- */

static uint64_t live_bytes(struct mt_journal *j)
{
    return atomic_load(&j->c.written) + j->blen - atomic_load(&j->c.removed);
}

/* May a DATA record of `total` bytes go in?  -1 yes, else why not. */
static int admit(struct mt_journal *j, uint64_t total)
{
    if (j->max_bytes && live_bytes(j) + total > j->max_bytes)
        return MT_JDROP_CAP;
    uint64_t written = atomic_load(&j->c.written) + j->blen;
    if (j->wfd >= 0 &&
        (!j->space_checked_at || written - j->space_checked_at >= SPACE_CHECK_EVERY)) {
        struct statvfs sv;
        if (fstatvfs(j->wfd, &sv) == 0) {
            uint64_t size = (uint64_t)sv.f_blocks * sv.f_frsize;
            j->space_free = (uint64_t)sv.f_bavail * sv.f_frsize;
            j->space_reserve = size / 20 < MT_JOURNAL_RESERVE ? size / 20 : MT_JOURNAL_RESERVE;
        } else {
            j->space_free = UINT64_MAX / 2;
        }
        j->space_checked_at = written;
    }
    uint64_t since = written - j->space_checked_at;
    if (j->space_free < since + total + j->space_reserve)
        return MT_JDROP_SPACE;
    return -1;
}

static int is_data(uint32_t source, uint32_t meta)
{
    return source != 0 && MT_REC_KIND(meta) == MT_REC_DATA;
}

static void publish_counts(struct mt_journal *j)
{
    if (j->unpub_records)
        atomic_fetch_add(&j->c.records, j->unpub_records);
    if (j->unpub_data_records) {
        atomic_fetch_add(&j->c.data_records, j->unpub_data_records);
        atomic_fetch_add(&j->c.data_bytes, j->unpub_data_bytes);
    }
    j->unpub_records = j->unpub_data_records = j->unpub_data_bytes = 0;
}

static void count_drop(struct mt_journal *j, int why, uint64_t bytes)
{
    atomic_fetch_add(&j->c.dropped_records[why], 1);
    atomic_fetch_add(&j->c.dropped_bytes[why], bytes);
}

/* A chunk that could not be written: its DATA records are counted as
 * dropped and the rest (processes starting and ending, events) are kept
 * for one more try, so the run can still end in a true state. */
static void keep_only_control(struct mt_journal *j, int why)
{
    size_t in = CHUNK_HDR, out = CHUNK_HDR;
    uint32_t kept = 0;
    while (in < j->blen) {
        struct rec_hdr h;
        memcpy(&h, j->buf + in, sizeof h);
        size_t total = REC_HDR + (((size_t)h.len + 7) & ~(size_t)7);
        if (is_data(h.source, h.meta)) {
            count_drop(j, why, h.len);
            atomic_fetch_sub(&j->c.data_records, 1);
            atomic_fetch_sub(&j->c.data_bytes, h.len);
        } else {
            memmove(j->buf + out, j->buf + in, total);
            out += total;
            kept++;
        }
        atomic_fetch_sub(&j->c.records, 1);
        in += total;
    }
    j->blen = out;
    j->bcount = kept;
    atomic_fetch_add(&j->c.records, kept);
}

static int write_chunk_iov(struct mt_journal *j, struct iovec *v, int n, uint64_t len)
{
    if (j->wfd >= 0 && j->wsize > SEG_HDR && j->wsize + len > MT_JOURNAL_SEGMENT) {
        close(j->wfd); /* the reader sees the next segment: this one is whole */
        j->wfd = -1;
        if (open_segment(j, j->wseg + 1) != 0)
            return -1; /* tried again at the next chunk */
    }
    if (j->wfd < 0 && open_segment(j, j->wseg + 1) != 0)
        return -1;
    if (write_all(j->wfd, v, n) != 0) {
        int e = errno;
        if (ftruncate(j->wfd, (off_t)j->wsize) != 0)
            (void)0; /* the reader's checksum finds the torn chunk */
        errno = e;
        return -1;
    }
    j->wsize += len;
    atomic_fetch_add(&j->c.written, len);
    uint64_t live = atomic_load(&j->c.written) - atomic_load(&j->c.removed);
    if (live > atomic_load(&j->c.peak))
        atomic_store(&j->c.peak, live);
    return 0;
}

static void write_chunk(struct mt_journal *j)
{
    publish_counts(j); /* (keep_only_control takes back what it drops) */
    for (int attempt = 0; attempt < 2 && j->bcount; attempt++) {
        struct chunk_hdr h = { CHUNK_MAGIC, (uint32_t)(j->blen - CHUNK_HDR), j->bcount, 0 };
        h.crc = mt_crc32c(0, j->buf + CHUNK_HDR, h.len);
        memcpy(j->buf, &h, sizeof h);
        struct iovec v = { j->buf, j->blen };
        if (write_chunk_iov(j, &v, 1, j->blen) == 0)
            break;
        keep_only_control(j, errno == ENOSPC || errno == EDQUOT ? MT_JDROP_SPACE
                                                                 : MT_JDROP_WRITE);
        j->space_checked_at = 0; /* look at the free space again */
    }
    j->blen = CHUNK_HDR;
    j->bcount = 0;
}

int mt_journal_put(struct mt_journal *j, uint32_t source, uint32_t meta, uint64_t ts_ns,
                   const void *data, uint32_t len)
{
    uint64_t pad = ((uint64_t)len + 7) & ~(uint64_t)7;
    uint64_t total = REC_HDR + pad;
    int data_rec = is_data(source, meta);
    if (data_rec) {
        int why = admit(j, total);
        if (why >= 0) {
            count_drop(j, why, len);
            return -1;
        }
    }
    struct rec_hdr h = { ts_ns, len, meta, source, 0 };
    if (j->blen + total > CHUNK_HDR + MT_JOURNAL_CHUNK)
        write_chunk(j);
    if (CHUNK_HDR + total > CHUNK_HDR + MT_JOURNAL_CHUNK) {
        /* Larger than a chunk: a chunk of its own, straight from the ring. */
        static const char zeros[8];
        uint32_t crc = mt_crc32c(0, &h, sizeof h);
        crc = mt_crc32c(crc, data, len);
        crc = mt_crc32c(crc, zeros, pad - len);
        struct chunk_hdr c = { CHUNK_MAGIC, (uint32_t)total, 1, crc };
        struct iovec v[4] = { { &c, sizeof c }, { &h, sizeof h }, { (void *)data, len },
                              { (void *)zeros, pad - len } };
        if (write_chunk_iov(j, v, 4, CHUNK_HDR + total) != 0) {
            count_drop(j, errno == ENOSPC ? MT_JDROP_SPACE : MT_JDROP_WRITE, len);
            return -1;
        }
    } else {
        char *p = j->buf + j->blen;
        memcpy(p, &h, sizeof h);
        if (len)
            memcpy(p + REC_HDR, data, len);
        memset(p + REC_HDR + len, 0, pad - len);
        j->blen += total;
        j->bcount++;
    }
    j->unpub_records++;
    if (data_rec) {
        j->unpub_data_records++;
        j->unpub_data_bytes += len;
    }
    return 0;
}

static void wake(struct mt_journal *j, int end)
{
    pthread_mutex_lock(&j->mu);
    j->commits++;
    if (end)
        j->ended = 1;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

void mt_journal_commit(struct mt_journal *j)
{
    if (j->bcount)
        write_chunk(j);
    publish_counts(j); /* (a record larger than a chunk is not in the buffer) */
    wake(j, 0);
}

void mt_journal_end(struct mt_journal *j)
{
    mt_journal_put(j, 0, MT_JREC_END, 0, NULL, 0);
    if (j->bcount)
        write_chunk(j);
    publish_counts(j);
    wake(j, 1);
}

/* ---- the reader ---- */

int mt_journal_seek(struct mt_journal *j, struct mt_jpos at)
{
    if (j->rfd >= 0)
        close(j->rfd);
    j->rfd = -1;
    j->rleft = 0;
    if (at.seg) {
        j->rseg = at.seg;
        j->roff = at.off;
        if (!j->keep || at.seg < j->first_seg)
            j->first_seg = at.seg;
    } else {
        j->roff = 0;
        /* The oldest segment there is. */
        int dfd = mt_store_open_in(j->store, MT_JOURNAL_DIR, O_RDONLY | O_DIRECTORY);
        DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
        uint32_t oldest = 0;
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            char *end;
            unsigned long n = strtoul(e->d_name, &end, 10);
            if (end != e->d_name && strcmp(end, ".seg") == 0 && n && n < UINT32_MAX &&
                (!oldest || n < oldest))
                oldest = (uint32_t)n;
        }
        if (d)
            closedir(d);
        else if (dfd >= 0)
            close(dfd);
        if (oldest)
            j->rseg = j->first_seg = oldest;
    }
    j->rnext = j->roff;
    return 0;
}

static int writer_done(struct mt_journal *j)
{
    pthread_mutex_lock(&j->mu);
    int done = j->ended;
    pthread_mutex_unlock(&j->mu);
    return done;
}

int mt_journal_writer_done(const struct mt_journal *j)
{
    return writer_done((struct mt_journal *)j);
}

static ssize_t pread_all(int fd, void *buf, size_t n, uint64_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* Moves on to the next segment when this one is over.  1 moved, 0 not. */
static int next_segment(struct mt_journal *j)
{
    if (!segment_exists(j, j->rseg + 1))
        return 0;
    if (j->rfd >= 0)
        close(j->rfd);
    j->rfd = -1;
    j->rseg++;
    j->roff = j->rnext = 0;
    return 1;
}

/* Reads the next chunk whole: 1, 0 not there yet, -1 nothing more will come. */
static int load_chunk(struct mt_journal *j)
{
    for (;;) {
        /* Looked at before reading: a next segment means this one is whole. */
        int done = writer_done(j);
        int later = segment_exists(j, j->rseg + 1);
        if (j->rfd < 0) {
            char name[64];
            seg_name(name, sizeof name, j->rseg);
            j->rfd = mt_store_open_in(j->store, name, O_RDONLY);
            if (j->rfd < 0) {
                if (later && next_segment(j))
                    continue;
                return done ? -1 : 0;
            }
        }
        if (j->roff == 0) {
            char hdr[SEG_HDR];
            if (pread_all(j->rfd, hdr, SEG_HDR, 0) < (ssize_t)SEG_HDR ||
                memcmp(hdr, SEG_MAGIC, 8) != 0) {
                if (later && next_segment(j))
                    continue;
                return done ? -1 : 0;
            }
            j->roff = j->rnext = SEG_HDR;
        }
        struct chunk_hdr h;
        ssize_t n = pread_all(j->rfd, &h, sizeof h, j->roff);
        int whole = n == (ssize_t)sizeof h && h.magic == CHUNK_MAGIC && h.len >= REC_HDR &&
                    h.len <= MAX_CHUNK_PAYLOAD;
        if (whole) {
            if (j->rcap < h.len) {
                j->rcap = h.len < MT_JOURNAL_CHUNK ? MT_JOURNAL_CHUNK : h.len;
                free(j->rbuf);
                j->rbuf = mt_xmalloc(j->rcap);
            }
            whole = pread_all(j->rfd, j->rbuf, h.len, j->roff + sizeof h) == (ssize_t)h.len;
        }
        if (whole && mt_crc32c(0, j->rbuf, h.len) == h.crc) {
            j->rpos = 0;
            j->rlen = h.len;
            j->rleft = h.count;
            j->rnext = j->roff + sizeof h + h.len;
            return 1;
        }
        if (!whole && !later && !done)
            return 0; /* being written */
        /* Torn or damaged: what is left of this segment is skipped. */
        struct stat st;
        if (fstat(j->rfd, &st) == 0 && (uint64_t)st.st_size > j->roff)
            atomic_fetch_add(&j->c.damaged_bytes, (uint64_t)st.st_size - j->roff);
        if (later && next_segment(j))
            continue;
        j->roff = j->rnext = (fstat(j->rfd, &st) == 0) ? (uint64_t)st.st_size : j->roff;
        return done ? -1 : 0;
    }
}

int mt_journal_next(struct mt_journal *j, struct mt_jview *v, int *chunk_end)
{
    for (;;) {
        if (j->rleft) {
            struct rec_hdr h;
            if (j->rpos + REC_HDR > j->rlen)
                goto bad;
            memcpy(&h, j->rbuf + j->rpos, sizeof h);
            size_t total = REC_HDR + (((size_t)h.len + 7) & ~(size_t)7);
            if (j->rpos + total > j->rlen)
                goto bad;
            v->source = h.source;
            v->meta = h.meta;
            v->len = h.len;
            v->ts_ns = h.ts_ns;
            v->data = j->rbuf + j->rpos + REC_HDR;
            j->rpos += total;
            j->rleft--;
            *chunk_end = j->rleft == 0;
            if (*chunk_end)
                j->roff = j->rnext;
            atomic_fetch_add(&j->c.parsed_records, 1);
            if (h.source == 0 && h.meta == MT_JREC_END) {
                j->roff = j->rnext;
                j->rleft = 0;
                return -1;
            }
            return 1;
        bad: /* a record that does not fit its chunk: skip the chunk */
            atomic_fetch_add(&j->c.damaged_bytes, j->rlen - j->rpos);
            j->rleft = 0;
            j->roff = j->rnext;
            continue;
        }
        int rc = load_chunk(j);
        if (rc != 1)
            return rc;
    }
}

struct mt_jpos mt_journal_tell(const struct mt_journal *j)
{
    return (struct mt_jpos){ j->rseg, j->roff };
}

void mt_journal_wait(struct mt_journal *j, int timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_nsec += (long)timeout_ms * 1000000L;
    dl.tv_sec += dl.tv_nsec / 1000000000L;
    dl.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&j->mu);
    while (j->commits == j->seen && !j->ended)
        if (pthread_cond_timedwait(&j->cv, &j->mu, &dl) != 0)
            break;
    j->seen = j->commits;
    pthread_mutex_unlock(&j->mu);
}

static void remove_segment(struct mt_journal *j, uint32_t seg)
{
    char name[64];
    seg_name(name, sizeof name, seg);
    int fd = mt_store_open_in(j->store, name, O_RDONLY);
    if (fd < 0)
        return;
    struct stat st;
    uint64_t size = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    close(fd);
    if (mt_store_remove_file(j->store, name) == 0)
        atomic_fetch_add(&j->c.removed, size);
}

void mt_journal_release(struct mt_journal *j, struct mt_jpos upto)
{
    if (j->keep)
        return;
    while (j->first_seg < upto.seg)
        remove_segment(j, j->first_seg++);
}

void mt_journal_remove(struct mt_journal *j)
{
    if (j->keep)
        return;
    if (j->rfd >= 0)
        close(j->rfd);
    j->rfd = -1;
    uint32_t last = j->wseg > j->rseg ? j->wseg : j->rseg;
    for (uint32_t s = j->first_seg; s <= last + 1; s++)
        remove_segment(j, s);
    mt_store_remove_file(j->store, MT_JOURNAL_DIR "/checkpoint");
    mt_store_remove_file(j->store, MT_JOURNAL_DIR "/meta");
    mt_store_remove_dir(j->store, MT_JOURNAL_DIR);
}
