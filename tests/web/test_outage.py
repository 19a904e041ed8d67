"""While the database or Redis is out, requests answer a 503 page (or keep working), never a 500.

Found by benchmarks/faults.py: a PostgreSQL restart left every web worker answering 500 with a
closed connection until the app was restarted, and an unreachable Redis made every rate-limited
POST a 500. Each test here makes one part fail for real (or raise exactly what its driver raises)
and checks the answer, the log line and that nothing was half-written.
"""
import logging
import sqlite3

import psycopg
import pytest

from accounts import health
from accounts.db import database, is_postgres
from accounts.models import ALL_MODELS, AuditEntry, Mail, User
from tests.conftest import TEST_CONFIG, free_port
from tests.helpers import csrf_token
from tests.web.admin_helpers import make_world, sign_in

pytestmark = pytest.mark.usefixtures("db")


@pytest.fixture
def app(make_app):
    """As in production, an exception becomes the app's error page instead of reaching the test
    (the session is opened before any view, so its errors go through the 500 handler)."""
    return make_app(PROPAGATE_EXCEPTIONS=False)

TITLE = {"ja": "ただいまサービスを一時的にご利用いただけません",
         "en": "The service is temporarily unavailable"}


def _driver_outage():
    """What the driver raises when the server is gone (peewee wraps it, as in production)."""
    if is_postgres():
        return psycopg.OperationalError("the connection is closed")
    return sqlite3.OperationalError("disk I/O error")


@pytest.fixture
def broken_database(monkeypatch):
    """Every new statement fails as it does while the database is out, until ``heal()``."""
    real = database.obj.cursor

    def cursor(*args, **kwargs):
        raise _driver_outage()

    class Switch:
        def break_(self):
            monkeypatch.setattr(database.obj, "cursor", cursor)

        def heal(self):
            monkeypatch.setattr(database.obj, "cursor", real)

    return Switch()


def _row_counts():
    return {m._meta.table_name: m.select().count() for m in ALL_MODELS}


@pytest.mark.parametrize("how, cookie, lang", [({"Accept-Language": "ja"}, None, "ja"),
                                               ({"Accept-Language": "en-US,en;q=0.9"}, None, "en"),
                                               ({"Accept-Language": "en"}, "ja", "ja"),
                                               ({"Accept-Language": "ja"}, "en", "en"),
                                               ({}, None, "ja")])
@pytest.mark.parametrize("who, method, path", [("plain", "GET", "/sdpf/dashboard"),
                                               ("child_admin", "GET", "/admin/"),
                                               (None, "POST", "/sdpf/password/reset")])
def test_a_database_outage_answers_a_503_page_in_the_users_language(client, broken_database, caplog,
                                                                   who, method, path, how, cookie,
                                                                   lang):
    w = make_world()
    if cookie:
        client.set_cookie("lang", cookie)   # the visible language switch
    if who:
        sign_in(client, getattr(w, who))
    token = csrf_token(client.get("/sdpf/password/reset").get_data(as_text=True))
    form = {"csrf_token": token, "login_id": "plain", "email": "x@example.jp"}
    broken_database.break_()
    with caplog.at_level(logging.WARNING):
        r = client.open(path, method=method, headers=how, data=form if method == "POST" else None)
    html = r.get_data(as_text=True)
    assert r.status_code == 503
    assert r.headers["Retry-After"].isdigit()
    assert f'<html lang="{lang}">' in html and TITLE[lang] in html
    assert "Traceback" not in html and "OperationalError" not in html
    assert any(f"database unavailable: 503 for {method} {path}" in rec.getMessage()
               for rec in caplog.records)
    assert not [rec for rec in caplog.records if rec.exc_info]   # one line, no traceback
    broken_database.heal()
    assert client.open(path, method=method, headers=how,
                       data=form if method == "POST" else None).status_code in (200, 302, 303)


def test_a_page_that_needs_no_database_still_answers_during_an_outage(client, broken_database):
    broken_database.break_()
    assert client.get("/business/signin").status_code == 200


def test_healthz_answers_503_json_while_the_database_is_out_and_200_after(client, broken_database, caplog,
                                                                         monkeypatch):
    from blueprints import outage

    clock = [1000.0]
    monkeypatch.setattr(outage, "_clock", lambda: clock[0])
    assert client.get("/healthz").status_code == 200
    broken_database.break_()
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            clock[0] += 1
            r = client.get("/healthz")
            assert r.status_code == 503 and r.get_json() == {"ok": False, "database": "unavailable"}
        broken_database.heal()
        clock[0] += 2
        assert client.get("/healthz").get_json() == {"ok": True}
        clock[0] += outage.LOG_EVERY
        assert client.get("/healthz").get_json() == {"ok": True}
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "app"]
    assert sum("database unavailable" in line for line in lines) == 1   # not one per request
    # Once, and only after LOG_EVERY seconds without a 503 (a read-only database answers reads
    # in between: each of them must not say "back").
    assert [line for line in lines if line.startswith("database back")] == [
        "database back: 3 requests answered 503 in 2.0 s, the last 12.0 s ago"]


