"""`flask import-services` benchmark (SPEC 12): time and peak memory of the command on a big file.

    flock /tmp/bench.lock .venv/bin/python benchmarks/bench_services.py --db sqlite:///benchmarks/out/services.db
    flock /tmp/bench.lock .venv/bin/python benchmarks/bench_services.py \
        --db postgresql://postgres@127.0.0.1:5432/portal_bench_services

Creates ``--contracts`` contracts in an empty database, writes a file of ``--rows`` rows (each
contract gets up to a few services, Japanese statuses) and runs the real command as a subprocess
four times: the first import (all ``imported``), the same file again (all ``skipped``), a file
where every tenth status changed (``updated``) as a dry run and for real. Prints wall time and the
command's peak RSS (the process's own, from wait4) next to a header-only file's (the baseline of
Python, Flask and the app), so the memory that grows with the file shows.
"""
import argparse
import csv
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
SERVICES = ["Smart Data Platform", "Flexible InterConnect", "Arcstar Universal One", "OCN 光",
            "050 plus for Biz", "Enterprise Cloud", "Flexible Remote Access", "Smart Cloud Phone"]
STATUSES = ["お申し込み済み", "ご利用中", "手続き中", "解約済み", "開通工事待ち（2026年12月予定）"]


def prepare(db_url: str, contracts: int) -> None:
    os.environ.setdefault("SECRET_KEY", "bench")
    sys.path.insert(0, str(ROOT))
    from accounts.clock import utcnow
    from accounts.db import database
    from accounts.models import Contract
    from accounts.schema import upgrade
    from app import create_app

    create_app({"APP_ENV": "development", "DATABASE_URL": db_url, "TESTING": True, "MAIL_SERVER": None})
    upgrade()
    database.connect(reuse_if_open=True)
    if Contract.select().exists():
        sys.exit("the database already holds contracts: give an empty one")
    p = database.param
    now = str(utcnow()) if p == "?" else utcnow()
    with database.atomic():
        database.cursor().executemany(
            f"INSERT INTO contract (ecid, parent_id, name, created_at, users_total, users_first_login_done) "
            f"VALUES ({p}, NULL, {p}, {p}, 0, 0)",
            [(f"ecid{3000000000 + i:010d}", f"契約{i}株式会社", now) for i in range(contracts)])
    database.close()


def write_file(path: Path, rows: int, contracts: int, changed_every: int = 0) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh, lineterminator="\r\n")
        out.writerow(["contract_ecid", "service", "status"])
        for i in range(rows):
            status = STATUSES[i % len(STATUSES)]
            if changed_every and i % changed_every == 0:
                status = "変更後 " + status
            out.writerow([f"ecid{3000000000 + i % contracts:010d}", SERVICES[i // contracts], status])


def run_and_measure(db_url, *args):
    """(seconds, peak RSS in MiB, first line of output) of one `flask import-services` process,
    run under a small wrapper whose RUSAGE_CHILDREN is that process alone."""
    env = dict(os.environ, DATABASE_URL=db_url, APP_ENV="development", SECRET_KEY="bench")
    code = ("import os, resource, subprocess, sys, time; t = time.perf_counter(); "
            "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
            "print(r.returncode, f'{time.perf_counter() - t:.3f}', u.ru_maxrss); "
            "print(r.stdout.strip().splitlines()[0] if r.stdout.strip() else r.stderr.strip())")
    proc = subprocess.run([sys.executable, "-c", code, str(ROOT / ".venv" / "bin" / "flask"), "--app", "app",
                           "import-services", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    first, second = proc.stdout.splitlines()[:2]
    rc, seconds, rss_kib = first.split()
    if rc != "0":
        sys.exit(f"exit {rc}: {second}")
    return float(seconds), int(rss_kib) / 1024, second


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--contracts", type=int, default=30_000)
    args = parser.parse_args()
    if args.rows > args.contracts * len(SERVICES):
        sys.exit(f"at most {args.contracts * len(SERVICES):,} rows for {args.contracts:,} contracts")
    OUT.mkdir(parents=True, exist_ok=True)
    if args.db.startswith("sqlite:///"):
        Path(args.db[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    prepare(args.db, args.contracts)
    base, first, changed = OUT / "services-empty.csv", OUT / "services.csv", OUT / "services-changed.csv"
    write_file(base, 0, args.contracts)
    write_file(first, args.rows, args.contracts)
    write_file(changed, args.rows, args.contracts, changed_every=10)
    print(f"{args.rows:,} rows ({first.stat().st_size / 1e6:.1f} MB), {args.contracts:,} contracts, "
          f"{args.db.split(':')[0]}; uptime: {os.popen('uptime').read().strip()}", flush=True)
    runs = [("header only (baseline)", [str(base)]),
            ("first import", [str(first), "--report", str(OUT / "services-r1.csv")]),
            ("same file again", [str(first), "--report", str(OUT / "services-r2.csv")]),
            ("10% changed, dry run", [str(changed), "--dry-run", "--report", str(OUT / "services-r3.csv")]),
            ("10% changed", [str(changed), "--report", str(OUT / "services-r4.csv")])]
    print(f"{'run':<24} {'seconds':>8} {'rows/s':>9} {'peak RSS MiB':>13}  summary")
    for name, argv in runs:
        seconds, rss, summary = run_and_measure(args.db, *argv)
        rate = args.rows / seconds if "baseline" not in name else 0
        print(f"{name:<24} {seconds:8.2f} {rate:9,.0f} {rss:13.1f}  {summary}", flush=True)
    same = (OUT / "services-r3.csv").read_bytes() == (OUT / "services-r4.csv").read_bytes()
    print(f"dry-run report equals the real run's: {same}")
    print(f"uptime after: {os.popen('uptime').read().strip()}")


if __name__ == "__main__":
    main()
