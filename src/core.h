/*
 * What the files of cerca.core's Lua side share. Internal: nothing declared
 * here leaves the module (the build hides every symbol but
 * luaopen_cerca_core).
 *
 * luaopen_cerca_core (core.c) makes the module table and calls each
 * concern's open function, which sets that concern's functions in the
 * table and registers its metatables:
 *
 *   core.c     encode, decode, decode_response, encode_canonical,
 *              number_text, empty_array, null, MAX_DECODE_DEPTH (the
 *              JSON bridge; jdecode.c is the fast path of decoding,
 *              jencode.c that of canonical encoding and numbers)
 *   session.c  new_session and the session userdata
 *   lmulti.c   new_multi and the multi userdata
 *   sys.c      monotime, sleep, isatty, ignore_write_signals, curl_version
 *   lcrypto.c  uuid4, webhook_key (and its sign, verify)
 *   ltext.c    text_problem, percent_encode (byte checks of caller text),
 *              count, occurrences, written_once (redaction's bounds)
 *   lwalk.c    plain_left, list_problem, set_problem, field_problem, same_value
 *              (walks of arguments and answers)
 *   lhttp.c    headers, header (a response's header block, as a table or
 *              one field)
 *   journal.c  open_journal and the journal userdata
 *   names.c    the table of names (no function of its own in the module)
 *
 * lhttp.c also reads request tables and builds response tables for
 * session.c and lmulti.c. The files without Lua (http.c, url.c, multi.c,
 * headers.c, crypto.c, pid.c) include none of this.
 */
#ifndef CERCA_CORE_H
#define CERCA_CORE_H

#include "compat.h"
#include "http.h"

/* The values the JSON-using functions close over, at these upvalue
 * indices: the encode and decode functions of the module's private
 * lua-cjson instance, the empty-array sentinel (see core.c) and the table
 * of names (names.c). */
#define CERCA_UV_ENCODE 1
#define CERCA_UV_DECODE 2
#define CERCA_UV_EMPTY_ARRAY 3
#define CERCA_UV_NAMES 4
#define CERCA_NUP 4

/* The deepest nesting of arrays and objects JSON decoding accepts (both
 * decoders); exported as core.MAX_DECODE_DEPTH, so that every walk over a
 * decoded value reaches all of it. */
#define CERCA_MAX_DECODE_DEPTH 128

/* ---- scanning text eight bytes at a time ---------------------------- */

/* Whether any byte of the word w is below n (n <= 128), or equal to c: a
 * nonzero word flags it. A borrow can flag a byte only above a byte truly
 * flagged, so the lowest flagged byte of a word (or of several such words
 * or-ed together) is the first byte that holds; bytes of 0x80 and above
 * are never below n. */
#define CERCA_ONES 0x0101010101010101ULL
#define CERCA_HIGHS 0x8080808080808080ULL
#define CERCA_ANY_BELOW(w, n) (((w) - CERCA_ONES * (n)) & ~(w) & CERCA_HIGHS)
#define CERCA_ANY_EQUAL(w, c) CERCA_ANY_BELOW((w) ^ (CERCA_ONES * (c)), 1)

/* The offset (0 to 7) in a word read from memory of its first byte flagged
 * in hit (nonzero), or 8 where the host cannot tell (not little-endian, or
 * no bit count): the caller then reads that word a byte at a time. */
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define CERCA_FIRST_FLAGGED(hit) ((size_t)(__builtin_ctzll(hit) >> 3))
#else
#define CERCA_FIRST_FLAGGED(hit) ((size_t)8)
#endif

/* ---- arguments (core.c) --------------------------------------------- */

/* The whole number from min to max at argument `arg`, or an argument error
 * naming the range. Not luaL_checkinteger: under Lua 5.1 and LuaJIT it
 * drops a fraction (1.5 would be taken as 1), and a value out of range
 * would be cut by a cast. The bounds lie within +-2^53. */
lua_Integer cerca_check_whole(lua_State *L, int arg, lua_Integer min, lua_Integer max);

/* ---- registration (core.c) ------------------------------------------ */

/* Sets the functions of `l` into the table at (absolute) index t, each
 * closing over the nup values at uv .. uv + nup - 1 (none when nup is 0). */
void cerca_set_functions(lua_State *L, int t, const luaL_Reg *l, int uv, int nup);

/* A userdata's metatable. */
typedef struct {
    const char *name;        /* its registry name, for luaL_checkudata */
    const luaL_Reg *methods; /* its __index table (`close` among them) */
    lua_CFunction close;     /* idempotent: also __gc, and __close where Lua has it */
    lua_CFunction tostring;  /* __tostring, or NULL */
    lua_CFunction gc;        /* __gc, or NULL when `close` is it */
} cerca_class;

/* Registers the metatable of `c`, its methods closing over the nup values
 * at uv (as cerca_set_functions). Leaves the stack as it found it. */
void cerca_register_class(lua_State *L, const cerca_class *c, int uv, int nup);

/* ---- the concerns ---------------------------------------------------- */

/* Each sets its functions in the module table at (absolute) index `module`
 * and registers its metatables; session and multi functions close over the
 * CERCA_NUP values at uv. Each leaves the stack as it found it. */
void cerca_session_open(lua_State *L, int module, int uv);
void cerca_lmulti_open(lua_State *L, int module, int uv);
void cerca_sys_open(lua_State *L, int module);
void cerca_lcrypto_open(lua_State *L, int module);
void cerca_text_open(lua_State *L, int module);
void cerca_walk_open(lua_State *L, int module);
void cerca_journal_open(lua_State *L, int module);

