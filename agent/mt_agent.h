/* The agent's state for one run, shared by the files of agent/ that make up
 * the collector (rings), the run record (run.json, index, states) and main. */
#ifndef MT_AGENT_H
#define MT_AGENT_H

/* Records one mt_collector_drain takes at most, so the loop's other duties
 * run; a drain that takes fewer has caught up with the producers. */
#define MT_DRAIN_BUDGET 65536

#include <stdint.h>
#include <sys/types.h>

#include "../common/mt_channel.h"
#include "../common/mt_index.h"
#include "../common/mt_ring.h"
#include "../config/mt_config.h"
#include "../parsers/mt_parse.h"
#include "mt_meta.h"
#include "mt_store.h"

struct cJSON;
struct mt_sys_thread;
struct mt_tail; /* mt_tail.h: watched files */
struct mt_indexer;
struct mt_journal;      /* mt_journal.h: persist, then parse */
struct mt_parse_stage;  /* parse_stage.c */
struct mt_uploader;

struct mt_ring_slot {
    char name[64];
    struct mt_ring_header *ring;
    size_t size;
    uint32_t pid;
    int pidfd;          /* -1: not opened */
    int dead;           /* the process is gone */
    int superseded;     /* a newer image of the same pid has its own ring */
    int corrupt;
    int has_view;       /* `view` holds the next record, peeked not consumed */
    struct mt_rec_view view;
    uint64_t seen_drop_records, seen_drop_bytes, seen_drop_unbacked;
    uint64_t seen_elsewhere[MT_ELSEWHERE_KINDS];
    uint64_t created_ns;
    uint32_t source;    /* its id in the journal (mt_journal.h) */
};

/* A process whose end the run waits for: the root (the program, or the
 * launcher), and the root of each other rank that joined the run. */
struct mt_primary {
    pid_t pid;
    int pidfd;
    int launcher;   /* its exit record is its end */
    int rank;
    int done;
    int have_end, exit_code, exit_signal;
};

struct mt_agent {
    struct mt_config cfg;
    struct mt_store store;
    struct mt_indexer *indexer; /* the run's row in index.sqlite (mt_indexer.h) */
    mt_parse *parse;
    /* Output of ranks other than 0 when only rank 0 is parsed (ranks: zero):
     * its lines reach output.log, its rows are dropped. */
    mt_parse *parse_console;
    char console_label[32]; /* "[rank N] " while a rank's output is fed */

    char id[16];
    char *project, *name, *channel;
    char **command;       /* the program's command line */
    int ncommand;
    char *program;        /* basename of the program */
    char *cwd;
    char *group;          /* --group, else the cluster's (SLURM / torchelastic) */
    struct mt_meta_cluster cluster;
    struct cJSON *meta;   /* metadata: git, binary, cluster, host; owned */
    struct mt_sys_thread *sys;
    int resumed;          /* how many times this run was resumed */
    double created_unix;  /* first start of the run (earlier when resumed) */
    double end_unix;      /* set with the final state */
    char *written_name, *written_tags; /* as last written to run.json */
    struct cJSON *prev_config; /* config recorded before a resume, carried over */
    double runtime_offset;
    uint64_t first_step;

    pid_t root_pid;       /* its end ends the run (the program, or the launcher) */
    struct mt_primary primaries[256];
    size_t nprimaries;
    char *rendezvous;     /* the ranks' rendezvous directory, removed at the end */
    int root_pidfd;
    int launcher;         /* started by `metrictap run` */

    double start_unix;
    uint64_t start_mono_ns;

    struct mt_ctl *ctl;
    int inotify_fd;
    struct mt_ring_slot *rings;
    size_t nrings, cap_rings;
    struct mt_tail *tail;

    /* what ended the run */
    int have_end;
    int exit_code;        /* -1 none */
    int exit_signal;      /* 0 none */
    const char *state;

    /* who wrote what (procstats.c) */
    struct mt_procstat *procs;
    size_t nprocs, cap_procs, last_proc;
    uint64_t procs_untracked;

