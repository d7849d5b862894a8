/*
 * The Lua form of http.h's request and response, for sessions and multi
 * handles alike:
 *
 *   request:  { method, url, headers = { "Name: value", ... }, body,
 *               timeout_ms, connect_timeout_ms, max_body, no_proxy, decode }
 *   response: status, raw_headers, body, time, new_connects,
 *             request_sent, json | json_error, error, error_message,
 *             curl_code, resent (only when libcurl sent it again)
 *
 *   core.headers(raw_headers) -> { lower-case name = value, ... }
 *   core.header(raw_headers, name) -> value | nil   (name in lower case)
 *
 * A request is read into plain C before libcurl runs; a response is built
 * after it returned, so no Lua error can unwind through libcurl. The
 * response keeps its header block as received: most callers read one
 * field of it (the request id), so the table of every field is made only
 * when asked for (cerca.outcome does, on first read of `headers`).
 */
#include <string.h>

#include "core.h"
#include "headers.h"

static const char *const err_kind_names[] = {
    NULL, "connection", "timeout", "tls", "too_large", "url", "internal",
};

/* ---- reading --------------------------------------------------------- */

/* The field names of requests and responses are pushed from the table of
 * names the calling function closes over (CERCA_NAMES, names.c). A
 * request is read raw: it is a plain table the Lua layer made, and no
 * metamethod runs while it is read. */

/* Pushes t[name] of the request table at (absolute) index t. */
static void get_field(lua_State *L, int t, int id)
{
    cerca_push_name(L, CERCA_NAMES, id);
    lua_rawget(L, t);
}

/* Sets field `id` of the table at (absolute) index t to the value on top,
 * which it pops. */
static void set_field(lua_State *L, int t, int id)
{
    cerca_push_name(L, CERCA_NAMES, id);
    lua_insert(L, -2);
    lua_rawset(L, t);
}

/* The value on top, field `k` of a table, when it is a string (NULL when
 * absent). The value is left on the stack, where it stays until the C
 * function returns: a finalizer (`__gc`) that an allocation runs meanwhile
 * may drop the table's reference to it, and collect. Only true strings are
 * taken: a number would be converted into a string of the stack's slot. */
static const char *kept_string(lua_State *L, const char *k, int required, size_t *len)
{
    const char *s = NULL;
    if (lua_type(L, -1) == LUA_TSTRING)
        s = lua_tolstring(L, -1, len);
    else if (required || !lua_isnil(L, -1))
        luaL_error(L, "field '%s' must be a string", k);
    return s;
}

static const char *string_field(lua_State *L, int t, int id, int required, size_t *len)
{
    get_field(L, t, id);
    return kept_string(L, cerca_name(id), required, len);
}

/* A positive number field, at most `max`; converted only once in range,
 * since a C cast of an out-of-range double is undefined. */
static lua_Number bounded_field(lua_State *L, int t, int id, lua_Number dflt, lua_Number max)
{
    lua_Number n = dflt;
    get_field(L, t, id);
    if (!lua_isnil(L, -1)) {
        if (!lua_isnumber(L, -1))
            luaL_error(L, "field '%s' must be a number", cerca_name(id));
        n = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    if (!(n >= 1)) /* also catches NaN */
        luaL_error(L, "field '%s' must be at least 1", cerca_name(id));
    return n > max ? max : n;
}

void cerca_read_handle_options(lua_State *L, const char **ca_file, const char **user_agent)
{
    size_t ua_len;
    *ca_file = *user_agent = NULL;
    if (lua_isnoneornil(L, 1))
        return;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "ca_file");
    *ca_file = kept_string(L, "ca_file", 0, NULL);
    lua_getfield(L, 1, "user_agent");
    *user_agent = kept_string(L, "user_agent", 0, &ua_len);
    /* It becomes a header line of every request. */
    if (*user_agent != NULL && strcspn(*user_agent, "\r\n") != ua_len)
        luaL_error(L, "field 'user_agent' must not hold CR, LF or NUL");
}

/* decode = false: leave the JSON to the caller (the OpenResty adapter
 * decodes in the request's own Lua VM, not the worker thread's). */
int cerca_request_decodes(lua_State *L, int t)
{
    int decode;
    get_field(L, t, CERCA_NAME_DECODE);
    decode = lua_isnil(L, -1) || lua_toboolean(L, -1);
    lua_pop(L, 1);
    return decode;
}

