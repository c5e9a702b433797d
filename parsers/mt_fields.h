/* Fields extracted from one line, and the number syntax every extractor
 * shares.  Internal to parsers/. */
#ifndef MT_FIELDS_H
#define MT_FIELDS_H

#include <stddef.h>
#include <stdint.h>

#define MT_MAX_FIELDS 64
#define MT_MAX_KEY 250 /* MLflow's key limit; longer keys are cut */

enum mt_field_role { MT_ROLE_METRIC = 0, MT_ROLE_AXIS = 1, MT_ROLE_CONFIG = 2 };

/* Keys and texts point into the line; valid only during the extract call. */
struct mt_field {
    const char *key;
    uint32_t key_len;
    uint8_t role;
    uint8_t lower_key; /* the key should be lower-cased (e.g. "Epoch") */
    const char *text;  /* the number as printed */
    uint32_t text_len;
    double value;
};

struct mt_fields {
    uint32_t n;
    uint32_t dropped; /* more than MT_MAX_FIELDS on one line */
    struct mt_field f[MT_MAX_FIELDS];
};

static inline struct mt_field *mt_fields_add(struct mt_fields *fs)
{
    if (fs->n >= MT_MAX_FIELDS) {
        fs->dropped++;
        return NULL;
    }
    return &fs->f[fs->n++];
}

/* Parses a number at s[0..len): [+-]digits[.digits][e[+-]digits], .5, nan,
 * inf, infinity (any case).  Returns the bytes used (0: not a number). */
size_t mt_number_scan(const char *s, size_t len, double *out);

/* Is text[0..len) a valid JSON number as it stands (so it can be written
 * back verbatim)? */
int mt_number_is_json(const char *s, size_t len);

/* The Guild-compatible keyvalue preset: `key: value`, `key=value`,
 * `key: value (step N)`, and `epoch N` style axis words. */
void mt_keyvalue_extract(const char *line, size_t len, struct mt_fields *out);

/* Is `key` one of the step axes recognised without configuration? */
int mt_is_default_axis(const char *key, size_t len);

#endif
