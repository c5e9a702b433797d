/* metrictap stack: the native stacks of a live run (agent/mt_stack.h).
 *
 *   metrictap stack RUN [--json] [--watch SECONDS [--count N]]
 *   metrictap stack --pid PID [...]     a process and its descendants, directly
 *
 * For a run the agent takes the dump: under Yama's ptrace_scope 1 it is the
 * only process the run's processes let attach (the shim names it), and it
 * knows which processes are the run's.  The request is a file in the run's
 * private channel directory; the answer comes back beside it. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../agent/mt_stack.h"
#include "../agent/mt_store.h"
#include "../common/mt_buf.h"
#include "../common/mt_channel.h"
#include "../common/mt_index.h"
#include "../config/mt_config.h"
#include "mt_cli.h"
#include "select.h"
#include "show.h"

#define ANSWER_WAIT_S 30.0

struct source {
    pid_t pid;          /* --pid: attach directly */
    char *id, *dir;     /* a run: ask its agent */
    char channel[512];
    unsigned seq;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The channel directory of the run's live agent, found by its name
 * (metrictap-<id>-XXXXXX in /dev/shm, $TMPDIR or /tmp) and checked as the
 * shim checks it (private, ours, a live ctl page). */
static int find_channel(struct source *s)
{
    const char *bases[] = { "/dev/shm", getenv("TMPDIR"), "/tmp" };
    for (size_t b = 0; b < sizeof bases / sizeof *bases; b++) {
        if (!bases[b] || !*bases[b])
            continue;
        char pattern[600];
        snprintf(pattern, sizeof pattern, "%s/metrictap-%s-*", bases[b], s->id);
        glob_t g;
        if (glob(pattern, 0, NULL, &g) != 0)
            continue;
        for (size_t i = 0; i < g.gl_pathc; i++) {
            struct mt_ctl *ctl = mt_channel_map_ctl(g.gl_pathv[i]);
            if (!ctl)
                continue;
            int alive = ctl->agent_pid && kill((pid_t)ctl->agent_pid, 0) == 0;
            munmap(ctl, MT_CTL_SIZE);
            if (alive) {
                snprintf(s->channel, sizeof s->channel, "%s", g.gl_pathv[i]);
                globfree(&g);
                return 0;
            }
        }
        globfree(&g);
    }
    return -1;
}

static char *read_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return NULL;
    struct mt_buf b;
    mt_buf_init(&b, 256u << 20);
    char chunk[65536];
    ssize_t r;
    while ((r = read(fd, chunk, sizeof chunk)) > 0)
        mt_buf_add(&b, chunk, (size_t)r);
    close(fd);
    mt_buf_addc(&b, '\0');
    return b.data;
}

/* Asks the agent for a dump: NULL with the reason printed. */
static cJSON *ask_agent(struct source *s)
{
    char req[700], ans[700], tag[64];
    snprintf(tag, sizeof tag, "%d-%u", (int)getpid(), s->seq++);
    snprintf(req, sizeof req, "%s/stack.req.%s", s->channel, tag);
    snprintf(ans, sizeof ans, "%s/stack.ans.%s", s->channel, tag);
    int fd = open(req, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        fprintf(stderr, "metrictap stack: run %s: cannot ask its agent (%s): %s\n", s->id, req,
                strerror(errno));
        return NULL;
    }
    close(fd);
    double t0 = now_s();
    struct timespec nap = { 0, 5000000 };
    while (access(ans, F_OK) != 0) {
        if (access(s->channel, F_OK) != 0) {
            fprintf(stderr, "metrictap stack: run %s ended\n", s->id);
            return NULL;
        }
        if (now_s() - t0 > ANSWER_WAIT_S) {
            unlink(req);
            fprintf(stderr, "metrictap stack: run %s: its agent did not answer in %.0f s\n",
                    s->id, ANSWER_WAIT_S);
            return NULL;
        }
        nanosleep(&nap, NULL);
    }
    char *text = read_file(ans);
    unlink(ans);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!j)
        fprintf(stderr, "metrictap stack: run %s: the agent's answer is unreadable\n", s->id);
    return j;
}