/* ---- names (names.c) ------------------------------------------------ */

/* The index of each name in the table of names. The keys of answers come
 * last: the decoder looks those up (cerca_key_name). */
enum {
    CERCA_NAME_METHOD = 1,
    CERCA_NAME_HEADERS,
    CERCA_NAME_TIMEOUT_MS,
    CERCA_NAME_CONNECT_TIMEOUT_MS,
    CERCA_NAME_MAX_BODY,
    CERCA_NAME_NO_PROXY,
    CERCA_NAME_DECODE,
    CERCA_NAME_IDEMPOTENCY_KEY,
    CERCA_NAME_BODY,
    CERCA_NAME_STATUS,
    CERCA_NAME_RAW_HEADERS,
    CERCA_NAME_TIME,
    CERCA_NAME_NEW_CONNECTS,
    CERCA_NAME_REQUEST_SENT,
    CERCA_NAME_JSON,
    CERCA_NAME_JSON_ERROR,
    CERCA_NAME_ERROR_MESSAGE,
    CERCA_NAME_CURL_CODE,
    CERCA_NAME_TOKEN,
    CERCA_NAME_RESPONSE,
    CERCA_NAME_URL,
    CERCA_NAME_ERROR,
    CERCA_NAME_ID,
    CERCA_NAME_FLEET_ID,
    CERCA_NAME_EVENTS,
    CERCA_NAME_ENABLED,
    CERCA_NAME_CREATED_AT,
    CERCA_NAME_UPDATED_AT,
    CERCA_NAME_SECRET,
    CERCA_NAME_MESSAGE,
    CERCA_NAME_TYPE,
    CERCA_NAME_PARAM,
    CERCA_NAME_CODE,
    CERCA_NAME_DATA,
    CERCA_NAME_COUNT
};

/* Pushes the table of names (made once, by luaopen_cerca_core). */
void cerca_push_names(lua_State *L);

/* Pushes name `id` from the table of names at index `names` (an upvalue's
 * pseudo-index works). */
#define cerca_push_name(L, names, id) lua_rawgeti((L), (names), (id))

/* The table of names, in a function that closes over the CERCA_NUP values. */
#define CERCA_NAMES lua_upvalueindex(CERCA_UV_NAMES)

/* The text of name `id`, for messages. */
const char *cerca_name(int id);

/* The index of the answer key s[0 .. len - 1] in the table of names, or 0
 * when it is not one. */
int cerca_key_name(const char *s, size_t len);

/* ---- JSON (jdecode.c) ------------------------------------------------ */

/* Decodes `text` as lua-cjson would (as core.c configures it) and pushes
 * the value, returning 1; or pushes nothing and returns 0 where it
 * declines (an escape or number it does not read, malformed or too deep
 * input): then lua-cjson decodes it. `names` is the index of the table of
 * names (the answer keys found there are pushed from it). */
int cerca_json_decode_fast(lua_State *L, const char *text, size_t len, int names);

/* core.encode_canonical(value, array_mt) -> text | nil: the fast path of
 * json.lua's canonical encoder (jencode.c); nil when it declines. Closes
 * over the CERCA_NUP values. */
int cerca_encode_canonical(lua_State *L);

/* The JSON text of the (finite) number at idx, as both encoders write it
 * (jencode.c): its length in text, or 0 when it is not finite;
 * *cjson_digits tells whether it is lua-cjson's "%.14g" text. */
#define CERCA_NUMBER_TEXT 32
size_t cerca_number_text(lua_State *L, int idx, char *text, int *cjson_digits);
/* core.number_text(x) -> that text, cjson_digits | nil. */
int cerca_l_number_text(lua_State *L);
/* strtod in the C locale (JSON's "."), whatever the program's locale. */
double cerca_json_strtod(const char *text);

/* ---- requests and responses (lhttp.c) -------------------------------- */

/* The options of new_session and new_multi at index 1: { ca_file =,
 * user_agent = }, the table and both fields optional. Both values are left
 * on the stack, holding the strings until the caller returns (see
 * cerca_read_request). Raises on a field of the wrong type. */
void cerca_read_handle_options(lua_State *L, const char **ca_file, const char **user_agent);

/* Reads the request table at (absolute) index t into rq, and whether its
 * answer is decoded as JSON into *decode. Every string rq points into is
 * left on the stack (with the headers table) until the caller returns: a
 * finalizer that an allocation runs may drop the table's reference to one,
 * and collect. The body (a string, or nil) is at the index returned:
 * libcurl reads it without a copy, so a transfer that outlives the call
 * must anchor it. Its header lines are listed in `lines` (room for
 * `room`), or in a userdata left on the stack when there are more. Raises
 * on a malformed request. */
int cerca_read_request(lua_State *L, int t, cerca_request *rq, int *decode, const char **lines,
                       size_t room);

/* Whether the request table at index t wants its answer decoded as JSON:
 * unless its `decode` field is false. */
int cerca_request_decodes(lua_State *L, int t);

/* Registers core.headers and core.header in the module at index module. */
void cerca_headers_open(lua_State *L, int module);

/* Pushes the response table of one attempt. Called from a function that
 * closes over the CERCA_NUP values: decoding uses CERCA_UV_DECODE. */
void cerca_push_response(lua_State *L, const cerca_response *rs, int decode);

/* core.decode_response(res) -> res: decodes the body of a response table
 * made with decode = false (by another Lua VM: nginx's worker threads), as
 * cerca_push_response would have. Closes over the CERCA_NUP values. */
int cerca_decode_response(lua_State *L);

#endif
