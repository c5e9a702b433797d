/* mt_stack: native stacks of live processes, with libunwind's remote
 * unwinder (libunwind-ptrace).
 *
 * Each thread is held alone and briefly: PTRACE_SEIZE (which stops nothing),
 * PTRACE_INTERRUPT (a ptrace stop, no signal the program could see), the
 * registers and the stack walked through the _UPT accessors, PTRACE_DETACH at
 * once.  The time from the interrupt to the detach is recorded per thread
 * (held_ns).  A thread in a blocking system call (read, futex, nanosleep)
 * leaves it for the stop and restarts it on detach, as after a debugger's
 * stop.  A signal that arrives meanwhile is handed back at the detach.
 * Threads in uninterruptible sleep (D) are not held: they are reported with
 * the kernel function they wait in.  Symbols come after the detach
 * (mt_symbolize.h), so they cost the program nothing.
 *
 * ptrace's rule: the thread that seized a tracee is its only tracer, so one
 * thread of a process takes every dump (mt_stack_take is not to be called
 * from two threads at once).  A tracee that did not stop in time is kept on
 * a per-thread list and released by the next mt_stack_take or
 * mt_stack_release_pending on that thread. */
#ifndef MT_STACK_H
#define MT_STACK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct cJSON;
struct mt_buf;

#define MT_STACK_MAX_FRAMES 128
#define MT_STACK_MAX_PIDS 4096

struct mt_stack_thread {
    pid_t tid;
    char name[32];       /* comm */
    char state;          /* from /proc stat before the hold: R S D T t Z ... */
    char wchan[64];      /* kernel function it waits in, "" when not told */
    uint64_t held_ns;    /* PTRACE_INTERRUPT to PTRACE_DETACH */
    int nframes;
    uint64_t ip[MT_STACK_MAX_FRAMES];
    int err;             /* errno of what failed, 0 when the stack is there */
    char why[160];       /* what failed, "" when nothing */
    char kstack[1024];   /* a D thread's kernel stack (/proc/.../stack, root only) */
};

struct mt_stack_proc {
    pid_t pid;
    char exe[512];
    char *maps;          /* /proc/<pid>/maps, read after the threads were let go */
    size_t maps_len;
    int err;             /* the process as a whole could not be attached */
    char why[256];       /* one line: what refused it, and why */
    struct mt_stack_thread *threads;
    size_t nthreads;
};

struct mt_stack_dump {
    double taken_unix;
    struct mt_stack_proc *procs;
    size_t nprocs;
    size_t threads, held, refused; /* threads seen, held and unwound, refused */
    uint64_t held_max_ns, held_total_ns;
};

/* The stacks of every thread of `pids` (procfs under `proc_root`, "/proc"
 * normally).  Always fills `d` (a process that is gone is left out, one that
 * refuses is kept with its reason); returns 0 when every thread was held,
 * else the number of processes refused.  mt_stack_dump_free accepts a zeroed
 * or half-filled dump. */
int mt_stack_take(const char *proc_root, const pid_t *pids, size_t npids, struct mt_stack_dump *d);
void mt_stack_dump_free(struct mt_stack_dump *d);
void mt_stack_release_pending(void);
size_t mt_stack_pending(void); /* tracees of this thread not yet let go */

/* The dump as JSON (symbolized: function, offset, module per frame).  The
 * caller owns the result. */
struct cJSON *mt_stack_json(const struct mt_stack_dump *d);
/* That JSON as text, like eu-stack: a process line, a line per thread
 * (tid, name, state, wait channel, time held), frames innermost first. */
void mt_stack_text(const struct cJSON *dump, struct mt_buf *out);

/* `root` and its descendants (by the ppid of every process under
 * `proc_root`), `root` itself unless skip_root; at most `cap`.  Returns how
 * many. */
size_t mt_stack_tree(const char *proc_root, pid_t root, int skip_root, pid_t *out, size_t cap);

/* Why ptrace would refuse this process: one line into `out` (Yama's scope,
 * another user, capabilities, an existing tracer, seccomp). */
void mt_stack_why_refused(const char *proc_root, pid_t pid, int err, char *out, size_t outsz);

#endif
