/*
 * Parser of a raw HTTP response header block (what libcurl hands to the
 * header callback, status line included). Pure C, no allocation, so it can
 * be fuzzed on its own (spec/fuzz/headers_fuzz.c).
 */
#ifndef CERCA_HEADERS_H
#define CERCA_HEADERS_H

#include <stddef.h>

/* Called once per header field, in order. `name` is not lower-cased and has
 * no surrounding white space; `value` has leading and trailing spaces and
 * tabs removed. Neither holds LF, and the name is an HTTP token. Return
 * non-zero to stop. */
typedef int (*cerca_header_fn)(void *ud, const char *name, size_t name_len,
                               const char *value, size_t value_len);

/* Walks the block line by line (LF or CRLF). Skips the status line, blank
 * lines, obsolete folded continuation lines and lines without a colon or
 * with an empty or space-holding name. Returns the number of fields seen. */
size_t cerca_headers_parse(const char *block, size_t len, cerca_header_fn fn, void *ud);

/* The fields cerca_headers_parse would give whose name is `name` (asked
 * for in lower case, matched in any ASCII case), in order; the lines of
 * other names are passed over without being parsed further. Returns the
 * number of such fields. */
size_t cerca_headers_find(const char *block, size_t len, const char *name, size_t name_len, cerca_header_fn fn,
                          void *ud);

#endif
