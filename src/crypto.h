/*
 * What the core needs from OpenSSL's libcrypto, behind plain C functions:
 * random UUIDs for idempotency keys, and the HMAC-SHA256 / base64 /
 * constant-time comparison of Standard Webhooks signatures.
 */
#ifndef CERCA_CRYPTO_H
#define CERCA_CRYPTO_H

#include <stddef.h>

#define CERCA_UUID_LEN 36
#define CERCA_MAC_LEN 32
#define CERCA_MAC_B64_LEN 44 /* base64 of 32 bytes, with padding */

/* Writes a random (version 4) UUID, lower-case hex, NUL-terminated, from
 * the OpenSSL CSPRNG. Returns 0, or -1 if the generator failed. */
int cerca_uuid4(char out[CERCA_UUID_LEN + 1]);

/* Strict standard base64 (RFC 4648 alphabet, padding required, no white
 * space, the bits after the last byte zero: each byte string has one
 * spelling). Writes len/4*3 bytes to `out` (the padding's too) when that
 * is at most `cap`; returns the decoded length, or -1 when the text is not
 * such base64 or does not fit. */
long cerca_base64_decode(const char *in, size_t len, unsigned char *out, size_t cap);

/* Standard base64 with padding of `len` bytes; `out` holds 4*ceil(len/3)+1. */
void cerca_base64_encode(const unsigned char *in, size_t len, char *out);

/* An HMAC-SHA256 key, made once: the SHA-256 states after the key's inner
 * and outer pads, so that each MAC costs the hashing of its data only (and
 * no look-up of the algorithm). Not for use by two threads at once. */
struct evp_md_ctx_st;
typedef struct {
    struct evp_md_ctx_st *inner, *outer, *work;
} cerca_hmac;

/* Keys `h` with `key`. Returns 0, or -1 on failure (then h holds nothing
 * to free). The key bytes are not kept. */
int cerca_hmac_init(cerca_hmac *h, const unsigned char *key, size_t key_len);

/* HMAC-SHA256 of the concatenation of the `n` parts (parts[i], lens[i]),
 * without building it. Returns 0, or -1 on failure. */
int cerca_hmac_parts(cerca_hmac *h, size_t n, const char *const *parts, const size_t *lens,
                     unsigned char out[CERCA_MAC_LEN]);

/* Frees the states (which hold what the key leads to). Idempotent. */
void cerca_hmac_free(cerca_hmac *h);

/* Whether a Standard Webhooks `webhook-signature` value holds a v1 entry
 * whose MAC equals `mac`: entries are separated by white space, each
 * `version,base64`; at most `max_entries` are examined; a v1 signature
 * that is not strict base64 of 32 bytes never matches; comparisons are
 * constant-time. Returns 1 (a match), 0 (v1 entries, none matching) or -1
 * (no v1 entry among those examined). */
int cerca_signature_match(const char *header, size_t len, size_t max_entries,
                          const unsigned char mac[CERCA_MAC_LEN]);

/* Constant-time equality of two MACs of CERCA_MAC_LEN bytes. */
int cerca_mac_equal(const unsigned char *a, const unsigned char *b);

/* Wipes key material in a way the compiler cannot optimise away. */
void cerca_cleanse(void *p, size_t len);

#endif