    /* the processes the shims described (proctree.c) and the trainer */
    struct mt_proc *proctree;
    size_t nproctree, cap_proctree;
    uint64_t proctree_seq, proctree_dropped;
    uint32_t trainer_pid;
    uint64_t trainer_seq; /* its image (proctree.c): 0 none yet */
    int trainer_fixed;    /* chosen by its first metric: final */
    char *trainer_command;
    int run_json_dirty;   /* run.json and the index want rewriting */
    uint64_t metrics_gen_written; /* mt_parse_metrics_gen when run.json was written */
    unsigned metric_defs_written; /* run.json rewrites made for new metrics (on_row) */

    /* counters for run.json and events */
    uint64_t elsewhere_bytes[MT_ELSEWHERE_KINDS]; /* fds 1/2 that were not the console */
    uint64_t stream_bytes[4];
    uint64_t dropped_records, dropped_bytes;
    double last_data_unix;

    /* persist, then parse (journal.c, parse_stage.c) */
    struct mt_journal *journal;
    struct mt_parse_stage *stage;
#define MT_AGENT_UPLOADERS 8
    struct mt_uploader *uploaders[MT_AGENT_UPLOADERS]; /* one per backend (main.c) */
    int nuploaders;
    uint32_t nsources;     /* journal source ids handed out */
    int agent_lock;        /* <run>/.agent.lock, held for the agent's life */
    int recovering;        /* parsing a dead agent's journal (recover.c) */
    /* The last process of the run to end with a record: a root that left
     * none (daemon(), whose parent _exits inside libc) takes its state. */
    int last_have_end, last_exit_code, last_exit_signal;
    uint64_t drop_reasons[8]; /* dropped records by reason (MT_DROP_*) */
    uint64_t drop_reason_bytes[8];
    uint64_t outlived;     /* processes still running when the capture stopped */
    uint64_t lines_offset, rows_offset; /* counted before a recovery's checkpoint */
    uint64_t data_records; /* writes of the program that were parsed */
    double drain_cpu_s, parse_cpu_s; /* each stage's own CPU time, for the bench */
    uint64_t journal_drops_told[4], journal_drop_bytes_told[4]; /* the drain's */
    struct mt_stack_agent *stack; /* `metrictap stack` and the stall watchdog */
};

/* Why records were dropped, for run.json's capture_counts.dropped_reasons. */
enum { MT_DROP_RING_FULL, MT_DROP_SHM_FULL, MT_DROP_DIED, MT_DROP_JOURNAL_FULL,
       MT_DROP_DISK_FULL, MT_DROP_JOURNAL_WRITE, MT_DROP_N };
extern const char *const mt_drop_reason_key[MT_DROP_N];

/* sink.c: what the run's parser writes through */
struct mt_parse_sink mt_agent_sink(struct mt_agent *a);

/* collector.c */
int mt_collector_open(struct mt_agent *a, char *err, size_t errsz);
mt_parse *mt_parser_for_ring(struct mt_agent *a, const struct mt_ring_header *r);
void mt_collector_scan(struct mt_agent *a);
size_t mt_collector_drain(struct mt_agent *a);  /* records handled */
void mt_collector_reap(struct mt_agent *a);     /* notices dead processes */
int mt_collector_all_done(const struct mt_agent *a);
struct mt_primary *mt_primary_add(struct mt_agent *a, pid_t pid, int launcher, int rank);
int mt_primaries_done(struct mt_agent *a);
uint64_t mt_collector_pending(const struct mt_agent *a);
/* Bytes waiting in the fullest ring. */
uint64_t mt_collector_fullest(const struct mt_agent *a);
void mt_collector_close(struct mt_agent *a);
/* What the agent does with one record, on the parse stage's thread. */
void mt_collector_handle(struct mt_agent *a, struct mt_ring_slot *s, const struct mt_rec_view *v);
/* The journal's own drops (its cap, a full disk) as dropped events. */
void mt_collector_report_journal_drops(struct mt_agent *a);
/* A process's EXIT or SIGNAL record went by (the drain; recovery's parse). */
void mt_collector_note_end(struct mt_agent *a, uint32_t pid, uint32_t kind, uint32_t aux);

