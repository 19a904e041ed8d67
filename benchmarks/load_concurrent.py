"""SPEC 9: 50 concurrent clients for 60 s against a multi-worker server: no 5xx, no lost update,
no lost mail.

    .venv/bin/python benchmarks/load_concurrent.py [--clients 50] [--seconds 60] [--workers 4]
        [--db postgresql://postgres@127.0.0.1:5432/portal_load]

A fresh database (SQLite in a temp dir by default; ``--db`` a PostgreSQL database that is wiped),
test data written with the models, then ``gunicorn -w 4`` with rate limits off (one client address
makes every request) and no MAIL_SERVER (mails stay in the outbox, which is what is counted).

Each client thread keeps two cookie jars: a console session (a staff operator signed in for real:
password + TOTP computed with pyotp) and a portal session (password sign-in with a remembered
browser). It then loops over a weighted mix: portal and console page GETs, password-reset requests
(matching identity: each must leave exactly one ``reset`` mail; a few mismatching ones must leave
none), click-to-edit saves of the SAME fields of a few shared users with the optimistic ``version``
read from the edit fragment (409 = conflict, fine), and a few fresh sign-ins (argon2 at production
parameters: kept a minority, the machine has 2 cores).

Checks at the end, on the database: every successful save bumped the version exactly once and the
stored value is the value of the save made on the highest version (no lost update); reset mails ==
accepted matching requests, e-mail-change mails == 2 x successful e-mail saves (no lost mail); no
5xx and no transport error. Exit status 1 on any failure, with samples and the server's stderr.
"""
import argparse
import collections
import http.client
import os
import random
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

PASSWORD = "Load-pass1"
NAME_TARGETS = 3      # shared users whose name every client edits
EMAIL_TARGETS = 2     # shared users whose e-mail every client edits (2 mails per save)
RESET_USERS = 40      # users whose identity the reset requests match
SIGNIN_USERS = 60     # portal users with a remembered browser (one per client + spares)

