/*
 * libFuzzer target for the response header parser (src/headers.c): the
 * only parser in the C core that reads bytes chosen by the server before
 * Lua sees them (request id, Retry-After, x-should-retry, Location ...).
 *
 * Besides the sanitizers' checks, every field handed out must lie inside
 * the input, have a non-empty token name, hold no LF, and carry no
 * surrounding white space in its value; and looking one name up
 * (cerca_headers_find) must give exactly the fields of that name the whole
 * parse gives, in the same order.
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

/* The fields of one name, as pointers into the input. */
#define MAX_SEEN 64
struct seen {
    const char *want; /* lower case */
    size_t want_len, n;
    const char *name[MAX_SEEN], *value[MAX_SEEN];
    size_t value_len[MAX_SEEN];
};

static int same_lower(const char *name, size_t nlen, const char *want, size_t wlen)
{
    size_t i;
    if (nlen != wlen)
        return 0;
    for (i = 0; i < nlen; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        if (c != (unsigned char)want[i])
            return 0;
    }
    return 1;
}

static void note(struct seen *s, const char *name, const char *value, size_t vlen)
{
    if (s->n < MAX_SEEN) {
        s->name[s->n] = name;
        s->value[s->n] = value;
        s->value_len[s->n] = vlen;
    }
    s->n++;
}

/* cerca_headers_parse's fields, kept when their name is the one wanted. */
static int on_any(void *ud, const char *name, size_t nlen, const char *value, size_t vlen)
{
    struct seen *s = ud;
    if (same_lower(name, nlen, s->want, s->want_len))
        note(s, name, value, vlen);
    return 0;
}

/* cerca_headers_find's fields: each must be of the name wanted. */
static int on_found(void *ud, const char *name, size_t nlen, const char *value, size_t vlen)
{
    struct seen *s = ud;
    check(same_lower(name, nlen, s->want, s->want_len));
    note(s, name, value, vlen);
    return 0;
}

/* Looks `want` up both ways; they must agree field for field. */
static void compare_lookup(const char *block, size_t size, const char *want, size_t want_len)
{
    struct seen all, found;
    size_t i, n;
    memset(&all, 0, sizeof all);
    memset(&found, 0, sizeof found);
    all.want = found.want = want;
    all.want_len = found.want_len = want_len;
    cerca_headers_parse(block, size, on_any, &all);
    n = cerca_headers_find(block, size, want, want_len, on_found, &found);
    check(n == found.n && found.n == all.n);
    for (i = 0; i < all.n && i < MAX_SEEN; i++)
        check(all.name[i] == found.name[i] && all.value[i] == found.value[i] &&
              all.value_len[i] == found.value_len[i]);
}

/* Each name the parse gives, lower-cased (the first few), and the input's
 * first bytes taken as a name whatever they hold, are looked up. */
static int on_name(void *ud, const char *name, size_t nlen, const char *value, size_t vlen)
{
    struct bounds *b = ud;
    char lower[64];
    size_t i;
    (void)value;
    (void)vlen;
    if (b->fields >= 8)
        return 1;
    b->fields++;
    if (nlen > sizeof lower)
        return 0;
    for (i = 0; i < nlen; i++) {
        unsigned char c = (unsigned char)name[i];
        lower[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    compare_lookup(b->start, (size_t)(b->end - b->start), lower, nlen);
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
    b.fields = 0;
    cerca_headers_parse(copy, size, on_name, &b);
    compare_lookup(copy, size, copy, size < 12 ? size : 12);
    /* What stands before the input's first colon, lower-cased, as a name
     * (a status line, spaces, a LF: names the parse refuses). */
    {
        const char *colon = memchr(copy, ':', size < 64 ? size : 64);
        char lower[64];
        size_t i, n = colon != NULL ? (size_t)(colon - copy) : 0;
        for (i = 0; i < n; i++) {
            unsigned char c = (unsigned char)copy[i];
            lower[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        }
        compare_lookup(copy, size, lower, n);
    }
    free(copy);
    return 0;
}
