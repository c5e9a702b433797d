/* The TensorBoard backend: an event file per run, written as the run goes,
 * so that `tensorboard --logdir` is a live view of the runs.
 *
 *   <logdir>/<project>/<name>-<id>/events.out.tfevents.<time>.<host>.<pid>.metrictap
 *
 * Records are TFRecords of tensorboard's Event proto (FORMATS.md 2): the
 * first carries file_version "brain.Event:2"; each history metric is a
 * simple_value (float32) at its step_metric's value as the step (the
 * uploader resolves it, upload_read.c), system metrics go under system/;
 * the config goes to the HParams plugin (session_start_info, so its
 * dashboard compares runs by config against their scalars) and as a text
 * summary "config"; the run's end is a session_end_info status.
 *
 * Its part of the cursor: {"dir": absolute run directory, "file": name,
 * "size": bytes written, "config_crc": CRC-32 of the config last written}. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "../../common/mt_enc.h"
#include "../../common/mt_json.h"
#include "../mt_upload_backend.h"
#include "mt_outfile.h"
#include "mt_state_json.h"

/* tensorboard/compat/proto/event.proto, summary.proto, tensor.proto */
enum { EVENT_WALL_TIME = 1, EVENT_STEP = 2, EVENT_FILE_VERSION = 3, EVENT_SUMMARY = 5 };
enum { SUMMARY_VALUE = 1 };
enum { VALUE_TAG = 1, VALUE_SIMPLE = 2, VALUE_TENSOR = 8, VALUE_METADATA = 9 };
enum { META_PLUGIN_DATA = 1, META_DATA_CLASS = 4 };
enum { PLUGIN_NAME = 1, PLUGIN_CONTENT = 2 };
enum { TENSOR_DTYPE = 1, TENSOR_STRING_VAL = 8, DT_STRING = 7 };
/* tensorboard/plugins/hparams/plugin_data.proto and google.protobuf.Value */
enum { HP_SESSION_START = 3, HP_SESSION_END = 4 };
enum { START_HPARAMS = 1, START_TIME_SECS = 5 };
enum { END_STATUS = 1, END_TIME_SECS = 2 };
enum { STATUS_SUCCESS = 1, STATUS_FAILURE = 2, STATUS_RUNNING = 3 };
enum { MAP_KEY = 1, MAP_VALUE = 2 };
enum { PBV_NUMBER = 2, PBV_STRING = 3, PBV_BOOL = 4 };

#define RECORD_MAX (64u << 20)

struct tb {
    const struct mt_upload_io *io;
    char logdir[PATH_MAX];
    cJSON *state;
    int dirfd;
    struct mt_outfile file;
    struct mt_enc rec, out;   /* one Event; the framed records of a call */
    unsigned long long write_errors;
};






static void event_error(struct tb *b, int err, const char *detail)
{
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "kind", "event file");
    cJSON_AddNumberToObject(f, "errno", -err);
    cJSON_AddStringToObject(f, "message", detail ? detail : strerror(-err));
    cJSON_AddNumberToObject(f, "count", (double)b->write_errors);
    mt_sj_event(b->io, "upload_write_error", f);
}

/* ---- create / destroy ---- */

static void tb_destroy(void *p)
{
    struct tb *b = p;
    if (!b)
        return;
    mt_outfile_close(&b->file);
    if (b->dirfd >= 0)
        close(b->dirfd);
    mt_enc_free(&b->rec);
    mt_enc_free(&b->out);
    free(b);
}

static void *tb_create(const struct mt_upload_opts *o, const struct mt_upload_io *io, char *err,
                       size_t errsz)
{
    struct tb *b = calloc(1, sizeof(*b));
    if (!b) {
        snprintf(err, errsz, "tensorboard: out of memory");
        return NULL;
    }
    b->io = io;
    b->dirfd = -1;
    b->file.fd = -1;
    const char *dir = o->tensorboard_dir[0] ? o->tensorboard_dir : "tensorboard";
    while (dir[0] == '.' && dir[1] == '/')
        dir += 2;
    if (dir[0] == '/' || !getcwd(b->logdir, sizeof(b->logdir)))
        snprintf(b->logdir, sizeof(b->logdir), "%s", dir);
    else {
        size_t n = strlen(b->logdir);
        snprintf(b->logdir + n, sizeof(b->logdir) - n, "/%s", dir);
    }
    mt_enc_init(&b->rec, RECORD_MAX);
    mt_enc_init(&b->out, 2 * RECORD_MAX);
    return b;
}

