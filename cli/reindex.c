/* metrictap reindex: rebuilds the index from the run directories. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../common/mt_index.h"
#include "../config/mt_config.h"
#include "mt_cli.h"

/* Names each run directory left out, so a damaged run.json is found. */
static void say_skipped(void *ctx, const char *dir, const char *why)
{
    (void)ctx;
    fprintf(stderr, "metrictap: skipped %s: %s\n", dir, why);
}

int mt_cmd_reindex(int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        fprintf(stderr, "usage: metrictap reindex\n");
        return 2;
    }
    struct mt_config cfg;
    mt_cli_load_config(&cfg);
    int rc = 1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    mt_cli_settle_store(cfg.dir, 0); /* runs whose agent died get their end first */
    struct mt_index *ix = mt_cli_open_index(&cfg);
    if (!ix)
        goto out;
    mt_index_on_skipped(ix, say_skipped, NULL);
    struct mt_index_sync_stats st;
    /* From scratch: every row is made again from the run directories; an
     * index found damaged on the way is moved aside and made anew. */
    int failed = mt_index_reindex(ix, &st) != 0;
    char err[1024];
    if (failed && mt_index_damaged(ix)) {
        failed = mt_index_recover(ix, err, sizeof err) != 0;
        if (!failed)
            fprintf(stderr, "metrictap: %s\n", mt_index_notice(ix));
        failed = failed || mt_index_reindex(ix, &st) != 0;
    }
    if (failed) {
        fprintf(stderr, "metrictap: reindex of %s failed: %s\n", cfg.dir, mt_index_error(ix));
        goto out;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "metrictap: indexed %zu runs in %zu projects in %.2fs", st.added,
            st.projects_scanned, (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    if (st.unreadable)
        fprintf(stderr, "; %zu run directories without a readable run.json were skipped",
                st.unreadable);
    fputc('\n', stderr);
    rc = 0;
out:
    mt_index_close(ix);
    mt_config_free(&cfg);
    return rc;
}
