"""SPEC 13: inject one fault under load, check what users saw and what the database kept.

One command per fault and per database, each bounded (one to three minutes), loopback only:

    .venv/bin/python benchmarks/faults.py smtp              [--db postgresql]
    .venv/bin/python benchmarks/faults.py postgres-restart
    .venv/bin/python benchmarks/faults.py worker-kill       [--db postgresql]
    .venv/bin/python benchmarks/faults.py delivery-kill     [--db postgresql]
    .venv/bin/python benchmarks/faults.py redis             [--db postgresql]
    .venv/bin/python benchmarks/faults.py import-kill       [--db postgresql]
    .venv/bin/python benchmarks/faults.py disk              [--db postgresql]
    .venv/bin/python benchmarks/faults.py backup            [--db postgresql]
    .venv/bin/python benchmarks/faults.py all               # every fault on both databases

Every server a fault stops, kills or fills is private to the run (benchmarks/fault_services.py):
``--db postgresql`` starts its own PostgreSQL cluster on a free port (never the shared one), the
Redis fault its own redis-server, the SMTP sink is an aiosmtpd server in this process; the app is
``gunicorn -w 4`` plus ``flask deliver-mail``, started and killed by pid. The disk fault mounts a
small tmpfs, so it needs root (it says so and stops otherwise).

The load: ``--clients`` threads (16) signed in to the console (password + TOTP) and the Business
Portal, half of them in Japanese and half in English, mixing portal and console pages, reset
requests, console saves of the same name and e-mail of a few shared users (the e-mail change
writes two notification mails in its transaction), and two threads doing whole Mail OTP sign-ins
that read the code from the mail at the SMTP sink.

What every run checks (exit status 1 if anything fails):
- no answer is a 5xx other than 503; every 503 is the outage page in the client's language,
  without a traceback; 503s only while the fault lasts (plus a short grace);
- transport errors only where a process was killed (the requests it had in flight);
- every save the server acknowledged (303) is in the database; each e-mail change is complete:
  its audit entry, the stored address and exactly its two notification mails, or none of them;
- ``flask --app app check-db`` passes (counters, orphans, mails' users, indexes);
- where mail is delivered: every mail reaches the sink (by Message-ID) once, or at most twice
  after a delivery worker was killed, and nothing stays queued.
"""
import argparse
import collections
import datetime
import http.client
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from fault_services import (  # noqa: E402
    DeliveryWorker,
    Gunicorn,
    PrivatePostgres,
    PrivateRedis,
    SmtpSink,
    free_port,
)

PASSWORD = "Fault-pass1"
NAME_TARGETS = 3
EMAIL_TARGETS = 3
RESET_USERS = 40
PORTAL_USERS = 40
OTP_USERS = 400
UNAVAILABLE_TITLE = {"ja": "ただいまサービスを一時的にご利用いただけません",
                     "en": "The service is temporarily unavailable"}
MIX = [("page_anon", 20), ("page_portal", 18), ("console_search", 14), ("console_user", 10),
       ("edit_name", 10), ("edit_email", 10), ("reset", 6), ("healthz", 4)]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- the database and its data ------------------------------------------------------------------

def cli_env(url: str) -> dict:
    """The environment of an operator's command (check-db, migrate-legacy) on ``url``."""
    return dict(os.environ, DATABASE_URL=url, APP_ENV="development")


def app_for(url: str):
    from app import create_app

    return create_app({"APP_ENV": "development", "DATABASE_URL": url, "SECRET_KEY": "fault-secret",
                       "BASE_URL": "http://127.0.0.1"})


def reconnect():
    """This process's own connection to the database (the checks), fresh after a fault."""
    from accounts.db import database

    obj = database.obj
    if hasattr(obj, "close_all"):
        obj.close_all()
    elif not obj.is_closed():
        obj.close()
    database.connect(reuse_if_open=True)


def prepare(url: str, clients: int) -> dict:
    """Schema, contracts, shared edit targets, reset identities, portal users, staff."""
    import pyotp

    from accounts import twostep
    from accounts.clock import utcnow
    from accounts.db import database
    from accounts.models import Contract, Staff, TermsAcceptance, TermsVersion, User
    from accounts.passwords import PRODUCTION_PARAMETERS, Hasher
    from accounts.schema import upgrade

    app = app_for(url)
    with app.app_context():
        upgrade()
        pw = Hasher(**PRODUCTION_PARAMETERS).hash(PASSWORD)
        now = utcnow()
        out = {"name_targets": [], "email_targets": [], "reset": [], "portal": [], "otp": [],
               "staff": []}
        with database.atomic():
            parent = Contract.create(ecid="ecid0000000001", name="障害 親契約")
            children = [Contract.create(ecid=f"ecid00000001{i:02d}", name=f"障害 子契約 {i}",
                                        parent=parent) for i in range(3)]
            terms = TermsVersion.create(version=1, title="t", body="b")

            def user(contract, login, **kw):
                return User.create(portal=contract.portal, contract=contract, login_id=login,
                                   login_id_key=login.lower(), email=login, email_key=login.lower(),
                                   name=kw.pop("name", "障害\u3000太郎"), phone="0312345678", **kw)

            done = {"password_hash": pw, "first_login_done_at": now, "twostep_method": "mail",
                    "password_changed_at": now}
            for i in range(NAME_TARGETS):
                out["name_targets"].append(user(children[i % 3], f"name-target{i}@example.jp").id)
            for i in range(EMAIL_TARGETS):
                out["email_targets"].append(user(parent, f"email-target{i}@example.jp").id)
            for i in range(RESET_USERS):
                u = user(parent, f"reset{i}@example.jp", name=f"山田\u3000{i}郎")
                out["reset"].append({"login_id": u.login_id, "email": u.email, "name": u.name,
                                     "phone": "03-1234-5678"})
            for i in range(PORTAL_USERS):
                u = user(parent, f"portal{i}@example.jp", **done)
                TermsAcceptance.create(user=u, terms=terms)
                out["portal"].append((u.login_id, twostep.trust_browser(u, days=30)))
            for i in range(OTP_USERS):
                u = user(parent, f"otp{i}@example.jp", **done)
                TermsAcceptance.create(user=u, terms=terms)
                out["otp"].append(u.login_id)
            for i in range(clients):
                secret = pyotp.random_base32()
                Staff.create(login_id=f"op{i}", login_id_key=f"op{i}", role="operator", password_hash=pw,
                             totp_secret=secret, totp_confirmed_at=now)
                out["staff"].append((f"op{i}", secret))
            for c in [parent, *children]:   # the progress counters, as the app keeps them
                users = User.select().where(User.contract == c)
                Contract.update(users_total=users.count(),
                                users_first_login_done=users.where(
                                    User.first_login_done_at.is_null(False)).count()
                                ).where(Contract.id == c.id).execute()
        database.close()
    return out


# --- the load -----------------------------------------------------------------------------------

class Client:
    """One HTTP request per connection (gunicorn's sync workers close it anyway), cookies kept,
    redirects not followed, and never a silent retry: a POST whose answer was lost stays lost."""

    def __init__(self, port: int, lang: str):
        self.port = port
        self.lang = lang
        self.cookies = {}

    def request(self, method, path, form=None, headers=None):
        h = {"Accept-Language": self.lang, "Connection": "close", **(headers or {})}
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            h["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read().decode("utf-8", "replace")
        finally:
            conn.close()
        for k, v in r.getheaders():
            if k.lower() == "set-cookie":
                name, _, rest = v.partition("=")
                if "Max-Age=0" in v or "expires=Thu, 01 Jan 1970" in v:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = rest.split(";", 1)[0]
        return r.status, data, r.getheader("Location", "")


def csrf(html: str) -> str:
    m = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'"X-CSRFToken": "([^"]+)"', html)
    return m.group(1) if m else ""


