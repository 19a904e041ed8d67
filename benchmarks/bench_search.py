"""Console search benchmark (SPEC 9): 1,000,000 users, p50/p95 of the real htmx requests.

    .venv/bin/python benchmarks/bench_search.py --db sqlite:///benchmarks/out/bench.db [--users 1000000]
    .venv/bin/python benchmarks/bench_search.py --db postgresql://postgres@127.0.0.1:5432/portal_bench

Fills the database below the ORM (sqlite3 executemany / PostgreSQL COPY) with realistic data:
Japanese names (half- and full-width spaces), e-mail-like and plain login IDs, phones, 10,000
contracts in trees (parents with children). The search index is suspended during the load and
built once (accounts.search_index.suspended). Then it times the console's htmx requests through
the Flask test client, signed in as the operator (all users) and as a parent admin (one tree):
prefix search on login ID, e-mail, name, phone; 3+ character substring search; the user page and
other fragments. ``--reuse`` skips the load when the database already holds the users.
"""

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("APP_ENV", "development")  # benchmarks run the app as `make run` does
sys.path.insert(0, str(ROOT))

FAMILY = [
    ("佐藤", "sato"),
    ("鈴木", "suzuki"),
    ("高橋", "takahashi"),
    ("田中", "tanaka"),
    ("伊藤", "ito"),
    ("渡辺", "watanabe"),
    ("山本", "yamamoto"),
    ("中村", "nakamura"),
    ("小林", "kobayashi"),
    ("加藤", "kato"),
    ("吉田", "yoshida"),
    ("山田", "yamada"),
    ("佐々木", "sasaki"),
    ("山口", "yamaguchi"),
    ("松本", "matsumoto"),
    ("井上", "inoue"),
    ("木村", "kimura"),
    ("林", "hayashi"),
    ("斎藤", "saito"),
    ("清水", "shimizu"),
    ("山崎", "yamazaki"),
    ("森", "mori"),
    ("池田", "ikeda"),
    ("橋本", "hashimoto"),
    ("阿部", "abe"),
    ("石川", "ishikawa"),
    ("山下", "yamashita"),
    ("中島", "nakajima"),
    ("石井", "ishii"),
    ("小川", "ogawa"),
    ("前田", "maeda"),
    ("岡田", "okada"),
    ("長谷川", "hasegawa"),
    ("藤田", "fujita"),
    ("後藤", "goto"),
    ("近藤", "kondo"),
    ("村上", "murakami"),
    ("遠藤", "endo"),
    ("青木", "aoki"),
    ("坂本", "sakamoto"),
]
GIVEN = [
    ("太郎", "taro"),
    ("花子", "hanako"),
    ("一郎", "ichiro"),
    ("次郎", "jiro"),
    ("美咲", "misaki"),
    ("翔太", "shota"),
    ("陽菜", "hina"),
    ("大輔", "daisuke"),
    ("直子", "naoko"),
    ("健太", "kenta"),
    ("由美", "yumi"),
    ("拓也", "takuya"),
    ("恵", "megumi"),
    ("誠", "makoto"),
    ("愛", "ai"),
    ("剛", "tsuyoshi"),
    ("裕子", "yuko"),
    ("隆", "takashi"),
    ("明美", "akemi"),
    ("亮", "ryo"),
]
DOMAINS = [
    "example.co.jp",
    "corp.example.jp",
    "mail.example.com",
    "example.ne.jp",
    "biz.example.jp",
    "ntt.example.com",
    "shop.example.jp",
    "factory.example.co.jp",
]
N_CONTRACTS = 10_000
CHILDREN_PER_PARENT = 3


