/*
 * One place for the differences between the Lua C APIs we build against:
 * Lua 5.1 to 5.4, and the 5.1 API of LuaJIT (OpenResty's branch included).
 * No other file tests a Lua version.
 */
#ifndef CERCA_COMPAT_H
#define CERCA_COMPAT_H

#include <lua.h>
#include <lauxlib.h>
#include <stdio.h>

#if LUA_VERSION_NUM < 502

/* LuaJIT 2.1 already ships luaL_setfuncs in its 5.2 API subset only when
 * built with LUAJIT_ENABLE_LUA52COMPAT; do not rely on it. */
static inline void cerca_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
    luaL_checkstack(L, nup, "too many upvalues");
    for (; l->name != NULL; l++) {
        int i;
        for (i = 0; i < nup; i++)
            lua_pushvalue(L, -nup);
        lua_pushcclosure(L, l->func, nup);
        lua_setfield(L, -(nup + 2), l->name);
    }
    lua_pop(L, nup);
}

#define cerca_rawlen(L, i) lua_objlen((L), (i))

#else

#define cerca_setfuncs(L, l, nup) luaL_setfuncs((L), (l), (nup))
#define cerca_rawlen(L, i) lua_rawlen((L), (i))

#endif

/* When the number at idx is an integer that no double holds exactly (Lua
 * 5.3 on, beyond 2^53; d is it rounded to a double), writes it into text
 * digit for digit and returns snprintf's count; else 0 (a float, an
 * integer d is exactly, or a Lua without integers: 5.1, 5.2, LuaJIT). */
static inline int cerca_inexact_integer_text(lua_State *L, int idx, double d, char *text, size_t size)
{
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(L, idx)) {
        lua_Integer i = lua_tointeger(L, idx);
        if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0 && (lua_Integer)d == i))
            return snprintf(text, size, LUA_INTEGER_FMT, (LUAI_UACINT)i);
    }
#else
    (void)L;
    (void)idx;
    (void)d;
    (void)text;
    (void)size;
#endif
    return 0;
}

/* Sets f as the __close metamethod of the table on top of the stack, where
 * Lua has to-be-closed variables (5.4 on); nothing before. */
static inline void cerca_set_close(lua_State *L, lua_CFunction f)
{
#if LUA_VERSION_NUM >= 504
    lua_pushcfunction(L, f);
    lua_setfield(L, -2, "__close");
#else
    (void)L;
    (void)f;
#endif
}

#endif
