/* The W&B backend: a W&B offline run directory, written as the run goes, in
 * W&B's own transaction-log format (FORMATS.md 1), and handed to W&B's own
 * client (`wandb sync`) at the end when the mode is online.
 *
 *   $WANDB_DIR/wandb/offline-run-<YYYYMMDD_HHMMSS>-<id>/run-<id>.wandb
 *   $WANDB_DIR/wandb/latest-run -> offline-run-...
 *
 * Records, in the order the SDK writes them: Header, Run (identity, config,
 * git), Metric (each metric's step_metric, summary modes and goal, from
 * run.json's metrics), then as they come History (each row with _step,
 * _runtime, _timestamp), Summary (whenever summary.json changes; sync does
 * not derive it), Stats (system rows, W&B's names), OutputRaw (output.log),
 * and at the end Files (crash.txt, diff.patch, output.log copied into
 * files/), Exit and Final.
 *
 * Its part of the cursor: {"dir", "file", "size", "num": records written,
 * "config_crc", "run_crc", "defined": {metric: crc}, "exit": true once Exit
 * is written, "synced": true once `wandb sync` took it, "told": true once a
 * missing `wandb` was reported}. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "../../common/mt_enc.h"
#include "../../common/mt_json.h"
#include "../mt_upload_backend.h"
#include "mt_outfile.h"
#include "mt_state_json.h"
#include "mt_wandb.h"

/* wandb/proto/wandb_internal.proto */
enum { REC_NUM = 1, REC_HISTORY = 2, REC_SUMMARY = 3, REC_CONFIG = 5, REC_FILES = 6,
       REC_STATS = 7, REC_METRIC = 12, REC_OUTPUT_RAW = 13, REC_RUN = 17, REC_EXIT = 18,
       REC_FINAL = 20, REC_HEADER = 21 };
enum { RUN_ID = 1, RUN_ENTITY = 2, RUN_PROJECT = 3, RUN_CONFIG = 4, RUN_GROUP = 6,
       RUN_JOB_TYPE = 7, RUN_DISPLAY_NAME = 8, RUN_NOTES = 9, RUN_TAGS = 10, RUN_HOST = 13,
       RUN_STARTING_STEP = 14, RUN_START_TIME = 17, RUN_RESUMED = 18, RUN_GIT = 21 };
enum { GIT_REMOTE = 1, GIT_COMMIT = 2 };
enum { ITEM_KEY = 1, ITEM_VALUE_JSON = 16 };           /* History/Summary/Config/Stats items */
enum { HISTORY_ITEM = 1, HISTORY_STEP = 2, STEP_NUM = 1 };
enum { UPDATE = 1 };                                     /* SummaryRecord, ConfigRecord */
enum { STATS_TIMESTAMP = 2, STATS_ITEM = 3 };
enum { OUT_TYPE = 1, OUT_TIMESTAMP = 2, OUT_LINE = 3, OUT_STDOUT = 1 };
enum { FILES_FILE = 1, FILE_PATH = 1, FILE_POLICY = 2, POLICY_END = 1 };
enum { EXIT_CODE = 1, EXIT_RUNTIME = 2 };
enum { HEADER_VERSION = 1, VERSION_PRODUCER = 1, VERSION_MIN_CONSUMER = 2 };
enum { METRIC_NAME = 1, METRIC_STEP_METRIC = 4, METRIC_OPTIONS = 6, METRIC_SUMMARY = 7,
       METRIC_GOAL = 8 };
enum { OPT_STEP_SYNC = 1, OPT_DEFINED = 3 };
enum { SUM_MIN = 1, SUM_MAX = 2, SUM_MEAN = 3, SUM_BEST = 4, SUM_LAST = 5, SUM_NONE = 6,
       SUM_FIRST = 8 };
enum { GOAL_MINIMIZE = 1, GOAL_MAXIMIZE = 2 };
enum { TS_SECONDS = 1, TS_NANOS = 2 };

#define RECORD_MAX (32u << 20)
#define OUTPUT_CHUNK (64 << 10) /* bytes of console in one OutputRaw record */

