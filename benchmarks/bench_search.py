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


def _contracts():
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
    return contracts


def generate(n_users: int, seed: int = 7):
    """Contracts (id, ecid, parent_id, name) and user rows, deterministic for a seed."""
    rnd = random.Random(seed)
    contracts = _contracts()
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


COMMON_DOMAINS = [("example.co.jp", 5), ("example.com", 3), ("example.ne.jp", 2)]


def generate_common(n_users: int, seed: int = 7):
    """The data set where most users share their first characters (issue 14), as a realistic
    export has them: 85 % of login IDs are ``user<7 digits>@example...`` numbered in the order of
    the export (so a prefix such as ``user099`` is a run of neighbouring ids, at the end of the
    table), each such login ID also the user's e-mail; the other e-mails on the same three
    domains; family names weighted as in Japan (佐藤, 鈴木, 高橋 ... : a handful of first
    characters cover most users); every phone starts with 0; every ECID with ``ecid1000``.
    """
    rnd = random.Random(seed)
    contracts = _contracts()
    parent_of = {c[0]: c[2] for c in contracts}
    now = "2026-11-01 00:00:00"
    family_weights = [1 / (rank + 1) for rank in range(len(FAMILY))]
    domains = [d for d, _ in COMMON_DOMAINS]
    domain_weights = [w for _, w in COMMON_DOMAINS]

    def users():
        for i in range(1, n_users + 1):
            contract_id = rnd.randint(1, N_CONTRACTS)
            portal = "business" if parent_of[contract_id] is None else "sdpf"
            fam, fam_r = rnd.choices(FAMILY, family_weights)[0]
            giv, giv_r = rnd.choice(GIVEN)
            space = "\u3000" if rnd.random() < 0.3 else " "
            domain = rnd.choices(domains, domain_weights)[0]
            if rnd.random() < 0.85:
                login_id = email = f"user{i:07d}@{domain}"
            else:
                email = f"{giv_r}.{fam_r}{i}@{domain}"
                login_id = email if rnd.random() < 0.6 else f"{fam_r}{giv_r[0]}{i}"
            phone = (
                f"0{rnd.choice([3, 6, 45, 52, 90, 80, 70])}{rnd.randint(10**7, 10**8 - 1)}"
                if portal == "business" or rnd.random() < 0.7
                else ""
            )
            done = rnd.random() < 0.55
            method = rnd.choice(["mail", "totp"]) if done else None
            yield (portal, contract_id, login_id, login_id.lower(), email, email.lower(),
                   f"{fam}{space}{giv}", phone, False, "legacy", login_id, now if done else None, 0,
                   False, method, 1, now, now)

    return contracts, users


DATASETS = {"mixed": generate, "common": generate_common}


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


def load(n_users: int, dataset: str = "mixed") -> dict:
    from accounts import search_index
    from accounts.db import database, is_postgres

    contracts, users = DATASETS[dataset](n_users)
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


# --------------------------------------------------------------------------------------------
# Over HTTP: gunicorn -w 2, real sign-ins, each word typed one character at a time (issue 14)
# --------------------------------------------------------------------------------------------

PASSWORD = "Bench-pass1"


def http_principals() -> dict:
    """The operator and the parent admin of ``principals()`` made able to sign in for real:
    password (production argon2id parameters) + TOTP."""
    import pyotp

    from accounts.clock import utcnow
    from accounts.passwords import PRODUCTION_PARAMETERS, Hasher

    op, admin = principals()
    pw = Hasher(**PRODUCTION_PARAMETERS).hash(PASSWORD)
    secrets = {}
    for who, row in (("operator", op), ("parent admin", admin)):
        secret = pyotp.random_base32()
        row.password_hash = pw
        row.totp_secret = secret
        row.failed_logins = 0
        row.locked_until = None
        row.twostep_failures = 0
        row.twostep_locked_until = None
        row.totp_last_step = None
        if who == "operator":
            row.totp_confirmed_at = utcnow()
        else:
            row.twostep_method = "totp"
            row.password_changed_at = utcnow()
        row.save()
        secrets[who] = (row.login_id, secret)
    return {"secrets": secrets, "admin": admin}


