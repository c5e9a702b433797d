/* A stack dump (mt_stack.h) as JSON and as text.  Symbols are looked up
 * here, after every thread was let go. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/mt_buf.h"
#include "../common/mt_exec.h"
#include "mt_stack.h"
#include "mt_symbolize.h"

static const char *state_name(char s)
{
    switch (s) {
    case 'R': return "running";
    case 'S': return "sleeping";
    case 'D': return "uninterruptible";
    case 'T': return "stopped";
    case 't': return "tracing stop";
    case 'Z': return "zombie";
    case 'I': return "idle";
    case 'P': return "parked";
    default: return "unknown";
    }
}

static cJSON *frames_json(struct mt_sym_cache *cache, const struct mt_stack_proc *p,
                          const struct mt_stack_thread *t)
{
    cJSON *frames = cJSON_CreateArray();
    for (int i = 0; i < t->nframes; i++) {
        uint64_t ip = t->ip[i];
        /* Frame 0 is where the thread is; the others are return addresses,
         * whose call lies just before them. */
        struct mt_sym s;
        mt_symbolize_lookup(cache, p->maps ? p->maps : "", p->maps_len, i ? ip - 1 : ip, &s);
        cJSON *f = cJSON_CreateObject();
        char hex[32];
        snprintf(hex, sizeof hex, "0x%" PRIx64, ip);
        cJSON_AddStringToObject(f, "ip", hex);
        if (s.named) {
            cJSON_AddStringToObject(f, "function", s.function);
            /* offset of the instruction itself, as eu-stack prints it */
            cJSON_AddNumberToObject(f, "offset", (double)(s.offset + (i ? 1 : 0)));
        } else {
            cJSON_AddNullToObject(f, "function");
        }
        if (s.vaddr && s.module[0] == '/')
            /* for file:line (add_lines), taken out again there */
            cJSON_AddNumberToObject(f, "_vaddr", (double)s.vaddr);
        if (s.mapped) {
            cJSON_AddStringToObject(f, "module", s.module[0] ? s.module : "[anonymous]");
            cJSON_AddNumberToObject(f, "module_offset", (double)s.module_offset + (i ? 1 : 0));
        } else {
            cJSON_AddNullToObject(f, "module");
        }
        cJSON_AddItemToArray(frames, f);
    }
    return frames;
}

/* ---- file:line, where the module has debug info: addr2line (binutils),
 * once per module of the dump, after every thread was let go ---- */

#define LINES_MODULES 16
#define LINES_PER_CALL 256
#define LINES_TIMEOUT_MS 3000

static void lines_for_module(const char *module, cJSON **frames, size_t n)
{
    char *argv[LINES_PER_CALL + 9];
    char hex[LINES_PER_CALL][24];
    size_t k = 0;
    /* At nice 19: reading debug info takes a CPU for a while, and the drain
     * (at the program's nice) must not lose it to this under heavy printing. */
    argv[k++] = "nice";
    argv[k++] = "-n";
    argv[k++] = "19";
    argv[k++] = "addr2line";
    argv[k++] = "-f"; /* the function too: a local one of a stripped file, from its debug file */
    argv[k++] = "-e";
    argv[k++] = (char *)module;
    for (size_t i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(frames[i], "_vaddr");
        snprintf(hex[i], sizeof hex[i], "0x%" PRIx64, (uint64_t)v->valuedouble);
        argv[k++] = hex[i];
    }
    argv[k] = NULL;
    char out[LINES_PER_CALL * 512];
    struct mt_exec x = { .argv = argv, .out_fd = -1, .out = out, .out_size = sizeof out,
                         .timeout_ms = LINES_TIMEOUT_MS };
    if (mt_exec_run(&x) != 0 || x.exit_code != 0)
        return; /* no binutils, or it failed: frames keep function+offset */
    const char *line = out;
    for (size_t i = 0; i < n && *line; i++) {
        /* Two lines per address: the function ("??" when unknown), then
         * "file:line", "file:line (discriminator N)", or "??:0" / "??:?". */
        size_t flen = strcspn(line, "\n");
        const char *fn = line;
        line += flen + (line[flen] == '\n');
        size_t len = strcspn(line, "\n");
        const cJSON *have = cJSON_GetObjectItemCaseSensitive(frames[i], "function");
        if (!cJSON_IsString(have) && flen && !(flen == 2 && fn[0] == '?')) {
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)flen, fn);
            cJSON_ReplaceItemInObjectCaseSensitive(frames[i], "function", cJSON_CreateString(name));
        }
        const char *colon = memrchr(line, ':', len);
        if (colon && line[0] != '?' && colon[1] >= '1' && colon[1] <= '9') {
            char file[1024];
            snprintf(file, sizeof file, "%.*s", (int)(colon - line), line);
            cJSON_AddStringToObject(frames[i], "file", file);
            cJSON_AddNumberToObject(frames[i], "line", strtol(colon + 1, NULL, 10));
        }
        line += len + (line[len] == '\n');
    }
}

