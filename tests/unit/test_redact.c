/* Redaction of secret-looking names, argument vectors, environments, URLs. */
#include "common/mt_redact.h"
#include "tests/unit/mt_test.h"

#include <cjson/cJSON.h>

MT_TEST(secret_names_table)
{
    static const struct { const char *name; int secret; } t[] = {
        {"AWS_SECRET_ACCESS_KEY", 1}, {"api-key", 1}, {"--hf_token", 1}, {"HF_TOKEN", 1},
        {"WANDB_API_KEY", 1}, {"MLFLOW_TRACKING_PASSWORD", 1}, {"db_passwd", 1},
        {"GOOGLE_APPLICATION_CREDENTIALS", 1}, {"auth", 1}, {"apiKey", 1},
        {"X-Auth-Token", 1}, {"APIKEY", 1}, {"key", 1}, {"secret", 1}, {"Password", 1},
        {"TOKENIZER", 0}, {"--tokenizer", 0}, {"max_tokens", 0}, {"MONKEY", 0},
        {"KEYBOARD", 0}, {"PWD", 0}, {"AUTHOR", 0}, {"lr", 0}, {"PATH", 0}, {"", 0},
        {"--epochs", 0}, {"HOME", 0}, {"secretary", 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int got = mt_redact_is_secret_name(t[i].name, strlen(t[i].name));
        if (got != t[i].secret)
            fprintf(stderr, "    name %s: got %d want %d\n", t[i].name, got, t[i].secret);
        MT_CHECK(got == t[i].secret);
    }
}

MT_TEST(urls_table)
{
    static const struct { const char *in, *redacted, *stripped; } t[] = {
        {"https://user:pass@host/x", "https://[REDACTED]@host/x", "https://host/x"},
        {"https://TOKEN@github.com/o/r.git", "https://[REDACTED]@github.com/o/r.git",
         "https://github.com/o/r.git"},
        {"ssh://git@github.com/o/r", "ssh://[REDACTED]@github.com/o/r", "ssh://git@github.com/o/r"},
        {"ssh://git:pw@host/r", "ssh://[REDACTED]@host/r", "ssh://host/r"},
        {"git@github.com:o/r.git", "git@github.com:o/r.git", "git@github.com:o/r.git"},
        {"https://host/path?q=a@b", "https://host/path?q=a@b", "https://host/path?q=a@b"},
        {"see http://a:b@h1 and https://c:d@h2/", "see http://[REDACTED]@h1 and https://[REDACTED]@h2/",
         "see http://h1 and https://h2/"},
        {"plain text", "plain text", "plain text"},
        {"", "", ""},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char *r = mt_redact_url(t[i].in), *s = mt_redact_strip_url(t[i].in);
        MT_CHECK_STR(r, t[i].redacted);
        MT_CHECK_STR(s, t[i].stripped);
        free(r);
        free(s);
    }
}

MT_TEST(argv_table)
{
    char *argv[] = {"./train", "--api-key", "abc123", "--token=xyz", "PASSWORD=hunter2",
                    "--lr", "0.1", "lr=0.5", "--data", "https://u:p@host/d.csv",
                    "-hf_token", "t0k", "--tokenizer", "bert", "--auth", "--epochs", "3",
                    "--secret", NULL};
    const char *want[] = {"./train", "--api-key", "[REDACTED]", "--token=[REDACTED]",
                          "PASSWORD=[REDACTED]", "--lr", "0.1", "lr=0.5", "--data",
                          "https://[REDACTED]@host/d.csv", "-hf_token", "[REDACTED]",
                          "--tokenizer", "bert", "--auth", "--epochs", "3", "--secret"};
    char **out = mt_redact_argv(argv);
    size_t n = sizeof want / sizeof want[0];
    for (size_t i = 0; i < n; i++)
        MT_CHECK_STR(out[i], want[i]);
    MT_CHECK(out[n] == NULL);
    mt_redact_strv_free(out);
    MT_CHECK(strcmp(argv[2], "abc123") == 0);  /* input untouched */
}

MT_TEST(env_table)
{
    char *envp[] = {"HOME=/root", "WANDB_API_KEY=0123", "AWS_SECRET_ACCESS_KEY=zz",
                    "MLFLOW_TRACKING_URI=http://bob:pw@mlflow:5000", "TOKENIZERS_PARALLELISM=false",
                    "EMPTY=", "NOEQUALS", "PWD=/work", NULL};
    const char *want[] = {"HOME=/root", "WANDB_API_KEY=[REDACTED]",
                          "AWS_SECRET_ACCESS_KEY=[REDACTED]",
                          "MLFLOW_TRACKING_URI=http://[REDACTED]@mlflow:5000",
                          "TOKENIZERS_PARALLELISM=false", "EMPTY=", "NOEQUALS", "PWD=/work"};
    char **out = mt_redact_env(envp);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        MT_CHECK_STR(out[i], want[i]);
    MT_CHECK(out[8] == NULL);
    mt_redact_strv_free(out);
    mt_redact_strv_free(NULL);
}

MT_TEST(json_in_place)
{
    cJSON *j = cJSON_Parse("{\"lr\":0.1,\"api_key\":\"abc\",\"nested\":{\"password\":42,"
                           "\"url\":\"https://a:b@h/x\"},\"list\":[\"http://t@h\"],"
                           "\"credentials\":{\"user\":\"u\"}}");
    MT_CHECK(j != NULL);
    mt_redact_json(j);
    char *s = cJSON_PrintUnformatted(j);
    MT_CHECK_STR(s, "{\"lr\":0.1,\"api_key\":\"[REDACTED]\",\"nested\":{\"password\":\"[REDACTED]\","
                    "\"url\":\"https://[REDACTED]@h/x\"},\"list\":[\"http://[REDACTED]@h\"],"
                    "\"credentials\":\"[REDACTED]\"}");
    free(s);
    cJSON_Delete(j);
    mt_redact_json(NULL);
}

int main(void) { return mt_test_main(); }