def http_sign_in(client, who, login_id, secret):
    """Sign in as a person does (GET the form, POST the password, POST the TOTP code)."""
    import pyotp

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from load_concurrent import token

    if who == "operator":
        form, code_path = "/admin/login", "/admin/login/code"
    else:
        form, code_path = "/business/signin?next=/admin/", "/business/signin/totp"
    _, html, _ = client.request("GET", form)
    s, _, loc = client.request("POST", form.split("?")[0], {"csrf_token": token(html), "login_id": login_id,
                                                          "password": PASSWORD, "next": "/admin/"})
    assert s == 303 and loc.endswith(code_path), (who, "password", s, loc)
    _, html, _ = client.request("GET", code_path)
    code = pyotp.TOTP(secret).now()
    s, _, loc = client.request("POST", code_path, {"csrf_token": token(html), "code": code})
    assert s == 303, (who, "TOTP", s, loc)
    s, html, _ = client.request("GET", "/admin/")
    assert s == 200, (who, "console", s)


def typed(word: str, start: int = 1):
    """What the search box holds after each key press: word[:start], word[:start + 1], ..., word."""
    return [word[:k] for k in range(start, len(word) + 1)]


def typing_cases(rows, rnd) -> dict:
    """Per class, the queries a person sends typing the words of ``rows`` one character at a time."""
    # The reference: the same request without a query (the first page of everyone in scope).
    cases = {"no query (reference)": [{"q": ""} for _ in rows],
             "prefix login ID": [], "prefix e-mail": [], "prefix name": [], "prefix phone": [],
             "prefix ECID": [], "substring login ID": [], "substring e-mail": [], "substring name": [],
             "substring phone": []}
    for u in rows:
        cases["prefix login ID"] += [{"q": q} for q in typed(u.login_id)]
        cases["prefix e-mail"] += [{"q": q} for q in typed(u.email)]
        cases["prefix name"] += [{"q": q} for q in typed(u.name)]
        if u.phone:
            cases["prefix phone"] += [{"q": q} for q in typed(u.phone)]
        cases["prefix ECID"] += [{"q": q} for q in typed(u.contract.ecid)]
        # Substrings: from a point inside the word, from the third character typed on.
        local = u.login_id.split("@")[0]
        cut = rnd.randint(1, max(1, len(local) - 3))
        middle = u.login_id[cut:cut + 10]
        cases["substring login ID"] += [{"q": q, "match": "contains"} for q in typed(middle, 3)]
        at = u.email.find("@")
        cases["substring e-mail"] += [{"q": q, "match": "contains"} for q in typed(u.email[at:at + 12], 3)]
        if len(u.name) >= 4:
            cases["substring name"] += [{"q": q, "match": "contains"} for q in typed(u.name[1:], 3)]
        if u.phone:
            cases["substring phone"] += [{"q": q, "match": "contains"} for q in typed(u.phone[3:], 3)]
    return cases


