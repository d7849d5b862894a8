/*
 * What the files of cerca.core's Lua side share. Internal: nothing declared
 * here leaves the module (the build hides every symbol but
 * luaopen_cerca_core).
 */
#ifndef CERCA_CORE_H
#define CERCA_CORE_H

#include "compat.h"

/* Sets the functions of `l` into the table at (absolute) index t, each
 * closing over the nup values at uv .. uv + nup - 1 (none when nup is 0). */
void cerca_set_functions(lua_State *L, int t, const luaL_Reg *l, int uv, int nup);

/* A userdata's metatable. */
typedef struct {
    const char *name;        /* its registry name, for luaL_checkudata */
    const luaL_Reg *methods; /* its __index table (`close` among them) */
    lua_CFunction close;     /* idempotent: also __gc, and __close where Lua has it */
    lua_CFunction tostring;  /* __tostring, or NULL */
} cerca_class;

/* Registers the metatable of `c`, its methods closing over the nup values
 * at uv (as cerca_set_functions). Leaves the stack as it found it. */
void cerca_register_class(lua_State *L, const cerca_class *c, int uv, int nup);

#endif
