/* The journal (agent/journal.c): records come back as they went in, with
 * their kinds untouched; a damaged chunk is skipped and counted, not
 * followed; the cap drops DATA records, counted, and keeps the others. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "../../agent/mt_journal.h"
#include "../../agent/mt_store.h"
#include "../../common/mt_ring.h"
#include "mt_test.h"

static char root[64];

static void open_store(struct mt_store *s)
{
    snprintf(root, sizeof root, "/tmp/mt-journal-test.XXXXXX");
    if (!mkdtemp(root))
        abort();
    int exists = 0;
    char err[256];
    if (mt_store_open(s, root, "p", "r1", &exists, err, sizeof err) != 0)
        abort();
}

static void remove_store(struct mt_store *s)
{
    char cmd[128];
    mt_store_close(s);
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd) != 0)
        abort();
}

MT_TEST(records_come_back_in_order_with_every_kind)
{
    struct mt_store s;
    open_store(&s);
    char err[256];
    struct mt_journal *j = mt_journal_create(&s, 0, 0, err, sizeof err);
    MT_CHECK(j != NULL);
    char line[64];
    for (int i = 0; i < 100000; i++) {
        int n = snprintf(line, sizeof line, "step %d loss=0.5\n", i);
        MT_CHECK(mt_journal_put(j, 1, MT_REC_META(MT_REC_DATA, 1, 7), (uint64_t)i, line,
                                (uint32_t)n) == 0);
    }
    /* A kind the journal has never heard of goes through as it is. */
    MT_CHECK(mt_journal_put(j, 1, MT_REC_META(13, 0, 99), 5, "x", 1) == 0);
    mt_journal_end(j);
    mt_journal_seek(j, (struct mt_jpos){ 0, 0 });
    struct mt_jview v;
    int end, i = 0, odd = 0, rc;
    while ((rc = mt_journal_next(j, &v, &end)) == 1) {
        if (MT_REC_KIND(v.meta) == 13) {
            odd = v.len == 1 && MT_REC_AUX(v.meta) == 99;
            continue;
        }
        int n = snprintf(line, sizeof line, "step %d loss=0.5\n", i);
        MT_CHECK(v.len == (uint32_t)n && memcmp(v.data, line, (size_t)n) == 0);
        MT_CHECK(v.ts_ns == (uint64_t)i && v.source == 1 && MT_REC_AUX(v.meta) == 7);
        i++;
    }
    MT_CHECK(rc == -1 && i == 100000 && odd);
    mt_journal_destroy(j);
    remove_store(&s);
}

MT_TEST(a_damaged_chunk_is_skipped_and_counted)
{
    struct mt_store s;
    open_store(&s);
    char err[256];
    struct mt_journal *j = mt_journal_create(&s, 0, 0, err, sizeof err);
    MT_CHECK(mt_journal_put(j, 1, MT_REC_META(MT_REC_DATA, 1, 0), 1, "first\n", 6) == 0);
    mt_journal_commit(j);
    MT_CHECK(mt_journal_put(j, 1, MT_REC_META(MT_REC_DATA, 1, 0), 2, "second\n", 7) == 0);
    mt_journal_commit(j);
    mt_journal_destroy(j);
    /* Flip a byte of the second chunk's payload. */
    char path[256];
    snprintf(path, sizeof path, "%s/runs/p/r1/journal/00000001.seg", root);
    int fd = open(path, O_RDWR);
    struct stat st;
    MT_CHECK(fd >= 0 && fstat(fd, &st) == 0);
    char c = 'X';
    MT_CHECK(pwrite(fd, &c, 1, st.st_size - 3) == 1);
    close(fd);
    j = mt_journal_open(&s, 0);
    MT_CHECK(j != NULL);
    mt_journal_seek(j, (struct mt_jpos){ 0, 0 });
    struct mt_jview v;
    int end;
    MT_CHECK(mt_journal_next(j, &v, &end) == 1 && v.len == 6);
    MT_CHECK(mt_journal_next(j, &v, &end) == -1);
    MT_CHECK(atomic_load(&mt_journal_counts(j)->damaged_bytes) > 0);
    mt_journal_destroy(j);
    remove_store(&s);
}

MT_TEST(past_the_cap_data_is_dropped_and_counted_and_ends_are_kept)
{
    struct mt_store s;
    open_store(&s);
    char err[256];
    struct mt_journal *j = mt_journal_create(&s, 1 << 20, 0, err, sizeof err);
    static char block[4096];
    int dropped = 0;
    for (int i = 0; i < 1000; i++)
        dropped += mt_journal_put(j, 1, MT_REC_META(MT_REC_DATA, 1, 0), 1, block,
                                  sizeof block) != 0;
    MT_CHECK(dropped > 700);
    MT_CHECK(mt_journal_put(j, 1, MT_REC_META(MT_REC_EXIT, 0, 3), 2, NULL, 0) == 0);
    struct mt_journal_counts *c = mt_journal_counts(j);
    MT_CHECK(atomic_load(&c->dropped_records[MT_JDROP_CAP]) == (uint64_t)dropped);
    MT_CHECK(atomic_load(&c->dropped_bytes[MT_JDROP_CAP]) == (uint64_t)dropped * sizeof block);
    mt_journal_end(j);
    mt_journal_seek(j, (struct mt_jpos){ 0, 0 });
    struct mt_jview v;
    int end, data = 0, exits = 0;
    while (mt_journal_next(j, &v, &end) == 1) {
        data += MT_REC_KIND(v.meta) == MT_REC_DATA;
        exits += MT_REC_KIND(v.meta) == MT_REC_EXIT && MT_REC_AUX(v.meta) == 3;
    }
    MT_CHECK(data == 1000 - dropped && exits == 1);
    mt_journal_destroy(j);
    remove_store(&s);
}

MT_TEST(crc32c_matches_the_standard_check_value)
{
    MT_CHECK(mt_crc32c(0, "123456789", 9) == 0xe3069283u);
}

int main(void)
{
    return mt_test_main();
}