int cerca_read_request(lua_State *L, int t, cerca_request *rq, int *decode, const char **lines,
                       size_t room)
{
    size_t i, n;
    int ht, body;
    luaL_checktype(L, t, LUA_TTABLE);
    memset(rq, 0, sizeof *rq);
    rq->method = string_field(L, t, CERCA_NAME_METHOD, 1, &n);
    /* The method and the URL go on the request line, whatever the layer
     * above checked: the method is a token of upper-case letters, and the
     * URL holds no byte that would end the line or a field of it (CR, LF,
     * NUL, space, tab). Every create pays these scans: memchr, not a loop. */
    if (n == 0 || n > 20)
        luaL_error(L, "field 'method' must be 1 to 20 upper-case letters");
    for (i = 0; i < n; i++)
        if (rq->method[i] < 'A' || rq->method[i] > 'Z')
            luaL_error(L, "field 'method' must be 1 to 20 upper-case letters");
    rq->url = string_field(L, t, CERCA_NAME_URL, 1, &n);
    if (strlen(rq->url) != n || memchr(rq->url, '\r', n) != NULL || memchr(rq->url, '\n', n) != NULL
        || memchr(rq->url, ' ', n) != NULL || memchr(rq->url, '\t', n) != NULL)
        luaL_error(L, "field 'url' must not hold CR, LF, NUL, spaces or tabs");
    /* (Its index is returned: the string libcurl reads, which a transfer
     * that outlives the call anchors.) */
    rq->body = string_field(L, t, CERCA_NAME_BODY, 0, &rq->body_len);
    body = lua_gettop(L);
    /* Loopback plain-http calls never go through a proxy: the key would
     * cross the network in clear text. */
    get_field(L, t, CERCA_NAME_NO_PROXY);
    rq->no_proxy = lua_toboolean(L, -1);
    lua_pop(L, 1);
    /* Longer than ~24 days is "no practical limit"; libcurl takes a long. */
    rq->timeout_ms = (long)bounded_field(L, t, CERCA_NAME_TIMEOUT_MS, 60000, 2147483647.0);
    rq->connect_timeout_ms = (long)bounded_field(L, t, CERCA_NAME_CONNECT_TIMEOUT_MS, 10000, 2147483647.0);
    rq->max_body = (size_t)bounded_field(L, t, CERCA_NAME_MAX_BODY, 1024 * 1024, 2147483647.0);
    *decode = cerca_request_decodes(L, t);
    rq->idempotency_key = string_field(L, t, CERCA_NAME_IDEMPOTENCY_KEY, 0, &n);
    if (rq->idempotency_key != NULL) {
        /* One header line: printable ASCII without spaces, bounded. */
        if (n == 0 || n > CERCA_MAX_KEY_BYTES)
            luaL_error(L, "field 'idempotency_key' must be 1 to %d bytes", CERCA_MAX_KEY_BYTES);
        for (i = 0; i < n; i++)
            if (rq->idempotency_key[i] < 33 || rq->idempotency_key[i] > 126)
                luaL_error(L, "field 'idempotency_key' must be printable ASCII without spaces");
    }

    get_field(L, t, CERCA_NAME_HEADERS);
    ht = lua_gettop(L);
    n = lua_istable(L, ht) ? cerca_rawlen(L, ht) : 0;
    if (n > room)
        lines = (const char **)lua_newuserdata(L, n * sizeof *lines);
    for (i = 0; i < n; i++) {
        size_t len;
        lua_rawgeti(L, ht, (int)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "headers[%d] must be a string", (int)i + 1);
        lines[i] = lua_tolstring(L, -1, &len);
        /* One line each, whatever the layer above checked: a CR or LF
         * would start another header, a NUL would cut this one short (the
         * scan stops at all three). */
        if (strcspn(lines[i], "\r\n") != len)
            luaL_error(L, "headers[%d] must not hold CR, LF or NUL", (int)i + 1);
        lua_pop(L, 1);
    }
    /* The headers table stays on the stack, holding the lines' strings, as
     * does the userdata of lines, until the caller returns. */
    rq->headers = lines;
    rq->nheaders = n;
    return body;
}

/* ---- building -------------------------------------------------------- */

/* Lower-cases an ASCII header name (tolower() would follow the locale a
 * program set). */
static void lower_ascii(char *out, const char *name, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        out[i] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
    }
}

/* Puts `value` on top of the stack, after the value already found for the
 * same name when there is one (`joined`): repeated fields are joined with
 * ", " as RFC 9110 allows. */
static void push_joined(lua_State *L, int joined, const char *value, size_t vlen)
{
    if (!joined) {
        lua_pushlstring(L, value, vlen);
        return;
    }
    lua_pushliteral(L, ", ");
    lua_pushlstring(L, value, vlen);
    lua_concat(L, 3);
}

/* Adds one header to the table on top of the stack under its lower-case
 * name. Names are short: lower-cased on the C stack, so the only string
 * made is the one kept. */
static int add_header_field(void *ud, const char *name, size_t nlen, const char *value, size_t vlen)
{
    lua_State *L = ud;
    char small[64] = "";
    char *lower = nlen <= sizeof small ? small : lua_newuserdata(L, nlen);
    int joined;
    lower_ascii(lower, name, nlen);
    lua_pushlstring(L, lower, nlen);
    if (lower != small)
        lua_remove(L, -2);
    lua_pushvalue(L, -1);
    lua_rawget(L, -3);
    joined = !lua_isnil(L, -1);
    if (!joined)
        lua_pop(L, 1);
    push_joined(L, joined, value, vlen);
    lua_rawset(L, -3);
    return 0;
}

/* Pushes the table of a header block, made at its final size: one slot
 * per line of the block is an upper bound on its fields. */