class Recorder:
    """Every answer with its time, kind and status; 503 pages checked for language and traceback."""

    def __init__(self):
        self.lock = threading.Lock()
        self.t0 = time.time()
        self.events = []          # (t, kind, status, seconds, lang)
        self.bad_pages = []       # 503s that are not the outage page in the client's language
        self.samples = []         # 5xx other than 503, transport errors
        self.saves = collections.defaultdict(list)     # (field, uid) -> [value] acknowledged (303)
        self.acked_at = {}                             # value -> run seconds when the 303 came
        self.unknown = collections.defaultdict(list)   # (field, uid) -> [value] outcome not known
        self.reset_ok = 0
        self.reset_unknown = 0
        self.otp = []             # (started, seconds to the mail or None, completed, notice seen)
        self.marks = []           # (t, text): what the fault did when

    def mark(self, text):
        with self.lock:
            self.marks.append((time.time() - self.t0, text))
        log(text)

    def add(self, kind, status, seconds, lang, body):
        t = time.time() - self.t0
        with self.lock:
            self.events.append((t, kind, status, seconds, lang))
            if status == 503 and (UNAVAILABLE_TITLE[lang] not in body or f'lang="{lang}"' not in body
                                  or "Traceback" in body) and kind != "healthz":
                self.bad_pages.append((round(t, 1), kind, body[:200]))
            if (status >= 500 and status != 503) or status == 0:
                if len(self.samples) < 12:
                    self.samples.append((round(t, 1), kind, status, body[:300]))


class Load:
    def __init__(self, port, data, clients, rec: Recorder, sink: SmtpSink | None, otp_threads=4,
                 seed=1):
        self.port = port
        self.data = data
        self.clients = clients
        self.rec = rec
        self.sink = sink
        self.stop = threading.Event()
        self.threads = []
        self.otp_threads = otp_threads if sink is not None else 0
        self.otp_pool = list(data["otp"])
        self.otp_lock = threading.Lock()
        self.seed = seed
        self.ready = threading.Barrier(clients + self.otp_threads + 1)

    def call(self, client, kind, method, path, form=None, headers=None):
        t = time.perf_counter()
        try:
            status, body, loc = client.request(method, path, form, headers)
        except Exception as exc:  # noqa: BLE001 - a transport error is a result here
            status, body, loc = 0, f"{type(exc).__name__}: {exc}", ""
        self.rec.add(kind, status, time.perf_counter() - t, client.lang, body)
        return status, body, loc

    def start(self, before_go=None):
        """Start the clients; they sign in, then all begin together. ``before_go`` runs while
        they wait, signed in (the Redis fault turns rate limits on there: one client address
        could not sign 16 clients in under them)."""
        for i in range(self.clients):
            self.threads.append(threading.Thread(target=self._client, args=(i,), daemon=True))
        for i in range(self.otp_threads):
            self.threads.append(threading.Thread(target=self._otp_journeys, args=(i,), daemon=True))
        for t in self.threads:
            t.start()
        if before_go is not None:
            deadline = time.time() + 300
            while self.ready.n_waiting < self.ready.parties - 1 and time.time() < deadline:
                time.sleep(0.1)
            before_go()
        self.ready.wait(timeout=300)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=90)

    def _staff_sign_in(self, console, n):
        import pyotp

        login, secret = self.data["staff"][n]
        for _ in range(30):
            _, html, _ = self.call(console, "sign_in", "GET", "/admin/login")
            s, _, loc = self.call(console, "sign_in", "POST", "/admin/login",
                                  {"csrf_token": csrf(html), "login_id": login, "password": PASSWORD})
            if s == 303 and loc.endswith("/admin/login/code"):
                _, html, _ = self.call(console, "sign_in", "GET", "/admin/login/code")
                s, _, _ = self.call(console, "sign_in", "POST", "/admin/login/code",
                                    {"csrf_token": csrf(html), "code": pyotp.TOTP(secret).now()})
                if s == 303:
                    return True
            time.sleep(1)
        return False

    def _portal_sign_in(self, portal, n):
        login, raw = self.data["portal"][n % len(self.data["portal"])]
        portal.cookies = {"trusted_browser_business": raw}
        for _ in range(30):
            _, html, _ = self.call(portal, "sign_in", "GET", "/business/signin")
            s, _, loc = self.call(portal, "sign_in", "POST", "/business/signin",
                                  {"csrf_token": csrf(html), "login_id": login, "password": PASSWORD})
            if s == 303 and loc.endswith("/business/dashboard"):
                return True
            time.sleep(1)
        return False

    def _client(self, n):
        rnd = random.Random(self.seed * 1000 + n)
        lang = "ja" if n % 2 == 0 else "en"
        console, portal, anon = Client(self.port, lang), Client(self.port, lang), Client(self.port, lang)
        ok = self._staff_sign_in(console, n) and self._portal_sign_in(portal, n)
        _, html, _ = self.call(anon, "page_anon", "GET", "/business/password/reset")
        anon_token = csrf(html)
        _, html, _ = self.call(console, "console_search", "GET", "/admin/")
        console_token = csrf(html)
        try:
            self.ready.wait(timeout=300)
        except threading.BrokenBarrierError:
            pass
        if not ok:
            self.rec.samples.append((0, "setup", 0, f"client {n} could not sign in"))
            return
        kinds, weights = zip(*MIX, strict=True)
        counter = 0
        while not self.stop.is_set():
            kind = rnd.choices(kinds, weights)[0]
            counter += 1
            if kind == "page_anon":
                self.call(anon, kind, "GET", rnd.choice(["/business/", "/business/signin", "/sdpf/signin",
                                                         "/business/password/reset", "/legacy/"]))
            elif kind == "page_portal":
                self.call(portal, kind, "GET", rnd.choice(["/business/dashboard", "/business/profile"]))
            elif kind == "console_search":
                q = rnd.choice(["reset", "portal1", "山田", "0312", "ecid00000001", "target"])
                self.call(console, kind, "GET", f"/admin/?{urlencode({'q': q})}",
                          headers={"HX-Request": "true"})
            elif kind == "console_user":
                uid = rnd.choice(self.data["name_targets"] + self.data["email_targets"])
                self.call(console, kind, "GET", f"/admin/users/{uid}")
            elif kind == "healthz":
                self.call(anon, kind, "GET", "/healthz")
            elif kind in ("edit_name", "edit_email"):
                field = "name" if kind == "edit_name" else "email"
                uid = rnd.choice(self.data[f"{field}_targets"])
                edit = f"/admin/users/{uid}/fields/{field}/edit"
                s, html, _ = self.call(console, kind + "_form", "GET", edit, headers={"HX-Request": "true"})
                m = re.search(r'name="version" value="(\d+)"', html)
                if s != 200 or not m:
                    continue
                value = f"障害\u3000c{n}n{counter}" if field == "name" else f"c{n}n{counter}@example.jp"
                s, _, _ = self.call(console, kind, "POST", f"/admin/users/{uid}/fields/{field}",
                                    {"csrf_token": csrf(html) or console_token, "version": m.group(1),
                                     "value": value})
                with self.rec.lock:
                    if s == 303:
                        self.rec.saves[(field, uid)].append(value)
                        self.rec.acked_at[value] = time.time() - self.rec.t0
                    elif s not in (409, 422):
                        self.rec.unknown[(field, uid)].append(value)
            elif kind == "reset":
                s, _, _ = self.call(anon, kind, "POST", "/business/password/reset",
                                    {"csrf_token": anon_token, **rnd.choice(self.data["reset"])})
                with self.rec.lock:
                    if s == 200:
                        self.rec.reset_ok += 1
                    elif s != 429:
                        self.rec.reset_unknown += 1
            time.sleep(rnd.uniform(0, 0.05))

    def _otp_journeys(self, n):
        """Whole Mail OTP sign-ins: password, then the code read from the mail at the sink.
        The threads start 8 s apart, so that some sign-ins begin inside a 30 s fault."""
        try:
            self.ready.wait(timeout=300)
        except threading.BrokenBarrierError:
            pass
        if self.stop.wait(8.0 * n):
            return
        lang = "ja" if n % 2 == 0 else "en"
        notice = {"ja": "メールの送信が遅れています", "en": "Sending mail is delayed"}[lang]
        while not self.stop.is_set():
            with self.otp_lock:
                if not self.otp_pool:
                    return
                login = self.otp_pool.pop()
            c = Client(self.port, lang)
            started = time.time()

            def step(method, path, form=None, c=c):
                """As a user does after the 503 page: wait a moment and try again."""
                for _ in range(60):
                    s, page, loc = self.call(c, "otp_signin", method, path, form)
                    if s not in (0, 503) or self.stop.is_set():
                        return s, page, loc
                    time.sleep(1)
                return s, page, loc

            _, html, _ = step("GET", "/business/signin")
            s, _, loc = step("POST", "/business/signin",
                             {"csrf_token": csrf(html), "login_id": login, "password": PASSWORD})
            if s != 303 or "mail-otp" not in loc:
                time.sleep(0.5)
                continue
            s, html, _ = step("GET", "/business/signin/mail-otp")
            if s != 200:
                time.sleep(0.5)
                continue
            code, waited, seen_notice = None, None, False
            deadline = time.time() + 150
            while code is None and time.time() < deadline and not self.stop.is_set():
                for _t, _mid, rcpts, _subject, text in self.sink.since(started - 1):
                    if login in rcpts:
                        m = re.search(r"^\s+(\d{6})\s*$", text, re.M)
                        if m:
                            code, waited = m.group(1), time.time() - started
                if code is None:
                    time.sleep(0.5)
                    if not seen_notice and time.time() - started > 3:
                        s, page, _ = step("GET", "/business/signin/mail-otp")
                        seen_notice = notice in page
            if code is None and self.stop.is_set():
                return   # cut short by the end of the run, not a failed sign-in
            completed = False
            if code is not None:
                s, page, _ = step("GET", "/business/signin/mail-otp")
                s, _, loc = step("POST", "/business/signin/mail-otp",
                                 {"csrf_token": csrf(page), "code": code})
                completed = s == 303
            with self.rec.lock:
                self.rec.otp.append((started - self.rec.t0, waited, completed, seen_notice))


