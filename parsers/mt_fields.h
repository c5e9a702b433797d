/* Fields extracted from one line, and the number syntax every extractor
 * shares.  Internal to parsers/. */
#ifndef MT_FIELDS_H
#define MT_FIELDS_H

#include <stddef.h>
#include <stdint.h>

#define MT_MAX_FIELDS 64
#define MT_MAX_KEY 250 /* MLflow's key limit; longer keys are cut */

enum mt_field_role {
    MT_ROLE_METRIC = 0,
    MT_ROLE_AXIS = 1,
    MT_ROLE_CONFIG = 2,
    MT_ROLE_TAG = 3,  /* the text becomes a run tag */
    MT_ROLE_TIME = 4, /* `value` is the line's unix time (import) */
    MT_ROLE_SUMMARY = 5, /* a result printed once (liblinear's "Best C"): the
                            summary's value, in no history row */
};

enum mt_value_kind {
    MT_VAL_NUMBER = 0, /* value; text is the number as printed */
    MT_VAL_BOOL = 1,   /* value 0 or 1; written as false/true */
    MT_VAL_TEXT = 2,   /* text only (a rule asked for it) */
};

/* Keys and texts point into the line or the fields' scratch; valid only
 * during the extract call. */
struct mt_field {
    const char *key;
    uint32_t key_len;
    uint8_t role;
    uint8_t lower_key; /* the key should be lower-cased (e.g. "Epoch") */
    uint8_t kind;      /* enum mt_value_kind */
    uint8_t unit_len;  /* a unit printed after the number ("%", "ms") */
    const char *text;  /* the number as printed */
    uint32_t text_len;
    uint8_t text_is_json; /* text is a valid JSON number as it stands */
    const char *unit;
    double value;
};

#define MT_FIELDS_SCRATCH 8192

struct mt_fields {
    uint32_t n;
    uint32_t dropped; /* more than MT_MAX_FIELDS on one line */
    uint32_t scratch_len;
    double ts;        /* a time the line carried (MT_ROLE_TIME), else 0 */
    struct mt_field f[MT_MAX_FIELDS];
    char scratch[MT_FIELDS_SCRATCH]; /* composed keys (flattened JSON, key_subkey) */
};

static inline void mt_fields_reset(struct mt_fields *fs)
{
    fs->n = 0;
    fs->scratch_len = 0;
    fs->ts = 0;
}

/* Copies s[0..n) into the scratch; NULL when it is full. */
static inline char *mt_fields_keep(struct mt_fields *fs, const char *s, size_t n)
{
    if (n > MT_FIELDS_SCRATCH - fs->scratch_len)
        return NULL;
    char *p = fs->scratch + fs->scratch_len;
    for (size_t i = 0; i < n; i++)
        p[i] = s[i];
    fs->scratch_len += (uint32_t)n;
    return p;
}

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

/* The same, also telling whether s[0..used) is a JSON number as it stands
 * ("0.5", "-1e-3"; not "+1", ".5", "1.", "01", "nan"). */
size_t mt_number_scan_json(const char *s, size_t len, double *out, int *json);

/* Reads a value as rules see it: a number (ints, exponents, a leading '+',
 * nan, inf) optionally followed by a unit ("75.625%", "3.2s", "12ms/step"),
 * or true/false; with allow_text anything else is text.  Blanks around it
 * are ignored.  Fills kind/value/text/unit of f; 0, or -1: not a value. */
int mt_value_parse(const char *s, size_t len, int allow_text, struct mt_field *f);

/* The Guild-compatible keyvalue preset: `key: value`, `key=value`,
 * `key: value (step N)`, and `epoch N` style axis words. */
void mt_keyvalue_extract(const char *line, size_t len, struct mt_fields *out);

/* Is `key` one of the step axes recognised without configuration? */
int mt_is_default_axis(const char *key, size_t len);

/* The json preset: one JSON object per line (Python's dict repr too: single
 * quotes, True/False/None, nan/inf), nested keys flattened with '.'.
 * Returns 0 when the line is not an object. */
int mt_json_extract(const char *line, size_t len, struct mt_fields *out);

/* The csv preset: a header row names the columns of the rows after it. */
struct mt_csv;
struct mt_csv *mt_csv_create(void);
void mt_csv_destroy(struct mt_csv *c);
/* The first line is the header; later ones give fields.  Returns 1 when the
 * line was used. */
int mt_csv_extract(struct mt_csv *c, const char *line, size_t len, struct mt_fields *out);

#endif
