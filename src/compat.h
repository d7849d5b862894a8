/*
 * One place for the differences between the Lua C APIs we build against:
 * Lua 5.4 and the 5.1 API of LuaJIT (OpenResty's branch included).
 */
#ifndef CERCA_COMPAT_H
#define CERCA_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502

/* LuaJIT 2.1 already ships luaL_setfuncs/luaL_testudata in its 5.2 API
 * subset only when built with LUAJIT_ENABLE_LUA52COMPAT; do not rely on it. */
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

static inline void *cerca_testudata(lua_State *L, int idx, const char *tname)
{
    void *p = lua_touserdata(L, idx);
    if (p != NULL && lua_getmetatable(L, idx)) {
        luaL_getmetatable(L, tname);
        if (!lua_rawequal(L, -1, -2))
            p = NULL;
        lua_pop(L, 2);
        return p;
    }
    return NULL;
}

#define cerca_rawlen(L, i) lua_objlen((L), (i))

#else

#define cerca_setfuncs(L, l, nup) luaL_setfuncs((L), (l), (nup))
#define cerca_testudata(L, i, t) luaL_testudata((L), (i), (t))
#define cerca_rawlen(L, i) lua_rawlen((L), (i))

#endif

#endif
