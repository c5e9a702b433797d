/* mt_recover: finishing a run whose agent is gone (killed, out of memory, the
 * machine rebooted).  The agent holds <run>/.agent.lock for its life
 * (mt_store_agent_alive); a run still "running" whose lock nobody holds is
 * finished here: its journal is parsed from the last checkpoint to its end
 * (parse_stage.c), and the run gets the state its records prove: the exit
 * status the journal holds, else the one the caller knows (`metrictap run`
 * saw its child end), else `lost`.  Used by `metrictap recover`, and by
 * `sync`, `show` and `reindex` for the runs they touch. */
#ifndef MT_RECOVER_H
#define MT_RECOVER_H

#include <stddef.h>

struct mt_agent;

struct mt_recover_opts {
    int have_status;      /* the caller saw the program end: */
    int exit_code;        /* -1 none */
    int exit_signal;      /* 0 none */
};

enum mt_recover_result {
    MT_RECOVER_NOTHING = 0, /* the run is complete (or still being written: busy) */
    MT_RECOVER_DONE = 1,    /* it was finished here: msg says how */
    MT_RECOVER_BUSY = 2,    /* its agent (or another recovery) is at work */
    MT_RECOVER_ERROR = -1,
};

/* Finishes the run in `run_dir` if its agent is gone.  msg: one line. */
int mt_recover_run(const char *run_dir, const struct mt_recover_opts *o, char *msg,
                   size_t msgsz);

/* For views that only read (`ls`): the state to show for a run whose
 * run.json says `state`: "running" stays while its agent lives; once the
 * agent is gone, the finish event's state if events.jsonl has one, else
 * "lost".  Returns `state` or a static string. */
const char *mt_recover_state_to_show(const char *run_dir, const char *state);

/* Written by the agent at the start: <run>/journal/meta, what a recovery
 * needs to parse the journal as the agent would have (the run's start
 * clocks, its command, its directory and the METRICTAP_* / WANDB_* settings
 * its config came from, secrets left out).  0 or -1. */
int mt_recover_write_meta(struct mt_agent *a);

#endif
