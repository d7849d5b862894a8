/*
 * The Lua face of crypto.c: idempotency keys and Standard Webhooks v1
 * signatures.
 *
 *   core.uuid4() -> random UUID | nil, message
 *   core.webhook_signature(secret_b64, content)
 *       -> base64 HMAC-SHA256 | nil, "invalid_secret"
 *   core.webhook_verify(secret_b64, content, { base64 MAC, ... })
 *       -> true | false | nil, "invalid_secret"
 *
 * The secret is given without its "whsec_" prefix; its decoded bytes are
 * wiped once used.
 */
#include "core.h"
#include "crypto.h"

#define MAX_KEY_BYTES 1024

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

/* Decodes the base64 secret at index 1 (prefix already removed) and MACs
 * the content at index 2. Returns 0, or -1 when the secret is unusable. */
static int mac_of(lua_State *L, unsigned char mac[CERCA_MAC_LEN])
{
    size_t secret_len, content_len;
    const char *secret = luaL_checklstring(L, 1, &secret_len);
    const char *content = luaL_checklstring(L, 2, &content_len);
    unsigned char key[MAX_KEY_BYTES];
    long key_len = cerca_base64_decode(secret, secret_len, key, sizeof key);
    int rc = -1;
    if (key_len > 0)
        rc = cerca_hmac_sha256(key, (size_t)key_len, content, content_len, mac);
    cerca_cleanse(key, sizeof key);
    return rc;
}

static int l_webhook_signature(lua_State *L)
{
    unsigned char mac[CERCA_MAC_LEN];
    char b64[CERCA_MAC_B64_LEN + 1];
    if (mac_of(L, mac) != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "invalid_secret");
        return 2;
    }
    cerca_base64_encode(mac, sizeof mac, b64);
    lua_pushlstring(L, b64, CERCA_MAC_B64_LEN);
    return 1;
}

/* Each candidate is decoded strictly and compared in constant time; one
 * that is not base64 of exactly 32 bytes never matches. */
static int l_webhook_verify(lua_State *L)
{
    unsigned char mac[CERCA_MAC_LEN], candidate[CERCA_MAC_LEN + 3];
    size_t i, n;
    int found = 0;
    luaL_checktype(L, 3, LUA_TTABLE);
    if (mac_of(L, mac) != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "invalid_secret");
        return 2;
    }
    n = cerca_rawlen(L, 3);
    for (i = 1; i <= n && !found; i++) {
        size_t len;
        const char *text;
        lua_rawgeti(L, 3, (int)i);
        text = lua_tolstring(L, -1, &len);
        if (text != NULL &&
            cerca_base64_decode(text, len, candidate, sizeof candidate) == CERCA_MAC_LEN)
            found = cerca_mac_equal(mac, candidate);
        lua_pop(L, 1);
    }
    lua_pushboolean(L, found);
    return 1;
}

static const luaL_Reg crypto_functions[] = {
    {"uuid4", l_uuid4},
    {"webhook_signature", l_webhook_signature},
    {"webhook_verify", l_webhook_verify},
    {NULL, NULL},
};

void cerca_lcrypto_open(lua_State *L, int module)
{
    cerca_set_functions(L, module, crypto_functions, 0, 0);
}
