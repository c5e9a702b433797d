/* mt_buf: caps, JSON strings and numbers, fixed-point numbers. */
#include <math.h>

#include "../../common/mt_buf.h"
#include "mt_test.h"

MT_TEST(fixed_point_numbers)
{
    static const struct { double v; int d; const char *want; } cases[] = {
        { 0, 3, "0.000" }, { 1.5, 3, "1.500" }, { 0.0004, 3, "0.000" }, { 0.0005, 3, "0.001" },
        { 1795781190.601530, 6, "1795781190.601530" }, { 12.3456789, 6, "12.345679" },
        { -2.25, 2, "-2.25" }, { 42, 0, "42" }, { 1e12, 3, "1000000000000.000" },
        { NAN, 3, "nan" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct mt_buf b;
        mt_buf_init(&b, 100);
        mt_buf_fixed(&b, cases[i].v, cases[i].d);
        MT_CHECK_STR(b.data, cases[i].want);
        mt_buf_free(&b);
    }
}

MT_TEST(json_strings_escape_controls_and_bad_utf8)
{
    struct mt_buf b;
    mt_buf_init(&b, 1000);
    mt_buf_json_string(&b, "a\"b\\c\n\x01\xc3\xa9\xff", 10);
    MT_CHECK_STR(b.data, "\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\\ufffd\"");
    mt_buf_free(&b);
}

MT_TEST(json_numbers)
{
    static const struct { double v; const char *want; } cases[] = {
        { 3, "3" }, { 0.1, "0.1" }, { NAN, "\"NaN\"" }, { INFINITY, "\"Infinity\"" },
        { -INFINITY, "\"-Infinity\"" }, { 5e200, "5e+200" }, { 1.0 / 3, "0.3333333333333333" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct mt_buf b;
        mt_buf_init(&b, 100);
        mt_buf_json_number(&b, cases[i].v);
        MT_CHECK_STR(b.data, cases[i].want);
        mt_buf_free(&b);
    }
}

MT_TEST(the_cap_refuses_and_counts)
{
    struct mt_buf b;
    mt_buf_init(&b, 8);
    MT_CHECK(mt_buf_adds(&b, "12345") == 0);
    MT_CHECK(mt_buf_adds(&b, "67890") == -1);
    MT_CHECK_STR(b.data, "12345678");
    MT_CHECK(b.refused == 2);
    mt_buf_free(&b);
}

MT_TEST(comma_lists_trim_and_skip_empty_items)
{
    static const struct { const char *in, *want; } cases[] = {
        { "a,b", "[a][b]" }, { " a , b ", "[a][b]" }, { "a,,b,", "[a][b]" }, { "", "" },
        { NULL, "" }, { " , ", "" }, { "x y", "[x y]" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char got[64] = "";
        size_t used = 0, n;
        const char *item;
        for (const char *p = cases[i].in; mt_list_next(&p, &item, &n);)
            used += (size_t)snprintf(got + used, sizeof got - used, "[%.*s]", (int)n, item);
        MT_CHECK_STR(got, cases[i].want);
    }
}

int main(void)
{
    return mt_test_main();
}
