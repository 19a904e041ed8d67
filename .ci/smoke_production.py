"""CI smoke run in production mode (SPEC 12): gunicorn with gunicorn.conf.py, PostgreSQL, Redis, the
mail worker and a real SMTP server on loopback, set up only with the operator's commands (no demo
data), and one migrated user's whole first login driven over HTTP.

    .venv/bin/python .ci/smoke_production.py   (needs PostgreSQL and Redis on 127.0.0.1)

Exit status 0 when every step passed; otherwise the failing step is printed and the status is 1.
"""
import email
import email.policy
import http.client
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv" / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    """The SMTP server the app delivers to; keeps the parsed messages."""

    def __init__(self):
        self.messages = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(msg)
        return "250 2.0.0 Ok: queued"

    def wait(self, count, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return self.messages[count - 1]
            time.sleep(0.2)
        raise AssertionError(f"mail number {count} never arrived")


class Browser:
    """Cookies, no redirects followed, the Host of BASE_URL."""

    def __init__(self, port):
        self.port, self.cookies = port, {}

    def request(self, method, path, form=None, host=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Host": host or f"127.0.0.1:{self.port}"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        text = r.read().decode("utf-8", "replace")
        for k, v in r.getheaders():
            if k.lower() == "set-cookie":
                name, _, rest = v.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
                self.last_cookie = v
        conn.close()
        return r.status, dict(r.getheaders()), text

    def form(self, path, fields, page=None):
        status, _, html = self.request("GET", page or path)
        assert status == 200, (page or path, status)
        token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
        return self.request("POST", path, dict(fields, csrf_token=token))


def run(cmd, env, stdin=None):
    done = subprocess.run(cmd, cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def step(name):
    print(f"== {name}", flush=True)


def main() -> int:
    db = f"portal_smoke_{os.getpid()}"
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-c", f"DROP DATABASE IF EXISTS {db}",
                    "-c", f"CREATE DATABASE {db}"], check=True)
    sink = Sink()
    smtp = Controller(sink, hostname="127.0.0.1", port=free_port())
    smtp.start()
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="portal-smoke-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "MAIL_", "SECRET", "BASE_"))}
    env.update(APP_ENV="production", SECRET_KEY=secrets.token_hex(32), BASE_URL=f"http://127.0.0.1:{port}",
               DATABASE_URL=f"postgresql://postgres@127.0.0.1:5432/{db}",
               REDIS_URL="redis://127.0.0.1:6379/14", MAIL_SERVER="127.0.0.1", MAIL_PORT=str(smtp.port),
               MAIL_DEFAULT_SENDER="no-reply@portal.example.jp",
               SESSION_COOKIE_SECURE="0",  # plain http on loopback; production behind TLS keeps it on
               PORT=str(port), WEB_CONCURRENCY="2", INSTANCE_PATH=str(tmp))
    flask = [str(VENV / "flask"), "--app", "app"]
    procs = []
    try:
        step("production refuses to start without SECRET_KEY")
        bad = subprocess.run(flask + ["db-upgrade"], cwd=ROOT, env={**env, "SECRET_KEY": ""},
                             capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1 and bad.stderr.strip().startswith("SECRET_KEY is not set"), bad.stderr

        step("set-up with the operator's commands only (docs/operations.md)")
        run(flask + ["db-upgrade"], env)
        export = tmp / "legacy.csv"
        export.write_text(
            "login_id,email,name,phone,contract_ecid,parent_ecid,contract_name,is_admin\n"
            "smoke@example.jp,smoke@example.jp,試験\u3000太郎,03-1234-5678,ecid1234567890,,スモーク商事,0\n",
            encoding="utf-8")
        out = run(flask + ["migrate-legacy", str(export), "--report", str(tmp / "report.csv")], env)
        assert "migrated" in (tmp / "report.csv").read_text(encoding="utf-8"), out
        terms = tmp / "terms.md"
        terms.write_text("# 第1条\n本規約はスモークテストのためのものです。\n", encoding="utf-8")
        run(flask + ["publish-terms", str(terms), "--title", "カスタマポータル規約 第1版"], env)
        run(flask + ["create-staff", "ops-smoke", "--role", "operator"], env, stdin="Smoke-pass-1234\n")

        step("gunicorn (gunicorn.conf.py) and the mail worker")
        procs.append(subprocess.Popen([str(VENV / "gunicorn"), "-c", "gunicorn.conf.py", "app:create_app()"],
                                      cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      text=True))
        procs.append(subprocess.Popen(flask + ["deliver-mail", "--interval", "0.5"], cwd=ROOT, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for _ in range(150):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.2)
        b = Browser(port)
        status, _, body = b.request("GET", "/healthz")
        assert status == 200 and '"ok"' in body, (status, body)
        assert b.request("GET", "/", host="attacker.example")[0] == 400
        assert b.request("GET", "/dev/mail/")[0] == 404
        status, _, html = b.request("GET", "/business/")
        assert status == 200 and "ログインID/パスワードでログイン" in html
        assert "HttpOnly" in b.last_cookie and "SameSite=Lax" in b.last_cookie

        step("identity check -> reset mail through the worker and SMTP")
        status, _, html = b.form("/business/password/reset", {
            "login_id": "SMOKE@example.jp", "email": "smoke@example.jp", "name": "試験\u3000太郎",
            "phone": "0312345678"})
        assert status == 200, status
        mail = sink.wait(1)
        assert mail["Subject"] == "NTTコミュニケーションズ ビジネスポータル パスワード再設定メール"
        text = mail.get_body(("plain",)).get_content()
        link = re.search(r"http://\S+/business/password/reset/\S+", text).group(0)
        assert link.startswith(env["BASE_URL"]), link

        step("new password, sign-in, Mail OTP, terms, dashboard")
        path = urlsplit(link).path
        status, headers, html = b.form(path, {"password": "Smoke-pass1", "confirm": "Smoke-pass1"})
        assert status == 200 and "サービスへ戻る" in html, status
        status, headers, _ = b.form("/business/signin",
                                    {"login_id": "smoke@example.jp", "password": "Smoke-pass1"})
        assert status == 303 and headers["Location"].endswith("/business/signin/method"), (status, headers)
        status, headers, _ = b.form("/business/signin/method", {"method": "mail"})
        assert status == 303 and headers["Location"].endswith("/business/signin/mail-otp/setup")
        otp_mail = sink.wait(2)
        assert otp_mail["Subject"] == "NTTコミュニケーションズ ビジネスポータル メールワンタイムパスワード"
        code = re.search(r"^\s*(\d{6})\s*$", otp_mail.get_body(("plain",)).get_content(), re.M).group(1)
        status, headers, _ = b.form("/business/signin/mail-otp/setup", {"code": code})
        assert status == 303 and headers["Location"].endswith("/business/signin/terms"), (status, headers)
        status, _, html = b.request("GET", "/business/signin/terms")
        assert "同意を承認する" in html
        status, headers, _ = b.form("/business/signin/terms", {"version": "1"})
        assert status == 303 and headers["Location"].endswith("/business/dashboard"), (status, headers)
        status, _, html = b.request("GET", "/business/dashboard")
        assert status == 200 and "スモーク商事" in html, status
        assert b.cookies["session"].startswith("sid."), "the session is a server-side row"

        step("sign-out ends the session")
        copy = dict(b.cookies)
        b.form("/business/signout", {}, page="/business/dashboard")
        b.cookies = copy
        assert b.request("GET", "/business/dashboard")[0] == 302
        print("production smoke run: every step passed")
        return 0
    except AssertionError as exc:
        print(f"production smoke run FAILED: {exc}", file=sys.stderr)
        if procs and procs[0].poll() is not None:
            print(procs[0].stderr.read()[-3000:], file=sys.stderr)
        return 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
        smtp.stop()
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-c",
                        f"DROP DATABASE IF EXISTS {db}"], check=False)


if __name__ == "__main__":
    sys.exit(main())
