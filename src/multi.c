#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "multi.h"
#include "pid.h"

#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One slot per transfer in flight. Slots are allocated one by one and never
 * moved: libcurl holds pointers into them (buffers, error buffer). */
typedef struct {
    cerca_http http;
    long token;
    int busy;
} slot;

/* The transfers are driven by curl_multi_socket_action: libcurl names the
 * sockets to watch (socket_changed) and when to call it back without
 * activity (timer_changed); one poll() waits on those sockets, and only a
 * transfer whose socket is ready is moved along. curl_multi_perform would
 * instead look at every transfer in flight, one poll() each, on every
 * wake-up: with 200 in flight, hundreds of system calls per answer. */
struct cerca_multi {
    CURLM *multi; /* NULL only when a forked child could not make its own */
    slot **slots;
    size_t nslots;
    size_t next_free; /* where free_slot looks first: after the slot it gave last */
    struct pollfd *watched; /* the sockets libcurl asked to be watched */
    struct pollfd *ready;   /* scratch: the sockets one poll() found ready */
    size_t nwatched, room;  /* room: what both arrays hold */
    /* at[fd]: where socket fd is in `watched`, for every watched fd below
     * nat (one that found no room here is looked for one by one). */
    size_t *at;
    size_t nat;
    long long timer_at;     /* when libcurl wants its timeout call (ms), or -1 */
    int running;            /* transfers not finished, as libcurl last said */
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

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sockets a transfer may hold at once: a connection (two while both
 * address families are tried) and the resolver's. */
#define SOCKETS_PER_TRANSFER 4

/* Makes room for `n` watched sockets, in both `watched` and `ready` (a
 * poll() may find all of them ready): 0, or -1 when out of memory. */
static int reserve_watch(cerca_multi *m, size_t n)
{
    struct pollfd *grown;
    if (m->room >= n)
        return 0;
    if ((grown = realloc(m->watched, n * sizeof *grown)) == NULL)
        return -1;
    m->watched = grown;
    if ((grown = realloc(m->ready, n * sizeof *grown)) == NULL)
        return -1; /* `room` unchanged: the next call grows both again */
    m->ready = grown;
    m->room = n;
    return 0;
}

/* Where socket s is in m->watched, or m->nwatched when it is not there.
 * libcurl tells of a change to one socket at a time, each transfer several
 * times: with 200 in flight, a search one by one cost more than the
 * rest of the callback. */
static size_t watch_index(const cerca_multi *m, curl_socket_t s)
{
    size_t i;
    if (s >= 0 && (size_t)s < m->nat) {
        i = m->at[s];
        return i < m->nwatched && m->watched[i].fd == s ? i : m->nwatched;
    }
    for (i = 0; i < m->nwatched && m->watched[i].fd != s; i++)
        ;
    return i;
}

/* Notes that socket s is at `i` in m->watched. An fd beyond the index
 * grows it (then every watched socket is indexed again: one may have been
 * added while growing failed); if it cannot grow, s is found by search. */
static void index_watch(cerca_multi *m, curl_socket_t s, size_t i)
{
    if (s < 0)
        return;
    if ((size_t)s >= m->nat) {
        size_t n = (size_t)s < 64 ? 64 : (size_t)s * 2, j;
        size_t *grown = (size_t)s < SIZE_MAX / 2 / sizeof *grown ? realloc(m->at, n * sizeof *grown) : NULL;
        if (grown == NULL)
            return;
        for (j = m->nat; j < n; j++)
            grown[j] = SIZE_MAX; /* no fd there */
        m->at = grown;
        m->nat = n;
        for (j = 0; j < m->nwatched; j++)
            if (m->watched[j].fd >= 0 && (size_t)m->watched[j].fd < n)
                m->at[m->watched[j].fd] = j;
    }
    m->at[s] = i;
}

/* CURLMOPT_SOCKETFUNCTION: watch socket s for `what`, or stop. Room was
 * made when the transfer was added (cerca_multi_add), where running out of
 * memory fails that one transfer; this grows it only if a transfer holds
 * more sockets than SOCKETS_PER_TRANSFER. It never returns an error:
 * libcurl 7.88 then fails the whole multi handle, and crashes on the next
 * call. A socket that finds no room is not watched; its transfer ends at
 * its own timeout. */
static int socket_changed(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    cerca_multi *m = (cerca_multi *)userp;
    size_t i = watch_index(m, s);
    short events = 0;
    (void)easy;
    (void)socketp;
    if (what == CURL_POLL_REMOVE) {
        if (i < m->nwatched) {
            m->watched[i] = m->watched[--m->nwatched];
            if (i < m->nwatched)
                index_watch(m, m->watched[i].fd, i);
        }
        return 0;
    }
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= POLLIN;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= POLLOUT;
    if (i == m->nwatched) {
        if (reserve_watch(m, m->nwatched + 1) != 0)
            return 0;
        m->watched[m->nwatched].fd = s;
        m->nwatched++;
        index_watch(m, s, i);
    }
    m->watched[i].events = events;
    m->watched[i].revents = 0;
    return 0;
}

size_t cerca_multi_watching(const cerca_multi *m)
{
    return m->nwatched;
}

/* CURLMOPT_TIMERFUNCTION: call back in timeout_ms, or never (-1). */
static int timer_changed(CURLM *multi, long timeout_ms, void *userp)
{
    cerca_multi *m = (cerca_multi *)userp;
    (void)multi;
    m->timer_at = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    return 0;
}

/* Makes m->multi with the settings of m. */
static int setup_multi(cerca_multi *m)
{
    m->nwatched = 0;
    m->timer_at = -1;
    m->running = 0;
    m->multi = curl_multi_init();
    if (m->multi == NULL)
        return -1;
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, socket_changed);
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, (void *)m);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, timer_changed);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, (void *)m);
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
    m->pid = cerca_pid();
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
    m->multi = NULL; /* setup_multi makes this process's own, watching nothing */
    m->pid = cerca_pid();
}

