/* Interposers for the fd-level writers: what C++ without stdio sync, Fortran,
 * Python and Rust use.  write() runs in signal handlers too, so nothing here
 * allocates or locks. */
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

MT_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
    ssize_t (*real)(int, const void *, size_t) = mt_real.write;
    ssize_t rc = real ? real(fd, buf, n) : syscall(SYS_write, fd, buf, n);
    if (rc > 0 && mt_depth == 0 && mt_ring) {
        int stream = mt_stream_of_fd(fd);
        if (stream)
            mt_capture(stream, buf, (size_t)rc, NULL, 0);
    }
    return rc;
}

MT_EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    ssize_t rc = MT_REAL(pwrite, "pwrite")(fd, buf, n, off);
    if (rc > 0 && mt_depth == 0 && mt_ring) {
        int stream = mt_stream_of_fd(fd);
        if (stream)
            mt_capture(stream, buf, (size_t)rc, NULL, 0);
    }
    return rc;
}

MT_EXPORT ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
    __attribute__((alias("pwrite")));

MT_EXPORT ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    ssize_t (*real)(int, const struct iovec *, int) = mt_real.writev;
    ssize_t rc = real ? real(fd, iov, cnt) : syscall(SYS_writev, fd, iov, cnt);
    int stream = (rc > 0 && mt_depth == 0 && mt_ring) ? mt_stream_of_fd(fd) : 0;
    if (!stream)
        return rc;
    /* One record for the whole call when it fits, so a line is never split. */
    char joined[4096];
    size_t left = (size_t)rc, used = 0;
    for (int i = 0; i < cnt && left; i++) {
        size_t take = iov[i].iov_len < left ? iov[i].iov_len : left;
        if ((size_t)rc <= sizeof joined) {
            memcpy(joined + used, iov[i].iov_base, take);
            used += take;
        } else {
            mt_capture(stream, iov[i].iov_base, take, NULL, 0);
        }
        left -= take;
    }
    if (used)
        mt_capture(stream, joined, used, NULL, 0);
    return rc;
}
