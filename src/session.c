/*
 * Sessions: one reused libcurl easy handle (http.c) as a Lua userdata.
 *
 *   core.new_session{ ca_file =, user_agent = }  -> session | nil, message
 *   session:request(request)                    -> response   (see lhttp.c)
 *   session:close()                             (idempotent; also __gc,
 *                                                and __close under 5.4)
 */
#include "core.h"

#define SESSION_MT "cerca.core.session"

typedef struct {
    cerca_http http;
    int open;
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

static int l_session_request(lua_State *L)
{
    session *s = check_session(L);
    cerca_request rq;
    const char *lines[16];
    cerca_response rs;
    int decode;
    luaL_checktype(L, 2, LUA_TTABLE);
    if (!s->open)
        return luaL_error(L, "request on a closed session");
    cerca_read_request(L, 2, &rq, &decode, lines, sizeof lines / sizeof *lines);
    cerca_http_perform(&s->http, &rq, &rs);
    cerca_push_response(L, &rs, decode);
    return 1;
}

static const luaL_Reg session_methods[] = {
    {"request", l_session_request},
    {"close", l_session_close},
    {NULL, NULL},
};

static const cerca_class session_class = {
    SESSION_MT, session_methods, l_session_close, l_session_tostring,
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
