/*
 * The fast path of JSON decoding. lua-cjson reads strings a character at a
 * time into a scratch buffer; most of what cerca decodes (API answers,
 * webhook deliveries) is plain JSON whose strings hold no escape. This
 * decoder builds the same Lua values as lua-cjson (as cerca configures
 * it: numbers as Lua floats, null as cjson.null, a depth of 128 at most)
 * straight from the input, and declines whatever it is not certain to
 * read exactly as lua-cjson would: a \u escape, a control character, a
 * number outside the JSON grammar, anything malformed, deeper nesting.
 * What it declines, lua-cjson decodes (or refuses, with its message): the
 * result is lua-cjson's in every case, only sooner.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

/* lua-cjson's limit, as core.c configures it: deeper is declined here and
 * refused there. */
#define MAX_DEPTH CERCA_MAX_DECODE_DEPTH
/* The longest number token read here (a longer one goes to lua-cjson). */
#define MAX_NUMBER 64

typedef struct {
    const char *p, *end;
    int depth;
    int names; /* the index of the table of names */
} reader;

static int value(lua_State *L, reader *r);

static void skip_space(reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
        r->p++;
}

/* The end of the plain run of a string starting at q: the first quote,
 * backslash or control character (or `end`). Eight bytes at a time; in
 * the word that holds one, the lowest flagged byte is the first such byte
 * (a borrow only flags bytes above a true one), so on a little-endian
 * machine it is found by counting trailing zero bits. The last bytes
 * before `end` (fewer than eight) are read one by one. */
