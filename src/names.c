/*
 * The names the core reads and writes on every call (the fields of a
 * request and of a response table) and the keys of the API's answers,
 * made into Lua strings once per Lua state: a table of them is one of the
 * values the session, multi and JSON functions close over
 * (CERCA_UV_NAMES). Pushing one is then an array read, where
 * lua_getfield, lua_setfield and lua_pushlstring hash the name and look it
 * up in the state's string table (a cache miss, most calls) every time.
 * The strings are the very ones those calls would give: Lua interns
 * every short string.
 */
#include <string.h>

#include "core.h"

typedef struct {
    const char *text;
    size_t len;
} name;

#define NAME(s) {s, sizeof s - 1}

static const name names[CERCA_NAME_COUNT] = {
    [CERCA_NAME_METHOD] = NAME("method"),
    [CERCA_NAME_HEADERS] = NAME("headers"),
    [CERCA_NAME_TIMEOUT_MS] = NAME("timeout_ms"),
    [CERCA_NAME_CONNECT_TIMEOUT_MS] = NAME("connect_timeout_ms"),
    [CERCA_NAME_MAX_BODY] = NAME("max_body"),
    [CERCA_NAME_NO_PROXY] = NAME("no_proxy"),
    [CERCA_NAME_DECODE] = NAME("decode"),
    [CERCA_NAME_IDEMPOTENCY_KEY] = NAME("idempotency_key"),
    [CERCA_NAME_BODY] = NAME("body"),
    [CERCA_NAME_STATUS] = NAME("status"),
    [CERCA_NAME_RAW_HEADERS] = NAME("raw_headers"),
    [CERCA_NAME_TIME] = NAME("time"),
    [CERCA_NAME_NEW_CONNECTS] = NAME("new_connects"),
    [CERCA_NAME_REQUEST_SENT] = NAME("request_sent"),
    [CERCA_NAME_JSON] = NAME("json"),
    [CERCA_NAME_JSON_ERROR] = NAME("json_error"),
    [CERCA_NAME_ERROR_MESSAGE] = NAME("error_message"),
    [CERCA_NAME_CURL_CODE] = NAME("curl_code"),
    [CERCA_NAME_TOKEN] = NAME("token"),
    [CERCA_NAME_RESPONSE] = NAME("response"),
    /* Keys of answers and events, which the decoder also looks for. */
    [CERCA_NAME_URL] = NAME("url"),
    [CERCA_NAME_ERROR] = NAME("error"),
    [CERCA_NAME_ID] = NAME("id"),
    [CERCA_NAME_FLEET_ID] = NAME("fleetId"),
    [CERCA_NAME_EVENTS] = NAME("events"),
    [CERCA_NAME_ENABLED] = NAME("enabled"),
    [CERCA_NAME_CREATED_AT] = NAME("createdAt"),
    [CERCA_NAME_UPDATED_AT] = NAME("updatedAt"),
    [CERCA_NAME_SECRET] = NAME("secret"),
    [CERCA_NAME_MESSAGE] = NAME("message"),
    [CERCA_NAME_TYPE] = NAME("type"),
    [CERCA_NAME_PARAM] = NAME("param"),
    [CERCA_NAME_CODE] = NAME("code"),
    [CERCA_NAME_DATA] = NAME("data"),
};

void cerca_push_names(lua_State *L)
{
    int i;
    lua_createtable(L, CERCA_NAME_COUNT - 1, 0);
    for (i = 1; i < CERCA_NAME_COUNT; i++) {
        lua_pushlstring(L, names[i].text, names[i].len);
        lua_rawseti(L, -2, i);
    }
}

const char *cerca_name(int id)
{
    return names[id].text;
}

int cerca_key_name(const char *s, size_t len)
{
    int id;
    /* The one candidate of each length (and first byte): a decode asks
     * for every key of every object. The comparison below decides, so a
     * name missing here is only read the slower way. */
    switch (len) {
    case 2: id = CERCA_NAME_ID; break;
    case 3: id = CERCA_NAME_URL; break;
    case 4: id = s[0] == 't' ? CERCA_NAME_TYPE : s[0] == 'c' ? CERCA_NAME_CODE : CERCA_NAME_DATA; break;
    case 5: id = s[0] == 'e' ? CERCA_NAME_ERROR : CERCA_NAME_PARAM; break;
    case 6: id = s[0] == 'e' ? CERCA_NAME_EVENTS : CERCA_NAME_SECRET; break;
    case 7: id = s[0] == 'f' ? CERCA_NAME_FLEET_ID : s[0] == 'e' ? CERCA_NAME_ENABLED : CERCA_NAME_MESSAGE; break;
    case 9: id = s[0] == 'c' ? CERCA_NAME_CREATED_AT : CERCA_NAME_UPDATED_AT; break;
    default: return 0;
    }
    return names[id].len == len && memcmp(names[id].text, s, len) == 0 ? id : 0;
}
