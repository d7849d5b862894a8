/*
 * libFuzzer target for the response header parser (src/headers.c): the
 * only parser in the C core that reads bytes chosen by the server before
 * Lua sees them (request id, Retry-After, x-should-retry, Location ...).
 *
 * Besides the sanitizers' checks, every field handed out must lie inside
 * the input, have a non-empty token name, hold no LF, and carry no
 * surrounding white space in its value.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "headers.h"

struct bounds {
    const char *start, *end;
    size_t fields;
};

static void check(int ok)
{
    if (!ok)
        abort();
}

static int inside(const struct bounds *b, const char *p, size_t n)
{
    return p >= b->start && p + n <= b->end;
}

static int on_field(void *ud, const char *name, size_t nlen, const char *value, size_t vlen)
{
    struct bounds *b = ud;
    size_t i;
    check(inside(b, name, nlen) && inside(b, value, vlen));
    check(nlen > 0);
    for (i = 0; i < nlen; i++)
        check((unsigned char)name[i] > ' ' && (unsigned char)name[i] < 127 && name[i] != ':');
    check(memchr(value, '\n', vlen) == NULL);
    if (vlen > 0) {
        check(value[0] != ' ' && value[0] != '\t');
        check(value[vlen - 1] != ' ' && value[vlen - 1] != '\t');
    }
    b->fields++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly `size` bytes, so reading past it is caught. */
    char *copy = malloc(size ? size : 1);
    struct bounds b;
    size_t n;
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    b.start = copy;
    b.end = copy + size;
    b.fields = 0;
    n = cerca_headers_parse(copy, size, on_field, &b);
    check(n == b.fields);
    free(copy);
    return 0;
}