static const char *plain_run(const char *q, const char *end)
{
    while (end - q >= 8) {
        uint64_t w, hit;
        memcpy(&w, q, sizeof w);
        hit = CERCA_ANY_EQUAL(w, '"') | CERCA_ANY_EQUAL(w, '\\') | CERCA_ANY_BELOW(w, 0x20);
        if (hit) {
            if (CERCA_FIRST_FLAGGED(hit) < 8)
                return q + CERCA_FIRST_FLAGGED(hit);
            break;
        }
        q += 8;
    }
    while (q < end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
        q++;
    return q;
}

/* The byte a simple escape stands for (q at the character after the
 * backslash), or -1: \u and anything unknown go to lua-cjson. */
static int unescape(char c)
{
    switch (c) {
    case '"': return '"';
    case '\\': return '\\';
    case '/': return '/';
    case 'b': return '\b';
    case 'f': return '\f';
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    default: return -1;
    }
}

/* The string whose text starts at `start` (after its opening quote), its
 * plain run ending at q; pushes it. A string with escapes is unescaped
 * run by run: on the C stack when it is short (the common case, a URL with
 * "\/"), else in a luaL_Buffer. */
static int string_from(lua_State *L, reader *r, const char *start, const char *q)
{
    char small[256];
    size_t n = 0;
    luaL_Buffer b;
    int in_buffer = 0;
    if (q == r->end || (unsigned char)*q < 0x20)
        return 0;
    if (*q == '"') {
        lua_pushlstring(L, start, (size_t)(q - start));
        r->p = q + 1;
        return 1;
    }
    for (;;) {
        size_t run = (size_t)(q - start);
        int c;
        if (!in_buffer && n + run + 1 > sizeof small) {
            luaL_buffinit(L, &b);
            luaL_addlstring(&b, small, n);
            in_buffer = 1;
        }
        if (in_buffer)
            luaL_addlstring(&b, start, run);
        else {
            memcpy(small + n, start, run);
            n += run;
        }
        if (q == r->end || (unsigned char)*q < 0x20)
            return 0;
        if (*q == '"')
            break;
        /* *q is a backslash */
        if (q + 1 == r->end || (c = unescape(q[1])) < 0)
            return 0;
        if (in_buffer)
            luaL_addchar(&b, (char)c);
        else
            small[n++] = (char)c;
        start = q + 2;
        q = plain_run(start, r->end);
    }
    if (in_buffer)
        luaL_pushresult(&b);
    else
        lua_pushlstring(L, small, n);
    r->p = q + 1;
    return 1;
}

/* A string at r->p (its opening quote); pushes it. */
static int string(lua_State *L, reader *r)
{
    const char *start = r->p + 1;
    return string_from(L, r, start, plain_run(start, r->end));
}

/* An object's key at r->p; pushes it. One of the answer keys is pushed
 * from the table of names: no hashing, no look-up in the string table. */
static int key(lua_State *L, reader *r)
{
    const char *start = r->p + 1, *q = plain_run(start, r->end);
    int id;
    if (q < r->end && *q == '"' && (id = cerca_key_name(start, (size_t)(q - start))) != 0) {
        cerca_push_name(L, r->names, id);
        r->p = q + 1;
        return 1;
    }
    return string_from(L, r, start, q);
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A number in the JSON grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int number(lua_State *L, reader *r)
{
    const char *s = r->p, *q = s;
    char text[MAX_NUMBER + 1];
    double whole = 0;
    int integral = 1, digits = 0;
    if (q < r->end && *q == '-')
        q++;
    if (q == r->end || !is_digit(*q))
        return 0;
    if (*q == '0') {
        q++;
        digits = 1;
    } else {
        while (q < r->end && is_digit(*q)) {
            whole = whole * 10 + (*q - '0');
            digits++;
            q++;
        }
    }
    if (q < r->end && *q == '.') {
        integral = 0;
        if (++q == r->end || !is_digit(*q))
            return 0;
        while (q < r->end && is_digit(*q))
            q++;
    }
    if (q < r->end && (*q == 'e' || *q == 'E')) {
        integral = 0;
        q++;
        if (q < r->end && (*q == '+' || *q == '-'))
            q++;
        if (q == r->end || !is_digit(*q))
            return 0;
        while (q < r->end && is_digit(*q))
            q++;
    }
    r->p = q;
    /* Up to 15 digits, an integer is exact as a double: as strtod gives it. */
    if (integral && digits <= 15) {
        lua_pushnumber(L, *s == '-' ? -whole : whole);
        return 1;
    }
    if ((size_t)(q - s) > MAX_NUMBER)
        return 0;
    memcpy(text, s, (size_t)(q - s));
    text[q - s] = '\0';
    lua_pushnumber(L, cerca_json_strtod(text));
    return 1;
}

static int literal(reader *r, const char *word, size_t len)
{
    if ((size_t)(r->end - r->p) < len || memcmp(r->p, word, len) != 0)
        return 0;
    r->p += len;
    return 1;
}

/* An array's items are first pushed on the stack, up to this many, so
 * that its table is made at its size at once instead of grown (and
 * rehashed) step by step; a larger one is grown from there. */
#define PENDING 32

/* An object's table is made before its members are read, and each member
 * goes straight in, with no copies on the stack. The outermost object
 * starts with room for this many (a create's answer has 8); a nested one
 * starts empty, so that many small objects take no more memory than
 * lua-cjson gives them. Either is grown by Lua as it fills, as lua-cjson
 * grows every object from empty. */
#define OBJECT_ROOM 8

/* Makes the table for the `n` pending items above `base` and moves them
 * in; leaves the table at base + 1. */
static void settle(lua_State *L, int base, int n, int *count)
{
    int i;
    lua_createtable(L, n, 0);
    lua_insert(L, base + 1);
    for (i = n; i >= 1; i--)
        lua_rawseti(L, base + 1, *count + i);
    *count += n;
}

static int object(lua_State *L, reader *r)
{
    int base = lua_gettop(L);
    r->p++;
    skip_space(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        lua_newtable(L);
        return 1;
    }
    lua_createtable(L, 0, r->depth == 1 ? OBJECT_ROOM : 0);
    /* In the order read: of a key given twice, the last value stays. */
    for (;;) {
        if (r->p == r->end || *r->p != '"' || !key(L, r))
            return 0;
        skip_space(r);
        if (r->p == r->end || *r->p != ':')
            return 0;
        r->p++;
        skip_space(r);
        if (!value(L, r))
            return 0;
        lua_rawset(L, base + 1);
        skip_space(r);
        if (r->p == r->end)
            return 0;
        if (*r->p == '}') {
            r->p++;
            return 1;
        }
        if (*r->p != ',')
            return 0;
        r->p++;
        skip_space(r);
    }
}

static int array(lua_State *L, reader *r)
{
    int base = lua_gettop(L), n = 0, made = 0, count = 0;
    r->p++;
    skip_space(r);
    if (r->p < r->end && *r->p == ']') {
        r->p++;
        lua_newtable(L);
        return 1;
    }
    for (;;) {
        if (!value(L, r))
            return 0;
        if (made) {
            lua_rawseti(L, base + 1, ++count);
        } else if (++n == PENDING) {
            settle(L, base, n, &count);
            made = 1;
        }
        skip_space(r);
        if (r->p == r->end)
            return 0;
        if (*r->p == ']') {
            r->p++;
            if (!made)
                settle(L, base, n, &count);
            return 1;
        }
        if (*r->p != ',')
            return 0;
        r->p++;
        skip_space(r);
    }
}

static int value(lua_State *L, reader *r)
{
    int ok;
    if (r->p == r->end)
        return 0;
    switch (*r->p) {
    case '"':
        /* Room for it (and a string's buffer) was made by the container
         * it is in, or by cerca_json_decode_fast for a value alone. */
        return string(L, r);
    case '{':
    case '[':
        if (++r->depth > MAX_DEPTH)
            return 0;
        /* Room for an array's pending items and its table (an object
         * needs its table, a key and a value) and for a string's buffer,
         * with margin. */
        luaL_checkstack(L, 2 * PENDING + 6, "JSON");
        ok = *r->p == '{' ? object(L, r) : array(L, r);
        r->depth--;
        return ok;
    case 't':
        if (!literal(r, "true", 4))
            return 0;
        lua_pushboolean(L, 1);
        return 1;
    case 'f':
        if (!literal(r, "false", 5))
            return 0;
        lua_pushboolean(L, 0);
        return 1;
    case 'n':
        if (!literal(r, "null", 4))
            return 0;
        /* lua-cjson's null. */
        lua_pushlightuserdata(L, NULL);
        return 1;
    default:
        return number(L, r);
    }
}

int cerca_json_decode_fast(lua_State *L, const char *text, size_t len, int names)
{
    reader r;
    int top = lua_gettop(L);
    r.p = text;
    r.end = text + len;
    r.depth = 0;
    r.names = names;
    /* Room for a value alone; a container makes its own. */
    luaL_checkstack(L, 4, "JSON");
    skip_space(&r);
    if (value(L, &r)) {
        skip_space(&r);
        if (r.p == r.end)
            return 1;
    }
    lua_settop(L, top);
    return 0;
}