struct wb {
    const struct mt_upload_io *io;
    struct mt_upload_opts o;
    char root[PATH_MAX];      /* $WANDB_DIR/wandb */
    cJSON *state;
    int dirfd;
    struct mt_outfile file;
    struct mt_enc rec, out;   /* one Record; the framed records of a call */
    cJSON *summary_sent;      /* W&B summary key -> value_json last written */
    cJSON *metrics;           /* run.json's metrics, as last read */
    int cpu_count;
    int sync_tried;           /* this process ran `wandb sync` already */
    double num, next_step;    /* records written, the next _step (state's "num", "next_step") */
    unsigned long long write_errors;
};








static void event_msg(struct wb *b, const char *name, const char *kind, const char *msg)
{
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "kind", kind);
    cJSON_AddStringToObject(f, "message", msg);
    mt_sj_event(b->io, name, f);
}

static void pb_str(struct mt_enc *e, unsigned field, const char *s)
{
    if (s)
        mt_wandb__pb_text(e, field, s, strlen(s));
}

static void pb_item(struct mt_enc *e, unsigned field, const char *key, const cJSON *v)
{
    char *j = mt_wandb__value_json(v);
    mt_enc_pb_begin(e, field);
    pb_str(e, ITEM_KEY, key);
    pb_str(e, ITEM_VALUE_JSON, j ? j : "null");
    mt_enc_pb_end(e);
    free(j);
}

static void pb_timestamp(struct mt_enc *e, unsigned field, double t)
{
    double s = floor(t);
    mt_enc_pb_begin(e, field);
    mt_enc_pb_varint(e, TS_SECONDS, (uint64_t)(int64_t)s);
    mt_enc_pb_varint(e, TS_NANOS, (uint64_t)(int64_t)llround((t - s) * 1e9) % 1000000000u);
    mt_enc_pb_end(e);
}

/* ---- records ---- */

static void record_begin(struct wb *b, unsigned type)
{
    b->num++;
    mt_enc_pb_varint(&b->rec, REC_NUM, (uint64_t)b->num);
    mt_enc_pb_begin(&b->rec, type);
}

/* Ends the record and frames it after what is pending. */
static void record_end(struct wb *b)
{
    mt_enc_pb_end(&b->rec);
    if (b->rec.overflow) {
        b->write_errors++;
        event_msg(b, "upload_write_error", "record", "a record over 32 MiB; dropped");
    } else {
        mt_enc_wandb_record(&b->out, b->file.size, b->rec.p, b->rec.len);
    }
    mt_enc_reset(&b->rec);
}

/* Writes what is pending; RETRY (and nothing written) when the disk refuses. */
static enum mt_upload_result flush_out(struct wb *b, double num_before)
{
    int r = b->out.overflow ? -EFBIG : mt_outfile_append(&b->file, b->out.p, b->out.len);
    mt_enc_reset(&b->out);
    if (r != 0) {
        b->write_errors++;
        b->num = num_before;
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "kind", "transaction log");
        cJSON_AddNumberToObject(f, "errno", -r);
        cJSON_AddStringToObject(f, "message", strerror(-r));
        cJSON_AddNumberToObject(f, "count", (double)b->write_errors);
        mt_sj_event(b->io, "upload_write_error", f);
        return MT_UPLOAD_RETRY;
    }
    mt_sj_set_num(b->state, "size", (double)b->file.size);
    mt_sj_set_num(b->state, "num", b->num);
    mt_sj_set_num(b->state, "next_step", b->next_step);
    return MT_UPLOAD_OK;
}

/* The items of a ConfigRecord: top-level keys, a nested object as its JSON. */
static void config_items(struct wb *b, const cJSON *config)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, config) pb_item(&b->rec, UPDATE, it->string, it);
}

static uint32_t crc_of(const cJSON *v)
{
    char *t = v ? mt_json_print_literal(v, 0) : NULL;
    uint32_t c = t ? mt_enc_crc32(0, t, strlen(t)) : 0;
    free(t);
    return c;
}

