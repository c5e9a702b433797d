/* The system sampler against fixture /proc trees (tests/fixtures/proc-*), a
 * stub NVML (build/tests/libstub_nvml.so), and the real /proc. */
#include "agent/mt_sys.h"
#include "tests/unit/mt_test.h"

#include <cjson/cJSON.h>
#include <dlfcn.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <time.h>

static char repo[PATH_MAX], stub[PATH_MAX + 32];

__attribute__((constructor)) static void find_paths(void)
{
    char tests_dir[PATH_MAX];
    mt_test_paths(tests_dir, repo);
    snprintf(stub, sizeof stub, "%s/libstub_nvml.so", tests_dir);
}

/* A temp dir with a symlink "proc" the test repoints between fixtures. */
struct fx { char dir[64], link[128]; };

static void fx_init(struct fx *f)
{
    snprintf(f->dir, sizeof f->dir, "/tmp/mt-sys-XXXXXX");
    if (!mkdtemp(f->dir))
        abort();
    snprintf(f->link, sizeof f->link, "%s/proc", f->dir);
}

static void fx_point(struct fx *f, const char *fixture)
{
    char target[PATH_MAX + 64];
    snprintf(target, sizeof target, "%s/tests/fixtures/%s", repo, fixture);
    unlink(f->link);
    if (symlink(target, f->link) != 0)
        abort();
}

static void fx_done(struct fx *f)
{
    unlink(f->link);
    rmdir(f->dir);
}

static cJSON *row(struct mt_sys *s, double now)
{
    char buf[8192];
    int n = mt_sys_window_json(s, now, buf, sizeof buf);
    MT_CHECK(n > 0 && (size_t)n == strlen(buf));
    cJSON *j = cJSON_Parse(buf);
    MT_CHECK(j != NULL);
    return j;
}

static double num(cJSON *j, const char *key)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsNumber(v)) {
        fprintf(stderr, "    missing key %s\n", key);
        return NAN;
    }
    return v->valuedouble;
}

static int has(cJSON *j, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(j, key) != NULL;
}

static int *stub_int(const char *name)
{
    void *h = dlopen(stub, RTLD_NOW | RTLD_NOLOAD);
    return h ? dlsym(h, name) : NULL;
}

MT_TEST(fixture_tree_rates_counters_gpus)
{
    struct fx f;
    fx_init(&f);
    fx_point(&f, "proc-t0");
    struct mt_sys_opts o = {.procfs_root = f.link, .root_pid = 100, .disk_path = f.dir,
                            .nvml_path = stub, .start_unix = 900};
    struct mt_sys *s = mt_sys_create(&o);
    MT_CHECK(s != NULL);
    MT_CHECK(mt_sys_gpu_count(s) == 2);
    long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);

    /* Same tree as the baseline: no CPU movement, so no system CPU %. */
    mt_sys_sample(s, 1000);
    cJSON *j = row(s, 1000);
    MT_CHECK(!has(j, "system.cpu_percent"));
    MT_CHECK_NUM(num(j, "system.memory_percent"), 75);
    MT_CHECK_NUM(num(j, "system.proc.disk_read_bytes"), 0);
    cJSON_Delete(j);

    fx_point(&f, "proc-t1");
    mt_sys_sample(s, 1002);
    j = row(s, 1002);
    MT_CHECK_NUM(num(j, "_timestamp"), 1002);
    MT_CHECK_NUM(num(j, "_runtime"), 102);
    MT_CHECK_NUM(num(j, "system.cpu_percent"), 60);            /* 900 busy of 1500 */
    MT_CHECK(fabs(num(j, "system.proc.cpu_percent") - 100.0 * 230 / (tck * 2.0)) < 1e-6);
    MT_CHECK_NUM(num(j, "system.memory_percent"), 50);
    MT_CHECK_NUM(num(j, "system.memory_used_mb"), 8192);       /* 8e6 kB */
    MT_CHECK(fabs(num(j, "system.proc.memory_rss_mb") - 1600.0 * page / 1e6) < 1e-6);
    MT_CHECK_NUM(num(j, "system.proc.threads"), 11);            /* 100, 101, 102 not 1, 200 */
    MT_CHECK_NUM(num(j, "system.proc.fds"), 10);
    MT_CHECK_NUM(num(j, "system.proc.disk_read_bytes"), 5000);
    MT_CHECK_NUM(num(j, "system.proc.disk_write_bytes"), 30000);
    MT_CHECK_NUM(num(j, "system.network.sent_bytes"), 600);     /* lo excluded */
    MT_CHECK_NUM(num(j, "system.network.recv_bytes"), 3100);
    double used = num(j, "system.disk.used_mb"), avail = num(j, "system.disk.available_mb");
    double pct = num(j, "system.disk.usage_percent");
    MT_CHECK(used > 0 && avail >= 0 && pct > 0 && pct <= 100);
    MT_CHECK(fabs(pct - 100 * used / (used + avail)) < 0.5);
    MT_CHECK_NUM(num(j, "system.gpu.0.utilization_percent"), 20);
    MT_CHECK_NUM(num(j, "system.gpu.0.memory_used_mb"), 20000);
    MT_CHECK_NUM(num(j, "system.gpu.0.memory_total_mb"), 80000);
    MT_CHECK_NUM(num(j, "system.gpu.0.memory_percent"), 25);
    MT_CHECK_NUM(num(j, "system.gpu.0.temperature_c"), 65);
    MT_CHECK_NUM(num(j, "system.gpu.0.power_watts"), 150);
    MT_CHECK_NUM(num(j, "system.gpu.0.power_percent"), 50);
    MT_CHECK_NUM(num(j, "system.gpu.1.memory_percent"), 50);
    MT_CHECK(!has(j, "system.gpu.1.temperature_c"));
    MT_CHECK(!has(j, "system.gpu.1.power_watts"));
    MT_CHECK(!has(j, "system.gpu.1.power_percent"));
    cJSON_Delete(j);

    /* Counters going backwards (t1 -> t0) add nothing; then t0 -> t1 again
     * adds its deltas.  Gauges average over the window's two samples. */
    fx_point(&f, "proc-t0");
    mt_sys_sample(s, 1004);
    fx_point(&f, "proc-t1");
    mt_sys_sample(s, 1006);
    j = row(s, 1006);
    MT_CHECK_NUM(num(j, "system.memory_percent"), 62.5);
    MT_CHECK_NUM(num(j, "system.cpu_percent"), 60);   /* only the second sample had a delta */
    MT_CHECK_NUM(num(j, "system.proc.disk_read_bytes"), 10000);
    MT_CHECK_NUM(num(j, "system.network.sent_bytes"), 1200);
    MT_CHECK_NUM(num(j, "system.gpu.0.utilization_percent"), 35);   /* (30 + 40) / 2 */
    cJSON_Delete(j);

    int *unsup = stub_int("stub_nvml_unsupported_calls");
    MT_CHECK(unsup && *unsup == 2);   /* asked once each, then remembered */
    mt_sys_destroy(s);
    fx_done(&f);
}

