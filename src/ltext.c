/*
 * Byte-level checks of caller text, done once per byte in C instead of by
 * Lua patterns (cerca.validate keeps the rules and the messages):
 *
 *   core.text_problem(s [, allow_tab])
 *       -> nil                      no control character, valid UTF-8
 *        | "control", position, byte   the first C0 control or DEL (a tab
 *                                    passes when allow_tab is true)
 *        | "utf8"                  not well-formed UTF-8 (overlong,
 *                                    surrogate, beyond U+10FFFF, cut short)
 *   core.percent_encode(s) -> s with every byte outside RFC 3986
 *       "unreserved" written %XX (s itself when there is none)
 *   core.count(s, needle) -> how many times needle starts in s
 *       (overlapping occurrences counted; an empty needle: #s + 1)
 */
#define _GNU_SOURCE /* memmem */
#include <string.h>

#include "core.h"

/* Length of the well-formed UTF-8 sequence at p (n bytes left), or 0. */
static size_t utf8_length(const unsigned char *p, size_t n)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xBF;
    size_t len, i;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c == 0xE0)
        len = 3, lo = 0xA0;
    else if (c == 0xED)
        len = 3, hi = 0x9F;
    else if (c >= 0xE1 && c <= 0xEF)
        len = 3;
    else if (c == 0xF0)
        len = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3)
        len = 4;
    else if (c == 0xF4)
        len = 4, hi = 0x8F;
    else
        return 0;
    if (len > n || p[1] < lo || p[1] > hi)
        return 0;
    for (i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return len;
}

static int l_text_problem(lua_State *L)
{
    size_t n, i;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    int allow_tab = lua_toboolean(L, 2), utf8_ok = 1;
    /* Control characters first, over the whole text: they are reported
     * even after a bad UTF-8 sequence. */
    for (i = 0; i < n; i++) {
        unsigned char c = s[i];
        if ((c < 0x20 && !(allow_tab && c == '\t')) || c == 0x7f) {
            lua_pushliteral(L, "control");
            lua_pushinteger(L, (lua_Integer)i + 1);
            lua_pushinteger(L, c);
            return 3;
        }
    }
    for (i = 0; i < n && utf8_ok;) {
        size_t len = s[i] < 0x80 ? 1 : utf8_length(s + i, n - i);
        if (len == 0)
            utf8_ok = 0;
        i += len;
    }
    if (!utf8_ok) {
        lua_pushliteral(L, "utf8");
        return 1;
    }
    lua_pushnil(L);
    return 1;
}

static int unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static int l_percent_encode(lua_State *L)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n, i;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    for (i = 0; i < n && unreserved(s[i]); i++)
        ;
    if (i == n) {
        lua_settop(L, 1);
        return 1;
    }
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, (const char *)s, i);
    for (; i < n; i++) {
        if (unreserved(s[i])) {
            luaL_addchar(&b, (char)s[i]);
        } else {
            luaL_addchar(&b, '%');
            luaL_addchar(&b, hex[s[i] >> 4]);
            luaL_addchar(&b, hex[s[i] & 15]);
        }
    }
    luaL_pushresult(&b);
    return 1;
}

static int l_count(lua_State *L)
{
    size_t n, m, count = 0;
    const char *s = luaL_checklstring(L, 1, &n), *needle = luaL_checklstring(L, 2, &m), *p = s, *hit;
    if (m == 0) {
        lua_pushinteger(L, (lua_Integer)n + 1);
        return 1;
    }
    while ((size_t)(s + n - p) >= m && (hit = memmem(p, (size_t)(s + n - p), needle, m)) != NULL) {
        count++;
        p = hit + 1;
    }
    lua_pushinteger(L, (lua_Integer)count);
    return 1;
}

static const luaL_Reg text_functions[] = {
    {"count", l_count},
    {"text_problem", l_text_problem},
    {"percent_encode", l_percent_encode},
    {NULL, NULL},
};

void cerca_text_open(lua_State *L, int module)
{
    cerca_set_functions(L, module, text_functions, 0, 0);
}
