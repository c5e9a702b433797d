/* The uploader against an in-memory backend: what it reads from the store,
 * the cursor, retries, the bounded finish, the lock. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>

#include "../../agent/mt_upload.h"
#include "../../agent/mt_upload_backend.h"
#include "mt_test.h"

/* ---- the fake server ---- */
#define SRV_MAX 20000
static struct {
    struct mt_upload_point pts[SRV_MAX];
    size_t n;
    int opens, fail_left, always_fail, refuse_open;
    int calls;
    char state[32];
    int files;
    unsigned last_prior[8], priors[16];
    int check_prior;
    pthread_mutex_t mu;
} srv = {.mu = PTHREAD_MUTEX_INITIALIZER};
static const struct mt_upload_io *srv_io;

static int fk_map(const char *key, int system, char *out, size_t outsz, double *scale)
{
    *scale = system && strstr(key, "bytes") ? 1e-6 : 1;
    snprintf(out, outsz, "%s%s", system ? "sys/" : "", key);
    return 0;
}
static void *fk_create(const struct mt_upload_opts *o, const struct mt_upload_io *io, char *e,
                       size_t n)
{
    (void)o, (void)e, (void)n;
    srv_io = io;
    return &srv;
}
static void fk_destroy(void *b) { (void)b; }
static enum mt_upload_result fk_open(void *b, const cJSON *run, cJSON *state)
{
    (void)b, (void)run;
    if (srv.refuse_open)
        return MT_UPLOAD_DROP;
    if (!cJSON_GetObjectItem(state, "id")) {
        srv.opens++;
        cJSON_AddStringToObject(state, "id", "R1");
    }
    return MT_UPLOAD_OK;
}
static enum mt_upload_result fk_points(void *b, const struct mt_upload_point *p, size_t n)
{
    (void)b;
    pthread_mutex_lock(&srv.mu);
    srv.calls++;
    if (srv.check_prior && n <= 8) {
        srv_io->count_prior(srv_io->ctx, p, n, srv.last_prior);
        if (srv.calls <= 16)
            srv.priors[srv.calls - 1] = srv.last_prior[0];
    }
    if (srv.always_fail || srv.fail_left > 0) {
        srv.fail_left--;
        pthread_mutex_unlock(&srv.mu);
        return MT_UPLOAD_RETRY;
    }
    for (size_t i = 0; i < n && srv.n < SRV_MAX; i++)
        srv.pts[srv.n++] = p[i];
    pthread_mutex_unlock(&srv.mu);
    return MT_UPLOAD_OK;
}
static enum mt_upload_result fk_update(void *b, const cJSON *run)
{
    (void)b, (void)run;
    return MT_UPLOAD_OK;
}
static enum mt_upload_result fk_state(void *b, const cJSON *run, const char *state)
{
    (void)b, (void)run;
    snprintf(srv.state, sizeof(srv.state), "%s", state);
    return MT_UPLOAD_OK;
}
static enum mt_upload_result fk_file(void *b, const char *name, const char *path)
{
    (void)b, (void)name, (void)path;
    srv.files++;
    return MT_UPLOAD_OK;
}
static double fk_ra(void *b) { (void)b; return 0; }

static const struct mt_upload_backend fake = {
    .name = "fake", .max_points = 1000,
    .map_key = fk_map, .create = fk_create, .destroy = fk_destroy,
    .open_run = fk_open, .update_run = fk_update, .send_points = fk_points,
    .set_state = fk_state, .put_file = fk_file, .retry_after = fk_ra,
};

/* ---- the store ---- */
static char dir[256];

static void put(const char *name, const char *text, const char *mode)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, mode);
    fputs(text, f);
    fclose(f);
}

static void make_run(const char *state, const char *metrics)
{
    snprintf(dir, sizeof(dir), "/tmp/mt-test-upload-%d", (int)getpid());
    mkdir(dir, 0700);
    char rj[1024];
    snprintf(rj, sizeof(rj),
             "{\"id\":\"r1\",\"project\":\"p\",\"name\":\"n\",\"state\":\"%s\","
             "\"start_time\":1.0,\"end_time\":2.0,\"config\":{\"lr\":0.1},"
             "\"metrics\":%s}\n",
             state, metrics ? metrics : "{}");
    put("run.json", rj, "w");
}

