/*
 * URLs parsed once for libcurl (CURLOPT_CURLU), so that libcurl neither
 * parses a URL given as a string on every transfer nor, when only the
 * path changes from one URL to the next (a batch names another fleet on
 * every create), parses the whole URL again. Pure C over libcurl's URL
 * API, no Lua: fuzzed on its own (spec/fuzz/url_fuzz.c).
 */
#ifndef CERCA_URL_H
#define CERCA_URL_H

#include <stddef.h>

#include <curl/curl.h>

/* The flags libcurl parses a URL given as a string with. */
#define CERCA_URL_FLAGS (CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME)

/* Where the path of a plainly written URL starts: the index of the "/"
 * that ends "scheme://authority", or 0 when the URL is not that plain. The
 * authority holds no "?", "#", "\", space, control byte or byte above
 * 0x7e (the path's own start is its first "/"); the path is longer than
 * "/", holds only letters, digits, "-", ".", "_", "~" and "/" (bytes every
 * URL parser keeps as they are), and no segment starts with "." (no "."
 * or ".." for a parser to remove). Such a URL's parse is its authority's
 * parse and its path, byte for byte. */
size_t cerca_url_path_at(const char *url);

/* The parse of url (whose cerca_url_path_at is `at`): the parse of the URL
 * before (`before`, its path_at and its parse, or NULLs for none) with the
 * path replaced, when both URLs are plain and share their "scheme://
 * authority" byte for byte; else a whole parse, as libcurl parses a URL
 * string (CERCA_URL_FLAGS), into a new handle: one that holds a URL reads
 * the next as relative to it ("/x", "host/x" or "//host/x" would keep the
 * host before, and the key would go there). The caller owns the result
 * (curl_url_cleanup). NULL, with *uc saying why, when url is refused or
 * memory runs out; NULL with *uc CURLUE_OK when no parse can stand for the
 * URL (libcurl's copy of it would differ) and the URL is to be given to
 * libcurl as a string. */
CURLU *cerca_url_parse(const char *before, size_t before_at, CURLU *before_parsed, const char *url,
                       size_t at, CURLUcode *uc);

#endif
