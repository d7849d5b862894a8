/*
 * One place for the differences between the Lua C APIs we build against:
 * Lua 5.4 and the 5.1 API of LuaJIT (OpenResty's branch included).
 */
#ifndef CERCA_COMPAT_H
#define CERCA_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

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

#endif