/* 0 when m->multi is this process's own, making it first if needed. */
static int own_multi(cerca_multi *m)
{
    if (m->pid != cerca_pid())
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

/* A slot not in use, or a new one. The search starts after the slot given
 * last: transfers of the same kind end about in the order they started,
 * so the slot there is most often free (a search from the first slot read
 * half of them, with 200 in flight). */
static slot *free_slot(cerca_multi *m)
{
    size_t k, i;
    slot *s, **grown;
    for (k = 0; k < m->nslots; k++) {
        i = (m->next_free + k) % m->nslots;
        if (!m->slots[i]->busy) {
            m->next_free = i + 1;
            return m->slots[i];
        }
    }
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

int cerca_multi_add(cerca_multi *m, long token, const cerca_request *rq, cerca_response *failed)
{
    slot *s;
    CURLcode code;
    release_returned(m);
    if (own_multi(m) != 0 || (s = free_slot(m)) == NULL ||
        reserve_watch(m, m->nslots * SOCKETS_PER_TRANSFER) != 0) {
        cerca_http_internal_error(failed, "cannot start the transfer (out of memory)");
        return -1;
    }
    code = cerca_http_prepare(&s->http, rq);
    if (code == CURLE_OK && (curl_easy_setopt(s->http.easy, CURLOPT_PRIVATE, (void *)s) != CURLE_OK ||
                             curl_multi_add_handle(m->multi, s->http.easy) != CURLM_OK))
        code = CURLE_OUT_OF_MEMORY;
    if (code != CURLE_OK) {
        /* The slot stays free; `failed` points into it. */
        cerca_http_not_started(&s->http, code, failed);
        return -1;
    }
    s->token = token;
    s->busy = 1;
    return 0;
}

/* Moves along what `fd` (or CURL_SOCKET_TIMEOUT) concerns. When libcurl
 * fails the call (out of memory), the timer it may not have set is set to
 * 10 ms, so that no transfer waits on a timeout libcurl dropped. */
static void act(cerca_multi *m, curl_socket_t fd, int ev)
{
    if (curl_multi_socket_action(m->multi, fd, ev, &m->running) != CURLM_OK) {
        long long soon = now_ms() + 10;
        if (m->timer_at < 0 || m->timer_at > soon)
            m->timer_at = soon;
    }
}

/* Gives libcurl its timeout call if it is due. */
static void timer_due(cerca_multi *m)
{
    if (m->timer_at >= 0 && now_ms() >= m->timer_at) {
        m->timer_at = -1; /* libcurl sets it again if it needs to */
        act(m, CURL_SOCKET_TIMEOUT, 0);
    }
}

/* One poll() on the watched sockets, waiting at most wait_ms (libcurl's
 * timer may shorten it); then each ready socket's transfer is moved along.
 * The ready sockets are copied first (`ready` has room for all of them,
 * see reserve_watch): libcurl changes `watched` as it goes. */
static void wait_and_act(cerca_multi *m, long wait_ms)
{
    size_t i, nready = 0;
    int n;
    if (m->timer_at >= 0) {
        long long until = m->timer_at - now_ms();
        if (until < wait_ms)
            wait_ms = until < 0 ? 0 : (long)until;
    }
    n = poll(m->watched, (nfds_t)m->nwatched, (int)wait_ms);
    for (i = 0; n > 0 && i < m->nwatched; i++)
        if (m->watched[i].revents != 0)
            m->ready[nready++] = m->watched[i];
    for (i = 0; i < nready; i++) {
        /* As libcurl reads poll() itself: an error or a hang-up makes the
         * socket readable and writable (the read or write then says what
         * happened); only an invalid one is an error as such. */
        short r = m->ready[i].revents, want = m->ready[i].events;
        int ev = 0;
        if (want == 0)
            want = POLLIN | POLLOUT; /* a hang-up on a socket watched for nothing */
        if ((want & POLLIN) && (r & (POLLIN | POLLERR | POLLHUP)))
            ev |= CURL_CSELECT_IN;
        if ((want & POLLOUT) && (r & (POLLOUT | POLLERR | POLLHUP)))
            ev |= CURL_CSELECT_OUT;
        if (r & POLLNVAL)
            ev |= CURL_CSELECT_ERR;
        act(m, m->ready[i].fd, ev);
    }
    timer_due(m);
}

int cerca_multi_run(cerca_multi *m, long timeout_ms)
{
    release_returned(m);
    if (own_multi(m) != 0)
        return 0;
    /* Transfers just added start here: adding one sets a timer of 0. */
    timer_due(m);
    if (m->running > 0)
        wait_and_act(m, timeout_ms < 0 ? 0 : timeout_ms > 60000 ? 60000 : timeout_ms);
    return m->running;
}

int cerca_multi_in_flight(const cerca_multi *m, long token)
{
    size_t i;
    for (i = 0; i < m->nslots; i++)
        if (m->slots[i]->busy && m->slots[i]->token == token)
            return 1;
    return 0;
}

int cerca_multi_next_done(cerca_multi *m, long *token, cerca_response *rs)
{
    CURLMsg *msg;
    int left;
    release_returned(m);
    if (m->pid != cerca_pid())
        forget_inherited(m);
    if (m->norphans > 0) {
        cerca_http_internal_error(rs, ORPHAN_MESSAGE);
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
    if (m->pid != cerca_pid())
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
    free(m->watched);
    free(m->ready);
    free(m->at);
    free(m);
}
