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

/* Writes the number at idx into text digit for digit, returning
 * snprintf's count, when it is an integer (Lua 5.3 on: only a number
 * beyond 2^53 needs this, where doubles skip integers); 0 when it is a
 * float, or Lua has no integers (5.1, 5.2, LuaJIT). */
static inline int cerca_wide_integer_text(lua_State *L, int idx, char *text, size_t size)
{
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(L, idx))
        return snprintf(text, size, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
#else
    (void)L;
    (void)idx;
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
