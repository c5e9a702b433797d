/* MLflow REST client on libcurl: one keep-alive handle, auth, TLS
 * verification, outcome classification (OK / RETRY / DROP, and whether a
 * failed request may have been applied). */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "mt_mlflow.h"

#define RESP_MAX ((size_t)256 << 20) /* a metric history can be long */

struct mt_mlflow_client {
    CURL *curl;
    char *base;                 /* ends with '/' */
    char *userpwd;              /* "user:password" or NULL */
    struct curl_slist *headers; /* content type, bearer */
    double timeout_s;
    const volatile int64_t *deadline_ms;
    struct mt_mlflow__buf resp;
    char retry_after_hdr[128];
};

/* ---- buffers ---- */

void mt_mlflow__buf_init(struct mt_mlflow__buf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
}

void mt_mlflow__buf_free(struct mt_mlflow__buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

void mt_mlflow__buf_add(struct mt_mlflow__buf *b, const char *s, size_t n)
{
    if (b->overflow)
        return;
    if (b->len + n + 1 > b->max) {
        b->overflow = 1;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->overflow = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void mt_mlflow__buf_str(struct mt_mlflow__buf *b, const char *s)
{
    mt_mlflow__buf_add(b, s, strlen(s));
}

void mt_mlflow__buf_printf(struct mt_mlflow__buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(tmp)) {
        mt_mlflow__buf_add(b, tmp, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->overflow = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    mt_mlflow__buf_add(b, big, (size_t)n);
    free(big);
}

void mt_mlflow__buf_json(struct mt_mlflow__buf *b, const char *s)
{
    mt_mlflow__buf_add(b, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *run = p;
    for (; *p; p++) {
        const char *esc = NULL;
        char u[8];
        switch (*p) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (*p < 0x20) {
                snprintf(u, sizeof(u), "\\u%04x", *p);
                esc = u;
            }
        }
        if (esc) {
            mt_mlflow__buf_add(b, (const char *)run, (size_t)(p - run));
            mt_mlflow__buf_str(b, esc);
            run = p + 1;
        }
    }
    mt_mlflow__buf_add(b, (const char *)run, (size_t)(p - run));
    mt_mlflow__buf_add(b, "\"", 1);
}

void mt_mlflow__buf_urlenc(struct mt_mlflow__buf *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            mt_mlflow__buf_add(b, (const char *)p, 1);
        } else {
            char t[4];
            snprintf(t, sizeof(t), "%%%02X", *p);
            mt_mlflow__buf_add(b, t, 3);
        }
    }
}

/* ---- pure helpers ---- */

enum mt_upload_result mt_mlflow_classify(long status, int transport_failed, int connected,
                                         int *unknown)
{
    *unknown = 0;
    if (transport_failed) {
        *unknown = connected;
        return MT_UPLOAD_RETRY;
    }
    if (status >= 200 && status < 300)
        return MT_UPLOAD_OK;
    if (status == 429)
        return MT_UPLOAD_RETRY;
    if (status == 408 || status >= 500 || status < 100) {
        *unknown = 1;
        return MT_UPLOAD_RETRY;
    }
    return MT_UPLOAD_DROP;
}

double mt_mlflow_retry_after(const char *v, time_t now)
{
    if (!v)
        return 0;
    while (*v == ' ' || *v == '\t')
        v++;
    if (!*v)
        return 0;
    double s = 0;
    if (isdigit((unsigned char)*v)) {
        char *end;
        s = strtod(v, &end);
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
            end++;
        if (*end)
            return 0;
    } else {
        time_t t = curl_getdate(v, NULL);
        if (t < 0)
            return 0;
        s = difftime(t, now);
    }
    if (!(s > 0))
        return 0;
    return s > 300 ? 300 : s;
}

static int key_char_ok(unsigned char c)
{
    return isalnum(c) || c == '_' || c == '-' || c == '.' || c == '/' || c == ' ' || c == ':';
}

/* posixpath.normpath(key) == key, key != ".", no leading ".." or "/". */
static int key_path_ok(const char *k)
{
    if (k[0] == '/' || strncmp(k, "..", 2) == 0 || strcmp(k, ".") == 0)
        return 0;
    size_t n = strlen(k);
    if (n && k[n - 1] == '/')
        return 0;
    const char *seg = k;
    for (;;) {
        const char *sl = strchr(seg, '/');
        size_t len = sl ? (size_t)(sl - seg) : strlen(seg);
        if (len == 0 && sl)
            return 0; /* "//" */
        if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
            return 0;
        if (!sl)
            break;
        seg = sl + 1;
    }
    return 1;
}

int mt_mlflow_key_valid(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > 250)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!key_char_ok((unsigned char)key[i]))
            return 0;
    return key_path_ok(key);
}

