/*
 * The ceiling of delivery verification: a Standard Webhooks v1 signature
 * checked by a plain C loop over OpenSSL, with no Lua and no JSON decode.
 * What the verifiers of bench/run.lua's verification table are compared with.
 *
 *   verify_ceiling [-w warmup] body_file secret msg_id timestamp signature count
 *
 * Set up once: the secret decoded (after its whsec_ prefix), and the key's
 * HMAC-SHA256 inner and outer states (key XOR ipad, key XOR opad absorbed).
 * Then, for each of `warmup` untimed and `count` timed verifies, the whole
 * check of a delivery whose body is already in memory:
 *   - the timestamp parsed and compared with the clock (300 s tolerance);
 *   - HMAC-SHA256 of msg_id "." timestamp "." body: the inner state copied,
 *     the three parts hashed in place (no string built), the outer state
 *     copied over the inner digest;
 *   - the signature header split on spaces, each "v1," entry base64-decoded
 *     and compared with the MAC in constant time (CRYPTO_memcmp).
 * Any verify that does not pass aborts the run. Before the timed loop a
 * copy of the body with one byte changed must fail. Prints one line:
 *
 *   RESULT cpu_seconds=<own CPU time> seconds=<wall time> verifies=<count>
 */
#define _POSIX_C_SOURCE 200809L
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAC_LEN 32
#define BLOCK 64
#define TOLERANCE 300

static EVP_MD_CTX *inner_state, *outer_state, *work;

static void die(const char *what)
{
    fprintf(stderr, "verify_ceiling: %s\n", what);
    exit(1);
}

static double now(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *data;
    long size = 0;
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
        die("cannot read the body file");
    data = malloc((size_t)size + 1);
    if (data == NULL || fread(data, 1, (size_t)size, f) != (size_t)size)
        die("cannot read the body file");
    fclose(f);
    *len = (size_t)size;
    return data;
}

/* Canonical padded base64 into out (room for len / 4 * 3 bytes): the
 * decoded length, or -1. */
static long base64_decode(const char *in, size_t len, unsigned char *out)
{
    size_t pad = 0;
    int n;
    if (len == 0 || len % 4 != 0)
        return -1;
    if (in[len - 1] == '=')
        pad = in[len - 2] == '=' ? 2 : 1;
    n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
    return n < 0 ? -1 : (long)((size_t)n - pad);
}

static void absorb_pad(EVP_MD_CTX *ctx, const unsigned char *k0, unsigned char pad)
{
    unsigned char block[BLOCK];
    int i;
    for (i = 0; i < BLOCK; i++)
        block[i] = (unsigned char)(k0[i] ^ pad);
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 || EVP_DigestUpdate(ctx, block, BLOCK) != 1)
        die("cannot set up the key");
}

static void set_key(const char *secret)
{
    unsigned char key[256], k0[BLOCK];
    size_t len;
    long key_len = 0;
    if (strncmp(secret, "whsec_", 6) == 0)
        secret += 6;
    len = strlen(secret);
    if (len / 4 * 3 > sizeof key || (key_len = base64_decode(secret, len, key)) <= 0)
        die("the secret is not whsec_ + base64");
    memset(k0, 0, sizeof k0);
    if (key_len > BLOCK) {
        if (EVP_Digest(key, (size_t)key_len, k0, NULL, EVP_sha256(), NULL) != 1)
            die("cannot hash the key");
    } else {
        memcpy(k0, key, (size_t)key_len);
    }
    inner_state = EVP_MD_CTX_new();
    outer_state = EVP_MD_CTX_new();
    work = EVP_MD_CTX_new();
    if (inner_state == NULL || outer_state == NULL || work == NULL)
        die("out of memory");
    absorb_pad(inner_state, k0, 0x36);
    absorb_pad(outer_state, k0, 0x5c);
}

/* 1 when the delivery verifies, 0 when not. */
static int verify(const char *id, const char *timestamp, const char *signature, const char *body,
                  size_t body_len)
{
    unsigned char inner[MAC_LEN], mac[MAC_LEN], candidate[MAC_LEN + 3];
    unsigned int len;
    size_t id_len = strlen(id), ts_len = strlen(timestamp), i = 0, n = strlen(signature);
    char *end;
    long long ts = strtoll(timestamp, &end, 10);
    long long t = (long long)time(NULL);
    int found = 0;
    if (end == timestamp || *end != '\0' || ts < t - TOLERANCE || ts > t + TOLERANCE)
        return 0;
    if (EVP_MD_CTX_copy_ex(work, inner_state) != 1 || EVP_DigestUpdate(work, id, id_len) != 1 ||
        EVP_DigestUpdate(work, ".", 1) != 1 || EVP_DigestUpdate(work, timestamp, ts_len) != 1 ||
        EVP_DigestUpdate(work, ".", 1) != 1 || EVP_DigestUpdate(work, body, body_len) != 1 ||
        EVP_DigestFinal_ex(work, inner, &len) != 1 || EVP_MD_CTX_copy_ex(work, outer_state) != 1 ||
        EVP_DigestUpdate(work, inner, MAC_LEN) != 1 || EVP_DigestFinal_ex(work, mac, &len) != 1)
        die("HMAC failed");
    while (i < n) {
        size_t start;
        while (i < n && signature[i] == ' ')
            i++;
        start = i;
        while (i < n && signature[i] != ' ')
            i++;
        if (i - start > 3 && memcmp(signature + start, "v1,", 3) == 0 && i - start - 3 <= 44 &&
            base64_decode(signature + start + 3, i - start - 3, candidate) == MAC_LEN)
            found |= CRYPTO_memcmp(mac, candidate, MAC_LEN) == 0;
    }
    return found;
}

int main(int argc, char **argv)
{
    long warmup = 0, count, i, passed = 0;
    int opt;
    size_t body_len;
    char *body, *tampered;
    double t0, c0;
    while ((opt = getopt(argc, argv, "w:")) != -1) {
        if (opt == 'w')
            warmup = atol(optarg);
        else
            die("usage: verify_ceiling [-w warmup] body_file secret msg_id timestamp signature count");
    }
    if (argc - optind != 6)
        die("usage: verify_ceiling [-w warmup] body_file secret msg_id timestamp signature count");
    body = read_file(argv[optind], &body_len);
    set_key(argv[optind + 1]);
    count = atol(argv[optind + 5]);

    tampered = malloc(body_len + 1);
    if (tampered == NULL || body_len == 0)
        die("no body");
    memcpy(tampered, body, body_len);
    tampered[body_len / 2] ^= 1;
    if (verify(argv[optind + 2], argv[optind + 3], argv[optind + 4], tampered, body_len))
        die("a tampered body verified");
    if (!verify(argv[optind + 2], argv[optind + 3], argv[optind + 4], body, body_len))
        die("the delivery does not verify");

    for (i = 0; i < warmup; i++)
        passed += verify(argv[optind + 2], argv[optind + 3], argv[optind + 4], body, body_len);
    passed = 0;
    t0 = now(CLOCK_MONOTONIC);
    c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    for (i = 0; i < count; i++)
        passed += verify(argv[optind + 2], argv[optind + 3], argv[optind + 4], body, body_len);
    c0 = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
    t0 = now(CLOCK_MONOTONIC) - t0;
    if (passed != count)
        die("a verify failed");
    printf("RESULT cpu_seconds=%.6f seconds=%.6f verifies=%ld\n", c0, t0, count);
    EVP_MD_CTX_free(inner_state);
    EVP_MD_CTX_free(outer_state);
    EVP_MD_CTX_free(work);
    free(body);
    free(tampered);
    return 0;
}
