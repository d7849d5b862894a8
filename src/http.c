#define _POSIX_C_SOURCE 200809L /* strdup */
#include "http.h"
#include "pid.h"
#include "url.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Response headers are small; anything near this is hostile. The cap is
 * on every header byte of an attempt, interim (1xx) answers included. */
#define CERCA_MAX_HEADER_BYTES (64 * 1024)

/* The User-Agent's header line: this, then the user agent. */
#define UA_PREFIX "User-Agent: "

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

/* Handles inherited through fork and given up (cerca_abandon). A lock-free
 * push: a mutex could be left locked in a child by a thread of the parent
 * that held it at fork time. Never popped. */
typedef struct abandoned {
    struct abandoned *next;
    void *handle;
} abandoned;

static abandoned *abandoned_list;

void cerca_abandon(void *curl_handle)
{
    abandoned *a;
    if (curl_handle == NULL)
        return;
    a = malloc(sizeof *a);
    if (a == NULL)
        return; /* lost for good; still never touched */
    a->handle = curl_handle;
    a->next = __atomic_load_n(&abandoned_list, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(&abandoned_list, &a->next, a, 1, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED))
        ;
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
    cerca_http *h = ud;
    size_t bytes = size * n;
    h->body_started = 1;
    return buf_append(&h->body, p, bytes) == 0 ? bytes : 0;
}

/* libcurl hands over one header line per call: those of every response of
 * the attempt (1xx interim answers, a proxy's CONNECT answer), then any
 * trailers. All of them count against the cap; only the latest response's
 * block is kept for parsing. */
static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    cerca_http *h = ud;
    size_t bytes = size * n;
    if (bytes > CERCA_MAX_HEADER_BYTES - h->header_bytes) {
        h->headers.overflow = 1;
        return 0;
    }
    h->header_bytes += bytes;
    /* A status line right after the blank line that ended a block, before
     * any body, starts the next response: the block starts over. Any other
     * line, whatever it begins with, belongs to the current one. */
    if (h->header_block_done && !h->body_started && bytes >= 5 && memcmp(p, "HTTP/", 5) == 0)
        h->headers.len = 0;
    h->header_block_done = (bytes == 2 && p[0] == '\r' && p[1] == '\n') || (bytes == 1 && p[0] == '\n');
    return buf_append(&h->headers, p, bytes) == 0 ? bytes : 0;
}

/* Called each time libcurl is about to send the request, on a new or a
 * kept-alive connection: more than once in an attempt when libcurl sends
 * it again (a kept-alive connection closed before any byte of an answer). */
static int on_send(void *ud, char *remote_ip, char *local_ip, int remote_port, int local_port)
{
    cerca_http *h = ud;
    (void)remote_ip;
    (void)local_ip;
    (void)remote_port;
    (void)local_port;
    h->sends++;
    return CURL_PREREQFUNC_OK;
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

/* Makes h->easy with the settings that hold for every attempt. */
static int setup_easy(cerca_http *h)
{
    CURL *e = curl_easy_init();
    /* A new handle has none of the per-attempt settings yet. */
    free(h->url);
    h->url = NULL;
    h->no_proxy = -1;
    h->proxy_ua = -1;
    if (e == NULL)
        return -1;
    h->easy = e;
    if (curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbuf) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEDATA, h) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_HEADERDATA, h) != CURLE_OK ||
        /* Never follow redirects: the key must not travel to another host. */
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_send) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_PREREQDATA, h) != CURLE_OK ||
#if LIBCURL_VERSION_NUM >= 0x075500
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
#else
        curl_easy_setopt(e, CURLOPT_PROTOCOLS,
                         (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) != CURLE_OK ||
#endif

        /* CAINFO replaces the default bundle file, while the default CA
         * directory stays in force: the file adds trust, it never narrows it. */
        (h->ca_file != NULL &&
         curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_file) != CURLE_OK)) {
        curl_easy_cleanup(e);
        h->easy = NULL;
        return -1;
    }
    return 0;
}

int cerca_http_init(cerca_http *h, const char *ca_file, const char *user_agent)
{
    memset(h, 0, sizeof *h);
    h->pid = cerca_pid();
    if (cerca_http_global_init() != 0)
        return -1;
    h->ca_file = dup_or_null(ca_file);
    if (user_agent != NULL) {
        size_t n = sizeof UA_PREFIX + strlen(user_agent);
        if ((h->ua_line = malloc(n)) != NULL) {
            snprintf(h->ua_line, n, "%s%s", UA_PREFIX, user_agent);
            h->ua_node.data = h->ua_line;
            h->ua_node.next = NULL;
        }
    }
    if ((ca_file != NULL && h->ca_file == NULL) ||
        (user_agent != NULL && h->ua_line == NULL) || setup_easy(h) != 0) {
        cerca_http_cleanup(h);
        return -1;
    }
    return 0;
}

