/*
 * cerca.core: the Lua face of the C core.
 *
 *   core.new_session{ ca_file =, user_agent = }  -> session | nil, message
 *   session:request{ method, url, headers, body, timeout_ms,
 *                    connect_timeout_ms, max_body, decode }    -> response
 *     response: status, headers (lower-case names), raw_headers, body,
 *               json | json_error, request_sent, error, error_message
 *   session:close()                                            (idempotent)
 *   core.new_multi{ ca_file =, user_agent = }    -> multi | nil, message
 *   multi:limit(n), multi:add(token, request), multi:close()
 *   multi:poll(timeout_ms) -> { { token =, response = }, ... }, running
 *   core.encode(value) -> json | nil, message
 *   core.webhook_signature(secret_b64, content) -> base64 HMAC-SHA256
 *   core.webhook_verify(secret_b64, content, candidates) -> boolean
 *   core.decode(json)  -> value | nil, message
 *   core.open_journal(path, max_bytes) -> journal | nil, message, kind
 *                      (journal.c: the command line's private --out file)
 *   core.empty_array, core.null, core.curl_version
 *
 * One attempt, no policy: retries, validation and error types live in Lua.
 * JSON goes through a private lua-cjson instance, so a user reconfiguring
 * the global cjson module cannot change what goes on the wire.
 */
#define _GNU_SOURCE /* memmem, clock_gettime, nanosleep */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "crypto.h"
#include "headers.h"
#include "http.h"
#include "journal.h"
#include "multi.h"

#define SESSION_MT "cerca.core.session"
#define MULTI_MT "cerca.core.multi"

/* The one symbol the module exports (everything else is hidden). */
#define CERCA_EXPORT __attribute__((visibility("default")))
CERCA_EXPORT int luaopen_cerca_core(lua_State *L);

/* Upvalues shared by the module's functions. */
#define UV_ENCODE 1
#define UV_DECODE 2
#define UV_EMPTY_ARRAY 3

/*
 * Debian's lua-cjson 2.1.0 encodes every empty table as {}. The empty-array
 * sentinel is a one-key table whose encoding cannot come from user data by
 * accident (the key holds NUL bytes); encode() rewrites it to [].
 */
#define EMPTY_ARRAY_KEY "\0cerca.empty_array\0"
static const char EMPTY_ARRAY_JSON[] = "{\"\\u0000cerca.empty_array\\u0000\":true}";

typedef struct {
    cerca_http http;
    int open;
} session;

static const char *const err_kind_names[] = {
    NULL, "connection", "timeout", "tls", "too_large", "url", "internal",
};

/* ---- JSON ------------------------------------------------------------ */

/* Calls the cjson.safe function in upvalue `uv` on the value at index 1.
 * Leaves result (or nil, message) on the stack and returns their count. */
static int call_cjson(lua_State *L, int uv)
{
    lua_settop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(uv));
    lua_insert(L, 1);
    if (lua_pcall(L, 1, 2, 0) != 0) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    if (lua_isnil(L, -2))
        return 2;
    lua_pop(L, 1);
    return 1;
}

static int l_encode(lua_State *L)
{
    size_t len, patlen = sizeof EMPTY_ARRAY_JSON - 1;
    const char *json, *p, *hit;
    luaL_Buffer b;
    luaL_checkany(L, 1);
    if (call_cjson(L, UV_ENCODE) == 2)
        return 2;
    json = lua_tolstring(L, -1, &len);
    hit = memmem(json, len, EMPTY_ARRAY_JSON, patlen);
    if (hit == NULL)
        return 1;
    luaL_buffinit(L, &b);
    for (p = json; hit != NULL; hit = memmem(p, len - (size_t)(p - json), EMPTY_ARRAY_JSON, patlen)) {
        luaL_addlstring(&b, p, (size_t)(hit - p));
        luaL_addlstring(&b, "[]", 2);
        p = hit + patlen;
    }
    luaL_addlstring(&b, p, len - (size_t)(p - json));
    luaL_pushresult(&b);
    return 1;
}

static int l_decode(lua_State *L)
{
    luaL_checkstring(L, 1);
    return call_cjson(L, UV_DECODE);
}

