/*
 * libFuzzer target for the URL parse (src/url.c), against libcurl's own.
 * The input is two URLs, the one sent before and the next, split at the
 * first LF (each ends at a NUL); a next URL that starts with "/" is a path
 * under the "scheme://authority" of the one before, when that one is
 * plain (the case where the parse before is reused). The next URL's parse from cerca_url_parse,
 * given the parse before (the path replaced when both are plain), as
 * libcurl uses it (its own copy, curl_url_dup, taken for each transfer),
 * must be libcurl's whole parse of the URL string, part for part: the same
 * refusal, or the same scheme, user, password, options, host, zone, port,
 * path, query, fragment and whole URL. The key goes where that parse
 * points. No parse (NULL, CURLUE_OK) means the string itself is given to
 * libcurl: right whenever libcurl parses the string.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "url.h"

static void check(int ok)
{
    if (!ok)
        abort();
}

static char *text(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    check(s != NULL);
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

static const CURLUPart PARTS[] = {
    CURLUPART_URL,  CURLUPART_SCHEME, CURLUPART_USER, CURLUPART_PASSWORD, CURLUPART_OPTIONS, CURLUPART_HOST,
    CURLUPART_ZONEID, CURLUPART_PORT, CURLUPART_PATH, CURLUPART_QUERY,    CURLUPART_FRAGMENT,
};

static void same_parse(CURLU *a, CURLU *b)
{
    size_t i;
    for (i = 0; i < sizeof PARTS / sizeof *PARTS; i++) {
        char *x = NULL, *y = NULL;
        CURLUcode cx = curl_url_get(a, PARTS[i], &x, 0), cy = curl_url_get(b, PARTS[i], &y, 0);
        check(cx == cy);
        check((x == NULL) == (y == NULL));
        if (x != NULL)
            check(strcmp(x, y) == 0);
        curl_free(x);
        curl_free(y);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *lf = memchr(data, '\n', size);
    char *before, *url;
    size_t before_at, at;
    CURLU *before_parsed, *next, *whole;
    CURLUcode uc, whole_uc;
    if (lf == NULL)
        return 0;
    before = text(data, (size_t)(lf - data));
    before_at = cerca_url_path_at(before);
    url = text(lf + 1, size - (size_t)(lf - data) - 1);
    if (url[0] == '/' && before_at != 0) {
        size_t n = strlen(url);
        char *joined = malloc(before_at + n + 1);
        check(joined != NULL);
        memcpy(joined, before, before_at);
        memcpy(joined + before_at, url, n + 1);
        free(url);
        url = joined;
    }
    at = cerca_url_path_at(url);
    check(before_at == 0 || before[before_at] == '/');
    check(at == 0 || url[at] == '/');
    before_parsed = cerca_url_parse(NULL, 0, NULL, before, before_at, &uc);
    /* As set_url keeps it: a URL given as a string leaves nothing to reuse. */
    next = cerca_url_parse(before, before_parsed != NULL ? before_at : 0, before_parsed, url, at, &uc);
    whole = curl_url();
    check(whole != NULL);
    whole_uc = curl_url_set(whole, CURLUPART_URL, url, CERCA_URL_FLAGS);
    if (whole_uc != CURLUE_OK) {
        check(next == NULL && uc == whole_uc);
    } else if (next != NULL) {
        CURLU *used = curl_url_dup(next);
        check(used != NULL);
        same_parse(used, whole);
        curl_url_cleanup(used);
    } else {
        check(uc == CURLUE_OK);
    }
    curl_url_cleanup(next);
    curl_url_cleanup(whole);
    curl_url_cleanup(before_parsed);
    free(before);
    free(url);
    return 0;
}
