/*
 * One HTTP attempt over a reused libcurl easy handle. No Lua in here: the
 * caller hands in plain C strings and reads back plain C buffers, so no Lua
 * error can ever unwind through libcurl.
 */
#ifndef CERCA_HTTP_H
#define CERCA_HTTP_H

#include <stddef.h>
#include <sys/types.h>
#include <curl/curl.h>

/* 7.80.0 is the oldest libcurl cerca supports: its CURLOPT_PREREQFUNCTION
 * counts the times an attempt's request is sent (libcurl sends it again on
 * a new connection when a kept-alive one was closed), without which a
 * turned-away repeat would hide that the first send may have created.
 * Newer interfaces are used only where the header offers them. */
#if LIBCURL_VERSION_NUM < 0x075000
#error "cerca needs libcurl 7.80.0 or newer"
#endif

/* Why an attempt produced no usable HTTP response. */
typedef enum {
    CERCA_OK = 0,
    CERCA_ERR_CONNECTION, /* refused, reset, closed early, DNS, proxy, not HTTP */
    CERCA_ERR_TIMEOUT,    /* connect or whole-attempt timeout */
    CERCA_ERR_TLS,        /* handshake or certificate verification */
    CERCA_ERR_TOO_LARGE,  /* body or headers over the cap */
    CERCA_ERR_URL,        /* malformed URL or scheme we do not speak (nothing sent) */
    CERCA_ERR_INTERNAL    /* out of memory, libcurl misuse */
} cerca_err_kind;

/* A growable byte buffer with a hard cap. */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
    size_t limit;
    int overflow; /* set once a write was refused for exceeding limit */
} cerca_buf;

/* The longest idempotency key a request may carry. */
#define CERCA_MAX_KEY_BYTES 255
/* The line the key is sent in: this, then the key (key_line has room for both and the NUL). */
#define CERCA_KEY_PREFIX "Idempotency-Key: "

typedef struct {
    const char *method; /* "POST", "GET", ... */
    const char *url;
    const char *const *headers; /* "Name: value" lines */
    size_t nheaders;
    const char *idempotency_key; /* sent first as Idempotency-Key; may be NULL */
    const char *body; /* may be NULL */
    size_t body_len;
    long timeout_ms;
    long connect_timeout_ms;
    size_t max_body;   /* response body cap in bytes */
    int no_proxy;      /* bypass any proxy from the environment */
} cerca_request;

typedef struct {
    long status; /* 0 when no status line arrived */
    cerca_err_kind err;
    int curl_code;
    const char *err_message; /* valid until the next attempt on the handle */
    const char *body;        /* response body (possibly partial) */
    size_t body_len;
    const char *headers; /* raw header block of the final response */
    size_t headers_len;
    double total_time; /* seconds */
    long new_connects; /* connections opened by this attempt */
    int request_sent;  /* request bytes reached a socket on this attempt */
    /* Times libcurl sent the request again within this attempt: on a new
     * connection, when the kept-alive one it was sent on closed before
     * any byte of an answer (the same bytes, the same key). */
    int resent;
} cerca_response;

typedef struct {
    CURL *easy;
    /* The request's header list, kept from one attempt to the next: the
     * same lines (a client's, as a rule) are used again as they are, and
     * only the Idempotency-Key line, sent first, is written anew. `lines`
     * is one block: the nodes (the request's lines, then "Expect:") and
     * the text they point to. */
    struct curl_slist *lines;
    size_t nlines; /* the request's lines in `lines` */
    struct curl_slist key_node;
    char key_line[sizeof CERCA_KEY_PREFIX + CERCA_MAX_KEY_BYTES];
    /* What `easy` was last given: a setting that does not change is not
     * set again (libcurl copies each string it is given). */
    char *url;    /* NULL: none yet */
    CURLU *parsed; /* `url`, parsed once (CURLOPT_CURLU), or NULL */
    size_t url_path_at; /* where `url`'s path starts when it is plainly written, else 0 */
    int no_proxy; /* -1: none yet */
    int proxy_ua; /* CURLOPT_PROXYHEADER is the User-Agent line (1), none (0), not set yet (-1) */
    cerca_buf body;
    cerca_buf headers;     /* the header block of the latest response */
    size_t header_bytes;   /* header bytes of every response of the attempt */
    int header_block_done; /* the last header line was the blank one */
    int body_started;
    int sends; /* requests the attempt began to send (libcurl may send one again) */
    char errbuf[CURL_ERROR_SIZE];
    /* The process that made `easy`, and what it was made with: a forked
     * child makes a handle of its own (see multi.c). */
    pid_t pid;
    char *ca_file;
    /* "User-Agent: ...", made once: a line of `lines` (unless the request
     * names its own), and alone in its node the list of a proxy's CONNECT. */
    char *ua_line;
    struct curl_slist ua_node;
} cerca_http;

/* Process-wide libcurl initialisation; safe to call from several threads. */
int cerca_http_global_init(void);

/* Returns 0 on success; on failure h is left cleaned up. */
int cerca_http_init(cerca_http *h, const char *ca_file, const char *user_agent);

/* The two halves of an attempt, for a driver that performs it itself (the
 * curl multi interface): prepare sets the handle up for `rq`; after the
 * transfer, finish fills `rs` from the handle and the result `code`.
 * rs stays valid until the next prepare on the handle. */
CURLcode cerca_http_prepare(cerca_http *h, const cerca_request *rq);
void cerca_http_finish(cerca_http *h, CURLcode code, cerca_response *rs);

/* Fills rs for an attempt that did not start because preparing it failed
 * with `code`: nothing was sent (the handle's figures, those of the attempt
 * before, are not read). rs stays valid until the next prepare on h. */
void cerca_http_not_started(cerca_http *h, CURLcode code, cerca_response *rs);

/* Fills rs as an internal error (`why`, a static string), no answer. */
void cerca_http_internal_error(cerca_response *rs, const char *why);

/* Idempotent: releases the handle and buffers, leaves h reusable for init.
 * In a forked child the inherited libcurl handle is abandoned, not cleaned
 * up: curl_easy_cleanup could write on the parent's connection (a TLS
 * close_notify) and so end it for the parent. */
void cerca_http_cleanup(cerca_http *h);

/* 1 when h's libcurl handle was made by another process (h was inherited
 * through fork), else 0. */
int cerca_http_forked(const cerca_http *h);

/* Keeps a libcurl handle (easy or multi) of another process, inherited
 * through fork, for good: it is never used, cleaned up or freed, since any
 * of that could act on connections the parent still uses. Held in a
 * process-wide list, so that it stays reachable (leak checkers report it
 * as such, not as lost). NULL is ignored. */
void cerca_abandon(void *curl_handle);

#endif
