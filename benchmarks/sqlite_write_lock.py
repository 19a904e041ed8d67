"""Concurrent SQLite writers through the app's ``database`` proxy: how many get "database is locked".

    .venv/bin/python benchmarks/sqlite_write_lock.py [--writers 4] [--readers 2] [--seconds 10]

Four processes save the same three users' names (read, then ``database.atomic()`` + UPDATE, the
shape of a console save) while two processes search the FTS5 index. With deferred transactions
(plain BEGIN) an UPDATE now and then fails at once with "database is locked" (a 500 in a view);
with BEGIN IMMEDIATE every writer waits its turn and none fails.
"""
import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("APP_ENV", "development")  # benchmarks run the app as `make run` does
sys.path.insert(0, str(ROOT))


def writer(url, seconds, n_proc, out):
    from accounts.clock import utcnow
    from accounts.db import database
    from accounts.models import User
    from app import create_app

    app = create_app({"APP_ENV": "development", "DATABASE_URL": url})
    done = errors = 0
    with app.app_context():
        database.connect(reuse_if_open=True)
        end = time.time() + seconds
        while time.time() < end:
            try:
                user = User.get_by_id(1 + done % 3)
                with database.atomic():
                    User.update(name=f"w{n_proc}-{done}", version=User.version + 1, updated_at=utcnow()
                                ).where(User.id == user.id).execute()
            except Exception:  # noqa: BLE001 - what is counted
                errors += 1
            done += 1
    out.put((done, errors))


def reader(url, seconds):
    from accounts.db import database
    from accounts.models import User
    from app import create_app

    app = create_app({"APP_ENV": "development", "DATABASE_URL": url})
    with app.app_context():
        database.connect(reuse_if_open=True)
        end = time.time() + seconds
        while time.time() < end:
            database.execute_sql("SELECT count(*) FROM user_search WHERE user_search MATCH 'reset'")
            list(User.select().limit(20))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--readers", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10)
    args = ap.parse_args()
    from benchmarks.load_concurrent import prepare

    url = f"sqlite:///{tempfile.mkdtemp(prefix='portal-lock-')}/lock.db"
    prepare(url, 1)
    out = mp.Queue()
    procs = ([mp.Process(target=writer, args=(url, args.seconds, i, out)) for i in range(args.writers)]
             + [mp.Process(target=reader, args=(url, args.seconds)) for _ in range(args.readers)])
    for p in procs:
        p.start()
    results = [out.get() for _ in range(args.writers)]
    for p in procs:
        p.join()
    saves = sum(d for d, _ in results)
    errors = sum(e for _, e in results)
    print(f"{saves} saves by {args.writers} writer processes beside {args.readers} readers in "
          f"{args.seconds:.0f} s: {errors} failed with an error")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