int cerca_http_forked(const cerca_http *h)
{
    return h->pid != cerca_pid();
}

static cerca_err_kind classify(CURLcode code, const cerca_http *h, int request_sent)
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
        /* Once the request is out, this is the answer: not HTTP (libcurl
         * says "unsupported protocol" for bytes without a status line). */
        return request_sent ? CERCA_ERR_CONNECTION : CERCA_ERR_URL;
    case CURLE_OUT_OF_MEMORY:
        /* libcurl holds a header line whole before it hands it over, up to
         * a cap of its own (100 KB): a longer one ends the transfer as "out
         * of memory" before our callback sees a byte of it. The headers are
         * then over our cap too. */
        if (request_sent && h->body.len == 0 && !h->body.overflow)
            return CERCA_ERR_TOO_LARGE;
        return CERCA_ERR_INTERNAL;
    case CURLE_BAD_FUNCTION_ARGUMENT:
        return CERCA_ERR_INTERNAL;
    default:
        return CERCA_ERR_CONNECTION;
    }
}

/* No "Expect: 100-continue" round trip before the body. (libcurl only
 * reads the lines it is given.) */
static char expect_line[] = "Expect:";

/* Whether h->lines holds the request's header lines, byte for byte. */
static int same_lines(const cerca_http *h, const cerca_request *rq)
{
    size_t i;
    if (h->lines == NULL || h->nlines != rq->nheaders)
        return 0;
    for (i = 0; i < rq->nheaders; i++)
        if (strcmp(h->lines[i].data, rq->headers[i]) != 0)
            return 0;
    return 1;
}

/* Whether s starts with `prefix` (n bytes, lower case) in any ASCII letter
 * case (tolower() would follow the locale a program set). */
static int starts_folded(const char *s, const char *prefix, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c) != (unsigned char)prefix[i])
            return 0;
    }
    return 1;
}

/* Whether a header line names the User-Agent: the name, then ':' or ';'
 * (libcurl's "send it empty"), as libcurl itself reads the lines. */
static int names_user_agent(const char *line)
{
    return starts_folded(line, "user-agent", 10) && (line[10] == ':' || line[10] == ';');
}

/* Makes h->lines from the request's header lines: one allocation for the
 * nodes and their text. The User-Agent goes in as one more line, unless
 * the request names its own: given as CURLOPT_USERAGENT alone, libcurl
 * would format "User-Agent: ..." anew on every attempt (it does not when
 * the list names one). On failure h->lines is left as it was. */
static int keep_lines(cerca_http *h, const cerca_request *rq)
{
    size_t i, n = rq->nheaders, text = 0, node_bytes, nodes_n;
    struct curl_slist *nodes;
    char *p;
    int own_ua = h->ua_line != NULL;
    for (i = 0; i < n && own_ua; i++)
        if (names_user_agent(rq->headers[i]))
            own_ua = 0;
    nodes_n = n + (own_ua ? 1 : 0);
    if (nodes_n >= SIZE_MAX / sizeof *nodes)
        return -1;
    node_bytes = (nodes_n + 1) * sizeof *nodes;
    for (i = 0; i < n; i++) {
        size_t len = strlen(rq->headers[i]) + 1;
        if (len > SIZE_MAX - node_bytes - text)
            return -1;
        text += len;
    }
    nodes = malloc(node_bytes + text);
    if (nodes == NULL)
        return -1;
    p = (char *)(nodes + nodes_n + 1);
    for (i = 0; i < n; i++) {
        size_t len = strlen(rq->headers[i]) + 1;
        nodes[i].data = memcpy(p, rq->headers[i], len);
        nodes[i].next = &nodes[i + 1];
        p += len;
    }
    if (own_ua) {
        nodes[n].data = h->ua_line; /* h's own, made once (cerca_http_init) */
        nodes[n].next = &nodes[n + 1];
    }
    nodes[nodes_n].data = expect_line;
    nodes[nodes_n].next = NULL;
    free(h->lines);
    h->lines = nodes;
    h->nlines = n;
    return 0;
}

/* Sets the URL unless the handle has it already. libcurl parses a URL
 * given as a string again on every transfer (and writes it out again
 * whole): it is given parsed as well (CURLOPT_CURLU, which libcurl then
 * reads instead), parsed here once (cerca_url_parse, url.c), with the
 * flags libcurl parses a string with. The string stays set, for what
 * libcurl reports of the URL. */
