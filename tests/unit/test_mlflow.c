/* The pure parts of the MLflow backend: outcome classification, Retry-After,
 * key rules, system metric names, value comparison, backoff. */
#include <errno.h>
#include <float.h>
#include <math.h>

#include "../../agent/backends/mt_mlflow.h"
#include "../../agent/upload_internal.h"
#include "mt_test.h"

MT_TEST(classifies_statuses_as_ok_retry_drop)
{
    static const struct {
        long status;
        int transport, connected;
        enum mt_upload_result want;
        int unknown;
    } cases[] = {
        {200, 0, 1, MT_UPLOAD_OK, 0},      {204, 0, 1, MT_UPLOAD_OK, 0},
        {400, 0, 1, MT_UPLOAD_DROP, 0},    {403, 0, 1, MT_UPLOAD_DROP, 0},
        {404, 0, 1, MT_UPLOAD_DROP, 0},    {408, 0, 1, MT_UPLOAD_RETRY, 1},
        {429, 0, 1, MT_UPLOAD_RETRY, 0},   {500, 0, 1, MT_UPLOAD_RETRY, 1},
        {503, 0, 1, MT_UPLOAD_RETRY, 1},   {0, 1, 0, MT_UPLOAD_RETRY, 0},
        {0, 1, 1, MT_UPLOAD_RETRY, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int unknown = -1;
        enum mt_upload_result r =
            mt_mlflow_classify(cases[i].status, cases[i].transport, cases[i].connected, &unknown);
        MT_CHECK(r == cases[i].want);
        MT_CHECK(unknown == cases[i].unknown);
    }
}

MT_TEST(parses_retry_after_seconds_and_dates)
{
    MT_CHECK_NUM(mt_mlflow_retry_after("3", 0), 3);
    MT_CHECK_NUM(mt_mlflow_retry_after(" 2.5 ", 0), 2.5);
    MT_CHECK_NUM(mt_mlflow_retry_after("", 0), 0);
    MT_CHECK_NUM(mt_mlflow_retry_after(NULL, 0), 0);
    MT_CHECK_NUM(mt_mlflow_retry_after("soon", 0), 0);
    MT_CHECK_NUM(mt_mlflow_retry_after("100000", 0), 300);
    /* Wed, 21 Oct 2015 07:28:00 GMT = 1445412480 */
    MT_CHECK_NUM(mt_mlflow_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470), 10);
    MT_CHECK_NUM(mt_mlflow_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412490), 0);
}