# --- the checks ---------------------------------------------------------------------------------

class Checks:
    def __init__(self):
        self.lines = []
        self.failures = []

    def ok(self, condition, text):
        self.lines.append(f"  {'ok  ' if condition else 'FAIL'} {text}")
        if not condition:
            self.failures.append(text)
        return condition


def summarize_answers(rec: Recorder, windows, checks: Checks, grace=3.0, transport_allowed=0,
                      must_see_503=False):
    """Statuses before, during and after the fault windows ([(start, end)] in run seconds)."""
    def phase(t):
        for a, b in windows:
            if a <= t <= b + grace:
                return "during"
        return "before" if t < windows[0][0] else "after"

    table = collections.defaultdict(collections.Counter)
    for t, _kind, status, _s, _lang in rec.events:
        table[phase(t)][status] += 1
    for name in ("before", "during", "after"):
        row = table.get(name, {})
        checks.lines.append(f"  {name:>6}: " + ", ".join(f"{s}: {c}" for s, c in sorted(row.items())))
    if len(windows) > 1 and any(b > a for a, b in windows):
        for i, (a, b) in enumerate(windows):
            row = collections.Counter(e[2] for e in rec.events if a <= e[0] <= b + grace)
            checks.lines.append(f"    fault {i + 1} ({a:.0f}-{b:.0f} s): "
                                + ", ".join(f"{s}: {c}" for s, c in sorted(row.items())))
    total = collections.Counter()
    for row in table.values():
        total.update(row)
    other_5xx = sum(c for s, c in total.items() if s >= 500 and s != 503)
    outside = sum(c for name, row in table.items() if name != "during" for s, c in row.items() if s == 503)
    transport = total.get(0, 0)
    checks.ok(other_5xx == 0, f"no 5xx other than 503: {other_5xx}")
    checks.ok(outside == 0, f"no 503 outside the fault (+{grace:.0f} s): {outside}")
    checks.ok(not rec.bad_pages, f"every 503 page is the outage page in the client's language, no "
                                 f"traceback: {len(rec.bad_pages)} are not {rec.bad_pages[:2]}")
    if transport_allowed is None:   # the app is restarted inside the windows: refused there only
        outside_t = sum(row.get(0, 0) for name, row in table.items() if name != "during")
        checks.ok(outside_t == 0, f"transport errors {transport}, all while the app restarted "
                                  f"({outside_t} outside)")
    else:
        checks.ok(transport <= transport_allowed,
                  f"transport errors {transport} (allowed: {transport_allowed}, the requests in flight in "
                  f"killed processes)")
    if must_see_503:
        checks.ok(total.get(503, 0) > 0, f"the fault was felt: {total.get(503, 0)} answers 503")
    for sample in rec.samples[:6]:
        checks.lines.append(f"        sample: {sample}")
    return total


def first_success_after(rec: Recorder, t_back: float, kinds=None) -> float | None:
    """Seconds from ``t_back`` to the first 2xx/3xx of a request that needs the database."""
    for t, kind, status, _s, _lang in sorted(rec.events):
        if t >= t_back and 200 <= status < 400 and (kinds is None or kind in kinds):
            return t - t_back
    return None


def check_changes(url, data, rec: Recorder, checks: Checks, label="database", acked_before=None):
    """No acknowledged save lost; every e-mail change complete (audit, address, two mails) or absent.
    ``acked_before``: only saves acknowledged before that run second must be there (a backup)."""
    from accounts.models import AuditEntry, Mail, User

    app = app_for(url)
    with app.app_context():
        reconnect()
        lost, half, chain_breaks, saves = 0, 0, 0, 0
        for field, key in (("name", "name_targets"), ("email", "email_targets")):
            for uid in data[key]:
                user = User.get_by_id(uid)
                entries = list(AuditEntry.select().where((AuditEntry.target_user == uid)
                                                         & (AuditEntry.action == f"{field}_changed"))
                               .order_by(AuditEntry.id))
                stored = {e.new_value for e in entries}
                acked = [v for v in rec.saves.get((field, uid), [])
                         if acked_before is None or rec.acked_at[v] < acked_before]
                saves += len(acked)
                lost += sum(1 for v in acked if v not in stored)
                # Each entry's old value is the previous entry's new value; the last one is stored.
                values = [e.old_value for e in entries[:1]] + [e.new_value for e in entries]
                chain_ok = all(entries[i].old_value == entries[i - 1].new_value
                               for i in range(1, len(entries)))
                chain_ok = chain_ok and (not entries or getattr(user, field) == values[-1])
                chain_ok = chain_ok and user.version == len(entries) + 1
                chain_breaks += 0 if chain_ok else 1
                if field == "email":
                    mails = collections.Counter(
                        (m.recipient,) for m in Mail.select().where((Mail.user == uid)
                                                                    & (Mail.kind == "email_changed")))
                    for e in entries:
                        for addr in (e.old_value, e.new_value):
                            if mails[(addr,)] < 1:
                                half += 1
                            mails[(addr,)] -= 1
                    half += sum(c for c in mails.values() if c > 0)
        from accounts.db import database

        database.close()
    checks.ok(lost == 0, f"{label}: acknowledged saves kept: {saves - lost} of {saves}")
    checks.ok(chain_breaks == 0, f"{label}: audit chain, stored value and version agree on every "
                                 f"target ({chain_breaks} disagree)")
    checks.ok(half == 0, f"{label}: every e-mail change has exactly its two mails ({half} missing or extra)")


def check_db(url, checks: Checks, label="check-db"):
    env = cli_env(url)
    t = time.time()
    out = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "check-db"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    lines = (out.stdout + out.stderr).strip().splitlines()
    checks.ok(out.returncode == 0, f"{label} ({time.time() - t:.1f} s): exit {out.returncode}: "
                                   f"{' | '.join(lines[:5])}")


def wait_drained(url, timeout: float) -> tuple[int, float]:
    """Wait until no mail is queued and no reset request waits for the worker; returns
    (still waiting, seconds waited)."""
    from accounts.db import database
    from accounts.models import IdentityRequest, Mail

    app = app_for(url)
    t = time.time()
    with app.app_context():
        while True:
            try:
                reconnect()
                queued = (Mail.select().where(Mail.status == "queued").count()
                          + IdentityRequest.select().where(IdentityRequest.processed_at.is_null()).count())
            except Exception:  # noqa: BLE001 - the database may be coming back
                queued = -1
            if queued == 0 or time.time() - t > timeout:
                database.close()
                return queued, time.time() - t
            time.sleep(1)


