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
 * space). Writes at most `cap` bytes to `out`; returns the decoded length,
 * or -1 when the text is not such base64 or does not fit. */
long cerca_base64_decode(const char *in, size_t len, unsigned char *out, size_t cap);

/* Standard base64 with padding of `len` bytes; `out` holds 4*ceil(len/3)+1. */
void cerca_base64_encode(const unsigned char *in, size_t len, char *out);

/* HMAC-SHA256 of `data` under `key`. Returns 0, or -1 on failure. */
int cerca_hmac_sha256(const unsigned char *key, size_t key_len, const char *data, size_t data_len,
                      unsigned char out[CERCA_MAC_LEN]);

/* Constant-time equality of two MACs of CERCA_MAC_LEN bytes. */
int cerca_mac_equal(const unsigned char *a, const unsigned char *b);

/* Wipes key material in a way the compiler cannot optimise away. */
void cerca_cleanse(void *p, size_t len);

#endif
