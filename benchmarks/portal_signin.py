"""Sign-in cost against a multi-worker gunicorn, compared with the bare argon2id verify (SPEC 9).

    .venv/bin/python benchmarks/portal_signin.py [--workers 2] [--signins 300] [--filler 100000]
        [--db postgresql://postgres@127.0.0.1:5432/portal_signin]  # emptied first; default: SQLite

1. Bare verify: CPU seconds of one argon2id verify at the production parameters (one process).
2. Sign-in: a fresh database (SQLite, or the PostgreSQL one of ``--db``) with users whose first
   login is done, terms agreed and browser trusted, so that one POST /business/signin is a whole
   sign-in (password, trusted second step, login). Each sign-in = GET the sign-in page (CSRF
   token) + POST. The load generator shares the machine, so the figure is the gunicorn workers'
   CPU seconds (from /proc) per sign-in.
3. Pages: p95 of every screen that does not hash (sequential requests, wall clock).
Rate limits are off for the run (one client address does every request).
"""
import argparse
import http.client
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
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("APP_ENV", "development")  # benchmarks run the app as `make run` does
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bare_verify_cpu(n=40) -> float:
    from accounts.passwords import PRODUCTION_PARAMETERS, Hasher

    h = Hasher(**PRODUCTION_PARAMETERS)
    stored = h.hash("Bench-pass1")
    h.verify(stored, "Bench-pass1")
    start = time.process_time()
    for _ in range(n):
        h.verify(stored, "Bench-pass1")
    return (time.process_time() - start) / n


BARE_UNDER_LOAD = """
import sys, time
sys.path.insert(0, sys.argv[1])
from accounts.passwords import PRODUCTION_PARAMETERS, Hasher
h = Hasher(**PRODUCTION_PARAMETERS); s = h.hash("Bench-pass1"); h.verify(s, "Bench-pass1")
n, start = 0, time.process_time()
while not sys.stdin.readline().strip():  # one verify per line of input; an "x" line ends it
    h.verify(s, "Bench-pass1"); n += 1
print((time.process_time() - start) / max(n, 1))
"""


def database_url(db: str) -> str:
    """A SQLite file's path or a database URL, as a URL."""
    return db if "://" in db else f"sqlite:///{db}"


def prepare(db: str, users: int, filler: int) -> list[tuple[str, str]]:
    """Users for the sign-in run, with raw trusted-browser tokens; filler users make the table big.

    ``db``: a new SQLite file's path, or a PostgreSQL URL (its tables are dropped first)."""
    from bench_migration import fresh_database

    url = database_url(db)
    fresh_database(url)
    os.environ["DATABASE_URL"] = url
    from accounts import twostep
    from accounts.clock import utcnow
    from accounts.db import database, is_postgres
    from accounts.models import Contract, TermsAcceptance, TermsVersion, User
    from accounts.passwords import PRODUCTION_PARAMETERS, Hasher
    from accounts.schema import upgrade
    from app import create_app

    app = create_app({"APP_ENV": "development", "DATABASE_URL": url})
    with app.app_context():
        upgrade()
        pw = Hasher(**PRODUCTION_PARAMETERS).hash("Bench-pass1")
        now = utcnow()
        with database.atomic():
            contract = Contract.create(ecid="ecid0000000001", name="bench")
            terms = TermsVersion.create(version=1, title="t", body="b")
            out = []
            for i in range(users):
                login = f"bench{i}@example.jp"
                u = User.create(portal="business", contract=contract, login_id=login, login_id_key=login,
                                email=login, email_key=login, name="ベンチ 太郎", password_hash=pw,
                                first_login_done_at=now, twostep_method="mail")
                TermsAcceptance.create(user=u, terms=terms)
                out.append((login, twostep.trust_browser(u, days=30)))
            # Pending-step users: TOTP (for /signin/totp), none chosen (for /signin/method).
            for login, method in (("pending-totp", "totp"), ("pending-none", None)):
                User.create(portal="business", contract=contract, login_id=login, login_id_key=login,
                            email=f"{login}@example.jp", email_key=f"{login}@example.jp", name="x",
                            password_hash=pw, first_login_done_at=now if method else None,
                            twostep_method=method,
                            totp_secret="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP" if method else None)
        if filler:
            cur = database.cursor()
            rows = ((f"filler{i}@example.jp", f"filler{i}@example.jp", f"filler{i}@example.jp",
                     f"filler{i}@example.jp", f"利用者 {i}", f"03{i:08d}", now, now) for i in range(filler))
            p = database.param
            with database.atomic():
                cur.executemany(
                    'INSERT INTO "user" (portal, contract_id, login_id, login_id_key, email, email_key, name,'
                    " phone, is_admin, origin, failed_logins, disabled, version, created_at, updated_at)"
                    f" VALUES ('business', 1, {p}, {p}, {p}, {p}, {p}, {p}, {p}, 'native', 0, {p}, 1,"
                    f" {p}, {p})",
                    ((*r[:6], False, False, *r[6:]) for r in rows))
            if is_postgres():
                database.execute_sql('VACUUM ANALYZE "user"')
        database.close()
    return out


