/* mt_buf: a growable byte buffer with a cap given at creation (curl's dynbuf).
 * Appends past the cap fail and are counted; nothing here is used by the shim.
 * Out of memory aborts (agent and CLI only). */
#ifndef MT_BUF_H
#define MT_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct mt_buf {
    char *data;      /* always NUL-terminated when not NULL */
    size_t len, cap_alloc, max;
    size_t refused;  /* bytes refused by the cap */
};

void mt_buf_init(struct mt_buf *b, size_t max);
void mt_buf_free(struct mt_buf *b);
static inline void mt_buf_reset(struct mt_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}
/* 0, or -1 when the cap refused (part of) it. Appends what fits. */
int mt_buf_add_slow(struct mt_buf *b, const void *p, size_t n);
static inline int mt_buf_add(struct mt_buf *b, const void *p, size_t n)
{
    /* The common case, inline: it fits in what is allocated and the cap. */
    if (b->len + n + 1 <= b->cap_alloc && b->len + n <= b->max) {
        __builtin_memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
        return 0;
    }
    return mt_buf_add_slow(b, p, n);
}
/* Room for n more bytes (and the NUL) written straight at the returned
 * pointer, then counted with mt_buf_commit; NULL when the cap refuses. */
char *mt_buf_reserve(struct mt_buf *b, size_t n);
static inline void mt_buf_commit(struct mt_buf *b, char *end)
{
    b->len = (size_t)(end - b->data);
    b->data[b->len] = '\0';
}
static inline int mt_buf_addc(struct mt_buf *b, char c)
{
    return mt_buf_add(b, &c, 1);
}
static inline int mt_buf_adds(struct mt_buf *b, const char *s)
{
    return mt_buf_add(b, s, __builtin_strlen(s));
}
int mt_buf_printf(struct mt_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Integers and fixed-point numbers without printf (rows are written at
 * millions a second). */
void mt_buf_u64(struct mt_buf *b, uint64_t v);
void mt_buf_fixed_slow(struct mt_buf *b, double v, int decimals);

/* "00" "01" ... "99": integers are written two digits per division. */
extern const char mt_digit_pairs[200];

/* Writes v's decimal digits so that they end at `end`; returns where they
 * start.  With `width`, pads with leading zeros to that many digits. */
static inline char *mt_digits_before(char *end, uint64_t v, int width)
{
    char *p = end;
    while (v > 0xFFFFFFFFu) {
        unsigned r = (unsigned)(v % 100);
        v /= 100;
        p -= 2;
        __builtin_memcpy(p, mt_digit_pairs + 2 * r, 2);
    }
    /* The rest in 32 bits: a 32-bit division by a constant is a shorter
     * multiply than a 64-bit one (a row's step, seconds, fractions). */
    uint32_t w = (uint32_t)v;
    while (w >= 100) {
        unsigned r = w % 100;
        w /= 100;
        p -= 2;
        __builtin_memcpy(p, mt_digit_pairs + 2 * r, 2);
    }
    v = w;
    if (v >= 10) {
        p -= 2;
        __builtin_memcpy(p, mt_digit_pairs + 2 * v, 2);
    } else {
        *--p = (char)('0' + v);
    }
    while (end - p < width)
        *--p = '0';
    return p;
}

/* Writes v with `decimals` digits after the point (0 <= decimals <= 9, |v|
 * < 9e9, rounded) so that it ends at `end`; returns where it starts.  Inline
 * so that a constant `decimals` makes every division a multiply: rows carry
 * two such numbers each. */
static inline char *mt_fixed_before(char *end, double v, int decimals)
{
    uint64_t scale = 1;
    for (int i = 0; i < decimals; i++)
        scale *= 10;
    char *p = end;
    int neg = v < 0;
    if (neg)
        v = -v;
    uint64_t units = (uint64_t)(v * (double)scale + 0.5);
    uint64_t ip = units / scale, f = units % scale;
    if (decimals) {
        p = mt_digits_before(p, f, decimals);
        *--p = '.';
    }
    p = mt_digits_before(p, ip, 1);
    if (neg)
        *--p = '-';
    return p;
}

/* v with `decimals` digits after the point, rounded (0 <= decimals <= 9). */
static inline void mt_buf_fixed(struct mt_buf *b, double v, int decimals)
{
    if (!(v > -9e9 && v < 9e9) || decimals < 0 || decimals > 9) {
        mt_buf_fixed_slow(b, v, decimals);
        return;
    }
    char tmp[32];
    char *p = mt_fixed_before(tmp + sizeof tmp, v, decimals);
    mt_buf_add(b, p, (size_t)(tmp + sizeof tmp - p));
}

/* JSON helpers on a buffer. */
void mt_buf_json_string(struct mt_buf *b, const char *s, size_t n); /* quoted, escaped */
void mt_buf_json_number(struct mt_buf *b, double v); /* NaN/Infinity as strings */

/* Walks a comma-separated list ("a, b,,c"): each call gives the next item,
 * blanks around it trimmed, empty items skipped.  Returns 0 at the end. */
int mt_list_next(const char **cursor, const char **item, size_t *len);

/* Abort-on-OOM allocation for the agent and the CLI. */
void *mt_xmalloc(size_t n);
void *mt_xcalloc(size_t n, size_t size);
void *mt_xrealloc(void *p, size_t n);
char *mt_xstrdup(const char *s);
char *mt_xstrndup(const char *s, size_t n);

#endif
