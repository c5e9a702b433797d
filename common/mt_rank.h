/* mt_rank: which rank of a distributed job a process is, and the rendezvous
 * that lets the ranks of one job on one host share a run.  libc only: the shim
 * and `metrictap run` both use it.
 *
 * Rank and world size come from RANK/WORLD_SIZE (torchrun), OMPI_COMM_WORLD_*
 * (Open MPI), PMI_RANK/PMI_SIZE (MPICH, Intel MPI), SLURM_PROCID/SLURM_NTASKS.
 * The group is METRICTAP_GROUP, else WANDB_RUN_GROUP, SLURM_JOB_ID or
 * TORCHELASTIC_RUN_ID.  With METRICTAP_RANKS=zero (default) or all, the ranks
 * of a group on one host join one run: the first to arrive starts its agent
 * and leaves the answer in a rendezvous directory; the others join that
 * channel.  The directory and its answer are read only once checked to be the
 * user's own, an answer is taken only when well formed and its channel the
 * user's (mt_channel_map_ctl), and an ERR answer's text is never repeated.  With per-rank, each rank has a run of its own in the group. */
#ifndef MT_RANK_H
#define MT_RANK_H

#include "mt_spawn.h"

struct mt_rank_info {
    int rank;           /* -1: not a distributed job */
    int world_size;     /* -1: unknown */
    char group[128];    /* "" when none */
    char mode[16];      /* zero | all | per-rank */
};

void mt_rank_from_env(struct mt_rank_info *ri);

/* Does this process share a run with the other ranks of its group? */
int mt_rank_shares_run(const struct mt_rank_info *ri);

/* The rendezvous directory for a group (per user and project), in a place
 * private to the user: $XDG_RUNTIME_DIR/metrictap when that is the user's and
 * private, else /dev/shm/metrictap-<uid>, else /tmp/metrictap-<uid> (made
 * 0700 and checked; one another user made first is passed over).  0, or -1
 * with err set when there is no such place. */
int mt_rank_rendezvous_dir(const struct mt_rank_info *ri, const char *project, char *out,
                           unsigned long size, char *err, unsigned long errsz);

/* Removes a meeting place (its answer, then itself) if it is ours. */
void mt_rank_remove_place(const char *dir);

typedef int (*mt_rank_start_fn)(void *ctx, struct mt_agent_answer *ans);

/* Joins the group's run, or starts it through start() when first.  Sets
 * *leader to 1 when this process started it.  Returns 0 or -1 (ans->error). */
int mt_rank_rendezvous(const char *dir, mt_rank_start_fn start, void *ctx, int timeout_ms,
                       struct mt_agent_answer *ans, int *leader);

#endif
