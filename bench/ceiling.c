/*
 * The ceiling: the create request cerca sends, done by plain C on one
 * reused libcurl easy handle, with no Lua at all. What cerca reaches against
 * the same server is compared with this.
 *
 *   ceiling [-f] [-c ca_file] [-w warmup] url api_key count
 *
 * Sends `warmup` untimed creates, then `count` timed ones, each
 * POST <url>/fleets/fleet_bench/webhooks with the headers cerca sends (a
 * fresh random Idempotency-Key per create included) and the body the Lua
 * driver sends. Every response body is read whole into a buffer (not
 * parsed); a status other than 201 is a failure. Prints one line:
 *
 *   RESULT creates=<count> seconds=<wall time> cpu_seconds=<own CPU time> connects=<new connections>
 *
 * (times and connections over the timed creates only)
 *
 * -f opens a new connection for every create (FRESH_CONNECT + FORBID_REUSE):
 * the client that does not reuse its TLS connection.
 */
#define _POSIX_C_SOURCE 200809L
#include <curl/curl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Byte for byte what cerca (Lua 5.4) encodes for the params of
 * bench/creates.lua; lua-cjson escapes "/" as "\/". */
static const char BODY[] = "{\"events\":[\"agent.created\",\"thread.completed\"],"
                           "\"url\":\"https:\\/\\/example.com\\/webhook\"}";

typedef struct {
    char *data;
    size_t len, cap;
} buffer;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    buffer *b = ud;
    size_t bytes = size * n;
    if (b->len + bytes > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        char *data;
        while (cap < b->len + bytes)
            cap *= 2;
        data = realloc(b->data, cap);
        if (data == NULL)
            return 0;
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, bytes);
    b->len += bytes;
    return bytes;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A UUIDv4 from OpenSSL's generator, drawn as cerca draws its keys: 512
 * random bytes at a time (one RAND_bytes call costs several UUIDs' worth of
 * work, and a getpid() system call for OpenSSL's own fork check). */
static int uuid4(char out[37])
{
    static const char hex[] = "0123456789abcdef";
    static unsigned char pool[512];
    static size_t left;
    unsigned char r[16];
    int i, j = 0;
    if (left < sizeof r) {
        if (RAND_bytes(pool, sizeof pool) != 1)
            return -1;
        left = sizeof pool;
    }
    memcpy(r, pool + sizeof pool - left, sizeof r);
    left -= sizeof r;
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[j++] = '-';
        out[j++] = hex[r[i] >> 4];
        out[j++] = hex[r[i] & 15];
    }
    out[j] = '\0';
    return 0;
}

/* The header lines, as cerca's C core keeps them from one create to the
 * next: built once, the Idempotency-Key line (first) rewritten in place. */
#define KEY_PREFIX "Idempotency-Key: "
static struct curl_slist *header_list(const char *auth)
{
    const char *lines[5];
    struct curl_slist *headers = NULL, *next;
    size_t i;
    lines[0] = KEY_PREFIX "00000000-0000-4000-8000-000000000000";
    lines[1] = auth;
    lines[2] = "Content-Type: application/json";
    lines[3] = "Accept: application/json";
    lines[4] = "Expect:"; /* as cerca: no 100-continue round trip */
    for (i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        next = curl_slist_append(headers, lines[i]);
        if (next == NULL) {
            curl_slist_free_all(headers);
            return NULL;
        }
        headers = next;
    }
    return headers;
}

/* One create; returns the number of new connections it opened, or -1. */
static long create(CURL *e, struct curl_slist *headers, buffer *body)
{
    long status = 0, connects = 0;
    CURLcode rc;

    /* A fresh key each time, of the placeholder's length (36). */
    if (uuid4(headers->data + strlen(KEY_PREFIX)) != 0)
        return -1;
    body->len = 0;
    rc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &connects);
    if (rc != CURLE_OK || status != 201) {
        fprintf(stderr, "ceiling: create failed: %s (HTTP %ld)\n", curl_easy_strerror(rc), status);
        return -1;
    }
    return connects;
}

static void usage(void)
{
    fprintf(stderr, "usage: ceiling [-f] [-c ca_file] [-w warmup] url api_key count\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *ca_file = NULL;
    char url[512], auth[512], agent[128];
    long warmup = 0, count, i, connects = 0, c;
    int fresh = 0, opt, status = 0;
    buffer body = {NULL, 0, 0};
    double start, seconds, cpu;
    clock_t cpu_start;
    CURL *e;
    struct curl_slist *headers;

    while ((opt = getopt(argc, argv, "fc:w:")) != -1) {
        switch (opt) {
        case 'f':
            fresh = 1;
            break;
        case 'c':
            ca_file = optarg;
            break;
        case 'w':
            warmup = strtol(optarg, NULL, 10);
            break;
        default:
            usage();
        }
    }
    if (argc - optind != 3)
        usage();
    count = strtol(argv[optind + 2], NULL, 10);
    if (count < 0 || warmup < 0)
        usage();
    snprintf(url, sizeof url, "%s/fleets/fleet_bench/webhooks", argv[optind]);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", argv[optind + 1]);

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || (e = curl_easy_init()) == NULL) {
        fprintf(stderr, "ceiling: cannot initialise libcurl\n");
        return 1;
    }
    /* The options cerca's C core sets on its handle (src/http.c). */
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)(1024 * 1024));
    /* As long as cerca's "cerca-lua/0.1.0 (Lua 5.4; libcurl <version>)". */
    snprintf(agent, sizeof agent, "cerca-lua/0.1.0 (ceiling; libcurl %s)",
             curl_version_info(CURLVERSION_NOW)->version);
    curl_easy_setopt(e, CURLOPT_USERAGENT, agent);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(sizeof BODY - 1));
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, BODY);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
    if (ca_file != NULL)
        curl_easy_setopt(e, CURLOPT_CAINFO, ca_file);
    if (fresh) {
        curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    }
    if ((headers = header_list(auth)) == NULL) {
        fprintf(stderr, "ceiling: out of memory\n");
        return 1;
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);

    for (i = 0; i < warmup; i++)
        if (create(e, headers, &body) < 0)
            status = 1;
    start = now();
    cpu_start = clock();
    for (i = 0; i < count && status == 0; i++) {
        c = create(e, headers, &body);
        if (c < 0)
            status = 1;
        else
            connects += c;
    }
    seconds = now() - start;
    cpu = (double)(clock() - cpu_start) / CLOCKS_PER_SEC;

    curl_easy_cleanup(e);
    curl_slist_free_all(headers);
    curl_global_cleanup();
    free(body.data);
    if (status != 0)
        return status;
    printf("RESULT creates=%ld seconds=%.6f cpu_seconds=%.6f connects=%ld\n", count, seconds, cpu,
           connects);
    return 0;
}
