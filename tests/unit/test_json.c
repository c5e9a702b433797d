/* mt_json: numbers keep the text they were written with. */
#include <cjson/cJSON.h>

#include "../../common/mt_json.h"
#include "mt_test.h"

MT_TEST(number_literal_grammar_is_json)
{
    static const struct { const char *s; int ok; } cases[] = {
        { "0", 1 }, { "30", 1 }, { "-1", 1 }, { "0.1", 1 }, { "1e-3", 1 }, { "1E+3", 1 },
        { "-0.5e10", 1 }, { "", 0 }, { "-", 0 }, { "01", 0 }, { ".5", 0 }, { "1.", 0 },
        { "+1", 0 }, { "1e", 0 }, { "1e+", 0 }, { "nan", 0 }, { "inf", 0 }, { "0x10", 0 },
        { "1.5.2", 0 }, { "1e3e3", 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int got = mt_json_is_number_literal(cases[i].s, strlen(cases[i].s));
        if (got != cases[i].ok)
            fprintf(stderr, "    \"%s\": got %d\n", cases[i].s, got);
        MT_CHECK(got == cases[i].ok);
    }
}

MT_TEST(parse_then_print_keeps_every_literal)
{
    const char *text = "{\"lr\":1e-3,\"epochs\":100,\"x\":[0.10,{\"k\\\"1\":2.50}],"
                       "\"s\":\"-7 not a number\",\"t\":true,\"n\":null,\"big\":1E+300}";
    cJSON *o = mt_json_parse_literal(text);
    MT_CHECK(o != NULL);
    char *out = mt_json_print_literal(o, 0);
    MT_CHECK_STR(out, text);
    /* The nodes are still numbers with their values. */
    MT_CHECK(cJSON_IsNumber(cJSON_GetObjectItem(o, "lr")));
    MT_CHECK(cJSON_GetObjectItem(o, "lr")->valuedouble == 1e-3);
    /* And a plain print is cJSON's as before. */
    char *plain = cJSON_PrintUnformatted(o);
    MT_CHECK(strstr(plain, "\"lr\":0.001") != NULL);
    free(out);
    free(plain);
    cJSON_Delete(o);
}

MT_TEST(duplicates_and_created_numbers_keep_their_text)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "a", mt_json_create_number(30, "30", 2));
    cJSON_AddItemToObject(o, "b", mt_json_create_number(0.5, ".5", 2)); /* not JSON: the double */
    cJSON *d = cJSON_Duplicate(o, 1);
    char *s = mt_json_print_literal(d, 0);
    MT_CHECK_STR(s, "{\"a\":30,\"b\":0.5}");
    char buf[40];
    MT_CHECK_STR(mt_json_number_text(cJSON_GetObjectItem(d, "a"), buf, sizeof buf), "30");
    MT_CHECK_STR(mt_json_number_text(cJSON_GetObjectItem(d, "b"), buf, sizeof buf), "0.5");
    free(s);
    cJSON_Delete(o);
    cJSON_Delete(d);
}

MT_TEST(doubles_without_a_literal_print_short_and_plain)
{
    static const struct { double d; const char *want; } cases[] = {
        { 30, "30" }, { 100, "100" }, { 0.1, "0.1" }, { 1e-3, "0.001" }, { -2.5, "-2.5" },
        { 1e300, "1e+300" }, { 123456789012, "123456789012" }, { 1.0 / 3, "0.3333333333333333" },
    };
    char buf[40];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        mt_json_format_double(cases[i].d, buf, sizeof buf);
        MT_CHECK_STR(buf, cases[i].want);
    }
}

MT_TEST(callers_raw_nodes_stay_raw)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "r", cJSON_CreateRaw("5"));
    char *s = mt_json_print_literal(o, 0);
    MT_CHECK_STR(s, "{\"r\":5}");
    MT_CHECK((cJSON_GetObjectItem(o, "r")->type & 0xff) == cJSON_Raw);
    free(s);
    cJSON_Delete(o);
}

int main(void)
{
    return mt_test_main();
}
