/* A process of the run that became another user (preload/ids.c sends an
 * MT_REC_USER record when it does): what it execs or forks from then on
 * cannot join the run, whose channel is private to the run's user, so the
 * run records an `untracked` event naming it, which `show` prints. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../common/mt_buf.h"
#include "mt_agent.h"

void mt_untracked_user(struct mt_agent *a, uint32_t pid, const char *exe,
                       const struct mt_rec_view *v)
{
    uint32_t ids[2];
    if (v->len < sizeof ids)
        return;
    memcpy(ids, v->data, sizeof ids);
    struct mt_buf b;
    mt_buf_init(&b, 1 << 16);
    mt_buf_printf(&b, "\"pid\":%u,\"exe\":", pid);
    mt_buf_json_string(&b, exe, strlen(exe));
    mt_buf_printf(&b,
                  ",\"uid\":%u,\"euid\":%u,\"reason\":\"the process became uid %u; what it runs"
                  " from then on is kept out of the run of uid %u\"",
                  ids[0], ids[1], ids[1], (unsigned)geteuid());
    mt_store_event(&a->store, mt_agent_unix_of(a, v->ts_ns), "untracked", b.data);
    mt_buf_free(&b);
}