def generate(n_users: int, seed: int = 7):
    """Contracts (id, ecid, parent_id, name) and user rows, deterministic for a seed."""
    rnd = random.Random(seed)
    contracts = []
    cid = 0
    while cid < N_CONTRACTS:
        cid += 1
        parent_id = cid
        contracts.append((cid, f"ecid{1000000000 + cid:010d}", None, f"パートナー{cid}株式会社"))
        for _ in range(CHILDREN_PER_PARENT):
            if cid >= N_CONTRACTS:
                break
            cid += 1
            contracts.append((cid, f"ecid{1000000000 + cid:010d}", parent_id, f"子契約{cid}株式会社"))
    parent_of = {c[0]: c[2] for c in contracts}
    now = "2026-11-01 00:00:00"

    def users():
        for i in range(1, n_users + 1):
            contract_id = rnd.randint(1, N_CONTRACTS)
            portal = "business" if parent_of[contract_id] is None else "sdpf"
            fam, fam_r = rnd.choice(FAMILY)
            giv, giv_r = rnd.choice(GIVEN)
            space = "\u3000" if rnd.random() < 0.3 else " "
            email = f"{giv_r}.{fam_r}{i}@{rnd.choice(DOMAINS)}"
            login_id = email if rnd.random() < 0.6 else f"{fam_r}{giv_r[0]}{i}"
            phone = (
                f"0{rnd.choice([3, 6, 45, 52, 90, 80, 70])}{rnd.randint(10**7, 10**8 - 1)}"
                if portal == "business" or rnd.random() < 0.7
                else ""
            )
            done = rnd.random() < 0.55
            method = rnd.choice(["mail", "totp"]) if done else None
            yield (
                portal,
                contract_id,
                login_id,
                login_id.lower(),
                email,
                email.lower(),
                f"{fam}{space}{giv}",
                phone,
                False,
                "legacy",
                login_id,
                now if done else None,
                0,
                False,
                method,
                1,
                now,
                now,
            )

    return contracts, users


USER_COLUMNS = (
    "portal",
    "contract_id",
    "login_id",
    "login_id_key",
    "email",
    "email_key",
    "name",
    "phone",
    "is_admin",
    "origin",
    "legacy_login_id",
    "first_login_done_at",
    "failed_logins",
    "disabled",
    "twostep_method",
    "version",
    "created_at",
    "updated_at",
)


def load(n_users: int) -> dict:
    from accounts import search_index
    from accounts.db import database, is_postgres

    contracts, users = generate(n_users)
    times = {}
    t0 = time.perf_counter()
    with search_index.suspended():
        t_rows = time.perf_counter()
        if is_postgres():
            conn = database.connection()
            with conn.cursor() as cur:
                with cur.copy(
                    "COPY contract (id, ecid, parent_id, name, created_at, users_total, "
                    "users_first_login_done) FROM STDIN"
                ) as cp:
                    for c in contracts:
                        cp.write_row((*c, "2026-11-01 00:00:00", 0, 0))
                with cur.copy(f'COPY "user" ({", ".join(USER_COLUMNS)}) FROM STDIN') as cp:
                    for row in users():
                        cp.write_row(row)
                cur.execute(
                    "SELECT setval(pg_get_serial_sequence('contract', 'id'), (SELECT max(id) FROM contract))"
                )
                cur.execute(
                    """SELECT setval(pg_get_serial_sequence('"user"', 'id'), (SELECT max(id) FROM "user"))"""
                )
            conn.commit()
        else:
            with database.atomic():
                cur = database.cursor()
                cur.executemany(
                    "INSERT INTO contract (id, ecid, parent_id, name, created_at, users_total, "
                    "users_first_login_done) VALUES (?, ?, ?, ?, '2026-11-01 00:00:00', 0, 0)",
                    contracts,
                )
                sql = (
                    f'INSERT INTO "user" ({", ".join(USER_COLUMNS)}) '
                    f"VALUES ({', '.join('?' * len(USER_COLUMNS))})"
                )
                batch = []
                for row in users():
                    batch.append(row)
                    if len(batch) == 20000:
                        cur.executemany(sql, batch)
                        batch.clear()
                if batch:
                    cur.executemany(sql, batch)
        times["rows_s"] = time.perf_counter() - t_rows
        t_idx = time.perf_counter()
    times["index_s"] = time.perf_counter() - t_idx
    with database.atomic():
        database.execute_sql(
            "UPDATE contract SET users_total = "
            '(SELECT count(*) FROM "user" u WHERE u.contract_id = contract.id), '
            'users_first_login_done = (SELECT count(*) FROM "user" u WHERE u.contract_id = contract.id '
            "AND u.first_login_done_at IS NOT NULL)"
        )
    database.execute_sql("ANALYZE")
    times["total_s"] = time.perf_counter() - t0
    return times