int mt_mlflow_key_sanitize(const char *in, char *out, size_t outsz)
{
    if (!outsz)
        return -1;
    size_t n = strlen(in);
    size_t lim = outsz - 1 < 250 ? outsz - 1 : 250;
    if (n > lim)
        n = lim;
    for (size_t i = 0; i < n; i++)
        out[i] = key_char_ok((unsigned char)in[i]) ? in[i] : '_';
    out[n] = '\0';
    /* a trailing space would be fine for MLflow, but keep what we cut clean */
    if (!key_path_ok(out)) {
        for (size_t i = 0; i < n; i++)
            if (out[i] == '/')
                out[i] = '_';
        if (out[0] == '.')
            out[0] = '_';
    }
    if (n == 0)
        return -1;
    return strcmp(in, out) != 0;
}

struct sysmap {
    const char *from, *to;
    double scale;
};

static const struct sysmap sys_names[] = {
    {"cpu_percent", "cpu_utilization_percentage", 1},
    {"memory_percent", "system_memory_usage_percentage", 1},
    {"memory_used_mb", "system_memory_usage_megabytes", 1},
    {"disk.usage_percent", "disk_usage_percentage", 1},
    {"disk.used_mb", "disk_usage_megabytes", 1},
    {"disk.available_mb", "disk_available_megabytes", 1},
    {"network.sent_bytes", "network_transmit_megabytes", 1e-6},
    {"network.recv_bytes", "network_receive_megabytes", 1e-6},
};

static const struct sysmap gpu_names[] = {
    {"utilization_percent", "utilization_percentage", 1},
    {"memory_percent", "memory_usage_percentage", 1},
    {"memory_used_mb", "memory_usage_megabytes", 1},
    {"power_watts", "power_usage_watts", 1},
    {"power_percent", "power_usage_percentage", 1},
};

int mt_mlflow_system_key(const char *in, char *out, size_t outsz, double *scale)
{
    *scale = 1;
    if (in[0] == '_')
        return -1;
    const char *k = in;
    if (strncmp(k, "system.", 7) == 0)
        k += 7;
    for (size_t i = 0; i < sizeof(sys_names) / sizeof(sys_names[0]); i++) {
        if (strcmp(k, sys_names[i].from) == 0) {
            snprintf(out, outsz, "system/%s", sys_names[i].to);
            *scale = sys_names[i].scale;
            return 0;
        }
    }
    if (strncmp(k, "gpu.", 4) == 0 && isdigit((unsigned char)k[4])) {
        char *end;
        long idx = strtol(k + 4, &end, 10);
        if (*end == '.') {
            for (size_t i = 0; i < sizeof(gpu_names) / sizeof(gpu_names[0]); i++) {
                if (strcmp(end + 1, gpu_names[i].from) == 0) {
                    snprintf(out, outsz, "system/gpu_%ld_%s", idx, gpu_names[i].to);
                    return 0;
                }
            }
        }
    }
    char tmp[300];
    snprintf(tmp, sizeof(tmp), "system/%s", k);
    return mt_mlflow_key_sanitize(tmp, out, outsz) < 0 ? -1 : 0;
}

int mt_mlflow_value_equal(double sent, double got)
{
    if (isnan(sent) || isnan(got))
        return isnan(sent) && isnan(got);
    if (sent == got)
        return 1;
    if (isinf(sent))
        return (sent > 0 ? got >= DBL_MAX : got <= -DBL_MAX);
    return 0;
}

