/* sys_nvml: NVML loaded with dlopen into a table of function pointers
 * (internal to agent/: the sampler and the host metadata use it).  No NVML
 * headers needed: the few types are declared in sys_nvml.c. */
#ifndef MT_SYS_NVML_H
#define MT_SYS_NVML_H

#include <stddef.h>

struct mt_sys_nvml;

/* What one GPU reported; `have` has a bit per field present. */
enum {
    MT_GPU_UTIL = 1 << 0, MT_GPU_MEM = 1 << 1, MT_GPU_TEMP = 1 << 2,
    MT_GPU_POWER = 1 << 3, MT_GPU_POWER_PCT = 1 << 4,
};
struct mt_sys_gpu {
    unsigned have;
    double util_pct;
    double mem_used_mb, mem_total_mb, mem_pct;
    double temp_c;
    double power_w, power_pct;
};

/* Loads path (NULL: "libnvidia-ml.so.1") and initializes NVML.  NULL when
 * the library, a required symbol, nvmlInit or the device count fails. */
struct mt_sys_nvml *mt_sys_nvml_open(const char *path);
void mt_sys_nvml_close(struct mt_sys_nvml *n);   /* nvmlShutdown, dlclose */
unsigned mt_sys_nvml_count(const struct mt_sys_nvml *n);
/* Reads GPU i; fields "not supported" are remembered and not asked again. */
void mt_sys_nvml_read(struct mt_sys_nvml *n, unsigned i, struct mt_sys_gpu *out);
/* The product name, or -1. */
int mt_sys_nvml_name(struct mt_sys_nvml *n, unsigned i, char *buf, size_t size);

#endif
