"""The base of every screen: languages, error pages, security headers, the local mailbox, the CLI."""
import pytest

from accounts import outbox
from accounts.models import Contract, Staff, User


def test_front_page_offers_both_portals_in_japanese_by_default(client):
    r = client.get("/")
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    assert 'lang="ja"' in html
    assert "ご利用のポータルを選択してください" in html
    assert 'href="/business/"' in html and 'href="/sdpf/"' in html


def test_front_page_follows_accept_language(client):
    html = client.get("/", headers={"Accept-Language": "en-US,en;q=0.9"}).get_data(as_text=True)
    assert 'lang="en"' in html and "Choose your portal" in html


def test_visible_language_switch_wins_over_accept_language_and_is_kept(client):
    r = client.get("/lang/en?next=/business/", headers={"Accept-Language": "ja"})
    assert r.status_code == 303 and r.headers["Location"] == "/business/"
    html = client.get("/", headers={"Accept-Language": "ja"}).get_data(as_text=True)
    assert "Choose your portal" in html
    client.get("/lang/ja")
    assert "ご利用のポータル" in client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)


def test_language_switch_never_redirects_off_site(client):
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        r = client.get("/lang/en", query_string={"next": target})
        assert r.headers["Location"] == "/"


@pytest.mark.parametrize("lang,text", [("ja", "ページが見つかりません"), ("en", "Page not found")])
def test_not_found_page_in_both_languages(client, lang, text):
    r = client.get("/no/such/page", headers={"Accept-Language": lang})
    assert r.status_code == 404 and text in r.get_data(as_text=True)


def test_csrf_failure_is_a_clear_page_not_a_500(app):
    app.add_url_rule("/_test_post", "_test_post", lambda: "ok", methods=["POST"])
    r = app.test_client().post("/_test_post", headers={"Accept-Language": "en"})
    assert r.status_code == 400 and "Your form expired" in r.get_data(as_text=True)


def test_server_error_page_in_japanese_and_nothing_half_written(make_app):
    app = make_app(PROPAGATE_EXCEPTIONS=False)

    def boom():
        raise RuntimeError("boom")

    app.add_url_rule("/_boom", "_boom", boom)
    r = app.test_client().get("/_boom")
    assert r.status_code == 500 and "エラーが発生しました" in r.get_data(as_text=True)


def test_security_headers_on_every_page(client):
    r = client.get("/")
    assert r.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Cache-Control"] == "no-store"


def test_htmx_is_vendored_and_the_csrf_header_is_set_once(client):
    html = client.get("/").get_data(as_text=True)
    assert "/static/vendor/htmx-2.0.11.min.js" in html
    assert html.count("X-CSRFToken") == 1
    js = client.get("/static/vendor/htmx-2.0.11.min.js")
    assert js.status_code == 200 and b"2.0.11" in js.data
    js.close()


def test_local_mailbox_lists_mails_without_an_smtp_server(app, client, db):
    outbox.enqueue(recipient="x@example.jp", subject="テスト件名", body_text="本文 https://a.example/x",
                   kind="test")
    html = client.get("/dev/mail/").get_data(as_text=True)
    assert "テスト件名" in html and "x@example.jp" in html


def test_local_mailbox_does_not_exist_when_smtp_is_configured(smtp_app):
    assert smtp_app.test_client().get("/dev/mail/").status_code == 404


def test_create_staff_reads_one_line_from_stdin_and_refuses_duplicates(runner, db):
    r = runner.invoke(args=["create-staff", "alice", "--role", "helpdesk"], input="a-long-password-1\n")
    assert r.exit_code == 0, r.output
    assert "created helpdesk 'alice'" in r.output
    staff = Staff.get(Staff.login_id_key == "alice")
    assert staff.role == "helpdesk" and staff.password_hash.startswith("$argon2id$")
    r = runner.invoke(args=["create-staff", "ALICE", "--role", "operator"], input="a-long-password-1\n")
    assert r.exit_code == 1 and "already exists" in r.output


