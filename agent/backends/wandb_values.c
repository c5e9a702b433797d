/* Values the way W&B wants them: its names for metrictap's system metrics,
 * the JSON text of a value, the summary's shape, and UTF-8 strings. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../../common/mt_enc.h"
#include "../../common/mt_json.h"
#include "mt_wandb.h"

/* ---- system metrics (FORMATS.md 3; sync shows them as system.<name>) ----
 * W&B counts memory in MiB and GiB, metrictap in MB (1e6 bytes); W&B's `cpu`
 * is the process tree's share of the machine. */

#define MIB (1e6 / 1048576.0)      /* MB -> MiB */
#define GIB (1e6 / 1073741824.0)   /* MB -> GiB */

static const struct {
    const char *from, *to;
    double scale;
} names[] = {
    {"proc.memory_rss_mb", "proc.memory.rssMB", MIB},
    {"memory_percent", "memory_percent", 1},
    {"disk.usage_percent", "disk./.usagePercent", 1},
    {"disk.used_mb", "disk./.usageGB", GIB},
    {"proc.disk_read_bytes", "disk.in", 1.0 / 1048576.0},
    {"proc.disk_write_bytes", "disk.out", 1.0 / 1048576.0},
    {"network.sent_bytes", "network.sent", 1},
    {"network.recv_bytes", "network.recv", 1},
    {"proc.threads", "proc.cpu.threads", 1},
};

static const struct {
    const char *from, *to;
    double scale;
} gpu_names[] = {
    {"utilization_percent", "gpu", 1},
    {"memory_percent", "memoryAllocated", 1},
    {"memory_used_mb", "memoryAllocatedBytes", 1e6},
    {"temperature_c", "temp", 1},
    {"power_watts", "powerWatts", 1},
    {"power_percent", "powerPercent", 1},
};

int mt_wandb__stats_key(const char *key, int cpu_count, char *out, size_t outsz, double *scale)
{
    *scale = 1;
    if (key[0] == '_')
        return -1;
    const char *k = strncmp(key, "system.", 7) == 0 ? key + 7 : key;
    if (strcmp(k, "proc.cpu_percent") == 0) {
        snprintf(out, outsz, "cpu");
        *scale = cpu_count > 0 ? 1.0 / cpu_count : 1;
        return 0;
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(k, names[i].from) == 0) {
            snprintf(out, outsz, "%s", names[i].to);
            *scale = names[i].scale;
            return 0;
        }
    }
    if (strncmp(k, "gpu.", 4) == 0 && isdigit((unsigned char)k[4])) {
        char *end;
        long idx = strtol(k + 4, &end, 10);
        if (*end == '.') {
            for (size_t i = 0; i < sizeof(gpu_names) / sizeof(gpu_names[0]); i++) {
                if (strcmp(end + 1, gpu_names[i].from) == 0) {
                    snprintf(out, outsz, "gpu.%ld.%s", idx, gpu_names[i].to);
                    *scale = gpu_names[i].scale;
                    return 0;
                }
            }
        }
    }
    /* no W&B name (system-wide CPU, used and available memory, fds): our own */
    snprintf(out, outsz, "%s", k);
    return 0;
}

/* ---- strings: protobuf strings must be UTF-8 (W&B's Go reader checks) ---- */

static size_t utf8_len(const unsigned char *s, size_t n)
{
    if (s[0] < 0x80)
        return 1;
    size_t k = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 && s[0] < 0xe0 ? 2 : 0;
    if (!k || k > n)
        return 0;
    for (size_t i = 1; i < k; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if (k == 3 && ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0)))
        return 0; /* overlong, surrogate */
    if (k == 4 && ((s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90)))
        return 0;
    return k;
}