class Client:
    """A tiny cookie-keeping HTTP client (no redirects followed)."""

    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookies = {}

    def request(self, method, path, form=None, headers=None):
        h = dict(headers or {})
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            h["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=h)
        r = self.conn.getresponse()
        data = r.read().decode("utf-8", "replace")
        for k, v in r.getheaders():
            if k.lower() == "set-cookie":
                name, _, rest = v.partition("=")
                value = rest.split(";", 1)[0]
                if "Max-Age=0" in v:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = value
        return r.status, data

    def token(self, html):
        return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)

    def sign_in(self, login, password="Bench-pass1"):
        status, html = self.request("GET", "/business/signin")
        status, _ = self.request("POST", "/business/signin",
                                 {"csrf_token": self.token(html), "login_id": login, "password": password})
        return status


def worker_times(master_pid) -> tuple[float, float, int]:
    """(user CPU s, system CPU s, minor page faults) summed over the gunicorn workers."""
    user = system = faults = 0
    tick = os.sysconf("SC_CLK_TCK")
    out = subprocess.run(["pgrep", "-P", str(master_pid)], capture_output=True, text=True).stdout.split()
    for pid in out:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            user += int(fields[11]) / tick
            system += int(fields[12]) / tick
            faults += int(fields[7])
        except FileNotFoundError:
            pass
    return user, system, faults


