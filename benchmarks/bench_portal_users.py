"""Time `import-portal-users` (SPEC 12, the 60 s of SPEC 9): an empty database, one import.

    python benchmarks/gen_legacy_export.py --rows 1000000 --portal business --out /tmp/portal.csv
    flock /tmp/bench.lock python benchmarks/bench_portal_users.py --csv /tmp/portal.csv [--rerun]
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/portal_portalusers_bench \\
        flock /tmp/bench.lock python benchmarks/bench_portal_users.py --csv /tmp/portal.csv

As an operator's first set-up does it: `db-upgrade` on an empty database, then
`flask --app app import-portal-users FILE --portal P --report REPORT` in a child process (its peak
RSS and CPU from getrusage of the children). Prints the command's summary and one RESULT line.
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
sys.path.insert(0, str(ROOT))
os.environ.setdefault("APP_ENV", "development")

from benchmarks.bench_migration import fresh_database  # noqa: E402


def run_import(csv_path: str, portal: str, report: str, url: str):
    env = dict(os.environ, DATABASE_URL=url)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "import-portal-users", csv_path,
                           "--portal", portal, "--report", report], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"import failed with status {proc.returncode}")
    return wall, resource.getrusage(resource.RUSAGE_CHILDREN), proc.stdout


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", required=True)
    ap.add_argument("--portal", default="business", choices=("business", "sdpf"))
    ap.add_argument("--report", default="/tmp/portal-users-report.csv")
    ap.add_argument("--rerun", action="store_true", help="also time a second run (every row skipped)")
    args = ap.parse_args(argv)
    url = os.environ.get("DATABASE_URL") or "sqlite:////tmp/bench-portal-users.db"

    fresh_database(url)
    from accounts.schema import upgrade
    from app import create_app

    create_app({"APP_ENV": "development", "DATABASE_URL": url})
    upgrade()
    with open("/proc/loadavg") as fh:
        load = fh.read().split()[:3]
    rows = sum(1 for _ in open(args.csv, "rb")) - 1
    print(f"database: {url.split('@')[-1]}; file: {args.csv} ({os.path.getsize(args.csv) / 1e6:.0f} MB, "
          f"~{rows:,} lines); portal: {args.portal}; load average before: {' '.join(load)}")
    wall, usage, out = run_import(args.csv, args.portal, args.report, url)
    print(out.rstrip())
    m = re.search(r"time: ([\d.]+) s total, ([\d.]+) s load"
                  r"(?:, ([\d.]+) s indexes, ([\d.]+) s search index)?", out)
    total, load_s, idx_s, fts_s = (float(g or 0) for g in m.groups()) if m else (0, 0, 0, 0)
    print(f"RESULT wall {wall:.1f} s (process start included); import {total:.1f} s = load {load_s:.1f} s "
          f"+ B-tree indexes {idx_s:.1f} s + search index {fts_s:.1f} s (+ first pass, contracts); "
          f"{rows / wall:,.0f} rows/s; CPU {usage.ru_utime + usage.ru_stime:.1f} s; "
          f"peak RSS {usage.ru_maxrss / 1024:.0f} MB")
    if args.rerun:
        wall2, usage2, out2 = run_import(args.csv, args.portal, args.report + ".rerun", url)
        print(out2.rstrip())
        print(f"RESULT re-run wall {wall2:.1f} s; peak RSS {usage2.ru_maxrss / 1024:.0f} MB "
              "(max over both runs)")


if __name__ == "__main__":
    main()