static cJSON *take_direct(struct source *s)
{
    pid_t *pids = mt_xcalloc(MT_STACK_MAX_PIDS, sizeof *pids);
    size_t n = mt_stack_tree("/proc", s->pid, 0, pids, MT_STACK_MAX_PIDS);
    struct mt_stack_dump d;
    mt_stack_take("/proc", pids, n, &d);
    cJSON *j = NULL;
    if (d.nprocs == 0)
        fprintf(stderr, "metrictap stack: no process %d\n", (int)s->pid);
    else
        j = mt_stack_json(&d);
    mt_stack_dump_free(&d);
    free(pids);
    return j;
}

static cJSON *take(struct source *s)
{
    cJSON *j = s->pid ? take_direct(s) : ask_agent(s);
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (cJSON_IsString(err)) {
        fprintf(stderr, "metrictap stack: run %s: %s\n", s->id, err->valuestring);
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

/* One line on stderr per process that refused; returns how many. */
static int tell_refused(const cJSON *dump)
{
    int n = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(dump, "processes")) {
        const cJSON *err = cJSON_GetObjectItemCaseSensitive(p, "error");
        const cJSON *exe = cJSON_GetObjectItemCaseSensitive(p, "exe");
        if (!cJSON_IsString(err))
            continue;
        fprintf(stderr, "metrictap stack: cannot read the stacks of pid %d (%s): %s\n",
                cJSON_GetObjectItemCaseSensitive(p, "pid")->valueint,
                cJSON_IsString(exe) ? exe->valuestring : "?", err->valuestring);
        n++;
    }
    return n;
}

static int print_dump(const cJSON *dump, int json)
{
    int refused = tell_refused(dump);
    const cJSON *held = cJSON_GetObjectItemCaseSensitive(dump, "held");
    if (json) {
        char *t = cJSON_PrintUnformatted(dump);
        puts(t);
        free(t);
    } else if (!refused || (cJSON_IsNumber(held) && held->valueint > 0)) {
        struct mt_buf out;
        mt_buf_init(&out, 64u << 20);
        mt_stack_text(dump, &out);
        fwrite(out.data, 1, out.len, stdout);
        mt_buf_free(&out);
    }
    fflush(stdout);
    return refused ? 1 : 0;
}

/* ---- --watch: what changed since the last dump ---- */

/* "fn;fn;fn" of a thread: what a change is judged by (not addresses, which
 * move within a function as it runs). */
static void signature(const cJSON *thread, struct mt_buf *b)
{
    mt_buf_reset(b);
    const cJSON *f;
    cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(thread, "frames")) {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(f, "function");
        mt_buf_adds(b, cJSON_IsString(fn) ? fn->valuestring : "??");
        mt_buf_addc(b, ';');
    }
    mt_buf_addc(b, '\0');
}

/* Keeps in `dump` only the threads whose stack differs from `prev`'s (new
 * ones included); returns how many were kept. */
static int keep_changed(cJSON *dump, const cJSON *prev)
{
    int kept = 0;
    struct mt_buf a, b;
    mt_buf_init(&a, 1u << 20);
    mt_buf_init(&b, 1u << 20);
    cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(dump, "processes")) {
        cJSON *threads = cJSON_GetObjectItemCaseSensitive(p, "threads");
        for (int i = cJSON_GetArraySize(threads) - 1; i >= 0; i--) {
            cJSON *t = cJSON_GetArrayItem(threads, i);
            int tid = cJSON_GetObjectItemCaseSensitive(t, "tid")->valueint, same = 0;
            signature(t, &a);
            const cJSON *pp, *pt;
            cJSON_ArrayForEach(pp, cJSON_GetObjectItemCaseSensitive(prev, "processes"))
                cJSON_ArrayForEach(pt, cJSON_GetObjectItemCaseSensitive(pp, "threads"))
                    if (cJSON_GetObjectItemCaseSensitive(pt, "tid")->valueint == tid) {
                        signature(pt, &b);
                        same = strcmp(a.data, b.data) == 0;
                    }
            if (same)
                cJSON_DeleteItemFromArray(threads, i);
            else
                kept++;
        }
    }
    mt_buf_free(&a);
    mt_buf_free(&b);
    return kept;
}

