/*
 * Sessions: one attempt at a time on a multi handle of their own (multi.c),
 * as a Lua userdata. The transfer is driven as a batch's are: one poll() on
 * the socket libcurl names, then that socket's work. curl_easy_perform
 * would make two more poll() calls per attempt (its own wake-up pipe at
 * the start, and the answer's socket once more before reading it), each a
 * system call of about a microsecond here. The easy handle, its header
 * list and the kept-alive connection are reused from one request to the
 * next.
 *
 *   core.new_session{ ca_file =, user_agent = }  -> session | nil, message
 *   session:request(request)                    -> response   (see lhttp.c)
 *   session:close()                             (idempotent; also __gc,
 *                                                and __close under 5.4)
 *
 * While a request runs, the session is busy: the answer is read from the
 * handle's buffers as it is made into Lua values, and any allocation there
 * may run a finalizer (`__gc`) that reaches this session. A request then
 * raises, and a close is done when the request is over.
 */
#include "core.h"
#include "multi.h"

#define SESSION_MT "cerca.core.session"

typedef struct {
    cerca_multi *m;
    long last_token; /* each attempt's own, so no answer is taken for another's */
    int open;
    int busy;          /* a request is under way */
    int close_pending; /* closed while busy: done when the request is over */
} session;

static session *check_session(lua_State *L)
{
    return (session *)luaL_checkudata(L, 1, SESSION_MT);
}

static int l_new_session(lua_State *L)
{
    const char *ca_file, *ua;
    session *s;
    cerca_read_handle_options(L, &ca_file, &ua);
    s = (session *)lua_newuserdata(L, sizeof *s);
    s->open = 0;
    s->m = NULL;
    s->last_token = 0;
    s->busy = 0;
    s->close_pending = 0;
    luaL_getmetatable(L, SESSION_MT);
    lua_setmetatable(L, -2);
    if ((s->m = cerca_multi_new(ca_file, ua)) == NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, "cannot initialise libcurl");
        return 2;
    }
    s->open = 1;
    return 1;
}

static void session_free(session *s)
{
    if (s->open) {
        cerca_multi_free(s->m);
        s->m = NULL;
        s->open = 0;
    }
    s->close_pending = 0;
}

/* close and __close: idempotent; put off while a request is under way. */
static int l_session_close(lua_State *L)
{
    session *s = check_session(L);
    if (s->busy)
        s->close_pending = 1;
    else
        session_free(s);
    return 0;
}

/* __gc: nothing can be under way on an unreachable session (a request that
 * raised, out of memory, left it marked busy). */
static int l_session_gc(lua_State *L)
{
    session *s = check_session(L);
    s->busy = 0;
    session_free(s);
    return 0;
}

static int l_session_tostring(lua_State *L)
{
    session *s = check_session(L);
    lua_pushfstring(L, "cerca.core.session (%s): %p", s->open ? "open" : "closed", (void *)s);
    return 1;
}

/* Runs one attempt to its end (its own timeouts bound it). rs stays
 * valid until the next call on the session's multi handle. Each attempt
 * has its own token: a transfer reported done under another (one in
 * flight when the process forked) is never taken for this one. */
static void perform(session *s, const cerca_request *rq, cerca_response *rs)
{
    long token = ++s->last_token, done;
    if (cerca_multi_add(s->m, token, rq, rs) != 0)
        return;
    for (;;) {
        cerca_multi_run(s->m, 60000);
        while (cerca_multi_next_done(s->m, &done, rs))
            if (done == token)
                return;
        if (!cerca_multi_in_flight(s->m, token)) {
            /* Neither in flight nor reported done (the process forked
             * while it ran, or libcurl lost it). */
            cerca_http_internal_error(rs, "the transfer was lost (libcurl reported no end)");
            return;
        }
    }
}

static int l_session_request(lua_State *L)
{
    session *s = check_session(L);
    cerca_request rq;
    const char *lines[16];
    cerca_response rs;
    int decode;
    luaL_checktype(L, 2, LUA_TTABLE);
    cerca_read_request(L, 2, &rq, &decode, lines, sizeof lines / sizeof *lines);
    /* (Checked after the read: a finalizer may have run in it.) */
    if (!s->open || s->close_pending)
        return luaL_error(L, "request on a closed session");
    if (s->busy)
        return luaL_error(L, "request on a session whose request is under way");
    s->busy = 1;
    perform(s, &rq, &rs);
    cerca_push_response(L, &rs, decode);
    s->busy = 0;
    if (s->close_pending)
        session_free(s);
    return 1;
}

static const luaL_Reg session_methods[] = {
    {"request", l_session_request},
    {"close", l_session_close},
    {NULL, NULL},
};

static const cerca_class session_class = {
    SESSION_MT, session_methods, l_session_close, l_session_tostring, l_session_gc,
};

static const luaL_Reg session_functions[] = {
    {"new_session", l_new_session},
    {NULL, NULL},
};

void cerca_session_open(lua_State *L, int module, int uv)
{
    cerca_set_functions(L, module, session_functions, uv, CERCA_NUP);
    cerca_register_class(L, &session_class, uv, CERCA_NUP);
}