/* ---- session --------------------------------------------------------- */

static session *check_session(lua_State *L)
{
    return (session *)luaL_checkudata(L, 1, SESSION_MT);
}

/* The string at t[k] (NULL when absent). Only true strings are taken: a
 * number converted here would be a string nothing references once popped. */
static const char *string_field(lua_State *L, int t, const char *k, int required, size_t *len)
{
    const char *s = NULL;
    lua_getfield(L, t, k);
    if (lua_type(L, -1) == LUA_TSTRING)
        s = lua_tolstring(L, -1, len);
    else if (required || !lua_isnil(L, -1))
        luaL_error(L, "field '%s' must be a string", k);
    lua_pop(L, 1);
    return s;
}

static const char *opt_string_field(lua_State *L, int t, const char *k)
{
    return string_field(L, t, k, 0, NULL);
}

/* A positive number field, at most `max`; converted only once in range,
 * since a C cast of an out-of-range double is undefined. */
static lua_Number bounded_field(lua_State *L, int t, const char *k, lua_Number dflt,
                                lua_Number max)
{
    lua_Number n = dflt;
    lua_getfield(L, t, k);
    if (!lua_isnil(L, -1)) {
        if (!lua_isnumber(L, -1))
            luaL_error(L, "field '%s' must be a number", k);
        n = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    if (!(n >= 1)) /* also catches NaN */
        luaL_error(L, "field '%s' must be at least 1", k);
    return n > max ? max : n;
}

/* The options of new_session and new_multi: { ca_file =, user_agent = },
 * both optional. The strings stay owned by the table at index 1. */
static void read_handle_options(lua_State *L, const char **ca_file, const char **ua)
{
    *ca_file = *ua = NULL;
    if (lua_isnoneornil(L, 1))
        return;
    luaL_checktype(L, 1, LUA_TTABLE);
    *ca_file = opt_string_field(L, 1, "ca_file");
    *ua = opt_string_field(L, 1, "user_agent");
}

static int l_new_session(lua_State *L)
{
    const char *ca_file, *ua;
    session *s;
    read_handle_options(L, &ca_file, &ua);
    s = (session *)lua_newuserdata(L, sizeof *s);
    s->open = 0;
    luaL_getmetatable(L, SESSION_MT);
    lua_setmetatable(L, -2);
    if (cerca_http_init(&s->http, ca_file, ua) != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "cannot initialise libcurl");
        return 2;
    }
    s->open = 1;
    return 1;
}

/* close, __gc and __close: one idempotent function. */
static int l_session_close(lua_State *L)
{
    session *s = check_session(L);
    if (s->open) {
        cerca_http_cleanup(&s->http);
        s->open = 0;
    }
    return 0;
}

static int l_session_tostring(lua_State *L)
{
    session *s = check_session(L);
    lua_pushfstring(L, "cerca.core.session (%s): %p", s->open ? "open" : "closed", (void *)s);
    return 1;
}

/* Adds one header to the table on top of the stack: lower-case name;
 * repeated fields joined with ", " as RFC 9110 allows. */
static int add_header_field(void *ud, const char *name, size_t nlen, const char *value, size_t vlen)
{
    lua_State *L = ud;
    luaL_Buffer b;
    size_t i;
    luaL_buffinit(L, &b);
    for (i = 0; i < nlen; i++)
        luaL_addchar(&b, (char)tolower((unsigned char)name[i]));
    luaL_pushresult(&b);
    lua_pushvalue(L, -1);
    lua_rawget(L, -3);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushlstring(L, value, vlen);
    } else {
        lua_pushliteral(L, ", ");
        lua_pushlstring(L, value, vlen);
        lua_concat(L, 3);
    }
    lua_rawset(L, -3);
    return 0;
}

static void push_headers(lua_State *L, const char *block, size_t len)
{
    lua_newtable(L);
    cerca_headers_parse(block, len, add_header_field, L);
}

/* Reads the request table at index t into rq. The strings stay owned by
 * that table: it must stay alive (on the stack, or anchored) while the
 * transfer runs. Leaves one value (the header pointer array) on the stack. */
