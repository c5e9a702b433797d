/* NVML through dlopen (htop linux/LibSensors.c, collectd src/gpu_nvidia.c). */
#include "agent/sys_nvml.h"
#include "agent/mt_sys.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

/* The parts of nvml.h used here (stable ABI). */
typedef int nvml_ret;
typedef void *nvml_dev;
struct nvml_util { unsigned gpu, memory; };
struct nvml_mem { unsigned long long total, free, used; };
#define NVML_SUCCESS 0
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_TEMPERATURE_GPU 0

struct mt_sys_nvml {
    void *dl;
    nvml_ret (*init)(void);
    nvml_ret (*shutdown)(void);
    nvml_ret (*count)(unsigned *);
    nvml_ret (*handle)(unsigned, nvml_dev *);
    nvml_ret (*util)(nvml_dev, struct nvml_util *);
    nvml_ret (*mem)(nvml_dev, struct nvml_mem *);
    nvml_ret (*temp)(nvml_dev, int, unsigned *);
    nvml_ret (*power)(nvml_dev, unsigned *);
    nvml_ret (*limit)(nvml_dev, unsigned *);
    nvml_ret (*name)(nvml_dev, char *, unsigned);
    int initialized;
    unsigned ndev;
    nvml_dev dev[MT_SYS_MAX_GPUS];
    unsigned failed[MT_SYS_MAX_GPUS];   /* MT_GPU_* fields that failed once */
};

/* The symbol a, or else b (older NVML without the _v2 names). */
static void *sym(void *dl, const char *a, const char *b)
{
    void *p = dlsym(dl, a);
    if (!p && b)
        p = dlsym(dl, b);
    return p;
}

struct mt_sys_nvml *mt_sys_nvml_open(const char *path)
{
    struct mt_sys_nvml *n = calloc(1, sizeof *n);
    unsigned count = 0;
    int ok = 0;
    if (!n)
        goto out;
    n->dl = dlopen(path ? path : "libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!n->dl)
        goto out;
    *(void **)&n->init = sym(n->dl, "nvmlInit_v2", "nvmlInit");
    *(void **)&n->shutdown = sym(n->dl, "nvmlShutdown", NULL);
    *(void **)&n->count = sym(n->dl, "nvmlDeviceGetCount_v2", "nvmlDeviceGetCount");
    *(void **)&n->handle = sym(n->dl, "nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex");
    *(void **)&n->util = sym(n->dl, "nvmlDeviceGetUtilizationRates", NULL);
    *(void **)&n->mem = sym(n->dl, "nvmlDeviceGetMemoryInfo", NULL);
    *(void **)&n->temp = sym(n->dl, "nvmlDeviceGetTemperature", NULL);
    *(void **)&n->power = sym(n->dl, "nvmlDeviceGetPowerUsage", NULL);
    *(void **)&n->limit = sym(n->dl, "nvmlDeviceGetEnforcedPowerLimit",
                              "nvmlDeviceGetPowerManagementLimit");
    *(void **)&n->name = sym(n->dl, "nvmlDeviceGetName", NULL);
    if (!n->init || !n->shutdown || !n->count || !n->handle)
        goto out;
    if (n->init() != NVML_SUCCESS)
        goto out;
    n->initialized = 1;
    if (n->count(&count) != NVML_SUCCESS)
        goto out;
    for (unsigned i = 0; i < count && n->ndev < MT_SYS_MAX_GPUS; i++)
        if (n->handle(i, &n->dev[n->ndev]) == NVML_SUCCESS)
            n->ndev++;
    ok = 1;
out:
    if (!ok) {
        mt_sys_nvml_close(n);
        n = NULL;
    }
    return n;
}

void mt_sys_nvml_close(struct mt_sys_nvml *n)
{
    if (!n)
        return;
    if (n->initialized)
        n->shutdown();
    if (n->dl)
        dlclose(n->dl);
    free(n);
}

unsigned mt_sys_nvml_count(const struct mt_sys_nvml *n)
{
    return n ? n->ndev : 0;
}

/* "Not supported" is for good: do not ask again.  Other errors (a GPU
 * lost for a moment, a timeout) skip this sample only. */
static void remember(unsigned *failed, nvml_ret r, unsigned field)
{
    if (r == NVML_ERROR_NOT_SUPPORTED)
        *failed |= field;
}

void mt_sys_nvml_read(struct mt_sys_nvml *n, unsigned i, struct mt_sys_gpu *g)
{
    struct nvml_util u;
    struct nvml_mem m;
    unsigned v, lim;
    memset(g, 0, sizeof *g);
    if (!n || i >= n->ndev)
        return;
    nvml_dev d = n->dev[i];
    unsigned *failed = &n->failed[i];
    if (n->util && !(*failed & MT_GPU_UTIL)) {
        nvml_ret r = n->util(d, &u);
        if (r == NVML_SUCCESS) {
            g->util_pct = u.gpu;
            g->have |= MT_GPU_UTIL;
        }
        remember(failed, r, MT_GPU_UTIL);
    }
    if (n->mem && !(*failed & MT_GPU_MEM)) {
        nvml_ret r = n->mem(d, &m);
        if (r == NVML_SUCCESS && m.total > 0) {
            g->mem_used_mb = (double)m.used / 1e6;
            g->mem_total_mb = (double)m.total / 1e6;
            g->mem_pct = 100.0 * (double)m.used / (double)m.total;
            g->have |= MT_GPU_MEM;
        }
        remember(failed, r, MT_GPU_MEM);
    }
    if (n->temp && !(*failed & MT_GPU_TEMP)) {
        nvml_ret r = n->temp(d, NVML_TEMPERATURE_GPU, &v);
        if (r == NVML_SUCCESS) {
            g->temp_c = v;
            g->have |= MT_GPU_TEMP;
        }
        remember(failed, r, MT_GPU_TEMP);
    }
    if (n->power && !(*failed & MT_GPU_POWER)) {
        nvml_ret r = n->power(d, &v);                   /* milliwatts */
        if (r == NVML_SUCCESS) {
            g->power_w = v / 1000.0;
            g->have |= MT_GPU_POWER;
            if (n->limit && !(*failed & MT_GPU_POWER_PCT)) {
                nvml_ret rl = n->limit(d, &lim);
                if (rl == NVML_SUCCESS && lim > 0) {
                    g->power_pct = 100.0 * v / lim;
                    g->have |= MT_GPU_POWER_PCT;
                }
                remember(failed, rl, MT_GPU_POWER_PCT);
            }
        }
        remember(failed, r, MT_GPU_POWER);
    }
}

int mt_sys_nvml_name(struct mt_sys_nvml *n, unsigned i, char *buf, size_t size)
{
    if (!n || i >= n->ndev || !n->name || size == 0)
        return -1;
    if (n->name(n->dev[i], buf, (unsigned)size) != NVML_SUCCESS)
        return -1;
    buf[size - 1] = '\0';
    return 0;
}