static int tb_check(const struct mt_upload_opts *o, char *err, size_t errsz)
{
    struct tb *b = tb_create(o, NULL, err, errsz);
    if (!b)
        return -ENOMEM;
    int fd = mt_outdir_open(b->logdir, NULL, 0, err, errsz);
    tb_destroy(b);
    if (fd < 0)
        return fd;
    close(fd);
    return 0;
}

/* ---- writing events ---- */

/* Frames b->rec as a record after whatever is pending in b->out. */
static void frame(struct tb *b)
{
    mt_enc_tfrecord(&b->out, b->rec.p, b->rec.len);
    mt_enc_reset(&b->rec);
}

/* Writes what is pending; RETRY (and nothing written) when the disk refuses. */
static enum mt_upload_result flush_out(struct tb *b)
{
    if (b->out.overflow) {
        mt_enc_reset(&b->out);
        b->write_errors++;
        event_error(b, -EFBIG, "a record over 64 MiB; dropped");
        return MT_UPLOAD_OK;
    }
    int r = mt_outfile_append(&b->file, b->out.p, b->out.len);
    if (r != 0) {
        b->write_errors++;
        event_error(b, r, NULL);
        mt_enc_reset(&b->out);
        return MT_UPLOAD_RETRY;
    }
    mt_enc_reset(&b->out);
    mt_sj_set_num(b->state, "size", (double)b->file.size);
    return MT_UPLOAD_OK;
}

static void event_begin(struct tb *b, double wall, int64_t step)
{
    mt_enc_pb_double(&b->rec, EVENT_WALL_TIME, wall);
    if (step)
        mt_enc_pb_varint(&b->rec, EVENT_STEP, (uint64_t)step);
}

/* A Summary.Value with plugin metadata, whose payload the caller adds. */
static void plugin_value_begin(struct tb *b, const char *tag, const char *plugin,
                               const struct mt_enc *content)
{
    mt_enc_pb_begin(&b->rec, SUMMARY_VALUE);
    mt_enc_pb_str(&b->rec, VALUE_TAG, tag);
    mt_enc_pb_begin(&b->rec, VALUE_METADATA);
    mt_enc_pb_begin(&b->rec, META_PLUGIN_DATA);
    mt_enc_pb_str(&b->rec, PLUGIN_NAME, plugin);
    if (content && content->len)
        mt_enc_pb_bytes(&b->rec, PLUGIN_CONTENT, content->p, content->len);
    mt_enc_pb_end(&b->rec);
    mt_enc_pb_end(&b->rec);
}

/* hparams summaries carry a null tensor, as tensorboard's own writer does. */
static void hparams_event(struct tb *b, double wall, const struct mt_enc *plugin_data)
{
    static const unsigned char null_tensor[] = {0x08, 0x01, 0x12, 0x02, 0x12, 0x00};
    const char *tag = "_hparams_/session_start_info";
    /* the content's first field says which: session_start (3) or session_end (4) */
    if (plugin_data->len && plugin_data->p[0] == ((HP_SESSION_END << 3) | 2))
        tag = "_hparams_/session_end_info";
    event_begin(b, wall, 0);
    mt_enc_pb_begin(&b->rec, EVENT_SUMMARY);
    plugin_value_begin(b, tag, "hparams", plugin_data);
    mt_enc_pb_bytes(&b->rec, VALUE_TENSOR, null_tensor, sizeof(null_tensor));
    mt_enc_pb_end(&b->rec);
    mt_enc_pb_end(&b->rec);
    frame(b);
}

/* ---- the run ---- */

