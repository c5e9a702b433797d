/* gen_runs: writes a synthetic run store for the runs-table bench.
 *
 *   build/bench/gen_runs DIR [RUNS] [SEED]
 *
 * Makes DIR/runs/bench/<id>/ for RUNS runs (default 100000) in one project,
 * laid out as the agent writes them (DESIGN.md "The run store"): run.json with
 * tags, group, state, ~20 config values (some nested) and a "metrics" map
 * giving val_* the epoch axis; summary.json with ~16 values; history.jsonl
 * with 20..1000 rows (4 in 5 runs stopped early by a sweep scheduler at
 * 20..38 rows, the rest 100..1000) of loss, acc, lr, batch, and
 * val_loss/val_acc at each epoch end.  Every 100th run, and run 0, also has
 * events.jsonl, output.log and system.jsonl (the rest go without, to keep
 * 100,000 runs near 2 GB on 4 KiB blocks: each small file costs a block); run 0
 * has the full 1000 rows (the bench shows it).  Files are written directly,
 * 0600 in 0700 dirs, by one worker process per core.  Prints the first
 * run's id.
 * Deterministic for a seed.  No index is written: the bench builds it. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static uint64_t rng_state;

static uint64_t rnd(void)
{
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double unif(void) { return (double)(rnd() >> 11) / 9007199254740992.0; }

struct out {
    char *p;
    size_t len, cap;
};

static void outf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void outf(struct out *o, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        o->cap = o->cap * 2 + (size_t)n + 1024;
        o->p = realloc(o->p, o->cap);
        if (!o->p) {
            perror("gen_runs");
            exit(1);
        }
    }
}

static void write_file(const char *dir, const char *name, const struct out *o)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, o->p, o->len) != (ssize_t)o->len || close(fd) != 0) {
        fprintf(stderr, "gen_runs: cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

static const char *const TAGS[] = { "baseline", "lr-sweep", "augment", "ablation",
                                    "prod",     "debug",    "v2",      "fp16" };
static const char *const OPTIM[] = { "adam", "adamw", "sgd", "lamb" };
static const char *const MODELS[] = { "resnet18", "resnet50", "vit-s", "convnext-t", "mlp" };
static const char *const SCHED[] = { "cosine", "step", "linear", "constant" };

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: gen_runs DIR [RUNS] [SEED]\n");
        return 2;
    }
    const char *root = argv[1];
    long nruns = argc > 2 ? strtol(argv[2], NULL, 10) : 100000;
    uint64_t seed = argc > 3 ? strtoull(argv[3], NULL, 10) : 1;
    char path[4096];
    snprintf(path, sizeof path, "%s", root);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/runs", root);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/runs/bench", root);
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "gen_runs: cannot create %s: %s\n", path, strerror(errno));
        return 1;
    }
    /* One worker per core: file creation is mostly the kernel's work. */
    long nworkers = sysconf(_SC_NPROCESSORS_ONLN) > 1 ? sysconf(_SC_NPROCESSORS_ONLN) : 1, w = 0;
    if (nworkers > 8)
        nworkers = 8;
    for (w = 0; w + 1 < nworkers; w++) {
        pid_t pid = fork();
        if (pid == 0)
            break;
        if (pid < 0) {
            perror("gen_runs: fork");
            return 1;
        }
    }
    if (w + 1 == nworkers)
        w = nworkers - 1;
    struct out run = { 0 }, sum = { 0 }, hist = { 0 }, ev = { 0 }, log = { 0 }, sys = { 0 };
    const double t0 = 1780000000.0;
    for (long i = w; i < nruns; i += nworkers) {
        rng_state = seed * 1000003u + (uint64_t)i;
        char id[9];
        uint64_t x = rnd();
        for (int k = 0; k < 8; k++, x /= 36)
            id[k] = "0123456789abcdefghijklmnopqrstuvwxyz"[x % 36];
        id[8] = '\0';
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/runs/bench/%s", root, id);
        if (mkdir(dir, 0700) != 0) {
            fprintf(stderr, "gen_runs: cannot create %s: %s\n", dir, strerror(errno));
            return 1;
        }
        /* Identity. */
        double start = t0 + (double)i * 60.0 + unif() * 30;
        double u = unif();
        const char *state = u < 0.85 ? "finished" : u < 0.93 ? "failed" : u < 0.96 ? "crashed"
                                                                                   : "killed";
        (void)0;
        /* A sweep scheduler (ASHA, Hyperband with a reduction factor of 4 or
         * 5) stops most trials early: 4 in 5 runs log 20..38 rows, the rest
         * 100..1000. */
        int early = i != 0 && unif() < 0.8;
        long planned = i == 0 ? 1000 : 100 + (long)(900.0 * pow(unif(), 6.0));
        long rows = early ? 20 + (long)(19 * unif()) : planned;
        double step_s = 0.5 + unif() * 2;
        double runtime = (double)rows * step_s;
        double lr = pow(10, -4 + 3 * unif());
        int batch = 32 << (rnd() % 5);
        int epochs = 5 + (int)(rnd() % 46);
        const char *optim = OPTIM[rnd() % 4], *model = MODELS[rnd() % 5];
        int ntags = 1 + (int)(rnd() % 3);
        char tags[256] = "";
        size_t tl = 0;
        unsigned used = 0;
        for (int k = 0; k < ntags; k++) {
            int t = (int)(rnd() % 8);
            if (used & (1u << t))
                continue;
            used |= 1u << t;
            tl += (size_t)snprintf(tags + tl, sizeof tags - tl, "%s\"%s\"", tl ? ", " : "",
                                   TAGS[t]);
        }
        double quality = 1 - fabs(log10(lr) + 2.5) / 2.5; /* best near lr 3e-3 */
        double final_acc = 0.5 + 0.45 * quality * (0.8 + 0.2 * unif());
        double final_loss = 2.3 * (1 - final_acc) + 0.05 * unif();
        int exit_code = strcmp(state, "finished") == 0 ? 0 : strcmp(state, "failed") == 0 ? 1 : -1;
        int sig = strcmp(state, "crashed") == 0 ? 11 : strcmp(state, "killed") == 0 ? 15 : 0;

        run.len = 0;
        outf(&run,
             "{\n\t\"id\":\t\"%s\",\n\t\"project\":\t\"bench\",\n\t\"name\":\t\"%s-%s-%ld\",\n"
             "\t\"group\":\t\"sweep-%ld\",\n\t\"job_type\":\t\"train\",\n\t\"notes\":\tnull,\n"
             "\t\"tags\":\t[%s],\n\t\"state\":\t\"%s\",\n\t\"start_time\":\t%.6f,\n"
             "\t\"end_time\":\t%.6f,\n\t\"runtime\":\t%.3f,\n",
             id, model, optim, i, i / 100, tags, state, start, start + runtime, runtime);
        if (exit_code >= 0)
            outf(&run, "\t\"exit_code\":\t%d,\n\t\"signal\":\tnull,\n", exit_code);
        else
            outf(&run, "\t\"exit_code\":\tnull,\n\t\"signal\":\t%d,\n", sig);
        outf(&run,
             "\t\"command\":\t[\"python\", \"train.py\", \"--lr\", \"%g\", \"--batch-size\", "
             "\"%d\", \"--optimizer\", \"%s\"],\n\t\"program\":\t\"python\",\n"
             "\t\"cwd\":\t\"/home/ml/project\",\n\t\"host\":\t\"gpu-node-%02d\",\n"
             "\t\"user\":\t\"ml\",\n\t\"resumed\":\t0,\n",
             lr, batch, optim, (int)(rnd() % 32));
        outf(&run,
             "\t\"config\":\t{\n\t\t\"lr\":\t%g,\n\t\t\"batch_size\":\t%d,\n\t\t\"epochs\":\t%d,\n"
             "\t\t\"optimizer\":\t\"%s\",\n\t\t\"model\":\t\"%s\",\n\t\t\"weight_decay\":\t%g,\n"
             "\t\t\"momentum\":\t%.2f,\n\t\t\"dropout\":\t%.2f,\n\t\t\"seed\":\t%d,\n"
             "\t\t\"layers\":\t%d,\n\t\t\"hidden\":\t%d,\n\t\t\"warmup_steps\":\t%d,\n"
             "\t\t\"scheduler\":\t\"%s\",\n\t\t\"label_smoothing\":\t%.2f,\n"
             "\t\t\"grad_clip\":\t%.1f,\n\t\t\"fp16\":\t%s,\n\t\t\"num_workers\":\t%d,\n"
             "\t\t\"data\":\t{\n\t\t\t\"dataset\":\t\"cifar10\",\n\t\t\t\"augment\":\t%s,\n"
             "\t\t\t\"val_split\":\t0.1\n\t\t}\n\t},\n",
             lr, batch, epochs, optim, model, pow(10, -6 + 3 * unif()), 0.8 + 0.19 * unif(),
             0.5 * unif(), (int)(rnd() % 10000), 2 + (int)(rnd() % 50), 64 << (rnd() % 5),
             (int)(rnd() % 2000), SCHED[rnd() % 4], 0.2 * unif(), 0.5 + 4.5 * unif(),
             rnd() % 2 ? "true" : "false", 2 + (int)(rnd() % 14), rnd() % 2 ? "true" : "false");
        outf(&run,
             "\t\"metrics\":\t{\n\t\t\"val_acc\":\t{\n\t\t\t\"step_metric\":\t\"epoch\"\n\t\t},\n"
             "\t\t\"val_loss\":\t{\n\t\t\t\"step_metric\":\t\"epoch\"\n\t\t}\n\t},\n"
             "\t\"metadata\":\t{\n\t\t\"capture\":\t\"preload\"\n\t}\n}");
        write_file(dir, "run.json", &run);

        /* History: a row per logged step, val_* at each epoch end. */
        hist.len = 0;
        long per_epoch = planned / epochs > 10 ? planned / epochs : 10;
        double loss = 2.3, acc = 0.1, vacc = 0, vloss = 0;
        int epoch = 0;
        for (long s = 0; s < rows; s++) {
            double f = (double)(s + 1) / (double)rows;
            loss = final_loss + (2.3 - final_loss) * exp(-4 * f) + 0.05 * (unif() - 0.5);
            acc = 0.1 + (final_acc - 0.1) * (1 - exp(-4 * f)) + 0.02 * (unif() - 0.5);
            double cur_lr = lr * 0.5 * (1 + cos(M_PI * f));
            outf(&hist, "{\"_step\":%ld,\"_runtime\":%.1f,\"_timestamp\":%.2f,\"loss\":%.4f,"
                        "\"acc\":%.4f,\"lr\":%.3g,\"batch\":%ld",
                 s, (double)s * step_s, start + (double)s * step_s, loss, acc, cur_lr,
                 s % per_epoch);
            if ((s + 1) % per_epoch == 0) {
                epoch++;
                vacc = acc - 0.02 * unif();
                vloss = loss + 0.05 * unif();
                outf(&hist, ",\"epoch\":%d,\"val_loss\":%.4f,\"val_acc\":%.4f", epoch, vloss, vacc);
            }
            outf(&hist, "}\n");
        }
        write_file(dir, "history.jsonl", &hist);

        sum.len = 0;
        outf(&sum,
             "{\"loss\":%.4f,\"acc\":%.4f,\"lr\":%.3g,\"batch\":%ld,\"epoch\":%d,"
             "\"val_loss\":%.4f,\"val_acc\":%.4f,\"best_val_acc\":%.4f,\"grad_norm\":%.3f,"
             "\"throughput\":%.1f,\"gpu_mem_gb\":%.2f,\"train/samples\":%ld,\"_step\":%ld,"
             "\"_runtime\":%.2f,\"_timestamp\":%.3f,\"status\":\"%s\"}",
             loss, acc, lr * 0.01, (rows - 1) % per_epoch, epoch, vloss, vacc,
             vacc + 0.01 * unif(), 0.1 + 3 * unif(), 100 + 2000 * unif(), 2 + 30 * unif(),
             rows * batch, rows - 1, runtime, start + runtime,
             exit_code == 0 ? "ok" : "error");
        write_file(dir, "summary.json", &sum);

        ev.len = 0;
        if (i % 100 == 0) {
        outf(&ev,
             "{\"_timestamp\":%.6f,\"event\":\"start\"}\n{\"_timestamp\":%.6f,\"event\":\"finish\","
             "\"state\":\"%s\",\"rows\":%ld}\n",
             start, start + runtime, state, rows);
        write_file(dir, "events.jsonl", &ev);
            log.len = 0;
            sys.len = 0;
            for (long s = 0; s < rows; s += 5)
                outf(&log, "step %ld loss=%.4f lr=%.3g\n", s, final_loss + 1.0 / (double)(s + 1),
                     lr);
            outf(&log, "done\n");
            for (double t = 0; t < runtime && t < 3600 * 4; t += 15)
                outf(&sys, "{\"_timestamp\":%.3f,\"_runtime\":%.1f,\"cpu\":%.1f,"
                           "\"memory_percent\":%.1f,\"proc.memory.rssMB\":%.1f,"
                           "\"gpu.0.gpu\":%.1f,\"gpu.0.temp\":%.1f}\n",
                     start + t, t, 50 + 40 * unif(), 30 + 10 * unif(), 2000 + 500 * unif(),
                     80 + 20 * unif(), 60 + 15 * unif());
            write_file(dir, "output.log", &log);
            write_file(dir, "system.jsonl", &sys);
        }
        if (i == 0)
            printf("first\t%s\n", id);
    }
    int failed = 0;
    if (w == nworkers - 1) /* the parent */
        for (long k = 0; k + 1 < nworkers; k++) {
            int status;
            if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                failed = 1;
        }
    free(run.p);
    free(sum.p);
    free(hist.p);
    free(ev.p);
    free(log.p);
    free(sys.p);
    return failed;
}