int mt_mlflow_fmt_value(char *out, size_t outsz, double v)
{
    if (isnan(v))
        return snprintf(out, outsz, "\"NaN\"");
    if (isinf(v))
        return snprintf(out, outsz, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    return snprintf(out, outsz, "%.17g", v);
}

/* ---- the client ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    struct mt_mlflow_client *c = ud;
    mt_mlflow__buf_add(&c->resp, p, sz * n);
    return c->resp.overflow ? 0 : sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    struct mt_mlflow_client *c = ud;
    size_t len = sz * n;
    if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
        size_t m = len - 12;
        if (m >= sizeof(c->retry_after_hdr))
            m = sizeof(c->retry_after_hdr) - 1;
        memcpy(c->retry_after_hdr, p + 12, m);
        c->retry_after_hdr[m] = '\0';
        char *e = c->retry_after_hdr + strlen(c->retry_after_hdr);
        while (e > c->retry_after_hdr && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
            *--e = '\0';
    }
    return len;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c2, curl_off_t d)
{
    (void)a, (void)b, (void)c2, (void)d;
    struct mt_mlflow_client *c = ud;
    int64_t dl = c->deadline_ms ? *c->deadline_ms : 0;
    return dl > 0 && mono_ms() > dl;
}

void mt_mlflow_client_destroy(struct mt_mlflow_client *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    curl_slist_free_all(c->headers);
    free(c->base);
    free(c->userpwd);
    mt_mlflow__buf_free(&c->resp);
    free(c);
}

struct mt_mlflow_client *mt_mlflow_client_create(const struct mt_mlflow_conf *conf, char *err,
                                                 size_t errsz)
{
    struct mt_mlflow_client *c = NULL;
    int result = -1;

    pthread_once(&curl_once, curl_init_once);
    if (!conf->url || (strncmp(conf->url, "http://", 7) != 0 &&
                       strncmp(conf->url, "https://", 8) != 0)) {
        snprintf(err, errsz,
                 "mlflow: tracking URI \"%s\" is not supported; give http://host:port or "
                 "https://host",
                 conf->url ? conf->url : "");
        goto out;
    }
    c = calloc(1, sizeof(*c));
    if (!c)
        goto oom;
    mt_mlflow__buf_init(&c->resp, RESP_MAX);
    size_t n = strlen(conf->url);
    c->base = malloc(n + 2);
    if (!c->base)
        goto oom;
    memcpy(c->base, conf->url, n + 1);
    if (n && c->base[n - 1] != '/')
        strcat(c->base, "/");
    c->timeout_s = conf->timeout_s > 0 ? conf->timeout_s : 30;
    c->deadline_ms = conf->deadline_ms;
    if (conf->username && conf->username[0]) {
        const char *pw = conf->password ? conf->password : "";
        size_t m = strlen(conf->username) + strlen(pw) + 2;
        c->userpwd = malloc(m);
        if (!c->userpwd)
            goto oom;
        snprintf(c->userpwd, m, "%s:%s", conf->username, pw);
    }
    c->headers = curl_slist_append(NULL, "Content-Type: application/json");
    c->headers = curl_slist_append(c->headers, "Expect:");
    if (conf->token && conf->token[0]) {
        size_t m = strlen(conf->token) + 32;
        char *h = malloc(m);
        if (!h)
            goto oom;
        snprintf(h, m, "Authorization: Bearer %s", conf->token);
        c->headers = curl_slist_append(c->headers, h);
        free(h);
    }
    c->curl = curl_easy_init();
    if (!c->curl || !c->headers)
        goto oom;
    CURL *h = c->curl;
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (conf->ca_path && conf->ca_path[0])
        curl_easy_setopt(h, CURLOPT_CAINFO, conf->ca_path);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "metrictap");
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (c->userpwd) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERPWD, c->userpwd);
    }
    result = 0;
    goto out;
oom:
    snprintf(err, errsz, "mlflow: out of memory");
out:
    if (result) {
        mt_mlflow_client_destroy(c);
        c = NULL;
    }
    return c;
}

static void fill_error_code(struct mt_mlflow_resp *r)
{
    r->error_code[0] = '\0';
    if (!r->body || !r->len || r->body[0] != '{')
        return;
    cJSON *j = cJSON_ParseWithLength(r->body, r->len);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error_code");
    if (cJSON_IsString(e))
        snprintf(r->error_code, sizeof(r->error_code), "%s", e->valuestring);
    cJSON_Delete(j);
}

static enum mt_upload_result perform(struct mt_mlflow_client *c, const char *path,
                                     struct mt_mlflow_resp *r)
{
    struct mt_mlflow__buf url;
    mt_mlflow__buf_init(&url, 1 << 20);
    mt_mlflow__buf_str(&url, c->base);
    mt_mlflow__buf_str(&url, path);
    long timeout_ms = (long)(c->timeout_s * 1000);
    int64_t dl = c->deadline_ms ? *c->deadline_ms : 0;
    if (dl > 0) {
        int64_t left = dl - mono_ms();
        if (left < 1)
            left = 1;
        if (left < timeout_ms)
            timeout_ms = (long)left;
    }
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c->curl, CURLOPT_URL, url.p ? url.p : "");
    c->resp.len = 0;
    c->resp.overflow = 0;
    mt_mlflow__buf_add(&c->resp, "", 0);
    c->retry_after_hdr[0] = '\0';

    CURLcode rc = curl_easy_perform(c->curl);
    mt_mlflow__buf_free(&url);

    memset(r, 0, sizeof(*r));
    r->curl_code = (int)rc;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &r->status);
    r->body = c->resp.p ? c->resp.p : "";
    r->len = c->resp.len;
    r->retry_after = mt_mlflow_retry_after(c->retry_after_hdr, time(NULL));
    /* The request may have reached the server unless the connection never
     * opened. */
    int connected = !(rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
                      rc == CURLE_COULDNT_RESOLVE_PROXY || rc == CURLE_UNSUPPORTED_PROTOCOL ||
                      rc == CURLE_URL_MALFORMAT);
    if (rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_ABORTED_BY_CALLBACK) {
        double ct = 0;
        curl_easy_getinfo(c->curl, CURLINFO_CONNECT_TIME, &ct);
        long lastsock = 0;
        curl_easy_getinfo(c->curl, CURLINFO_NUM_CONNECTS, &lastsock);
        connected = ct > 0 || lastsock == 0; /* reused connection: 0 new connects */
    }
    enum mt_upload_result res = mt_mlflow_classify(r->status, rc != CURLE_OK, connected,
                                                   &r->unknown);
    if (rc == CURLE_OK)
        fill_error_code(r);
    return res;
}

