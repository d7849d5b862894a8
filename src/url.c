/*
 * URLs parsed for libcurl (CURLOPT_CURLU). No Lua and no easy handle, so
 * that it can be fuzzed on its own against libcurl's whole parse
 * (spec/fuzz/url_fuzz.c).
 */
#include <string.h>

#include "url.h"

/* What each byte may be in a plainly written URL (cerca_url_path_at): 1,
 * part of an authority (not a space, control byte, "?", "#", "\\" or a byte
 * above 0x7e); 3, of a path too, one that every URL parser keeps as it is
 * (letters, digits, "-", ".", "_", "~" and "/"); 0, neither. */
#define IN_AUTHORITY 1
#define IN_PATH 2
static const unsigned char URL_BYTE[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 0,
    1, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 1, 0, 1, 1, 3,
    1, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 1, 1, 1, 3, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

size_t cerca_url_path_at(const char *url)
{
    const unsigned char *u = (const unsigned char *)url;
    size_t i = 0, at;
    while ((u[i] >= 'a' && u[i] <= 'z') || (u[i] >= 'A' && u[i] <= 'Z') ||
           (i > 0 && ((u[i] >= '0' && u[i] <= '9') || u[i] == '+' || u[i] == '-' || u[i] == '.')))
        i++;
    if (i == 0 || strncmp(url + i, "://", 3) != 0)
        return 0;
    at = i += 3;
    while (u[i] != '/') {
        if (!(URL_BYTE[u[i]] & IN_AUTHORITY))
            return 0; /* the end of the text (NUL) too */
        i++;
    }
    if (i == at)
        return 0;
    at = i;
    for (; u[i] != '\0'; i++) {
        if (!(URL_BYTE[u[i]] & IN_PATH) || (u[i] == '.' && u[i - 1] == '/'))
            return 0;
    }
    return i - at > 1 ? at : 0;
}

/* The longest URL libcurl parses (its CURL_MAX_INPUT_LENGTH): setting a
 * path alone measures the path only. */
#define URL_MAX 8000000

CURLU *cerca_url_parse(const char *before, size_t before_at, CURLU *before_parsed, const char *url,
                       size_t at, CURLUcode *uc)
{
    CURLU *u;
    *uc = CURLUE_OK;
    if (at != 0 && before != NULL && before_parsed != NULL && before_at == at && memcmp(before, url, at) == 0 &&
        strlen(url + at) <= URL_MAX - at) {
        u = curl_url_dup(before_parsed);
        if (u != NULL && curl_url_set(u, CURLUPART_PATH, url + at, 0) == CURLUE_OK)
            return u;
        curl_url_cleanup(u); /* parsed whole below */
    }
    if ((u = curl_url()) == NULL) {
        *uc = CURLUE_OUT_OF_MEMORY;
        return NULL;
    }
    *uc = curl_url_set(u, CURLUPART_URL, url, CERCA_URL_FLAGS);
    if (*uc != CURLUE_OK) {
        curl_url_cleanup(u);
        return NULL;
    }
    {
        /* libcurl copies the parse it is given (curl_url_dup), and 7.88's
         * copy drops an IPv6 host's zone id ("[fe80::1%25eth0]"): such a
         * URL goes as a string, which libcurl parses with its zone. */
        char *zone = NULL;
        if (curl_url_get(u, CURLUPART_ZONEID, &zone, 0) == CURLUE_OK) {
            curl_free(zone);
            curl_url_cleanup(u);
            return NULL;
        }
    }
    return u;
}