static void read_request(lua_State *L, int t, cerca_request *rq, int *decode)
{
    const char **lines;
    size_t i, n;
    luaL_checktype(L, t, LUA_TTABLE);
    memset(rq, 0, sizeof *rq);
    rq->method = string_field(L, t, "method", 1, NULL);
    rq->url = string_field(L, t, "url", 1, NULL);
    rq->body = string_field(L, t, "body", 0, &rq->body_len);
    /* Loopback plain-http calls never go through a proxy: the key would
     * cross the network in clear text. */
    lua_getfield(L, t, "no_proxy");
    rq->no_proxy = lua_toboolean(L, -1);
    lua_pop(L, 1);
    /* Longer than ~24 days is "no practical limit"; libcurl takes a long. */
    rq->timeout_ms = (long)bounded_field(L, t, "timeout_ms", 60000, 2147483647.0);
    rq->connect_timeout_ms = (long)bounded_field(L, t, "connect_timeout_ms", 10000, 2147483647.0);
    rq->max_body = (size_t)bounded_field(L, t, "max_body", 1024 * 1024, 2147483647.0);
    /* decode = false: leave the JSON to the caller (the OpenResty adapter
     * decodes in the request's own Lua VM, not the worker thread's). */
    lua_getfield(L, t, "decode");
    *decode = lua_isnil(L, -1) || lua_toboolean(L, -1);
    lua_pop(L, 1);

    lua_getfield(L, t, "headers");
    n = lua_istable(L, -1) ? cerca_rawlen(L, -1) : 0;
    lines = (const char **)lua_newuserdata(L, (n ? n : 1) * sizeof *lines);
    for (i = 0; i < n; i++) {
        lua_rawgeti(L, -2, (int)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "headers[%d] must be a string", (int)i + 1);
        lines[i] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    lua_remove(L, -2); /* the headers table; its strings live in the request */
    rq->headers = lines;
    rq->nheaders = n;
}

/* Pushes the response table of one attempt. */
static void push_response(lua_State *L, const cerca_response *rs, int decode)
{
    int res;
    lua_createtable(L, 0, 10);
    res = lua_gettop(L);
    lua_pushinteger(L, (lua_Integer)rs->status);
    lua_setfield(L, res, "status");
    push_headers(L, rs->headers, rs->headers_len);
    lua_setfield(L, res, "headers");
    /* The block as received: one string in which Lua can look for an echo
     * of a secret at once, instead of header by header. */
    lua_pushlstring(L, rs->headers, rs->headers_len);
    lua_setfield(L, res, "raw_headers");
    lua_pushlstring(L, rs->body, rs->body_len);
    lua_setfield(L, res, "body");
    lua_pushnumber(L, rs->total_time);
    lua_setfield(L, res, "time");
    lua_pushinteger(L, (lua_Integer)rs->new_connects);
    lua_setfield(L, res, "new_connects");
    /* Whether request bytes reached a socket: if so, the server may have
     * acted on the request, whatever came back. */
    lua_pushboolean(L, rs->request_sent);
    lua_setfield(L, res, "request_sent");
    if (rs->err != CERCA_OK) {
        lua_pushstring(L, err_kind_names[rs->err]);
        lua_setfield(L, res, "error");
        lua_pushstring(L, rs->err_message);
        lua_setfield(L, res, "error_message");
        lua_pushinteger(L, rs->curl_code);
        lua_setfield(L, res, "curl_code");
    } else if (rs->body_len > 0 && decode) {
        /* decode(body) -> value | nil, message */
        lua_pushvalue(L, lua_upvalueindex(UV_DECODE));
        lua_pushlstring(L, rs->body, rs->body_len);
        if (lua_pcall(L, 1, 2, 0) != 0) {
            lua_setfield(L, res, "json_error");
        } else if (lua_isnil(L, -2)) {
            lua_setfield(L, res, "json_error");
            lua_pop(L, 1);
        } else {
            lua_pop(L, 1);
            lua_setfield(L, res, "json");
        }
    }
}

static int l_session_request(lua_State *L)
{
    session *s = check_session(L);
    cerca_request rq;
    cerca_response rs;
    int decode;
    luaL_checktype(L, 2, LUA_TTABLE);
    if (!s->open)
        return luaL_error(L, "request on a closed session");
    read_request(L, 2, &rq, &decode);
    cerca_http_perform(&s->http, &rq, &rs);
    push_response(L, &rs, decode);
    return 1;
}

/* ---- multi: concurrent attempts -------------------------------------- */

typedef struct {
    cerca_multi *m;
    int anchors; /* registry ref of token -> request table (keeps bodies alive) */
} multi;

static multi *check_multi(lua_State *L)
{
    return (multi *)luaL_checkudata(L, 1, MULTI_MT);
}

/* new_multi{ ca_file =, user_agent = } -> multi | nil, message */
static int l_new_multi(lua_State *L)
{
    const char *ca_file, *ua;
    multi *mu;
    read_handle_options(L, &ca_file, &ua);
    mu = (multi *)lua_newuserdata(L, sizeof *mu);
    mu->m = NULL;
    mu->anchors = LUA_NOREF;
    luaL_getmetatable(L, MULTI_MT);
    lua_setmetatable(L, -2);
    mu->m = cerca_multi_new(ca_file, ua);
    if (mu->m == NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, "cannot initialise libcurl");
        return 2;
    }
    lua_newtable(L);
    mu->anchors = luaL_ref(L, LUA_REGISTRYINDEX);
    return 1;
}

