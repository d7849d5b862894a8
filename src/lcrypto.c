/*
 * The Lua face of crypto.c: idempotency keys and Standard Webhooks v1
 * signatures.
 *
 *   core.uuid4() -> random UUID | nil, message
 *   core.webhook_key(secret_b64) -> key | nil, "invalid_secret" | nil, "too_long" (a key over 1024 bytes)
 *       the secret without its "whsec_" prefix, decoded once: the key
 *       keeps the HMAC states it leads to, not the decoded bytes
 *   key:sign(id, timestamp, body) -> base64 HMAC-SHA256 of id.timestamp.body
 *   key:verify(id, timestamp, body, signature_header, max_entries)
 *       -> true | false, "mismatch" | false, "no_v1"
 *       (see cerca_signature_match in crypto.h)
 *   key:close(), also __gc and __close: frees the states
 *
 * The signed content is hashed in its three parts: it is never built as
 * one string.
 */
#include <limits.h>
#include "core.h"
#include "crypto.h"

#define KEY_MT "cerca.core.webhook_key"
#define MAX_KEY_BYTES 1024

typedef struct {
    cerca_hmac hmac;
    int open;
} webhook_key;

static int l_uuid4(lua_State *L)
{
    char id[CERCA_UUID_LEN + 1];
    if (cerca_uuid4(id) != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "the random generator failed");
        return 2;
    }
    lua_pushlstring(L, id, CERCA_UUID_LEN);
    return 1;
}

static webhook_key *check_key(lua_State *L)
{
    return (webhook_key *)luaL_checkudata(L, 1, KEY_MT);
}

static int l_webhook_key(lua_State *L)
{
    size_t secret_len;
    const char *secret = luaL_checklstring(L, 1, &secret_len);
    /* Room for the bytes the padding stands for, which the decoder writes too. */
    unsigned char key[MAX_KEY_BYTES + 2];
    long key_len = cerca_base64_decode(secret, secret_len, key, sizeof key);
    /* Longer than the base64 of the longest key: refused for its length,
     * whatever it holds. */
    int too_long = key_len > MAX_KEY_BYTES || secret_len > (MAX_KEY_BYTES + 2) / 3 * 4;
    webhook_key *k = (webhook_key *)lua_newuserdata(L, sizeof *k);
    int rc = -1;
    k->open = 0;
    luaL_getmetatable(L, KEY_MT);
    lua_setmetatable(L, -2);
    if (key_len > 0 && !too_long)
        rc = cerca_hmac_init(&k->hmac, key, (size_t)key_len);
    cerca_cleanse(key, sizeof key);
    if (rc != 0) {
        lua_pushnil(L);
        if (too_long)
            lua_pushliteral(L, "too_long");
        else
            lua_pushliteral(L, "invalid_secret");
        return 2;
    }
    k->open = 1;
    return 1;
}

/* The MAC of the id (2), timestamp (3) and body (4) arguments. */
static void mac_of(lua_State *L, webhook_key *k, unsigned char mac[CERCA_MAC_LEN])
{
    const char *parts[5];
    size_t lens[5];
    int i;
    if (!k->open)
        luaL_error(L, "use of a closed webhook key");
    for (i = 0; i < 3; i++) {
        parts[2 * i] = luaL_checklstring(L, 2 + i, &lens[2 * i]);
        if (i < 2) {
            parts[2 * i + 1] = ".";
            lens[2 * i + 1] = 1;
        }
    }
    if (cerca_hmac_parts(&k->hmac, 5, parts, lens, mac) != 0)
        luaL_error(L, "HMAC-SHA256 failed");
}

static int l_key_sign(lua_State *L)
{
    unsigned char mac[CERCA_MAC_LEN];
    char b64[CERCA_MAC_B64_LEN + 1];
    mac_of(L, check_key(L), mac);
    cerca_base64_encode(mac, sizeof mac, b64);
    lua_pushlstring(L, b64, CERCA_MAC_B64_LEN);
    return 1;
}

static int l_key_verify(lua_State *L)
{
    unsigned char mac[CERCA_MAC_LEN];
    size_t header_len;
    const char *header;
    lua_Integer max_entries;
    int match;
    webhook_key *k = check_key(L);
    header = luaL_checklstring(L, 5, &header_len);
    max_entries = cerca_check_whole(L, 6, 0, INT_MAX);
    mac_of(L, k, mac);
    match = cerca_signature_match(header, header_len, max_entries > 0 ? (size_t)max_entries : 0, mac);
    cerca_cleanse(mac, sizeof mac);
    lua_pushboolean(L, match == 1);
    if (match == 1)
        return 1;
    if (match == 0)
        lua_pushliteral(L, "mismatch");
    else
        lua_pushliteral(L, "no_v1");
    return 2;
}

/* close, __gc and __close: one idempotent function. */
static int l_key_close(lua_State *L)
{
    webhook_key *k = check_key(L);
    if (k->open) {
        cerca_hmac_free(&k->hmac);
        k->open = 0;
    }
    return 0;
}

static int l_key_tostring(lua_State *L)
{
    /* Nothing of the key: only whether it is usable. */
    webhook_key *k = check_key(L);
    lua_pushfstring(L, "cerca.core.webhook_key (%s): %p", k->open ? "open" : "closed", (void *)k);
    return 1;
}

static const luaL_Reg key_methods[] = {
    {"sign", l_key_sign},
    {"verify", l_key_verify},
    {"close", l_key_close},
    {NULL, NULL},
};

static const cerca_class key_class = {
    KEY_MT, key_methods, l_key_close, l_key_tostring, NULL,
};

static const luaL_Reg crypto_functions[] = {
    {"uuid4", l_uuid4},
    {"webhook_key", l_webhook_key},
    {NULL, NULL},
};

void cerca_lcrypto_open(lua_State *L, int module)
{
    cerca_set_functions(L, module, crypto_functions, 0, 0);
    cerca_register_class(L, &key_class, 0, 0);
    lua_pushinteger(L, MAX_KEY_BYTES);
    lua_setfield(L, module, "MAX_KEY_BYTES");
}
