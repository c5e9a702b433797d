/* mt_state_json: see mt_state_json.h. */
#include "mt_state_json.h"

#include <stdlib.h>
#include <string.h>

#include "../mt_upload_backend.h"

const char *mt_sj_str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

double mt_sj_num(const cJSON *o, const char *k, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

int mt_sj_true(const cJSON *o, const char *k)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k));
}

void mt_sj_set_num(cJSON *o, const char *k, double v)
{
    cJSON_DeleteItemFromObjectCaseSensitive(o, k);
    cJSON_AddNumberToObject(o, k, v);
}

cJSON *mt_sj_obj(cJSON *parent, const char *key)
{
    cJSON *o = cJSON_GetObjectItemCaseSensitive(parent, key);
    if (!cJSON_IsObject(o)) {
        cJSON_DeleteItemFromObjectCaseSensitive(parent, key);
        o = cJSON_AddObjectToObject(parent, key);
    }
    return o;
}

void mt_sj_set_str(cJSON *o, const char *k, const char *v)
{
    cJSON_DeleteItemFromObjectCaseSensitive(o, k);
    cJSON_AddStringToObject(o, k, v);
}

void mt_sj_set_bool(cJSON *o, const char *k, int v)
{
    cJSON_DeleteItemFromObjectCaseSensitive(o, k);
    cJSON_AddBoolToObject(o, k, v);
}

void mt_sj_event(const struct mt_upload_io *io, const char *name, cJSON *fields)
{
    char *t = cJSON_PrintUnformatted(fields);
    size_t n = t ? strlen(t) : 0;
    if (n >= 2 && io) {
        t[n - 1] = '\0'; /* the inside of the object */
        io->event(io->ctx, name, t + 1);
    }
    free(t);
    cJSON_Delete(fields);
}