/* The identity of the run: what a new Run record is written for. */
static uint32_t identity_crc(const cJSON *run)
{
    static const char *const keys[] = {"name", "group", "job_type", "notes", "tags", "project"};
    uint32_t c = 0;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        c = c * 31 + crc_of(cJSON_GetObjectItemCaseSensitive(run, keys[i]));
    return c;
}

static void write_run(struct wb *b, const cJSON *run, int resumed)
{
    const cJSON *git = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(run, "metadata"), "git");
    record_begin(b, REC_RUN);
    pb_str(&b->rec, RUN_ID, mt_sj_str(b->state, "run_id"));
    pb_str(&b->rec, RUN_ENTITY, b->o.wandb_entity[0] ? b->o.wandb_entity : NULL);
    pb_str(&b->rec, RUN_PROJECT, mt_sj_str(run, "project"));
    mt_enc_pb_begin(&b->rec, RUN_CONFIG);
    config_items(b, cJSON_GetObjectItemCaseSensitive(run, "config"));
    mt_enc_pb_end(&b->rec);
    pb_str(&b->rec, RUN_GROUP, mt_sj_str(run, "group"));
    pb_str(&b->rec, RUN_JOB_TYPE, mt_sj_str(run, "job_type"));
    pb_str(&b->rec, RUN_DISPLAY_NAME, mt_sj_str(run, "name"));
    pb_str(&b->rec, RUN_NOTES, mt_sj_str(run, "notes"));
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(run, "tags"))
        if (cJSON_IsString(t)) pb_str(&b->rec, RUN_TAGS, t->valuestring);
    pb_str(&b->rec, RUN_HOST, mt_sj_str(run, "host"));
    if (resumed) {
        mt_enc_pb_varint(&b->rec, RUN_STARTING_STEP, (uint64_t)b->next_step);
        mt_enc_pb_varint(&b->rec, RUN_RESUMED, 1);
    }
    pb_timestamp(&b->rec, RUN_START_TIME, mt_sj_num(run, "start_time", (double)time(NULL)));
    if (mt_sj_str(git, "remote") || mt_sj_str(git, "commit")) {
        mt_enc_pb_begin(&b->rec, RUN_GIT);
        pb_str(&b->rec, GIT_REMOTE, mt_sj_str(git, "remote"));
        pb_str(&b->rec, GIT_COMMIT, mt_sj_str(git, "commit"));
        mt_enc_pb_end(&b->rec);
    }
    record_end(b);
    mt_sj_set_num(b->state, "run_crc", identity_crc(run));
    mt_sj_set_num(b->state, "config_crc", crc_of(cJSON_GetObjectItemCaseSensitive(run, "config")));
}

/* define_metric: a Metric record for each metric of run.json that is new or
 * changed (step_metric, summary modes, goal). */
