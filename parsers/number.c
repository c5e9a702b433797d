/* Number syntax shared by every extractor. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mt_fields.h"

static inline int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Long or huge numbers: strtod does the rounding.  Kept out of line so the
 * common case needs no stack buffer. */
static __attribute__((noinline)) size_t scan_slow(const char *s, size_t n, size_t used, int neg,
                                                  double *out, int *json)
{
    char buf[512];
    if (n >= sizeof buf) {
        *json = 0;
        return 0;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    double v = strtod(buf, NULL);
    *out = neg ? -v : v;
    return used;
}

/* nan / inf / infinity, in any case: out of line, so the scanner itself
 * calls nothing on its common path. */
static __attribute__((noinline)) size_t scan_word(const char *s, size_t len, size_t i, int neg,
                                                  double *out)
{
    if (len - i >= 3 && strncasecmp(s + i, "nan", 3) == 0) {
        *out = NAN;
        return i + 3;
    }
    if (len - i >= 8 && strncasecmp(s + i, "infinity", 8) == 0) {
        *out = neg ? -INFINITY : INFINITY;
        return i + 8;
    }
    if (len - i >= 3 && strncasecmp(s + i, "inf", 3) == 0) {
        *out = neg ? -INFINITY : INFINITY;
        return i + 3;
    }
    return 0;
}

/* The scanner behind both entry points.  *json tells whether the text used
 * is a JSON number as it stands (no '+', no leading zeros, no bare '.',
 * not nan/inf), found on the way for free: the history then writes the
 * number verbatim without a second pass over it. */
static inline __attribute__((always_inline)) size_t scan(const char *s, size_t len, double *out,
                                                          int *json)
{
    size_t i = 0;
    int neg = 0, plus = 0;
    *json = 0;
    if (len && !is_digit(s[0])) { /* most numbers start with a digit: one test */
        if (s[i] == '+' || s[i] == '-') {
            neg = s[i] == '-';
            plus = !neg;
            i++;
        }
        if (i < len && ((s[i] | 0x20) == 'n' || (s[i] | 0x20) == 'i'))
            return scan_word(s, len, i, neg, out);
    }
    size_t start = i;
    uint64_t mant = 0;
    int frac_digits = 0, simple = 1;
    while (i < len && is_digit(s[i])) {
        mant = mant * 10 + (uint64_t)(s[i] - '0');
        i++;
    }
    size_t int_digits = i - start;
    if (int_digits > 18)
        simple = 0; /* the mantissa overflowed: strtod below */
    int ok = !plus && int_digits > 0 &&
             !(s[start] == '0' && int_digits > 1);
    if (i < len && s[i] == '.') {
        size_t f0 = ++i;
        while (i < len && is_digit(s[i])) {
            mant = mant * 10 + (uint64_t)(s[i] - '0');
            i++;
        }
        frac_digits = (int)(i - f0);
        if (int_digits + (size_t)frac_digits > 18)
            simple = 0;
        if (!frac_digits)
            ok = 0; /* "1." */
    }
    if (int_digits + (size_t)frac_digits == 0)
        return 0;
    int exp10 = 0;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        int eneg = 0;
        if (j < len && (s[j] == '+' || s[j] == '-'))
            eneg = s[j++] == '-';
        if (j < len && is_digit(s[j])) {
            while (j < len && is_digit(s[j])) {
                if (exp10 < 10000)
                    exp10 = exp10 * 10 + (s[j] - '0');
                j++;
            }
            if (eneg)
                exp10 = -exp10;
            i = j;
        }
    }
    *json = ok;
    static const double pow10[] = { 1,    1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                    1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                    1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22 };
    int scale = exp10 - frac_digits;
    if (simple && mant < (1ull << 53) && scale >= -22 && scale <= 22) {
        /* Exact (Clinger's fast path): an integer below 2^53 times or
         * divided by an exact power of ten is correctly rounded. */
        double v = scale < 0 ? (double)mant / pow10[-scale] : (double)mant * pow10[scale];
        *out = neg ? -v : v;
        return i;
    }
    return scan_slow(s + start, i - start, i, neg, out, json);
}

size_t mt_number_scan(const char *s, size_t len, double *out)
{
    int json;
    return scan(s, len, out, &json);
}

size_t mt_number_scan_json(const char *s, size_t len, double *out, int *json)
{
    return scan(s, len, out, json);
}

static int is_unit_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '%' || c == '/' ||
           c >= 0x80; /* µs */
}

int mt_value_parse(const char *s, size_t len, int allow_text, struct mt_field *f)
{
    while (len && (*s == ' ' || *s == '\t'))
        s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    f->unit = NULL;
    f->unit_len = 0;
    f->text = s;
    f->text_len = (uint32_t)len;
    f->text_is_json = 0;
    if (!len)
        return -1;
    if ((len == 4 && strncasecmp(s, "true", 4) == 0) ||
        (len == 5 && strncasecmp(s, "false", 5) == 0)) {
        f->kind = MT_VAL_BOOL;
        f->value = len == 4;
        return 0;
    }
    double v;
    int json;
    size_t used = scan(s, len, &v, &json);
    if (used) {
        size_t u = used;
        while (u < len && u - used < 16 && is_unit_char((unsigned char)s[u]))
            u++;
        /* "0,5" and "3x4" are not numbers; "75%" and "3.2s" are, unit kept. */
        if (u == len && !(used < len && s[used] == '/')) {
            f->kind = MT_VAL_NUMBER;
            f->value = v;
            f->text_len = (uint32_t)used;
            f->text_is_json = (uint8_t)json;
            if (u > used) {
                f->unit = s + used;
                f->unit_len = (uint8_t)(u - used);
            }
            return 0;
        }
    }
    if (!allow_text)
        return -1;
    f->kind = MT_VAL_TEXT;
    f->value = 0;
    return 0;
}