def check_mail(url, sink: SmtpSink, checks: Checks, max_copies=1, label="mail"):
    from accounts.db import database
    from accounts.models import Mail

    app = app_for(url)
    with app.app_context():
        reconnect()
        rows = list(Mail.select(Mail.message_id, Mail.status, Mail.attempts))
        database.close()
    by_status = collections.Counter(r.status for r in rows)
    ids = {r.message_id for r in rows}
    missing = sum(1 for r in rows if r.status == "sent" and sink.by_id[r.message_id] == 0)
    copies = collections.Counter(sink.by_id[r.message_id] for r in rows if r.status == "sent")
    strangers = sum(1 for mid in sink.by_id if mid not in ids)
    over = sum(c for n, c in copies.items() if n > max_copies)
    checks.lines.append(f"  {label}: {len(rows)} mails written ({dict(by_status)}); at the sink: "
                        f"{sum(sink.by_id.values())} messages, copies per mail "
                        f"{dict(sorted(copies.items()))}")
    checks.ok(by_status.get("queued", 0) == 0 and by_status.get("failed", 0) == 0,
              f"{label}: nothing left queued or failed")
    checks.ok(missing == 0, f"{label}: every sent mail reached the SMTP server ({missing} missing)")
    checks.ok(over == 0, f"{label}: each mail arrived at most {max_copies}x ({over} more often)")
    checks.ok(strangers == 0, f"{label}: no message the database does not know ({strangers})")
    return copies


def leased_mails(url):
    from accounts.clock import utcnow
    from accounts.db import database
    from accounts.models import Mail

    app = app_for(url)
    with app.app_context():
        reconnect()
        rows = list(Mail.select(Mail.id).where((Mail.status == "queued") & (Mail.lease_until > utcnow())))
        database.close()
    return rows


def message_ids(url, ids):
    from accounts.db import database
    from accounts.models import Mail

    app = app_for(url)
    with app.app_context():
        reconnect()
        rows = [m.message_id for m in Mail.select(Mail.message_id).where(Mail.id.in_(ids))]
        database.close()
    return rows


def outbox_lease():
    from accounts.outbox import LEASE_SECONDS

    return LEASE_SECONDS


def check_resets(url, rec: Recorder, checks: Checks):
    """Every acknowledged reset request recorded and answered by the worker; each answered "sent"
    has exactly one reset mail (SPEC 11.8: the web request only records it)."""
    from accounts.db import database
    from accounts.models import IdentityRequest, Mail

    app = app_for(url)
    with app.app_context():
        reconnect()
        requests = IdentityRequest.select().where(IdentityRequest.kind == "reset")
        n = requests.count()
        pending = requests.where(IdentityRequest.processed_at.is_null()).count()
        answered = requests.where(IdentityRequest.processed_at.is_null(False))
        outcomes = collections.Counter(r.outcome for r in answered)
        mails = Mail.select().where(Mail.kind == "reset").count()
        database.close()
    checks.ok(rec.reset_ok <= n <= rec.reset_ok + rec.reset_unknown and pending == 0,
              f"reset requests: {n} recorded for {rec.reset_ok} acknowledged (+{rec.reset_unknown} whose "
              f"answer was an error or lost), {pending} left unanswered; outcomes {dict(outcomes)}")
    checks.ok(mails == outcomes.get("sent", 0),
              f"reset mails {mails} = requests answered 'sent' {outcomes.get('sent', 0)}")


def otp_summary(rec: Recorder, checks: Checks, windows=None):
    """Whole Mail OTP sign-ins; for a fault window, those whose mail the fault held back."""
    done = [o for o in rec.otp if o[2]]
    waits = [o[1] for o in rec.otp if o[1] is not None]
    checks.lines.append(
        f"  Mail OTP sign-ins: {len(rec.otp)} started, {len(done)} completed; wait for the mail "
        f"p50 {statistics.median(waits):.1f} s, max {max(waits):.1f} s" if waits else
        f"  Mail OTP sign-ins: {len(rec.otp)} started, none got its mail")
    held = []
    for a, b in windows or []:
        held += [o for o in rec.otp if o[1] is not None and o[0] < b and o[0] + o[1] > a + 1]
        after = [o[0] + o[1] - b for o in held]
        checks.lines.append(
            f"  ... held back by the fault: {len(held)}, completed {sum(1 for o in held if o[2])}; their "
            f"mail arrived {min(after):.1f}-{max(after):.1f} s after the fault ended; the page said "
            f"the mail is delayed to {sum(1 for o in held if o[3])} of them" if held else
            "  ... no sign-in was held back by the fault")
    checks.ok(all(o[2] for o in rec.otp), f"every Mail OTP sign-in completed "
                                          f"({sum(1 for o in rec.otp if not o[2])} did not)")
    return held


