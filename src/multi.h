/*
 * Concurrent attempts over the curl multi interface: many cerca_http
 * transfers at once, sharing one connection cache (kept-alive connections,
 * HTTP/2 multiplexing when the server offers it), bounded in connections.
 * No Lua in here either; policy (what to retry, when) stays with the caller.
 */
#ifndef CERCA_MULTI_H
#define CERCA_MULTI_H

#include "http.h"

typedef struct cerca_multi cerca_multi;

/* NULL when libcurl cannot be set up. */
cerca_multi *cerca_multi_new(const char *ca_file, const char *user_agent);

/* Caps the connections open at once (and so the transfers in flight). */
void cerca_multi_limit(cerca_multi *m, long max_connections);

/* Starts one attempt; `token` names it in cerca_multi_next_done. The
 * request's body must stay valid until that transfer is reported done.
 * Returns 0, or -1 when it could not be started: then `failed` says why
 * (nothing was sent; valid until the next call of any cerca_multi
 * function). */
int cerca_multi_add(cerca_multi *m, long token, const cerca_request *rq, cerca_response *failed);

/* Moves the transfers along, waiting at most timeout_ms for activity.
 * Returns the number still running. */
int cerca_multi_run(cerca_multi *m, long timeout_ms);

/* Whether the transfer named `token` is still in flight (not yet taken by
 * cerca_multi_next_done). */
int cerca_multi_in_flight(const cerca_multi *m, long token);

/* Takes one finished transfer: 1 and fills token and rs (valid until the
 * next call of any cerca_multi function), or 0 when none is pending. */
int cerca_multi_next_done(cerca_multi *m, long *token, cerca_response *rs);

/* The sockets watched now (each once, whatever libcurl told in what
 * order): none once no transfer is in flight. */
size_t cerca_multi_watching(const cerca_multi *m);

/* Stops every transfer and frees everything; m may be NULL. */
void cerca_multi_free(cerca_multi *m);

#endif