static CURLcode set_url(cerca_http *h, const char *url)
{
    char *copy;
    size_t at;
    CURLU *parsed;
    CURLcode rc;
    CURLUcode uc;
    if (h->url != NULL && strcmp(h->url, url) == 0)
        return CURLE_OK;
    at = cerca_url_path_at(url);
    parsed = cerca_url_parse(h->url, h->url_path_at, h->parsed, url, at, &uc);
    /* Nothing is remembered until both are set: a failure leaves no URL. */
    free(h->url);
    h->url = NULL;
    curl_easy_setopt(h->easy, CURLOPT_CURLU, (CURLU *)NULL);
    if (h->parsed != NULL)
        curl_url_cleanup(h->parsed);
    h->parsed = parsed;
    if (parsed == NULL && uc != CURLUE_OK) {
        if (uc == CURLUE_OUT_OF_MEMORY)
            return CURLE_OUT_OF_MEMORY;
        /* Why the parser refused it (libcurl's own message is a general one). */
        snprintf(h->errbuf, sizeof h->errbuf, "URL rejected: %s", curl_url_strerror(uc));
        return CURLE_URL_MALFORMAT;
    }
    copy = strdup(url);
    if (copy == NULL)
        return CURLE_OUT_OF_MEMORY;
    rc = curl_easy_setopt(h->easy, CURLOPT_URL, url);
    if (rc == CURLE_OK && parsed != NULL)
        rc = curl_easy_setopt(h->easy, CURLOPT_CURLU, parsed);
    if (rc != CURLE_OK) {
        free(copy);
        return rc;
    }
    h->url = copy;
    /* A URL given as a string has no parse for the next one to reuse. */
    h->url_path_at = parsed != NULL ? at : 0;
    return CURLE_OK;
}

