#define _POSIX_C_SOURCE 200809L /* getpid */
#include "multi.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One slot per transfer in flight. Slots are allocated one by one and never
 * moved: libcurl holds pointers into them (buffers, error buffer). */
typedef struct {
    cerca_http http;
    long token;
    int busy;
} slot;

struct cerca_multi {
    CURLM *multi; /* NULL only when a forked child could not make its own */
    slot **slots;
    size_t nslots;
    slot *returned; /* the slot handed out by the last next_done */
    char *ca_file;
    char *user_agent;
    long max_connections; /* 0: libcurl's default */
    pid_t pid;            /* the process that made `multi` and the slots */
    /* Tokens of the transfers in flight when the process forked: they are
     * the parent's, this process reports them failed (next_done). */
    long *orphans;
    size_t norphans;
};

static const char ORPHAN_MESSAGE[] =
    "the process forked while this transfer was in flight: it belongs to the parent process";

static char *dup_or_null(const char *s)
{
    char *d;
    if (s == NULL)
        return NULL;
    d = malloc(strlen(s) + 1);
    if (d != NULL)
        strcpy(d, s);
    return d;
}

/* Makes m->multi with the settings of m. */
static int setup_multi(cerca_multi *m)
{
    m->multi = curl_multi_init();
    if (m->multi == NULL)
        return -1;
    curl_multi_setopt(m->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    if (m->max_connections > 0) {
        curl_multi_setopt(m->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, m->max_connections);
        curl_multi_setopt(m->multi, CURLMOPT_MAX_HOST_CONNECTIONS, m->max_connections);
    }
    return 0;
}

cerca_multi *cerca_multi_new(const char *ca_file, const char *user_agent)
{
    cerca_multi *m;
    if (cerca_http_global_init() != 0)
        return NULL;
    m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->pid = getpid();
    m->ca_file = dup_or_null(ca_file);
    m->user_agent = dup_or_null(user_agent);
    if (setup_multi(m) != 0 || (ca_file != NULL && m->ca_file == NULL) ||
        (user_agent != NULL && m->user_agent == NULL)) {
        cerca_multi_free(m);
        return NULL;
    }
    return m;
}

static void release_returned(cerca_multi *m)
{
    if (m->returned != NULL) {
        m->returned->busy = 0;
        m->returned = NULL;
    }
}

/* In a child forked since m was made: gives up the parent's multi handle
 * and every easy handle (see cerca_abandon: no remove_handle, no cleanup,
 * which could write on or close the parent's connections), notes the
 * transfers that were in flight, and frees the plain memory. */
static void forget_inherited(cerca_multi *m)
{
    size_t i, busy = 0;
    long *grown;
    release_returned(m);
    for (i = 0; i < m->nslots; i++)
        busy += m->slots[i]->busy ? 1 : 0;
    grown = busy > 0 ? realloc(m->orphans, (m->norphans + busy) * sizeof *grown) : NULL;
    if (grown != NULL)
        m->orphans = grown;
    for (i = 0; i < m->nslots; i++) {
        if (m->slots[i]->busy && grown != NULL)
            m->orphans[m->norphans++] = m->slots[i]->token;
        cerca_http_cleanup(&m->slots[i]->http); /* abandons the easy handle */
        free(m->slots[i]);
    }
    free(m->slots);
    m->slots = NULL;
    m->nslots = 0;
    cerca_abandon(m->multi);
    m->multi = NULL;
    m->pid = getpid();
}

/* 0 when m->multi is this process's own, making it first if needed. */
static int own_multi(cerca_multi *m)
{
    if (m->pid != getpid())
        forget_inherited(m);
    return m->multi != NULL ? 0 : setup_multi(m);
}

void cerca_multi_limit(cerca_multi *m, long max_connections)
{
    m->max_connections = max_connections;
    if (own_multi(m) != 0)
        return; /* applied when the handle is made */
    curl_multi_setopt(m->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_connections);
    curl_multi_setopt(m->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_connections);
}

static slot *free_slot(cerca_multi *m)
{
    size_t i;
    slot *s, **grown;
    for (i = 0; i < m->nslots; i++)
        if (!m->slots[i]->busy)
            return m->slots[i];
    s = calloc(1, sizeof *s);
    grown = realloc(m->slots, (m->nslots + 1) * sizeof *grown);
    if (s == NULL || grown == NULL) {
        free(s);
        if (grown != NULL)
            m->slots = grown;
        return NULL;
    }
    m->slots = grown;
    if (cerca_http_init(&s->http, m->ca_file, m->user_agent) != 0) {
        free(s);
        return NULL;
    }
    m->slots[m->nslots++] = s;
    return s;
}

int cerca_multi_add(cerca_multi *m, long token, const cerca_request *rq)
{
    slot *s;
    release_returned(m);
    if (own_multi(m) != 0)
        return -1;
    s = free_slot(m);
    if (s == NULL)
        return -1;
    if (cerca_http_prepare(&s->http, rq) != CURLE_OK ||
        curl_easy_setopt(s->http.easy, CURLOPT_PRIVATE, (void *)s) != CURLE_OK ||
        curl_multi_add_handle(m->multi, s->http.easy) != CURLM_OK) {
        cerca_response ignored;
        cerca_http_finish(&s->http, CURLE_OUT_OF_MEMORY, &ignored);
        return -1;
    }
    s->token = token;
    s->busy = 1;
    return 0;
}

int cerca_multi_run(cerca_multi *m, long timeout_ms)
{
    int running = 0;
    release_returned(m);
    if (own_multi(m) != 0)
        return 0;
    curl_multi_perform(m->multi, &running);
    if (running > 0 && timeout_ms > 0) {
        curl_multi_poll(m->multi, NULL, 0, (int)(timeout_ms > 60000 ? 60000 : timeout_ms), NULL);
        curl_multi_perform(m->multi, &running);
    }
    return running;
}

int cerca_multi_next_done(cerca_multi *m, long *token, cerca_response *rs)
{
    CURLMsg *msg;
    int left;
    release_returned(m);
    if (m->pid != getpid())
        forget_inherited(m);
    if (m->norphans > 0) {
        memset(rs, 0, sizeof *rs);
        rs->err = CERCA_ERR_INTERNAL;
        rs->curl_code = (int)CURLE_FAILED_INIT;
        rs->err_message = ORPHAN_MESSAGE;
        rs->body = rs->headers = "";
        rs->request_sent = 1; /* the parent may well have sent it */
        *token = m->orphans[--m->norphans];
        return 1;
    }
    while (m->multi != NULL && (msg = curl_multi_info_read(m->multi, &left)) != NULL) {
        slot *s = NULL;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
        curl_multi_remove_handle(m->multi, msg->easy_handle);
        if (s == NULL)
            continue;
        cerca_http_finish(&s->http, msg->data.result, rs);
        *token = s->token;
        m->returned = s; /* rs points into it until the next call */
        return 1;
    }
    return 0;
}

void cerca_multi_free(cerca_multi *m)
{
    size_t i;
    if (m == NULL)
        return;
    if (m->pid != getpid())
        forget_inherited(m); /* the parent's handles are only given up */
    for (i = 0; i < m->nslots; i++) {
        if (m->multi != NULL && m->slots[i]->busy)
            curl_multi_remove_handle(m->multi, m->slots[i]->http.easy);
        cerca_http_cleanup(&m->slots[i]->http);
        free(m->slots[i]);
    }
    free(m->slots);
    if (m->multi != NULL)
        curl_multi_cleanup(m->multi);
    free(m->ca_file);
    free(m->user_agent);
    free(m->orphans);
    free(m);
}
