/*
 * A minimal Lua 5.4 interpreter built with AddressSanitizer and UBSan, so
 * that `make check-memory` can run the specs against the sanitized C core
 * without LD_PRELOAD (which every child process, nginx included, would
 * inherit). Usage: lua-asan SCRIPT [ARGS...]
 *
 * `lua-asan --leak-probe` drops 24 bytes it allocated and exits 0: under
 * detect_leaks=1 LeakSanitizer must report them, which shows the checker
 * runs with the options the specs run under.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

static int traceback(lua_State *L)
{
    luaL_traceback(L, L, lua_tostring(L, 1), 1);
    return 1;
}

int main(int argc, char **argv)
{
    lua_State *L;
    int i, status;
    if (argc == 2 && strcmp(argv[1], "--leak-probe") == 0) {
        char *volatile lost = malloc(24);
        if (lost)
            strcpy(lost, "dropped on purpose");
        lost = NULL;
        return 0;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: %s SCRIPT [ARGS...]\n", argv[0]);
        return 2;
    }
    L = luaL_newstate();
    luaL_openlibs(L);
    lua_createtable(L, argc, 0);
    for (i = 1; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - 1);
    }
    lua_setglobal(L, "arg");
    lua_pushcfunction(L, traceback);
    status = luaL_loadfile(L, argv[1]);
    if (status == LUA_OK) {
        for (i = 2; i < argc; i++)
            lua_pushstring(L, argv[i]);
        status = lua_pcall(L, argc - 2, 0, 1);
    }
    if (status != LUA_OK)
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
    lua_close(L);
    return status == LUA_OK ? 0 : 1;
}
