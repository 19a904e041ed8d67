"""Benchmark of the legacy area: page latencies with many users, and the CPU cost of a legacy sign-in.

    .venv/bin/python benchmarks/legacy_bench.py [--users 1000000] [--signins 40]

Builds a temporary SQLite database (users of one partner's child contracts, each with a legacy
account whose hash is argon2id at the production parameters), sets a migration period around
now, and drives the app in-process with the Flask test client: p50/p95 per page, and process
CPU seconds per legacy sign-in compared with the CPU seconds of one argon2 verification.
"""
import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from argon2 import PasswordHasher  # noqa: E402


def build(n_users: int, children: int):
    from accounts import period, search_index
    from accounts.clock import utcnow
    from accounts.db import database
    from accounts.models import Contract, LegacyAccount, Staff, User
    from accounts.passwords import PRODUCTION_PARAMETERS

    ph = PasswordHasher(**PRODUCTION_PARAMETERS)
    legacy_hash = ph.hash("Legacy-pass1")
    now = utcnow()
    parent = Contract.create(ecid="ecid1000000000", name="partner")
    kids = [Contract.create(ecid=f"ecid2{i:09d}", parent=parent, name=f"child {i}") for i in range(children)]
    Staff.create(login_id="operator", login_id_key="operator", role="operator", password_hash="x",
                 totp_confirmed_at=now)
    t0 = time.perf_counter()
    with search_index.suspended():
        batch = 2000
        for start in range(0, n_users, batch):
            rows, legacy_rows = [], []
            for i in range(start, min(start + batch, n_users)):
                c = kids[i % children]
                lid = f"user{i:07d}@example.jp"
                rows.append({"portal": "sdpf", "contract": c.id, "login_id": lid, "login_id_key": lid,
                             "email": lid, "email_key": lid, "name": f"利用者 {i}", "phone": "0312345678",
                             "origin": "legacy", "legacy_login_id": lid, "migrated_at": now,
                             "created_at": now, "updated_at": now})
            with database.atomic():
                User.insert_many(rows).execute()
                ids = {u.login_id_key: (u.id, u.contract_id) for u in
                       User.select(User.id, User.login_id_key, User.contract)
                       .where(User.login_id_key.in_([r["login_id_key"] for r in rows]))}
                for r in rows:
                    uid, cid = ids[r["login_id_key"]]
                    legacy_rows.append({"login_id": r["login_id"], "login_id_key": r["login_id_key"],
                                        "contract_ecid": kids[(uid - 1) % children].ecid,
                                        "email": r["email"], "name": r["name"], "phone": r["phone"],
                                        "password_hash": legacy_hash, "user": uid, "migrated_at": now})
                LegacyAccount.insert_many(legacy_rows).execute()
    load_s = time.perf_counter() - t0
    period.set_period(now - datetime.timedelta(days=1), now + datetime.timedelta(days=60))
    return ph, load_s


def timed(fn, repeat):
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=200_000)
    ap.add_argument("--children", type=int, default=200)
    ap.add_argument("--signins", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=200)
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="legacy-bench-")
    os.environ["DATABASE_URL"] = f"sqlite:///{tmp}/bench.db"
    from accounts.db import database
    from accounts.schema import upgrade
    from app import create_app

    app = create_app({"APP_ENV": "development", "DATABASE_URL": os.environ["DATABASE_URL"],
                      "SECRET_KEY": "bench", "MAIL_SERVER": None, "RATELIMIT_ENABLED": False,
                      "WTF_CSRF_ENABLED": False, "BASE_URL": "http://localhost"})
    with app.app_context():
        database.connect(reuse_if_open=True)
        upgrade()
        ph, load_s = build(args.users, args.children)
        database.close()
    print(f"users: {args.users:,} in {args.children} child contracts (loaded in {load_s:.1f} s)")


    from accounts.models import Contract, LegacyAccount, Staff

    client = app.test_client()
    mid = f"user{args.users // 2:07d}@example.jp"

    def signin():
        r = client.post("/legacy/signin", data={"login_id": mid, "password": "Legacy-pass1"})
        assert r.status_code == 303, r.status_code

    # CPU per sign-in against CPU per argon2 verification (production parameters).
    stored = ph.hash("Legacy-pass1")
    c0 = time.process_time()
    for _ in range(args.signins):
        ph.verify(stored, "Legacy-pass1")
    hash_cpu = (time.process_time() - c0) / args.signins
    c0 = time.process_time()
    for _ in range(args.signins):
        signin()
    signin_cpu = (time.process_time() - c0) / args.signins
    print(f"argon2 verify: {hash_cpu * 1000:.1f} ms CPU; legacy sign-in: {signin_cpu * 1000:.1f} ms CPU "
          f"(+{(signin_cpu / hash_cpu - 1) * 100:.0f}% over its hash)")

    def get(path, client_=None, **kw):
        def go():
            r = (client_ or client).get(path, **kw)
            assert r.status_code == 200, (path, r.status_code)
        return go

    signin()
    results = [
        ("GET /legacy/ (signed in, pop-up)", get("/legacy/")),
        ("GET /legacy/identity?edit=1 (htmx)",
         get("/legacy/identity?edit=1", headers={"HX-Request": "true"})),
        ("GET /legacy/tickets", get("/legacy/tickets")),
        ("GET /business/ (period notice)", get("/business/")),
    ]
    anon = app.test_client()
    results.append(("GET /legacy/ (sign-in page)", get("/legacy/", client_=anon)))
    staff_client = app.test_client()
    with app.app_context():
        database.connect(reuse_if_open=True)
        staff = Staff.get()
        child = Contract.select().where(Contract.parent.is_null(False)).first()
        assert LegacyAccount.select().count() == args.users
        database.close()
    staff_client.environ_base.update({"REMOTE_ADDR": "127.0.0.1", "HTTP_USER_AGENT": "bench"})
    with app.app_context():
        database.connect(reuse_if_open=True)
        with staff_client.session_transaction() as s:  # a server-side session, as a sign-in makes it
            s["_user_id"], s["_fresh"] = staff.get_id(), True
        database.close()
    # Baseline: CPU of a request that hashes nothing (the sign-in page).
    c0 = time.process_time()
    for _ in range(args.signins):
        anon.get("/legacy/")
    page_cpu = (time.process_time() - c0) / args.signins
    print(f"plain request (GET /legacy/ sign-in page): {page_cpu * 1000:.1f} ms CPU")
    results += [
        ("GET /admin/settings", get("/admin/settings", staff_client)),
        ("GET /admin/notices (first child contract)", get("/admin/notices", staff_client)),
        ("GET /admin/notices?contract=<child>", get(f"/admin/notices?contract={child.id}", staff_client)),
        ("GET /admin/notices?contract=<child>&after=<middle>",
         get(f"/admin/notices?contract={child.id}&after={args.users // 2}", staff_client)),
    ]
    for name, fn in results:
        fn()  # warm up
        p50, p95 = timed(fn, args.repeat)
        print(f"{name:48s} p50 {p50:6.2f} ms  p95 {p95:6.2f} ms")


if __name__ == "__main__":
    main()
