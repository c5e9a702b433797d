/* mt_channel: the doorbell between producers and the agent. */
#include "mt_channel.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void mt_ctl_ring_bell(struct mt_ctl *ctl)
{
    if (!atomic_load_explicit(&ctl->sleeping, memory_order_relaxed))
        return;
    unsigned expected = 1;
    if (atomic_compare_exchange_strong(&ctl->sleeping, &expected, 0)) {
        atomic_fetch_add(&ctl->doorbell, 1);
        syscall(SYS_futex, &ctl->doorbell, FUTEX_WAKE, 1, NULL, NULL, 0);
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
