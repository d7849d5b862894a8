/*
 * libFuzzer target for the strict base64 decoder (src/crypto.c), which reads
 * the signatures of deliveries and the secrets handed to webhooks.verify.
 *
 * Invariants: a decode never writes past its buffer (ASan), a successful
 * one has the length the padding implies, and re-encoding what it gave
 * spells the input exactly (canonical: one spelling per byte string) and
 * decodes to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"

static void check(int ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size ? size : 1);
    size_t cap = size / 4 * 3;
    unsigned char *out = malloc(cap ? cap : 1), *again;
    char *text;
    long n, m;
    if (in == NULL || out == NULL)
        goto done;
    memcpy(in, data, size);
    n = cerca_base64_decode(in, size, out, cap);
    if (n < 0)
        goto done;
    check(size % 4 == 0 && size > 0);
    check((size_t)n == cap - (in[size - 1] == '=') - (size > 1 && in[size - 2] == '='));
    text = malloc(((size_t)n + 2) / 3 * 4 + 1);
    again = malloc(cap ? cap : 1);
    if (text != NULL && again != NULL) {
        cerca_base64_encode(out, (size_t)n, text);
        check(strlen(text) == size && memcmp(text, in, size) == 0);
        m = cerca_base64_decode(text, strlen(text), again, cap);
        check(m == n && memcmp(out, again, (size_t)n) == 0);
    }
    free(text);
    free(again);
done:
    free(in);
    free(out);
    return 0;
}
