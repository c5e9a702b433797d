/* mt_spawn: starting a run's agent.  Shared by the shim (a program run under
 * bare LD_PRELOAD starts its own agent) and `metrictap run`.  Uses only libc,
 * allocates only through the caller's buffers, and never leaves a child of the
 * caller behind: the agent double-forks, and the intermediate process is reaped
 * here before returning. */
#ifndef MT_SPAWN_H
#define MT_SPAWN_H

#include <stddef.h>

struct mt_agent_answer {
    char channel[512];  /* the run's channel directory */
    char run_id[64];
    char run_dir[1024];
    char error[512];    /* why the run is not tracked, on failure */
};

/* Starts `agent_path` with `argv` (argv[0] first, NULL-terminated; this adds
 * "--status-fd 3" after argv[0]) and `envp`, and waits up to `timeout_ms` for its answer.
 * Returns 0 when the agent is running, -1 with ans->error set otherwise. */
int mt_agent_start(const char *agent_path, char *const argv[], char *const envp[],
                   int timeout_ms, struct mt_agent_answer *ans);

/* Agent side: the answer line it writes on the status fd. */
#define MT_ANSWER_OK  "OK"
#define MT_ANSWER_ERR "ERR"

#endif