static void push_headers(lua_State *L, const char *block, size_t len)
{
    const char *p = block, *end = block + len;
    int lines = 0;
    while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        lines++;
        p++;
    }
    lua_createtable(L, 0, lines);
    cerca_headers_parse(block, len, add_header_field, L);
}

static int l_headers(lua_State *L)
{
    size_t len;
    const char *block = luaL_checklstring(L, 1, &len);
    push_headers(L, block, len);
    return 1;
}

/* One field looked up by its lower-case name, with the table's rules. */
typedef struct {
    lua_State *L;
    int found;
} header_lookup;

static int found_header_field(void *ud, const char *name, size_t nlen, const char *value, size_t vlen)
{
    header_lookup *h = ud;
    (void)name;
    (void)nlen;
    push_joined(h->L, h->found, value, vlen);
    h->found = 1;
    return 0;
}

static int l_header(lua_State *L)
{
    size_t len, name_len;
    const char *block = luaL_checklstring(L, 1, &len);
    const char *name = luaL_checklstring(L, 2, &name_len);
    header_lookup h;
    h.L = L;
    h.found = 0;
    /* Longer names are never looked up (and a table would hold them
     * under their lower-case form, which such a lookup could not miss:
     * the callers ask for names they know). */
    luaL_argcheck(L, name_len <= 64, 2, "header name longer than 64 bytes");
    lua_settop(L, 2);
    cerca_headers_find(block, len, name, name_len, found_header_field, &h);
    if (!h.found)
        lua_pushnil(L);
    return 1;
}

static const luaL_Reg header_functions[] = {
    {"headers", l_headers},
    {"header", l_header},
    {NULL, NULL},
};

void cerca_headers_open(lua_State *L, int module)
{
    cerca_set_functions(L, module, header_functions, 0, 0);
}

/* The one place an answer's body becomes `json` or `json_error`: pops the
 * body string on top of the stack and sets the field in the response table
 * at (absolute) index res. Runs in a function that closes over the
 * CERCA_NUP values (CERCA_UV_DECODE). */
static void set_json(lua_State *L, int res)
{
    /* decode(body) -> value | nil, message */
    lua_pushvalue(L, lua_upvalueindex(CERCA_UV_DECODE));
    lua_insert(L, -2);
    if (lua_pcall(L, 1, 2, 0) != 0) {
        set_field(L, res, CERCA_NAME_JSON_ERROR);
    } else if (lua_isnil(L, -2)) {
        set_field(L, res, CERCA_NAME_JSON_ERROR);
        lua_pop(L, 1);
    } else {
        lua_pop(L, 1);
        set_field(L, res, CERCA_NAME_JSON);
    }
}

void cerca_push_response(lua_State *L, const cerca_response *rs, int decode)
{
    int res;
    lua_createtable(L, 0, 10);
    res = lua_gettop(L);
    lua_pushinteger(L, (lua_Integer)rs->status);
    set_field(L, res, CERCA_NAME_STATUS);
    /* The block as received: one string in which Lua can look for an echo
     * of a secret at once, and from which the table of fields is made
     * when it is asked for. */
    lua_pushlstring(L, rs->headers, rs->headers_len);
    set_field(L, res, CERCA_NAME_RAW_HEADERS);
    lua_pushlstring(L, rs->body, rs->body_len);
    if (rs->err == CERCA_OK && rs->body_len > 0 && decode)
        lua_pushvalue(L, -1); /* the same string, for the decoder */
    set_field(L, res, CERCA_NAME_BODY);
    lua_pushnumber(L, rs->total_time);
    set_field(L, res, CERCA_NAME_TIME);
    lua_pushinteger(L, (lua_Integer)rs->new_connects);
    set_field(L, res, CERCA_NAME_NEW_CONNECTS);
    /* Whether request bytes reached a socket: if so, the server may have
     * acted on the request, whatever came back. */
    lua_pushboolean(L, rs->request_sent);
    set_field(L, res, CERCA_NAME_REQUEST_SENT);
    if (rs->resent > 0) { /* rare: no name made for it */
        lua_pushinteger(L, (lua_Integer)rs->resent);
        lua_setfield(L, res, "resent");
    }
    if (rs->err != CERCA_OK) {
        lua_pushstring(L, err_kind_names[rs->err]);
        set_field(L, res, CERCA_NAME_ERROR);
        lua_pushstring(L, rs->err_message);
        set_field(L, res, CERCA_NAME_ERROR_MESSAGE);
        lua_pushinteger(L, rs->curl_code);
        set_field(L, res, CERCA_NAME_CURL_CODE);
    } else if (rs->body_len > 0 && decode) {
        set_json(L, res);
    }
}

int cerca_decode_response(lua_State *L)
{
    int failed, empty;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    get_field(L, 1, CERCA_NAME_ERROR);
    failed = !lua_isnil(L, -1);
    get_field(L, 1, CERCA_NAME_BODY);
    empty = lua_type(L, -1) != LUA_TSTRING || cerca_rawlen(L, -1) == 0;
    if (failed || empty) {
        lua_settop(L, 1);
        return 1;
    }
    lua_remove(L, 2);
    set_json(L, 1);
    return 1;
}
