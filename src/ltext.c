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
 *   core.path_problem(s) -> nil | position, kind: what a request path
 *       below base_url may not be: "start" (no leading "/"), "char" (a byte
 *       outside RFC 3986 pchar, "/" and "?"), "percent" (a "%" without two
 *       hex digits), "overlong" (%C0 or %C1, which only write an overlong
 *       "." or "/") or "dot" (a "." or ".." segment before any "?", its
 *       dots plain or written %2E, ended by "/", "\\", %2F, %5C, ";", %3B,
 *       %3F, %23 or %00)
 *   core.printable(s [, json]) -> s safe to print on a terminal: C0
 *       controls, DEL, C1 controls, the bidirectional overrides and
 *       isolates, and bytes that are not UTF-8 written as escapes: `\xNN`
 *       and `\u{NNNN}`, or with json, `\u00NN` and `\uNNNN` (s is then
 *       JSON text, where such bytes stand only inside strings; a byte
 *       that is not UTF-8 is read as Latin-1). s itself when nothing is.
 *   core.percent_encode(s) -> s with every byte outside RFC 3986
 *       "unreserved" written %XX (s itself when there is none)
 *   core.count(s, needle) -> how many times needle starts in s
 *       (overlapping occurrences counted; an empty needle: #s + 1)
 *   core.occurrences(s, probe...) -> the largest count of any probe in s;
 *       nothing (nil) when s holds a `\u` or `%` escape (a secret could be written
 *       there in a form no probe finds) or a probe is empty
 *   core.may_hold_folded(s, a [, b]) -> whether s holds the string a or b
 *       (each may be nil) in any mix of ASCII letter case, or holds a "%"
 *       or a backslash (an escape that could write them another way)
 *   core.joinable(s) -> whether s holds a comma or a space (redact.joinable)
 *   core.in_one_field(s, secret) -> written_once, and s holds neither a
 *       "%" nor an escaped backslash (see redact.in_one_field)
 *   core.written_once(s, secret) -> whether the JSON text s writes secret
 *       at most once, each of its "/" as is or as "\/" (JSON may escape
 *       each on its own); false when the secret holds a backslash, a quote
 *       or a control byte (JSON writes a TAB "\t", a lenient decoder also
 *       takes it raw), or reads as a number (another field may be that
 *       number, written any way), or s holds a `\u` escape: undecided
 */
#include <stdint.h>
#include <stdio.h>
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

/* A byte a request path (or its query) may hold as it is: RFC 3986
 * pchar, "/" and "?"; "%" is checked apart, for its two hex digits. */
static int path_byte(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && memchr("-._~!$&'()*+,;=:@/?%", c, 20) != NULL;
}

static int hex_digit(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Bytes at s[i] that write one dot: "." or "%2E" (either case); 0 if none. */
static size_t dot_at(const unsigned char *s, size_t n, size_t i)
{
    if (i < n && s[i] == '.')
        return 1;
    if (i + 2 < n && s[i] == '%' && s[i + 1] == '2' && (s[i + 2] == 'e' || s[i + 2] == 'E'))
        return 3;
    return 0;
}

/* Bytes at s[i] that a server may read as a segment's end: "/", "\\", or
 * either written %2F or %5C (many servers decode them before they resolve
 * dot segments); 0 if none. */
static size_t separator_at(const unsigned char *s, size_t n, size_t i)
{
    if (i < n && (s[i] == '/' || s[i] == '\\'))
        return 1;
    if (i + 2 < n && s[i] == '%' && ((s[i + 1] == '2' && (s[i + 2] == 'f' || s[i + 2] == 'F'))
                                     || (s[i + 1] == '5' && (s[i + 2] == 'c' || s[i + 2] == 'C'))))
        return 3;
    return 0;
}

/* Whether a segment of dots ending at s[j] is a whole segment to some
 * server: the path ends, a separator follows, or what a server may read
 * as the start of parameters, a query or a fragment, or the end of the
 * text: ";" or "?", or written %3B, %3F, %23 or %00, which servers that
 * decode before they resolve dot segments read as such. */
static int segment_ends_at(const unsigned char *s, size_t n, size_t j)
{
    if (j == n || s[j] == '?' || s[j] == ';' || separator_at(s, n, j) != 0)
        return 1;
    if (j + 2 < n && s[j] == '%') {
        unsigned char a = s[j + 1], b = s[j + 2];
        return (a == '3' && (b == 'b' || b == 'B' || b == 'f' || b == 'F')) || (a == '2' && b == '3')
            || (a == '0' && b == '0');
    }
    return 0;
}

static int path_found(lua_State *L, size_t i, const char *kind)
{
    lua_pushinteger(L, (lua_Integer)i + 1);
    lua_pushstring(L, kind);
    return 2;
}

static int l_path_problem(lua_State *L)
{
    size_t n, i;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    int in_query = 0;
    if (n == 0 || s[0] != '/')
        return path_found(L, 0, "start");
    for (i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (!path_byte(c))
            return path_found(L, i, "char");
        if (c == '%' && !(i + 2 < n && hex_digit(s[i + 1]) && hex_digit(s[i + 2])))
            return path_found(L, i, "percent");
        /* No UTF-8 text holds the bytes C0 and C1: they only write an
         * overlong "." or "/", which some servers decode as one. */
        if (c == '%' && (s[i + 1] == 'c' || s[i + 1] == 'C') && (s[i + 2] == '0' || s[i + 2] == '1'))
            return path_found(L, i, "overlong");
        if (c == '?')
            in_query = 1;
        if (!in_query && separator_at(s, n, i) != 0) {
            /* A segment of one or two dots, written plainly or as %2E, that
             * ends where a server may read its end, or its parameters start
             * (";", which some servers strip before they resolve it). */
            size_t j = i + separator_at(s, n, i), d, dots = 0;
            while (dots < 3 && (d = dot_at(s, n, j)) != 0) {
                j += d;
                dots++;
            }
            if ((dots == 1 || dots == 2) && segment_ends_at(s, n, j))
                return path_found(L, i + 1, "dot");
        }
    }
    lua_pushnil(L);
    return 1;
}

/* The code point of the well-formed sequence of len bytes at p. */
static unsigned long code_point(const unsigned char *p, size_t len)
{
    static const unsigned char lead_bits[] = {0, 0x7f, 0x1f, 0x0f, 0x07};
    unsigned long cp = p[0] & lead_bits[len];
    size_t i;
    for (i = 1; i < len; i++)
        cp = (cp << 6) | (p[i] & 0x3f);
    return cp;
}

/* Code points that change how a terminal shows what follows them: C1
 * controls (CSI among them) and the bidirectional overrides and isolates. */
static int acts_on_terminal(unsigned long cp)
{
    return (cp >= 0x80 && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

static int l_printable(lua_State *L)
{
    size_t n, i = 0, len;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    int json = lua_toboolean(L, 2);
    char esc[16];
    luaL_Buffer b;
    /* Printable ASCII, the whole text most often, goes through as is:
     * eight bytes at a time, then one by one. */
    while (n - i >= 8) {
        uint64_t w, hit;
        memcpy(&w, s + i, sizeof w);
        hit = CERCA_ANY_BELOW(w, 0x20) | CERCA_ANY_EQUAL(w, 0x7f) | (w & CERCA_HIGHS);
        if (hit) {
            if (CERCA_FIRST_FLAGGED(hit) < 8)
                i += CERCA_FIRST_FLAGGED(hit);
            break;
        }
        i += 8;
    }
    while (i < n && s[i] >= 0x20 && s[i] < 0x7f)
        i++;
    if (i == n) {
        lua_settop(L, 1);
        return 1;
    }
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, (const char *)s, i);
    while (i < n) {
        unsigned char c = s[i];
        unsigned long cp;
        if (c >= 0x20 && c < 0x7f) {
            luaL_addchar(&b, (char)c);
            i++;
            continue;
        }
        len = c < 0x80 ? 1 : utf8_length(s + i, n - i);
        if (len == 1 || len == 0) {
            /* A C0 control or DEL, or a byte that is not UTF-8. */
            snprintf(esc, sizeof esc, json ? "\\u%04x" : "\\x%02x", (unsigned)c);
            luaL_addstring(&b, esc);
            i++;
            continue;
        }
        cp = code_point(s + i, len);
        if (acts_on_terminal(cp)) {
            snprintf(esc, sizeof esc, json ? "\\u%04lx" : "\\u{%04lx}", cp);
            luaL_addstring(&b, esc);
        } else {
            luaL_addlstring(&b, (const char *)s + i, len);
        }
        i += len;
    }
    luaL_pushresult(&b);
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

/* The first occurrence of needle (m > 0 bytes) in s[0..n), or NULL. The
 * texts searched are short (an answer, a header block): a memchr for the
 * first byte and a compare costs less than memmem's set-up. */
static const char *find(const char *s, size_t n, const char *needle, size_t m)
{
    const char *p = s, *end = s + n;
    while ((size_t)(end - p) >= m && (p = memchr(p, needle[0], (size_t)(end - p) - (m - 1))) != NULL) {
        if (memcmp(p + 1, needle + 1, m - 1) == 0)
            return p;
        p++;
    }
    return NULL;
}

/* Occurrences of needle (m > 0 bytes) in s, overlapping ones counted. */
static size_t count(const char *s, size_t n, const char *needle, size_t m)
{
    const char *p = s, *end = s + n, *hit;
    size_t found = 0;
    while ((hit = find(p, (size_t)(end - p), needle, m)) != NULL) {
        found++;
        p = hit + 1;
    }
    return found;
}

static int l_count(lua_State *L)
{
    size_t n, m;
    const char *s = luaL_checklstring(L, 1, &n), *needle = luaL_checklstring(L, 2, &m);
    lua_pushinteger(L, (lua_Integer)(m == 0 ? n + 1 : count(s, n, needle, m)));
    return 1;
}

static int l_occurrences(lua_State *L)
{
    size_t n, m, most = 0, found;
    const char *s = luaL_checklstring(L, 1, &n), *probe;
    int i, top = lua_gettop(L);
    if (find(s, n, "\\u", 2) != NULL || memchr(s, '%', n) != NULL)
        return 0;
    for (i = 2; i <= top; i++) {
        if (lua_isnil(L, i))
            continue;
        probe = luaL_checklstring(L, i, &m);
        if (m == 0)
            return 0;
        found = count(s, n, probe, m);
        if (found > most)
            most = found;
    }
    lua_pushinteger(L, (lua_Integer)most);
    return 1;
}

/* Whether secret (m > 0 bytes, no backslash) is written at p (up to end),
 * each "/" of it as is or as "\/". */
static int written_at(const char *p, const char *end, const char *secret, size_t m)
{
    size_t k;
    for (k = 0; k < m; k++) {
        if (p < end && *p == secret[k]) {
            p++;
        } else if (secret[k] == '/' && end - p >= 2 && p[0] == '\\' && p[1] == '/') {
            p += 2;
        } else {
            return 0;
        }
    }
    return 1;
}

/* Places where secret (m > 0 bytes, no backslash) is written in s, each
 * "/" as is or as "\/"; counting stops at 2. */
static size_t written_count(const char *s, size_t n, const char *secret, size_t m)
{
    const char *p = s, *end = s + n;
    size_t found = 0;
    /* A secret that starts with "/" may start with its escape. */
    int first = secret[0] == '/' ? '\\' : secret[0];
    while (found < 2 && p < end) {
        const char *hit = memchr(p, secret[0], (size_t)(end - p)), *alt = NULL;
        if (first != secret[0])
            alt = memchr(p, first, (size_t)(end - p));
        if (alt != NULL && (hit == NULL || alt < hit))
            hit = alt;
        if (hit == NULL)
            break;
        if (written_at(hit, end, secret, m))
            found++;
        p = hit + 1;
    }
    return found;
}

/* ASCII letters in lower case; every other byte as it is, whatever the
 * locale (header names are lower-cased the same way). */
static unsigned char ascii_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

static int same_folded(const char *a, const char *b, size_t m)
{
    size_t k;
    for (k = 0; k < m; k++)
        if (ascii_lower((unsigned char)a[k]) != ascii_lower((unsigned char)b[k]))
            return 0;
    return 1;
}

/* Whether s (n bytes) holds needle (m > 0 bytes) in any mix of ASCII
 * letter case. memchr looks for the needle's first byte that is not a
 * letter (the same in any case; "_" in most keys and secrets, rare in a
 * header block), else for its first letter in either case, and each place
 * found is compared whole. */
static int folded_in(const char *s, size_t n, const char *needle, size_t m)
{
    const char *p, *end;
    size_t at = 0;
    int lo, up;
    if (m > n)
        return 0;
    for (at = 0; at < m; at++) {
        unsigned char c = ascii_lower((unsigned char)needle[at]);
        if (c < 'a' || c > 'z')
            break;
    }
    if (at == m)
        at = 0;
    lo = ascii_lower((unsigned char)needle[at]);
    up = lo >= 'a' && lo <= 'z' ? lo - ('a' - 'A') : lo;
    /* The anchor stands at s + at at the earliest, and leaves room for the
     * rest of the needle after it. */
    p = s + at;
    end = s + n - (m - 1 - at);
    while (p < end) {
        const char *hit = memchr(p, lo, (size_t)(end - p)), *alt = NULL;
        if (up != lo)
            alt = memchr(p, up, hit != NULL ? (size_t)(hit - p) : (size_t)(end - p));
        if (alt != NULL)
            hit = alt;
        if (hit == NULL)
            return 0;
        if (same_folded(hit - at, needle, m))
            return 1;
        p = hit + 1;
    }
    return 0;
}

/* may_hold_folded(block, a, b): whether the table of fields made from
 * the header block may spell secret a or b where the block does not
 * because a name is lower-cased there: the block holds a secret in other
 * letters, or escaped (a `%` or a backslash in the block). (The joining of
 * a repeated field's values is redact.joinable's.) */
static int l_may_hold_folded(lua_State *L)
{
    size_t n, m;
    const char *s = luaL_checklstring(L, 1, &n), *needle;
    int i;
    if (memchr(s, '%', n) != NULL || memchr(s, '\\', n) != NULL) {
        lua_pushboolean(L, 1);
        return 1;
    }
    for (i = 2; i <= 3; i++) {
        if (lua_isnoneornil(L, i))
            continue;
        needle = luaL_checklstring(L, i, &m);
        if (m == 0 || folded_in(s, n, needle, m)) {
            lua_pushboolean(L, 1);
            return 1;
        }
    }
    lua_pushboolean(L, 0);
    return 1;
}

/* Whether secret (m bytes) holds a byte a JSON text may write in two
 * ways that written_count does not follow: a backslash, a quote, a C0
 * control byte or DEL. One pass; says too whether it holds a "/". */
static int uncountable(const char *secret, size_t m, int *slash)
{
    size_t k;
    *slash = 0;
    for (k = 0; k < m; k++) {
        unsigned char c = (unsigned char)secret[k];
        if (c < 0x20 || c == 0x7f || c == '\\' || c == '"')
            return 1;
        if (c == '/')
            *slash = 1;
    }
    return 0;
}

/* Whether the string at index i, which holds no control byte, may read
 * as a number: only one that starts (after spaces) with a digit, a sign,
 * a point, or "inf"'s or "nan"'s first letter is asked of Lua. */
static int may_be_number(lua_State *L, int i, const char *p, size_t m)
{
    size_t k = 0;
    while (k < m && p[k] == ' ')
        k++;
    if (k == m || !(strchr("0123456789+-.iInN", p[k]) != NULL))
        return 0;
    return lua_isnumber(L, i);
}

/* written_once's answer for the strings at index 1 and 2. */
static int written_once(lua_State *L)
{
    size_t n, m;
    int slash;
    const char *s = luaL_checklstring(L, 1, &n), *secret = luaL_checklstring(L, 2, &m);
    if (uncountable(secret, m, &slash) || may_be_number(L, 2, secret, m) || find(s, n, "\\u", 2) != NULL)
        return 0;
    if (m == 0) /* "" stands before every byte and after the last. */
        return n == 0;
    return (slash ? written_count(s, n, secret, m) : count(s, n, secret, m)) <= 1;
}

static int l_written_once(lua_State *L)
{
    lua_pushboolean(L, written_once(L));
    return 1;
}

/* in_one_field(s, secret): written_once, and s holds neither a "%" nor an
 * escaped backslash (one call for what the success path of every create
 * asks). */
static int l_in_one_field(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    lua_pushboolean(L, written_once(L) && memchr(s, '%', n) == NULL && find(s, n, "\\\\", 2) == NULL);
    return 1;
}

/* joinable(secret): whether it holds a comma or a space (see
 * redact.joinable). In C: two of Lua's plain string.find cost about 1,500
 * instructions, on a path every create takes. */
static int l_joinable(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    lua_pushboolean(L, memchr(s, ',', n) != NULL || memchr(s, ' ', n) != NULL);
    return 1;
}

static const luaL_Reg text_functions[] = {
    {"joinable", l_joinable},
    {"written_once", l_written_once},
    {"in_one_field", l_in_one_field},
    {"count", l_count},
    {"occurrences", l_occurrences},
    {"may_hold_folded", l_may_hold_folded},
    {"text_problem", l_text_problem},
    {"path_problem", l_path_problem},
    {"percent_encode", l_percent_encode},
    {"printable", l_printable},
    {NULL, NULL},
};

void cerca_text_open(lua_State *L, int module)
{
    cerca_set_functions(L, module, text_functions, 0, 0);
}