def test_a_signed_in_page_answers_503_in_the_accounts_language_without_loading_it(client, broken_database):
    w = make_world()
    User.update(language="en").where(User.id == w.parent_admin.id).execute()
    sign_in(client, w.parent_admin)
    broken_database.break_()   # the account cannot be loaded: the page falls back to the browser
    r = client.get("/admin/", headers={"Accept-Language": "ja"})
    assert r.status_code == 503 and TITLE["ja"] in r.get_data(as_text=True)


def test_a_bug_in_a_query_is_still_a_500_not_a_503(client, monkeypatch):
    def wrong(*args, **kwargs):
        raise sqlite3.OperationalError("no such column: nope") if not is_postgres() else \
            psycopg.errors.UndefinedColumn("column nope does not exist")

    monkeypatch.setattr(database.obj, "cursor", wrong)
    assert client.get("/healthz").status_code == 500


def _read_only(on: bool):
    """Make the app's own (kept) connection read-only, as a read-only file or standby would."""
    if is_postgres():
        database.execute_sql(f"SET SESSION default_transaction_read_only = {'on' if on else 'off'}")
    else:
        database.execute_sql(f"PRAGMA query_only = {1 if on else 0}")


def test_a_read_only_database_answers_503_to_a_change_and_writes_nothing(client, caplog):
    w = make_world()
    sign_in(client, w.parent_admin)
    target = w.target_child
    token = csrf_token(client.get(f"/admin/users/{target.id}").get_data(as_text=True))
    before = _row_counts()
    _read_only(True)
    try:
        with caplog.at_level(logging.WARNING):
            r = client.post(f"/admin/users/{target.id}/fields/email",
                            data={"csrf_token": token, "value": "new@example.jp", "version": target.version})
        assert r.status_code == 503 and TITLE["ja"] in r.get_data(as_text=True)
        assert any("database unavailable: 503 for POST" in rec.getMessage() for rec in caplog.records)
        assert client.get(f"/admin/users/{target.id}").status_code == 200   # reads still work
    finally:
        _read_only(False)
    assert _row_counts() == before
    assert User.get_by_id(target.id).email == "tc@example.jp"
    assert Mail.select().count() == 0 and AuditEntry.select().count() == before["audit_entry"]
    r = client.post(f"/admin/users/{target.id}/fields/email",
                    data={"csrf_token": token, "value": "new@example.jp", "version": target.version})
    assert r.status_code == 303 and Mail.select().where(Mail.kind == "email_changed").count() == 2


@pytest.mark.skipif("postgres" not in TEST_CONFIG["DATABASE_URL"],
                    reason="a server-side connection exists only on PostgreSQL")