static void write_metrics(struct wb *b, const cJSON *run)
{
    cJSON *defined = cJSON_GetObjectItemCaseSensitive(b->state, "defined");
    if (!cJSON_IsObject(defined)) {
        cJSON_DeleteItemFromObjectCaseSensitive(b->state, "defined");
        defined = cJSON_AddObjectToObject(b->state, "defined");
    }
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(run, "metrics"))
    {
        uint32_t c = crc_of(m);
        if (!m->string || mt_sj_num(defined, m->string, -1) == (double)c)
            continue;
        const char *axis = mt_sj_str(m, "step_metric");
        record_begin(b, REC_METRIC);
        pb_str(&b->rec, METRIC_NAME, m->string);
        if (axis && strcmp(axis, m->string) != 0)
            pb_str(&b->rec, METRIC_STEP_METRIC, axis);
        mt_enc_pb_begin(&b->rec, METRIC_OPTIONS);
        if (axis)
            mt_enc_pb_varint(&b->rec, OPT_STEP_SYNC, 1);
        mt_enc_pb_varint(&b->rec, OPT_DEFINED, 1);
        mt_enc_pb_end(&b->rec);
        /* the default, the last value alone, is W&B's plain summary: no modes */
        const cJSON *modes = cJSON_GetObjectItemCaseSensitive(m, "summary");
        int only_last = cJSON_GetArraySize(modes) == 1 &&
                        cJSON_IsString(cJSON_GetArrayItem(modes, 0)) &&
                        strcmp(cJSON_GetArrayItem(modes, 0)->valuestring, "last") == 0;
        if (cJSON_GetArraySize(modes) && !only_last) {
            static const struct { const char *name; unsigned field; } sm[] = {
                {"min", SUM_MIN}, {"max", SUM_MAX}, {"mean", SUM_MEAN}, {"best", SUM_BEST},
                {"last", SUM_LAST}, {"none", SUM_NONE}, {"first", SUM_FIRST}};
            mt_enc_pb_begin(&b->rec, METRIC_SUMMARY);
            const cJSON *s;
            cJSON_ArrayForEach(s, modes) for (size_t i = 0; i < sizeof(sm) / sizeof(sm[0]); i++)
                if (cJSON_IsString(s) && strcmp(s->valuestring, sm[i].name) == 0)
                    mt_enc_pb_varint(&b->rec, sm[i].field, 1);
            mt_enc_pb_end(&b->rec);
        }
        const char *goal = mt_sj_str(m, "goal");
        if (goal && (strcmp(goal, "minimize") == 0 || strcmp(goal, "maximize") == 0))
            mt_enc_pb_varint(&b->rec, METRIC_GOAL,
                             strcmp(goal, "minimize") == 0 ? GOAL_MINIMIZE : GOAL_MAXIMIZE);
        record_end(b);
        mt_sj_set_num(defined, m->string, c);
    }
}

/* ---- the run directory ---- */

/* latest-run -> dirname, replaced atomically; left alone when it is not a
 * link (then it is not ours). */
