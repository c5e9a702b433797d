/* The cursor (upload/<backend>.json; its layout is in upload.c): read,
 * written (temp + fsync + rename), and chosen by target, so that each
 * server a run is sent to has its own. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "mt_upload_backend.h"
#include "upload_internal.h"
#include "backends/mt_state_json.h"

static double num(const cJSON *o, const char *key, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static void set_num(cJSON *o, const char *key, double v)
{
    cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsNumber(it))
        cJSON_SetNumberValue(it, v);
    else {
        cJSON_DeleteItemFromObjectCaseSensitive(o, key);
        cJSON_AddNumberToObject(o, key, v);
    }
}

int mt_upload__write_atomic(const char *path, const char *data, size_t len)
{
    char tmp[4400];
    int result = 0, fd = -1;
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
    unlink(tmp); /* one a crash of the same pid left */
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        result = -errno;
        goto out;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            result = -errno;
            goto out;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0) {
        result = -errno;
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        result = -errno;
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0)
        result = -errno;
out:
    if (fd >= 0)
        close(fd);
    if (result)
        unlink(tmp);
    return result;
}

static void pos_load(cJSON *c, const char *key, struct mt_upload__pos *p)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(c, key);
    p->off = (long long)num(o, "offset", 0);
    p->skip = (unsigned)num(o, "skip", 0);
    p->line = (long long)num(o, "line", 0);
}

static void pos_store(cJSON *c, const char *key, const struct mt_upload__pos *p)
{
    cJSON *o = mt_sj_obj(c, key);
    set_num(o, "offset", (double)p->off);
    set_num(o, "skip", p->skip);
    set_num(o, "line", (double)p->line);
}

int mt_upload__cursor_save(struct mt_uploader *u)
{
    pos_store(u->cursor, "history", &u->hstart);
    pos_store(u->cursor, "system", &u->sstart);
    mt_upload__axes_store(u->cursor, &u->axstart);
    char *txt = cJSON_Print(u->cursor);
    if (!txt)
        return -ENOMEM;
    int r = mt_upload__write_atomic(u->cursor_path, txt, strlen(txt));
    free(txt);
    if (r)
        if (!u->o.quiet)
            fprintf(stderr, "metrictap: upload: cannot write %s: %s\n", u->cursor_path,
                    strerror(-r));
    return r;
}

/* Makes the cursor of `target` the current one.  A cursor names the target
 * it was sent to; those of other targets wait under "others".  A cursor
 * that names none comes from before targets were kept: it is taken to be
 * this target's. */
static void cursor_select(struct mt_uploader *u, const char *target)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(u->cursor, "target");
    if (!cJSON_IsString(t)) {
        mt_sj_set_str(u->cursor, "target", target);
        return;
    }
    if (strcmp(t->valuestring, target) == 0)
        return;
    char *old_target = strdup(t->valuestring);
    cJSON *others = cJSON_DetachItemFromObjectCaseSensitive(u->cursor, "others");
    if (!cJSON_IsObject(others)) {
        cJSON_Delete(others);
        others = cJSON_CreateObject();
    }
    cJSON *mine = cJSON_DetachItemFromObjectCaseSensitive(others, target);
    if (!cJSON_IsObject(mine)) {
        cJSON_Delete(mine);
        mine = cJSON_CreateObject();
        cJSON_AddNumberToObject(mine, "version", 2);
    }
    if (old_target)
        cJSON_AddItemToObject(others, old_target, u->cursor);
    else
        cJSON_Delete(u->cursor);
    free(old_target);
    u->cursor = mine;
    mt_sj_set_str(u->cursor, "target", target);
    cJSON_AddItemToObject(u->cursor, "others", others);
}

void mt_upload__cursor_load(struct mt_uploader *u)
{
    cJSON_Delete(u->cursor);
    char *txt = mt_upload__read_file(u->cursor_path, NULL);
    u->cursor = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    if (!cJSON_IsObject(u->cursor)) {
        cJSON_Delete(u->cursor);
        u->cursor = cJSON_CreateObject();
        cJSON_AddNumberToObject(u->cursor, "version", 2);
    }
    /* Version 1 kept MLflow's sent params and tags at the top; they are the
     * backend's business now. */
    cJSON *bstate = mt_sj_obj(u->cursor, "backend");
    static const char *const moved[] = {"params", "tags"};
    for (size_t i = 0; i < 2; i++) {
        cJSON *old = cJSON_DetachItemFromObjectCaseSensitive(u->cursor, moved[i]);
        if (old && !cJSON_GetObjectItemCaseSensitive(bstate, moved[i]))
            cJSON_AddItemToObject(bstate, moved[i], old);
        else
            cJSON_Delete(old);
    }
    char target[2400] = "";
    if (u->be_ops->target) {
        char rjp[4200];
        snprintf(rjp, sizeof(rjp), "%s/run.json", u->dir);
        char *rtxt = mt_upload__read_file(rjp, NULL);
        cJSON *rj = rtxt ? cJSON_Parse(rtxt) : NULL;
        free(rtxt);
        u->be_ops->target(&u->o, rj, target, sizeof(target));
        cJSON_Delete(rj);
    }
    if (target[0])
        cursor_select(u, target);
    pos_load(u->cursor, "history", &u->hstart);
    pos_load(u->cursor, "system", &u->sstart);
    mt_upload__axes_load(u->cursor, &u->axstart);
    pos_load(u->cursor, "history", &u->hstart);
    pos_load(u->cursor, "system", &u->sstart);
    mt_upload__axes_load(u->cursor, &u->axstart);
    u->hpos = u->hstart;
    u->spos = u->sstart;
    u->ax = u->axstart;
}