def run_http(db_url: str, words: int, workers: int = 2) -> list:
    """Start gunicorn on the loaded database, sign in both principals, type ``words`` words of each
    kind per principal; returns (principal, class, p50, p95, max, n, slowest query) rows."""
    import signal
    import socket
    import subprocess
    import tempfile
    from urllib.parse import urlencode

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from load_concurrent import Client, free_port

    from accounts import scope
    from accounts.db import database
    from accounts.models import Contract, User

    with database.atomic():
        data = http_principals()
    rnd = random.Random(23)
    everyone = sample_queries(rnd, words)
    tree = list(User.select(User, Contract).join(Contract).where(scope.user_condition(data["admin"]))
                .order_by(User.id))
    # The parent admin types names from its own tree (half) and from anywhere (half: only its
    # own users may come back).
    mine = rnd.sample(tree, min(len(tree), (words + 1) // 2)) + everyone[: words // 2]
    plans = {"operator": typing_cases(everyone, rnd), "parent admin": typing_cases(mine, rnd)}
    database.close()

    port = free_port()
    tmp = tempfile.mkdtemp(prefix="bench-search-")
    env = dict(os.environ, DATABASE_URL=db_url, APP_ENV="development", RATELIMIT_ENABLED="0",
               SECRET_KEY="bench-search", MAIL_SERVER="")
    err = open(Path(tmp) / "gunicorn.err", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "-w", str(workers), "-b", f"127.0.0.1:{port}", "--timeout", "60",
         "--log-level", "warning", "app:create_app()"], cwd=ROOT, env=env, stdout=err, stderr=err)
    results = []
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        hx = {"HX-Request": "true"}
        for who, plan in plans.items():
            client = Client(port)
            http_sign_in(client, who, *data["secrets"][who])
            for _ in range(10):  # both workers: their first requests open connections, load templates
                client.request("GET", "/admin/?q=warm", headers=hx)
            every = []
            for name, queries in plan.items():
                times = []
                for q in queries:
                    path = "/admin/?" + urlencode(q)
                    t = time.perf_counter()
                    status, body, _ = client.request("GET", path, headers=hx)
                    ms = (time.perf_counter() - t) * 1000
                    assert status == 200, (who, path, status, body[:300])
                    times.append((ms, q["q"]))
                every += [(ms, q, name) for ms, q in times]
                ms_only = [t for t, _ in times]
                slowest = max(times)
                results.append((who, name, statistics.median(ms_only), pct(ms_only, 95), slowest[0],
                                len(times), slowest[1]))
            first = [ms for ms, q, name in every if name.startswith("prefix") and len(q) == 1]
            prefix = [ms for ms, q, name in every if name.startswith("prefix")]
            sub = [ms for ms, q, name in every if name.startswith("substring")]
            for name, values in (("prefix, first character", first), ("prefix, every key press", prefix),
                                 ("substring, every key press (3+)", sub)):
                results.append((who, name, statistics.median(values), pct(values, 95), max(values),
                                len(values), ""))
            client.conn.close()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        err.close()
    # Development mode logs each request there: show only what is not an access-log line.
    other = [line for line in (Path(tmp) / "gunicorn.err").read_text().splitlines()
             if '"GET /' not in line and '"POST /' not in line]
    if other:
        print("gunicorn stderr:\n" + "\n".join(other[-20:]))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--reuse", action="store_true", help="keep an existing loaded database")
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="mixed",
                        help="mixed: varied login IDs (default); common: most users share their first "
                             "characters (user...@example..., 佐藤, 0..., ecid1000...)")
    parser.add_argument("--http", action="store_true",
                        help="gunicorn -w 2 over HTTP, real sign-ins, every word typed one character "
                             "at a time (instead of the test client's sampled queries)")
    parser.add_argument("--words", type=int, default=30, help="--http: words typed per kind and principal")
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
            "SECRET_KEY": os.environ["SECRET_KEY"],
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
        times = load(args.users, args.dataset)
        print(
            f"load: rows {times['rows_s']:.1f} s, search index {times['index_s']:.1f} s, "
            f"total with counters and ANALYZE {times['total_s']:.1f} s",
            flush=True,
        )
    print(f"users: {User.select().count():,}; uptime: {os.popen('uptime').read().strip()}", flush=True)
    if args.http:
        results = run_http(args.db, args.words)
        print(f"{'principal':<13} {'request':<34} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'n':>5}  "
              "slowest q")
        for who, name, p50, p95, top, n, slow in results:
            print(f"{who:<13} {name:<34} {p50:7.1f} {p95:7.1f} {top:7.1f} {n:5d}  {slow}")
        print(f"uptime after: {os.popen('uptime').read().strip()}")
        return
    # No app context around the requests: each test-client request gets its own (and its own g).
    results = run(app, args.queries)
    print(f"{'principal':<13} {'request':<38} {'p50 ms':>8} {'p95 ms':>8} {'n':>5}")
    for who, name, p50, p95, n in results:
        print(f"{who:<13} {name:<38} {p50:8.1f} {p95:8.1f} {n:5d}")
    print(f"uptime after: {os.popen('uptime').read().strip()}")


if __name__ == "__main__":
    main()
