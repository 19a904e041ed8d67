"""What a sign-in costs besides its password hash, in one process (SPEC 9, issue 14).

    .venv/bin/python benchmarks/signin_overhead.py [--signins 620] [--batch 60] [--profile]

portal_signin.py measures the real thing (gunicorn, HTTP, the workers' CPU against a bare
argon2id verify), but on a shared 2-core machine its ratio moves with the load. This measures the
part the application controls: GET /business/signin + POST /business/signin (trusted browser, so
the POST is the whole sign-in) through the WSGI app with argon2's verify replaced by a stub that
accepts, so what is left is everything but the hash. It reports the smallest per-sign-in CPU time
over batches, which is what the code costs when nothing else runs. ``--profile`` prints cProfile's
top functions instead.
"""
import argparse
import cProfile
import io
import os
import pstats
import re
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("APP_ENV", "development")
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--signins", type=int, default=620)
    ap.add_argument("--batch", type=int, default=60)
    ap.add_argument("--filler", type=int, default=100_000)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()

    import argon2
    import portal_signin
    from werkzeug.test import EnvironBuilder, run_wsgi_app

    from app import create_app

    db_path = f"{tempfile.mkdtemp(prefix='signin-overhead-')}/bench.db"
    users = portal_signin.prepare(db_path, args.signins, args.filler)
    app = create_app({"APP_ENV": "development", "DATABASE_URL": f"sqlite:///{db_path}",
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

    def sign_in(login, trusted, times):
        cookies = {"trusted_browser_business": trusted}
        t = time.process_time()
        _, html = call("GET", "/business/signin", cookies)
        times[0] += time.process_time() - t
        token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
        t = time.process_time()
        status, text = call("POST", "/business/signin", cookies,
                            {"csrf_token": token, "login_id": login, "password": "Bench-pass1"})
        times[1] += time.process_time() - t
        assert status.startswith("303") and "dashboard" in text, (status, text[:200])

    warm, rest = users[:20], users[20:]
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
