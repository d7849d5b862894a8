/*
 * cerca.core: the Lua face of the C core. This file makes the module,
 * bridges JSON, and holds the registration helpers of core.h; each concern
 * lives in a file of its own (listed in core.h) that documents its part:
 *
 *   core.encode(value) -> json | nil, message
 *   core.decode(json)  -> value | nil, message
 *   core.decode_response(res) -> res, its body decoded (see lhttp.c)
 *   core.encode_canonical(value, array_mt) -> json | nil (see jencode.c)
 *   core.empty_array, core.null
 *
 * One attempt, no policy: retries, validation and error types live in Lua.
 * JSON goes through a private lua-cjson instance, so a user reconfiguring
 * the global cjson module cannot change what goes on the wire.
 */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <string.h>

#include "core.h"

/* The one symbol the module exports (everything else is hidden). */
#define CERCA_EXPORT __attribute__((visibility("default")))
CERCA_EXPORT int luaopen_cerca_core(lua_State *L);

/*
 * Debian's lua-cjson 2.1.0 encodes every empty table as {}. The empty-array
 * sentinel is a one-key table whose encoding cannot come from user data by
 * accident (the key holds NUL bytes); encode() rewrites it to [].
 */
#define EMPTY_ARRAY_KEY "\0cerca.empty_array\0"
static const char EMPTY_ARRAY_JSON[] = "{\"\\u0000cerca.empty_array\\u0000\":true}";

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
    if (call_cjson(L, CERCA_UV_ENCODE) == 2)
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

/* The decode function every part of the core uses (CERCA_UV_DECODE): the
 * fast path (jdecode.c), else lua-cjson's decode, its first upvalue (the
 * second is the table of names). */
static int wire_decode(lua_State *L)
{
    size_t len;
    const char *text = lua_tolstring(L, 1, &len);
    if (text != NULL && cerca_json_decode_fast(L, text, len, lua_upvalueindex(2)))
        return 1;
    lua_settop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 1, LUA_MULTRET);
    return lua_gettop(L);
}

static int l_decode(lua_State *L)
{
    luaL_checkstring(L, 1);
    return call_cjson(L, CERCA_UV_DECODE);
}

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
    lua_pushinteger(L, CERCA_MAX_DECODE_DEPTH);
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

static const luaL_Reg json_functions[] = {
    {"encode", l_encode},
    {"decode", l_decode},
    {"decode_response", cerca_decode_response},
    {"encode_canonical", cerca_encode_canonical},
    {"number_text", cerca_l_number_text},
    {NULL, NULL},
};

/* ---- arguments ------------------------------------------------------- */

lua_Integer cerca_check_whole(lua_State *L, int arg, lua_Integer min, lua_Integer max)
{
    lua_Number n = luaL_checknumber(L, arg);
    /* (NaN fails both comparisons.) */
    if (!(n >= (lua_Number)min && n <= (lua_Number)max) || n != (lua_Number)(lua_Integer)n) {
        char range[80];
        snprintf(range, sizeof range, "must be a whole number from %lld to %lld", (long long)min,
                 (long long)max);
        luaL_argerror(L, arg, range);
    }
    return (lua_Integer)n;
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
    lua_pushcfunction(L, c->gc != NULL ? c->gc : c->close);
    lua_setfield(L, -2, "__gc");
    cerca_set_close(L, c->close);
    if (c->tostring != NULL) {
        lua_pushcfunction(L, c->tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
}

/* ---- module ---------------------------------------------------------- */

int luaopen_cerca_core(lua_State *L)
{
    int m, cjson, names, uv;
    if (cerca_http_global_init() != 0)
        return luaL_error(L, "cerca.core: curl_global_init failed");

    lua_newtable(L);
    m = lua_gettop(L);
    push_cjson(L);
    cjson = lua_gettop(L);
    cerca_push_names(L);
    names = lua_gettop(L);
    /* The CERCA_NUP shared values, at uv .. uv + 3 in the order of CERCA_UV_*. */
    lua_getfield(L, cjson, "encode");
    uv = lua_gettop(L);
    lua_getfield(L, cjson, "decode");
    lua_pushvalue(L, names);
    lua_pushcclosure(L, wire_decode, 2);
    push_empty_array(L);
    lua_pushvalue(L, names);

    cerca_set_functions(L, m, json_functions, uv, CERCA_NUP);
    lua_pushvalue(L, uv + CERCA_UV_EMPTY_ARRAY - 1);
    lua_setfield(L, m, "empty_array");
    lua_getfield(L, cjson, "null");
    lua_setfield(L, m, "null");
    lua_pushinteger(L, CERCA_MAX_DECODE_DEPTH);
    lua_setfield(L, m, "MAX_DECODE_DEPTH");

    cerca_session_open(L, m, uv);
    cerca_lmulti_open(L, m, uv);
    cerca_sys_open(L, m);
    cerca_lcrypto_open(L, m);
    cerca_text_open(L, m);
    cerca_headers_open(L, m);
    cerca_walk_open(L, m);
    cerca_journal_open(L, m);

    lua_settop(L, m);
    return 1;
}
