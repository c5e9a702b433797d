/* Config from the program's command line: `--lr 0.1`, `--lr=0.1`, `lr=0.1`
 * (xgboost's style), `-lr 0.5` (fastText's), `--flag` (true), and the
 * flags a trainer's preset names (liblinear-train's -C).  Values are
 * typed int, float, bool or string; positional arguments are not config.
 * Dashes inside names become underscores (--learning-rate: learning_rate,
 * as argparse names it).  Values of names that look like secrets are
 * redacted. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/mt_buf.h"
#include "../common/mt_json.h"
#include "mt_fields.h"
#include "mt_parse.h"
#include "mt_rules.h"

#define MAX_KEYS 200
#define NAME_MAX_LEN 100

static int is_name(const char *s, size_t n)
{
    if (!n || n > NAME_MAX_LEN)
        return 0;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return 0;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

static int is_number(const char *s)
{
    double v;
    size_t n = strlen(s);
    return n && mt_number_scan(s, n, &v) == n;
}

static int looks_secret(const char *name)
{
    static const char *words[] = { "token", "password", "passwd", "secret", "api_key", "apikey",
                                   "credential", "auth", NULL };
    for (int i = 0; words[i]; i++)
        if (strcasestr(name, words[i]))
            return 1;
    return 0;
}

static cJSON *typed(const char *v)
{
    size_t n = strlen(v);
    if (strcasecmp(v, "true") == 0)
        return cJSON_CreateTrue();
    if (strcasecmp(v, "false") == 0)
        return cJSON_CreateFalse();
    double d;
    if (n && mt_number_scan(v, n, &d) == n && d == d && d - d == 0)
        return mt_json_create_number(d, v, n); /* as printed: 30, 1e-3 */
    return cJSON_CreateString(v);
}

static void put(cJSON *o, const char *name, size_t n, const char *value)
{
    char key[NAME_MAX_LEN + 1];
    memcpy(key, name, n);
    key[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (key[i] == '-')
            key[i] = '_';
    if (cJSON_GetArraySize(o) >= MAX_KEYS && !cJSON_GetObjectItemCaseSensitive(o, key))
        return;
    cJSON *v = looks_secret(key) ? cJSON_CreateString("[redacted]")
               : value           ? typed(value)
                                 : cJSON_CreateTrue();
    if (cJSON_GetObjectItemCaseSensitive(o, key))
        cJSON_ReplaceItemInObjectCaseSensitive(o, key, v);
    else
        cJSON_AddItemToObject(o, key, v);
}

char *mt_argv_config_json(int argc, char *const *argv)
{
    cJSON *o = cJSON_CreateObject();
    /* -q and the like: flags of the trainer's preset, whatever follows */
    const char *flags = argc > 0 && argv[0] ? mt_preset_flags_of(argv[0]) : "";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!a)
            break;
        if (strcmp(a, "--") == 0)
            break; /* what follows is not options */
        if (a[0] == '-' && !is_number(a)) {
            const char *name = a + (a[1] == '-' ? 2 : 1);
            const char *eq = strchr(name, '=');
            size_t n = eq ? (size_t)(eq - name) : strlen(name);
            if (!is_name(name, n))
                continue;
            if (eq) {
                put(o, name, n, eq + 1);
            } else if (a[1] != '-' && n == 1 && strchr(flags, name[0])) {
                put(o, name, n, NULL);
            } else if (i + 1 < argc && argv[i + 1] &&
                       (argv[i + 1][0] != '-' || is_number(argv[i + 1]))) {
                put(o, name, n, argv[++i]);
            } else {
                put(o, name, n, NULL);
            }
            continue;
        }
        const char *eq = strchr(a, '=');
        if (eq && is_name(a, (size_t)(eq - a)))
            put(o, a, (size_t)(eq - a), eq + 1);
    }
    char *text = mt_json_print_literal(o, 0);
    cJSON_Delete(o);
    if (!text)
        abort();
    return text;
}