static void opts(struct mt_upload_opts *o)
{
    mt_upload_opts_init(o);
    o->backend_ops = &fake;
    o->url[0] = 'x';
    o->backoff_base_s = 0.01;
    o->backoff_max_s = 0.05;
    o->sync_timeout_s = 10;
    o->quiet = 1;
}

static size_t count_key(const char *key)
{
    size_t n = 0;
    for (size_t i = 0; i < srv.n; i++)
        n += strcmp(srv.pts[i].key, key) == 0;
    return n;
}

MT_TEST(sync_sends_each_point_once_and_waits_for_a_torn_line)
{
    make_run("finished", NULL);
    char line[256];
    for (int i = 0; i < 2500; i++) {
        snprintf(line, sizeof(line), "{\"_step\":%d,\"_timestamp\":%d.5,\"loss\":%d,\"s\":\"x\"}\n",
                 i, 1000 + i, i);
        put("history.jsonl", line, "a");
    }
    put("history.jsonl", "{\"_step\":2500,\"_timestamp\":9.0,\"lo", "a");
    struct mt_upload_opts o;
    opts(&o);
    char err[512];
    MT_CHECK(mt_upload_sync_run(dir, &o, err, sizeof(err)) == 0);
    MT_CHECK(srv.n == 2500);
    MT_CHECK(srv.opens == 1);
    MT_CHECK_STR(srv.state, "finished");
    MT_CHECK(srv.files == 1); /* run.json; the other artifacts do not exist */
    MT_CHECK(srv.pts[7].step == 7 && srv.pts[7].value == 7 && srv.pts[7].ts_ms == 1007500);
    /* the torn line completes */
    put("history.jsonl", "ss\":3}\n", "a");
    MT_CHECK(mt_upload_sync_run(dir, &o, err, sizeof(err)) == 0);
    MT_CHECK(srv.n == 2501);
    MT_CHECK(srv.opens == 1);
    MT_CHECK_STR(srv.pts[2500].key, "loss");
    MT_CHECK(srv.pts[2500].step == 2500 && srv.pts[2500].value == 3);
    /* a third sync sends nothing */
    MT_CHECK(mt_upload_sync_run(dir, &o, err, sizeof(err)) == 0);
    MT_CHECK(srv.n == 2501);
}

MT_TEST(uses_the_step_axis_of_a_defined_metric_across_restarts)
{
    make_run("finished", "{\"val_acc\":{\"step_metric\":\"epoch\"},\"tr*\":{\"step_metric\":\"batch\"}}");
    put("history.jsonl",
        "{\"_step\":0,\"_timestamp\":1,\"epoch\":3,\"val_acc\":0.5,\"train_loss\":2,\"batch\":10}\n"
        "{\"_step\":1,\"_timestamp\":2,\"val_acc\":0.6,\"loss\":\"NaN\"}\n",
        "w");
    struct mt_upload_opts o;
    opts(&o);
    o.batch_max = 2; /* the cursor lands inside rows */
    char err[512];
    MT_CHECK(mt_upload_sync_run(dir, &o, err, sizeof(err)) == 0);
    put("history.jsonl", "{\"_step\":2,\"_timestamp\":3,\"val_acc\":\"-Infinity\",\"train_loss\":1}\n",
        "a");
    MT_CHECK(mt_upload_sync_run(dir, &o, err, sizeof(err)) == 0);
    MT_CHECK(srv.n == 6); /* the axes epoch and batch are x, not metrics */
    MT_CHECK(count_key("val_acc") == 3);
    MT_CHECK(count_key("epoch") == 0 && count_key("batch") == 0);
    for (size_t i = 0; i < srv.n; i++) {
        const struct mt_upload_point *p = &srv.pts[i];
        if (strcmp(p->key, "val_acc") == 0)
            MT_CHECK(p->step == 3); /* the last epoch seen, kept in the cursor */
        if (strcmp(p->key, "train_loss") == 0)
            MT_CHECK(p->step == 10);
        if (strcmp(p->key, "loss") == 0)
            MT_CHECK(p->step == 1 && isnan(p->value));
        if (strcmp(p->key, "val_acc") == 0 && p->ts_ms == 3000)
            MT_CHECK(isinf(p->value) && p->value < 0);
    }
}

