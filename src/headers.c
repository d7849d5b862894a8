#include "headers.h"

#include <string.h>

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* A field name is an RFC 9110 token: no white space, no separators we
 * would misread. Anything else makes the line unusable. */
static int valid_name(const char *p, size_t n)
{
    size_t i;
    if (n == 0)
        return 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c <= ' ' || c >= 127 || c == ':')
            return 0;
    }
    return 1;
}

/* Whether the n bytes at p, lower-cased (ASCII), are `lower`. */
static int same_name(const char *p, const char *lower, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + ('a' - 'A'));
        if (c != (unsigned char)lower[i])
            return 0;
    }
    return 1;
}

static int is_status_line(const char *p, const char *line_end)
{
    return line_end - p >= 5 && memcmp(p, "HTTP/", 5) == 0;
}

/* The one walk of both entry points: every field, or (name != NULL) only
 * those of that name, whose lines are told apart without the colon search
 * or the name check the other lines get. */
static size_t walk(const char *block, size_t len, const char *name, size_t name_len, cerca_header_fn fn, void *ud)
{
    const char *p = block, *end = block + len;
    size_t count = 0;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = eol != NULL ? eol : end;
        const char *colon;
        if (line_end > p && line_end[-1] == '\r')
            line_end--;
        if (name == NULL)
            colon = memchr(p, ':', (size_t)(line_end - p));
        else
            /* The line's first colon is right after the name when the name
             * matches: a name holding a colon is no token (valid_name). */
            colon = (size_t)(line_end - p) > name_len && p[name_len] == ':' && same_name(p, name, name_len)
                        ? p + name_len
                        : NULL;
        if (colon != NULL && !is_status_line(p, line_end) && valid_name(p, (size_t)(colon - p))) {
            const char *v = colon + 1, *ve = line_end;
            while (v < ve && is_ows(*v))
                v++;
            while (ve > v && is_ows(ve[-1]))
                ve--;
            count++;
            if (fn(ud, p, (size_t)(colon - p), v, (size_t)(ve - v)) != 0)
                break;
        }
        p = eol != NULL ? eol + 1 : end;
    }
    return count;
}

size_t cerca_headers_find(const char *block, size_t len, const char *name, size_t name_len, cerca_header_fn fn,
                          void *ud)
{
    return walk(block, len, name, name_len, fn, ud);
}

size_t cerca_headers_parse(const char *block, size_t len, cerca_header_fn fn, void *ud)
{
    return walk(block, len, NULL, 0, fn, ud);
}
