"""Time the legacy import (SPEC 9): a fresh database, native users to collide with, one import.

    python benchmarks/gen_legacy_export.py --rows 1000000 --out /tmp/legacy.csv
    python benchmarks/bench_migration.py --csv /tmp/legacy.csv                # SQLite in /tmp
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/portal_migration \\
        python benchmarks/bench_migration.py --csv /tmp/legacy.csv            # PostgreSQL

The import runs as the operator runs it (`flask --app app migrate-legacy ... --report ...`) in a
child process, so that its peak RSS (getrusage of the children) is the import's alone. Prints the
wall time, the load and search-index times the command reports, rows/s and peak RSS.
"""
import argparse
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("APP_ENV", "development")  # benchmarks run the app as `make run` does
sys.path.insert(0, str(ROOT))


def fresh_database(url: str):
    """Empty the target: delete the SQLite file, or drop the PostgreSQL schema's tables."""
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        return
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


def seed_natives(count: int):
    """Native Business Portal users (`native<k>@example.co.jp`) that the export's IDs collide with."""
    from accounts.clock import utcnow
    from accounts.db import database, is_postgres

    now = utcnow()
    t = now if is_postgres() else str(now)
    p = "%s" if is_postgres() else "?"
    with database.atomic():
        cur = database.cursor()
        cur.executemany(f"INSERT INTO contract (ecid, parent_id, name, created_at, users_total, "
                        f"users_first_login_done) VALUES ({p}, NULL, {p}, {p}, {p}, 0)",
                        [(f"ecid9{i:09d}", f"既存契約 {i}", t, min(100, count - 100 * i))
                         for i in range((count + 99) // 100)])
        cur.execute("SELECT id, ecid FROM contract WHERE ecid LIKE 'ecid9%'")
        ids = dict((e, i) for i, e in cur.fetchall())
        f = False if is_postgres() else 0
        cur.executemany(
            'INSERT INTO "user" (portal, contract_id, login_id, login_id_key, email, email_key, name, phone, '
            "is_admin, origin, failed_logins, disabled, version, created_at, updated_at) VALUES "
            f"({', '.join([p] * 15)})",
            [("business", ids[f"ecid9{k // 100:09d}"], f"native{k}@example.co.jp", f"native{k}@example.co.jp",
              f"native{k}@example.co.jp", f"native{k}@example.co.jp", "既存 ユーザー", "0312345678", f,
              "native", 0, f, 1, t, t) for k in range(count)])
    # Some suffixed IDs are taken too: those rows are rejected with the reason.
    return count


def run_import(csv_path: str, report: str, url: str, extra=()):
    env = dict(os.environ, DATABASE_URL=url)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "migrate-legacy", csv_path,
                           "--report", report, *extra], cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"import failed with status {proc.returncode}")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, peak_kb, proc.stdout


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", required=True)
    ap.add_argument("--report", default="/tmp/legacy-report.csv")
    ap.add_argument("--natives", type=int, default=20000)
    ap.add_argument("--rerun", action="store_true", help="also time a second run (every row skipped)")
    args = ap.parse_args(argv)
    url = os.environ.get("DATABASE_URL") or "sqlite:////tmp/bench-migration.db"

    fresh_database(url)
    from accounts.db import database
    from accounts.schema import upgrade
    from app import create_app

    create_app({"APP_ENV": "development", "DATABASE_URL": url})
    upgrade()
    with database.connection_context():
        seed_natives(args.natives)
    with open("/proc/loadavg") as fh:
        load = fh.read().split()[:3]
    rows = sum(1 for _ in open(args.csv, "rb")) - 1
    print(f"database: {url.split('@')[-1]}; file: {args.csv} ({os.path.getsize(args.csv) / 1e6:.0f} MB, "
          f"~{rows:,} lines); natives: {args.natives:,}; load average before: {' '.join(load)}")
    wall, peak_kb, out = run_import(args.csv, args.report, url)
    print(out.rstrip())
    m = re.search(r"time: ([\d.]+) s total, ([\d.]+) s load"
                  r"(?:, ([\d.]+) s indexes, ([\d.]+) s search index)?", out)
    total, load_s, idx_s, fts_s = (float(g or 0) for g in m.groups()) if m else (0, 0, 0, 0)
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"RESULT wall {wall:.1f} s (process start included); import {total:.1f} s = load {load_s:.1f} s "
          f"+ B-tree indexes {idx_s:.1f} s + search index {fts_s:.1f} s (+ first pass, contracts); "
          f"{rows / wall:,.0f} rows/s; CPU {cpu.ru_utime + cpu.ru_stime:.1f} s; "
          f"peak RSS {peak_kb / 1024:.0f} MB")
    if args.rerun:
        wall2, peak_kb2, out2 = run_import(args.csv, args.report + ".rerun", url)
        print(out2.rstrip())
        print(f"RESULT re-run wall {wall2:.1f} s; peak RSS {peak_kb2 / 1024:.0f} MB (max over both runs)")


if __name__ == "__main__":
    main()
