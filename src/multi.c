#include "multi.h"

#include <stdlib.h>
#include <string.h>

/* One slot per transfer in flight. Slots are allocated one by one and never
 * moved: libcurl holds pointers into them (buffers, error buffer). */
typedef struct {
    cerca_http http;
    long token;
    int busy;
} slot;

struct cerca_multi {
    CURLM *multi;
    slot **slots;
    size_t nslots;
    slot *returned; /* the slot handed out by the last next_done */
    char *ca_file;
    char *user_agent;
};

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

cerca_multi *cerca_multi_new(const char *ca_file, const char *user_agent)
{
    cerca_multi *m;
    if (cerca_http_global_init() != 0)
        return NULL;
    m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->multi = curl_multi_init();
    m->ca_file = dup_or_null(ca_file);
    m->user_agent = dup_or_null(user_agent);
    if (m->multi == NULL || (ca_file != NULL && m->ca_file == NULL) ||
        (user_agent != NULL && m->user_agent == NULL)) {
        cerca_multi_free(m);
        return NULL;
    }
    curl_multi_setopt(m->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    return m;
}

void cerca_multi_limit(cerca_multi *m, long max_connections)
{
    curl_multi_setopt(m->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_connections);
    curl_multi_setopt(m->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_connections);
}

static void release_returned(cerca_multi *m)
{
    if (m->returned != NULL) {
        m->returned->busy = 0;
        m->returned = NULL;
    }
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
    while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
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
    free(m);
}
