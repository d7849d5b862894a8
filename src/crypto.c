#include "crypto.h"

#include <limits.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

/* HMAC(), CRYPTO_memcmp and RAND_bytes as cerca uses them: OpenSSL 1.1.1 on. */
#if OPENSSL_VERSION_NUMBER < 0x10101000L
#error "cerca needs OpenSSL 1.1.1 or newer"
#endif

int cerca_uuid4(char out[CERCA_UUID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    int i, o = 0;
    if (RAND_bytes(b, (int)sizeof b) != 1)
        return -1;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 0x0f];
    }
    out[o] = '\0';
    return 0;
}

static int is_b64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

long cerca_base64_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
    size_t i, pad = 0, need;
    int n;
    /* EVP_DecodeBlock is lenient (white space, no padding check): vet the
     * text first, so only canonical base64 reaches it. */
    if (len == 0 || len % 4 != 0 || len > INT_MAX)
        return -1;
    if (in[len - 1] == '=')
        pad = in[len - 2] == '=' ? 2 : 1;
    for (i = 0; i < len - pad; i++)
        if (!is_b64_char((unsigned char)in[i]))
            return -1;
    need = len / 4 * 3;
    if (need > cap)
        return -1;
    n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
    if (n < 0)
        return -1;
    return (long)((size_t)n - pad);
}

void cerca_base64_encode(const unsigned char *in, size_t len, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

int cerca_hmac_sha256(const unsigned char *key, size_t key_len, const char *data, size_t data_len,
                      unsigned char out[CERCA_MAC_LEN])
{
    unsigned int out_len = 0;
    if (key_len > INT_MAX)
        return -1;
    if (HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)data, data_len, out, &out_len) ==
            NULL ||
        out_len != CERCA_MAC_LEN)
        return -1;
    return 0;
}

int cerca_mac_equal(const unsigned char *a, const unsigned char *b)
{
    return CRYPTO_memcmp(a, b, CERCA_MAC_LEN) == 0;
}

void cerca_cleanse(void *p, size_t len)
{
    OPENSSL_cleanse(p, len);
}
