/* The agent's stack service and stall watchdog (stack_agent.c). */
#ifndef MT_STACK_AGENT_H
#define MT_STACK_AGENT_H

/* In the run directory while the run is stalled (ls and show mark it);
 * holds the unix time the silence began. */
#define MT_STALLED_MARKER "stalled"

struct mt_agent;

/* Starts the thread that answers `metrictap stack` through the channel
 * directory; before the parse stage starts (which reads a->stack). */
void mt_stack_agent_start(struct mt_agent *a);
/* After the parse stage stopped: joins the thread, removes the marker. */
void mt_stack_agent_stop(struct mt_agent *a);
/* 1 when the run in run_dir is marked stalled (for ls and show, which
 * check that its agent is alive). */
int mt_stack_stalled(const char *run_dir);
/* The watchdog, from the parse stage's periodic work. */
void mt_stack_watch_tick(struct mt_agent *a, double now);

#endif
