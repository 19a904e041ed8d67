"""A parent admin in real Chromium: finds a child user by the first letters of the login ID,
corrects the e-mail address, sends a reset link; the mail arrives at the corrected address."""
import re

import pyotp
import pytest

from accounts import background
from accounts.db import database
from accounts.models import TermsVersion, User
from blueprints.extensions import mail as mail_ext
from tests.browser.signin import portal_sign_in, with_totp
from tests.helpers import links_in
from tests.web.admin_helpers import make_world

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect


def _deliver(app):
    with app.app_context():
        database.connect(reuse_if_open=True)
        background.run_round(mail_ext, app.config)  # the worker beside the web


def test_parent_admin_corrects_an_email_sends_a_reset_link_and_the_user_completes_the_first_login(
        smtp_app, smtp_server, live_server_factory, browser_page):
    app = smtp_app
    database.connect(reuse_if_open=True)
    w = make_world()
    server = live_server_factory(app)
    page = browser_page
    with_totp(w.parent_admin)
    portal_sign_in(page, server.url, "business", w.parent_admin.login_id)

    page.goto(server.url + "/admin/")
    search_box = page.get_by_label("ログインID、メールアドレス、氏名、電話番号またはECID")
    search_box.press_sequentially("target-c", delay=40)
    page.wait_for_url(re.compile(r"\?q=target-c"))  # the address bar keeps the query (hx-push-url)
    page.locator("#results a", has_text="target-parent").wait_for(state="detached")
    result = page.locator("#results a", has_text="target-child")
    assert page.locator("#results", has_text="target-other").count() == 0
    result.click()
    page.wait_for_url(re.compile(r"/admin/users/\d+$"))

    page.get_by_label("メールアドレスを変更").click()
    field = page.locator("#f-email")
    field.wait_for()
    # htmx binds the swapped-in field's triggers when the swap settles: type after that, key by key.
    expect(page.locator(".htmx-settling, .htmx-swapping")).to_have_count(0)
    field.fill("")  # the field opens with the current address
    field.press_sequentially("not-an-address", delay=20)
    expect(page.locator("#f-email-error")).to_contain_text("name@example.jp")  # validated while typing
    field.fill("")
    field.press_sequentially("corrected@example.jp", delay=20)
    expect(page.locator("#f-email-error")).to_have_text("")
    page.get_by_role("button", name="保存").click()
    page.locator("#identity", has_text="メールアドレスを保存しました").wait_for()
    assert page.locator("#field-email .value").inner_text() == "corrected@example.jp"

    page.get_by_role("link", name="パスワード再設定メールを送信").first.click()
    page.get_by_role("button", name=re.compile("はい")).click()
    page.locator(".flash", has_text="corrected@example.jp").wait_for()

    _deliver(app)
    messages = smtp_server.wait_for(4)
    by_to = {}
    for m in messages:
        by_to.setdefault(m["to"][0], []).append(m["message"])
    assert {str(m["Subject"]) for m in by_to["tc@example.jp"]} == {"登録メールアドレス変更のお知らせ"}
    reset = [m for m in by_to["corrected@example.jp"]
             if str(m["Subject"]) == "【Smart Data Platform】パスワード再設定"]
    assert len(reset) == 1
    body = reset[0].get_body(preferencelist=("plain",)).get_content()
    link = next(u for u in links_in(body) if "/sdpf/password/reset/" in u)
    assert link.startswith(server.url)

    # The user (another person, another browser session) completes the first login with it.
    TermsVersion.create(version=1, title="カスタマポータル規約 第1版", body="本規約は…")
    page.context.clear_cookies()
    page.goto(link)
    page.get_by_label("新しいパスワード", exact=True).fill("Demo-pass1")
    page.get_by_label("新しいパスワード(確認)").fill("Demo-pass1")
    page.get_by_role("button", name="保存").click()
    page.get_by_role("link", name="サービスへ戻る").click()
    page.get_by_label("ログインID").fill("target-child")
    page.get_by_label("パスワード").fill("Demo-pass1")
    page.get_by_role("button", name="サインイン").click()
    page.get_by_label("TOTP").check()
    page.get_by_role("button", name="次へ").click()
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    page.get_by_label("6桁のコード").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="登録").click()
    page.get_by_role("button", name="戻る").click()
    page.get_by_role("button", name="同意を承認する").click()
    page.get_by_role("heading", name="ダッシュボード", exact=True).wait_for()
    target = User.get_by_id(w.target_child.id)
    assert target.first_login_done_at is not None and target.email == "corrected@example.jp"