def test_a_pooled_connection_the_server_closed_is_replaced_before_the_next_request(client):
    assert client.get("/healthz").status_code == 200
    pid = database.execute_sql("SELECT pg_backend_pid()").fetchone()[0]   # the app's kept connection
    with psycopg.connect(TEST_CONFIG["DATABASE_URL"], autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    for _ in range(50):   # the termination notice reaches the socket asynchronously
        if not health.connection_alive():
            break
        import time

        time.sleep(0.01)
    r = client.get("/healthz")
    assert r.status_code == 200
    assert database.execute_sql("SELECT pg_backend_pid()").fetchone()[0] != pid


@pytest.mark.skipif("postgres" not in TEST_CONFIG["DATABASE_URL"],
                    reason="a server-side connection exists only on PostgreSQL")
def test_a_connection_lost_during_a_request_answers_503_and_the_next_request_reconnects(client,
                                                                                       monkeypatch):
    from peewee import PostgresqlDatabase

    assert client.get("/healthz").status_code == 200
    pid = database.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
    real = PostgresqlDatabase.execute_sql
    calls = []

    def dies_on_first_use(self, sql, params=None, *args, **kwargs):
        if not calls:   # the server goes away between the check and the query
            calls.append(sql)
            with psycopg.connect(TEST_CONFIG["DATABASE_URL"], autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        return real(self, sql, params, *args, **kwargs)

    monkeypatch.setattr(PostgresqlDatabase, "execute_sql", dies_on_first_use)
    assert client.get("/healthz").status_code == 503
    monkeypatch.setattr(PostgresqlDatabase, "execute_sql", real)
    assert client.get("/healthz").status_code == 200


def test_an_unreachable_redis_leaves_rate_limits_in_memory_without_5xx(make_app, caplog, capsys):
    from app import create_app

    make_app()   # empties the tables
    dead = f"redis://127.0.0.1:{free_port()}/0"
    app = create_app({**TEST_CONFIG, "REDIS_URL": dead, "RATELIMIT_STORAGE_URI": dead})
    client = app.test_client()
    token = csrf_token(client.get("/business/password/reset").get_data(as_text=True))
    identity = {"csrf_token": token, "login_id": "nobody", "email": "nobody@example.jp",
                "name": "誰\u3000も", "phone": "0312345678"}
    with caplog.at_level(logging.WARNING):
        statuses = [client.post("/business/password/reset", data=identity).status_code
                    for _ in range(6)]
    assert statuses == [200] * 5 + [429]   # 5 per minute: still counted, in this process's memory
    lines = [r.getMessage() for r in caplog.records if "falling back to in-memory" in r.getMessage()]
    assert len(lines) == 1
    # ... and it reaches the log (standard error, as under gunicorn), not only Flask-Limiter's
    # own logger, which has nothing but a NullHandler.
    assert capsys.readouterr().err.count("falling back to in-memory storage") == 1
    assert client.get("/business/signin").status_code == 200


def test_the_redis_client_gives_up_quickly_when_redis_hangs():
    from app import create_app

    app = create_app({**TEST_CONFIG, "REDIS_URL": "redis://127.0.0.1:1/0"})
    options = app.config["RATELIMIT_STORAGE_OPTIONS"]
    assert options["socket_timeout"] <= 1 and options["socket_connect_timeout"] <= 1
    assert app.config["RATELIMIT_IN_MEMORY_FALLBACK_ENABLED"] is True


def test_the_mail_otp_page_says_the_mail_is_delayed_while_the_smtp_server_does_not_answer(
        smtp_app, smtp_server):
    from accounts import outbox
    from blueprints.extensions import mail as mail_ext
    from tests.helpers import gen_contract, gen_user
    from tests.web.portal_journey import Portal

    notice = "メールの送信が遅れています"
    client = smtp_app.test_client()
    user = gen_user(gen_contract(), password="Pass-word1", first_login_done=True, twostep_method="mail")
    smtp_server.stop()
    p = Portal(client, "business")
    p.sign_in(user.login_id, "Pass-word1")
    assert notice not in client.get("/business/signin/mail-otp").get_data(as_text=True)
    with smtp_app.app_context():
        assert outbox.deliver_due(mail_ext, "no-reply@test.example")["retry"] == 1
    assert notice in client.get("/business/signin/mail-otp").get_data(as_text=True)
    smtp_server.start()
    with smtp_app.app_context():
        Mail.update(next_attempt_at=Mail.created_at).execute()   # its retry is due
        assert outbox.deliver_due(mail_ext, "no-reply@test.example")["sent"] == 1
    assert notice not in client.get("/business/signin/mail-otp").get_data(as_text=True)
    assert len(smtp_server.wait_for(1)) == 1


def test_a_full_disk_answers_503_and_writes_nothing(client, caplog):
    """SQLite rolls a transaction back by itself when the disk is full; peewee's ROLLBACK then
    failed ("no transaction is active") and hid the real error behind a 500."""
    if is_postgres():
        pytest.skip("SQLite's own disk-full behaviour (max_page_count makes it real)")
    w = make_world()
    sign_in(client, w.child_admin)
    url = f"/admin/users/{w.target_child.id}/contact"
    token = csrf_token(client.get(url).get_data(as_text=True))
    before = _row_counts()
    free = database.execute_sql("PRAGMA freelist_count").fetchone()[0]
    page = database.execute_sql("PRAGMA page_size").fetchone()[0]
    database.execute_sql("CREATE TABLE filler (b BLOB)")   # use up the free pages first
    database.execute_sql("INSERT INTO filler VALUES (zeroblob(?))", ((free + 2) * page,))
    pages = database.execute_sql("PRAGMA page_count").fetchone()[0]
    database.execute_sql(f"PRAGMA max_page_count = {pages}")   # the disk is full
    try:
        with caplog.at_level(logging.WARNING):   # a mail of 5,000 characters needs new pages
            r = client.post(url, data={"csrf_token": token, "subject": "ご連絡", "body": "本文" * 2500})
        assert r.status_code == 503 and TITLE["ja"] in r.get_data(as_text=True)
        assert any("database or disk is full" in rec.getMessage() for rec in caplog.records)
    finally:
        database.execute_sql("PRAGMA max_page_count = 1073741823")
        database.execute_sql("DROP TABLE filler")
    assert _row_counts() == before


def test_a_session_that_cannot_be_written_turns_the_answer_into_the_503_page(client, caplog):
    """Signing out while the database refuses writes: the session row cannot be deleted, so the
    answer must not look like a sign-out (it was a traceback and a 500 before)."""
    w = make_world()
    sign_in(client, w.child_admin)
    assert client.get("/admin/").status_code == 200
    token = csrf_token(client.get("/admin/").get_data(as_text=True))
    _read_only(True)
    try:
        with caplog.at_level(logging.WARNING):
            r = client.post("/admin/logout", data={"csrf_token": token})
    finally:
        _read_only(False)
    assert r.status_code == 503 and "Location" not in r.headers
    assert TITLE["ja"] in r.get_data(as_text=True)
    assert not [rec for rec in caplog.records if rec.exc_info]
    assert client.get("/admin/").status_code == 200   # still signed in: nothing was ended