static void link_latest(struct wb *b, int rootfd, const char *dirname)
{
    struct stat st;
    if (fstatat(rootfd, "latest-run", &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISLNK(st.st_mode)) {
        event_msg(b, "upload_skipped", "latest-run", "wandb/latest-run is not a link; left alone");
        return;
    }
    char tmp[64];
    snprintf(tmp, sizeof(tmp), "latest-run.tmp.%d", (int)getpid());
    unlinkat(rootfd, tmp, 0);
    if (symlinkat(dirname, rootfd, tmp) == 0 && renameat(rootfd, tmp, rootfd, "latest-run") != 0)
        unlinkat(rootfd, tmp, 0);
}

/* A run id W&B accepts: none of :;,#?/'` and no spaces. */
static void wandb_id(const char *id, char *out, size_t outsz)
{
    size_t n = 0;
    for (const char *p = id ? id : "run"; *p && n + 1 < outsz; p++)
        out[n++] = strchr(":;,#?/'` ", *p) ? '_' : *p;
    out[n] = '\0';
}

/* Creates a new offline-run directory and its log with Header and Run. */
static enum mt_upload_result new_segment(struct wb *b, const cJSON *run, int resumed, char *err,
                                         size_t errsz)
{
    char id[128], dirname[300], fname[300], stamp[32];
    wandb_id(mt_sj_str(run, "id"), id, sizeof(id));
    time_t t = resumed ? time(NULL) : (time_t)mt_sj_num(run, "start_time", (double)time(NULL));
    snprintf(fname, sizeof(fname), "run-%s.wandb", id);
    int rootfd = mt_outdir_open(b->root, NULL, 0, err, errsz);
    if (rootfd < 0)
        return MT_UPLOAD_DROP;
    /* The directory is named to the second: a run resumed within the second
     * its last part started takes the next free second. */
    for (int tries = 0;; tries++, t++) {
        struct tm tm;
        localtime_r(&t, &tm);
        strftime(stamp, sizeof(stamp), "%Y%m%d_%H%M%S", &tm);
        snprintf(dirname, sizeof(dirname), "offline-run-%s-%s", stamp, id);
        char log[sizeof dirname + sizeof fname + 1];
        snprintf(log, sizeof log, "%s/%s", dirname, fname);
        if (!resumed || tries == 60 || faccessat(rootfd, log, F_OK, AT_SYMLINK_NOFOLLOW) != 0)
            break;
    }
    const char *parts[] = {dirname};
    b->dirfd = mt_outdir_open(b->root, parts, 1, err, errsz);
    if (b->dirfd >= 0 && mkdirat(b->dirfd, "files", 0700) != 0 && errno != EEXIST) {
        snprintf(err, errsz, "cannot create %s/%s/files: %s", b->root, dirname, strerror(errno));
        close(b->dirfd);
        b->dirfd = -1;
    }
    if (b->dirfd < 0 ||
        mt_outfile_open(&b->file, b->dirfd, fname, 1, 0, err, errsz) != 0) {
        close(rootfd);
        return MT_UPLOAD_DROP;
    }
    link_latest(b, rootfd, dirname);
    close(rootfd);
    char abs[PATH_MAX + 400];
    snprintf(abs, sizeof(abs), "%s/%s", b->root, dirname);
    mt_sj_set_str(b->state, "dir", abs);
    mt_sj_set_str(b->state, "file", fname);
    mt_sj_set_str(b->state, "run_id", id);
    mt_sj_set_num(b->state, "size", 0);
    cJSON_DeleteItemFromObjectCaseSensitive(b->state, "defined");
    cJSON_DeleteItemFromObjectCaseSensitive(b->state, "exit");
    cJSON_DeleteItemFromObjectCaseSensitive(b->state, "synced");
    cJSON_Delete(b->summary_sent);
    b->summary_sent = cJSON_CreateObject();
    double num0 = b->num;
    mt_enc_wandb_header(&b->out);
    record_begin(b, REC_HEADER);
    mt_enc_pb_begin(&b->rec, HEADER_VERSION);
    pb_str(&b->rec, VERSION_PRODUCER, "metrictap");
    pb_str(&b->rec, VERSION_MIN_CONSUMER, "0.18.0");
    mt_enc_pb_end(&b->rec);
    record_end(b);
    write_run(b, run, resumed);
    write_metrics(b, run);
    return flush_out(b, num0);
}

static void wb_destroy(void *p)
{
    struct wb *b = p;
    if (!b)
        return;
    mt_outfile_close(&b->file);
    if (b->dirfd >= 0)
        close(b->dirfd);
    mt_enc_free(&b->rec);
    mt_enc_free(&b->out);
    cJSON_Delete(b->summary_sent);
    cJSON_Delete(b->metrics);
    free(b);
}

static void *wb_create(const struct mt_upload_opts *o, const struct mt_upload_io *io, char *err,
                       size_t errsz)
{
    struct wb *b = calloc(1, sizeof(*b));
    if (!b) {
        snprintf(err, errsz, "wandb: out of memory");
        return NULL;
    }
    b->io = io;
    b->o = *o;
    b->dirfd = -1;
    b->file.fd = -1;
    b->summary_sent = cJSON_CreateObject();
    const char *dir = o->wandb_dir[0] ? o->wandb_dir : ".";
    char cwd[PATH_MAX] = ".";
    if (dir[0] != '/' && !getcwd(cwd, sizeof(cwd)))
        snprintf(cwd, sizeof(cwd), ".");
    if (dir[0] == '/')
        snprintf(b->root, sizeof(b->root), "%s/wandb", dir);
    else if (strcmp(dir, ".") == 0)
        snprintf(b->root, sizeof(b->root), "%s/wandb", cwd);
    else
        snprintf(b->root, sizeof(b->root), "%s/%s/wandb", cwd, dir);
    mt_enc_init(&b->rec, RECORD_MAX);
    mt_enc_init(&b->out, 2 * RECORD_MAX);
    return b;
}

static int wb_check(const struct mt_upload_opts *o, char *err, size_t errsz)
{
    struct wb *b = wb_create(o, NULL, err, errsz);
    if (!b)
        return -ENOMEM;
    int fd = mt_outdir_open(b->root, NULL, 0, err, errsz);
    wb_destroy(b);
    if (fd < 0)
        return fd;
    close(fd);
    return 0;
}

static void take_run_facts(struct wb *b, const cJSON *run)
{
    const cJSON *host = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(run, "metadata"), "host");
    b->cpu_count = (int)mt_sj_num(host, "cpu_count", 0);
    cJSON_Delete(b->metrics);
    b->metrics = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(run, "metrics"), 1);
}

