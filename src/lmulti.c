/*
 * Concurrent attempts: the curl multi layer (multi.c) as a Lua userdata.
 *
 *   core.new_multi{ ca_file =, user_agent = }   -> multi | nil, message
 *   multi:limit(max_connections)
 *   multi:add(token, request)                  -> true | nil, message
 *   multi:poll(timeout_ms) -> { { token =, response = }, ... }, running
 *   multi:watching()                          -> sockets watched now
 *   multi:close()                              (idempotent; also __gc,
 *                                               and __close under 5.4)
 *
 * While add or poll runs, the handle is busy: poll reads each answer from
 * the handle's buffers as it makes it into Lua values, and any allocation
 * may run a finalizer (`__gc`) that reaches this handle. A call on it then
 * raises, and a close is done when the call is over.
 *
 * Requests and responses are those of sessions (lhttp.c). A request's body
 * string stays anchored, by its token, until its transfer is reported
 * done: it is what libcurl reads, whatever becomes of the request table
 * meanwhile. Whether the answer is decoded is read once, at add.
 */
#include <limits.h>
#include <stdio.h>

#include "core.h"
#include "multi.h"

#define MULTI_MT "cerca.core.multi"

typedef struct {
    cerca_multi *m;
    int anchors; /* registry ref of token -> its body string (true without
                  * one), and -token -> true when its answer is not decoded */
    int busy;          /* an add or a poll is under way */
    int close_pending; /* closed while busy: done when it is over */
} multi;

static multi *check_multi(lua_State *L)
{
    return (multi *)luaL_checkudata(L, 1, MULTI_MT);
}

static int l_new_multi(lua_State *L)
{
    const char *ca_file, *ua;
    multi *mu;
    cerca_read_handle_options(L, &ca_file, &ua);
    mu = (multi *)lua_newuserdata(L, sizeof *mu);
    mu->m = NULL;
    mu->anchors = LUA_NOREF;
    mu->busy = 0;
    mu->close_pending = 0;
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

static void multi_free(lua_State *L, multi *mu)
{
    if (mu->m != NULL) {
        cerca_multi_free(mu->m);
        mu->m = NULL;
    }
    if (mu->anchors != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, mu->anchors);
        mu->anchors = LUA_NOREF;
    }
    mu->close_pending = 0;
}

/* The end of an add or a poll: a close asked for meanwhile is done. */
static void done_with(lua_State *L, multi *mu)
{
    mu->busy = 0;
    if (mu->close_pending)
        multi_free(L, mu);
}

static multi *check_open_multi(lua_State *L)
{
    multi *mu = check_multi(L);
    if (mu->m == NULL || mu->close_pending)
        luaL_error(L, "use of a closed multi");
    if (mu->busy)
        luaL_error(L, "use of a multi whose add or poll is under way");
    return mu;
}

static int l_multi_limit(lua_State *L)
{
    multi *mu = check_open_multi(L);
    lua_Number n = luaL_checknumber(L, 2);
    luaL_argcheck(L, n >= 1 && n <= 100000, 2, "must be from 1 to 100000");
    cerca_multi_limit(mu->m, (long)n);
    return 0;
}

/* Lets go of what the anchor table at index `anchors` holds for `token`;
 * returns whether its answer is decoded. */
static int release(lua_State *L, int anchors, int token)
{
    int decode;
    lua_pushnil(L);
    lua_rawseti(L, anchors, token);
    lua_rawgeti(L, anchors, -token);
    decode = lua_isnil(L, -1);
    lua_pop(L, 1);
    if (!decode) {
        lua_pushnil(L);
        lua_rawseti(L, anchors, -token);
    }
    return decode;
}