def no_lock_left(url, pg: PrivatePostgres | None, checks: Checks):
    """After the kills: no session idle in a transaction, and a write to every target gets its lock."""
    if pg is not None:
        stuck = pg.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND state LIKE 'idle in transaction%'", dbname=url.rsplit("/", 1)[1])
        waiting = pg.psql("SELECT count(*) FROM pg_locks WHERE NOT granted", dbname=url.rsplit("/", 1)[1])
        t = time.time()
        pg.psql("SET lock_timeout = '2s'; BEGIN; UPDATE \"user\" SET updated_at = updated_at; "
                "UPDATE contract SET users_total = users_total; ROLLBACK;", dbname=url.rsplit("/", 1)[1])
        checks.ok(stuck == "0" and waiting == "0",
                  f"no lock left: {stuck} sessions idle in a transaction, {waiting} ungranted locks; "
                  f"a write over every user row got its locks in {time.time() - t:.2f} s")
    else:
        path = url[len("sqlite:///"):]
        t = time.time()
        conn = sqlite3.connect(path, timeout=2, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            got = True
        except sqlite3.OperationalError:
            got = False
        finally:
            conn.close()
        checks.ok(got, f"no lock left: the write lock was free after {time.time() - t:.2f} s")


# --- the rig: database, SMTP, Redis, gunicorn, delivery worker ------------------------------------

class Rig:
    def __init__(self, args, db_kind, *, redis=False, ratelimit=False, delivery=True, sink_delay=0.0,
                 db_dir=None):
        self.args = args
        self.db_kind = db_kind
        self.tmp = Path(tempfile.mkdtemp(prefix="portal-faults-"))
        self.pg = None
        self.redis = PrivateRedis() if redis else None
        self.ratelimit = ratelimit
        self.sink = SmtpSink(delay=sink_delay)
        self.delivery_wanted = delivery
        self.db_dir = Path(db_dir) if db_dir else self.tmp
        self.server = None
        self.delivery = None
        self.url = None
        self.data = None

    def __enter__(self):
        if self.db_kind == "postgresql":
            self.pg = PrivatePostgres(base=str(self.db_dir) if self.db_dir != self.tmp else None)
            self.pg.init().start()
            self.url = self.pg.createdb("portal")
        else:
            self.url = f"sqlite:///{self.db_dir}/portal.db"
        log(f"database: {self.db_kind} ({self.url.split('@')[-1]})")
        self.data = prepare(self.url, self.args.clients)
        if self.args.filler:
            t = time.time()
            from bench_migration import seed_natives

            from accounts.db import database

            app_for(self.url)
            with database.connection_context():
                seed_natives(self.args.filler)
            log(f"{self.args.filler:,} more users in {time.time() - t:.1f} s")
        self.sink.start()
        if self.redis:
            self.redis.start()
        env = dict(os.environ, APP_ENV="production", DATABASE_URL=self.url, SECRET_KEY="fault-secret",
                   SESSION_COOKIE_SECURE="0", MAIL_SERVER="127.0.0.1",
                   MAIL_PORT=str(self.sink.port), BASE_URL="http://127.0.0.1",
                   RATELIMIT_ENABLED="1" if self.ratelimit else "0",
                   REDIS_URL=self.redis.url if self.redis else "")
        for k in [k for k in env if k.startswith("ARGON2_")]:
            del env[k]
        self.env = env
        self.server = Gunicorn(env, workers=self.args.workers, log=self.tmp / "gunicorn.log").start()
        if self.delivery_wanted:
            self.delivery = DeliveryWorker(env, interval=1.0, log=self.tmp / "deliver.log").start()
        log(f"gunicorn -w {self.args.workers} on 127.0.0.1:{self.server.port} (workers "
            f"{self.server.worker_pids()}); SMTP sink on {self.sink.port}"
            + (f"; redis on {self.redis.port}" if self.redis else "")
            + (f"; deliver-mail pid {self.delivery.proc.pid}" if self.delivery else ""))
        return self

    def __exit__(self, *exc):
        for part in (self.delivery, self.server):
            if part is not None:
                part.stop()
        self.sink.stop()
        if self.redis:
            self.redis.cleanup()
        if self.pg:
            self.pg.cleanup()
        if self.args.keep:
            log(f"kept: {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def stop_app(self):
        self.server.stop()
        if self.delivery:
            self.delivery.stop()

    def start_app(self):
        self.server = Gunicorn(self.env, workers=self.args.workers, log=self.tmp / "gunicorn.log",
                               port=self.server.port).start()
        if self.delivery:
            self.delivery.start()

    def restart_server(self, **env):
        """The same app on the same port with other settings (no request is in flight)."""
        self.server.stop()
        self.env = {**self.env, **env}
        self.server = Gunicorn(self.env, workers=self.args.workers, log=self.tmp / "gunicorn.log",
                               port=self.server.port).start()

    def load(self, rec, otp_threads=4):
        return Load(self.server.port, self.data, self.args.clients, rec, self.sink, otp_threads=otp_threads)

    def log_tail(self, n=15):
        return "\n".join(self.server.log_text().splitlines()[-n:])


def finish(name, db_kind, checks: Checks, figures: dict, rig: Rig | None = None):
    print(f"\n== {name} on {db_kind}")
    print("\n".join(checks.lines))
    figures = {"fault": name, "db": db_kind, "passed": not checks.failures, **figures,
               "load_average": round(os.getloadavg()[0], 2)}
    print("RESULT " + json.dumps(figures, ensure_ascii=False, default=str))
    if checks.failures and rig is not None:
        print("\ngunicorn log (tail):\n" + rig.log_tail(25))
        if rig.delivery:
            print("\ndeliver-mail log (tail):\n" + "\n".join(rig.delivery.log_text().splitlines()[-15:]))
    print(("PASS" if not checks.failures else "FAIL: " + "; ".join(checks.failures)) + "\n", flush=True)
    return not checks.failures


def count_lines(text: str, needle: str) -> int:
    return sum(1 for line in text.splitlines() if needle in line)


# --- the faults ---------------------------------------------------------------------------------

def fault_smtp(args, db_kind):
    """The SMTP server is down for 30 s under load."""
    with Rig(args, db_kind) as rig:
        rec, checks = Recorder(), Checks()
        load = rig.load(rec)
        load.start()
        time.sleep(args.warmup)
        rec.mark("SMTP server stopped")
        rig.sink.stop()
        down = time.time() - rec.t0
        time.sleep(30)
        rig.sink.start()
        up = time.time() - rec.t0
        rec.mark("SMTP server started again")
        time.sleep(args.after)
        load.finish()
        rec.mark("load stopped; waiting for the outbox to drain")
        queued, waited = wait_drained(rig.url, 240)
        drained_after = (time.time() - rec.t0) - up
        summarize_answers(rec, [(down, up)], checks, grace=0)
        held = otp_summary(rec, checks, [(down, up)])
        slow = [o for o in held if o[1] > 5]
        checks.ok(slow and all(o[3] for o in slow), "the Mail OTP page said the mail is delayed to every "
                                                    f"sign-in that waited over 5 s for it ({len(slow)})")
        check_changes(rig.url, rig.data, rec, checks)
        check_resets(rig.url, rec, checks)
        copies = check_mail(rig.url, rig.sink, checks, max_copies=1)
        check_db(rig.url, checks)
        return finish("smtp", db_kind, checks, {
            "requests": len(rec.events), "mails": sum(copies.values()),
            "outbox_empty_s_after_smtp_back": round(drained_after, 1),
            "otp_held": len(held), "otp_notice_seen": sum(1 for o in held if o[3]),
            "otp_mail_s_after_smtp_back": round(max((o[0] + o[1] - up for o in held), default=0), 1)},
            rig)


def fault_postgres_restart(args, db_kind):
    """PostgreSQL stopped (fast: every session terminated) for --outage seconds under load."""
    if db_kind != "postgresql":
        print("postgres-restart runs on PostgreSQL only")
        return True
    with Rig(args, db_kind) as rig:
        rec, checks = Recorder(), Checks()
        load = rig.load(rec)
        load.start()
        time.sleep(args.warmup)
        rec.mark("PostgreSQL stopping (fast)")
        t_down = time.time() - rec.t0
        rig.pg.stop("fast")
        time.sleep(args.outage)
        rig.pg.start()
        t_back = time.time() - rec.t0
        rec.mark(f"PostgreSQL back after {t_back - t_down:.1f} s")
        time.sleep(args.after)
        load.finish()
        rec.mark("load stopped")
        queued, _ = wait_drained(rig.url, 60)
        totals = summarize_answers(rec, [(t_down, t_back)], checks, grace=args.grace, must_see_503=True)
        recovery = first_success_after(rec, t_back, kinds={"healthz", "page_portal", "console_user",
                                                           "console_search"})
        late = [e for e in rec.events if e[0] > t_back + args.grace and e[2] >= 500]
        checks.ok(recovery is not None and recovery < args.grace,
                  f"first database-backed 2xx {recovery if recovery is None else round(recovery, 2)} s "
                  f"after PostgreSQL was back, no restart of the app")
        log_text = rig.server.log_text()
        checks.lines.append(f"  gunicorn log: {count_lines(log_text, 'database unavailable')} lines "
                            f"'database unavailable', {count_lines(log_text, 'Traceback')} tracebacks")
        deliver_log = rig.delivery.log_text()
        checks.ok(rig.delivery.alive(), "the delivery worker is still running "
                                        f"({count_lines(deliver_log, 'database unavailable')} line(s) "
                                        f"'database unavailable, waiting', "
                                        f"{count_lines(deliver_log, 'database back')} 'database back')")
        otp_summary(rec, checks)
        check_changes(rig.url, rig.data, rec, checks)
        check_resets(rig.url, rec, checks)
        copies = check_mail(rig.url, rig.sink, checks, max_copies=2)
        check_db(rig.url, checks)
        return finish("postgres-restart", db_kind, checks, {
            "requests": len(rec.events), "outage_s": round(t_back - t_down, 1),
            "answers_503": totals.get(503, 0), "late_5xx": len(late),
            "first_success_after_back_s": round(recovery, 2) if recovery is not None else None,
            "mails": sum(copies.values()), "mails_twice": copies.get(2, 0)}, rig)


def fault_worker_kill(args, db_kind):
    """A gunicorn worker SIGKILLed mid-request, five times under load."""
    with Rig(args, db_kind) as rig:
        rec, checks = Recorder(), Checks()
        load = rig.load(rec)
        load.start()
        time.sleep(args.warmup)
        rnd = random.Random(7)
        kills = []
        for i in range(args.kills):
            pids = rig.server.worker_pids()
            victim = rnd.choice(pids)
            os.kill(victim, signal.SIGKILL)
            kills.append(time.time() - rec.t0)
            rec.mark(f"kill {i + 1}: SIGKILL worker {victim} (of {pids})")
            time.sleep(args.interval)
        replaced = len(rig.server.worker_pids())
        time.sleep(args.after)
        load.finish()
        rec.mark("load stopped")
        wait_drained(rig.url, 60)
        windows = [(t, t) for t in kills]
        totals = summarize_answers(rec, windows, checks, grace=1.0,
                                   transport_allowed=args.kills)   # one request in flight per sync worker
        checks.ok(replaced == args.workers, f"gunicorn replaced every killed worker: {replaced} of "
                                            f"{args.workers} running")
        no_lock_left(rig.url, rig.pg, checks)
        otp_summary(rec, checks)
        check_changes(rig.url, rig.data, rec, checks)
        check_resets(rig.url, rec, checks)
        copies = check_mail(rig.url, rig.sink, checks, max_copies=1)
        check_db(rig.url, checks)
        return finish("worker-kill", db_kind, checks, {
            "requests": len(rec.events), "kills": len(kills), "transport_errors": totals.get(0, 0),
            "answers_5xx": sum(c for s, c in totals.items() if s >= 500), "mails": sum(copies.values())},
            rig)


def fault_delivery_kill(args, db_kind):
    """The delivery worker SIGKILLed mid-batch: a backlog builds up, the worker starts, is killed
    while it sends (the sink takes 50 ms a mail), three times; then the leases run out."""
    with Rig(args, db_kind, sink_delay=0.05) as rig:
        rec, checks = Recorder(), Checks()
        load = rig.load(rec, otp_threads=0)
        load.start()
        kills, leased = [], set()
        for i in range(args.kills if args.kills != 5 else 3):
            rig.delivery.stop()
            time.sleep(args.backlog)
            rig.delivery.start()
            before = sum(rig.sink.by_id.values())
            deadline = time.time() + 30
            while sum(rig.sink.by_id.values()) < before + 5 and time.time() < deadline:
                time.sleep(0.05)
            time.sleep(random.uniform(0.2, 1.0))
            rig.delivery.kill()
            kills.append(time.time() - rec.t0)
            leased |= {m.id for m in leased_mails(rig.url)}
            rec.mark(f"kill {i + 1}: SIGKILL deliver-mail after it sent "
                     f"{sum(rig.sink.by_id.values()) - before} mails of its batch; "
                     f"{len(leased)} leased mails wait for their lease so far")
        rig.delivery.start()
        time.sleep(args.after)
        load.finish()
        rec.mark("load stopped; waiting for the leases (120 s) and the outbox to drain")
        queued, waited = wait_drained(rig.url, 300)
        summarize_answers(rec, [(kills[0], kills[-1])], checks, grace=0)
        check_changes(rig.url, rig.data, rec, checks)
        copies = check_mail(rig.url, rig.sink, checks, max_copies=2)
        checks.ok(leased and all(rig.sink.by_id[mid] for mid in message_ids(rig.url, leased)),
                  f"the {len(leased)} mails leased by the killed workers returned to the queue and "
                  f"arrived after the lease ({outbox_lease()} s)")
        check_db(rig.url, checks)
        return finish("delivery-kill", db_kind, checks, {
            "requests": len(rec.events), "kills": len(kills), "mails": sum(copies.values()),
            "mails_twice": copies.get(2, 0), "leased_at_kills": len(leased),
            "drained_s_after_load": round(waited, 1),
            "worker_starts": rig.delivery.starts}, rig)


def fault_redis(args, db_kind):
    """Redis (the rate-limit storage) hung (SIGSTOP) for 15 s, then, once the workers went back to
    it, killed (connections refused) for 20 s."""
    with Rig(args, db_kind, redis=True) as rig:
        rec, checks = Recorder(), Checks()
        load = rig.load(rec, otp_threads=0)
        load.start(before_go=lambda: rig.restart_server(RATELIMIT_ENABLED="1"))
        rec.mark(f"rate limits on, in Redis (workers {rig.server.worker_pids()})")
        time.sleep(args.warmup)
        rec.mark("redis hung (SIGSTOP)")
        a = time.time() - rec.t0
        rig.redis.pause()
        time.sleep(15)
        rig.redis.resume()
        b = time.time() - rec.t0
        rec.mark("redis resumed (SIGCONT); the workers find it again within 32 s")
        time.sleep(35)
        rec.mark("redis killed")
        c = time.time() - rec.t0
        rig.redis.kill()
        time.sleep(20)
        rig.redis.start()
        d = time.time() - rec.t0
        rec.mark("redis started again")
        time.sleep(args.after)
        load.finish()
        totals = summarize_answers(rec, [(a, b), (c, d)], checks, grace=0)
        for name, (x, y) in (("hung", (a, b)), ("down", (c, d))):
            inside = [e for e in rec.events if x <= e[0] <= y]
            limited = sum(1 for e in inside if e[2] == 429)
            checks.ok(limited, f"Redis {name}: rate limits still enforced (in memory): {limited} answers 429 "
                               f"of {len(inside)}; p95 {pct([e[3] for e in inside], 0.95) * 1000:.0f} ms, "
                               f"max {max(e[3] for e in inside) * 1000:.0f} ms")
        log_text = rig.server.log_text()
        fallbacks = count_lines(log_text, "falling back to in-memory storage")
        checks.ok(0 < fallbacks <= 2 * args.workers,
                  f"log: {fallbacks} lines 'falling back to in-memory storage' (at most one per worker "
                  f"and outage), {count_lines(log_text, 'Traceback')} tracebacks")
        hung = [e[3] for e in rec.events if a <= e[0] <= b]
        check_changes(rig.url, rig.data, rec, checks)
        check_db(rig.url, checks)
        return finish("redis", db_kind, checks, {
            "requests": len(rec.events),
            "answers_429_during": sum(1 for e in rec.events
                                      if e[2] == 429 and (a <= e[0] <= b or c <= e[0] <= d)),
            "answers_5xx": sum(v for s, v in totals.items() if s >= 500),
            "hung_p95_ms": round(pct(hung, 0.95) * 1000) if hung else None,
            "hung_max_ms": round(max(hung) * 1000) if hung else None,
            "fallback_log_lines": fallbacks}, rig)


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, max(0, int(round(len(values) * p)) - 1))] if values else 0


