/* /proc readers: open, read into a reused buffer, close; directories through
 * getdents64 into a reused buffer (opendir would allocate per call). */
#include "agent/sys_proc.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#define READ_BUF 8192
#define DENTS_BUF 32768

struct proc_ent {
    pid_t pid, ppid;
    uint64_t cpu, rss_pages, threads;
    int in_tree;
    int cached;             /* ppid from the last scan, stat not read */
};

/* What the last scan learnt: pid, ppid and tree membership, pid-ordered
 * when the kernel listed them in order (it does). */
struct known {
    pid_t pid, ppid;
    int in_tree;
};

struct mt_sys_proc {
    char *root;
    char path[512];
    char buf[READ_BUF];
    char dents[DENTS_BUF];
    struct proc_ent *ents;
    pid_t *tree;            /* pids marked in_tree, same capacity as ents */
    struct known *known;    /* the last scan, same capacity */
    size_t nents, nknown, cap;
    int known_sorted;
    long page_size;
};

struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

struct mt_sys_proc *mt_sys_proc_create(const char *root)
{
    struct mt_sys_proc *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->root = strdup(root ? root : "/proc");
    p->cap = 512;
    p->ents = calloc(p->cap, sizeof *p->ents);
    p->tree = calloc(p->cap, sizeof *p->tree);
    p->known = calloc(p->cap, sizeof *p->known);
    p->page_size = sysconf(_SC_PAGESIZE);
    if (!p->root || !p->ents || !p->tree || !p->known) {
        mt_sys_proc_destroy(p);
        return NULL;
    }
    return p;
}

void mt_sys_proc_destroy(struct mt_sys_proc *p)
{
    if (!p)
        return;
    free(p->root);
    free(p->ents);
    free(p->tree);
    free(p->known);
    free(p);
}