static multi *check_open_multi(lua_State *L)
{
    multi *mu = check_multi(L);
    if (mu->m == NULL)
        luaL_error(L, "use of a closed multi");
    return mu;
}

/* multi:limit(max_connections) */
static int l_multi_limit(lua_State *L)
{
    multi *mu = check_open_multi(L);
    lua_Number n = luaL_checknumber(L, 2);
    luaL_argcheck(L, n >= 1 && n <= 100000, 2, "must be from 1 to 100000");
    cerca_multi_limit(mu->m, (long)n);
    return 0;
}

/* multi:add(token, request) -> true | nil, message */
static int l_multi_add(lua_State *L)
{
    multi *mu = check_open_multi(L);
    lua_Integer token = luaL_checkinteger(L, 2);
    cerca_request rq;
    int decode, anchors;
    read_request(L, 3, &rq, &decode);
    lua_rawgeti(L, LUA_REGISTRYINDEX, mu->anchors);
    anchors = lua_gettop(L);
    lua_rawgeti(L, anchors, (int)token);
    if (!lua_isnil(L, -1))
        return luaL_error(L, "token %d is already in flight", (int)token);
    lua_pop(L, 1);
    /* Anchored first: libcurl reads the body from the request's string. */
    lua_pushvalue(L, 3);
    lua_rawseti(L, anchors, (int)token);
    if (cerca_multi_add(mu->m, (long)token, &rq) != 0) {
        lua_pushnil(L);
        lua_rawseti(L, anchors, (int)token);
        lua_pushnil(L);
        lua_pushliteral(L, "cannot start the transfer (out of memory)");
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* multi:poll(timeout_ms) -> { { token =, response = }, ... }, running */
static int l_multi_poll(lua_State *L)
{
    multi *mu = check_open_multi(L);
    lua_Number timeout = luaL_optnumber(L, 2, 0);
    cerca_response rs;
    long token;
    int running, n = 0, anchors, list;
    running = cerca_multi_run(mu->m, timeout > 0 ? (long)(timeout > 60000 ? 60000 : timeout) : 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, mu->anchors);
    anchors = lua_gettop(L);
    lua_newtable(L);
    list = lua_gettop(L);
    while (cerca_multi_next_done(mu->m, &token, &rs)) {
        int decode = 1;
        lua_rawgeti(L, anchors, (int)token);
        if (lua_istable(L, -1)) {
            lua_getfield(L, -1, "decode");
            decode = lua_isnil(L, -1) || lua_toboolean(L, -1);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        lua_pushnil(L);
        lua_rawseti(L, anchors, (int)token);
        lua_createtable(L, 0, 2);
        lua_pushinteger(L, (lua_Integer)token);
        lua_setfield(L, -2, "token");
        push_response(L, &rs, decode);
        lua_setfield(L, -2, "response");
        lua_rawseti(L, list, ++n);
    }
    lua_pushinteger(L, running);
    return 2;
}

/* close and __gc: one idempotent function. */
static int l_multi_close(lua_State *L)
{
    multi *mu = check_multi(L);
    if (mu->m != NULL) {
        cerca_multi_free(mu->m);
        mu->m = NULL;
    }
    if (mu->anchors != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, mu->anchors);
        mu->anchors = LUA_NOREF;
    }
    return 0;
}

/* ---- clock and randomness ------------------------------------------- */

/* Seconds on a monotonic clock: for timeouts and deadlines, immune to
 * changes of the wall clock. */
static int l_monotime(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* Blocks the calling thread; the OpenResty adapter replaces it with ngx.sleep. */
static int l_sleep(lua_State *L)
{
    lua_Number s = luaL_checknumber(L, 1);
    struct timespec ts;
    if (!(s > 0))
        return 0;
    if (s > 86400)
        s = 86400;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (lua_Number)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return 0;
}

/* isatty(fd): whether standard output (1) or error (2) is a terminal, for
 * the command line's colours and progress bar. */
static int l_isatty(lua_State *L)
{
    lua_Integer fd = luaL_checkinteger(L, 1);
    luaL_argcheck(L, fd >= 0 && fd <= 2, 1, "0, 1 or 2");
    lua_pushboolean(L, isatty((int)fd));
    return 1;
}

/* ignore_sigpipe(): a write to a closed pipe then fails with EPIPE, which
 * the command line can report (and rescue its output from), instead of the
 * process dying silently with the secrets it was printing. */
static int l_ignore_sigpipe(lua_State *L)
{
    (void)L;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static int l_uuid4(lua_State *L)
{
    char id[CERCA_UUID_LEN + 1];
    if (cerca_uuid4(id) != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "the random generator failed");
        return 2;
    }
    lua_pushlstring(L, id, CERCA_UUID_LEN);
    return 1;
}

/* ---- webhook signatures (Standard Webhooks v1) ----------------------- */

#define MAX_KEY_BYTES 1024

/* Decodes the base64 secret at index 1 (prefix already removed) and MACs
 * the content at index 2. Returns 0, or -1 when the secret is unusable. */
static int mac_of(lua_State *L, unsigned char mac[CERCA_MAC_LEN])
{
    size_t secret_len, content_len;
    const char *secret = luaL_checklstring(L, 1, &secret_len);
    const char *content = luaL_checklstring(L, 2, &content_len);
    unsigned char key[MAX_KEY_BYTES];
    long key_len = cerca_base64_decode(secret, secret_len, key, sizeof key);
    int rc = -1;
    if (key_len > 0)
        rc = cerca_hmac_sha256(key, (size_t)key_len, content, content_len, mac);
    cerca_cleanse(key, sizeof key);
    return rc;
}

/* webhook_signature(secret_b64, content) -> base64 MAC | nil, "invalid_secret" */
static int l_webhook_signature(lua_State *L)
{
    unsigned char mac[CERCA_MAC_LEN];
    char b64[CERCA_MAC_B64_LEN + 1];
    if (mac_of(L, mac) != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "invalid_secret");
        return 2;
    }
    cerca_base64_encode(mac, sizeof mac, b64);
    lua_pushlstring(L, b64, CERCA_MAC_B64_LEN);
    return 1;
}

/* webhook_verify(secret_b64, content, { base64 MAC, ... })
 *   -> true | false | nil, "invalid_secret"
 * Each candidate is decoded strictly and compared in constant time; one
 * that is not base64 of exactly 32 bytes never matches. */
static int l_webhook_verify(lua_State *L)
{
    unsigned char mac[CERCA_MAC_LEN], candidate[CERCA_MAC_LEN + 3];
    size_t i, n;
    int found = 0;
    luaL_checktype(L, 3, LUA_TTABLE);
    if (mac_of(L, mac) != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "invalid_secret");
        return 2;
    }
    n = cerca_rawlen(L, 3);
    for (i = 1; i <= n && !found; i++) {
        size_t len;
        const char *text;
        lua_rawgeti(L, 3, (int)i);
        text = lua_tolstring(L, -1, &len);
        if (text != NULL &&
            cerca_base64_decode(text, len, candidate, sizeof candidate) == CERCA_MAC_LEN)
            found = cerca_mac_equal(mac, candidate);
        lua_pop(L, 1);
    }
    lua_pushboolean(L, found);
    return 1;
}

/* ---- module ---------------------------------------------------------- */

static const luaL_Reg session_methods[] = {
    {"request", l_session_request},
    {"close", l_session_close},
    {NULL, NULL},
};

static const luaL_Reg multi_methods[] = {
    {"limit", l_multi_limit},
    {"add", l_multi_add},
    {"poll", l_multi_poll},
    {"close", l_multi_close},
    {NULL, NULL},
};

static const cerca_class session_class = {
    SESSION_MT, session_methods, l_session_close, l_session_tostring,
};

static const cerca_class multi_class = {
    MULTI_MT, multi_methods, l_multi_close, NULL,
};

static const luaL_Reg module_functions[] = {
    {"new_session", l_new_session},
    {"new_multi", l_new_multi},
    {"encode", l_encode},
    {"decode", l_decode},
    {"monotime", l_monotime},
    {"sleep", l_sleep},
    {"uuid4", l_uuid4},
    {"isatty", l_isatty},
    {"ignore_sigpipe", l_ignore_sigpipe},
    {"webhook_signature", l_webhook_signature},
    {"webhook_verify", l_webhook_verify},
    {NULL, NULL},
};

/* Pushes cjson.safe.new() configured for the wire; raises if missing. */
static void push_cjson(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson.safe");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "new");
    lua_call(L, 0, 1);
    lua_remove(L, -2);
    /* Reject NaN, Infinity and hex numbers in answers: not JSON. */
    lua_getfield(L, -1, "decode_invalid_numbers");
    lua_pushboolean(L, 0);
    lua_call(L, 1, 0);
    /* Bound recursion on hostile input. */
    lua_getfield(L, -1, "decode_max_depth");
    lua_pushinteger(L, 128);
    lua_call(L, 1, 0);
}

/* Pushes the empty-array sentinel. */
static void push_empty_array(lua_State *L)
{
    lua_createtable(L, 0, 1);
    lua_pushlstring(L, EMPTY_ARRAY_KEY, sizeof EMPTY_ARRAY_KEY - 1);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
}

/* ---- registration ---------------------------------------------------- */

void cerca_set_functions(lua_State *L, int t, const luaL_Reg *l, int uv, int nup)
{
    int i;
    lua_pushvalue(L, t);
    for (i = 0; i < nup; i++)
        lua_pushvalue(L, uv + i);
    cerca_setfuncs(L, l, nup);
    lua_pop(L, 1);
}

void cerca_register_class(lua_State *L, const cerca_class *c, int uv, int nup)
{
    luaL_newmetatable(L, c->name);
    lua_newtable(L);
    cerca_set_functions(L, lua_gettop(L), c->methods, uv, nup);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, c->close);
    lua_setfield(L, -2, "__gc");
    cerca_set_close(L, c->close);
    if (c->tostring != NULL) {
        lua_pushcfunction(L, c->tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
}

int luaopen_cerca_core(lua_State *L)
{
    int m, cjson, uv;
    if (cerca_http_global_init() != 0)
        return luaL_error(L, "cerca.core: curl_global_init failed");

    lua_newtable(L);
    m = lua_gettop(L);
    push_cjson(L);
    cjson = lua_gettop(L);
    lua_getfield(L, cjson, "encode"); /* uv + 0 */
    uv = lua_gettop(L);
    lua_getfield(L, cjson, "decode"); /* uv + 1 */
    push_empty_array(L);              /* uv + 2 */

    cerca_set_functions(L, m, module_functions, uv, 3);
    lua_pushvalue(L, uv + 2);
    lua_setfield(L, m, "empty_array");
    lua_getfield(L, cjson, "null");
    lua_setfield(L, m, "null");
    lua_pushstring(L, curl_version_info(CURLVERSION_NOW)->version);
    lua_setfield(L, m, "curl_version");

    cerca_register_class(L, &session_class, uv, 3);
    cerca_register_class(L, &multi_class, uv, 3);
    cerca_journal_register(L, m);

    lua_settop(L, m);
    return 1;
}