static void make_run_axes(const char *metrics, const char *axes)
{
    make_run("finished", metrics);
    char rj[1024];
    snprintf(rj, sizeof(rj),
             "{\"id\":\"r1\",\"project\":\"p\",\"state\":\"finished\",\"start_time\":1.0,"
             "\"config\":{},\"metrics\":%s,\"axes\":%s}\n", metrics, axes);
    put("run.json", rj, "w");
}

/* make_run_axes writes a finished run; this one is still going. */
static void set_state_running(void)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/run.json", dir);
    char *t = NULL;
    size_t cap = 0;
    FILE *f = fopen(p, "r");
    if (f && getdelim(&t, &cap, '\0', f) > 0) {
        char *s = strstr(t, "\"finished\"");
        if (s) {
            memmove(s + 9, s + 10, strlen(s + 10) + 1);
            memcpy(s, "\"running\"", 9);
        }
    }
    if (f)
        fclose(f);
    put("run.json", t ? t : "", "w");
    free(t);
}

/* A rule's `step` group: MLflow's step is the trainer's, 50, 100, 150. */
MT_TEST(an_integer_axis_is_the_step_and_not_a_metric)
{
    make_run_axes("{\"loss\":{\"step_metric\":\"step\"}}", "[\"step\"]");
    put("history.jsonl",
        "{\"_step\":0,\"_timestamp\":1,\"step\":50,\"loss\":3}\n"
        "{\"_step\":1,\"_timestamp\":2,\"step\":100,\"loss\":2}\n"
        "{\"_step\":2,\"_timestamp\":3,\"step\":150,\"loss\":1}\n", "w");
    struct mt_upload_opts o;
    opts(&o);
    char err[512];
    MT_CHECK(mt_upload_sync_run(dir, &o, err, sizeof(err)) == 0);
    MT_CHECK(srv.n == 3);
    for (size_t i = 0; i < srv.n; i++) {
        MT_CHECK_STR(srv.pts[i].key, "loss");
        MT_CHECK(srv.pts[i].step == (int64_t)(50 * (i + 1)));
    }
}

/* Hugging Face: `epoch` is fractional, `global_step` an integer axis. */
MT_TEST(a_fractional_axis_gives_way_to_an_integer_one)
{
    make_run_axes("{\"loss\":{\"step_metric\":\"epoch\"}}", "[\"epoch\",\"global_step\"]");
    put("history.jsonl",
        "{\"_step\":0,\"_timestamp\":1,\"epoch\":0.5,\"global_step\":10,\"loss\":3}\n"
        "{\"_step\":1,\"_timestamp\":2,\"epoch\":1.0,\"global_step\":20,\"loss\":2}\n", "w");
    struct mt_upload_opts o;
    opts(&o);
    char err[512];
    MT_CHECK(mt_upload_sync_run(dir, &o, err, sizeof(err)) == 0);
    MT_CHECK(srv.n == 2);
    MT_CHECK(srv.pts[0].step == 10 && srv.pts[1].step == 20); /* 1.0 stays fractional's */
    MT_CHECK(count_key("epoch") == 0 && count_key("global_step") == 0);
}

/* Only a fractional axis: the row counter is the step, and the axis goes up
 * as a metric of its own so that a chart can be drawn against it. */
