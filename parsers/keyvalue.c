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
enum { KS = 1, KC = 2, KT = 4 /* trailing: not the key's last byte */ };
static const unsigned char cls[256] = {
    ['a' ... 'z'] = KS | KC, ['A' ... 'Z'] = KS | KC, ['_'] = KS | KC,
    [0x80 ... 0xff] = KS | KC, ['0' ... '9'] = KC, ['.'] = KC | KT, ['-'] = KC | KT,
    ['/'] = KC | KT,
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

/* Loads n (<= 8) bytes as an integer with ASCII letters folded to lower
 * case: OR-ing 0x20 maps 'A'-'Z' onto 'a'-'z' and no other key byte onto a
 * letter, so one compare tests a whole word case-insensitively. */
static inline uint64_t load_folded(const char *s, size_t n)
{
    uint64_t v = 0;
    memcpy(&v, s, n);
    return v | (0x2020202020202020ull >> (8 * (8 - n)));
}

static inline uint64_t word(const char *w, size_t n)
{
    uint64_t v = 0;
    memcpy(&v, w, n);
    return v;
}

/* Inline here: it is asked of every key of every line.  Tests in order of
 * likelihood, no jump table (an indirect branch per key mispredicts). */
static inline int default_axis(const char *key, size_t len)
{
    if (len == 4) {
        uint64_t v = load_folded(key, 4);
        return v == word("step", 4) || v == word("iter", 4);
    }
    if (len == 5) {
        uint64_t v = load_folded(key, 5);
        return v == word("epoch", 5) || v == word("batch", 5);
    }
    if (len == 9)
        return load_folded(key, 8) == word("iteratio", 8) && (key[8] | 0x20) == 'n';
    if (len == 11)
        return load_folded(key, 8) == word("global_s", 8) &&
               load_folded(key + 8, 3) == word("tep", 3);
    return 0;
}

int mt_is_default_axis(const char *key, size_t len)
{
    return default_axis(key, len);
}

static void add(struct mt_fields *out, const char *key, size_t klen, int role,
                const char *text, size_t tlen, double v, int json)
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
    f->text_is_json = (uint8_t)json;
    f->value = v;
    f->unit = NULL;
    f->unit_len = 0;
}

void mt_keyvalue_extract(const char *s, size_t len, struct mt_fields *out)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    for (;;) {
        /* i is always at a word boundary: whole words are skipped */
        while (i < len && !is_key_char(u[i]))
            i++;
        if (i >= len)
            break;
        size_t k0 = i;
        do
            i++;
        while (i < len && is_key_char(u[i]));
        if (!(cls[u[k0]] & KS))
            continue; /* a number or a path, not a key */
        size_t klen = i - k0;
        /* Trailing '.', '-' or '/' belong to the text, not the key. */
        while (klen > 1 && (cls[u[k0 + klen - 1]] & KT))
            klen--;
        size_t j = k0 + klen;
        while (j < len && s[j] == ' ')
            j++;
        int sep = j < len && (s[j] == ':' || s[j] == '=');
        int axis;
        if (sep) {
            axis = default_axis(s + k0, klen);
            j++;
            while (j < len && (s[j] == ' ' || s[j] == '\t'))
                j++;
        } else {
            /* a plain word; an axis word needs a blank and a number: "epoch 3" */
            if (j == k0 + klen || j >= len || !((s[j] >= '0' && s[j] <= '9') || s[j] == '.' ||
                                                s[j] == '-' || s[j] == '+'))
                continue;
            axis = default_axis(s + k0, klen);
            if (!axis)
                continue;
        }
        double v;
        int json;
        size_t used = mt_number_scan_json(s + j, len - j, &v, &json);
        if (!used || !(ends_value(s, j + used, len) ||
                       (!sep && axis && s[j + used] == '/'))) /* "Epoch 3/10" */
            continue;
        size_t t0 = j;
        j += used;
        if (!sep && axis && j < len && s[j] == '/') /* "Epoch 3/10": skip the total */
            while (++j < len && s[j] >= '0' && s[j] <= '9')
                ;
        uint32_t before = out->n;
        add(out, s + k0, klen, axis ? MT_ROLE_AXIS : MT_ROLE_METRIC, s + t0, used, v, json);
        if (out->n > before && !sep && axis)
            out->f[before].lower_key = 1;
        if (out->n > before && j < len && s[j] == '%') { /* "acc: 75.6%": unit kept */
            out->f[before].unit = s + j;
            out->f[before].unit_len = 1;
        }
        /* Guild's "key: value (step N)" */
        if (j + 7 < len && s[j] == ' ' && s[j + 1] == '(' && memcmp(s + j + 2, "step ", 5) == 0) {
            size_t st = j + 7;
            size_t su = mt_number_scan_json(s + st, len - st, &v, &json);
            if (su && st + su < len && s[st + su] == ')') {
                add(out, "step", 4, MT_ROLE_AXIS, s + st, su, v, json);
                j = st + su + 1;
            }
        }
        i = j;
    }
}