def principals():
    from accounts.clock import utcnow
    from accounts.models import Contract, Staff, User

    op = Staff.get_or_none(Staff.login_id_key == "bench-op") or Staff.create(
        login_id="bench-op", login_id_key="bench-op", role="operator", password_hash="x"
    )
    admin = User.get_or_none(User.login_id_key == "bench-parent-admin")
    if admin is None:
        parent = Contract.get_by_id(1)
        admin = User.create(
            portal="business",
            contract=parent,
            login_id="bench-parent-admin",
            login_id_key="bench-parent-admin",
            email="bench-admin@example.jp",
            email_key="bench-admin@example.jp",
            name="管理 太郎",
            phone="0312345678",
            is_admin=True,
            first_login_done_at=utcnow(),
            twostep_method="totp",
        )
    return op, admin


def signed_in_client(app, principal):
    """A client with a server-side session for ``principal``, as a sign-in makes it."""
    client = app.test_client()
    with client.session_transaction() as s:
        s["_user_id"] = principal.get_id()
        s["_fresh"] = True
    return client


def sample_queries(rnd, n):
    """Realistic typed queries, taken from rows that exist (and a few that match nothing)."""
    from accounts.models import User

    max_id = User.select(User.id).order_by(User.id.desc()).first().id
    rows = []
    while len(rows) < n:
        u = User.get_or_none(User.id == rnd.randint(1, max_id))
        if u is not None:
            rows.append(u)
    return rows


def timed(client, url, headers, repeat=1):
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        r = client.get(url, headers=headers)
        body = r.get_data()
        out.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, (url, r.status_code, body[:300])
    return out


def pct(values, p):
    values = sorted(values)
    k = max(0, min(len(values) - 1, int(round(p / 100 * len(values) + 0.5)) - 1))
    return values[k]


