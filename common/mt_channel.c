/* mt_channel: the doorbell between producers and the agent. */
#include "mt_channel.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "mt_ring.h"

uint64_t mt_ctl_ring_capacity(const struct mt_ctl *ctl)
{
    return ctl->ring_capacity ? mt_ring_capacity_for(ctl->ring_capacity)
                              : MT_RING_DEFAULT_CAPACITY;
}

struct mt_ctl *mt_channel_map_ctl(const char *dir)
{
    char path[600];
    snprintf(path, sizeof path, "%s/ctl", dir);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    void *mem = mmap(NULL, MT_CTL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (mem == MAP_FAILED)
        return NULL;
    struct mt_ctl *ctl = mem;
    if (ctl->magic != MT_CTL_MAGIC || atomic_load(&ctl->closed)) {
        munmap(mem, MT_CTL_SIZE);
        return NULL;
    }
    return ctl;
}

void mt_channel_remove(const char *dir, struct mt_ctl *ctl)
{
    if (ctl)
        atomic_store(&ctl->closed, 1);
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char path[1024];
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.' && (!e->d_name[1] || e->d_name[1] == '.'))
                continue;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

struct mt_ring_header *mt_channel_create_ring(const char *dir, uint64_t capacity,
                                              uint32_t flags, int32_t rank,
                                              int32_t world_size)
{
    char tmp[600], final[600];
    size_t size = MT_RING_HDR_SIZE + capacity;
    uint32_t pid = (uint32_t)getpid();
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned nonce = (unsigned)(ts.tv_nsec ^ (ts.tv_sec << 20));

    snprintf(tmp, sizeof tmp, "%s/.new.%u.%u", dir, pid, nonce);
    snprintf(final, sizeof final, "%s/" MT_RING_NAME_FMT, dir, pid, nonce);
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return NULL;
    /* The file is sparse on tmpfs; a store into a page a full tmpfs cannot
     * back raises SIGBUS.  The header and the first chunk get memory now;
     * producers populate the rest as they reach it (mt_ring.c), or, where
     * the kernel predates MADV_POPULATE_WRITE (5.14), all of it now. */
    void *mem = MAP_FAILED;
    uint64_t first = capacity < MT_RING_CHUNK ? capacity : MT_RING_CHUNK;
    uint64_t backed = capacity;
    if (ftruncate(fd, (off_t)size) == 0 &&
        posix_fallocate(fd, 0, (off_t)(MT_RING_HDR_SIZE + first)) == 0)
        mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mem != MAP_FAILED && first < capacity) {
        if (mt_ring_populate((char *)mem + MT_RING_HDR_SIZE, first) == 0)
            backed = first;
        else if (posix_fallocate(fd, 0, (off_t)size) != 0) {
            munmap(mem, size);
            mem = MAP_FAILED;
        }
    }
    close(fd);
    if (mem == MAP_FAILED) {
        unlink(tmp);
        return NULL;
    }
    struct mt_ring_header *r = mem;
    mt_ring_init(r, capacity, pid, flags);
    r->backed = backed;
    r->rank = rank;
    r->world_size = world_size;
    r->created_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    ssize_t n = readlink("/proc/self/exe", r->exe, sizeof r->exe - 1);
    r->exe[n > 0 ? n : 0] = '\0';
    if (rename(tmp, final) != 0) {
        unlink(tmp);
        munmap(mem, size);
        return NULL;
    }
    return r;
}

void mt_ctl_wake(struct mt_ctl *ctl)
{
    unsigned expected = 1;
    if (atomic_compare_exchange_strong(&ctl->sleeping, &expected, 0)) {
        int saved = errno;
        atomic_fetch_add(&ctl->doorbell, 1);
        syscall(SYS_futex, &ctl->doorbell, FUTEX_WAKE, 1, NULL, NULL, 0);
        errno = saved;
    }
}

unsigned mt_ctl_sleep_begin(struct mt_ctl *ctl)
{
    unsigned bell = atomic_load(&ctl->doorbell);
    atomic_store(&ctl->sleeping, 1);
    return bell;
}

void mt_ctl_sleep(struct mt_ctl *ctl, unsigned bell, int timeout_ms)
{
    struct timespec ts = { timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L };
    if (atomic_load(&ctl->sleeping))
        syscall(SYS_futex, &ctl->doorbell, FUTEX_WAIT, bell, &ts, NULL, 0);
    atomic_store(&ctl->sleeping, 0);
}