# --- the import killed at random points ----------------------------------------------------------

def _fresh(db_kind, tmp, name, pg):
    if db_kind == "postgresql":
        url = pg.createdb(name)
    else:
        url = f"sqlite:///{tmp}/{name}.db"
    from bench_migration import seed_natives

    from accounts.db import database
    from accounts.schema import upgrade

    app_for(url)
    upgrade()
    with database.connection_context():
        seed_natives(2000)
    return url


def _run_import(url, csv_path, kill_after=None):
    env = cli_env(url)
    t = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "migrate-legacy", str(csv_path)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed = False
    if kill_after is not None:
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            killed = True
    out, _ = proc.communicate()
    return proc.returncode, killed, time.time() - t, out


_pointed_at = {}


def _import_counts(url) -> tuple[int, int]:
    """(users, B-tree indexes on user and legacy_account) as another process sees them now."""
    from accounts.db import database, init_database
    from accounts.models import User
    from accounts.search_index import OWN_INDEXES

    if _pointed_at.get("url") != url:
        init_database(url)
        _pointed_at["url"] = url
    with database.connection_context():
        return (User.select().count(),
                sum(1 for t in ("user", "legacy_account") for i in database.get_indexes(t)
                    if i.name not in OWN_INDEXES))


def _run_import_until(url, csv_path, when):
    """Run the import and SIGKILL it as soon as ``when((users, indexes), seconds)`` holds."""
    env = cli_env(url)
    t = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "migrate-legacy", str(csv_path)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = (0, 0)
    while proc.poll() is None:
        try:
            state = _import_counts(url)
        except Exception:  # noqa: BLE001 - a table being rebuilt; look again
            time.sleep(0.01)
            continue
        if when(state, time.time() - t):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True, time.time() - t, _import_counts(url)
        time.sleep(0.02)
    return False, time.time() - t, _import_counts(url)


def _import_state(url) -> str:
    """How far a killed import had got: rows written, indexes suspended."""
    from accounts.db import database
    from accounts.models import LegacyAccount, User

    app_for(url)
    with database.connection_context():
        users, legacy = User.select().count(), LegacyAccount.select().count()
        indexes = sum(len(database.get_indexes(t)) for t in ("user", "legacy_account"))
    return f"{legacy:,} legacy accounts, {users:,} users, {indexes} indexes on user + legacy_account"


