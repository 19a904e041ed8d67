"""Fixtures shared by every test: the app on a real database, a real SMTP server, factories.

The suite runs on a temporary SQLite file by default, and on PostgreSQL when DATABASE_URL names
one (CI runs both). The schema is built once by the real migrations; each test starts from
empty tables.
"""
import os
import socket
import tempfile
import threading
import time

import pytest
from aiosmtpd.controller import Controller

from accounts import passwords
from accounts.db import database, is_postgres
from accounts.models import ALL_MODELS

# Commands the tests start as subprocesses run as development, like `make run`.
os.environ["APP_ENV"] = "development"
TEST_DATABASE_URL = os.environ.get("DATABASE_URL") or ""
_tmpdir = tempfile.mkdtemp(prefix="portal-tests-")
if not TEST_DATABASE_URL:
    TEST_DATABASE_URL = f"sqlite:///{_tmpdir}/test.db"

# Cheap hashing in tests (one test pins the production parameters).
TEST_CONFIG = {
    "APP_ENV": "development",
    "TESTING": True,
    "SECRET_KEY": "test-secret",
    "DATABASE_URL": TEST_DATABASE_URL,
    "MAIL_SERVER": None,
    "REDIS_URL": None,
    "RATELIMIT_STORAGE_URI": "memory://",
    "ARGON2_TIME_COST": 1,
    "ARGON2_MEMORY_COST": 8,
    "ARGON2_PARALLELISM": 1,
    "BASE_URL": "http://localhost",
    "WTF_CSRF_ENABLED": True,
}


# Factories that hash outside an app (gen_user) use the same cheap parameters.
passwords.configure(time_cost=TEST_CONFIG["ARGON2_TIME_COST"], memory_cost=TEST_CONFIG["ARGON2_MEMORY_COST"],
                    parallelism=TEST_CONFIG["ARGON2_PARALLELISM"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def _schema():
    from accounts.schema import upgrade
    from app import create_app

    create_app(dict(TEST_CONFIG))
    upgrade()
    yield


def _empty_tables():
    database.connect(reuse_if_open=True)
    tables = [m._meta.table_name for m in ALL_MODELS]
    if is_postgres():
        database.execute_sql("TRUNCATE " + ", ".join(f'"{t}"' for t in tables)
                             + " RESTART IDENTITY CASCADE")
    else:
        with database.atomic():
            database.execute_sql("PRAGMA defer_foreign_keys = ON")
            for t in tables:
                database.execute_sql(f'DELETE FROM "{t}"')
            database.execute_sql("INSERT INTO user_search(user_search) VALUES ('delete-all')")
    database.close()


@pytest.fixture
def make_app(_schema):
    """Build an app with extra configuration (for tests that need another setting)."""
    from app import create_app
    from blueprints.extensions import limiter

    def factory(**overrides):
        config = dict(TEST_CONFIG)
        config.update(overrides)
        application = create_app(config)
        limiter.reset()
        return application

    _empty_tables()
    yield factory
    if not database.is_closed():
        database.close()


@pytest.fixture
def empty_database_url(tmp_path):
    """A database without any table: a new SQLite file, or a new PostgreSQL database beside the
    suite's when the suite runs on PostgreSQL."""
    if not TEST_DATABASE_URL.startswith("postgres"):
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    import psycopg

    from accounts.db import init_database

    base, name = TEST_DATABASE_URL.rsplit("/", 1)
    fresh = f"{name}_ops_setup"
    with psycopg.connect(TEST_DATABASE_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{fresh}"')
    yield f"{base}/{fresh}"
    init_database(TEST_DATABASE_URL)   # closes the fresh database's connections
    with psycopg.connect(TEST_DATABASE_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)')


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def db(app):
    """An open connection for tests that use the models directly.

    No app context is pushed here: the test client's requests then each get their own ``g``
    (Flask-Login's user, the CSRF token), as in production. Tests that render mail templates or
    use the configuration outside a request add the ``app_ctx`` fixture.
    """
    database.connect(reuse_if_open=True)
    yield database
    if not database.is_closed():
        database.close()


@pytest.fixture
def app_ctx(app):
    """An application context (templates, translations, config) outside any request."""
    with app.app_context():
        yield app


class SMTPRecorder:
    """aiosmtpd handler that keeps every message it accepted; can refuse recipients."""

    def __init__(self):
        self.messages = []
        self.refuse = {}  # address -> (code, text)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            code, text = self.refuse[address]
            return f"{code} {text}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        import email
        from email import policy

        msg = email.message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "message": msg})
        return "250 2.0.0 Ok: queued as TEST"


class SMTPServer:
    """A real SMTP server on loopback that can be stopped and started again on the same port."""

    def __init__(self):
        self.port = free_port()
        self.handler = SMTPRecorder()
        self.controller = None

    @property
    def messages(self):
        return self.handler.messages

    def start(self):
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self):
        if self.controller:
            self.controller.stop()
            self.controller = None

    def wait_for(self, count, timeout=10.0):
        deadline = time.time() + timeout
        while len(self.messages) < count and time.time() < deadline:
            time.sleep(0.05)
        return self.messages


@pytest.fixture
def smtp_server():
    server = SMTPServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp_app(make_app, smtp_server):
    """The app configured to deliver to the loopback SMTP server."""
    return make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp_server.port)


class LiveServer:
    def __init__(self, app):
        from werkzeug.serving import make_server

        self.port = free_port()
        self.server = make_server("127.0.0.1", self.port, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.server.shutdown()


@pytest.fixture
def live_server_factory():
    servers = []

    def start(app):
        server = LiveServer(app)
        app.config["BASE_URL"] = server.url  # links in mails point at this server, as in production
        server.start()
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()


@pytest.fixture
def browser_page():
    """A page in the system Chromium (Playwright, no downloaded browser)."""
    pytest.importorskip("playwright")
    from playwright.sync_api import sync_playwright

    if not os.path.exists("/usr/bin/chromium"):
        pytest.fail("Chromium is missing: apt-get install chromium (the CI script installs it)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        context = browser.new_context(locale="ja-JP", viewport={"width": 1100, "height": 900})
        page = context.new_page()
        page.set_default_timeout(10000)
        yield page
        context.close()
        browser.close()