static void add_lines(cJSON *procs)
{
    const char *modules[LINES_MODULES];
    size_t nmodules = 0;
    cJSON *p, *t, *f;
    /* Each module once, its frames gathered from every thread. */
    cJSON_ArrayForEach(p, procs) cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(p, "threads"))
        cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(t, "frames")) {
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(f, "module");
            if (!cJSON_GetObjectItemCaseSensitive(f, "_vaddr") || !cJSON_IsString(m))
                continue;
            size_t i = 0;
            while (i < nmodules && strcmp(modules[i], m->valuestring) != 0)
                i++;
            if (i == nmodules && nmodules < LINES_MODULES)
                modules[nmodules++] = m->valuestring;
        }
    for (size_t i = 0; i < nmodules; i++) {
        /* Every frame in the module, LINES_PER_CALL to a call of addr2line. */
        cJSON *batch[LINES_PER_CALL];
        size_t n = 0;
        cJSON_ArrayForEach(p, procs) cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(p, "threads"))
            cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(t, "frames")) {
                const cJSON *m = cJSON_GetObjectItemCaseSensitive(f, "module");
                if (!cJSON_GetObjectItemCaseSensitive(f, "_vaddr") || !cJSON_IsString(m) ||
                    strcmp(m->valuestring, modules[i]) != 0)
                    continue;
                batch[n++] = f;
                if (n == LINES_PER_CALL) {
                    lines_for_module(modules[i], batch, n);
                    n = 0;
                }
            }
        if (n)
            lines_for_module(modules[i], batch, n);
    }
    cJSON_ArrayForEach(p, procs) cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(p, "threads"))
        cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(t, "frames"))
            cJSON_DeleteItemFromObjectCaseSensitive(f, "_vaddr");
}