MT_TEST(a_fractional_axis_alone_goes_up_as_a_metric_at_the_row_counter)
{
    make_run_axes("{\"loss\":{\"step_metric\":\"epoch\"},\"acc\":{\"step_metric\":\"epoch\"}}",
                  "[\"epoch\"]");
    put("history.jsonl",
        "{\"_step\":4,\"_timestamp\":1,\"epoch\":0.25,\"loss\":3,\"acc\":0.1}\n"
        "{\"_step\":5,\"_timestamp\":2,\"epoch\":0.5,\"loss\":2}\n", "w");
    struct mt_upload_opts o;
    opts(&o);
    char err[512];
    MT_CHECK(mt_upload_sync_run(dir, &o, err, sizeof(err)) == 0);
    MT_CHECK(count_key("loss") == 2 && count_key("acc") == 1);
    MT_CHECK(count_key("epoch") == 2); /* once per row, not once per metric */
    for (size_t i = 0; i < srv.n; i++) {
        MT_CHECK(srv.pts[i].step == (srv.pts[i].ts_ms == 1000 ? 4 : 5));
        if (strcmp(srv.pts[i].key, "epoch") == 0)
            MT_CHECK(srv.pts[i].value == (srv.pts[i].step == 5 ? 0.5 : 0.25));
    }
}

MT_TEST(system_rows_get_their_line_as_step_and_scaled_values)
{
    make_run("finished", NULL);
    put("system.jsonl",
        "{\"_timestamp\":10,\"_runtime\":0,\"cpu\":5,\"net_bytes\":2000000}\n"
        "{\"_timestamp\":25,\"_runtime\":15,\"cpu\":6,\"net_bytes\":3000000}\n",
        "w");
    struct mt_upload_opts o;
    opts(&o);
    char err[512];
    MT_CHECK(mt_upload_sync_run(dir, &o, err, sizeof(err)) == 0);
    MT_CHECK(srv.n == 4);
    MT_CHECK_STR(srv.pts[3].key, "sys/net_bytes");
    MT_CHECK(srv.pts[3].step == 1 && srv.pts[3].value == 3 && srv.pts[3].ts_ms == 25000);
}

MT_TEST(retries_the_same_batch_until_it_goes_through)
{
    make_run("failed", NULL);
    put("history.jsonl", "{\"_step\":0,\"_timestamp\":1,\"a\":1,\"b\":2}\n", "w");
    srv.fail_left = 3;
    struct mt_upload_opts o;
    opts(&o);
    char err[512];
    MT_CHECK(mt_upload_sync_run(dir, &o, err, sizeof(err)) == 0);
    MT_CHECK(srv.n == 2);
    MT_CHECK(srv.calls == 4);
    MT_CHECK_STR(srv.state, "failed");
}

MT_TEST(counts_identical_points_before_the_batch)
{
    make_run("finished", NULL);
    put("history.jsonl",
        "{\"_step\":5,\"_timestamp\":1,\"a\":1}\n"
        "{\"_step\":5,\"_timestamp\":1,\"a\":1,\"b\":\"NaN\"}\n"
        "{\"_step\":6,\"_timestamp\":1,\"b\":\"NaN\"}\n"
        "{\"_step\":5,\"_timestamp\":1,\"a\":2,\"b\":\"NaN\"}\n",
        "w");
    struct mt_upload_opts o;
    opts(&o);
    o.batch_max = 1;
    srv.check_prior = 1;
    char err[512];
    MT_CHECK(mt_upload_sync_run(dir, &o, err, sizeof(err)) == 0);
    MT_CHECK(srv.n == 6);
    /* batches: a@5=1, a@5=1, b@5=NaN, b@6=NaN, a@5=2, b@5=NaN */
    static const unsigned want[] = {0, 1, 0, 0, 0, 1};
    for (int i = 0; i < 6; i++)
        MT_CHECK(srv.priors[i] == want[i]);
}

MT_TEST(prior_count_sees_duplicates_of_earlier_batches)
{
    make_run("finished", NULL);
    put("history.jsonl",
        "{\"_step\":5,\"_timestamp\":1,\"a\":1}\n"
        "{\"_step\":5,\"_timestamp\":1,\"a\":1}\n"
        "{\"_step\":5,\"_timestamp\":1,\"a\":1}\n",
        "w");
    struct mt_upload_opts o;
    opts(&o);
    o.batch_max = 1;
    srv.check_prior = 1;
    char err[512];
    MT_CHECK(mt_upload_sync_run(dir, &o, err, sizeof(err)) == 0);
    MT_CHECK(srv.n == 3);
    MT_CHECK(srv.last_prior[0] == 2); /* the third copy has two before it */
}

