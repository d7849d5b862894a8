"""The hand-written Python verifier of the verification benchmark.

Standard Webhooks v1 with the standard library, as the specification
describes it. The secret is decoded once; each verify reads the three
headers, checks the timestamp (300 s either way), computes HMAC-SHA256 of
``id.timestamp.body`` (hmac.digest, OpenSSL's one-shot HMAC), compares it
with each v1 entry of webhook-signature (base64-decoded) by
hmac.compare_digest, and returns json.loads of the body. The raw body is
bytes, as a WSGI or ASGI server gives it; the headers a dict with lower-case
names. Run by bench/run.lua under Debian's /usr/bin/python3:

    verify_python.py --body FILE --secret S --id ID --timestamp TS
                     --signature SIG --type T --count N [--warmup W]

W untimed verifies, then N timed ones. Prints

    RESULT cpu_seconds=T seconds=S verifies=N

Before the timed loop, a copy of the body with its middle byte's lowest bit
flipped must be refused, and the event must carry type T.
"""
import base64
import hmac
import json
import sys
import time

TOLERANCE = 300


def verifier(secret):
    key = base64.b64decode(secret.removeprefix("whsec_"))

    def verify(body, headers):
        msg_id = headers["webhook-id"]
        timestamp = headers["webhook-timestamp"]
        signatures = headers["webhook-signature"]
        if abs(time.time() - int(timestamp)) > TOLERANCE:
            raise ValueError("timestamp outside the tolerance")
        mac = hmac.digest(key, b"%s.%s.%s" % (msg_id.encode(), timestamp.encode(), body), "sha256")
        for entry in signatures.split(" "):
            version, _, signature = entry.partition(",")
            if version == "v1" and hmac.compare_digest(base64.b64decode(signature), mac):
                return json.loads(body)
        raise ValueError("no matching signature")

    return verify


def main(argv):
    o = dict(zip(argv[0::2], argv[1::2]))
    count, warmup = int(o["--count"]), int(o.get("--warmup", 0))
    with open(o["--body"], "rb") as f:
        body = f.read()
    headers = {
        "content-type": "application/json",
        "webhook-id": o["--id"],
        "webhook-timestamp": o["--timestamp"],
        "webhook-signature": o["--signature"],
    }
    verify = verifier(o["--secret"])

    tampered = bytearray(body)
    tampered[len(body) // 2] ^= 1
    try:
        verify(bytes(tampered), headers)
    except ValueError:
        pass
    else:
        sys.exit("a tampered body verified")
    if verify(body, headers).get("type") != o["--type"]:
        sys.exit("the decoded event has another type")

    for _ in range(warmup):
        verify(body, headers)
    cpu0, t0 = time.process_time(), time.perf_counter()
    for _ in range(count):
        event = verify(body, headers)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if count and event["type"] != o["--type"]:
        sys.exit("the last event differs")
    print("RESULT cpu_seconds=%.6f seconds=%.6f verifies=%d" % (cpu, seconds, count))


if __name__ == "__main__":
    main(sys.argv[1:])