def test_create_staff_refuses_a_short_password_and_a_bad_role(runner, db):
    r = runner.invoke(args=["create-staff", "bob", "--role", "operator"], input="short\n")
    assert r.exit_code == 1 and "password must be" in r.output
    r = runner.invoke(args=["create-staff", "bob", "--role", "king"], input="a-long-password-1\n")
    assert r.exit_code == 2
    assert not Staff.select().where(Staff.login_id_key == "bob").exists()


def test_demo_is_idempotent_and_says_how_to_sign_in(runner, db):
    first = runner.invoke(args=["demo"])
    assert first.exit_code == 0, first.output
    assert "partner-admin@example.jp" in first.output
    counts = (Contract.select().count(), User.select().count(), Staff.select().count())
    second = runner.invoke(args=["demo"])
    assert second.exit_code == 0
    assert (Contract.select().count(), User.select().count(), Staff.select().count()) == counts
    skipped = runner.invoke(args=["demo", "--if-empty"])
    assert "not loaded" in skipped.output


def test_demo_progress_counters_match_the_users(runner, db):
    runner.invoke(args=["demo"])
    for c in Contract.select():
        users = User.select().where(User.contract == c)
        assert c.users_total == users.count()
        assert c.users_first_login_done == users.where(User.first_login_done_at.is_null(False)).count()


def test_a_principal_disabled_while_signed_in_is_no_longer_loaded_from_the_session(app, db):
    from accounts.models import User as UserModel
    from app import _load_principal
    from tests.helpers import gen_user

    user = gen_user(first_login_done=True)
    staff = Staff.create(login_id="op", login_id_key="op", role="operator", password_hash="x")
    assert _load_principal(f"u:{user.id}") == user
    assert _load_principal(f"s:{staff.id}") == staff
    UserModel.update(disabled=True).where(UserModel.id == user.id).execute()
    Staff.update(disabled=True).where(Staff.id == staff.id).execute()
    assert _load_principal(f"u:{user.id}") is None
    assert _load_principal(f"s:{staff.id}") is None
    assert _load_principal("x:1") is None and _load_principal("u:abc") is None


@pytest.mark.parametrize("kind", ["user", "staff"])
def test_the_language_switch_is_kept_in_the_signed_in_account(app, db, kind):
    from tests.helpers import csrf_token, gen_user
    from tests.web.admin_helpers import sign_in

    if kind == "user":
        principal = gen_user(first_login_done=True)
    else:
        principal = Staff.create(login_id="op2", login_id_key="op2", role="operator", password_hash="x")
    client = app.test_client()
    sign_in(client, principal)
    r = client.get("/lang/en?next=/")  # an old GET link sets the cookie only: GET writes no row
    assert r.status_code == 303 and "lang=en" in r.headers["Set-Cookie"]
    assert type(principal).get_by_id(principal.id).language is None
    token = csrf_token(client.get("/").get_data(as_text=True))
    r = client.post("/lang/en", data={"next": "/", "csrf_token": token})
    assert r.status_code == 303
    assert type(principal).get_by_id(principal.id).language == "en"


def test_a_request_keeps_its_catalogue_yet_follows_a_forced_or_refreshed_locale(app):
    """blueprints.extensions looks the catalogue up once per request: a forced locale (the 503
    page, mails in the recipient's language) and a refresh() after the language changed must
    still translate in the new language, in templates and in Python."""
    from flask import render_template_string
    from flask_babel import force_locale, gettext, refresh

    page = "{{ _('Sign in') }}"
    with app.test_request_context("/", headers={"Accept-Language": "ja"}):
        assert render_template_string(page) == gettext("Sign in") == "サインイン"
        with force_locale("en"):
            assert render_template_string(page) == gettext("Sign in") == "Sign in"
        assert render_template_string(page) == gettext("Sign in") == "サインイン"
        original = app.extensions["babel"].locale_selector
        app.extensions["babel"].locale_selector = lambda: "en"
        try:
            assert gettext("Sign in") == "サインイン"   # the request's locale is chosen once
            refresh()
            assert render_template_string(page) == gettext("Sign in") == "Sign in"
        finally:
            app.extensions["babel"].locale_selector = original
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        assert render_template_string(page) == "Sign in"   # a new request, its own catalogue