static enum mt_upload_result wb_open_run(void *p, const cJSON *run, cJSON *state)
{
    struct wb *b = p;
    char err[1200];
    b->state = state;
    b->num = mt_sj_num(state, "num", 0);
    b->next_step = mt_sj_num(state, "next_step", 0);
    take_run_facts(b, run);
    const char *dir = mt_sj_str(state, "dir"), *fname = mt_sj_str(state, "file");
    enum mt_upload_result res = MT_UPLOAD_OK;
    if (!dir || !fname) {
        res = new_segment(b, run, 0, err, sizeof(err));
    } else if ((b->dirfd = mt_outdir_open(dir, NULL, 0, err, sizeof(err))) < 0 ||
               mt_outfile_open(&b->file, b->dirfd, fname, 0, (uint64_t)mt_sj_num(state, "size", 0),
                               err, sizeof(err)) != 0) {
        res = MT_UPLOAD_DROP;
    } else if (b->file.shorter) {
        event_msg(b, "upload_write_error", "transaction log",
                  "the .wandb file is shorter than written; going on from its end");
    }
    if (res == MT_UPLOAD_DROP)
        event_msg(b, "upload_refused", "wandb dir", err);
    return res;
}

static enum mt_upload_result wb_update_run(void *p, const cJSON *run)
{
    struct wb *b = p;
    double num0 = b->num;
    take_run_facts(b, run);
    const cJSON *config = cJSON_GetObjectItemCaseSensitive(run, "config");
    if (mt_sj_num(b->state, "run_crc", -1) != (double)identity_crc(run)) {
        write_run(b, run, 0);
    } else if (mt_sj_num(b->state, "config_crc", -1) != (double)crc_of(config)) {
        record_begin(b, REC_CONFIG);
        config_items(b, config);
        record_end(b);
        mt_sj_set_num(b->state, "config_crc", crc_of(config));
    }
    write_metrics(b, run);
    return b->out.len ? flush_out(b, num0) : MT_UPLOAD_OK;
}

/* ---- rows ---- */

static void history_record(struct wb *b, const cJSON *row)
{
    const cJSON *it;
    record_begin(b, REC_HISTORY);
    cJSON_ArrayForEach(it, row) pb_item(&b->rec, HISTORY_ITEM, it->string, it);
    double step = mt_sj_num(row, "_step", 0);
    mt_enc_pb_begin(&b->rec, HISTORY_STEP);
    if (step > 0)
        mt_enc_pb_varint(&b->rec, STEP_NUM, (uint64_t)step);
    mt_enc_pb_end(&b->rec);
    record_end(b);
    b->next_step = step + 1;
}

static void stats_record(struct wb *b, const cJSON *row)
{
    const cJSON *it;
    record_begin(b, REC_STATS);
    pb_timestamp(&b->rec, STATS_TIMESTAMP, mt_sj_num(row, "_timestamp", (double)time(NULL)));
    cJSON_ArrayForEach(it, row)
    {
        char key[256], num[64];
        double scale = 1, v;
        if (!cJSON_IsNumber(it) ||
            mt_wandb__stats_key(it->string, b->cpu_count, key, sizeof(key), &scale) != 0)
            continue;
        v = it->valuedouble * scale;
        mt_json_format_double(v, num, sizeof(num));
        mt_enc_pb_begin(&b->rec, STATS_ITEM);
        pb_str(&b->rec, ITEM_KEY, key);
        pb_str(&b->rec, ITEM_VALUE_JSON, isfinite(v) ? num : "null");
        mt_enc_pb_end(&b->rec);
    }
    record_end(b);
}

static enum mt_upload_result wb_send_rows(void *p, const struct mt_upload_row *rows, size_t n)
{
    struct wb *b = p;
    double num0 = b->num;
    for (size_t i = 0; i < n; i++) {
        if (rows[i].system)
            stats_record(b, rows[i].json);
        else
            history_record(b, rows[i].json);
    }
    enum mt_upload_result res = flush_out(b, num0);
    if (res == MT_UPLOAD_OK && b->io->stats)
        b->io->stats->points_sent += n;
    return res;
}

