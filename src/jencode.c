/*
 * The fast path of canonical JSON encoding (cerca.json.encode_canonical):
 * object keys in byte order at every depth, lists as lists. It writes the
 * bytes the Lua encoder in json.lua writes (lua-cjson's escapes, and
 * numbers as cerca_number_text writes them for both) and declines whatever
 * it is not certain to write the same way: a table whose metatable could
 * change what json.lua sees of it (`__len`, `__pairs`, `__metatable`), a
 * key that is not a string in an object, a list with holes or extra keys,
 * a number that is not finite, a value JSON has no form for, nesting
 * deeper than MAX_DEPTH. What it declines, json.lua encodes (or refuses,
 * with its message): the result is json.lua's, only sooner.
 */
#define _POSIX_C_SOURCE 200809L /* newlocale, uselocale */
#include <locale.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

/* Deeper values are declined: json.lua writes them (to the decoder's
 * depth), on a stack of Lua calls instead of this C stack. */
#define MAX_DEPTH 64
/* Members of one object sorted on the C stack; a larger object's list is
 * a userdata. */
#define STACK_MEMBERS 16

/* Output grows in a Lua userdata, so a memory error raised by Lua while
 * encoding leaves nothing to free. */
typedef struct {
    char *data;
    size_t len, cap;
    int slot; /* stack index that holds the userdata once data grows there */
} out_buf;

typedef struct {
    out_buf out;
    int empty_array; /* stack index of the sentinel */
    int array_mt;    /* stack index of the list mark (or nil) */
} encoder;

static void grow(lua_State *L, out_buf *b, size_t more)
{
    size_t cap;
    char *data;
    cap = b->cap * 2;
    while (cap < b->len + more)
        cap *= 2;
    data = lua_newuserdata(L, cap);
    memcpy(data, b->data, b->len);
    lua_replace(L, b->slot); /* the old one, if any, is garbage now */
    b->data = data;
    b->cap = cap;
}

static void reserve(lua_State *L, out_buf *b, size_t more)
{
    if (b->len + more > b->cap)
        grow(L, b, more);
}