/* Reads <root>/<rel> into p->buf, NUL-terminated; length or -1. */
static ssize_t read_rel(struct mt_sys_proc *p, const char *rel)
{
    ssize_t n, total = 0;
    int fd;
    if ((size_t)snprintf(p->path, sizeof p->path, "%s/%s", p->root, rel) >= sizeof p->path)
        return -1;
    fd = open(p->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    while (total < READ_BUF - 1) {
        n = read(fd, p->buf + total, (size_t)(READ_BUF - 1 - total));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        total += n;
    }
    close(fd);
    p->buf[total] = '\0';
    return total;
}

static uint64_t parse_u64(const char **s)
{
    const char *q = *s;
    uint64_t v = 0;
    while (*q == ' ' || *q == '\t')
        q++;
    while (*q >= '0' && *q <= '9')
        v = v * 10 + (uint64_t)(*q++ - '0');
    *s = q;
    return v;
}

static void read_cpu(struct mt_sys_proc *p, struct mt_sys_raw *r)
{
    uint64_t f[8] = {0};
    const char *s;
    int n = 0;
    if (read_rel(p, "stat") < 0 || strncmp(p->buf, "cpu ", 4) != 0)
        return;
    s = p->buf + 4;
    /* user nice system idle iowait irq softirq steal (guest is inside user) */
    while (n < 8) {
        while (*s == ' ')
            s++;
        if (!isdigit((unsigned char)*s))
            break;
        f[n++] = parse_u64(&s);
    }
    if (n < 4)
        return;
    r->cpu_total = f[0] + f[1] + f[2] + f[3] + f[4] + f[5] + f[6] + f[7];
    r->cpu_idle = f[3] + f[4];
    r->have |= MT_RAW_CPU;
}

/* The value of "name:" at the start of a line of buf, or -1. */
static int64_t line_field(const char *buf, const char *name)
{
    size_t len = strlen(name);
    for (const char *s = buf; s; s = strchr(s, '\n'), s = s ? s + 1 : NULL) {
        if (strncmp(s, name, len) == 0 && s[len] == ':') {
            const char *q = s + len + 1;
            return (int64_t)parse_u64(&q);
        }
    }
    return -1;
}

static void read_mem(struct mt_sys_proc *p, struct mt_sys_raw *r)
{
    int64_t total, avail;
    if (read_rel(p, "meminfo") < 0)
        return;
    total = line_field(p->buf, "MemTotal");
    avail = line_field(p->buf, "MemAvailable");
    if (avail < 0) {  /* kernels before 3.14 */
        int64_t fr = line_field(p->buf, "MemFree"), bu = line_field(p->buf, "Buffers"),
                ca = line_field(p->buf, "Cached");
        if (fr >= 0)
            avail = fr + (bu > 0 ? bu : 0) + (ca > 0 ? ca : 0);
    }
    if (total <= 0 || avail < 0)
        return;
    r->mem_total = (uint64_t)total * 1024;
    r->mem_avail = (uint64_t)(avail < total ? avail : total) * 1024;
    r->have |= MT_RAW_MEM;
}

static void read_net(struct mt_sys_proc *p, struct mt_sys_raw *r)
{
    const char *line;
    int found = 0;
    if (read_rel(p, "net/dev") < 0)
        return;
    for (line = p->buf; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        const char *colon = strchr(line, ':'), *nl = strchr(line, '\n'), *name = line, *s;
        uint64_t v[9];
        if (!colon || (nl && colon > nl))
            continue;  /* the two header lines have no colon */
        while (*name == ' ')
            name++;
        if (colon - name == 2 && strncmp(name, "lo", 2) == 0)
            continue;
        s = colon + 1;
        for (int i = 0; i < 9; i++)  /* rx: bytes packets errs drop fifo frame compressed multicast; tx: bytes */
            v[i] = parse_u64(&s);
        r->net_rx += v[0];
        r->net_tx += v[8];
        found = 1;
    }
    if (found)
        r->have |= MT_RAW_NET;
}

static void read_disk(const char *path, struct mt_sys_raw *r)
{
    struct statvfs st;
    if (!path || statvfs(path, &st) != 0 || st.f_blocks == 0)
        return;
    uint64_t fr = st.f_frsize ? st.f_frsize : st.f_bsize;
    r->disk_used = (uint64_t)(st.f_blocks - st.f_bfree) * fr;
    r->disk_avail = (uint64_t)st.f_bavail * fr;
    r->have |= MT_RAW_DISK;
}

/* Parses <pid>/stat in p->buf into e; 0 or -1.  comm may hold spaces and
 * parentheses: the fields start after the last ')'. */
static int parse_pid_stat(const char *buf, struct proc_ent *e)
{
    const char *s = strrchr(buf, ')');
    uint64_t f[25] = {0};
    int field = 3;
    if (!s)
        return -1;
    s++;
    while (field <= 24) {
        while (*s == ' ')
            s++;
        if (!*s)
            return -1;
        if (field == 3) {          /* state: a letter */
            while (*s && *s != ' ')
                s++;
        } else if (*s == '-') {    /* negative fields (priority, nice) */
            s++;
            parse_u64(&s);
        } else {
            f[field] = parse_u64(&s);
            if (*s && *s != ' ' && *s != '\n')
                return -1;
        }
        field++;
    }
    e->ppid = (pid_t)f[4];
    e->cpu = f[14] + f[15] + f[16] + f[17];
    e->threads = f[20];
    e->rss_pages = f[24];
    return 0;
}

static int grow(struct mt_sys_proc *p)
{
    size_t cap = p->cap * 2;
    struct proc_ent *n = realloc(p->ents, cap * sizeof *n);
    if (!n)
        return -1;
    p->ents = n;
    pid_t *t = realloc(p->tree, cap * sizeof *t);
    if (!t)
        return -1;
    p->tree = t;
    struct known *k = realloc(p->known, cap * sizeof *k);
    if (!k)
        return -1;
    p->known = k;
    p->cap = cap;
    return 0;
}

static const struct known *find_known(const struct mt_sys_proc *p, pid_t pid)
{
    size_t lo = 0, hi = p->nknown;
    if (!p->known_sorted) {
        for (size_t i = 0; i < p->nknown; i++)
            if (p->known[i].pid == pid)
                return &p->known[i];
        return NULL;
    }
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->known[mid].pid == pid)
            return &p->known[mid];
        if (p->known[mid].pid < pid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Scans <root>/ for numeric entries and reads the stat of each process that
 * is new or was in the tree last time.  A process seen outside the tree
 * keeps its cached ppid: reading every stat of a busy machine costs about
 * 10 us each, and a process cannot join the tree without a new pid (short of
 * pid reuse within one interval, or a subreaper adopting it). */
static void scan_procs(struct mt_sys_proc *p, pid_t root)
{
    char rel[64];
    long n;
    int fd = open(p->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    p->nents = 0;
    if (fd < 0)
        return;
    while ((n = syscall(SYS_getdents64, fd, p->dents, sizeof p->dents)) > 0) {
        for (long off = 0; off < n;) {
            struct linux_dirent64 *d = (struct linux_dirent64 *)(p->dents + off);
            off += d->d_reclen;
            char *end;
            long pid = strtol(d->d_name, &end, 10);
            if (!isdigit((unsigned char)d->d_name[0]) || *end || pid <= 0)
                continue;
            if (p->nents == p->cap && grow(p) != 0)
                continue;
            struct proc_ent *e = &p->ents[p->nents];
            const struct known *k = find_known(p, (pid_t)pid);
            memset(e, 0, sizeof *e);
            e->pid = (pid_t)pid;
            if (k && !k->in_tree && pid != root) {
                e->ppid = k->ppid;
                e->cached = 1;
                p->nents++;
                continue;
            }
            snprintf(rel, sizeof rel, "%ld/stat", pid);
            if (read_rel(p, rel) < 0)
                continue;  /* exited meanwhile */
            if (parse_pid_stat(p->buf, e) == 0)
                p->nents++;
        }
    }
    close(fd);
}

/* Entries in <root>/<pid>/fd, or -1 when unreadable. */
static long count_fds(struct mt_sys_proc *p, pid_t pid)
{
    long n, count = 0;
    int fd;
    snprintf(p->path, sizeof p->path, "%s/%d/fd", p->root, (int)pid);
    fd = open(p->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    while ((n = syscall(SYS_getdents64, fd, p->dents, sizeof p->dents)) > 0) {
        for (long off = 0; off < n;) {
            struct linux_dirent64 *d = (struct linux_dirent64 *)(p->dents + off);
            off += d->d_reclen;
            if (d->d_name[0] != '.')
                count++;
        }
    }
    close(fd);
    return count;
}

static int read_io(struct mt_sys_proc *p, pid_t pid, uint64_t *rd, uint64_t *wr)
{
    char rel[64];
    int64_t r, w;
    snprintf(rel, sizeof rel, "%d/io", (int)pid);
    if (read_rel(p, rel) < 0)
        return -1;
    r = line_field(p->buf, "read_bytes");
    w = line_field(p->buf, "write_bytes");
    if (r < 0 || w < 0)
        return -1;
    *rd += (uint64_t)r;
    *wr += (uint64_t)w;
    return 0;
}

static void remember_scan(struct mt_sys_proc *p)
{
    p->known_sorted = 1;
    for (size_t i = 0; i < p->nents; i++) {
        p->known[i].pid = p->ents[i].pid;
        p->known[i].ppid = p->ents[i].ppid;
        p->known[i].in_tree = p->ents[i].in_tree;
        if (i && p->known[i].pid <= p->known[i - 1].pid)
            p->known_sorted = 0;
    }
    p->nknown = p->nents;
}

static void read_tree(struct mt_sys_proc *p, pid_t root, struct mt_sys_raw *r)
{
    size_t ntree = 0, before;
    scan_procs(p, root);
    for (size_t i = 0; i < p->nents; i++) {
        p->ents[i].in_tree = p->ents[i].pid == root;
        if (p->ents[i].in_tree)
            p->tree[ntree++] = root;
    }
    if (!ntree) {
        remember_scan(p);
        return;
    }
    /* Mark children of marked processes until nothing changes; pids mostly
     * grow from parent to child, so this is usually one or two passes, each
     * costing processes x tree size. */
    do {
        before = ntree;
        for (size_t i = 0; i < p->nents; i++) {
            if (p->ents[i].in_tree)
                continue;
            for (size_t j = 0; j < ntree; j++) {
                if (p->tree[j] == p->ents[i].ppid) {
                    p->ents[i].in_tree = 1;
                    p->tree[ntree++] = p->ents[i].pid;
                    break;
                }
            }
        }
    } while (ntree != before);
    remember_scan(p);
    r->have |= MT_RAW_TREE;
    for (size_t i = 0; i < p->nents; i++) {
        struct proc_ent *e = &p->ents[i];
        long fds;
        if (!e->in_tree)
            continue;
        r->tree_procs++;
        r->tree_cpu += e->cpu;
        r->tree_threads += e->threads;
        r->tree_rss += e->rss_pages * (uint64_t)p->page_size;
        if (read_io(p, e->pid, &r->tree_read, &r->tree_write) == 0)
            r->have |= MT_RAW_IO;
        if ((fds = count_fds(p, e->pid)) >= 0) {
            r->tree_fds += (uint64_t)fds;
            r->have |= MT_RAW_FDS;
        }
    }
}

void mt_sys_proc_read(struct mt_sys_proc *p, pid_t root_pid, const char *disk_path,
                      struct mt_sys_raw *out)
{
    memset(out, 0, sizeof *out);
    read_cpu(p, out);
    read_mem(p, out);
    read_net(p, out);
    read_disk(disk_path, out);
    if (root_pid > 0)
        read_tree(p, root_pid, out);
}