static int watch(struct source *s, double every, long count, int json)
{
    cJSON *prev = NULL;
    int rc = 0;
    for (long k = 0; count <= 0 || k < count; k++) {
        if (k) {
            struct timespec nap = { (time_t)every, (long)((every - (long)every) * 1e9) };
            nanosleep(&nap, NULL);
        }
        cJSON *dump = take(s);
        if (!dump)
            return k ? rc : 1;
        cJSON *whole = cJSON_Duplicate(dump, 1);
        if (prev) {
            int changed = keep_changed(dump, prev);
            if (!json) {
                time_t t = time(NULL);
                struct tm tm;
                char when[32];
                strftime(when, sizeof when, "%H:%M:%S", localtime_r(&t, &tm));
                printf("\n=== %s: %d of %d threads changed\n", when, changed,
                       cJSON_GetObjectItemCaseSensitive(whole, "threads")->valueint);
            }
            if (changed || json)
                rc |= print_dump(dump, json);
            fflush(stdout);
        } else {
            rc |= print_dump(dump, json);
        }
        cJSON_Delete(prev);
        cJSON_Delete(dump);
        prev = whole;
    }
    cJSON_Delete(prev);
    return rc;
}

static int usage(void)
{
    fputs(mt_cli_usage("stack"), stderr);
    return 2;
}

int mt_cmd_stack(int argc, char **argv)
{
    struct source s = { 0 };
    const char *run = NULL;
    int json = 0;
    double every = 0;
    long count = 0;
    const char *project = mt_cli_take_project(&argc, argv);
    for (int i = 1; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--watch") == 0 && i + 1 < argc) {
            every = strtod(argv[++i], &end);
            if (*end || !(every > 0) || every > 86400)
                return usage();
        } else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
            count = strtol(argv[++i], &end, 10);
            if (*end || count <= 0)
                return usage();
        } else if (strcmp(argv[i], "--pid") == 0 && i + 1 < argc) {
            s.pid = (pid_t)strtol(argv[++i], &end, 10);
            if (*end || s.pid <= 0)
                return usage();
        } else if ((argv[i][0] == '-' && !mt_cli_is_run_position(argv[i])) || run)
            return usage();
        else
            run = argv[i];
    }
    if (!run == !s.pid)
        return usage();
    struct mt_config cfg;
    struct mt_index *ix = NULL;
    int rc = 1, loaded = 0;
    if (run) {
        mt_cli_load_config(&cfg);
        loaded = 1;
        ix = mt_cli_open_index(&cfg);
        if (!ix || mt_cli_find_run(ix, cfg.dir, project, run, &s.id, &s.dir) != 0)
            goto out;
        if (mt_store_agent_alive(s.dir) != 1 || find_channel(&s) != 0) {
            fprintf(stderr, "metrictap stack: run %s is not running (its agent is gone)\n",
                    s.id);
            goto out;
        }
    }
    if (every > 0)
        rc = watch(&s, every, count, json);
    else {
        cJSON *dump = take(&s);
        rc = dump ? print_dump(dump, json) : 1;
        cJSON_Delete(dump);
    }
out:
    if (ix)
        mt_index_close(ix);
    free(s.id);
    free(s.dir);
    if (loaded)
        mt_config_free(&cfg);
    return rc;
}
