"""Browser journey: during the period a legacy user signs in, corrects the e-mail in the pop-up,
receives the first-login link at the corrected address and continues with the first login."""
import datetime
import re
import time

import pytest

from accounts import background, period
from accounts.clock import utcnow
from accounts.db import database
from accounts.models import TermsVersion, User
from blueprints.extensions import mail as mail_ext
from tests.helpers import gen_contract, gen_user, links_in
from tests.legacy_helpers import PASSWORD, gen_legacy

pytestmark = pytest.mark.browser


def wait_until(page, expression, timeout=10.0):
    """Poll a JavaScript expression (page.wait_for_function would need 'unsafe-eval' under our CSP)."""
    deadline = time.time() + timeout
    while not page.evaluate(expression):
        assert time.time() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.05)


def test_legacy_user_corrects_email_in_popup_and_gets_the_first_login_link(smtp_app, smtp_server,
                                                                          live_server_factory, browser_page):
    app = smtp_app
    database.connect(reuse_if_open=True)
    now = utcnow()
    period.set_period(now - datetime.timedelta(days=1), now + datetime.timedelta(days=30))
    user = gen_user(contract=gen_contract(), login_id="popup@ntt.com_ecid9", legacy=True,
                    legacy_login_id="popup@ntt.com", email="old-box@example.jp", legacy_phone="03-ｱｲｳ")
    gen_legacy(user=user)
    database.close()
    server = live_server_factory(app)
    page = browser_page

    page.goto(server.url + "/legacy/")
    page.get_by_label("ログインID").fill("popup@ntt.com")
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()

    # The pop-up opens by itself as a modal dialog with the keyboard focus inside it.
    dialog = page.locator("#identity-dialog")
    dialog.wait_for(state="visible")
    # (Rendered open for browsers without JavaScript; the page script makes it modal.)
    wait_until(page, "document.getElementById('identity-dialog').matches(':modal')")
    assert page.evaluate("document.getElementById('identity-dialog').contains(document.activeElement)")
    assert dialog.get_by_text("移行により変更").count() == 2  # login ID and phone
    # Esc closes it and gives the focus back to the link that opens it again.
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    wait_until(page, "document.activeElement && document.activeElement.id === 'identity-open'")
    page.keyboard.press("Enter")
    wait_until(page, "document.getElementById('identity-dialog').matches(':modal')")

    # Correct the e-mail (htmx swaps the edit form into the dialog; focus moves to the field).
    dialog.get_by_role("link", name="変更する").click()
    email = dialog.get_by_label("メールアドレス")
    email.wait_for()
    wait_until(page, "document.activeElement && document.activeElement.id === 'f-email'")
    email.fill("not-an-address")
    dialog.get_by_role("button", name="変更して初回ログイン用リンクを送信").click()
    dialog.get_by_text("name@example.jp のような形式").wait_for()
    email.fill("new-box@example.jp")
    dialog.get_by_role("button", name="変更して初回ログイン用リンクを送信").click()
    dialog.get_by_text("メールをご確認ください").wait_for()
    assert "n****@e****.jp" in dialog.inner_text()

    # The first-login link arrives at the corrected address over real SMTP.
    with app.app_context():
        database.connect(reuse_if_open=True)
        background.run_round(mail_ext, app.config)  # the worker beside the web
        assert User.get_by_id(user.id).email == "new-box@example.jp"
        database.close()
    messages = smtp_server.wait_for(2)
    assert sorted(m["to"][0] for m in messages) == ["new-box@example.jp", "old-box@example.jp"]
    msg = next(m["message"] for m in messages if m["to"] == ["new-box@example.jp"])
    assert msg["Subject"] == "NTTコミュニケーションズ ビジネスポータル パスワード再設定メール"
    body = msg.get_body(preferencelist=("plain",)).get_content()
    link = next(u for u in links_in(body) if "/business/password/reset/" in u)
    assert link.startswith(server.url + "/business/password/reset/")
    assert "popup@ntt.com_ecid9" in body

    # The user continues with the first login of the new portal from that link.
    with app.app_context():
        database.connect(reuse_if_open=True)
        TermsVersion.create(version=1, title="カスタマポータル規約 第1版", body="本規約は…")
        database.close()
    page.goto(link)
    page.get_by_label("新しいパスワード", exact=True).fill("New-pass123")
    page.get_by_label("新しいパスワード(確認)").fill("New-pass123")
    page.get_by_role("button", name="保存").click()
    page.get_by_role("heading", name="パスワードの設定が完了しました", exact=True).wait_for()
    page.get_by_role("link", name="サービスへ戻る").click()
    page.get_by_role("link", name="ログインID/パスワードでログイン").click()
    page.get_by_label("ログインID").fill("popup@ntt.com_ecid9")
    page.get_by_label("パスワード").fill("New-pass123")
    page.get_by_role("button", name="サインイン").click()
    page.get_by_label("MailOTP").check()
    page.get_by_role("button", name="次へ").click()
    page.get_by_role("heading", name="メールOTP認証", exact=True).wait_for()
    with app.app_context():
        database.connect(reuse_if_open=True)
        background.run_round(mail_ext, app.config)  # the worker beside the web
        database.close()
    messages = smtp_server.wait_for(3)
    otp = messages[2]["message"]
    assert otp["To"] == "new-box@example.jp"
    code = re.search(r"^\s+(\d{6})\s*$", otp.get_body(preferencelist=("plain",)).get_content(), re.M).group(1)
    page.get_by_label("ワンタイムパスワード").fill(code)
    page.get_by_role("button", name="送信", exact=True).click()
    page.get_by_role("button", name="同意を承認する").click()
    page.get_by_role("heading", name="ダッシュボード", exact=True).wait_for()
    with app.app_context():
        database.connect(reuse_if_open=True)
        assert User.get_by_id(user.id).first_login_done_at is not None
        database.close()
