/* The sink the parsers write through: console lines to output.log, rows to
 * history.jsonl, notices to events.jsonl.  Shared by the agent and the
 * recovery of a dead agent's run. */
#include <stdio.h>
#include <string.h>

#include "mt_agent.h"

static void on_console(void *ctx, uint32_t pid, int stream, const char *line, size_t len,
                       int newline)
{
    struct mt_agent *a = ctx;
    (void)pid;
    if (stream == MT_PARSE_FILE)
        return; /* watched files are not console output */
    mt_store_write(&a->store, a->store.output, a->console_label, strlen(a->console_label), line,
                   len, newline);
}

static void drop_row(void *ctx, const char *json, size_t len)
{
    (void)ctx, (void)json, (void)len;
}

/* Which parser sees a ring's output, and the label its lines get in
 * output.log when the run holds several ranks. */
mt_parse *mt_parser_for_ring(struct mt_agent *a, const struct mt_ring_header *r)
{
    int multi = r->rank >= 0 && r->world_size > 1 && strcmp(a->cfg.ranks, "per-rank") != 0;
    a->console_label[0] = '\0';
    if (!multi)
        return a->parse;
    snprintf(a->console_label, sizeof a->console_label, "[rank %d] ", r->rank);
    if (r->rank == 0 || strcmp(a->cfg.ranks, "zero") != 0)
        return a->parse;
    if (!a->parse_console) {
        char err[256];
        struct mt_parse_opts po = { .cfg = &a->cfg, .program = a->program,
                                    .start_unix = a->start_unix };
        struct mt_parse_sink sink = { .ctx = a, .console = on_console, .row = drop_row,
                                      .event = drop_row };
        a->parse_console = mt_parse_create(&po, &sink, err, sizeof err);
    }
    return a->parse_console ? a->parse_console : a->parse;
}

/* How many run.json rewrites a row may wait for: a metric's step_metric must
 * be in run.json before any row of it is (the uploaders read both), and new
 * metrics come in the first rows; past this many, the parse stage rewrites
 * it at its next periodic pass, before the rows are flushed but without a
 * guarantee. */
#define METRIC_DEFS_SYNC 256

static void on_row(void *ctx, const char *json, size_t len)
{
    struct mt_agent *a = ctx;
    uint64_t gen = a->parse ? mt_parse_metrics_gen(a->parse) : 0;
    if (gen != a->metrics_gen_written) {
        if (a->metric_defs_written < METRIC_DEFS_SYNC) {
            a->metric_defs_written++;
            mt_run_write_json(a);
        } else {
            a->run_json_dirty = 1;
        }
    }
    mt_store_append(&a->store, a->store.history, json, len);
}

static void on_event(void *ctx, const char *json, size_t len)
{
    struct mt_agent *a = ctx;
    mt_store_append(&a->store, a->store.events, json, len);
}

/* The trainer behind a process's lines (proctree.c). */
static const char *on_program_of(void *ctx, uint32_t pid)
{
    return mt_proctree_program_of(ctx, pid);
}

static char *const *on_argv_of(void *ctx, uint32_t pid, int *argc)
{
    return mt_proctree_argv_of(ctx, pid, argc);
}

static void on_metrics_from(void *ctx, uint32_t pid, int stream, const char *path)
{
    (void)stream, (void)path;
    mt_proctree_metrics_from(ctx, pid);
}

struct mt_parse_sink mt_agent_sink(struct mt_agent *a)
{
    struct mt_parse_sink sink = { .ctx = a, .console = on_console, .row = on_row,
                                  .event = on_event, .program_of = on_program_of,
                                  .argv_of = on_argv_of, .metrics_from = on_metrics_from };
    return sink;
}