/* parse_stage.c: the journal read back on a thread of its own */
int mt_parse_stage_start(struct mt_agent *a, char *err, size_t errsz);
void mt_parse_stage_stop(struct mt_agent *a);  /* parses to the END, joins */
/* Parses the journal from where it is until nothing more is there (the
 * recovery of a dead agent's run, on the caller's thread). */
void mt_parse_stage_run_to_end(struct mt_agent *a);
/* Restores the state the last checkpoint recorded (counters, ends, sources;
 * cuts the store's files back and seeks the journal there): 0, or -1 if
 * there is none.  Sets a->first_step for the parser to be made, which then
 * gets the checkpoint's begun lines with mt_parse_stage_refeed. */
int mt_parse_stage_restore(struct mt_agent *a);
void mt_parse_stage_refeed(struct mt_agent *a);
/* Records written to the journal and read back, for the progress line. */
void mt_parse_stage_progress(struct mt_agent *a, uint64_t *parsed, uint64_t *total);
int mt_pid_is_dead(int pidfd, pid_t pid);

/* proctree.c */
struct mt_proc;
void mt_proctree_image(struct mt_agent *a, uint32_t pid, const char *exe, const char *data,
                       size_t len);
void mt_proctree_fds(struct mt_agent *a, uint32_t pid, const char *data, size_t len);
/* The program whose preset parses pid's lines (its trainer's, through relays). */
const char *mt_proctree_program_of(struct mt_agent *a, uint32_t pid);
/* Its command line (NULL: a shell, relay or unknown process). */
char *const *mt_proctree_argv_of(struct mt_agent *a, uint32_t pid, int *argc);
/* pid's lines gave the run's first metric: its trainer becomes the run's. */
void mt_proctree_metrics_from(struct mt_agent *a, uint32_t pid);
/* No metric yet: the first process that is not a wrapper is the trainer. */
void mt_proctree_settle(struct mt_agent *a);
int mt_program_is_wrapper(const char *program);
void mt_proctree_free(struct mt_agent *a);

/* procstats.c */
struct mt_procstat;
void mt_procstats_add(struct mt_agent *a, uint32_t pid, const char *exe, int stream,
                      uint32_t tid, uint32_t len);
/* A not_console event's fields (collector.c): bytes a process wrote to fd 1
 * or 2 when it was not the console, by kind, into its counts and the run's. */
void mt_procstats_not_console(struct mt_agent *a, const char *fields_json);
struct cJSON *mt_procstats_json(const struct mt_agent *a);
void mt_procstats_free(struct mt_agent *a);

/* untracked.c: a process of the run became another user (MT_REC_USER) */
void mt_untracked_user(struct mt_agent *a, uint32_t pid, const char *exe,
                       const struct mt_rec_view *v);

/* meta.c */
void mt_run_collect_metadata(struct mt_agent *a);
void mt_run_start_system_metrics(struct mt_agent *a);
void mt_run_stop_system_metrics(struct mt_agent *a);

/* run.c */
double mt_now_unix(void);
uint64_t mt_now_mono_ns(void);
double mt_agent_unix_of(const struct mt_agent *a, uint64_t mono_ns);
void mt_run_make_id(char out[16]);
int mt_run_write_json(struct mt_agent *a);
void mt_run_write_summary(struct mt_agent *a);
void mt_run_update_index(struct mt_agent *a);   /* posts the row to the index thread */
void mt_run_index_settle(struct mt_agent *a, double timeout_s); /* waits; tells if it cannot */
void mt_run_decide_state(struct mt_agent *a);
/* run_end.c: the run's last records (parse counts, drops, finish event,
 * summary, run.json, index), once everything was parsed. */
void mt_run_write_end(struct mt_agent *a, double now);
void mt_run_count_drop(struct mt_agent *a, int reason, uint64_t records, uint64_t bytes);

#endif