MT_TEST(empty_window_and_small_buffer)
{
    struct mt_sys_opts o = {.procfs_root = "/proc", .root_pid = getpid(), .nvml_path = ""};
    struct mt_sys *s = mt_sys_create(&o);
    char small[16], buf[4096];
    MT_CHECK(mt_sys_window_json(s, 1, buf, sizeof buf) == 0);
    mt_sys_sample(s, 1);
    MT_CHECK(mt_sys_window_json(s, 1, small, sizeof small) == -ENOSPC);
    MT_CHECK(mt_sys_window_json(s, 1, buf, sizeof buf) > 0);   /* window kept */
    MT_CHECK(mt_sys_window_json(s, 1, buf, sizeof buf) == 0);  /* and then reset */
    mt_sys_destroy(s);
    mt_sys_destroy(NULL);
}

MT_TEST(missing_proc_files_and_nvml_are_skipped)
{
    char root[PATH_MAX + 64], buf[4096];
    snprintf(root, sizeof root, "%s/tests/fixtures/proc-empty", repo);
    struct mt_sys_opts o = {.procfs_root = root, .root_pid = 100,
                            .nvml_path = "/nonexistent/libnvidia-ml.so.1"};
    struct mt_sys *s = mt_sys_create(&o);
    MT_CHECK(s != NULL);
    MT_CHECK(mt_sys_gpu_count(s) == 0);
    mt_sys_sample(s, 5);
    MT_CHECK(mt_sys_window_json(s, 5, buf, sizeof buf) > 0);
    MT_CHECK_STR(buf, "{\"_timestamp\":5.000000,\"_runtime\":0.000000}");
    mt_sys_destroy(s);

    /* A root pid that is not in the tree: no proc.* keys, the rest stays. */
    snprintf(root, sizeof root, "%s/tests/fixtures/proc-t0", repo);
    o.procfs_root = root;
    o.root_pid = 4242;
    s = mt_sys_create(&o);
    mt_sys_sample(s, 5);
    cJSON *j = row(s, 5);
    MT_CHECK(has(j, "system.memory_percent"));
    MT_CHECK(!has(j, "system.proc.threads") && !has(j, "system.proc.memory_rss_mb"));
    cJSON_Delete(j);
    mt_sys_destroy(s);
}

