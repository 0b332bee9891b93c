#!/usr/bin/env python3
"""Server memory under hostile JSON bodies (issue 11, item 4).

Starts `prospect-events serve` on a fresh SQLite file, sends bursts of abusive but authenticated
bodies (16 in parallel), and prints the server's RSS before, its peak (VmHWM) and its RSS after
each burst and after a pause.
Usage: bench/hostile-bodies.py PATH/TO/prospect-events [ROUNDS [CASE-SUBSTRING]]
"""
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

BIN = sys.argv[1]
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 4
ONLY = sys.argv[3] if len(sys.argv) > 3 else ""
PARALLEL = 16


def rss(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return int(fields["VmRSS"].split()[0]) // 1024, int(fields["VmHWM"].split()[0]) // 1024


def bodies():
    pid = "a" * 40
    unknown = "{" + ",".join(f'"u{i:05}":1' for i in range(90_000)) + "}"
    compact = dict(separators=(",", ":"))
    return {
        # The body: ~1 MB (under the 1 MiB limit), 90,000 unknown keys.
        "90k unknown keys": ("DELETE", "/v1/prospects/events/enrollments", unknown),
        # 9,000 unknown keys: under the value cap, so it is validated (100 errors + marker).
        "9k unknown keys": ("DELETE", "/v1/prospects/events/enrollments",
                            "{" + ",".join(f'"k{i:04}":{i}' for i in range(9_000)) + "}"),
        # A huge array of invalid event types (~1 MB).
        "500k-item list": ("POST", "/v1/prospects/events/enrollments",
                           json.dumps({"enrollment_key": "abcd", "prospect_ids": [pid],
                                       "event_types": [0] * 500_000}, **compact)),
        # A huge set of invalid ids.
        "500k-item set": ("POST", "/v1/prospects/events",
                          json.dumps({"event_types": ["prospect_changed_role"],
                                      "prospect_ids": [0] * 500_000}, **compact)),
        # A 1 MB string echoed by four `missing` errors and one `extra_forbidden`.
        "1 MB string": ("PATCH", "/v1/prospects/events/enrollments",
                        json.dumps({"x": "y" * 1_000_000}, **compact)),
    }


def send(port, key, method, path, body, out):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        c.request(method, path, body=body.encode(),
                  headers={"api_key": key, "content-type": "application/json"})
        r = c.getresponse()
        data = r.read()
        out.append((r.status, len(data)))
    except (OSError, http.client.HTTPException) as e:
        out.append((type(e).__name__, 0))
    finally:
        c.close()


def main():
    d = tempfile.mkdtemp()
    db = f"sqlite://{d}/bench.db"
    env = dict(os.environ, RUST_LOG="warn")
    key = subprocess.run([BIN, "keys", "create", "--tenant", "t", "--partner", "p",
                          "--database-url", db], capture_output=True, text=True, env=env,
                         check=True).stdout.strip()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    srv = subprocess.Popen([BIN, "serve", "--database-url", db, "--listen", f"127.0.0.1:{port}",
                            "--rate-limit", "0", "--no-worker", "--no-scanner"], env=env)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(0.5)
        print(f"idle RSS {rss(srv.pid)[0]} MB")
        for name, (method, path, body) in bodies().items():
            if ONLY not in name:
                continue
            out = []
            t = time.time()
            for _ in range(ROUNDS):
                threads = [threading.Thread(target=send, args=(port, key, method, path, body, out))
                           for _ in range(PARALLEL)]
                [th.start() for th in threads]
                [th.join() for th in threads]
            took = time.time() - t
            now, peak = rss(srv.pid)
            time.sleep(5)
            settled, _ = rss(srv.pid)
            statuses = sorted({str(s) for s, _ in out})
            size = max(n for _, n in out)
            print(f"{name:18} body {len(body) / 1e6:.2f} MB → {statuses} answer ≤ {size / 1e3:.0f} KB; "
                  f"{len(out)} requests in {took:.1f} s; RSS after {now} MB, peak so far {peak} MB, "
                  f"after 5 s {settled} MB")
    finally:
        srv.terminate()
        srv.wait()


main()
