/* The keyvalue preset, Guild-compatible: `key: value`, `key=value`,
 * `key: value (step N)`, plus axis words such as `epoch 3` or `Epoch 3/10`.
 * Hand-written rather than a regex: it is the default for every run, and
 * runs on every line the program prints. */
#include <string.h>
#include <strings.h>

#include "mt_fields.h"

/* Byte classes: KS may start a key (letters, '_', and the bytes of UTF-8
 * sequences, as Python's \w does for Guild's patterns: "точность: 0.9" has
 * a key); KC may continue one (also digits, '.', '-', '/'). */
enum { KS = 1, KC = 2 };
static const unsigned char cls[256] = {
    ['a' ... 'z'] = KS | KC, ['A' ... 'Z'] = KS | KC, ['_'] = KS | KC,
    [0x80 ... 0xff] = KS | KC, ['0' ... '9'] = KC, ['.'] = KC, ['-'] = KC, ['/'] = KC,
};

static inline int is_key_char(unsigned char c)
{
    return cls[c] & KC;
}

/* What may follow a value: the end, blanks, separators, or a unit sign. */
static inline int ends_value(const char *s, size_t i, size_t len)
{
    if (i >= len)
        return 1;
    switch (s[i]) {
    case ',': /* "0,5" is a decimal comma, not a separator */
        return !(i + 1 < len && s[i + 1] >= '0' && s[i + 1] <= '9');
    case ' ': case '\t': case ';': case ')': case ']': case '}': case '|':
    case '%': case '\r': case '\n':
        return 1;
    default:
        return 0;
    }
}

static inline char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

int mt_is_default_axis(const char *key, size_t len)
{
    static const char *axes[] = { "epoch", "step", "iter", "iteration", "batch", "global_step" };
    static const size_t lens[] = { 5, 4, 4, 9, 5, 11 };
    if (len < 4 || len > 11)
        return 0;
    char c = lower(key[0]);
    if (c != 'e' && c != 's' && c != 'i' && c != 'b' && c != 'g')
        return 0;
    for (size_t i = 0; i < sizeof axes / sizeof *axes; i++) {
        if (axes[i][0] != c || lens[i] != len)
            continue;
        size_t j = 1;
        while (j < len && lower(key[j]) == axes[i][j])
            j++;
        if (j == len)
            return 1;
    }
    return 0;
}

static void add(struct mt_fields *out, const char *key, size_t klen, int role,
                const char *text, size_t tlen, double v)
{
    struct mt_field *f = mt_fields_add(out);
    if (!f)
        return;
    f->key = key;
    f->key_len = (uint32_t)(klen > MT_MAX_KEY ? MT_MAX_KEY : klen);
    f->role = (uint8_t)role;
    f->lower_key = 0;
    f->kind = MT_VAL_NUMBER;
    f->text = text;
    f->text_len = (uint32_t)tlen;
    f->value = v;
    f->unit = NULL;
    f->unit_len = 0;
}

void mt_keyvalue_extract(const char *s, size_t len, struct mt_fields *out)
{
    size_t i = 0;
    while (i < len) {
        /* i is always at a word boundary: whole words are skipped */
        unsigned char c = (unsigned char)s[i];
        if (!(cls[c] & KC)) {
            i++;
            continue;
        }
        size_t k0 = i;
        while (i < len && is_key_char((unsigned char)s[i]))
            i++;
        if (!(cls[c] & KS))
            continue; /* a number or a path, not a key */
        size_t klen = i - k0;
        /* Trailing '.', '-' or '/' belong to the text, not the key. */
        while (klen > 1 && (s[k0 + klen - 1] == '.' || s[k0 + klen - 1] == '-' ||
                            s[k0 + klen - 1] == '/'))
            klen--;
        size_t j = k0 + klen;
        while (j < len && s[j] == ' ')
            j++;
        int sep = j < len && (s[j] == ':' || s[j] == '=');
        int axis;
        if (sep) {
            axis = mt_is_default_axis(s + k0, klen);
            j++;
            while (j < len && (s[j] == ' ' || s[j] == '\t'))
                j++;
        } else {
            /* a plain word; an axis word needs a blank and a number: "epoch 3" */
            if (j == k0 + klen || j >= len || !((s[j] >= '0' && s[j] <= '9') || s[j] == '.' ||
                                                s[j] == '-' || s[j] == '+'))
                continue;
            axis = mt_is_default_axis(s + k0, klen);
            if (!axis)
                continue;
        }
        double v;
        size_t used = mt_number_scan(s + j, len - j, &v);
        if (!used || !(ends_value(s, j + used, len) ||
                       (!sep && axis && s[j + used] == '/'))) /* "Epoch 3/10" */
            continue;
        size_t t0 = j;
        j += used;
        if (!sep && axis && j < len && s[j] == '/') /* "Epoch 3/10": skip the total */
            while (++j < len && s[j] >= '0' && s[j] <= '9')
                ;
        uint32_t before = out->n;
        add(out, s + k0, klen, axis ? MT_ROLE_AXIS : MT_ROLE_METRIC, s + t0, used, v);
        if (out->n > before && !sep && axis)
            out->f[before].lower_key = 1;
        if (out->n > before && j < len && s[j] == '%') { /* "acc: 75.6%": unit kept */
            out->f[before].unit = s + j;
            out->f[before].unit_len = 1;
        }
        /* Guild's "key: value (step N)" */
        if (j + 7 < len && s[j] == ' ' && s[j + 1] == '(' && memcmp(s + j + 2, "step ", 5) == 0) {
            size_t st = j + 7;
            size_t su = mt_number_scan(s + st, len - st, &v);
            if (su && st + su < len && s[st + su] == ')') {
                add(out, "step", 4, MT_ROLE_AXIS, s + st, su, v);
                j = st + su + 1;
            }
        }
        i = j;
    }
}
