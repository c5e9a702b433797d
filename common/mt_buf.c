/* mt_buf: see mt_buf.h. */
#include "mt_buf.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mt_list_next(const char **cursor, const char **item, size_t *len)
{
    const char *p = *cursor ? *cursor : "";
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        const char *s = p;
        p = comma ? comma + 1 : p + n;
        while (n && (*s == ' ' || *s == '\t'))
            s++, n--;
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        if (n) {
            *cursor = p;
            *item = s;
            *len = n;
            return 1;
        }
    }
    *cursor = p;
    return 0;
}

void *mt_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fputs("metrictap: out of memory\n", stderr);
        abort();
    }
    return p;
}

void *mt_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        fputs("metrictap: out of memory\n", stderr);
        abort();
    }
    return p;
}

void *mt_xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) {
        fputs("metrictap: out of memory\n", stderr);
        abort();
    }
    return p;
}

char *mt_xstrdup(const char *s)
{
    return mt_xstrndup(s, strlen(s));
}

char *mt_xstrndup(const char *s, size_t n)
{
    char *p = mt_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void mt_buf_init(struct mt_buf *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max;
}

void mt_buf_free(struct mt_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap_alloc = 0;
}

/* Makes room for n more bytes and the NUL (within the cap, checked by the
 * callers). */
static void grow(struct mt_buf *b, size_t n)
{
    if (b->len + n + 1 > b->cap_alloc) {
        size_t want = b->cap_alloc ? b->cap_alloc : 64;
        while (want < b->len + n + 1)
            want *= 2;
        b->data = mt_xrealloc(b->data, want);
        b->cap_alloc = want;
    }
}

char *mt_buf_reserve(struct mt_buf *b, size_t n)
{
    if (b->len + n > b->max)
        return NULL;
    grow(b, n);
    return b->data + b->len;
}

int mt_buf_add_slow(struct mt_buf *b, const void *p, size_t n)
{
    int rc = 0;
    if (b->len + n > b->max) {
        size_t fit = b->max > b->len ? b->max - b->len : 0;
        b->refused += n - fit;
        n = fit;
        rc = -1;
    }
    grow(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return rc;
}


int mt_buf_printf(struct mt_buf *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n < sizeof small)
        return mt_buf_add(b, small, (size_t)n);
    char *big = mt_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = mt_buf_add(b, big, (size_t)n);
    free(big);
    return rc;
}

const char mt_digit_pairs[200] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                                 "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                                 "8081828384858687888990919293949596979899";

void mt_buf_u64(struct mt_buf *b, uint64_t v)
{
    char tmp[24];
    char *p = mt_digits_before(tmp + sizeof tmp, v, 1);
    mt_buf_add(b, p, (size_t)(tmp + sizeof tmp - p));
}

void mt_buf_fixed_slow(struct mt_buf *b, double v, int decimals)
{
    mt_buf_printf(b, "%.*f", decimals < 0 ? 0 : decimals > 9 ? 9 : decimals, v);
}

/* Length of a valid UTF-8 sequence at s, or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    if (s[0] < 0x80)
        return 1;
    size_t len = (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3 : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (!len || len > n || (len == 2 && s[0] < 0xc2))
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    uint32_t cp = len == 3 ? ((s[0] & 0x0fu) << 12) | ((s[1] & 0x3fu) << 6) | (s[2] & 0x3fu)
                : len == 4 ? ((s[0] & 0x07u) << 18) | ((s[1] & 0x3fu) << 12) : 0x80;
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

void mt_buf_json_string(struct mt_buf *b, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    mt_buf_addc(b, '"');
    size_t run = 0; /* bytes copied verbatim in one go */
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++, run++;
            continue;
        }
        if (run)
            mt_buf_add(b, s + i - run, run), run = 0;
        if (c >= 0x80) {
            size_t l = utf8_len(s + i, n - i);
            if (l) {
                mt_buf_add(b, s + i, l);
                i += l;
            } else {
                mt_buf_adds(b, "\\ufffd"); /* invalid UTF-8 */
                i++;
            }
            continue;
        }
        switch (c) {
        case '"': mt_buf_adds(b, "\\\""); break;
        case '\\': mt_buf_adds(b, "\\\\"); break;
        case '\n': mt_buf_adds(b, "\\n"); break;
        case '\r': mt_buf_adds(b, "\\r"); break;
        case '\t': mt_buf_adds(b, "\\t"); break;
        default: mt_buf_printf(b, "\\u%04x", c); break;
        }
        i++;
    }
    if (run)
        mt_buf_add(b, s + n - run, run);
    mt_buf_addc(b, '"');
}

void mt_buf_json_number(struct mt_buf *b, double v)
{
    if (isnan(v))
        mt_buf_adds(b, "\"NaN\"");
    else if (isinf(v))
        mt_buf_adds(b, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    else if (fabs(v) < 1e15 && v == (double)(int64_t)v) /* range first: no UB cast */
        mt_buf_printf(b, "%lld", (long long)v);
    else {
        /* The shortest of %.15g/%.16g/%.17g that reads back exactly. */
        char tmp[40];
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(tmp, sizeof tmp, "%.*g", prec, v);
            if (prec == 17 || strtod(tmp, NULL) == v)
                break;
        }
        mt_buf_adds(b, tmp);
    }
}
