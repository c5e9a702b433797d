/* sys_proc: the /proc and statvfs readers behind mt_sys (internal to agent/).
 * One reader object owns every buffer a snapshot needs; reading allocates
 * only when the process table must grow past its high-water mark. */
#ifndef MT_SYS_PROC_H
#define MT_SYS_PROC_H

#include <stdint.h>
#include <sys/types.h>

/* Bits of mt_sys_raw.have: which fields the snapshot found. */
enum {
    MT_RAW_CPU = 1 << 0,       /* cpu_total, cpu_idle */
    MT_RAW_MEM = 1 << 1,       /* mem_total, mem_avail */
    MT_RAW_TREE = 1 << 2,      /* tree_cpu, tree_rss, tree_threads (root found) */
    MT_RAW_IO = 1 << 3,        /* tree_read, tree_write (some io file readable) */
    MT_RAW_FDS = 1 << 4,       /* tree_fds (some fd dir readable) */
    MT_RAW_NET = 1 << 5,       /* net_tx, net_rx */
    MT_RAW_DISK = 1 << 6,      /* disk_used, disk_avail */
};

struct mt_sys_raw {
    unsigned have;
    uint64_t cpu_total, cpu_idle;        /* jiffies, all CPUs */
    uint64_t tree_cpu;                   /* jiffies: utime+stime+cutime+cstime */
    uint64_t tree_rss;                   /* bytes */
    uint64_t tree_threads, tree_fds, tree_procs;
    uint64_t tree_read, tree_write;      /* bytes, /proc/<pid>/io */
    uint64_t net_tx, net_rx;             /* bytes, all interfaces but lo */
    uint64_t mem_total, mem_avail;       /* bytes */
    uint64_t disk_used, disk_avail;      /* bytes */
};

struct mt_sys_proc;

/* root: the procfs root ("/proc"), copied.  NULL on out-of-memory. */
struct mt_sys_proc *mt_sys_proc_create(const char *root);
void mt_sys_proc_destroy(struct mt_sys_proc *p);

/* Fills *out; a missing file or field just leaves its bit clear.  root_pid 0
 * skips the tree, disk_path NULL the disk. */
void mt_sys_proc_read(struct mt_sys_proc *p, pid_t root_pid, const char *disk_path,
                      struct mt_sys_raw *out);

#endif