MT_TEST(finish_returns_within_its_timeout_when_the_server_never_answers)
{
    make_run("finished", NULL);
    put("history.jsonl", "{\"_step\":0,\"_timestamp\":1,\"a\":1}\n", "w");
    srv.always_fail = 1;
    struct mt_upload_opts o;
    opts(&o);
    o.backoff_max_s = 5;
    char err[512];
    struct mt_uploader *u = mt_uploader_start(dir, &o, err, sizeof(err));
    MT_CHECK(u != NULL);
    usleep(200000);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    MT_CHECK(mt_uploader_finish(u, 0.5) == 1);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double took = (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
    MT_CHECK(took < 0.8);
    MT_CHECK(srv.n == 0);
    /* the server comes back: sync sends it */
    srv.always_fail = 0;
    MT_CHECK(mt_upload_sync_run(dir, &o, err, sizeof(err)) == 0);
    MT_CHECK(srv.n == 1);
}

MT_TEST(thread_sends_appended_rows_within_the_interval)
{
    make_run("running", "{\"a\":{}}");
    struct mt_upload_opts o;
    opts(&o);
    o.interval_s = 0.2;
    char err[512];
    struct mt_uploader *u = mt_uploader_start(dir, &o, err, sizeof(err));
    MT_CHECK(u != NULL);
    put("history.jsonl", "{\"_step\":0,\"_timestamp\":1,\"a\":1}\n", "a");
    mt_uploader_notify(u);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    size_t seen = 0;
    for (int i = 0; i < 300 && !seen; i++) {
        pthread_mutex_lock(&srv.mu);
        seen = srv.n;
        pthread_mutex_unlock(&srv.mu);
        usleep(5000);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double took = (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
    MT_CHECK(seen == 1);
    MT_CHECK(took < 0.6);
    put("history.jsonl", "{\"_step\":1,\"_timestamp\":2,\"a\":2}\n", "a");
    make_run("finished", NULL);
    MT_CHECK(mt_uploader_finish(u, 5) == 0);
    MT_CHECK(srv.n == 2);
    MT_CHECK_STR(srv.state, "finished");
}

static size_t points_now(void)
{
    pthread_mutex_lock(&srv.mu);
    size_t n = srv.n;
    pthread_mutex_unlock(&srv.mu);
    return n;
}

/* A row whose metric run.json does not describe yet waits for it, so that
 * its first point already goes out at its step_metric's value. */
MT_TEST(a_row_waits_until_run_json_describes_its_metric)
{
    make_run("running", "{}");
    struct mt_upload_opts o;
    opts(&o);
    o.interval_s = 0.05;
    char err[512];
    put("history.jsonl", "{\"_step\":0,\"_timestamp\":1,\"epoch\":7,\"loss\":1}\n", "w");
    struct mt_uploader *u = mt_uploader_start(dir, &o, err, sizeof(err));
    MT_CHECK(u != NULL);
    for (int i = 0; i < 40; i++) { /* 10 intervals: held */
        mt_uploader_notify(u);
        usleep(12500);
    }
    MT_CHECK(points_now() == 0);
    make_run_axes("{\"loss\":{\"step_metric\":\"epoch\"}}", "[\"epoch\"]");
    set_state_running();
    for (int i = 0; i < 400 && points_now() == 0; i++) {
        mt_uploader_notify(u);
        usleep(10000);
    }
    MT_CHECK(points_now() == 1);
    MT_CHECK(srv.pts[0].step == 7);
    make_run_axes("{\"loss\":{\"step_metric\":\"epoch\"}}", "[\"epoch\"]");
    MT_CHECK(mt_uploader_finish(u, 5) == 0);
    MT_CHECK(srv.n == 1);
}

MT_TEST(sync_gives_up_on_a_run_its_agent_holds_past_its_timeout)
{
    make_run("running", NULL);
    struct mt_upload_opts o;
    opts(&o);
    char err[512];
    struct mt_uploader *u = mt_uploader_start(dir, &o, err, sizeof(err));
    MT_CHECK(u != NULL);
    usleep(100000);
    /* a live run is its agent's: no waiting */
    MT_CHECK(mt_upload_sync_run(dir, &o, err, sizeof(err)) == -EBUSY);
    MT_CHECK(strstr(err, "still running") != NULL);
    /* an ended run whose agent holds on past the sync's timeout */
    make_run("finished", NULL);
    o.sync_timeout_s = 0.3;
    MT_CHECK(mt_upload_sync_run(dir, &o, err, sizeof(err)) == -EBUSY);
    MT_CHECK(strstr(err, "after") != NULL);
    mt_uploader_finish(u, 1);
    MT_CHECK(mt_upload_sync_run(dir, &o, err, sizeof(err)) == 0);
}

static void *finish_later(void *arg)
{
    usleep(400 * 1000);
    mt_uploader_finish(arg, 0); /* no time to flush: it leaves everything */
    return NULL;
}

MT_TEST(sync_waits_for_the_agent_then_sends_what_it_left)
{
    make_run("finished", NULL);
    put("history.jsonl", "{\"_step\":0,\"_timestamp\":1,\"a\":1}\n", "w");
    struct mt_upload_opts o;
    opts(&o);
    o.interval_s = 60; /* the agent sends nothing before its end */
    char err[512];
    struct mt_uploader *u = mt_uploader_start(dir, &o, err, sizeof(err));
    MT_CHECK(u != NULL);
    usleep(100000);
    struct mt_upload_live live = {.mu = PTHREAD_MUTEX_INITIALIZER};
    o.live = &live;
    pthread_t th;
    pthread_create(&th, NULL, finish_later, u);
    MT_CHECK(mt_upload_sync_run(dir, &o, err, sizeof(err)) == 0);
    pthread_join(th, NULL);
    MT_CHECK(count_key("a") == 1);
    MT_CHECK(live.waiting_for_agent == 0);
}

MT_TEST(a_refused_run_keeps_its_cursor)
{
    make_run("finished", NULL);
    put("history.jsonl", "{\"_step\":0,\"_timestamp\":1,\"a\":1}\n", "w");
    srv.refuse_open = 1;
    struct mt_upload_opts o;
    opts(&o);
    char err[512];
    MT_CHECK(mt_upload_sync_run(dir, &o, err, sizeof(err)) == 1);
    MT_CHECK(srv.n == 0);
    srv.refuse_open = 0;
    MT_CHECK(mt_upload_sync_run(dir, &o, err, sizeof(err)) == 0);
    MT_CHECK(srv.n == 1);
}

MT_TEST(offline_modes_turn_upload_off)
{
    struct mt_upload_opts o;
    mt_upload_opts_init(&o);
    MT_CHECK(!mt_upload_enabled(&o));
    snprintf(o.url, sizeof(o.url), "http://127.0.0.1:5000");
    MT_CHECK(mt_upload_enabled(&o));
    setenv("WANDB_MODE", "dryrun", 1);
    MT_CHECK(!mt_upload_enabled(&o));
    unsetenv("WANDB_MODE");
    setenv("METRICTAP_MODE", "offline", 1);
    MT_CHECK(!mt_upload_enabled(&o));
    setenv("METRICTAP_MODE", "online", 1);
    MT_CHECK(mt_upload_enabled(&o));
    char err[256];
    setenv("METRICTAP_UPLOAD_FINISH_TIMEOUT", "soon", 1);
    MT_CHECK(mt_upload_opts_from_env(&o, err, sizeof(err)) == -EINVAL);
    MT_CHECK(strstr(err, "METRICTAP_UPLOAD_FINISH_TIMEOUT") != NULL);
    setenv("METRICTAP_UPLOAD_FINISH_TIMEOUT", "5s", 1);
    MT_CHECK(mt_upload_opts_from_env(&o, err, sizeof(err)) == 0);
    MT_CHECK_NUM(o.finish_timeout_s, 5);
}

int main(void)
{
    int r = mt_test_main();
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf /tmp/mt-test-upload-*");
    if (system(cmd) != 0)
        r = 1;
    return r;
}
