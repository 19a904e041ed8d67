"""What a sign-in costs besides its password hash, in one process (SPEC 9, issue 14).

    .venv/bin/python benchmarks/signin_overhead.py [--signins 620] [--batch 60] [--profile]
        [--db postgresql://postgres@127.0.0.1:5432/portal_signin]  # emptied first; default: SQLite
    .venv/bin/python benchmarks/signin_overhead.py --instructions     # needs valgrind; ~3 minutes

portal_signin.py measures the real thing (gunicorn, HTTP, the workers' CPU against a bare
argon2id verify), but on a shared 2-core machine its ratio moves with the load. This measures the
part the application controls: GET /business/signin + POST /business/signin (trusted browser, so
the POST is the whole sign-in) through the WSGI app with argon2's verify replaced by a stub that
accepts, so what is left is everything but the hash. It reports the smallest per-sign-in CPU time
over batches, which is what the code costs when nothing else runs. ``--profile`` prints cProfile's
top functions instead.

``--instructions`` counts instead of timing: the same sign-ins under valgrind's callgrind, once
with 20 and once with 120 after the warm-up, on copies of one prepared database; the difference
over 100 is the instructions per sign-in (and per sign-in page), which do not move with the
host's speed or load. It takes at most 20,000 filler users (the database is copied for each count).
"""
import argparse
import cProfile
import io
import json
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("APP_ENV", "development")
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

WARM = 20


def signer(db_path: str):
    """``sign_in(login, trusted, times, page_only=False)`` against an app on ``db_path`` (a SQLite
    file, or a PostgreSQL URL), with
    argon2's verify stubbed; ``times`` collects the GET's and the POST's CPU seconds."""
    import argon2
    import portal_signin
    from werkzeug.test import EnvironBuilder, run_wsgi_app

    from app import create_app

    app = create_app({"APP_ENV": "development", "DATABASE_URL": portal_signin.database_url(db_path),
                      "RATELIMIT_ENABLED": False, "SECRET_KEY": "bench", "MAIL_SERVER": "",
                      "TRUSTED_HOSTS": ["localhost"]})
    argon2.PasswordHasher.verify = lambda self, stored, password: True  # everything but the hash

    def call(method, path, cookies, form=None):
        headers = {"Host": "localhost"}
        if cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        env = EnvironBuilder(path=path, method=method, headers=headers,
                             data=urlencode(form) if form else None,
                             content_type="application/x-www-form-urlencoded" if form else None)
        body, status, response_headers = run_wsgi_app(app, env.get_environ())
        text = b"".join(body).decode()
        if hasattr(body, "close"):
            body.close()
        for name, value in response_headers:
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                cookies[key] = rest.split(";", 1)[0]
        return status, text

    def sign_in(login, trusted, times, page_only=False):
        cookies = {"trusted_browser_business": trusted}
        t = time.process_time()
        _, html = call("GET", "/business/signin", cookies)
        times[0] += time.process_time() - t
        if page_only:
            return
        token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
        t = time.process_time()
        status, text = call("POST", "/business/signin", cookies,
                            {"csrf_token": token, "login_id": login, "password": "Bench-pass1"})
        times[1] += time.process_time() - t
        assert status.startswith("303") and "dashboard" in text, (status, text[:200])

    return sign_in


def counted_child(db_path: str, users_file: str, count: int, page_only: bool) -> None:
    """Run under callgrind: the warm-up, then ``count`` sign-ins (or sign-in pages)."""
    users = json.loads(Path(users_file).read_text())
    sign_in = signer(db_path)
    for login, trusted in users[:WARM + count]:
        sign_in(login, trusted, [0.0, 0.0], page_only)


def instructions(filler: int) -> None:
    if not shutil.which("valgrind"):
        sys.exit("--instructions needs valgrind (apt-get install valgrind)")
    import portal_signin

    tmp = tempfile.mkdtemp(prefix="signin-instructions-")
    template = f"{tmp}/template.db"
    users = portal_signin.prepare(template, WARM + 100, filler)
    Path(f"{tmp}/users.json").write_text(json.dumps(users))

    def count(n, page_only):
        db = f"{tmp}/run.db"
        shutil.copy(template, db)
        cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
               __file__, "--child", db, f"{tmp}/users.json", str(n)] + (["--page-only"] if page_only else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
        return int(re.search(r"Collected : (\d+)", out).group(1))

    for label, page_only in (("GET + POST", False), ("GET sign-in page", True)):
        per = (count(100, page_only) - count(0, page_only)) / 100
        print(f"{label}: {per / 1e6:.2f} M instructions per sign-in besides the hash", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--signins", type=int, default=620)
    ap.add_argument("--batch", type=int, default=60)
    ap.add_argument("--filler", type=int, default=100_000)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--db", help="a PostgreSQL URL (emptied first); default: a new SQLite file "
                                 "(not with --instructions)")
    ap.add_argument("--instructions", action="store_true", help="count with callgrind (see above)")
    ap.add_argument("--child", nargs=3, metavar=("DB", "USERS", "COUNT"), help=argparse.SUPPRESS)
    ap.add_argument("--page-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return counted_child(args.child[0], args.child[1], int(args.child[2]), args.page_only)
    if args.instructions:
        return instructions(min(args.filler, 20_000))

    import portal_signin

    db_path = args.db or f"{tempfile.mkdtemp(prefix='signin-overhead-')}/bench.db"
    users = portal_signin.prepare(db_path, args.signins, args.filler)
    sign_in = signer(db_path)

    warm, rest = users[:WARM], users[WARM:]
    for login, trusted in warm:
        sign_in(login, trusted, [0.0, 0.0])
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        for login, trusted in rest:
            sign_in(login, trusted, [0.0, 0.0])
        profile.disable()
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(50)
        print(out.getvalue())
        return
    gets, posts = [], []
    for start in range(0, len(rest) - args.batch + 1, args.batch):
        times = [0.0, 0.0]
        for login, trusted in rest[start:start + args.batch]:
            sign_in(login, trusted, times)
        gets.append(times[0] / args.batch * 1000)
        posts.append(times[1] / args.batch * 1000)
    print(f"CPU besides the hash, smallest of {len(gets)} batches of {args.batch}: "
          f"GET {min(gets):.2f} ms + POST {min(posts):.2f} ms = {min(gets) + min(posts):.2f} ms per sign-in")


if __name__ == "__main__":
    main()
