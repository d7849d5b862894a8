#include "http.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Response headers are small; anything near this is hostile. */
#define CERCA_MAX_HEADER_BYTES (64 * 1024)

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_status = CURLE_FAILED_INIT;

static void global_init_once(void)
{
    global_status = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int cerca_http_global_init(void)
{
    pthread_once(&global_once, global_init_once);
    return global_status == CURLE_OK ? 0 : -1;
}

static void buf_reset(cerca_buf *b, size_t limit)
{
    b->len = 0;
    b->limit = limit;
    b->overflow = 0;
}

static void buf_free(cerca_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Appends as much as the cap allows; returns 0 when everything fitted. */
static int buf_append(cerca_buf *b, const char *p, size_t n)
{
    size_t room = b->limit - b->len;
    size_t take = n <= room ? n : room;
    if (b->len + take + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        char *data;
        while (cap < b->len + take + 1)
            cap *= 2;
        data = realloc(b->data, cap);
        if (data == NULL)
            return -1;
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, take);
    b->len += take;
    b->data[b->len] = '\0';
    if (take < n) {
        b->overflow = 1;
        return -1;
    }
    return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    cerca_buf *b = ud;
    size_t bytes = size * n;
    return buf_append(b, p, bytes) == 0 ? bytes : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    cerca_buf *b = ud;
    size_t bytes = size * n;
    /* A new status line starts a new response (1xx interim answers):
     * keep only the headers of the final one. */
    if (bytes >= 5 && memcmp(p, "HTTP/", 5) == 0)
        b->len = 0;
    return buf_append(b, p, bytes) == 0 ? bytes : 0;
}

int cerca_http_init(cerca_http *h, const char *ca_file, const char *user_agent)
{
    CURL *e;
    memset(h, 0, sizeof *h);
    if (cerca_http_global_init() != 0)
        return -1;
    e = curl_easy_init();
    if (e == NULL)
        return -1;
    h->easy = e;
    /* Settings that hold for every attempt on this handle. */
    if (curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbuf) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &h->body) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_HEADERDATA, &h->headers) != CURLE_OK ||
        /* Never follow redirects: the key must not travel to another host. */
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK ||
#if LIBCURL_VERSION_NUM >= 0x075500
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
#else
        curl_easy_setopt(e, CURLOPT_PROTOCOLS,
                         (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) != CURLE_OK ||
#endif
        (user_agent != NULL &&
         curl_easy_setopt(e, CURLOPT_USERAGENT, user_agent) != CURLE_OK) ||
        /* CAINFO replaces the default bundle file, while the default CA
         * directory stays in force: the file adds trust, it never narrows it. */
        (ca_file != NULL &&
         curl_easy_setopt(e, CURLOPT_CAINFO, ca_file) != CURLE_OK)) {
        cerca_http_cleanup(h);
        return -1;
    }
    return 0;
}

static cerca_err_kind classify(CURLcode code, const cerca_http *h)
{
    switch (code) {
    case CURLE_OK:
        return CERCA_OK;
    case CURLE_OPERATION_TIMEDOUT:
        return CERCA_ERR_TIMEOUT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
        return CERCA_ERR_TLS;
    case CURLE_FILESIZE_EXCEEDED:
        return CERCA_ERR_TOO_LARGE;
    case CURLE_WRITE_ERROR:
        return (h->body.overflow || h->headers.overflow) ? CERCA_ERR_TOO_LARGE
                                                         : CERCA_ERR_INTERNAL;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return CERCA_ERR_URL;
    case CURLE_OUT_OF_MEMORY:
    case CURLE_BAD_FUNCTION_ARGUMENT:
        return CERCA_ERR_INTERNAL;
    default:
        return CERCA_ERR_CONNECTION;
    }
}

static int add_header(cerca_http *h, const char *line)
{
    struct curl_slist *next = curl_slist_append(h->header_list, line);
    if (next == NULL)
        return -1;
    h->header_list = next;
    return 0;
}

CURLcode cerca_http_prepare(cerca_http *h, const cerca_request *rq)
{
    CURL *e = h->easy;
    CURLcode rc = CURLE_OK;
    size_t i;

    buf_reset(&h->body, rq->max_body);
    buf_reset(&h->headers, CERCA_MAX_HEADER_BYTES);
    h->errbuf[0] = '\0';

    for (i = 0; i < rq->nheaders; i++)
        if (add_header(h, rq->headers[i]) != 0)
            return CURLE_OUT_OF_MEMORY;
    /* No "Expect: 100-continue" round trip before the body. */
    if (add_header(h, "Expect:") != 0)
        return CURLE_OUT_OF_MEMORY;

#define SET(opt, val)                                                          \
    if (rc == CURLE_OK)                                                        \
    rc = curl_easy_setopt(e, opt, val)
    SET(CURLOPT_URL, rq->url);
    SET(CURLOPT_HTTPHEADER, h->header_list);
    SET(CURLOPT_TIMEOUT_MS, rq->timeout_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS, rq->connect_timeout_ms);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)rq->max_body);
    /* NULL restores libcurl's default: proxies from the environment. */
    SET(CURLOPT_NOPROXY, rq->no_proxy ? "*" : NULL);
    if (strcmp(rq->method, "GET") == 0) {
        SET(CURLOPT_HTTPGET, 1L);
    } else {
        /* POSTFIELDS with an explicit size: binary-safe, no copy. The
         * caller keeps the body alive until perform returns. */
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
        SET(CURLOPT_POSTFIELDS, rq->body != NULL ? rq->body : "");
        SET(CURLOPT_CUSTOMREQUEST, strcmp(rq->method, "POST") == 0 ? NULL : rq->method);
    }
#undef SET
    return rc;
}

void cerca_http_finish(cerca_http *h, CURLcode code, cerca_response *rs)
{
    long status = 0, connects = 0;
    double total = 0;
    curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(h->easy, CURLINFO_TOTAL_TIME, &total);
    curl_easy_getinfo(h->easy, CURLINFO_NUM_CONNECTS, &connects);

    curl_slist_free_all(h->header_list);
    h->header_list = NULL;

    rs->status = status;
    rs->curl_code = (int)code;
    rs->err = classify(code, h);
    rs->err_message = NULL;
    if (rs->err != CERCA_OK)
        rs->err_message = h->errbuf[0] ? h->errbuf : curl_easy_strerror(code);
    rs->body = h->body.data != NULL ? h->body.data : "";
    rs->body_len = h->body.len;
    rs->headers = h->headers.data != NULL ? h->headers.data : "";
    rs->headers_len = h->headers.len;
    rs->total_time = total;
    rs->new_connects = connects;
}

void cerca_http_perform(cerca_http *h, const cerca_request *rq, cerca_response *rs)
{
    CURLcode code = cerca_http_prepare(h, rq);
    if (code == CURLE_OK)
        code = curl_easy_perform(h->easy);
    cerca_http_finish(h, code, rs);
}

void cerca_http_cleanup(cerca_http *h)
{
    if (h->easy != NULL) {
        curl_easy_cleanup(h->easy);
        h->easy = NULL;
    }
    curl_slist_free_all(h->header_list);
    h->header_list = NULL;
    buf_free(&h->body);
    buf_free(&h->headers);
}
