"""Operator pages benchmark (SPEC 9, 12): every new console page, p50/p95 over HTTP through the Flask
test client, with 1,000,000 users and 100,000 contracts (target p95 under 20 ms on SQLite).

    .venv/bin/python benchmarks/bench_operator.py --db sqlite:///benchmarks/out/operator.db
    .venv/bin/python benchmarks/bench_operator.py --db postgresql://postgres@127.0.0.1:5432/portal_bench_op

Loads the data like benchmarks/bench_search.py (below the ORM, the same realistic generator) with
100,000 contracts (parents with three children each), a terms version "accepted" by every user
(the counter, as the writers keep it), some services and a few staff accounts; then times:
contract search (empty, ECID prefix, name prefix with many matches, no match, next page), contract
pages (parent with children, child), the terms page and a version, the staff page.
``--reuse`` keeps a loaded database.
"""
import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("APP_ENV", "development")  # benchmarks run the app as `make run` does
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_search  # noqa: E402

N_CONTRACTS = 100_000


def extras(n_users: int) -> None:
    from accounts.clock import utcnow
    from accounts.db import database
    from accounts.models import Service, Staff, TermsVersion, User

    with database.atomic():
        TermsVersion.create(version=1, title="カスタマポータル規約 第1版", body="# 第1条\n本規約は…\n" * 200,
                            published_at=utcnow(), accepted_count=n_users)
        rows = [{"contract": cid, "name": "Smart Data Platform", "status": "お申し込み済み"}
                for cid in range(1, N_CONTRACTS + 1, 7)]
        for i in range(0, len(rows), 2000):
            Service.insert_many(rows[i:i + 2000]).execute()
        for i in range(20):
            Staff.create(login_id=f"staff{i}", login_id_key=f"staff{i}", role="helpdesk" if i else "operator",
                         password_hash="x", totp_confirmed_at=utcnow())
        # One admin per contract for a tenth of the contracts (as an export would flag them).
        User.update(is_admin=True).where(User.id % 97 == 0).execute()


def timed(client, url, headers=None):
    t = time.perf_counter()
    r = client.get(url, headers=headers or {})
    r.get_data()
    ms = (time.perf_counter() - t) * 1000
    assert r.status_code == 200, (url, r.status_code)
    return ms


def run(app, n: int):
    from accounts.models import Contract

    op, _admin = bench_search.principals()
    client = bench_search.signed_in_client(app, op)
    hx = {"HX-Request": "true"}
    rnd = random.Random(5)
    for _ in range(5):
        timed(client, "/admin/contracts", hx)
    ids = [rnd.randint(1, N_CONTRACTS) for _ in range(n)]
    rows = {c.id: c for c in Contract.select().where(Contract.id.in_(ids))}
    contracts = [rows[i] for i in ids if i in rows]
    parents = [c for c in contracts if c.parent_id is None] or contracts
    children = [c for c in contracts if c.parent_id is not None] or contracts
    def search(**q):
        return "/admin/contracts?" + urlencode(q)

    first_page = client.get(search(q="子契約"), headers=hx).get_data(as_text=True)
    import re

    nxt = re.search(r'after=(\d+)', first_page)
    cases = {
        "contract search, empty (full page)": [("/admin/contracts", None)] * n,
        "contract search, ECID prefix": [(search(q=c.ecid[:rnd.randint(6, 12)]), hx) for c in contracts],
        "contract search, name prefix (75k match)": [(search(q="子契約"), hx)] * n,
        "contract search, name prefix (exact-ish)": [(search(q=c.name[:-3]), hx) for c in contracts],
        "contract search, no match": [(search(q=f"zz{i}"), hx) for i in range(n)],
        "contract search, next page": [(search(q="子契約", after=nxt.group(1)), hx)] * n,
        "contract page, parent (children)": [(f"/admin/contracts/{c.ecid}", None)
                                             for c in (parents * (n // len(parents) + 1))[:n]],
        "contract page, child": [(f"/admin/contracts/{c.ecid}", None)
                                 for c in (children * (n // len(children) + 1))[:n]],
        "terms page": [("/admin/terms", None)] * n,
        "terms version page": [("/admin/terms/1", None)] * n,
        "staff page": [("/admin/staff", None)] * n,
    }
    results = []
    for name, requests in cases.items():
        times = [timed(client, url, headers) for url, headers in requests]
        results.append((name, statistics.median(times), bench_search.pct(times, 95), len(times)))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()
    if args.db.startswith("sqlite:///"):
        Path(args.db[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("SECRET_KEY", "bench")
    bench_search.N_CONTRACTS = N_CONTRACTS
    from accounts.db import database
    from accounts.models import User
    from accounts.schema import upgrade
    from app import create_app

    app = create_app({"APP_ENV": "development", "DATABASE_URL": args.db, "TESTING": True, "MAIL_SERVER": None,
                      "RATELIMIT_ENABLED": False, "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 8,
                      "ARGON2_PARALLELISM": 1})
    database.connect(reuse_if_open=True)
    upgrade()
    database.connect(reuse_if_open=True)
    if not (args.reuse and User.select().count() >= args.users):
        if User.select().exists():
            sys.exit("the database already holds users: give an empty one (or --reuse)")
        print(f"loading {args.users:,} users, {N_CONTRACTS:,} contracts ...", flush=True)
        times = bench_search.load(args.users)
        extras(args.users)
        database.execute_sql("ANALYZE")
        print(f"load: {times['total_s']:.1f} s", flush=True)
    print(f"users: {User.select().count():,}; uptime: {os.popen('uptime').read().strip()}", flush=True)
    results = run(app, args.requests)
    print(f"{'request':<44} {'p50 ms':>8} {'p95 ms':>8} {'n':>5}")
    for name, p50, p95, n in results:
        print(f"{name:<44} {p50:8.1f} {p95:8.1f} {n:5d}")
    print(f"uptime after: {os.popen('uptime').read().strip()}")


if __name__ == "__main__":
    main()
