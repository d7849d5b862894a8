/*
 * Whether a caller's argument can be used as it is, without a copy:
 *
 *   core.plain_left(v, mark, skip, max_depth, left) -> entries left | false
 *
 * v is plain when none of its tables has a metatable other than `mark`
 * (cerca's list mark), no key is a table, it nests no deeper than
 * max_depth, and it holds at most `left` entries in all (`skip`, cerca's
 * empty-array sentinel, is not walked). The metatable looked at is the real
 * one (lua_getmetatable): a __metatable field, which getmetatable() would
 * answer with, cannot make a table pass for plain. No metamethod runs.
 * cerca.validate keeps the rule's use; this is its walk, done in C.
 *
 *   core.list_problem(t [, type]) -> nil | "key", k | "value", k
 *
 * Whether t is a list (every key an integer from 1 to #t, no metamethod
 * consulted) whose values are all of Lua type `type` (when given): nil,
 * or the first entry in `pairs` order that is not, and what is wrong with
 * it. The callers word the messages.
 *
 *   core.field_problem(t, fields) -> nil | i
 *
 * The index of the first { name, type } of the list `fields` whose field
 * in t (read raw) is not of that Lua type, or nil.
 *
 *   core.set_problem(list, allowed) -> nil | i [, j]
 *
 * The first item of list (1 to #list) that is no key of `allowed` (whose
 * value is then nil), or that repeats an earlier one: its index, and the
 * index of the earlier one. Raw reads only. An allowed set is small, so a
 * repeat is found by comparing with the items before it.
 *
 *   core.same_value(a, b, max_depth, left) -> boolean
 *
 * Whether a and b hold the same, as JSON encoding and the checks read
 * them: the same type; numbers of the same subtype (integer or float) and
 * the same bits (0.0 is not -0.0, and a NaN equals no NaN); strings and
 * booleans equal; tables either the same one, or with the same real
 * metatable (lua_getmetatable, none on both or the same one), the same keys
 * (compared raw) and, under each, the same value, at most max_depth levels
 * down and `left` entries in all. Raw reads only, no metamethod runs: a
 * table of the caller's is compared with a private copy the caller made of
 * an earlier value, and its checks' outcome reused when they hold the same.
 */
#include <string.h>

#include "core.h"

/* Arguments: 1 v, 2 mark, 3 skip. Returns the entries left, or -1. */
static lua_Integer walk(lua_State *L, int t, int depth, int max_depth, lua_Integer left)
{
    if (depth > max_depth)
        return -1;
    if (lua_getmetatable(L, t)) {
        int known = lua_rawequal(L, -1, 2);
        lua_pop(L, 1);
        if (!known)
            return -1;
    }
    luaL_checkstack(L, 3, "argument walk");
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        if (--left < 0 || lua_type(L, -2) == LUA_TTABLE) {
            lua_pop(L, 2);
            return -1;
        }
        if (lua_type(L, -1) == LUA_TTABLE && !lua_rawequal(L, -1, 3)) {
            left = walk(L, lua_gettop(L), depth + 1, max_depth, left);
            if (left < 0) {
                lua_pop(L, 2);
                return -1;
            }
        }
        lua_pop(L, 1);
    }
    return left;
}

static int l_plain_left(lua_State *L)
{
    /* (The walk recurses in C once a level: the depth is bounded.) */
    int max_depth = (int)cerca_check_whole(L, 4, 0, 255);
    lua_Integer left = cerca_check_whole(L, 5, 0, (lua_Integer)1 << 53);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 5);
    left = walk(L, 1, 0, max_depth, left);
    if (left < 0)
        lua_pushboolean(L, 0);
    else
        lua_pushinteger(L, left);
    return 1;
}

static int l_list_problem(lua_State *L)
{
    size_t n, want_len = 0;
    const char *want = luaL_optlstring(L, 2, NULL, &want_len);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2);
    n = cerca_rawlen(L, 1);
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
        double k;
        /* (k is within 1..n before it is cast.) */
        if (lua_type(L, -2) != LUA_TNUMBER || (k = lua_tonumber(L, -2)) < 1 || k > (double)n ||
            (double)(size_t)k != k) {
            lua_pushliteral(L, "key");
            lua_pushvalue(L, -3);
            return 2;
        }
        if (want != NULL && strcmp(luaL_typename(L, -1), want) != 0) {
            lua_pushliteral(L, "value");
            lua_pushvalue(L, -3);
            return 2;
        }
        lua_pop(L, 1);
    }
    return 0;
}