MT_TEST(nvml_shutdown_on_destroy)
{
    void *h = dlopen(stub, RTLD_NOW);   /* keeps the stub loaded after dlclose */
    MT_CHECK(h != NULL);
    int *downs = dlsym(h, "stub_nvml_shutdowns");
    struct mt_sys_opts o = {.procfs_root = "/nonexistent", .nvml_path = stub};
    struct mt_sys *s = mt_sys_create(&o);
    MT_CHECK(mt_sys_gpu_count(s) == 2);
    MT_CHECK(*downs == 0);
    mt_sys_destroy(s);
    MT_CHECK(*downs == 1);
    dlclose(h);
}

static double now_real(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

MT_TEST(real_proc_tree_with_a_child)
{
    int pfd[2];
    MT_CHECK(pipe(pfd) == 0);
    pid_t child = fork();
    if (child == 0) {   /* a child holding a few fds, waiting for EOF */
        char c;
        close(pfd[1]);
        while (read(pfd[0], &c, 1) > 0) {}
        _exit(0);
    }
    close(pfd[0]);
    struct mt_sys_opts o = {.root_pid = getpid(), .disk_path = "/", .nvml_path = ""};
    struct mt_sys *s = mt_sys_create(&o);
    double t = now_real();
    volatile double x = 0;
    while (now_real() - t < 0.2)   /* burn 0.2 s of CPU */
        x += 1;
    mt_sys_sample(s, now_real());
    cJSON *j = row(s, now_real());
    /* The exact arithmetic is checked on fixture trees; on a busy machine the
     * share of a real core this process got can be small, but not zero. */
    MT_CHECK(num(j, "system.proc.cpu_percent") > 0);
    MT_CHECK(num(j, "system.proc.threads") >= 2);   /* this process and the child */
    MT_CHECK(num(j, "system.proc.fds") >= 6);
    MT_CHECK(num(j, "system.proc.memory_rss_mb") > 0.1);
    MT_CHECK(num(j, "system.memory_percent") > 0);
    MT_CHECK(num(j, "system.disk.usage_percent") > 0);
    cJSON_Delete(j);
    double us = mt_sys_sample_cost_us(s, 50);
    printf("    one sample of the real /proc: %.1f us\n", us);
    MT_CHECK(us > 0);
    mt_sys_destroy(s);
    close(pfd[1]);
    waitpid(child, NULL, 0);
}

MT_TEST(child_started_after_baseline_joins_the_tree)
{
    struct mt_sys_opts o = {.root_pid = getpid(), .nvml_path = ""};
    struct mt_sys *s = mt_sys_create(&o);
    mt_sys_sample(s, now_real());
    cJSON *j = row(s, now_real());
    double before = num(j, "system.proc.threads");
    cJSON_Delete(j);
    int pfd[2];
    MT_CHECK(pipe(pfd) == 0);
    pid_t child = fork();
    if (child == 0) {
        char c;
        close(pfd[1]);
        while (read(pfd[0], &c, 1) > 0) {}
        _exit(0);
    }
    close(pfd[0]);
    mt_sys_sample(s, now_real());
    j = row(s, now_real());
    MT_CHECK_NUM(num(j, "system.proc.threads"), before + 1);
    cJSON_Delete(j);
    close(pfd[1]);
    waitpid(child, NULL, 0);
    mt_sys_sample(s, now_real());
    j = row(s, now_real());
    MT_CHECK_NUM(num(j, "system.proc.threads"), before);
    cJSON_Delete(j);
    mt_sys_destroy(s);
}

struct sink {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int rows;
    char last[8192];
};

static void on_row(void *ctx, const char *r)
{
    struct sink *k = ctx;
    pthread_mutex_lock(&k->mu);
    k->rows++;
    snprintf(k->last, sizeof k->last, "%s", r);
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
}

MT_TEST(thread_emits_windows_and_a_last_partial_one)
{
    struct sink k = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, ""};
    struct mt_sys_opts o = {.root_pid = getpid(), .nvml_path = stub, .interval_ms = 10,
                            .window_ms = 50, .start_unix = now_real()};
    struct mt_sys_thread *t = mt_sys_thread_start(&o, on_row, &k);
    MT_CHECK(t != NULL);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    pthread_mutex_lock(&k.mu);
    while (k.rows < 2 && pthread_cond_timedwait(&k.cv, &k.mu, &dl) == 0) {}
    int seen = k.rows;
    pthread_mutex_unlock(&k.mu);
    MT_CHECK(seen >= 2);
    mt_sys_thread_stop(t);
    MT_CHECK(k.rows == seen + 1);   /* the partial last window */
    cJSON *j = cJSON_Parse(k.last);
    MT_CHECK(j && num(j, "_runtime") > 0 && has(j, "system.gpu.0.utilization_percent"));
    cJSON_Delete(j);

    o.interval_ms = 0;
    errno = 123;
    MT_CHECK(mt_sys_thread_start(&o, on_row, &k) == NULL && errno == 0);
    mt_sys_thread_stop(NULL);
}

int main(void) { return mt_test_main(); }