static enum mt_upload_result tb_open_run(void *p, const cJSON *run, cJSON *state)
{
    struct tb *b = p;
    char err[1200], name[300], project[300], dirname[600], file[600];
    b->state = state;
    const char *dir = mt_sj_str(state, "dir");
    const char *fname = mt_sj_str(state, "file");
    int create = !dir || !fname;
    if (create) {
        const char *id = mt_sj_str(run, "id");
        const char *rn = mt_sj_str(run, "name");
        const char *pj = mt_sj_str(run, "project");
        mt_outdir_component(pj && *pj ? pj : "uncategorized", project, sizeof(project));
        mt_outdir_component(rn && *rn ? rn : "run", name, sizeof(name));
        /* <name>-<id>; the default name already ends with the id */
        size_t nl = strlen(name), il = id ? strlen(id) : 0;
        if (id && nl > il && name[nl - il - 1] == '-' && strcmp(name + nl - il, id) == 0)
            snprintf(dirname, sizeof(dirname), "%s", name);
        else
            snprintf(dirname, sizeof(dirname), "%s-%s", name, id ? id : "x");
        char host[256] = "localhost";
        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
        mt_outdir_component(host, name, sizeof(name));
        snprintf(file, sizeof(file), "events.out.tfevents.%010lld.%s.%d.metrictap",
                 (long long)time(NULL), name, (int)getpid());
        const char *parts[] = {project, dirname};
        b->dirfd = mt_outdir_open(b->logdir, parts, 2, err, sizeof(err));
        if (b->dirfd < 0)
            goto fail;
        char abs[PATH_MAX + 700];
        snprintf(abs, sizeof(abs), "%s/%s/%s", b->logdir, project, dirname);
        mt_sj_set_str(state, "dir", abs);
        fname = file;
    } else {
        b->dirfd = mt_outdir_open(dir, NULL, 0, err, sizeof(err));
        if (b->dirfd < 0)
            goto fail;
    }
    uint64_t committed = (uint64_t)mt_sj_num(state, "size", 0);
    int r = mt_outfile_open(&b->file, b->dirfd, fname, create, create ? 0 : committed, err,
                            sizeof(err));
    if (r == -ENOENT && !create) { /* removed since: a new file from here on */
        r = mt_outfile_open(&b->file, b->dirfd, fname, 1, 0, err, sizeof(err));
        mt_sj_set_num(state, "size", 0);
        cJSON_DeleteItemFromObjectCaseSensitive(state, "config_crc");
    }
    if (r != 0)
        goto fail;
    if (b->file.shorter)
        event_error(b, -EIO, "the event file is shorter than written; "
                                            "going on from its end");
    mt_sj_set_str(state, "file", fname);
    if (b->file.size == 0) {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(run, "start_time");
        event_begin(b, cJSON_IsNumber(st) ? st->valuedouble : (double)time(NULL), 0);
        mt_enc_pb_str(&b->rec, EVENT_FILE_VERSION, "brain.Event:2");
        frame(b);
        return flush_out(b);
    }
    return MT_UPLOAD_OK;
fail:
    /* Nothing can be written: the run goes on without this backend, said once. */
    if (b->dirfd >= 0)
        close(b->dirfd);
    b->dirfd = -1;
    {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "kind", "logdir");
        cJSON_AddStringToObject(f, "message", err);
        mt_sj_event(b->io, "upload_refused", f);
    }
    return MT_UPLOAD_DROP;
}

/* Flattens the config into "a.b" keys. */
static void flatten(const cJSON *o, const char *prefix, cJSON *out)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, o)
    {
        char key[512];
        snprintf(key, sizeof(key), "%s%s%s", prefix, *prefix ? "." : "", it->string);
        if (cJSON_IsObject(it))
            flatten(it, key, out);
        else
            cJSON_AddItemToObject(out, key, cJSON_Duplicate(it, 1));
    }
}

static void value_text(const cJSON *v, char *out, size_t outsz)
{
    char num[64];
    if (cJSON_IsString(v))
        snprintf(out, outsz, "%s", v->valuestring);
    else if (cJSON_IsNumber(v))
        snprintf(out, outsz, "%s", mt_json_number_text(v, num, sizeof(num)));
    else {
        char *t = mt_json_print_literal(v, 0);
        snprintf(out, outsz, "%s", t ? t : "");
        free(t);
    }
}

/* The config as the HParams plugin's session_start_info, and as a markdown
 * table in the text plugin; again only when it changed. */