def snapshot(url) -> dict:
    """Every table's rows without surrogate ids and clock times; foreign keys by natural key."""
    from peewee import DateTimeField, ForeignKeyField

    from accounts.db import database, is_postgres
    from accounts.models import ALL_MODELS, Contract, LegacyAccount, User

    natural = {Contract: lambda r: r.ecid, User: lambda r: (r.portal, r.login_id_key),
               LegacyAccount: lambda r: (r.login_id_key, r.contract_ecid)}
    app_for(url)
    out = {}
    with database.connection_context():
        keys = {m: {r.id: natural[m](r) for r in m.select()} for m in natural}
        for model in ALL_MODELS:
            fields = [f for f in model._meta.sorted_fields
                      if not f.primary_key and not isinstance(f, DateTimeField)]
            rows = []
            for row in model.select().dicts().iterator():
                item = []
                for f in fields:
                    v = row[f.name]
                    if isinstance(f, ForeignKeyField) and v is not None:
                        v = keys.get(f.rel_model, {}).get(v, ("?", v))
                    item.append(repr(v))
                rows.append(tuple(item))
            out[model._meta.table_name] = sorted(rows)
        # Indexes by what they index; their names are compared apart (a note, not a failure).
        out["(indexes)"] = sorted((m._meta.table_name, tuple(i.columns), bool(i.unique))
                                  for m in ALL_MODELS for i in database.get_indexes(m._meta.table_name))
        out["(index names)"] = sorted(i.name for m in ALL_MODELS
                                      for i in database.get_indexes(m._meta.table_name))
        if is_postgres():
            out["(trigram indexes)"] = sorted(r[0] for r in database.execute_sql(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND indexdef LIKE %s",
                ("%USING gin%",)))
        else:
            out["(triggers)"] = sorted(re.sub(r"\s+|IF NOT EXISTS", "", r[0]) for r in database.execute_sql(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger'"))
            out["(search index)"] = [database.execute_sql("SELECT count(*) FROM user_search").fetchone()]
    return out


def fault_import_kill(args, db_kind):
    """migrate-legacy SIGKILLed at five random moments, resumed each time, then compared with one
    clean run, table by table."""
    from gen_legacy_export import main as gen_main

    tmp = Path(tempfile.mkdtemp(prefix="portal-import-faults-"))
    pg = PrivatePostgres().init().start() if db_kind == "postgresql" else None
    checks = Checks()
    try:
        csv_path = tmp / "legacy.csv"
        gen_main(["--rows", str(args.rows), "--out", str(csv_path), "--natives", "2000"])
        log(f"export: {args.rows:,} rows; database: {db_kind}")
        clean_url = _fresh(db_kind, tmp, "clean", pg)
        code, _, clean_s, out = _run_import(clean_url, csv_path)
        checks.ok(code == 0, f"clean run: exit {code} in {clean_s:.1f} s: {out.strip().splitlines()[-1:]}")
        full = _import_counts(clean_url)
        killed_url = _fresh(db_kind, tmp, "killed", pg)
        rnd = random.Random(args.seed)
        # Five random points spread over the phases: three during the bulk load (random row
        # counts, increasing), one while the indexes are being rebuilt, one in the first pass of a
        # resumed run (reading the file, contracts) before it writes anything.
        plans = [("rows", None)] * 3 + [("indexes", None), ("time", rnd.uniform(0.2, 1.0))]
        points = []
        for i, (kind, target) in enumerate(plans):
            if kind == "rows":   # a random row count beyond what is written, then a random moment more
                now = _import_counts(killed_url)[0]
                target = rnd.randrange(now + 1, now + max(2, (full[0] - now) // (3 - i)))
                extra = rnd.uniform(0, 0.5)
                seen = {}

                def when(c, t, target=target, extra=extra, seen=seen):
                    if c[0] >= target:
                        seen.setdefault("at", t)
                    return "at" in seen and t >= seen["at"] + extra
            elif kind == "indexes":
                def when(c, t):
                    return c[0] >= full[0] and c[1] < full[1]
            else:
                def when(c, t, target=target):
                    return t >= target
            killed, took, state = _run_import_until(killed_url, csv_path, when)
            aim = (f"past {target:,} users" if kind == "rows" else "while the indexes are rebuilt"
                   if kind == "indexes" else f"{target:.2f} s into a resumed run")
            text = (f"{'SIGKILL' if killed else 'not killed, finished'} at {took:.2f} s ({aim}): "
                    f"{state[0]:,} users written, {state[1]} of {full[1]} indexes")
            points.append(text)
            log(f"run {i + 1}: {text}")
        code, _, resumed_s, out = _run_import(killed_url, csv_path)
        checks.ok(code == 0, f"resumed run: exit {code} in {resumed_s:.1f} s: "
                             f"{out.strip().splitlines()[-1:]}")
        checks.ok(all(p.startswith("SIGKILL") for p in points), f"5 kills (clean run {clean_s:.1f} s):")
        for p in points:
            checks.lines.append(f"        {p}")
        a, b = snapshot(clean_url), snapshot(killed_url)
        for table in a:
            if a[table] != b.get(table) and table.startswith("("):
                only_a, only_b = set(a[table]) - set(b.get(table, [])), set(b.get(table, [])) - set(a[table])
                checks.lines.append(f"        only clean: {sorted(only_a)[:4]}; "
                                    f"only resumed: {sorted(only_b)[:4]}")
            if table == "(index names)":
                same = a[table] == b[table]
                checks.lines.append(f"  note (index names): {'the same' if same else 'DIFFERENT'}")
                continue
            checks.ok(a[table] == b.get(table), f"{table}: {len(a[table]):,} rows (clean) vs "
                                                f"{len(b.get(table, [])):,} (killed 5x, resumed): "
                                                f"{'equal' if a[table] == b.get(table) else 'DIFFERENT'}")
        check_db(clean_url, checks, "check-db on the clean database")
        check_db(killed_url, checks, "check-db on the resumed database")
        return finish("import-kill", db_kind, checks, {"rows": args.rows, "clean_s": round(clean_s, 1),
                                                       "kills": points, "resumed_s": round(resumed_s, 1)})
    finally:
        if pg:
            pg.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


# --- disk full, read-only ------------------------------------------------------------------------

class Tmpfs:
    """A small tmpfs for the database files, so that it can be filled and made read-only."""

    def __init__(self, size_mb=200):
        self.path = Path(tempfile.mkdtemp(prefix="portal-disk-"))
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0777", "tmpfs", str(self.path)],
                       check=True, capture_output=True)
        self.filler = self.path / "filler"

    def fill(self):
        with open(self.filler, "wb") as fh:
            block = b"\0" * (1 << 20)
            try:
                while True:
                    fh.write(block)
                    fh.flush()
            except OSError:
                pass
        return self.free()

    def free(self):
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def unfill(self):
        self.filler.unlink(missing_ok=True)

    def readonly(self, on: bool):
        subprocess.run(["mount", "-o", f"remount,{'ro' if on else 'rw'}", str(self.path)], check=True,
                       capture_output=True)

    def cleanup(self):
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)
        shutil.rmtree(self.path, ignore_errors=True)


def fault_disk(args, db_kind):
    """SQLite: the disk fills up for 20 s, then the file system turns read-only for 15 s.
    PostgreSQL: every transaction turns read-only for 20 s (default_transaction_read_only, as a
    standby or a full-disk guard does)."""
    fs = None
    if db_kind == "sqlite":
        if os.geteuid() != 0:
            print("the disk fault mounts a tmpfs: run it as root")
            return False
        fs = Tmpfs()
    try:
        with Rig(args, db_kind, db_dir=fs.path if fs else None) as rig:
            rec, checks = Recorder(), Checks()
            load = rig.load(rec)
            load.start()
            time.sleep(args.warmup)
            windows = []
            if fs:
                a = time.time() - rec.t0
                free = fs.fill()
                rec.mark(f"disk full ({free} bytes left)")
                time.sleep(20)
                fs.unfill()
                windows.append((a, time.time() - rec.t0))
                rec.mark("disk space back")
                time.sleep(10)
                # A mounted file system cannot turn read-only under open files: the app restarts
                # onto it, as it would after a volume came back read-only.
                a = time.time() - rec.t0
                rig.stop_app()
                fs.readonly(True)
                rig.start_app()
                rec.mark("file system read-only, the app restarted onto it")
                time.sleep(15)
                rig.stop_app()
                fs.readonly(False)
                rig.start_app()
                windows.append((a, time.time() - rec.t0))
                rec.mark("file system writable again, the app restarted")
            else:
                dbname = rig.url.rsplit("/", 1)[1]
                a = time.time() - rec.t0
                rig.pg.psql("ALTER SYSTEM SET default_transaction_read_only = on")
                rig.pg.psql("SELECT pg_reload_conf()")
                rec.mark("PostgreSQL read-only (default_transaction_read_only = on)")
                time.sleep(20)
                rig.pg.psql("ALTER SYSTEM RESET default_transaction_read_only", dbname=dbname)
                rig.pg.psql("SELECT pg_reload_conf()")
                windows.append((a, time.time() - rec.t0))
                rec.mark("PostgreSQL writable again")
            time.sleep(args.after)
            load.finish()
            rec.mark("load stopped")
            wait_drained(rig.url, 150)
            totals = summarize_answers(rec, windows, checks, grace=2.0, must_see_503=True,
                                       transport_allowed=None if fs else 0)
            log_text = rig.server.log_text()
            lines = count_lines(log_text, "database unavailable")
            checks.ok(lines > 0 and count_lines(log_text, "Traceback") == 0,
                      f"log: {lines} lines 'database unavailable', {count_lines(log_text, 'Traceback')} "
                      f"tracebacks: {[ln[:160] for ln in log_text.splitlines() if 'unavailable' in ln][:2]}")
            reads = [e for e in rec.events if any(a <= e[0] <= b for a, b in windows)
                     and e[1] in ("page_portal", "console_user", "console_search") and e[2] == 200]
            checks.lines.append(f"  during the fault {len(reads)} reads answered 200 (writes 503)")
            otp_summary(rec, checks)
            check_changes(rig.url, rig.data, rec, checks)
            check_resets(rig.url, rec, checks)
            # A mail the server accepted while its "sent" could not be written goes again.
            copies = check_mail(rig.url, rig.sink, checks, max_copies=2)
            check_db(rig.url, checks)
            return finish("disk", db_kind, checks, {
                "requests": len(rec.events), "answers_503": totals.get(503, 0),
                "answers_500": totals.get(500, 0), "reads_ok_during": len(reads),
                "mails": sum(copies.values()), "mails_twice": copies.get(2, 0)}, rig)
    finally:
        if fs:
            fs.cleanup()


# --- backup and restore under load ----------------------------------------------------------------

# docs/operations.md's backup without the sqlite3 tool (one step: every page in one read transaction).
PY_BACKUP = "import sqlite3,sys; s=sqlite3.connect(sys.argv[1]); d=sqlite3.connect(sys.argv[2]); s.backup(d)"


def fault_backup(args, db_kind):
    """The backup procedures of docs/operations.md and docs/faults.md while the load runs (SQLite:
    VACUUM INTO, the sqlite3 shell's .backup, Python's Connection.backup; PostgreSQL: pg_dump -Fc);
    each copy is restored and must pass check-db and hold every save acknowledged before it
    started, e-mail changes whole."""
    with Rig(args, db_kind) as rig:
        rec, checks = Recorder(), Checks()
        load = rig.load(rec)
        load.start()
        time.sleep(args.warmup)
        if db_kind == "sqlite":
            src = rig.url[len("sqlite:///"):]
            methods = [("VACUUM INTO", rig.tmp / "vacuum-into.db",
                        lambda dst: ["sqlite3", src, f"VACUUM INTO '{dst}'"]),
                       (".backup", rig.tmp / "dot-backup.db",
                        lambda dst: ["sqlite3", src, f".backup '{dst}'"]),
                       ("Connection.backup", rig.tmp / "python-backup.db",
                        lambda dst: [sys.executable, "-c", PY_BACKUP, src, str(dst)])]
        else:
            methods = [("pg_dump -Fc", rig.tmp / "backup.dump",
                        lambda dst: [rig.pg.tool("pg_dump"), "-Fc", "-f", str(dst), rig.url])]
        copies, windows = [], []
        for name, dst, command in methods:
            t = time.time()
            started = t - rec.t0
            try:
                out = subprocess.run(command(dst), capture_output=True, text=True, timeout=240)
                code, err = out.returncode, out.stderr.strip()[:200]
            except subprocess.TimeoutExpired:
                code, err = "timeout", "gave up after 240 s"
            took = time.time() - t
            windows.append((started, started + took))
            size = dst.stat().st_size / 1e6 if dst.exists() else 0
            rec.mark(f"{name}: {took:.1f} s under load ({size:.1f} MB), exit {code}")
            checks.ok(code == 0, f"{name}: exit {code} in {took:.1f} s, {size:.1f} MB {err}")
            copies.append((name, dst, started, took, size))
            time.sleep(5)
        time.sleep(args.after)
        load.finish()
        rec.mark("load stopped")
        summarize_answers(rec, windows, checks, grace=0)
        figures = {"requests": len(rec.events)}
        for name, dst, started, took, size in copies:
            during = collections.Counter(e[2] for e in rec.events if started <= e[0] <= started + took)
            checks.lines.append(f"  while {name} ran ({took:.1f} s): {dict(sorted(during.items()))}")
            t = time.time()
            if db_kind == "sqlite":
                restored_path = rig.tmp / f"restored-{dst.name}"
                shutil.copy(dst, restored_path)   # the restore: the backup file becomes the database
                restored = f"sqlite:///{restored_path}"
            else:
                restored = rig.pg.createdb("restored")
                out = subprocess.run([rig.pg.tool("pg_restore"), "--no-owner", "-d", restored, str(dst)],
                                     capture_output=True, text=True)
                checks.ok(out.returncode == 0,
                          f"pg_restore: exit {out.returncode} {out.stderr.strip()[:200]}")
            restore_s = time.time() - t
            check_db(restored, checks, f"check-db on the copy restored from {name} ({restore_s:.1f} s)")
            check_changes(restored, rig.data, rec, checks, label=f"copy from {name}", acked_before=started)
            figures[name] = {"seconds": round(took, 1), "mb": round(size, 1),
                             "restore_s": round(restore_s, 1), "saves_meanwhile": during.get(303, 0)}
        if db_kind == "postgresql":
            # Can the check fail? The same dump restored without its post-data section (indexes,
            # constraints), as a hurried restore might: check-db must refuse it.
            partial = rig.pg.createdb("partial")
            subprocess.run([rig.pg.tool("pg_restore"), "--no-owner", "--section=pre-data", "--section=data",
                            "-d", partial, str(copies[0][1])], capture_output=True, text=True)
            env = cli_env(partial)
            out = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "check-db", "--quick"],
                                 cwd=ROOT, env=env, capture_output=True, text=True)
            lines = out.stdout.strip().splitlines()
            checks.ok(out.returncode == 1 and any("missing index" in ln for ln in lines),
                      f"check-db refuses the copy restored without indexes: exit {out.returncode}, "
                      f"{len(lines)} lines, e.g. {lines[:2]}")
        check_db(rig.url, checks, "check-db on the live database")
        check_changes(rig.url, rig.data, rec, checks, label="live database")
        return finish("backup", db_kind, checks, figures, rig)


