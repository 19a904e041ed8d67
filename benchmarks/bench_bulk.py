"""Bulk corrections benchmark (SPEC 14): a 10,000-row file previewed in under 5 s and applied in
under 60 s on SQLite with a million users (mails queued, not sent), memory bounded by the file.

    .venv/bin/python benchmarks/bench_bulk.py --db sqlite:///benchmarks/out/bench.db [--reuse]
    .venv/bin/python benchmarks/bench_bulk.py --db postgresql://postgres@127.0.0.1:5432/DB [--reuse]

The users are loaded as for the search benchmark (benchmarks/bench_search.py: 1,000,000 users in
10,000 contracts, below the ORM); ``--reuse`` takes a database that already holds them (the search
benchmark's too). Then, through the Flask test client and the real routes, signed in as the
operator: upload a CP932 file of ``--rows`` corrections of random existing users (new e-mail
addresses, login IDs, names, phones, some rows with several fields, ~3 % errors of every kind),
read the preview's pages, apply it (POST /apply until done, each step time-boxed as in
production), and upload the same file again (everything unchanged). The same for a parent admin
and its own tree. Python's peak allocation during the preview and the apply is measured with
tracemalloc, for this file and for one a tenth of its size: it follows the file, not the user table.
Wall and CPU time are both printed: the machine is shared, the CPU seconds are what the work costs.

Each run changes the users it corrects (a later run picks other rows and values).
"""

import argparse
import io
import os
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def make_file(users, rnd, tag: str) -> bytes:
    """CP932 CSV: one row per user, a mix of corrections and ~3 % errors of every kind."""
    out = io.StringIO()
    out.write("login_id,new_email,new_login_id,name,phone,portal\r\n")
    for i, u in enumerate(users):
        roll = rnd.random()
        login_id, email, login, name, phone = u.login_id, "", "", "", ""
        if roll < 0.40:
            email = f"moved.{tag}.{i}@new-domain.example.jp"
        elif roll < 0.55:
            login = f"{tag}-renamed-{i}"
        elif roll < 0.70:
            name = u.name.replace("\u3000", " ") + "（新）"
        elif roll < 0.85:
            phone = f"03-{rnd.randint(1000, 9999)}-{rnd.randint(1000, 9999)}"
        elif roll < 0.97:
            email = f"both.{tag}.{i}@new-domain.example.jp"
            login = f"{tag}-both-{i}"
        elif roll < 0.98:
            email = "not-an-address"
        elif roll < 0.99:
            login_id, name = f"nobody-{tag}-{i}", "どなたか"
        else:
            phone = "03-12"
        out.write(",".join([login_id, email, login, name, phone, ""]) + "\r\n")
    return out.getvalue().encode("cp932")


def signed_in_client(app, principal):
    from bench_search import signed_in_client as make

    return make(app, principal)


def upload(client, content: bytes, name: str):
    from werkzeug.datastructures import FileStorage
    from werkzeug.test import encode_multipart

    token = _token(client)
    boundary, body = encode_multipart(
        {"csrf_token": token, "file": FileStorage(io.BytesIO(content), name, content_type="text/csv")})
    r = client.post("/admin/bulk", data=body, content_type=f"multipart/form-data; boundary={boundary}")
    assert r.status_code == 303, (r.status_code, r.get_data(as_text=True)[:500])
    return r.headers["Location"], token


def _token(client):
    import re

    html = client.get("/admin/bulk").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def apply(client, url, token):
    from accounts.models import BulkUpload

    upload_id = int(url.rsplit("/", 1)[1])
    steps = 0
    while BulkUpload.get_by_id(upload_id).state != "applied":
        r = client.post(url + "/apply", data={"csrf_token": token})
        assert r.status_code == 303, r.status_code
        steps += 1
    return steps


