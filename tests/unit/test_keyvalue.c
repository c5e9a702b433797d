/* The keyvalue preset and number syntax, table-driven. */
#include <ctype.h>
#include <math.h>

#include "../../parsers/mt_fields.h"
#include "mt_test.h"

struct kv_case {
    const char *line;
    const char *want; /* "key=value(role) ..." with role a(xis) or m(etric) */
};

static const struct kv_case cases[] = {
    { "epoch 3 loss=0.4123 acc=0.871", "epoch=3(a) loss=0.4123(m) acc=0.871(m)" },
    { "loss: 0.5", "loss=0.5(m)" },
    { "loss: 0.5 (step 7)", "loss=0.5(m) step=7(a)" },
    { "train_loss = 1e-3, val-acc=+0.9", "train_loss=1e-3(m) val-acc=+0.9(m)" },
    { "Epoch 3/10", "epoch=3(a)" },
    { "acc: 75.625%", "acc=75.625(m)" },
    { "lr=nan grad=inf", "lr=nan(m) grad=inf(m)" },
    { "time: 12:30:45", "" },
    { "date=2024-01-01 x=1", "x=1(m)" },
    { "value=0,5", "" },
    { "speed=10ms", "" },
    { "just words here", "" },
    { "a=1 a=2", "a=1(m) a=2(m)" },
    { "[train] loss=0.25|acc=0.5", "loss=0.25(m) acc=0.5(m)" },
    { "x1y=3 2abc=4", "x1y=3(m)" },
    { "", "" },
};

static void render(const struct mt_fields *fs, char *out, size_t size)
{
    size_t n = 0;
    out[0] = '\0';
    for (uint32_t i = 0; i < fs->n && n < size; i++) {
        const struct mt_field *f = &fs->f[i];
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)f->key_len, f->key);
        if (f->lower_key)
            for (char *p = key; *p; p++)
                *p = (char)tolower((unsigned char)*p);
        n += (size_t)snprintf(out + n, size - n, "%s%s=%.*s(%c)", i ? " " : "", key,
                              (int)f->text_len, f->text, f->role == MT_ROLE_AXIS ? 'a' : 'm');
    }
}

MT_TEST(keyvalue_lines)
{
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct mt_fields fs = { 0 };
        char got[512];
        mt_keyvalue_extract(cases[i].line, strlen(cases[i].line), &fs);
        render(&fs, got, sizeof got);
        if (strcmp(got, cases[i].want) != 0)
            fprintf(stderr, "    line \"%s\"\n", cases[i].line);
        MT_CHECK_STR(got, cases[i].want);
    }
}

MT_TEST(numbers)
{
    static const struct { const char *s; size_t used; double v; } nums[] = {
        { "0.4123", 6, 0.4123 }, { "-3", 2, -3 }, { "+2.5", 4, 2.5 }, { "1e-3", 4, 1e-3 },
        { ".5", 2, 0.5 }, { "1.", 2, 1.0 }, { "12345678901234567890", 20, 12345678901234567890.0 },
        { "0.1", 3, 0.1 }, { "1e400", 5, INFINITY }, { "abc", 0, 0 }, { "-", 0, 0 },
        { "7e", 1, 7 }, { "-inf", 4, -INFINITY },
    };
    for (size_t i = 0; i < sizeof nums / sizeof *nums; i++) {
        double v = 0;
        size_t used = mt_number_scan(nums[i].s, strlen(nums[i].s), &v);
        MT_CHECK(used == nums[i].used);
        if (used)
            MT_CHECK(v == nums[i].v);
    }
    double v;
    MT_CHECK(mt_number_scan("nan", 3, &v) == 3 && isnan(v));
}

/* The scanner's verdict on whole texts: valid JSON numbers as they stand. */
static int scan_says_json(const char *s)
{
    double v;
    int json = -1;
    size_t used = mt_number_scan_json(s, strlen(s), &v, &json);
    return used == strlen(s) && json == 1;
}

MT_TEST(json_number_text)
{
    MT_CHECK(scan_says_json("0.5"));
    MT_CHECK(scan_says_json("-1e-3"));
    MT_CHECK(!scan_says_json("+1"));
    MT_CHECK(!scan_says_json(".5"));
    MT_CHECK(!scan_says_json("1."));
    MT_CHECK(!scan_says_json("01"));
    MT_CHECK(!scan_says_json("nan"));
}

/* JSON's number grammar (RFC 8259), written out on its own as the oracle
 * for the scanner's verdict. */
static int json_number_oracle(const char *s, size_t len)
{
    size_t i = 0;
    int digit = 0;
#define DIGIT (i < len && s[i] >= '0' && s[i] <= '9')
    if (i < len && s[i] == '-')
        i++;
    if (!DIGIT)
        return 0;
    if (s[i] == '0' && i + 1 < len && s[i + 1] >= '0' && s[i + 1] <= '9')
        return 0; /* leading zeros */
    while (DIGIT)
        i++;
    if (i < len && s[i] == '.') {
        i++;
        for (digit = 0; DIGIT; digit = 1)
            i++;
        if (!digit)
            return 0;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        for (digit = 0; DIGIT; digit = 1)
            i++;
        if (!digit)
            return 0;
    }
#undef DIGIT
    return i == len;
}

/* The scanner's JSON verdict is what the history trusts to write a number
 * verbatim: it must agree with the grammar on the text it used. */
MT_TEST(scan_json_agrees_with_is_json)
{
    static const char *texts[] = {
        "0.5", "-1e-3", "+1", ".5", "1.", "01", "-01", "0", "-0", "00.5", "0.0", "10",
        "1e5", "1E+5", "7e", "1.5e-07", "-.5", "nan", "-inf", "Infinity", "123456789012345678901",
        "0.32383", "6.51e-04", "5%", "3x4", "0,5", "-", "+", "", "1e400", "+0.5e3",
    };
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        double v;
        int json = -1;
        size_t used = mt_number_scan_json(texts[i], strlen(texts[i]), &v, &json);
        int want = used ? json_number_oracle(texts[i], used) : 0;
        if (json != want)
            fprintf(stderr, "    \"%s\": scan says %d, the grammar %d\n", texts[i], json, want);
        MT_CHECK(json == want);
    }
}

int main(void)
{
    return mt_test_main();
}