static enum mt_upload_result tb_update_run(void *p, const cJSON *run)
{
    struct tb *b = p;
    cJSON *flat = cJSON_CreateObject();
    flatten(cJSON_GetObjectItemCaseSensitive(run, "config"), "", flat);
    char *txt = mt_json_print_literal(flat, 0);
    uint32_t crc = txt ? mt_enc_crc32(0, txt, strlen(txt)) : 0;
    free(txt);
    enum mt_upload_result res = MT_UPLOAD_OK;
    if (mt_sj_num(b->state, "config_crc", -1) == (double)crc)
        goto out;
    double start = mt_sj_num(run, "start_time", (double)time(NULL));
    struct mt_enc hp, table;
    mt_enc_init(&hp, RECORD_MAX);
    mt_enc_init(&table, RECORD_MAX);
    mt_enc_pb_begin(&hp, HP_SESSION_START);
    mt_enc_add(&table, "| key | value |\n|---|---|\n", 26);
    const cJSON *it;
    cJSON_ArrayForEach(it, flat)
    {
        mt_enc_pb_begin(&hp, START_HPARAMS);
        mt_enc_pb_str(&hp, MAP_KEY, it->string);
        mt_enc_pb_begin(&hp, MAP_VALUE);
        char text[4096];
        value_text(it, text, sizeof(text));
        if (cJSON_IsBool(it))
            mt_enc_pb_varint(&hp, PBV_BOOL, cJSON_IsTrue(it));
        else if (cJSON_IsNumber(it))
            mt_enc_pb_double(&hp, PBV_NUMBER, it->valuedouble);
        else
            mt_enc_pb_str(&hp, PBV_STRING, text);
        mt_enc_pb_end(&hp);
        mt_enc_pb_end(&hp);
        for (char *q = text; *q; q++)
            if (*q == '|' || *q == '\n')
                *q = ' ';
        mt_enc_add(&table, "| ", 2);
        mt_enc_add(&table, it->string, strlen(it->string));
        mt_enc_add(&table, " | ", 3);
        mt_enc_add(&table, text, strlen(text));
        mt_enc_add(&table, " |\n", 3);
    }
    mt_enc_pb_double(&hp, START_TIME_SECS, start);
    mt_enc_pb_end(&hp);
    hparams_event(b, start, &hp);
    /* the text plugin: a string tensor */
    event_begin(b, start, 0);
    mt_enc_pb_begin(&b->rec, EVENT_SUMMARY);
    plugin_value_begin(b, "config", "text", NULL);
    mt_enc_pb_begin(&b->rec, VALUE_TENSOR);
    mt_enc_pb_varint(&b->rec, TENSOR_DTYPE, DT_STRING);
    mt_enc_pb_bytes(&b->rec, TENSOR_STRING_VAL, table.p, table.len);
    mt_enc_pb_end(&b->rec);
    mt_enc_pb_end(&b->rec);
    mt_enc_pb_end(&b->rec);
    frame(b);
    mt_enc_free(&hp);
    mt_enc_free(&table);
    res = flush_out(b);
    if (res == MT_UPLOAD_OK)
        mt_sj_set_num(b->state, "config_crc", (double)crc);
out:
    cJSON_Delete(flat);
    return res;
}

/* Points of one row that share a time and a step go into one Event. */
static enum mt_upload_result tb_send_points(void *p, const struct mt_upload_point *pts, size_t n)
{
    struct tb *b = p;
    for (size_t i = 0; i < n;) {
        size_t k = i;
        event_begin(b, (double)pts[i].ts_ms / 1000.0, pts[i].step);
        mt_enc_pb_begin(&b->rec, EVENT_SUMMARY);
        for (; k < n && pts[k].ts_ms == pts[i].ts_ms && pts[k].step == pts[i].step; k++) {
            mt_enc_pb_begin(&b->rec, SUMMARY_VALUE);
            mt_enc_pb_str(&b->rec, VALUE_TAG, pts[k].key);
            mt_enc_pb_float(&b->rec, VALUE_SIMPLE, (float)pts[k].value);
            mt_enc_pb_end(&b->rec);
        }
        mt_enc_pb_end(&b->rec);
        frame(b);
        i = k;
    }
    enum mt_upload_result res = flush_out(b);
    if (res == MT_UPLOAD_OK && b->io->stats)
        b->io->stats->points_sent += n;
    return res;
}

static enum mt_upload_result tb_set_state(void *p, const cJSON *run, const char *state)
{
    struct tb *b = p;
    int status = strcmp(state, "finished") == 0 ? STATUS_SUCCESS
                 : strcmp(state, "running") == 0 ? STATUS_RUNNING
                                                  : STATUS_FAILURE;
    double end = mt_sj_num(run, "end_time", (double)time(NULL));
    struct mt_enc hp;
    mt_enc_init(&hp, 4096);
    mt_enc_pb_begin(&hp, HP_SESSION_END);
    mt_enc_pb_varint(&hp, END_STATUS, (uint64_t)status);
    if (status != STATUS_RUNNING)
        mt_enc_pb_double(&hp, END_TIME_SECS, end);
    mt_enc_pb_end(&hp);
    hparams_event(b, end, &hp);
    mt_enc_free(&hp);
    return flush_out(b);
}

/* History keys as they are; system.cpu_percent as system/cpu_percent. */
static int tb_map_key(const char *key, int system, char *out, size_t outsz, double *scale)
{
    *scale = 1;
    if (!system) {
        snprintf(out, outsz, "%s", key);
        return 0;
    }
    if (key[0] == '_')
        return -1;
    snprintf(out, outsz, "system/%s", strncmp(key, "system.", 7) == 0 ? key + 7 : key);
    return 0;
}

const struct mt_upload_backend mt_tensorboard_backend = {
    .name = "tensorboard",
    .local = 1,
    .named_by_run = 1,
    .max_points = 8192,
    .create = tb_create,
    .check = tb_check,
    .destroy = tb_destroy,
    .map_key = tb_map_key,
    .open_run = tb_open_run,
    .update_run = tb_update_run,
    .send_points = tb_send_points,
    .set_state = tb_set_state,
};
