/* Interposers for the set*uid family: a process of the run that becomes
 * another user (`setpriv --reuid=nobody ./train`, `su`, a daemon dropping
 * root).  Its ring stays mapped and usable, but what it execs or forks from
 * then on cannot join the run: the channel is private to the run's user, and
 * rightly so.  So that this is not lost silently, the change is told to the
 * agent while the ring is still there: one MT_REC_USER record with the new
 * real and effective uid, which the run records as an `untracked` event
 * naming the process.  errno is the real call's; nothing is allocated. */
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

static uid_t run_uid; /* who the process was when it joined the run */

__attribute__((constructor)) static void ids_init(void)
{
    run_uid = geteuid();
}

MT_HIDDEN uid_t mt_run_uid(void)
{
    return run_uid;
}

static void tell_user_change(void)
{
    struct mt_ring_header *r = mt_ring;
    uid_t euid = geteuid();
    if (!r || euid == run_uid)
        return;
    uint32_t ids[2] = { (uint32_t)getuid(), (uint32_t)euid };
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    mt_ring_push(r, MT_REC_META(MT_REC_USER, 0, 0),
                 (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec, ids, sizeof ids);
    if (mt_ctl)
        mt_ctl_ring_bell(mt_ctl);
}

#define REAL(name)                                                                               \
    static __typeof__(&name) real_##name;                                                        \
    if (!real_##name)                                                                            \
        real_##name = (__typeof__(&name))dlsym(RTLD_NEXT, #name);                                \
    if (!real_##name) {                                                                          \
        errno = ENOSYS;                                                                          \
        return -1;                                                                               \
    }

#define AFTER(call)                                                                              \
    int rc = call;                                                                               \
    if (rc == 0) {                                                                               \
        int saved = errno;                                                                       \
        tell_user_change();                                                                      \
        errno = saved;                                                                           \
    }                                                                                            \
    return rc

MT_EXPORT int setuid(uid_t uid)
{
    REAL(setuid);
    AFTER(real_setuid(uid));
}

MT_EXPORT int seteuid(uid_t euid)
{
    REAL(seteuid);
    AFTER(real_seteuid(euid));
}

MT_EXPORT int setreuid(uid_t ruid, uid_t euid)
{
    REAL(setreuid);
    AFTER(real_setreuid(ruid, euid));
}

MT_EXPORT int setresuid(uid_t ruid, uid_t euid, uid_t suid)
{
    REAL(setresuid);
    AFTER(real_setresuid(ruid, euid, suid));
}