static enum mt_upload_result wb_send_summary(void *p, const cJSON *summary)
{
    struct wb *b = p;
    cJSON *w = mt_wandb__summary(summary, b->metrics);
    double num0 = b->num;
    int any = 0;
    const cJSON *it;
    record_begin(b, REC_SUMMARY);
    cJSON_ArrayForEach(it, w)
    {
        char *j = mt_wandb__value_json(it);
        const cJSON *sent = cJSON_GetObjectItemCaseSensitive(b->summary_sent, it->string);
        if (j && !(cJSON_IsString(sent) && strcmp(sent->valuestring, j) == 0)) {
            pb_item(&b->rec, UPDATE, it->string, it);
            mt_sj_set_str(b->summary_sent, it->string, j);
            any = 1;
        }
        free(j);
    }
    cJSON_Delete(w);
    if (!any) {
        mt_enc_reset(&b->rec);
        b->num = num0;
        return MT_UPLOAD_OK;
    }
    record_end(b);
    return flush_out(b, num0);
}

static enum mt_upload_result wb_send_output(void *p, const char *bytes, size_t n)
{
    struct wb *b = p;
    double num0 = b->num, now = (double)time(NULL);
    for (size_t off = 0; off < n;) {
        size_t len = n - off < OUTPUT_CHUNK ? n - off : OUTPUT_CHUNK;
        record_begin(b, REC_OUTPUT_RAW);
        mt_enc_pb_varint(&b->rec, OUT_TYPE, OUT_STDOUT);
        pb_timestamp(&b->rec, OUT_TIMESTAMP, now);
        mt_wandb__pb_text(&b->rec, OUT_LINE, bytes + off, len);
        record_end(b);
        off += len;
    }
    return flush_out(b, num0);
}

/* ---- the end ---- */

/* Copies a file of the run into files/ (replacing an older copy) and names
 * it in a Files record, so that sync uploads it. */