def run(app, n: int) -> list[tuple[str, str, float, float, int]]:
    from urllib.parse import urlencode

    op, admin = principals()
    rnd = random.Random(11)
    rows = sample_queries(rnd, n)
    hx = {"HX-Request": "true"}
    results = []
    # A parent admin's own tree, for realistic queries in scope.
    from accounts import scope
    from accounts.models import User

    tree_rows = list(User.select().where(scope.user_condition(admin)).order_by(User.id).limit(400))

    def cases(source):
        return {
            "prefix login ID (3-6 chars)": [{"q": u.login_id_key[: rnd.randint(3, 6)]} for u in source],
            "prefix e-mail (full local part)": [{"q": u.email_key.split("@")[0]} for u in source],
            "prefix name (family name)": [{"q": u.name[: rnd.choice([1, 2])]} for u in source],
            "prefix phone (4-6 digits)": [{"q": (u.phone or "0312")[: rnd.randint(4, 6)]} for u in source],
            "prefix no match": [{"q": f"zz{rnd.randint(0, 10**6)}"} for _ in source],
            "substring 3 chars": [{"q": u.login_id_key[2:5], "match": "contains"} for u in source],
            "substring 5+ chars (e-mail middle)": [
                {"q": u.email_key[3:10], "match": "contains"} for u in source
            ],
            "substring name (3 chars)": [
                {"q": u.name[1:4], "match": "contains"} for u in source if len(u.name) >= 4
            ],
            "substring rare (no match)": [
                {"q": f"qx{rnd.randint(0, 10**6)}", "match": "contains"} for _ in source
            ],
            "filter pending + method none": [{"first_login": "pending", "method": "none"} for _ in source],
        }

    for who, principal, source in (("operator", op, rows), ("parent admin", admin, tree_rows or rows)):
        client = signed_in_client(app, principal)
        timed(client, "/admin/?q=warm", hx, repeat=5)
        for name, queries in cases(source).items():
            queries = [q for q in queries if len(q.get("q", "xxx")) >= (3 if q.get("match") else 1)]
            times = []
            for q in queries:
                times += timed(client, "/admin/?" + urlencode(q), hx)
            results.append((who, name, statistics.median(times), pct(times, 95), len(times)))
    # Other pages and fragments (operator), target 20 ms.
    client = signed_in_client(app, op)
    pages = {
        "user page (full)": lambda u: (f"/admin/users/{u.id}", None),
        "diagnosis fragment": lambda u: (f"/admin/users/{u.id}/diagnosis", hx),
        "edit fragment": lambda u: (f"/admin/users/{u.id}/fields/email/edit", hx),
        "search page (full, no query)": lambda u: ("/admin/", None),
        "progress page": lambda u: ("/admin/progress", None),
        "audit log page": lambda u: ("/admin/audit", None),
    }
    for name, make in pages.items():
        times = []
        for u in rows:
            url, headers = make(u)
            times += timed(client, url, headers)
        results.append(("operator", name, statistics.median(times), pct(times, 95), len(times)))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--reuse", action="store_true", help="keep an existing loaded database")
    parser.add_argument(
        "--pool",
        action="store_true",
        help="PostgreSQL: reuse connections (playhouse.pool) instead of one per request",
    )
    args = parser.parse_args()
    if args.db.startswith("sqlite:///"):
        Path(args.db[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("SECRET_KEY", "bench")
    from accounts.db import database
    from accounts.models import User
    from accounts.schema import upgrade
    from app import create_app

    app = create_app(
        {
            "APP_ENV": "development",
            "DATABASE_URL": args.db,
            "TESTING": True,
            "MAIL_SERVER": None,
            "RATELIMIT_ENABLED": False,
            "ARGON2_TIME_COST": 1,
            "ARGON2_MEMORY_COST": 8,
            "ARGON2_PARALLELISM": 1,
        }
    )
    if args.pool and args.db.startswith("postgres"):
        # The app opens a connection per request; a pool shows the requests' own cost.
        from urllib.parse import urlparse

        from playhouse.pool import PooledPostgresqlDatabase

        u = urlparse(args.db)
        database.initialize(
            PooledPostgresqlDatabase(
                u.path.lstrip("/"),
                user=u.username,
                password=u.password,
                host=u.hostname,
                port=u.port or 5432,
                max_connections=8,
                stale_timeout=600,
                prefer_psycopg3=True,
            )
        )
    database.connect(reuse_if_open=True)
    upgrade()
    database.connect(reuse_if_open=True)
    if not (args.reuse and User.select().count() >= args.users):
        if User.select().exists():
            sys.exit("the database already holds users: give an empty one (or --reuse)")
        print(f"loading {args.users:,} users ...", flush=True)
        times = load(args.users)
        print(
            f"load: rows {times['rows_s']:.1f} s, search index {times['index_s']:.1f} s, "
            f"total with counters and ANALYZE {times['total_s']:.1f} s",
            flush=True,
        )
    print(f"users: {User.select().count():,}; uptime: {os.popen('uptime').read().strip()}", flush=True)
    # No app context around the requests: each test-client request gets its own (and its own g).
    results = run(app, args.queries)
    print(f"{'principal':<13} {'request':<38} {'p50 ms':>8} {'p95 ms':>8} {'n':>5}")
    for who, name, p50, p95, n in results:
        print(f"{who:<13} {name:<38} {p50:8.1f} {p95:8.1f} {n:5d}")
    print(f"uptime after: {os.popen('uptime').read().strip()}")


if __name__ == "__main__":
    main()