def page_times(client, url, n=60):
    """The preview's htmx fragments: next pages and the filters, p50/p95 in ms."""
    import re

    hx = {"HX-Request": "true"}
    times = []
    next_url = url
    for i in range(n):
        target = next_url if i % 3 else url + "?show=" + ("error", "change", "unchanged")[i % 9 // 3]
        t = time.perf_counter()
        r = client.get(target, headers=hx)
        body = r.get_data(as_text=True)
        times.append((time.perf_counter() - t) * 1000)
        m = re.search(r'hx-get="([^"]*after=\d+[^"]*)"', body)
        next_url = m.group(1).replace("&amp;", "&") if m else url
    times.sort()
    return statistics.median(times), times[int(0.95 * len(times)) - 1]


def _peak_rss_reset():
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM (Linux)
    except OSError:
        pass


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run_case(app, who, principal, users, rnd, tag, results, trace_apply=False):
    from accounts.models import AuditEntry, BulkUpload, Mail

    client = signed_in_client(app, principal)
    content = make_file(users, rnd, tag)
    mails0, audit0 = Mail.select().count(), AuditEntry.select().count()

    # Python's peak allocation while previewing this file (an upload that is never applied; the
    # tracing slows Python down, so the timed runs below are not traced).
    tracemalloc.start()
    upload(client, content, f"{tag}-traced.csv")
    preview_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    _peak_rss_reset()
    t, cpu = time.perf_counter(), time.process_time()
    url, token = upload(client, content, f"{tag}.csv")
    preview_s, preview_cpu = time.perf_counter() - t, time.process_time() - cpu
    preview_rss = _peak_rss_mb()
    up = BulkUpload.get_by_id(int(url.rsplit("/", 1)[1]))
    p50, p95 = page_times(client, url)

    if trace_apply:
        tracemalloc.start()
    _peak_rss_reset()
    t, cpu = time.perf_counter(), time.process_time()
    steps = apply(client, url, token)
    apply_s, apply_cpu = time.perf_counter() - t, time.process_time() - cpu
    apply_rss = _peak_rss_mb()
    apply_peak = tracemalloc.get_traced_memory()[1] if trace_apply else None
    tracemalloc.stop()
    done = BulkUpload.get_by_id(up.id)

    t = time.perf_counter()
    url2, token2 = upload(client, content, f"{tag}-again.csv")
    again_preview_s = time.perf_counter() - t
    again = BulkUpload.get_by_id(int(url2.rsplit("/", 1)[1]))
    apply(client, url2, token2)
    results.append({
        "who": who, "rows": len(users), "bytes": len(content),
        "preview_s": preview_s, "preview_cpu": preview_cpu, "apply_cpu": apply_cpu,
        "preview_peak_mb": preview_peak / 2**20, "preview_rss": preview_rss,
        "change": up.rows_change, "unchanged": up.rows_unchanged, "errors": up.rows_error,
        "page_p50": p50, "page_p95": p95,
        "apply_s": apply_s, "apply_steps": steps, "apply_rss": apply_rss,
        "apply_peak_mb": None if apply_peak is None else apply_peak / 2**20,
        "applied": done.rows_applied, "stale": done.rows_stale, "refused": done.rows_refused,
        "mails": Mail.select().count() - mails0, "audit": AuditEntry.select().count() - audit0,
        "queued": Mail.select().where(Mail.status == "queued").count(),
        "again_preview_s": again_preview_s,
        "again": (again.rows_change, again.rows_unchanged, again.rows_error),
    })


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--reuse", action="store_true", help="keep an existing loaded database")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    if args.db.startswith("sqlite:///"):
        Path(args.db[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    from bench_search import load, principals

    from accounts.db import database
    from accounts.models import User
    from accounts.schema import upgrade
    from app import create_app

    app = create_app({"APP_ENV": "development", "SECRET_KEY": "bench", "DATABASE_URL": args.db,
                      "TESTING": True, "MAIL_SERVER": None, "RATELIMIT_ENABLED": False,
                      "BASE_URL": "http://localhost"})
    database.connect(reuse_if_open=True)
    upgrade()
    database.connect(reuse_if_open=True)
    if not (args.reuse and User.select().count() >= args.users):
        if User.select().exists():
            sys.exit("the database already holds users: give an empty one (or --reuse)")
        print(f"loading {args.users:,} users ...", flush=True)
        times = load(args.users)
        print(f"load: {times['total_s']:.1f} s", flush=True)
    total = User.select().count()
    print(f"users: {total:,}; seed {args.seed}; uptime: {os.popen('uptime').read().strip()}", flush=True)
    op, admin = principals()
    rnd = random.Random(args.seed)
    max_id = User.select(User.id).order_by(User.id.desc()).first().id
    ids = rnd.sample(range(1, max_id + 1), int(args.rows * 1.1 * 1.05))
    sample = []
    for i in range(0, len(ids), 500):
        sample += list(User.select(User.id, User.login_id, User.name, User.portal)
                       .where(User.id.in_(ids[i:i + 500]) & (User.is_admin == False)))  # noqa: E712
    sample, small = sample[:args.rows], sample[args.rows:args.rows + args.rows // 10]
    from accounts import scope

    tree = list(User.select(User.id, User.login_id, User.name, User.portal)
                .where(scope.user_condition(admin) & (User.id != admin.id)))
    results = []
    tag = f"b{args.seed % 100000}"
    run_case(app, "operator", op, sample, rnd, tag, results)
    run_case(app, "operator", op, small, rnd, tag + "s", results, trace_apply=True)
    run_case(app, "parent admin", admin, tree, rnd, tag + "p", results)
    for r in results:
        print(f"\n{r['who']}: {r['rows']:,} rows ({r['bytes'] / 2**20:.2f} MB CP932)")
        print(f"  preview {r['preview_s']:.2f} s (CPU {r['preview_cpu']:.2f} s): {r['change']} change, "
              f"{r['unchanged']} unchanged, "
              f"{r['errors']} errors; peak Python allocation {r['preview_peak_mb']:.1f} MB, "
              f"process peak RSS {r['preview_rss']:.0f} MB")
        print(f"  preview pages (htmx): p50 {r['page_p50']:.1f} ms, p95 {r['page_p95']:.1f} ms")
        traced = "" if r["apply_peak_mb"] is None else f"peak Python allocation {r['apply_peak_mb']:.1f} MB, "
        print(f"  apply {r['apply_s']:.2f} s (CPU {r['apply_cpu']:.2f} s) in {r['apply_steps']} POSTs: "
              f"{r['applied']} applied, "
              f"{r['stale']} stale, {r['refused']} refused; {r['mails']} mails queued (not sent: "
              f"{r['queued']} in the outbox), {r['audit']} audit entries; {traced}"
              f"process peak RSS {r['apply_rss']:.0f} MB")
        print(f"  same file again: preview {r['again_preview_s']:.2f} s, change/unchanged/errors "
              f"= {r['again']}")
    print(f"\nuptime after: {os.popen('uptime').read().strip()}")


if __name__ == "__main__":
    main()