static int l_set_problem(lua_State *L)
{
    size_t n, i, j;
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    n = cerca_rawlen(L, 1);
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, (int)i); /* 3: the item */
        lua_pushvalue(L, 3);
        lua_rawget(L, 2);
        if (lua_isnil(L, -1)) {
            lua_pushinteger(L, (lua_Integer)i);
            return 1;
        }
        lua_pop(L, 1);
        for (j = 1; j < i; j++) {
            int same;
            lua_rawgeti(L, 1, (int)j);
            same = lua_rawequal(L, -1, 3);
            lua_pop(L, 1);
            if (same) {
                lua_pushinteger(L, (lua_Integer)i);
                lua_pushinteger(L, (lua_Integer)j);
                return 2;
            }
        }
        lua_pop(L, 1);
    }
    return 0;
}

static int l_field_problem(lua_State *L)
{
    size_t n, i;
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    n = cerca_rawlen(L, 2);
    for (i = 1; i <= n; i++) {
        const char *want;
        int same;
        lua_rawgeti(L, 2, (int)i); /* 3: { name, type } */
        luaL_argcheck(L, lua_istable(L, 3), 2, "a list of { name, type }");
        lua_rawgeti(L, 3, 2);
        want = lua_tostring(L, -1);
        lua_rawgeti(L, 3, 1);
        lua_rawget(L, 1);
        same = want != NULL && strcmp(luaL_typename(L, -1), want) == 0;
        lua_settop(L, 2);
        if (!same) {
            lua_pushinteger(L, (lua_Integer)i);
            return 1;
        }
    }
    return 0;
}

/* Indexes a and b: same value (1) or not (0); `left` counts down entries. */
static int same(lua_State *L, int a, int b, int depth, int max_depth, lua_Integer *left)
{
    int type = lua_type(L, a), n_a = 0, n_b = 0, same_mt;
    if (type != lua_type(L, b))
        return 0;
    if (type == LUA_TNUMBER) {
        lua_Number x, y;
#if LUA_VERSION_NUM >= 503
        if (lua_isinteger(L, a) != lua_isinteger(L, b))
            return 0;
        if (lua_isinteger(L, a))
            return lua_tointeger(L, a) == lua_tointeger(L, b);
#endif
        x = lua_tonumber(L, a);
        y = lua_tonumber(L, b);
        return x == y && memcmp(&x, &y, sizeof x) == 0;
    }
    if (type != LUA_TTABLE || lua_rawequal(L, a, b))
        return lua_rawequal(L, a, b);
    if (depth >= max_depth)
        return 0;
    /* Room for both metatables, then for a key and two values. */
    luaL_checkstack(L, 4, "value comparison");
    /* The real metatables: both absent, or the same table. */
    same_mt = lua_getmetatable(L, a);
    same_mt += lua_getmetatable(L, b);
    if (same_mt == 1 || (same_mt == 2 && !lua_rawequal(L, -1, -2))) {
        lua_pop(L, same_mt);
        return 0;
    }
    lua_pop(L, same_mt);
    lua_pushnil(L);
    while (lua_next(L, a) != 0) {
        int top = lua_gettop(L); /* top - 1: the key, top: a's value */
        if (--*left < 0) {
            lua_pop(L, 2);
            return 0;
        }
        lua_pushvalue(L, top - 1);
        lua_rawget(L, b);
        if (!same(L, top, top + 1, depth + 1, max_depth, left)) {
            lua_pop(L, 3);
            return 0;
        }
        lua_pop(L, 2);
        n_a++;
    }
    /* Every key of a is in b: b holds no other when it holds as many. */
    lua_pushnil(L);
    while (lua_next(L, b) != 0) {
        lua_pop(L, 1);
        if (++n_b > n_a) {
            lua_pop(L, 1);
            return 0;
        }
    }
    return n_a == n_b;
}

static int l_same_value(lua_State *L)
{
    /* (The comparison recurses in C once a level: the depth is bounded.) */
    int max_depth = (int)cerca_check_whole(L, 3, 0, 255);
    lua_Integer left = cerca_check_whole(L, 4, 0, (lua_Integer)1 << 53);
    luaL_checkany(L, 1);
    luaL_checkany(L, 2);
    lua_settop(L, 2);
    lua_pushboolean(L, same(L, 1, 2, 0, max_depth, &left));
    return 1;
}

static const luaL_Reg walk_functions[] = {
    {"same_value", l_same_value},
    {"field_problem", l_field_problem},
    {"set_problem", l_set_problem},
    {"plain_left", l_plain_left},
    {"list_problem", l_list_problem},
    {NULL, NULL},
};

void cerca_walk_open(lua_State *L, int module)
{
    cerca_set_functions(L, module, walk_functions, 0, 0);
}