MT_TEST(sanitizes_keys_to_mlflow_rules)
{
    static const struct {
        const char *in, *out;
        int changed;
    } cases[] = {
        {"loss", "loss", 0},
        {"train/loss", "train/loss", 0},
        {"val acc:top-1", "val acc:top-1", 0},
        {"a..b", "a..b", 0},
        {"loss%", "loss_", 1},
        {"/abs", "_abs", 1},
        {"a//b", "a__b", 1},
        {"a/./b", "a_._b", 1},
        {"../x", "_._x", 1},
        {"trail/", "trail_", 1},
        {"ünïcode", "__n__code", 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[256];
        int r = mt_mlflow_key_sanitize(cases[i].in, out, sizeof(out));
        MT_CHECK_STR(out, cases[i].out);
        MT_CHECK(r == cases[i].changed);
        MT_CHECK(mt_mlflow_key_valid(out));
    }
    char long_key[400], out[256];
    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    MT_CHECK(mt_mlflow_key_sanitize(long_key, out, sizeof(out)) == 1);
    MT_CHECK(strlen(out) == 250);
    MT_CHECK(mt_mlflow_key_sanitize("", out, sizeof(out)) == -1);
    MT_CHECK(!mt_mlflow_key_valid("."));
    MT_CHECK(!mt_mlflow_key_valid("a//b"));
}

MT_TEST(maps_system_keys_to_mlflow_names)
{
    static const struct {
        const char *in, *out;
        double scale;
    } cases[] = {
        {"system.cpu_percent", "system/cpu_utilization_percentage", 1},
        {"system.memory_percent", "system/system_memory_usage_percentage", 1},
        {"system.memory_used_mb", "system/system_memory_usage_megabytes", 1},
        {"system.disk.usage_percent", "system/disk_usage_percentage", 1},
        {"system.disk.used_mb", "system/disk_usage_megabytes", 1},
        {"system.disk.available_mb", "system/disk_available_megabytes", 1},
        {"system.network.sent_bytes", "system/network_transmit_megabytes", 1e-6},
        {"system.network.recv_bytes", "system/network_receive_megabytes", 1e-6},
        {"system.gpu.0.utilization_percent", "system/gpu_0_utilization_percentage", 1},
        {"system.gpu.3.memory_percent", "system/gpu_3_memory_usage_percentage", 1},
        {"system.gpu.1.memory_used_mb", "system/gpu_1_memory_usage_megabytes", 1},
        {"system.gpu.0.power_watts", "system/gpu_0_power_usage_watts", 1},
        {"system.gpu.0.power_percent", "system/gpu_0_power_usage_percentage", 1},
        {"system.proc.memory.rss_mb", "system/proc.memory.rss_mb", 1},
        {"system.gpu.0.temp_c", "system/gpu.0.temp_c", 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[256];
        double scale = 0;
        MT_CHECK(mt_mlflow_system_key(cases[i].in, out, sizeof(out), &scale) == 0);
        MT_CHECK_STR(out, cases[i].out);
        MT_CHECK_NUM(scale, cases[i].scale);
    }
    char out[256];
    double scale;
    MT_CHECK(mt_mlflow_system_key("_timestamp", out, sizeof(out), &scale) == -1);
    MT_CHECK(mt_mlflow_system_key("_runtime", out, sizeof(out), &scale) == -1);
}

MT_TEST(compares_values_as_the_server_stores_them)
{
    MT_CHECK(mt_mlflow_value_equal(0.1, 0.1));
    MT_CHECK(!mt_mlflow_value_equal(0.1, 0.1000000001));
    MT_CHECK(mt_mlflow_value_equal(NAN, NAN));
    MT_CHECK(!mt_mlflow_value_equal(NAN, 0));
    MT_CHECK(!mt_mlflow_value_equal(0, NAN));
    MT_CHECK(mt_mlflow_value_equal(INFINITY, DBL_MAX));
    MT_CHECK(mt_mlflow_value_equal(-INFINITY, -DBL_MAX));
    MT_CHECK(mt_mlflow_value_equal(INFINITY, INFINITY));
    MT_CHECK(!mt_mlflow_value_equal(INFINITY, -DBL_MAX));
    char v[64];
    mt_mlflow_fmt_value(v, sizeof(v), NAN);
    MT_CHECK_STR(v, "\"NaN\"");
    mt_mlflow_fmt_value(v, sizeof(v), -INFINITY);
    MT_CHECK_STR(v, "\"-Infinity\"");
    mt_mlflow_fmt_value(v, sizeof(v), 0.1);
    MT_CHECK(strtod(v, NULL) == 0.1);
}

MT_TEST(backoff_is_capped_full_jitter_and_honours_retry_after)
{
    MT_CHECK_NUM(mt_upload__backoff(0, 0.5, 10, 0, 0.999999), 0.5 * 0.999999);
    MT_CHECK_NUM(mt_upload__backoff(3, 0.5, 10, 0, 0.5), 2);
    MT_CHECK_NUM(mt_upload__backoff(30, 0.5, 10, 0, 0.5), 5);
    MT_CHECK_NUM(mt_upload__backoff(30, 0.5, 10, 0, 0), 0);
    MT_CHECK_NUM(mt_upload__backoff(0, 0.5, 10, 7, 0.5), 7);
    MT_CHECK_NUM(mt_upload__backoff(5, 0.5, 10, 1, 0.9), 9);
}

MT_TEST(parses_durations)
{
    double d;
    MT_CHECK(mt_upload__parse_duration("500ms", &d) == 0 && d == 0.5);
    MT_CHECK(mt_upload__parse_duration("2s", &d) == 0 && d == 2);
    MT_CHECK(mt_upload__parse_duration("1m", &d) == 0 && d == 60);
    MT_CHECK(mt_upload__parse_duration("1.5", &d) == 0 && d == 1.5);
    MT_CHECK(mt_upload__parse_duration("fast", &d) == -EINVAL);
    MT_CHECK(mt_upload__parse_duration("-1s", &d) == -EINVAL);
    MT_CHECK(mt_upload__parse_duration("3 days", &d) == -EINVAL);
}

MT_TEST(refuses_tracking_uris_it_cannot_speak)
{
    char err[256] = "";
    struct mt_mlflow_conf c = {.url = "file:///tmp/mlruns"};
    MT_CHECK(mt_mlflow_client_create(&c, err, sizeof(err)) == NULL);
    MT_CHECK(strstr(err, "file:///tmp/mlruns") != NULL);
    c.url = "http://127.0.0.1:1";
    struct mt_mlflow_client *cl = mt_mlflow_client_create(&c, err, sizeof(err));
    MT_CHECK(cl != NULL);
    /* nothing listens on port 1: a clean RETRY, known not applied */
    struct mt_mlflow_resp r;
    MT_CHECK(mt_mlflow_call(cl, "GET", "health", NULL, 0, &r) == MT_UPLOAD_RETRY);
    MT_CHECK(r.unknown == 0);
    char why[256];
    mt_mlflow_describe(&r, why, sizeof(why));
    MT_CHECK(strcmp(why, "connection refused") == 0);
    mt_mlflow_client_destroy(cl);
    mt_mlflow_client_destroy(NULL);
}

MT_TEST(describes_failed_answers_in_words)
{
    static const struct {
        long status;
        const char *body, *want;
    } cases[] = {
        {401, "{\"error_code\":\"UNAUTHENTICATED\",\"message\":\"bad credentials\"}",
         "HTTP 401: bad credentials (check MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN)"},
        {503, "<html>busy</html>", "HTTP 503"},
        {500, "{\"message\":\"line one\\nline two\"}", "HTTP 500: line one line two"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mt_mlflow_resp r = {.status = cases[i].status, .body = cases[i].body,
                                   .len = strlen(cases[i].body)};
        char why[256];
        mt_mlflow_describe(&r, why, sizeof(why));
        MT_CHECK(strcmp(why, cases[i].want) == 0);
    }
}

int main(void)
{
    return mt_test_main();
}
