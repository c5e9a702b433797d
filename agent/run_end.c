/* The end of a run, once everything that reached the journal was parsed: the
 * counts of what was dropped and why, the finish event, summary.json, run.json
 * and the index row.  The agent writes it (main.c), and so does the recovery
 * of a run whose agent died (recover.c). */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "../common/mt_buf.h"
#include "mt_agent.h"
#include "mt_journal.h"

/* run.json's capture_counts.dropped_reasons keys. */
const char *const mt_drop_reason_key[MT_DROP_N] = {
    [MT_DROP_RING_FULL] = "capture ring full",
    [MT_DROP_SHM_FULL] = "/dev/shm full",
    [MT_DROP_DIED] = "process died while writing",
    [MT_DROP_JOURNAL_FULL] = "journal full",
    [MT_DROP_DISK_FULL] = "disk full",
    [MT_DROP_JOURNAL_WRITE] = "journal write failed",
};

void mt_run_count_drop(struct mt_agent *a, int reason, uint64_t records, uint64_t bytes)
{
    a->dropped_records += records;
    a->dropped_bytes += bytes;
    a->drop_reasons[reason] += records;
    a->drop_reason_bytes[reason] += bytes;
}

/* Records of the journal that failed their checksum (a torn end). */
static void journal_damage(struct mt_agent *a, double now)
{
    if (!a->journal)
        return;
    uint64_t damaged = atomic_load(&mt_journal_counts(a->journal)->damaged_bytes);
    if (damaged) {
        char fields[128];
        snprintf(fields, sizeof fields, "\"bytes\":%llu", (unsigned long long)damaged);
        mt_store_event(&a->store, now, "journal_damaged", fields);
    }
}

void mt_run_write_end(struct mt_agent *a, double now)
{
    journal_damage(a, now);
    mt_run_decide_state(a);
    struct mt_parse_stats st;
    mt_parse_stats(a->parse, &st);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    struct mt_journal_counts *jc = a->journal ? mt_journal_counts(a->journal) : NULL;
    struct mt_buf f;
    mt_buf_init(&f, 1 << 16);
    mt_buf_printf(&f,
                  "\"state\":\"%s\",\"exit_code\":%d,\"signal\":%d,\"rows\":%llu,\"lines\":%llu,"
                  "\"lines_truncated\":%llu,\"keys_dropped\":%llu,\"dropped_records\":%llu,"
                  "\"dropped_bytes\":%llu,\"write_errors\":%llu,\"lines_lost_write\":%llu,"
                  "\"stdout_bytes\":%llu,\"stderr_bytes\":%llu,\"agent_max_rss_kb\":%ld,"
                  "\"agent_cpu_s\":%.3f",
                  a->state, a->exit_code, a->exit_signal,
                  (unsigned long long)(st.rows + a->rows_offset),
                  (unsigned long long)(st.lines + a->lines_offset),
                  (unsigned long long)st.lines_truncated, (unsigned long long)st.keys_dropped,
                  (unsigned long long)a->dropped_records, (unsigned long long)a->dropped_bytes,
                  (unsigned long long)a->store.write_errors,
                  (unsigned long long)a->store.lines_lost,
                  (unsigned long long)a->stream_bytes[1], (unsigned long long)a->stream_bytes[2],
                  ru.ru_maxrss,
                  (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                      (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
    if (jc && !a->recovering)
        mt_buf_printf(&f,
                      ",\"journal_records\":%llu,\"journal_bytes\":%llu,"
                      "\"journal_peak_bytes\":%llu,\"drain_cpu_s\":%.3f,\"parse_cpu_s\":%.3f",
                      (unsigned long long)atomic_load(&jc->records),
                      (unsigned long long)atomic_load(&jc->written),
                      (unsigned long long)atomic_load(&jc->peak), a->drain_cpu_s,
                      a->parse_cpu_s);
    if (a->outlived)
        mt_buf_printf(&f, ",\"processes_outlived\":%llu", (unsigned long long)a->outlived);
    if (a->recovering)
        mt_buf_adds(&f, ",\"recovered\":true");
    { /* parse: the rules in force and what their limits stopped */
        struct mt_buf pf;
        mt_buf_init(&pf, 4096);
        mt_buf_adds(&pf, "\"rules\":");
        mt_buf_json_string(&pf, mt_parse_rules(a->parse), strlen(mt_parse_rules(a->parse)));
        mt_buf_printf(&pf, ",\"limit_hits\":%llu,\"streams_dropped\":%llu",
                      (unsigned long long)st.limit_hits, (unsigned long long)st.streams_dropped);
        mt_store_event(&a->store, now, "parse", pf.data);
        mt_buf_free(&pf);
    }
    /* The finish event comes last: readers take it to mean all is written.
     * The journal goes before run.json: on a full disk its room is what
     * run.json needs. */
    mt_store_flush(&a->store);
    mt_run_write_summary(a);
    if (a->journal)
        mt_journal_remove(a->journal);
    if (mt_run_write_json(a) != 0)
        mt_store_event(&a->store, now, "run_json_error", "\"message\":\"cannot write run.json\"");
    mt_run_update_index(a);
    mt_run_index_settle(a, 1.0); /* the last row, or index_pending saying why not */
    mt_store_event(&a->store, now, "finish", f.data);
    mt_store_flush(&a->store);
    mt_buf_free(&f);
}
