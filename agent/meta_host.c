/* Host facts: CPU model and count, memory, GPU names. */
#include "agent/mt_meta.h"
#include "agent/sys_nvml.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reads <root>/<name> into a malloc'd NUL-terminated buffer (cap 1 MiB). */
static char *slurp(const char *root, const char *name)
{
    char path[4096];
    FILE *f;
    size_t cap = 1 << 20, n;
    char *buf;
    snprintf(path, sizeof path, "%s/%s", root, name);
    if (!(f = fopen(path, "re")))
        return NULL;
    if (!(buf = malloc(cap + 1)))
        abort();
    n = fread(buf, 1, cap, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* The value after "key<spaces>:" on a line of buf, trimmed, or NULL. */
static int line_value(const char *line, const char *key, char *out, size_t size)
{
    size_t len = strlen(key);
    const char *p;
    if (strncmp(line, key, len) != 0)
        return 0;
    p = line + len;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != ':')
        return 0;
    p++;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t n = strcspn(p, "\n");
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    snprintf(out, size, "%.*s", (int)n, p);
    return 1;
}

cJSON *mt_meta_host_json(const char *procfs_root, const char *nvml_path)
{
    const char *root = procfs_root ? procfs_root : "/proc";
    char host[256], model[256] = "", val[256];
    long cpus = 0;
    cJSON *j = cJSON_CreateObject();
    char *buf;
    if (!j)
        abort();
    if (gethostname(host, sizeof host) == 0) {
        host[sizeof host - 1] = '\0';
        cJSON_AddStringToObject(j, "hostname", host);
    }
    if ((buf = slurp(root, "cpuinfo")) != NULL) {
        for (const char *l = buf; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
            if (line_value(l, "processor", val, sizeof val))
                cpus++;
            else if (!model[0] && (line_value(l, "model name", model, sizeof model) ||
                                   line_value(l, "Model", model, sizeof model)))
                continue;
        }
        free(buf);
    }
    if (model[0])
        cJSON_AddStringToObject(j, "cpu_model", model);
    if (cpus <= 0)
        cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus > 0)
        cJSON_AddNumberToObject(j, "cpu_count", (double)cpus);
    if ((buf = slurp(root, "meminfo")) != NULL) {
        if (line_value(buf, "MemTotal", val, sizeof val))
            cJSON_AddNumberToObject(j, "memory_total_mb", strtod(val, NULL) * 1024 / 1e6);
        free(buf);
    }
    if (!nvml_path || nvml_path[0]) {
        struct mt_sys_nvml *n = mt_sys_nvml_open(nvml_path);
        unsigned count = mt_sys_nvml_count(n);
        if (count) {
            cJSON *gpus = cJSON_AddArrayToObject(j, "gpus");
            for (unsigned i = 0; i < count; i++) {
                cJSON *g = cJSON_CreateObject();
                struct mt_sys_gpu s;
                cJSON_AddNumberToObject(g, "index", i);
                if (mt_sys_nvml_name(n, i, val, sizeof val) == 0)
                    cJSON_AddStringToObject(g, "name", val);
                mt_sys_nvml_read(n, i, &s);
                if (s.have & MT_GPU_MEM)
                    cJSON_AddNumberToObject(g, "memory_total_mb", s.mem_total_mb);
                cJSON_AddItemToArray(gpus, g);
            }
        }
        mt_sys_nvml_close(n);
    }
    return j;
}
