/* mt_json: JSON numbers kept as they were written.
 *
 * cJSON holds a number as a double only, so a value printed as `1e-3` comes
 * back as 0.001, and re-formatting a double loses how the program wrote it
 * (an MLflow param `num_round=30` must stay "30", `lr=1e-3` stay "1e-3").
 * The convention of this module: a number node may carry its literal text in
 * `valuestring`.  cJSON frees valuestring with the node, copies it in
 * cJSON_Duplicate and ignores it when printing, so such a node behaves as an
 * ordinary number everywhere else; only these functions look at it.
 *
 * Readers of run.json's config (the uploader, show, report, export) parse it
 * with mt_json_parse_literal and print values with mt_json_number_text;
 * writers print with mt_json_print_literal so the file holds the literal. */
#ifndef MT_JSON_H
#define MT_JSON_H

#include <stddef.h>

struct cJSON;

/* Is s[0..n) a number in JSON's grammar (so it can be written as is)? */
int mt_json_is_number_literal(const char *s, size_t n);

/* A number node for `value` that remembers `literal` (when it is a valid JSON
 * number literal; otherwise a plain number node).  NULL when out of memory. */
struct cJSON *mt_json_create_number(double value, const char *literal, size_t len);

/* cJSON_Parse, and every number node gets its literal text in valuestring. */
struct cJSON *mt_json_parse_literal(const char *text);

/* cJSON_Print / cJSON_PrintUnformatted, writing the remembered literal of each
 * number node instead of re-formatting its double.  Caller frees. */
char *mt_json_print_literal(const struct cJSON *item, int formatted);

/* The text of a number node: its literal when known, else the shortest text
 * that reads back as the same double ("30", "0.1", "1e+300").  Returns buf or
 * the node's own literal. */
const char *mt_json_number_text(const struct cJSON *item, char *buf, size_t size);

/* The shortest %g text of d that reads back as d ("30", not "3e+01"). */
void mt_json_format_double(double d, char *buf, size_t size);

#endif