CURLcode cerca_http_prepare(cerca_http *h, const cerca_request *rq)
{
    CURL *e = h->easy;
    CURLcode rc;
    struct curl_slist *head;
    int proxy_ua;
    size_t key_len = rq->idempotency_key != NULL ? strlen(rq->idempotency_key) : 0;

    buf_reset(&h->body, rq->max_body);
    buf_reset(&h->headers, CERCA_MAX_HEADER_BYTES);
    h->header_bytes = 0;
    h->header_block_done = 1; /* the first line is a status line */
    h->body_started = 0;
    h->sends = 0;
    h->errbuf[0] = '\0';

    if (key_len > CERCA_MAX_KEY_BYTES)
        return CURLE_BAD_FUNCTION_ARGUMENT;
    /* On failure the list the handle points to is the one kept before. */
    if (!same_lines(h, rq) && keep_lines(h, rq) != 0)
        return CURLE_OUT_OF_MEMORY;
    head = h->lines;
    if (rq->idempotency_key != NULL) {
        /* Copied, not formatted: this runs on every attempt (key_line has
         * room for the prefix, the longest key and its NUL). */
        memcpy(h->key_line, CERCA_KEY_PREFIX, sizeof CERCA_KEY_PREFIX - 1);
        memcpy(h->key_line + sizeof CERCA_KEY_PREFIX - 1, rq->idempotency_key, key_len + 1);
        h->key_node.data = h->key_line;
        h->key_node.next = h->lines;
        head = &h->key_node;
    }
    /* Set at once: the handle never keeps a list that was freed. */
    rc = curl_easy_setopt(e, CURLOPT_HTTPHEADER, head);

#define SET(opt, val)                                                          \
    if (rc == CURLE_OK)                                                        \
    rc = curl_easy_setopt(e, opt, val)
    if (rc == CURLE_OK)
        rc = set_url(h, rq->url);
    SET(CURLOPT_TIMEOUT_MS, rq->timeout_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS, rq->connect_timeout_ms);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)rq->max_body);
    /* A proxy's CONNECT (https) gets the User-Agent from its own list:
     * the request's header list does not reach it. Not for http, where the
     * request itself, its list included, goes to the proxy. */
    proxy_ua = h->ua_line != NULL && starts_folded(rq->url, "https:", 6);
    if (rc == CURLE_OK && h->proxy_ua != proxy_ua) {
        rc = curl_easy_setopt(e, CURLOPT_PROXYHEADER, proxy_ua ? &h->ua_node : NULL);
        h->proxy_ua = rc == CURLE_OK ? proxy_ua : -1;
    }
    if (rc == CURLE_OK && h->no_proxy != (rq->no_proxy != 0)) {
        /* NULL restores libcurl's default: proxies from the environment. */
        rc = curl_easy_setopt(e, CURLOPT_NOPROXY, rq->no_proxy ? "*" : NULL);
        h->no_proxy = rc == CURLE_OK ? rq->no_proxy != 0 : -1;
    }
    if (strcmp(rq->method, "GET") == 0) {
        SET(CURLOPT_HTTPGET, 1L);
        /* A method another attempt on this handle named is not kept. */
        SET(CURLOPT_CUSTOMREQUEST, (char *)NULL);
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

/* Fills rs. `transferred`: a transfer ran; without one, the handle's
 * figures are those of the attempt before and are not read. */
static void report(cerca_http *h, CURLcode code, cerca_response *rs, int transferred)
{
    long status = 0, connects = 0, request_size = 0;
    double total = 0;
    if (transferred) {
        curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(h->easy, CURLINFO_TOTAL_TIME, &total);
        curl_easy_getinfo(h->easy, CURLINFO_NUM_CONNECTS, &connects);
        /* Bytes of the request written to the socket on this attempt
         * (libcurl counts what its send calls took, reset per transfer):
         * above zero, the server may have the request, whatever came back. */
        curl_easy_getinfo(h->easy, CURLINFO_REQUEST_SIZE, &request_size);
    }

    /* An interim (1xx) status is no answer: a transfer that failed after
     * one got no final status line. */
    if (code != CURLE_OK && status >= 100 && status < 200) {
        status = 0;
        /* Nor are its headers the answer's: a Retry-After or x-should-retry
         * of an interim answer must not steer what follows "no answer". */
        if (h->headers.data != NULL) {
            h->headers.len = 0;
            h->headers.data[0] = '\0';
        }
    }
    rs->status = status;
    rs->curl_code = (int)code;
    rs->request_sent = request_size > 0;
    rs->err = classify(code, h, rs->request_sent);
    rs->err_message = NULL;
    if (rs->err != CERCA_OK) {
        char message[CURL_ERROR_SIZE];
        const char *why = h->errbuf[0] ? h->errbuf : curl_easy_strerror(code);
        if (h->headers.overflow || (rs->err == CERCA_ERR_TOO_LARGE && code == CURLE_OUT_OF_MEMORY)) {
            snprintf(message, sizeof message, "the response headers are larger than %d bytes",
                     CERCA_MAX_HEADER_BYTES);
            why = memcpy(h->errbuf, message, sizeof message);
        } else if (rs->err == CERCA_ERR_CONNECTION && code == CURLE_UNSUPPORTED_PROTOCOL) {
            snprintf(message, sizeof message, "the answer is not HTTP (%.200s)", why);
            why = memcpy(h->errbuf, message, sizeof message);
        }
        rs->err_message = why;
    }
    rs->body = h->body.data != NULL ? h->body.data : "";
    rs->body_len = h->body.len;
    rs->headers = h->headers.data != NULL ? h->headers.data : "";
    rs->headers_len = h->headers.len;
    rs->total_time = total;
    rs->new_connects = connects;
    rs->resent = transferred && h->sends > 1 ? h->sends - 1 : 0;
}

void cerca_http_finish(cerca_http *h, CURLcode code, cerca_response *rs)
{
    report(h, code, rs, 1);
}

void cerca_http_not_started(cerca_http *h, CURLcode code, cerca_response *rs)
{
    report(h, code, rs, 0);
}

void cerca_http_internal_error(cerca_response *rs, const char *why)
{
    memset(rs, 0, sizeof *rs);
    rs->err = CERCA_ERR_INTERNAL;
    rs->curl_code = (int)CURLE_FAILED_INIT;
    rs->err_message = why;
    rs->body = rs->headers = "";
}

void cerca_http_cleanup(cerca_http *h)
{
    if (h->easy != NULL) {
        /* Another process's handle is only given up: cleaning it up could
         * write on the parent's connection (TLS close_notify). */
        if (cerca_http_forked(h))
            cerca_abandon(h->easy);
        else
            curl_easy_cleanup(h->easy);
        h->easy = NULL;
    }
    free(h->lines);
    h->lines = NULL;
    h->nlines = 0;
    free(h->url);
    h->url = NULL;
    if (h->parsed != NULL)
        curl_url_cleanup(h->parsed);
    h->parsed = NULL;
    buf_free(&h->body);
    buf_free(&h->headers);
    free(h->ca_file);
    free(h->ua_line);
    h->ca_file = h->ua_line = NULL;
}
