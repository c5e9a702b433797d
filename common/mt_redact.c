/* Secret-looking names and URL credentials; see mt_redact.h. */
#include "common/mt_redact.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

static const char *const secret_words[] = {
    "KEY", "TOKEN", "SECRET", "SECRETS", "PASSWORD", "PASSWORDS", "PASSWD",
    "CREDENTIAL", "CREDENTIALS", "AUTH", "APIKEY", "ACCESSKEY", "SECRETKEY",
    "PRIVATEKEY", "AUTHTOKEN", "PASSPHRASE",
};

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fputs("metrictap: out of memory\n", stderr);
        abort();
    }
    return p;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

static bool word_is_secret(const char *w, size_t n)
{
    char up[16];
    if (n == 0 || n >= sizeof up)
        return false;
    for (size_t i = 0; i < n; i++)
        up[i] = (char)toupper((unsigned char)w[i]);
    up[n] = '\0';
    for (size_t i = 0; i < sizeof secret_words / sizeof secret_words[0]; i++)
        if (strcmp(up, secret_words[i]) == 0)
            return true;
    return false;
}

bool mt_redact_is_secret_name(const char *name, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        bool end = i == len || !isalnum((unsigned char)name[i]);
        bool camel = !end && i > start && islower((unsigned char)name[i - 1]) &&
                     isupper((unsigned char)name[i]);
        if (end || camel) {
            if (word_is_secret(name + start, i - start))
                return true;
            start = end ? i + 1 : i;
        }
    }
    return false;
}

/* Finds the next URL userinfo in s: sets *u0 (first byte after "://") and *at
 * (the '@'); returns false when none is left. */
static bool next_userinfo(const char *s, const char **u0, const char **at, const char **scheme)
{
    const char *p = s;
    while ((p = strstr(p, "://")) != NULL) {
        const char *a = p + 3, *q = a, *last_at = NULL;
        while (*q && *q != '/' && *q != '?' && *q != '#' && !isspace((unsigned char)*q)) {
            if (*q == '@')
                last_at = q;
            q++;
        }
        if (last_at && last_at > a) {
            const char *sc = p;
            while (sc > s && (isalnum((unsigned char)sc[-1]) || sc[-1] == '+' ||
                              sc[-1] == '-' || sc[-1] == '.'))
                sc--;
            *scheme = sc;
            *u0 = a;
            *at = last_at;
            return true;
        }
        p = q;
    }
    return false;
}

/* Rewrites URL userinfo: strip=false -> [REDACTED]@, strip=true -> removed
 * (a bare user on non-http schemes stays). */
static char *rewrite_urls(const char *s, bool strip)
{
    size_t cap = strlen(s) + 1, n = 0;
    const char *u0, *at, *sc, *p = s;
    /* Each rewrite adds at most strlen("[REDACTED]") bytes per userinfo of
     * at least one byte, so the worst case is bounded by this. */
    char *out;
    size_t count = 0;
    const char *t = s;
    while (next_userinfo(t, &u0, &at, &sc)) {
        count++;
        t = at + 1;
    }
    cap += count * sizeof MT_REDACTED;
    out = xmalloc(cap);
    while (next_userinfo(p, &u0, &at, &sc)) {
        memcpy(out + n, p, (size_t)(u0 - p));
        n += (size_t)(u0 - p);
        bool http = strncasecmp(sc, "http", 4) == 0;
        bool has_pass = memchr(u0, ':', (size_t)(at - u0)) != NULL;
        if (!strip) {
            memcpy(out + n, MT_REDACTED "@", sizeof MT_REDACTED);
            n += sizeof MT_REDACTED;
        } else if (!http && !has_pass) {
            memcpy(out + n, u0, (size_t)(at - u0) + 1);
            n += (size_t)(at - u0) + 1;
        }
        p = at + 1;
    }
    memcpy(out + n, p, strlen(p) + 1);
    return out;
}

char *mt_redact_url(const char *s)
{
    return rewrite_urls(s ? s : "", false);
}

char *mt_redact_strip_url(const char *url)
{
    return rewrite_urls(url ? url : "", true);
}

static size_t strv_len(char *const v[])
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

static char *with_redacted_value(const char *s, size_t name_len)
{
    char *out = xmalloc(name_len + 1 + sizeof MT_REDACTED);
    memcpy(out, s, name_len);
    out[name_len] = '=';
    memcpy(out + name_len + 1, MT_REDACTED, sizeof MT_REDACTED);
    return out;
}

char **mt_redact_env(char *const envp[])
{
    size_t n = strv_len(envp);
    char **out = xmalloc((n + 1) * sizeof *out);
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(envp[i], '=');
        if (eq && mt_redact_is_secret_name(envp[i], (size_t)(eq - envp[i])))
            out[i] = with_redacted_value(envp[i], (size_t)(eq - envp[i]));
        else
            out[i] = mt_redact_url(envp[i]);
    }
    out[n] = NULL;
    return out;
}

/* NAME=value with NAME an identifier (letters, digits, _ . -). */
static size_t assignment_name_len(const char *s)
{
    size_t i = 0;
    while (isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '.' || s[i] == '-')
        i++;
    return i > 0 && s[i] == '=' ? i : 0;
}

char **mt_redact_argv(char *const argv[])
{
    size_t n = strv_len(argv);
    char **out = xmalloc((n + 1) * sizeof *out);
    for (size_t i = 0; i < n; i++) {
        const char *a = argv[i];
        size_t name_len = assignment_name_len(a);
        if (name_len && mt_redact_is_secret_name(a, name_len)) {
            out[i] = with_redacted_value(a, name_len);   /* --token=X, PASSWORD=x */
        } else if (a[0] == '-' && !name_len && !strchr(a, '=') &&
                   mt_redact_is_secret_name(a, strlen(a)) && i + 1 < n &&
                   strncmp(argv[i + 1], "--", 2) != 0) {
            out[i] = xstrdup(a);                          /* --api-key X */
            out[++i] = xstrdup(MT_REDACTED);
        } else {
            out[i] = mt_redact_url(a);
        }
    }
    out[n] = NULL;
    return out;
}

void mt_redact_strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

void mt_redact_json(cJSON *item)
{
    if (!item)
        return;
    if (cJSON_IsString(item) && item->valuestring && strstr(item->valuestring, "://")) {
        char *r = mt_redact_url(item->valuestring);
        if (strcmp(r, item->valuestring) != 0)
            cJSON_SetValuestring(item, r);
        free(r);
        return;
    }
    for (cJSON *c = item->child; c; c = c->next) {
        if (cJSON_IsObject(item) && c->string &&
            mt_redact_is_secret_name(c->string, strlen(c->string))) {
            cJSON *r = cJSON_CreateString(MT_REDACTED);
            if (!r)
                abort();
            r->string = xstrdup(c->string);
            cJSON_ReplaceItemViaPointer(item, c, r);
            c = r;
            continue;
        }
        mt_redact_json(c);
    }
}
