/* Small cJSON helpers the file backends share: reading run.json and their
 * cursor state, changing the state, and events with cJSON fields. */
#ifndef MT_STATE_JSON_H
#define MT_STATE_JSON_H

#include <cjson/cJSON.h>

struct mt_upload_io;

/* o[k] as a string, NULL when absent, not a string or empty. */
const char *mt_sj_str(const cJSON *o, const char *k);
double mt_sj_num(const cJSON *o, const char *k, double dflt);
int mt_sj_true(const cJSON *o, const char *k);
/* parent[key] as an object, made (replacing what else was there) when it is none. */
cJSON *mt_sj_obj(cJSON *parent, const char *key);
/* Replace o[k]. */
void mt_sj_set_num(cJSON *o, const char *k, double v);
void mt_sj_set_str(cJSON *o, const char *k, const char *v);
void mt_sj_set_bool(cJSON *o, const char *k, int v);
/* An events.jsonl event whose fields are the members of `fields` (consumed). */
void mt_sj_event(const struct mt_upload_io *io, const char *name, cJSON *fields);

#endif