static void put(lua_State *L, out_buf *b, const char *s, size_t n)
{
    reserve(L, b, n);
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

static void put_char(lua_State *L, out_buf *b, char c)
{
    reserve(L, b, 1);
    b->data[b->len++] = c;
}

/* 1 for each byte lua-cjson 2.1.0 escapes (the controls, '"', '/', '\\'
 * and DEL): the one list of them, looked up once per byte. */
static const unsigned char ESCAPED[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

/* What lua-cjson 2.1.0 writes for each byte that it escapes (NULL: the
 * byte as it is). The spec compares all 256 with lua-cjson's own. */
static const char *escape_of(unsigned char c, char scratch[7])
{
    static const char hex[] = "0123456789abcdef";
    if (!ESCAPED[c])
        return NULL;
    switch (c) {
    case '"': return "\\\"";
    case '\\': return "\\\\";
    case '/': return "\\/";
    case '\b': return "\\b";
    case '\f': return "\\f";
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
    default: /* the other controls and DEL */
        memcpy(scratch, "\\u00", 4);
        scratch[4] = hex[c >> 4];
        scratch[5] = hex[c & 15];
        scratch[6] = '\0';
        return scratch;
    }
}

/* The first byte at or after i that lua-cjson escapes (n if none): eight
 * bytes at a time (the same set as ESCAPED), then one by one. */
static size_t plain_until(const unsigned char *u, size_t i, size_t n)
{
    while (n - i >= 8) {
        uint64_t w, hit;
        memcpy(&w, u + i, sizeof w);
        hit = CERCA_ANY_BELOW(w, 0x20) | CERCA_ANY_EQUAL(w, '"') | CERCA_ANY_EQUAL(w, '/') |
              CERCA_ANY_EQUAL(w, '\\') | CERCA_ANY_EQUAL(w, 0x7f);
        if (hit) {
            if (CERCA_FIRST_FLAGGED(hit) < 8)
                return i + CERCA_FIRST_FLAGGED(hit);
            break;
        }
        i += 8;
    }
    while (i < n && !ESCAPED[u[i]])
        i++;
    return i;
}

static void put_string(lua_State *L, out_buf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0;
    char scratch[7];
    /* Room for the common case at once: no escape, two quotes. */
    reserve(L, b, n + 2);
    b->data[b->len++] = '"';
    for (;;) {
        const char *e;
        i = plain_until(u, i, n);
        if (i == n)
            break;
        e = escape_of(u[i], scratch);
        put(L, b, s + run, i - run);
        put(L, b, e, strlen(e));
        run = ++i;
    }
    put(L, b, s + run, n - run);
    put_char(L, b, '"');
}

/* JSON numbers are written and read in the C locale, whatever locale the
 * program set (a decimal comma, a point of two bytes): uselocale changes
 * the calling thread's only, for the time of the conversion. */
static pthread_once_t c_numeric_once = PTHREAD_ONCE_INIT;
static locale_t c_numeric = (locale_t)0;

static void make_c_numeric(void)
{
    c_numeric = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/* Puts the calling thread in the C locale for numbers; returns what
 * c_numbers_end takes to put it back. */
static locale_t c_numbers(void)
{
    pthread_once(&c_numeric_once, make_c_numeric);
    return c_numeric != (locale_t)0 ? uselocale(c_numeric) : (locale_t)0;
}

static void c_numbers_end(locale_t before)
{
    if (before != (locale_t)0)
        uselocale(before);
}

double cerca_json_strtod(const char *text)
{
    locale_t before = c_numbers();
    double x = strtod(text, NULL);
    c_numbers_end(before);
    return x;
}

/* The JSON text of the number at idx, into text (CERCA_NUMBER_TEXT bytes):
 * its length, or 0 for a number JSON cannot write (not finite).
 *
 * "%.14g", as lua-cjson writes numbers, when that reads back as the same
 * number: every number a request may hold (cerca.validate refuses the
 * others), so request bodies keep their bytes. Any other number (one a
 * server sent, written back out) takes the fewest more digits that read
 * back as it; 17 always do. An integer no double holds exactly (Lua 5.3
 * on, beyond 2^53) is written digit for digit. */
size_t cerca_number_text(lua_State *L, int idx, char *text, int *cjson_digits)
{
    double d = (double)lua_tonumber(L, idx);
    int n, digits = 0;
    locale_t before;
    *cjson_digits = 0;
    if (d != d || d - d != 0)
        return 0;
    n = cerca_inexact_integer_text(L, idx, d, text, CERCA_NUMBER_TEXT);
    if (n != 0)
        return n > 0 && n < CERCA_NUMBER_TEXT ? (size_t)n : 0;
    before = c_numbers();
    for (digits = 14; digits <= 17; digits++) {
        n = snprintf(text, CERCA_NUMBER_TEXT, "%.*g", digits, d);
        if (n <= 0 || n >= CERCA_NUMBER_TEXT || strtod(text, NULL) == d)
            break;
    }
    c_numbers_end(before);
    if (n <= 0 || n >= CERCA_NUMBER_TEXT)
        return 0;
    /* Should the C locale have been out of reach (no memory), a text the
     * program's locale wrote otherwise is not JSON: none. */
    if (strspn(text, "0123456789-+.e") != (size_t)n)
        return 0;
    *cjson_digits = digits == 14;
    return (size_t)n;
}

static int put_number(lua_State *L, out_buf *b, int idx)
{
    char text[CERCA_NUMBER_TEXT];
    int cjson_digits;
    size_t n = cerca_number_text(L, idx, text, &cjson_digits);
    if (n == 0)
        return 0;
    put(L, b, text, n);
    return 1;
}

/* core.number_text(x) -> the JSON text of x, and whether it is lua-cjson's
 * ("%.14g": it reads back as x) | nil (not finite). */
int cerca_l_number_text(lua_State *L)
{
    char text[CERCA_NUMBER_TEXT];
    size_t n;
    int cjson_digits;
    luaL_checknumber(L, 1);
    n = cerca_number_text(L, 1, text, &cjson_digits);
    if (n == 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushlstring(L, text, n);
    lua_pushboolean(L, cjson_digits);
    return 2;
}

static int encode(lua_State *L, encoder *en, int idx, int depth);

/* Orders members by key bytes, as Lua's `<` does for strings in the C
 * locale. */
typedef struct {
    const char *key;
    size_t len;
    int value; /* stack index */
} member;

static int member_order(const void *pa, const void *pb)
{
    const member *a = pa, *b = pb;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->key, b->key, n);
    if (c != 0)
        return c;
    return a->len < b->len ? -1 : a->len > b->len;
}

/* Sorts members by key: by insertion when they are few (an API object's
 * handful of fields), else with qsort. */
static void sort_members(member *m, size_t count)
{
    size_t i, j;
    if (count > STACK_MEMBERS) {
        qsort(m, count, sizeof *m, member_order);
        return;
    }
    for (i = 1; i < count; i++) {
        member x = m[i];
        for (j = i; j > 0 && member_order(&m[j - 1], &x) > 0; j--)
            m[j] = m[j - 1];
        m[j] = x;
    }
}

/* collect's answer when the table holds more than `max` members. */
#define MORE (-2)

/* Pushes the key and value of each member of the table at idx, in `next`
 * order, and records them in members: their count, -1 for a key that is
 * not a string, or MORE when there are more than max (the stack is then
 * left to the caller to reset). */
static long collect(lua_State *L, int idx, member *members, size_t max)
{
    size_t count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING)
            return -1;
        if (count == max)
            return MORE;
        lua_pushvalue(L, -2); /* key, value, key: the last one goes on */
        members[count].key = lua_tolstring(L, -3, &members[count].len);
        members[count].value = lua_gettop(L) - 1;
        count++;
    }
    return (long)count;
}

/* Whether the metatable on top of the stack changes nothing json.lua sees
 * of its table (a subscription's: `__name`, `__tostring`): no `__len` (the
 * length), no `__pairs` (the members), no `__metatable` (the list mark
 * test), no `__secrets` (a list of secrets, which json.lua refuses), no
 * `__index` (fields given through it would be missing from a request's
 * body: json.lua refuses it there). */
static int inert(lua_State *L)
{
    static const char *const fields[] = {"__len", "__pairs", "__metatable", "__secrets", "__index"};
    size_t i;
    for (i = 0; i < sizeof fields / sizeof *fields; i++) {
        int absent;
        lua_pushstring(L, fields[i]);
        lua_rawget(L, -2);
        absent = lua_isnil(L, -1);
        lua_pop(L, 1);
        if (!absent)
            return 0;
    }
    return 1;
}

/* The table at idx: its kind as json.lua decides it. */
static int encode_table(lua_State *L, encoder *en, int idx, int depth)
{
    size_t n = cerca_rawlen(L, idx), count = 0, i;
    long got;
    int marked = 0, top = lua_gettop(L);
    member small[STACK_MEMBERS], *members = small;

    if (lua_getmetatable(L, idx)) {
        marked = lua_rawequal(L, -1, en->array_mt);
        if (!marked && !inert(L))
            return lua_settop(L, top), 0;
        lua_pop(L, 1);
    }
    if (n > 0) {
        /* A list: exactly the keys 1..n. */
        lua_pushnil(L);
        while (lua_next(L, idx) != 0) {
            lua_Number k;
            lua_pop(L, 1);
            if (lua_type(L, -1) != LUA_TNUMBER)
                return lua_settop(L, top), 0;
            k = lua_tonumber(L, -1);
            if (!(k >= 1 && k <= (lua_Number)n && k == (lua_Number)(size_t)k) || ++count > n)
                return lua_settop(L, top), 0;
        }
        put_char(L, &en->out, '[');
        for (i = 1; i <= n; i++) {
            if (i > 1)
                put_char(L, &en->out, ',');
            lua_rawgeti(L, idx, (int)i);
            if (!encode(L, en, lua_gettop(L), depth + 1))
                return lua_settop(L, top), 0;
            lua_pop(L, 1);
        }
        put_char(L, &en->out, ']');
        return 1;
    }
    /* An object: string keys only, written in byte order. Keys and values
     * stay on the stack while they are sorted and written: in one walk when
     * they fit in `small`, else counted first. */
    if (!lua_checkstack(L, 2 * STACK_MEMBERS + 8))
        return lua_settop(L, top), 0;
    got = collect(L, idx, small, STACK_MEMBERS);
    if (got == MORE) {
        lua_settop(L, top);
        count = 0;
        lua_pushnil(L);
        while (lua_next(L, idx) != 0) {
            lua_pop(L, 1);
            count++;
        }
        if (count > 1000000)
            return lua_settop(L, top), 0;
        members = lua_newuserdata(L, count * sizeof *members);
        if (!lua_checkstack(L, (int)(2 * count) + 8))
            return lua_settop(L, top), 0;
        got = collect(L, idx, members, count);
    }
    if (got < 0)
        return lua_settop(L, top), 0;
    count = (size_t)got;
    if (count == 0 && marked) {
        put(L, &en->out, "[]", 2);
        return 1;
    }
    sort_members(members, count);
    put_char(L, &en->out, '{');
    for (i = 0; i < count; i++) {
        if (i > 0)
            put_char(L, &en->out, ',');
        put_string(L, &en->out, members[i].key, members[i].len);
        put_char(L, &en->out, ':');
        if (!encode(L, en, members[i].value, depth + 1))
            return lua_settop(L, top), 0;
    }
    put_char(L, &en->out, '}');
    lua_settop(L, top);
    return 1;
}

/* Writes the value at idx; 0 declines. */
static int encode(lua_State *L, encoder *en, int idx, int depth)
{
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        put_string(L, &en->out, s, n);
        return 1;
    }
    case LUA_TNUMBER:
        return put_number(L, &en->out, idx);
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            put(L, &en->out, "true", 4);
        else
            put(L, &en->out, "false", 5);
        return 1;
    case LUA_TLIGHTUSERDATA:
        /* cjson.null is the NULL pointer; any other is not JSON. */
        if (lua_touserdata(L, idx) != NULL)
            return 0;
        put(L, &en->out, "null", 4);
        return 1;
    case LUA_TTABLE:
        if (lua_rawequal(L, idx, en->empty_array)) {
            put(L, &en->out, "[]", 2);
            return 1;
        }
        if (depth >= MAX_DEPTH || !lua_checkstack(L, 8))
            return 0;
        return encode_table(L, en, idx, depth);
    default:
        return 0;
    }
}

/* core.encode_canonical(value, array_mt) -> text | nil (declined).
 * Closes over the CERCA_NUP values (the empty-array sentinel). */
int cerca_encode_canonical(lua_State *L)
{
    char local[512];
    encoder en;
    luaL_checkany(L, 1);
    lua_settop(L, 2);
    lua_pushvalue(L, lua_upvalueindex(CERCA_UV_EMPTY_ARRAY));
    lua_pushnil(L); /* where the output goes when it outgrows `local` */
    en.empty_array = 3;
    en.array_mt = 2;
    en.out.data = local;
    en.out.len = 0;
    en.out.cap = sizeof local;
    en.out.slot = 4;
    if (!encode(L, &en, 1, 0)) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushlstring(L, en.out.data, en.out.len);
    return 1;
}
