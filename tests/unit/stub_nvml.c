/* A stand-in NVML for test_sys: two GPUs.  GPU 0 supports every field and its
 * utilization rises 10 points per call (10, 20, 30, ...) so tests can check
 * window averages; GPU 1 says "not supported" for temperature and power and
 * counts how often it was asked (stub_nvml_unsupported_calls). */
#include <stdio.h>
#include <string.h>

struct nvml_util { unsigned gpu, memory; };
struct nvml_mem { unsigned long long total, free, used; };

static int initialized, util_calls;
int stub_nvml_unsupported_calls;
int stub_nvml_shutdowns;

#define DEV(i) ((void *)(unsigned long)(0x1000 + (i)))
#define IDX(d) ((int)((unsigned long)(d) - 0x1000))

int nvmlInit_v2(void) { initialized = 1; return 0; }
int nvmlShutdown(void) { initialized = 0; stub_nvml_shutdowns++; return 0; }
int nvmlDeviceGetCount_v2(unsigned *n) { if (!initialized) return 1; *n = 2; return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned i, void **d) { if (i > 1) return 2; *d = DEV(i); return 0; }

int nvmlDeviceGetUtilizationRates(void *d, struct nvml_util *u)
{
    u->gpu = IDX(d) == 0 ? (unsigned)(10 * ++util_calls) : 50;
    u->memory = 5;
    return 0;
}

int nvmlDeviceGetMemoryInfo(void *d, struct nvml_mem *m)
{
    m->total = 80000000000ull;
    m->used = IDX(d) == 0 ? 20000000000ull : 40000000000ull;
    m->free = m->total - m->used;
    return 0;
}

int nvmlDeviceGetTemperature(void *d, int sensor, unsigned *t)
{
    if (IDX(d) == 1) { stub_nvml_unsupported_calls++; return 3; }
    *t = sensor == 0 ? 65 : 0;
    return 0;
}

int nvmlDeviceGetPowerUsage(void *d, unsigned *mw)
{
    if (IDX(d) == 1) { stub_nvml_unsupported_calls++; return 3; }
    *mw = 150000;
    return 0;
}

int nvmlDeviceGetEnforcedPowerLimit(void *d, unsigned *mw) { (void)d; *mw = 300000; return 0; }

int nvmlDeviceGetName(void *d, char *buf, unsigned len)
{
    snprintf(buf, len, "Stub GPU %d", IDX(d));
    return 0;
}