static int l_multi_add(lua_State *L)
{
    multi *mu = check_open_multi(L);
    /* (A key of the anchor table, and a long of multi.c's.) */
    lua_Integer token = cerca_check_whole(L, 2, 1, INT_MAX);
    cerca_request rq;
    const char *lines[16];
    cerca_response failed;
    int decode, anchors, body;
    body = cerca_read_request(L, 3, &rq, &decode, lines, sizeof lines / sizeof *lines);
    /* (Checked again after the read: a finalizer may have run in it.) */
    check_open_multi(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, mu->anchors);
    anchors = lua_gettop(L);
    lua_rawgeti(L, anchors, (int)token);
    if (!lua_isnil(L, -1))
        return luaL_error(L, "token %d is already in flight", (int)token);
    lua_pop(L, 1);
    mu->busy = 1;
    /* Anchored first: libcurl reads the body from this very string. */
    if (lua_isnil(L, body))
        lua_pushboolean(L, 1);
    else
        lua_pushvalue(L, body);
    lua_rawseti(L, anchors, (int)token);
    if (!decode) {
        lua_pushboolean(L, 1);
        lua_rawseti(L, anchors, -(int)token);
    }
    if (cerca_multi_add(mu->m, (long)token, &rq, &failed) != 0) {
        /* The message points into the handle: copied, so that the handle
         * is done with before anything is allocated (a finalizer that
         * raises there would otherwise leave it busy for good). */
        char why[CURL_ERROR_SIZE + 64];
        snprintf(why, sizeof why, "%s", failed.err_message != NULL ? failed.err_message : "");
        release(L, anchors, (int)token);
        done_with(L, mu);
        lua_pushnil(L);
        lua_pushstring(L, why);
        return 2;
    }
    lua_pushboolean(L, 1);
    done_with(L, mu);
    return 1;
}

static int l_multi_poll(lua_State *L)
{
    multi *mu = check_open_multi(L);
    lua_Number timeout = luaL_optnumber(L, 2, 0);
    cerca_response rs;
    long token;
    int running, n = 0, anchors, list;
    mu->busy = 1;
    running = cerca_multi_run(mu->m, timeout > 0 ? (long)(timeout > 60000 ? 60000 : timeout) : 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, mu->anchors);
    anchors = lua_gettop(L);
    lua_newtable(L);
    list = lua_gettop(L);
    while (cerca_multi_next_done(mu->m, &token, &rs)) {
        /* The transfer is over: libcurl no longer reads its body. */
        int decode = release(L, anchors, (int)token);
        lua_createtable(L, 0, 2);
        cerca_push_name(L, CERCA_NAMES, CERCA_NAME_TOKEN);
        lua_pushinteger(L, (lua_Integer)token);
        lua_rawset(L, -3);
        cerca_push_name(L, CERCA_NAMES, CERCA_NAME_RESPONSE);
        cerca_push_response(L, &rs, decode);
        lua_rawset(L, -3);
        lua_rawseti(L, list, ++n);
    }
    lua_pushinteger(L, running);
    done_with(L, mu);
    return 2;
}

/* close and __close: idempotent; put off while an add or a poll is under
 * way. */
static int l_multi_close(lua_State *L)
{
    multi *mu = check_multi(L);
    if (mu->busy)
        mu->close_pending = 1;
    else
        multi_free(L, mu);
    return 0;
}

/* __gc: nothing can be under way on an unreachable handle (a call that
 * raised, out of memory, left it marked busy). */
static int l_multi_gc(lua_State *L)
{
    multi *mu = check_multi(L);
    mu->busy = 0;
    multi_free(L, mu);
    return 0;
}

/* How many sockets the handle watches: for the specs, which check that a
 * socket is watched once and no longer than libcurl uses it. */
static int l_multi_watching(lua_State *L)
{
    multi *mu = check_open_multi(L);
    lua_pushinteger(L, (lua_Integer)cerca_multi_watching(mu->m));
    return 1;
}

static const luaL_Reg multi_methods[] = {
    {"limit", l_multi_limit},
    {"add", l_multi_add},
    {"poll", l_multi_poll},
    {"watching", l_multi_watching},
    {"close", l_multi_close},
    {NULL, NULL},
};

static const cerca_class multi_class = {
    MULTI_MT, multi_methods, l_multi_close, NULL, l_multi_gc,
};

static const luaL_Reg multi_functions[] = {
    {"new_multi", l_new_multi},
    {NULL, NULL},
};

void cerca_lmulti_open(lua_State *L, int module, int uv)
{
    cerca_set_functions(L, module, multi_functions, uv, CERCA_NUP);
    cerca_register_class(L, &multi_class, uv, CERCA_NUP);
}
