"""Sequential creates written by hand with Python's requests and a Session.

A peer of bench/creates.lua, run by bench/run.lua (from the repository root)
under Debian's /usr/bin/python3 and python3-requests:

    creates_python.py --url URL --key KEY --agent UA --body JSON --count N [--warmup W]

One Session (its connection pool keeps the connection alive) with the
constant headers set once; per create, session.post() of the body (the bytes
given, what cerca sends) with a fresh uuid.uuid4() as the Idempotency-Key,
then the status is checked and response.json() decodes the answer. Prints

    RESULT connects=C cpu_seconds=T creates=N seconds=S

S is the wall time of the timed creates, T the process's CPU time over them,
C the connections the pool opened meanwhile (urllib3's num_connections). Any
failed create aborts the run with a message.
"""
import sys
import time
import uuid

import requests


def options(argv):
    o = {}
    for i in range(0, len(argv), 2):
        if not argv[i].startswith("--") or i + 1 >= len(argv):
            raise SystemExit("bad argument: " + argv[i])
        o[argv[i][2:]] = argv[i + 1]
    return o


def main():
    o = options(sys.argv[1:])
    count, warmup = int(o["count"]), int(o.get("warmup", 0))
    url = o["url"] + "/fleets/fleet_bench/webhooks"
    body = o["body"].encode()
    session = requests.Session()
    session.headers.update({
        "Authorization": "Bearer " + o["key"],
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": o["agent"],
    })

    def create():
        res = session.post(url, data=body, headers={"Idempotency-Key": str(uuid.uuid4())})
        if res.status_code != 201:
            raise SystemExit("create failed: HTTP %d: %s" % (res.status_code, res.text))
        sub = res.json()
        if not isinstance(sub.get("id"), str):
            raise SystemExit("create failed: no subscription in the answer")

    for _ in range(warmup):
        create()
    pool = session.get_adapter(url).poolmanager.connection_from_url(url)
    connects0 = pool.num_connections
    cpu0, t0 = time.process_time(), time.perf_counter()
    for _ in range(count):
        create()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    print("RESULT connects=%d cpu_seconds=%.6f creates=%d seconds=%.6f"
          % (pool.num_connections - connects0, cpu, count, seconds))


if __name__ == "__main__":
    main()