enum mt_upload_result mt_mlflow_call(struct mt_mlflow_client *c, const char *method,
                                     const char *path, const char *body, size_t len,
                                     struct mt_mlflow_resp *r)
{
    CURL *h = c->curl;
    curl_easy_setopt(h, CURLOPT_UPLOAD, 0L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->headers);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, NULL);
    } else {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, strcmp(method, "POST") ? method : NULL);
    }
    return perform(c, path, r);
}

enum mt_upload_result mt_mlflow_call_once(struct mt_mlflow_client *c, const char *path,
                                          const char *body, size_t len,
                                          struct mt_mlflow_resp *r)
{
    curl_easy_setopt(c->curl, CURLOPT_FRESH_CONNECT, 1L);
    enum mt_upload_result res = mt_mlflow_call(c, "POST", path, body, len, r);
    curl_easy_setopt(c->curl, CURLOPT_FRESH_CONNECT, 0L);
    return res;
}

enum mt_upload_result mt_mlflow_put_file(struct mt_mlflow_client *c, const char *path,
                                         const char *file, struct mt_mlflow_resp *r)
{
    FILE *f = fopen(file, "rb");
    if (!f) {
        memset(r, 0, sizeof(*r));
        r->body = "";
        return MT_UPLOAD_DROP;
    }
    struct stat st;
    fstat(fileno(f), &st);
    struct curl_slist *hdrs = NULL;
    for (struct curl_slist *s = c->headers; s; s = s->next)
        if (strncasecmp(s->data, "Content-Type:", 13) != 0)
            hdrs = curl_slist_append(hdrs, s->data);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/octet-stream");
    CURL *h = c->curl;
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, NULL);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READDATA, f);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, NULL);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)st.st_size);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    enum mt_upload_result res = perform(c, path, r);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 0L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(h, CURLOPT_READDATA, NULL);
    curl_slist_free_all(hdrs);
    fclose(f);
    return res;
}

void mt_mlflow_describe(const struct mt_mlflow_resp *r, char *out, size_t outsz)
{
    if (r->status == 0 || r->curl_code != CURLE_OK) {
        const char *what;
        switch ((CURLcode)r->curl_code) {
        case CURLE_COULDNT_CONNECT: what = "connection refused"; break;
        case CURLE_COULDNT_RESOLVE_HOST: what = "host not found"; break;
        case CURLE_OPERATION_TIMEDOUT: what = "timed out"; break;
        case CURLE_GOT_NOTHING:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_PARTIAL_FILE: what = "connection closed before an answer"; break;
        default: what = curl_easy_strerror((CURLcode)r->curl_code); break;
        }
        if (r->status == 0 || r->curl_code == CURLE_OK) {
            snprintf(out, outsz, "%s", what);
            return;
        }
    }
    const char *hint = "";
    if (r->status == 401 || r->status == 403)
        hint = " (check MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN)";
    /* MLflow's message, without its JSON around it */
    char msg[200] = "";
    cJSON *j = r->body && r->len ? cJSON_ParseWithLength(r->body, r->len) : NULL;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
    if (cJSON_IsString(m))
        snprintf(msg, sizeof(msg), ": %s", m->valuestring);
    cJSON_Delete(j);
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    snprintf(out, outsz, "HTTP %ld%s%s", r->status, msg, hint);
}
