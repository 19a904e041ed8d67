"""Reset requests (identity check) against a 2-worker gunicorn (SPEC 11.8, issue 9).

    .venv/bin/python benchmarks/reset_requests.py [--requests 3000] [--clients 8] [--filler 100000]

The web request only records what was typed; the worker (`flask deliver-mail`, running beside
gunicorn here as in production, without SMTP) does the matching and writes the reset mails. The
run sends half matching and half non-matching identities (one matching user per request, so the
per-account mail cap never applies) from ``--clients`` threads, and reports:
- requests per second answered by the 2 workers, and the status codes;
- answer time p50 / p95 for matching and for non-matching identities (they must not differ);
- how long the worker took to answer all of them, and how many reset mails it wrote.
Rate limits are off for the run (one client address sends every request).
"""
import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("APP_ENV", "development")  # benchmarks run the app as `make run` does
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from portal_signin import Client, free_port  # noqa: E402


def prepare(db_path: str, users: int, filler: int) -> None:
    from accounts.clock import utcnow
    from accounts.db import database
    from accounts.schema import upgrade
    from app import create_app

    app = create_app({"APP_ENV": "development", "DATABASE_URL": f"sqlite:///{db_path}"})
    with app.app_context():
        upgrade()
        now = utcnow()
        database.execute_sql("INSERT INTO contract (id, ecid, parent_id, name, created_at, users_total,"
                             " users_first_login_done) VALUES (1, 'ecid0000000001', NULL, 'p', ?, 0, 0),"
                             " (2, 'ecid0000000002', 1, 'c', ?, 0, 0)", (now, now))
        rows = ((f"user{i}", f"user{i}", f"user{i}@example.jp", f"user{i}@example.jp", f"利用者 {i}",
                 f"03{i:08d}", now, now) for i in range(users + filler))
        with database.atomic():
            database.cursor().executemany(
                'INSERT INTO "user" (portal, contract_id, login_id, login_id_key, email, email_key, name,'
                " phone, is_admin, origin, failed_logins, twostep_failures, disabled, version, created_at,"
                " updated_at) VALUES ('sdpf', 2, ?, ?, ?, ?, ?, ?, 0, 'native', 0, 0, 0, 1, ?, ?)", rows)
        database.close()


def percentile(values, q):
    values = sorted(values)
    return values[max(0, int(len(values) * q) - 1)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--filler", type=int, default=100_000)
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="portal-reset-bench-")
    db_path = f"{tmp}/bench.db"
    t0 = time.time()
    prepare(db_path, args.requests, args.filler)
    print(f"prepared {args.requests + args.filler:,} SDPF users in {time.time() - t0:.1f} s")

    port = free_port()
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{db_path}", RATELIMIT_ENABLED="0", MAIL_SERVER="",
               BASE_URL=f"http://127.0.0.1:{port}")
    server = subprocess.Popen([str(ROOT / ".venv/bin/gunicorn"), "-w", str(args.workers), "-b",
                               f"127.0.0.1:{port}", "--log-level", "warning", "--access-logfile", "/dev/null",
                               "app:create_app()"],
                              cwd=ROOT, env=env)
    worker = None
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        jobs = [(i, i % 2 == 0) for i in range(args.requests)]  # even: matching, odd: wrong e-mail
        lock = threading.Lock()
        results = {True: [], False: []}
        statuses = {}

        def run():
            c = Client(port)
            _, html = c.request("GET", "/sdpf/password/reset")
            token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
            for _ in range(3):  # warm-up of this connection
                c.request("POST", "/sdpf/password/reset", {"csrf_token": token, "login_id": "nobody",
                                                           "email": "nobody@example.jp"})
            while True:
                with lock:
                    if not jobs:
                        return
                    i, match = jobs.pop()
                email = f"user{i}@example.jp" if match else f"someone{i}@example.jp"
                t = time.perf_counter()
                status, _ = c.request("POST", "/sdpf/password/reset",
                                      {"csrf_token": token, "login_id": f"user{i}", "email": email})
                elapsed = (time.perf_counter() - t) * 1000
                with lock:
                    results[match].append(elapsed)
                    statuses[status] = statuses.get(status, 0) + 1

        threads = [threading.Thread(target=run) for _ in range(args.clients)]
        start = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.time() - start
        done = len(results[True]) + len(results[False])
        print(f"{done} reset requests in {wall:.1f} s from {args.clients} clients -> "
              f"{done / wall:.0f} requests/s on {args.workers} workers; statuses {statuses}")
        for match in (True, False):
            times = results[match]
            print(f"  {'matching    ' if match else 'non-matching'}: p50 {statistics.median(times):5.1f} ms, "
                  f"p95 {percentile(times, 0.95):5.1f} ms ({len(times)} requests)")
        gap = abs(statistics.median(results[True]) - statistics.median(results[False]))
        print(f"  p50 difference: {gap:.2f} ms")

        # The worker answers what was recorded (matching, mails written to the outbox).
        t = time.time()
        worker = subprocess.Popen([str(ROOT / ".venv/bin/flask"), "--app", "app", "deliver-mail",
                                   "--interval", "0.2"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        import sqlite3

        con = sqlite3.connect(db_path)
        while con.execute("SELECT count(*) FROM identity_request WHERE processed_at IS NULL").fetchone()[0]:
            time.sleep(0.2)
        took = time.time() - t
        mails = con.execute("SELECT count(*) FROM mail WHERE kind = 'reset'").fetchone()[0]
        outcomes = dict(con.execute("SELECT outcome, count(*) FROM identity_request GROUP BY outcome"))
        print(f"worker answered them in {took:.1f} s ({done / took:.0f}/s): {mails} reset mails, "
              f"outcomes {outcomes}")
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=20)
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