/* A string field, with each invalid byte replaced by U+FFFD. */
void mt_wandb__pb_text(struct mt_enc *e, unsigned field, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, k;
    while (i < n && (k = utf8_len(u + i, n - i)))
        i += k;
    if (i == n) {
        mt_enc_pb_bytes(e, field, s, n);
        return;
    }
    struct mt_enc t;
    mt_enc_init(&t, 3 * n + 16);
    for (i = 0; i < n;) {
        k = utf8_len(u + i, n - i);
        if (k) {
            mt_enc_add(&t, u + i, k);
            i += k;
        } else {
            mt_enc_add(&t, "\xef\xbf\xbd", 3);
            i++;
        }
    }
    mt_enc_pb_bytes(e, field, t.p, t.len);
    mt_enc_free(&t);
}

/* The JSON text of a value as W&B writes it: numbers as printed, the
 * store's "NaN"/"Infinity"/"-Infinity" strings as bare NaN/Infinity. */
char *mt_wandb__value_json(const cJSON *v)
{
    char num[64];
    if (cJSON_IsNumber(v))
        return strdup(mt_json_number_text(v, num, sizeof(num)));
    if (cJSON_IsString(v)) {
        static const char *const special[] = {"NaN", "Infinity", "-Infinity"};
        for (int i = 0; i < 3; i++)
            if (strcmp(v->valuestring, special[i]) == 0)
                return strdup(special[i]);
    }
    return mt_json_print_literal(v, 0);
}

/* The summary modes of a metric when they are more than its last value
 * alone (W&B's plain summary), else NULL. */
static const cJSON *modes_of(const cJSON *metrics, const char *name)
{
    const cJSON *modes = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(metrics, name), "summary");
    int n = cJSON_GetArraySize(modes);
    const cJSON *first = cJSON_GetArrayItem(modes, 0);
    if (n == 0 || (n == 1 && cJSON_IsString(first) && strcmp(first->valuestring, "last") == 0))
        return NULL;
    return modes;
}

/* Is key "<metric>.<mode>" of a metric with modes? */
static int is_mode_key(const cJSON *metrics, const char *key)
{
    const char *dot = strrchr(key, '.');
    if (!dot)
        return 0;
    char base[512];
    snprintf(base, sizeof(base), "%.*s", (int)(dot - key), key);
    const cJSON *m;
    cJSON_ArrayForEach(m, modes_of(metrics, base)) if (cJSON_IsString(m) &&
                                                       strcmp(m->valuestring, dot + 1) == 0)
        return 1;
    return 0;
}

/* metrictap's flat summary ("loss", "loss.min") in W&B's shape: a metric
 * with summary modes has an object of them ({"min": x}), as
 * define_metric(summary=...) gives; "none" leaves the metric out. */
cJSON *mt_wandb__summary(const cJSON *summary, const cJSON *metrics)
{
    cJSON *out = cJSON_CreateObject();
    const cJSON *it;
    cJSON_ArrayForEach(it, summary)
    {
        if (!modes_of(metrics, it->string) && !is_mode_key(metrics, it->string))
            cJSON_AddItemToObject(out, it->string, cJSON_Duplicate(it, 1));
    }
    cJSON_ArrayForEach(it, metrics)
    {
        const cJSON *modes = modes_of(metrics, it->string), *mode;
        if (!modes)
            continue;
        cJSON *obj = cJSON_CreateObject();
        cJSON_ArrayForEach(mode, modes)
        {
            if (!cJSON_IsString(mode) || strcmp(mode->valuestring, "none") == 0)
                continue;
            char k[600];
            snprintf(k, sizeof(k), "%s.%s", it->string, mode->valuestring);
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(summary, k);
            if (!v && strcmp(mode->valuestring, "last") == 0)
                v = cJSON_GetObjectItemCaseSensitive(summary, it->string);
            if (v)
                cJSON_AddItemToObject(obj, mode->valuestring, cJSON_Duplicate(v, 1));
        }
        if (obj->child)
            cJSON_AddItemToObject(out, it->string, obj);
        else
            cJSON_Delete(obj);
    }
    return out;
}