MIX = [  # (kind, weight)
    ("page_anon", 22),
    ("page_portal", 18),
    ("console_search", 12),
    ("console_user", 10),
    ("edit_name", 14),
    ("edit_email", 6),
    ("reset_match", 4),
    ("reset_mismatch", 1),
    ("signin", 3),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(url: str, clients: int):
    """Schema + data; returns what the clients need (ids, identities, staff, trusted tokens)."""
    import pyotp

    from accounts import twostep
    from accounts.clock import utcnow
    from accounts.db import database
    from accounts.models import Contract, Staff, TermsAcceptance, TermsVersion, User
    from accounts.passwords import PRODUCTION_PARAMETERS, Hasher
    from accounts.schema import upgrade
    from app import create_app

    app = create_app({"APP_ENV": "development", "DATABASE_URL": url})
    with app.app_context():
        upgrade()
        pw = Hasher(**PRODUCTION_PARAMETERS).hash(PASSWORD)
        now = utcnow()
        out = {"name_targets": [], "email_targets": [], "reset": [], "signin": [], "staff": []}
        with database.atomic():
            parent = Contract.create(ecid="ecid0000000001", name="負荷 親契約")
            children = [Contract.create(ecid=f"ecid00000001{i:02d}", name=f"負荷 子契約 {i}", parent=parent)
                        for i in range(3)]
            terms = TermsVersion.create(version=1, title="t", body="b")

            def user(contract, login, **kw):
                return User.create(portal=contract.portal, contract=contract, login_id=login,
                                   login_id_key=login.lower(), email=kw.pop("email", login),
                                   email_key=kw.pop("email_key", login.lower()),
                                   name=kw.pop("name", "負荷\u3000太郎"), phone="0312345678", **kw)

            for i in range(NAME_TARGETS):
                out["name_targets"].append(user(children[i % 3], f"name-target{i}@example.jp").id)
            for i in range(EMAIL_TARGETS):
                out["email_targets"].append(user(parent, f"email-target{i}@example.jp").id)
            for i in range(RESET_USERS):
                u = user(parent, f"reset{i}@example.jp", name=f"山田\u3000{i}郎")
                out["reset"].append({"login_id": u.login_id, "email": u.email, "name": u.name,
                                     "phone": "03-1234-5678"})
            for i in range(SIGNIN_USERS):
                u = user(parent, f"signin{i}@example.jp", password_hash=pw, first_login_done_at=now,
                         twostep_method="mail", password_changed_at=now)
                TermsAcceptance.create(user=u, terms=terms)
                out["signin"].append((u.login_id, twostep.trust_browser(u, days=30)))
            for i in range(clients):
                secret = pyotp.random_base32()
                Staff.create(login_id=f"op{i}", login_id_key=f"op{i}", role="operator", password_hash=pw,
                             totp_secret=secret, totp_confirmed_at=now)
                out["staff"].append((f"op{i}", secret))
            Contract.update(users_total=User.select().count()).where(Contract.id == parent.id).execute()
        database.close()
    return out


class Client:
    """A cookie-keeping HTTP/1.1 client over one keep-alive connection (no redirects followed)."""

    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookies = {}

    def request(self, method, path, form=None, headers=None):
        h = dict(headers or {})
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            h["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            self.conn.request(method, path, body=body, headers=h)
            r = self.conn.getresponse()
        except (http.client.HTTPException, OSError):
            # gunicorn's sync workers close idle keep-alive connections: reconnect once.
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            self.conn.request(method, path, body=body, headers=h)
            r = self.conn.getresponse()
        data = r.read().decode("utf-8", "replace")
        for k, v in r.getheaders():
            if k.lower() == "set-cookie":
                name, _, rest = v.partition("=")
                if "Max-Age=0" in v or "expires=Thu, 01 Jan 1970" in v:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = rest.split(";", 1)[0]
        if r.getheader("Connection", "").lower() == "close":
            self.conn.close()
        return r.status, data, r.getheader("Location", "")


def token(html):
    m = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(r'"X-CSRFToken": "([^"]+)"', html)
    return m.group(1) if m else ""


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.status = collections.Counter()          # (kind, status)
        self.times = collections.defaultdict(list)   # kind -> seconds
        self.samples = []                            # 5xx / errors
        self.saves = collections.defaultdict(list)   # (field, user_id) -> [(version, value)]
        self.conflicts = collections.Counter()
        self.reset_ok = 0
        self.reset_mismatch_ok = 0

    def add(self, kind, status, seconds, path, body=""):
        with self.lock:
            self.status[(kind, status)] += 1
            self.times[kind].append(seconds)
            if status >= 500 or status == 0:
                if len(self.samples) < 10:
                    self.samples.append((kind, status, path, body[:300]))


def run_client(n, port, data, stop_at, stats: Stats, seed):
    rnd = random.Random(seed)
    kinds = [k for k, _ in MIX]
    weights = [w for _, w in MIX]
    console = Client(port)
    portal = Client(port)
    anon = Client(port)
    counter = 0

    def call(client, kind, method, path, form=None, headers=None):
        t = time.perf_counter()
        try:
            status, body, loc = client.request(method, path, form, headers)
        except Exception as exc:  # noqa: BLE001 - counted as a failure with its message
            status, body, loc = 0, repr(exc), ""
        stats.add(kind, status, time.perf_counter() - t, path, body)
        return status, body, loc

    def staff_sign_in():
        import pyotp

        login, secret = data["staff"][n]
        _, html, _ = call(console, "console_login", "GET", "/admin/login")
        s, _, loc = call(console, "console_login", "POST", "/admin/login",
                         {"csrf_token": token(html), "login_id": login, "password": PASSWORD})
        assert s == 303 and loc.endswith("/admin/login/code"), (s, loc)
        _, html, _ = call(console, "console_login", "GET", "/admin/login/code")
        s, _, loc = call(console, "console_login", "POST", "/admin/login/code",
                         {"csrf_token": token(html), "code": pyotp.TOTP(secret).now()})
        assert s == 303, ("staff TOTP", s, loc)

    def portal_sign_in(client, kind):
        login, raw = data["signin"][rnd.randrange(len(data["signin"]))]
        client.cookies = {"trusted_browser_business": raw}
        _, html, _ = call(client, kind, "GET", "/business/signin")
        s, _, loc = call(client, kind, "POST", "/business/signin",
                         {"csrf_token": token(html), "login_id": login, "password": PASSWORD})
        return s, loc

    try:
        staff_sign_in()
        s, loc = portal_sign_in(portal, "signin")
        assert s == 303 and loc.endswith("/business/dashboard"), ("portal sign-in", s, loc)
        _, html, _ = call(anon, "page_anon", "GET", "/business/password/reset")
        anon_token = token(html)
        _, html, _ = call(console, "console_search", "GET", "/admin/")
        console_token = token(html)
    except AssertionError as exc:
        with stats.lock:
            stats.samples.append(("setup", 0, "", repr(exc)))
            stats.status[("setup", 0)] += 1
        return

    while time.time() < stop_at:
        kind = rnd.choices(kinds, weights)[0]
        counter += 1
        if kind == "page_anon":
            path = rnd.choice(["/business/", "/business/signin", "/sdpf/signin", "/business/password/reset",
                               "/sdpf/password/reset", "/legacy/", "/business/password/ask-admin"])
            call(anon, kind, "GET", path)
        elif kind == "page_portal":
            call(portal, kind, "GET", rnd.choice(["/business/dashboard", "/business/profile"]))
        elif kind == "console_search":
            q = rnd.choice(["reset", "signin1", "山田", "0312", "ecid00000001", "target"])
            call(console, kind, "GET", f"/admin/?{urlencode({'q': q})}",
                 headers={"HX-Request": "true"} if rnd.random() < 0.5 else None)
        elif kind == "console_user":
            uid = rnd.choice(data["name_targets"] + data["email_targets"])
            call(console, kind, "GET", f"/admin/users/{uid}")
        elif kind in ("edit_name", "edit_email"):
            field = "name" if kind == "edit_name" else "email"
            uid = rnd.choice(data["name_targets" if field == "name" else "email_targets"])
            s, html, _ = call(console, kind + "_form", "GET", f"/admin/users/{uid}/fields/{field}/edit",
                              headers={"HX-Request": "true"})
            m = re.search(r'name="version" value="(\d+)"', html)
            if s != 200 or not m:
                continue
            version = int(m.group(1))
            value = (f"負荷\u3000c{n}n{counter}" if field == "name" else f"c{n}n{counter}@example.jp")
            s, _, _ = call(console, kind, "POST", f"/admin/users/{uid}/fields/{field}",
                           {"csrf_token": token(html) or console_token, "version": version, "value": value})
            with stats.lock:
                if s == 303:
                    stats.saves[(field, uid)].append((version, value))
                elif s == 409:
                    stats.conflicts[(field, uid)] += 1
        elif kind in ("reset_match", "reset_mismatch"):
            ident = dict(rnd.choice(data["reset"]))
            if kind == "reset_mismatch":
                ident["name"] = ident["name"].replace("\u3000", " ")  # a half-width space: no match
            s, _, _ = call(anon, kind, "POST", "/business/password/reset",
                           {"csrf_token": anon_token, **ident})
            if s == 200:
                with stats.lock:
                    if kind == "reset_match":
                        stats.reset_ok += 1
                    else:
                        stats.reset_mismatch_ok += 1
        elif kind == "signin":
            fresh = Client(port)
            portal_sign_in(fresh, kind)
            fresh.conn.close()
    for c in (console, portal, anon):
        c.conn.close()


def check_database(url, data, stats: Stats) -> list[str]:
    """The no-lost-update and no-lost-mail checks against the stored rows."""
    from accounts.db import database
    from accounts.models import AuditEntry, Mail, User
    from app import create_app

    failures = []
    lines = []
    app = create_app({"APP_ENV": "development", "DATABASE_URL": url})
    with app.app_context():
        database.connect(reuse_if_open=True)
        for field, key in (("name", "name_targets"), ("email", "email_targets")):
            for uid in data[key]:
                user = User.get_by_id(uid)
                saves = sorted(stats.saves.get((field, uid), []))
                versions = [v for v, _ in saves]
                audited = (AuditEntry.select().where((AuditEntry.target_user == uid)
                                                     & (AuditEntry.action == f"{field}_changed")).count())
                expected_value = saves[-1][1] if saves else None
                ok = (len(saves) == user.version - 1 and versions == list(range(1, user.version))
                      and audited == len(saves) and (not saves or getattr(user, field) == expected_value))
                lines.append(f"  {field} of user {uid}: {len(saves)} saves, "
                             f"{stats.conflicts[(field, uid)]} conflicts (409), version {user.version}, "
                             f"{audited} audit entries, stored = last save: "
                             f"{getattr(user, field) == expected_value} -> {'OK' if ok else 'LOST UPDATE'}")
                if not ok:
                    failures.append(f"lost update on {field} of user {uid}: saves on versions "
                                    f"{versions[:20]}..., version {user.version}, audit {audited}, "
                                    f"stored {getattr(user, field)!r}, expected {expected_value!r}")
        resets = Mail.select().where(Mail.kind == "reset").count()
        email_saves = sum(len(v) for (f, _), v in stats.saves.items() if f == "email")
        changed = Mail.select().where(Mail.kind == "email_changed").count()
        lines.append(f"  reset mails: {resets} for {stats.reset_ok} accepted matching requests "
                     f"(+{stats.reset_mismatch_ok} mismatching, which must send none) -> "
                     f"{'OK' if resets == stats.reset_ok else 'LOST/EXTRA MAIL'}")
        lines.append(f"  e-mail-change mails: {changed} for {email_saves} e-mail saves x 2 -> "
                     f"{'OK' if changed == 2 * email_saves else 'LOST/EXTRA MAIL'}")
        if resets != stats.reset_ok:
            failures.append(f"reset mails {resets} != accepted matching requests {stats.reset_ok}")
        if changed != 2 * email_saves:
            failures.append(f"e-mail-change mails {changed} != 2 x {email_saves}")
        if stats.reset_ok == 0 or not any(stats.saves.values()):
            failures.append("the run made no reset request or no successful save: nothing was proven")
        database.close()
    print("\n".join(lines))
    return failures


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, max(0, int(round(len(values) * p)) - 1))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1, help="gunicorn --threads per worker")
    ap.add_argument("--db", help="a PostgreSQL URL to use (its tables are dropped first)")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="portal-load-")
    if args.db:
        url = args.db
        name = url.rsplit("/", 1)[1]
        base = url.rsplit("/", 1)[0]
        import psycopg

        with psycopg.connect(f"{base}/postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}"')
            c.execute(f'CREATE DATABASE "{name}"')
    else:
        url = f"sqlite:///{tmp}/load.db"
    os.environ["DATABASE_URL"] = url
    t0 = time.time()
    data = prepare(url, args.clients)
    print(f"database: {url.split('://')[0]}; prepared in {time.time() - t0:.1f} s")

    port = free_port()
    env = dict(os.environ, DATABASE_URL=url, RATELIMIT_ENABLED="0", SECRET_KEY="load-secret", MAIL_SERVER="")
    for k in [k for k in env if k.startswith("ARGON2_")]:
        del env[k]   # production parameters, the same as the hashes written above
    err_path = Path(tmp) / "gunicorn.err"
    err = open(err_path, "w")  # noqa: SIM115 - closed in finally
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "-w", str(args.workers), "--threads", str(args.threads),
         "-b", f"127.0.0.1:{port}", "--timeout", "60", "--log-level", "warning", "app:create_app()"],
        cwd=ROOT, env=env, stdout=err, stderr=err)
    failures = []
    stats = Stats()
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        print(f"gunicorn -w {args.workers} --threads {args.threads} on 127.0.0.1:{port}; "
              f"{args.clients} clients for {args.seconds:.0f} s; load before: {os.getloadavg()[0]:.2f}")
        stop_at = time.time() + args.seconds
        start = time.time()
        threads = [threading.Thread(target=run_client, args=(i, port, data, stop_at, stats, i))
                   for i in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.time() - start
        load = os.getloadavg()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        err.close()

    total = sum(stats.status.values())
    print(f"\n{total} requests in {wall:.1f} s = {total / wall:.0f} requests/s; load average after "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'kind':18} {'count':>6} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7}  statuses")
    for kind in sorted(stats.times):
        t = stats.times[kind]
        codes = ", ".join(f"{s}: {c}" for (k, s), c in sorted(stats.status.items()) if k == kind)
        print(f"{kind:18} {len(t):6} {statistics.median(t) * 1000:7.0f} {pct(t, 0.95) * 1000:7.0f} "
              f"{max(t) * 1000:7.0f}  {codes}")
    by_status = collections.Counter()
    for (_, s), c in stats.status.items():
        by_status[s] += c
    print("all statuses: " + ", ".join(f"{s}: {c}" for s, c in sorted(by_status.items())))
    bad = sum(c for s, c in by_status.items() if s >= 500 or s == 0)
    if bad:
        failures.append(f"{bad} responses were 5xx or transport errors")
        for sample in stats.samples:
            print("  sample:", sample)
    print("\nchecks:")
    failures += check_database(url, data, stats)
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        print("\nserver stderr (tail):\n" + "\n".join(err_path.read_text().splitlines()[-40:]))
        sys.exit(1)
    print("\nPASS: no 5xx, no lost update, no lost mail")


if __name__ == "__main__":
    main()