def worker_cpu(master_pid) -> float:
    user, system, _ = worker_times(master_pid)
    return user + system


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--signins", type=int, default=300)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--filler", type=int, default=100_000)
    ap.add_argument("--db", help="a PostgreSQL URL (emptied first); default: a new SQLite file")
    ap.add_argument("--page-requests", type=int, default=200)
    ap.add_argument("--close-connection", action="store_true",
                    help="what-if: connect/close per request (DB_KEEP_CONNECTION=0) instead of "
                         "keeping one connection per worker thread")
    args = ap.parse_args()

    verify = bare_verify_cpu()
    print(f"bare argon2id verify: {verify * 1000:.1f} ms CPU -> {1 / verify:.1f} verifies/s per core")

    db = args.db or f"{tempfile.mkdtemp(prefix='portal-bench-')}/bench.db"
    t0 = time.time()
    users = prepare(db, args.signins, args.filler)
    print(f"prepared {len(users)} sign-in users + {args.filler} filler users in {time.time() - t0:.1f} s")

    port = free_port()
    env = dict(os.environ, DATABASE_URL=database_url(db), RATELIMIT_ENABLED="0",
               SECRET_KEY="bench-secret", MAIL_SERVER="",
               DB_KEEP_CONNECTION="0" if args.close_connection else "1")
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "-w", str(args.workers), "-b", f"127.0.0.1:{port}",
         "--log-level", "warning",
         "app:create_app()"],
        cwd=ROOT, env=env)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        # Warm up every worker (imports, first connection, template compilation).
        for login, raw in users[:8]:
            c = Client(port)
            c.cookies["trusted_browser_business"] = raw
            c.sign_in(login)

        cpu_before = worker_cpu(server.pid)
        times_before = worker_times(server.pid)
        statuses = []
        lock = threading.Lock()
        queue = list(users)

        def run():
            while True:
                with lock:
                    if not queue:
                        return
                    login, raw = queue.pop()
                c = Client(port)
                c.cookies["trusted_browser_business"] = raw
                s = c.sign_in(login)
                with lock:
                    statuses.append(s)

        # A bare verify loop running beside the load: the same machine state as the workers see.
        bare = subprocess.Popen([sys.executable, "-c", BARE_UNDER_LOAD, str(ROOT)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        start = time.time()
        threads = [threading.Thread(target=run) for _ in range(args.clients)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            bare.stdin.write("\n")
            bare.stdin.flush()
            time.sleep(0.1)
        for t in threads:
            t.join()
        wall = time.time() - start
        bare_loaded = float(bare.communicate("x\n")[0])
        cpu = worker_cpu(server.pid) - cpu_before
        times_after = worker_times(server.pid)
        ok = sum(1 for s in statuses if s == 303)
        print("worker user/system CPU ms and minor faults per sign-in: "
              + " / ".join(f"{(a - b) / ok * (1000 if i < 2 else 1):.1f}"
                           for i, (a, b) in enumerate(zip(times_after, times_before, strict=True))))
        per = cpu / ok
        print(f"sign-ins: {ok}/{len(statuses)} completed (303 to the dashboard) in {wall:.1f} s wall, "
              f"{args.workers} workers")
        print(f"bare verify measured beside the load: {bare_loaded * 1000:.1f} ms CPU "
              f"-> {1 / bare_loaded:.1f} verifies/s per core")
        print(f"worker CPU per sign-in (GET sign-in page + POST): {per * 1000:.1f} ms "
              f"-> {1 / per:.1f} sign-ins/s per core = {100 * verify / per:.0f}% of the bare verify rate")

        # The sign-in page alone, to tell the POST's share.
        page_client = Client(port)
        page_client.request("GET", "/business/signin")
        before = worker_cpu(server.pid)
        for _ in range(len(statuses)):
            page_client.request("GET", "/business/signin")
        get_cpu = (worker_cpu(server.pid) - before) / len(statuses)
        post = per - get_cpu
        print(f"  of which GET sign-in page {get_cpu * 1000:.1f} ms, POST {post * 1000:.1f} ms "
              f"-> POST alone {1 / post:.1f}/s per core = {100 * verify / post:.0f}% of the bare verify rate")
        print(f"against the verify beside the load: GET+POST {100 * bare_loaded / per:.0f}%, "
              f"POST alone {100 * bare_loaded / post:.0f}%")

        # Pages that do not hash: p95 over sequential requests.
        signed = Client(port)
        signed.cookies["trusted_browser_business"] = users[0][1]
        assert signed.sign_in(users[0][0]) == 303
        _, html = signed.request("GET", "/business/dashboard")
        csrf = signed.token(html)
        totp = Client(port)
        totp.sign_in("pending-totp")
        none = Client(port)
        none.sign_in("pending-none")
        anon = Client(port)
        _, html = anon.request("GET", "/business/password/reset")
        anon_csrf = anon.token(html)
        pages = [
            ("GET /business/ (landing)", anon, "GET", "/business/", None, None),
            ("GET /business/signin", anon, "GET", "/business/signin", None, None),
            ("GET /sdpf/ (redirect)", anon, "GET", "/sdpf/", None, None),
            ("GET /sdpf/signin", anon, "GET", "/sdpf/signin", None, None),
            ("GET /business/password/reset", anon, "GET", "/business/password/reset", None, None),
            ("GET /sdpf/password/reset", anon, "GET", "/sdpf/password/reset", None, None),
            ("GET /business/password/ask-admin", anon, "GET", "/business/password/ask-admin", None, None),
            ("POST /business/password/rules (htmx)", anon, "POST", "/business/password/rules",
             {"password": "Abc-def1"}, {"HX-Request": "true", "X-CSRFToken": anon_csrf}),
            ("GET /business/password/reset/<bad token>", anon, "GET", "/business/password/reset/xyz",
             None, None),
            ("GET /business/signin/method (pending)", none, "GET", "/business/signin/method", None, None),
            ("GET /business/signin/totp (pending)", totp, "GET", "/business/signin/totp", None, None),
            ("GET /business/signin/backup-code (pending)", totp, "GET", "/business/signin/backup-code",
             None, None),
            ("GET /business/dashboard", signed, "GET", "/business/dashboard", None, None),
            ("GET /business/profile", signed, "GET", "/business/profile", None, None),
        ]
        print(f"\npage latency, {args.page_requests} sequential requests each (ms):")
        print(f"{'page':48} {'p50':>6} {'p95':>6} {'max':>6}")
        worst = 0.0
        for label, client, method, path, form, headers in pages:
            times = []
            for _ in range(args.page_requests):
                t = time.perf_counter()
                status, _ = client.request(method, path, form, headers)
                times.append((time.perf_counter() - t) * 1000)
                assert status in (200, 302, 404), (label, status)
            times.sort()
            p95 = times[int(len(times) * 0.95) - 1]
            worst = max(worst, p95)
            print(f"{label:48} {statistics.median(times):6.1f} {p95:6.1f} {times[-1]:6.1f}")
        print(f"worst p95: {worst:.1f} ms")
        del csrf
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
