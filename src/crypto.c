#include "crypto.h"
#include "pid.h"

#include <limits.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

/* EVP_MD_CTX_new, CRYPTO_memcmp and RAND_bytes as cerca uses them: OpenSSL 1.1.1 on. */
#if OPENSSL_VERSION_NUMBER < 0x10101000L
#error "cerca needs OpenSSL 1.1.1 or newer"
#endif

/* Random bytes for UUIDs, drawn from OpenSSL a pool at a time: one
 * RAND_bytes call costs as much as the rest of a UUID several times over.
 * The pool is per thread (nginx's thread pool runs Lua states in several
 * threads), and emptied first in a child, however it was made (fork() or a
 * raw clone that runs no pthread_atfork handler), so that a parent and its
 * child never hand out the same bytes. */
#define RANDOM_POOL 512
static __thread unsigned char random_pool[RANDOM_POOL];
static __thread size_t random_left;
static __thread pid_t random_owner; /* the process the pool was drawn in */

/* n (<= RANDOM_POOL) random bytes into out: 0, or -1 if the generator failed. */
static int random_bytes(unsigned char *out, size_t n)
{
    pid_t pid = cerca_pid();
    if (random_owner != pid) {
        OPENSSL_cleanse(random_pool, sizeof random_pool);
        random_left = 0;
        random_owner = pid;
    }
    if (random_left < n) {
        if (RAND_bytes(random_pool, (int)sizeof random_pool) != 1)
            return -1;
        random_left = sizeof random_pool;
    }
    memcpy(out, random_pool + sizeof random_pool - random_left, n);
    /* Bytes handed out are not kept. */
    OPENSSL_cleanse(random_pool + sizeof random_pool - random_left, n);
    random_left -= n;
    return 0;
}

int cerca_uuid4(char out[CERCA_UUID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    int i, o = 0;
    if (random_bytes(b, sizeof b) != 0)
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

/* The 6-bit value of a base64 character, or -1. */
static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

long cerca_base64_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
    size_t i, pad = 0, need;
    int n;
    /* EVP_DecodeBlock is lenient (white space, no padding check, bits
     * after the last byte ignored): vet the text first, so only canonical
     * base64 reaches it, the one spelling of its bytes. */
    if (len == 0 || len % 4 != 0 || len > INT_MAX)
        return -1;
    if (in[len - 1] == '=')
        pad = in[len - 2] == '=' ? 2 : 1;
    for (i = 0; i < len - pad; i++)
        if (b64_value((unsigned char)in[i]) < 0)
            return -1;
    /* Before padding, the last character carries bits no byte holds (2 of
     * them before "=", 4 before "=="): zero in the canonical spelling. */
    if (pad > 0 && (b64_value((unsigned char)in[len - pad - 1]) & (pad == 1 ? 0x3 : 0xf)) != 0)
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

#define SHA256_BLOCK 64

void cerca_hmac_free(cerca_hmac *h)
{
    EVP_MD_CTX_free(h->inner);
    EVP_MD_CTX_free(h->outer);
    EVP_MD_CTX_free(h->work);
    h->inner = h->outer = h->work = NULL;
}

/* RFC 2104: the key padded (or first hashed) to one block, XORed with the
 * pad byte, is the first block each state absorbs. */
static int absorb_pad(EVP_MD_CTX *ctx, const unsigned char *k0, unsigned char pad)
{
    unsigned char block[SHA256_BLOCK];
    int i, ok;
    for (i = 0; i < SHA256_BLOCK; i++)
        block[i] = (unsigned char)(k0[i] ^ pad);
    ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 && EVP_DigestUpdate(ctx, block, sizeof block) == 1;
    OPENSSL_cleanse(block, sizeof block);
    return ok;
}

int cerca_hmac_init(cerca_hmac *h, const unsigned char *key, size_t key_len)
{
    unsigned char k0[SHA256_BLOCK];
    int ok;
    memset(k0, 0, sizeof k0);
    h->inner = EVP_MD_CTX_new();
    h->outer = EVP_MD_CTX_new();
    h->work = EVP_MD_CTX_new();
    ok = h->inner != NULL && h->outer != NULL && h->work != NULL;
    if (ok && key_len > SHA256_BLOCK)
        ok = EVP_Digest(key, key_len, k0, NULL, EVP_sha256(), NULL) == 1;
    else if (ok)
        memcpy(k0, key, key_len);
    ok = ok && absorb_pad(h->inner, k0, 0x36) && absorb_pad(h->outer, k0, 0x5c);
    OPENSSL_cleanse(k0, sizeof k0);
    if (!ok) {
        cerca_hmac_free(h);
        return -1;
    }
    return 0;
}

int cerca_hmac_parts(cerca_hmac *h, size_t n, const char *const *parts, const size_t *lens,
                     unsigned char out[CERCA_MAC_LEN])
{
    unsigned char inner[CERCA_MAC_LEN];
    unsigned int len = 0;
    size_t i;
    int ok = EVP_MD_CTX_copy_ex(h->work, h->inner) == 1;
    for (i = 0; ok && i < n; i++)
        ok = EVP_DigestUpdate(h->work, parts[i], lens[i]) == 1;
    ok = ok && EVP_DigestFinal_ex(h->work, inner, &len) == 1 && len == CERCA_MAC_LEN &&
         EVP_MD_CTX_copy_ex(h->work, h->outer) == 1 && EVP_DigestUpdate(h->work, inner, sizeof inner) == 1 &&
         EVP_DigestFinal_ex(h->work, out, &len) == 1 && len == CERCA_MAC_LEN;
    return ok ? 0 : -1;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

int cerca_signature_match(const char *header, size_t len, size_t max_entries,
                          const unsigned char mac[CERCA_MAC_LEN])
{
    /* Room for a longer decoding, which then does not match. */
    unsigned char candidate[CERCA_MAC_LEN + 3];
    size_t i = 0, seen = 0;
    int any_v1 = 0, found = 0;
    while (i < len) {
        size_t start, comma;
        while (i < len && is_space(header[i]))
            i++;
        if (i == len)
            break;
        if (++seen > max_entries)
            break;
        start = i;
        while (i < len && !is_space(header[i]))
            i++;
        /* version,signature: the version runs to the first comma and is
         * not empty, the signature after it is not empty either. */
        for (comma = start; comma < i && header[comma] != ','; comma++)
            ;
        if (comma == start || comma + 1 >= i)
            continue;
        if (comma - start != 2 || header[start] != 'v' || header[start + 1] != '1')
            continue;
        any_v1 = 1;
        if (cerca_base64_decode(header + comma + 1, i - comma - 1, candidate, sizeof candidate) ==
            CERCA_MAC_LEN)
            found |= cerca_mac_equal(mac, candidate);
    }
    if (found)
        return 1;
    return any_v1 ? 0 : -1;
}

int cerca_mac_equal(const unsigned char *a, const unsigned char *b)
{
    return CRYPTO_memcmp(a, b, CERCA_MAC_LEN) == 0;
}

void cerca_cleanse(void *p, size_t len)
{
    OPENSSL_cleanse(p, len);
}
