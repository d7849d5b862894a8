/*
 * What the core needs from OpenSSL's libcrypto, behind plain C functions.
 */
#ifndef CERCA_CRYPTO_H
#define CERCA_CRYPTO_H

#define CERCA_UUID_LEN 36

/* Writes a random (version 4) UUID, lower-case hex, NUL-terminated, from
 * the OpenSSL CSPRNG. Returns 0, or -1 if the generator failed. */
int cerca_uuid4(char out[CERCA_UUID_LEN + 1]);

#endif