static enum mt_upload_result wb_put_file(void *p, const char *name, const char *path)
{
    struct wb *b = p;
    if (strcmp(name, "run.json") == 0)
        return MT_UPLOAD_OK; /* its content is the Run record already */
    int files = openat(b->dirfd, "files", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int in = open(path, O_RDONLY | O_CLOEXEC);
    char tmp[300];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", name, (int)getpid());
    int out = files >= 0 ? openat(files, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                                  0600)
                         : -1;
    int err = files < 0 || in < 0 || out < 0 ? errno : 0;
    char buf[65536];
    ssize_t r;
    while (!err && (r = read(in, buf, sizeof(buf))) > 0)
        if (write(out, buf, (size_t)r) != r)
            err = errno ? errno : EIO;
    if (!err && (fsync(out) != 0 || renameat(files, tmp, files, name) != 0))
        err = errno;
    if (out >= 0)
        close(out);
    if (err && files >= 0)
        unlinkat(files, tmp, 0);
    if (in >= 0)
        close(in);
    if (files >= 0)
        close(files);
    if (err) {
        char msg[600];
        snprintf(msg, sizeof(msg), "cannot copy %s into files/: %s", name, strerror(err));
        event_msg(b, "upload_write_error", "file", msg);
        return err == ENOSPC ? MT_UPLOAD_RETRY : MT_UPLOAD_DROP;
    }
    double num0 = b->num;
    record_begin(b, REC_FILES);
    mt_enc_pb_begin(&b->rec, FILES_FILE);
    pb_str(&b->rec, FILE_PATH, name);
    mt_enc_pb_varint(&b->rec, FILE_POLICY, POLICY_END);
    mt_enc_pb_end(&b->rec);
    record_end(b);
    enum mt_upload_result res = flush_out(b, num0);
    if (res == MT_UPLOAD_OK && b->io->stats)
        b->io->stats->artifacts_sent++;
    return res;
}

static enum mt_upload_result wb_set_state(void *p, const cJSON *run, const char *state)
{
    struct wb *b = p;
    char err[1200];
    if (strcmp(state, "running") == 0) {
        if (!mt_sj_true(b->state, "exit"))
            return MT_UPLOAD_OK;
        /* resumed after its end: W&B's way, a new offline directory */
        mt_outfile_close(&b->file);
        if (b->dirfd >= 0)
            close(b->dirfd);
        b->dirfd = -1;
        enum mt_upload_result res = new_segment(b, run, 1, err, sizeof(err));
        if (res == MT_UPLOAD_DROP)
            event_msg(b, "upload_refused", "wandb dir", err);
        return res;
    }
    if (mt_sj_true(b->state, "exit"))
        return MT_UPLOAD_OK;
    double num0 = b->num;
    /* the code a shell reports: the exit status, or 128 + the signal */
    int code = (int)mt_sj_num(run, "exit_code", -1), sig = (int)mt_sj_num(run, "signal", 0);
    if (sig > 0)
        code = 128 + sig;
    else if (code < 0)
        code = strcmp(state, "finished") == 0 ? 0 : 1;
    record_begin(b, REC_EXIT);
    if (code)
        mt_enc_pb_varint(&b->rec, EXIT_CODE, (uint64_t)code);
    double rt = mt_sj_num(run, "runtime", 0);
    if (rt >= 1)
        mt_enc_pb_varint(&b->rec, EXIT_RUNTIME, (uint64_t)llround(rt));
    record_end(b);
    record_begin(b, REC_FINAL); /* for the legacy readers, which want Exit then Final */
    record_end(b);
    enum mt_upload_result res = flush_out(b, num0);
    if (res == MT_UPLOAD_OK)
        mt_sj_set_bool(b->state, "exit", 1);
    return res;
}

/* Online, with W&B's client at hand: `wandb sync` the directory, once per
 * process, until it took it; the outcome goes to events.jsonl. */
static void wb_finish(void *p, const cJSON *run)
{
    struct wb *b = p;
    (void)run;
    if (b->o.exporting || b->sync_tried || mt_sj_true(b->state, "synced") ||
        !mt_sj_true(b->state, "exit") || !mt_upload_online(&b->o))
        return;
    b->sync_tried = 1;
    char wandb[PATH_MAX], msg[1200];
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "dir", mt_sj_str(b->state, "dir"));
    if (mt_wandb__find(b->o.wandb_command, wandb, sizeof(wandb)) != 0) {
        if (mt_sj_true(b->state, "told")) {
            cJSON_Delete(f);
            return;
        }
        mt_sj_set_bool(b->state, "told", 1);
        cJSON_AddFalseToObject(f, "ok");
        cJSON_AddStringToObject(f, "message",
                                "wandb is not installed: `pip install wandb`, then "
                                "`metrictap sync --to wandb` uploads the directory kept here");
        if (!b->o.quiet)
            fprintf(stderr, "metrictap: wandb is not installed: `pip install wandb`, then "
                            "`metrictap sync --to wandb` uploads %s\n", mt_sj_str(b->state, "dir"));
        mt_sj_event(b->io, "wandb_sync", f);
        return;
    }
    int r = mt_wandb__sync(wandb, mt_sj_str(b->state, "dir"), b->o.wandb_sync_timeout_s, msg,
                           sizeof(msg));
    cJSON_AddBoolToObject(f, "ok", r == 0);
    cJSON_AddStringToObject(f, "message", msg);
    mt_sj_event(b->io, "wandb_sync", f);
    if (r == 0)
        mt_sj_set_bool(b->state, "synced", 1);
    else if (!b->o.quiet)
        fprintf(stderr, "metrictap: wandb: %s\n", msg);
}

const struct mt_upload_backend mt_wandb_backend = {
    .name = "wandb",
    .local = 1,
    .whole_rows = 1,
    .max_points = 4096,
    .create = wb_create,
    .check = wb_check,
    .destroy = wb_destroy,
    .open_run = wb_open_run,
    .update_run = wb_update_run,
    .send_rows = wb_send_rows,
    .send_summary = wb_send_summary,
    .send_output = wb_send_output,
    .set_state = wb_set_state,
    .put_file = wb_put_file,
    .finish = wb_finish,
};
