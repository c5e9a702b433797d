/* mt_channel: the doorbell between producers and the agent. */
#include "mt_channel.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "mt_ring.h"
#include "mt_safefs.h"

uint64_t mt_ctl_ring_capacity(const struct mt_ctl *ctl)
{
    return ctl->ring_capacity ? mt_ring_capacity_for(ctl->ring_capacity)
                              : MT_RING_DEFAULT_CAPACITY;
}

struct mt_ctl *mt_channel_map_ctl(const char *dir)
{
    /* Only a channel of our own: its directory private to us, ctl a plain
     * file of ours big enough to map (a shorter one would fault). */
    int dfd = mt_safefs_open_dir(dir, MT_SAFEFS_PRIVATE, NULL, 0);
    if (dfd < 0)
        return NULL;
    int fd = mt_safefs_openat(dfd, dir, "ctl", O_RDWR, 0, NULL, 0);
    close(dfd);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) != 0 || st.st_size < (off_t)MT_CTL_SIZE)) {
        close(fd);
        fd = -1;
    }
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
    int dfd = mt_safefs_open_dir(dir, MT_SAFEFS_PRIVATE, NULL, 0);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        if (dfd >= 0)
            close(dfd);
        return; /* not ours: left alone */
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (!(e->d_name[0] == '.' && (!e->d_name[1] || e->d_name[1] == '.')))
            unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
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

    snprintf(tmp, sizeof tmp, ".new.%u.%u", pid, nonce);
    snprintf(final, sizeof final, MT_RING_NAME_FMT, pid, nonce);
    /* In our own channel only (the process may run as another user now). */
    int dfd = mt_safefs_open_dir(dir, MT_SAFEFS_PRIVATE, NULL, 0);
    int fd = dfd >= 0 ? openat(dfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)
                      : -1;
    if (fd < 0) {
        if (dfd >= 0)
            close(dfd);
        return NULL;
    }
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
        unlinkat(dfd, tmp, 0);
        close(dfd);
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
    int renamed = renameat(dfd, tmp, dfd, final) == 0;
    if (!renamed)
        unlinkat(dfd, tmp, 0);
    close(dfd);
    if (!renamed) {
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