FAULTS = {
    "smtp": fault_smtp,
    "postgres-restart": fault_postgres_restart,
    "worker-kill": fault_worker_kill,
    "delivery-kill": fault_delivery_kill,
    "redis": fault_redis,
    "import-kill": fault_import_kill,
    "disk": fault_disk,
    "backup": fault_backup,
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fault", choices=[*FAULTS, "all"])
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default=None,
                    help="default: sqlite (postgres-restart: postgresql)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--warmup", type=float, default=10.0, help="seconds of load before the fault")
    ap.add_argument("--after", type=float, default=15.0, help="seconds of load after the fault")
    ap.add_argument("--outage", type=float, default=5.0, help="postgres-restart: seconds without a server")
    ap.add_argument("--grace", type=float, default=3.0, help="postgres-restart: seconds to recover")
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--interval", type=float, default=6.0, help="worker-kill: seconds between kills")
    ap.add_argument("--backlog", type=float, default=15.0, help="delivery-kill: seconds of mail to pile up")
    ap.add_argument("--rows", type=int, default=200_000, help="import-kill: rows in the export")
    ap.add_argument("--filler", type=int, default=None,
                    help="more users in the database (default: 200,000 for backup, none otherwise)")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, databases)")
    args = ap.parse_args(argv)
    started = datetime.datetime.now()
    print(f"faults.py {args.fault} --db {args.db or 'default'}; {started:%Y-%m-%d %H:%M}; load average "
          f"{os.getloadavg()[0]:.2f}; free port example {free_port()}", flush=True)
    if args.fault == "all":
        runs = [(f, d) for f in FAULTS for d in ("sqlite", "postgresql") if f != "postgres-restart"
                or d == "postgresql"]
    else:
        runs = [(args.fault, args.db or ("postgresql" if args.fault == "postgres-restart" else "sqlite"))]
    results = []
    for f, d in runs:
        run_args = argparse.Namespace(**vars(args))
        if run_args.filler is None:
            run_args.filler = 200_000 if f == "backup" else 0
        results.append(FAULTS[f](run_args, d))
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
