"""In real Chromium: an htmx save made while the database is out shows the outage page in place
of the page's content (htmx 2 does not swap an error answer by itself)."""
import pytest

from accounts.db import database
from tests.browser.signin import portal_sign_in, with_totp
from tests.web.admin_helpers import make_world

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect


def test_an_htmx_save_during_a_database_outage_shows_the_503_page(make_app, live_server_factory,
                                                                 browser_page, monkeypatch):
    import sqlite3

    import psycopg

    from accounts.db import is_postgres

    app = make_app(PROPAGATE_EXCEPTIONS=False)   # as in production: errors become the error pages
    database.connect(reuse_if_open=True)
    w = make_world()
    server = live_server_factory(app)
    page = browser_page
    with_totp(w.parent_admin)
    portal_sign_in(page, server.url, "business", w.parent_admin.login_id)
    page.goto(server.url + f"/admin/users/{w.target_child.id}")
    page.get_by_label("メールアドレスを変更").click()
    field = page.locator("#f-email")
    field.wait_for()
    expect(page.locator(".htmx-settling, .htmx-swapping")).to_have_count(0)

    def cursor(*args, **kwargs):   # from now on every statement fails as with the server gone
        raise (psycopg.OperationalError("the connection is closed") if is_postgres()
               else sqlite3.OperationalError("disk I/O error"))

    monkeypatch.setattr(database.obj, "cursor", cursor)
    field.fill("during-the-outage@example.jp")
    page.get_by_role("button", name="保存").click()
    expect(page.locator("#main h1")).to_have_text("ただいまサービスを一時的にご利用いただけません")
    expect(page.get_by_role("link", name="トップページへ戻る")).to_be_visible()
    monkeypatch.undo()
    assert w.target_child.__class__.get_by_id(w.target_child.id).email == "tc@example.jp"