cJSON *mt_stack_json(const struct mt_stack_dump *d)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "taken", d->taken_unix);
    cJSON_AddNumberToObject(o, "threads", (double)d->threads);
    cJSON_AddNumberToObject(o, "held", (double)d->held);
    cJSON_AddNumberToObject(o, "refused", (double)d->refused);
    cJSON_AddNumberToObject(o, "held_max_us", (double)d->held_max_ns / 1e3);
    cJSON_AddNumberToObject(o, "held_total_us", (double)d->held_total_ns / 1e3);
    cJSON *procs = cJSON_AddArrayToObject(o, "processes");
    struct mt_sym_cache *cache = mt_sym_cache_create();
    for (size_t i = 0; i < d->nprocs; i++) {
        const struct mt_stack_proc *p = &d->procs[i];
        cJSON *pj = cJSON_CreateObject();
        cJSON_AddNumberToObject(pj, "pid", p->pid);
        cJSON_AddStringToObject(pj, "exe", p->exe);
        if (p->err)
            cJSON_AddStringToObject(pj, "error", p->why);
        cJSON *threads = cJSON_AddArrayToObject(pj, "threads");
        for (size_t k = 0; k < p->nthreads; k++) {
            const struct mt_stack_thread *t = &p->threads[k];
            cJSON *tj = cJSON_CreateObject();
            char st[2] = { t->state, 0 };
            cJSON_AddNumberToObject(tj, "tid", t->tid);
            cJSON_AddStringToObject(tj, "name", t->name);
            cJSON_AddStringToObject(tj, "state", st);
            cJSON_AddStringToObject(tj, "state_name", state_name(t->state));
            if (t->wchan[0])
                cJSON_AddStringToObject(tj, "wchan", t->wchan);
            if (t->err)
                cJSON_AddStringToObject(tj, "error", t->why);
            if (t->kstack[0]) {
                cJSON *k = cJSON_AddArrayToObject(tj, "kernel_stack");
                for (const char *l = t->kstack; *l;) {
                    size_t n = strcspn(l, "\n");
                    char line[256];
                    snprintf(line, sizeof line, "%.*s", (int)n, l);
                    cJSON_AddItemToArray(k, cJSON_CreateString(line));
                    l += n + (l[n] == '\n');
                }
            }
            else
                cJSON_AddNumberToObject(tj, "held_us", (double)t->held_ns / 1e3);
            cJSON_AddItemToObject(tj, "frames", frames_json(cache, p, t));
            cJSON_AddItemToArray(threads, tj);
        }
        cJSON_AddItemToArray(procs, pj);
    }
    mt_sym_cache_destroy(cache);
    add_lines(procs);
    return o;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static void frame_text(const cJSON *f, int i, struct mt_buf *out)
{
    const char *fn = jstr(f, "function"), *mod = jstr(f, "module"), *ip = jstr(f, "ip");
    mt_buf_printf(out, "    #%-2d %-18s ", i, ip ? ip : "?");
    if (fn && cJSON_GetObjectItemCaseSensitive(f, "offset"))
        mt_buf_printf(out, "%s+0x%" PRIx64, fn, (uint64_t)jnum(f, "offset"));
    else if (fn)
        mt_buf_adds(out, fn); /* named by the debug file: no symbol, so no offset */
    else
        mt_buf_adds(out, "??");
    const char *file = jstr(f, "file");
    if (file) {
        const char *base = strrchr(file, '/');
        mt_buf_printf(out, " at %s:%d", base ? base + 1 : file, (int)jnum(f, "line"));
    }
    if (mod && fn)
        mt_buf_printf(out, " (%s)", mod);
    else if (mod)
        mt_buf_printf(out, " (%s+0x%" PRIx64 ")", mod, (uint64_t)jnum(f, "module_offset"));
    mt_buf_addc(out, '\n');
}

void mt_stack_text(const cJSON *dump, struct mt_buf *out)
{
    time_t t = (time_t)jnum(dump, "taken");
    struct tm tm;
    char when[64];
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %Z", localtime_r(&t, &tm));
    const cJSON *procs = cJSON_GetObjectItemCaseSensitive(dump, "processes");
    mt_buf_printf(out, "stacks at %s: %d processes, %d threads\n", when,
                  cJSON_GetArraySize(procs), (int)jnum(dump, "threads"));
    const cJSON *p;
    cJSON_ArrayForEach(p, procs) {
        const char *exe = jstr(p, "exe"), *err = jstr(p, "error");
        mt_buf_printf(out, "\nprocess %d: %s\n", (int)jnum(p, "pid"), exe && *exe ? exe : "?");
        if (err)
            mt_buf_printf(out, "  not attached: %s\n", err);
        const cJSON *th;
        cJSON_ArrayForEach(th, cJSON_GetObjectItemCaseSensitive(p, "threads")) {
            const char *name = jstr(th, "name"), *wchan = jstr(th, "wchan");
            const char *terr = jstr(th, "error");
            mt_buf_printf(out, "  thread %d \"%s\" %s (%s)", (int)jnum(th, "tid"),
                          name ? name : "", jstr(th, "state") ? jstr(th, "state") : "?",
                          jstr(th, "state_name") ? jstr(th, "state_name") : "?");
            if (wchan)
                mt_buf_printf(out, " in %s", wchan);
            if (terr && !err)
                mt_buf_printf(out, ": %s\n", terr);
            else if (!terr)
                mt_buf_printf(out, ", held %.0f us\n", jnum(th, "held_us"));
            else
                mt_buf_addc(out, '\n');
            int i = 0;
            const cJSON *f;
            cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(th, "frames"))
                frame_text(f, i++, out);
            cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(th, "kernel_stack"))
                if (cJSON_IsString(f))
                    mt_buf_printf(out, "    kernel %s\n", f->valuestring);
        }
    }
    mt_buf_printf(out, "\n%d threads held, at most %.0f us each (%.0f us in all)",
                  (int)jnum(dump, "held"), jnum(dump, "held_max_us"), jnum(dump, "held_total_us"));
    if (jnum(dump, "refused") > 0)
        mt_buf_printf(out, "; %d refused", (int)jnum(dump, "refused"));
    mt_buf_addc(out, '\n');
}
