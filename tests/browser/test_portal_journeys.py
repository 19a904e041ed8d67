"""The two first-login journeys in real Chromium, mail caught by a real SMTP server on loopback.

Business Portal with Mail OTP, SDPF Portal with TOTP, from the portal's front page to the dashboard.
With PORTAL_SCREENSHOTS=1 each step's screenshot is written to docs/screens/ (the README links them).
"""
import os
import re
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import expect

from accounts import background
from accounts.db import database
from accounts.models import Service, TermsVersion
from blueprints.extensions import mail as mail_ext
from tests.helpers import gen_contract, gen_user

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def shots(tmp_path):
    folder = ROOT / "docs" / "screens" if os.environ.get("PORTAL_SCREENSHOTS") else tmp_path

    def shot(page, name):
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)

    return shot


@pytest.fixture
def served(smtp_app, smtp_server, live_server_factory):
    smtp_app.config["RESET_ANSWER_SECONDS"] = 0.05
    database.connect(reuse_if_open=True)
    TermsVersion.create(version=1, title="カスタマポータル規約 第1版",
                        body="本規約は、カスタマポータルの利用条件を定めるものです。\n"
                             "第1条（適用）本規約は、本サービスの利用に関する一切の関係に適用されます。")
    server = live_server_factory(smtp_app)
    yield server
    if not database.is_closed():
        database.close()


def _deliver_and_read(app, smtp_server, count):
    """Run one delivery round (what the worker does) and return the newest mail's text part."""
    with app.app_context():
        background.run_round(mail_ext, app.config)  # the worker beside the web
    messages = smtp_server.wait_for(count)
    assert len(messages) >= count, "the mail did not arrive"
    message = messages[count - 1]["message"]
    return message["Subject"], message.get_body(preferencelist=("plain",)).get_content()


def test_business_first_login_with_mail_otp_in_chromium(served, smtp_app, smtp_server, browser_page, shots):
    contract = gen_contract(name="直販 ひかり工業株式会社")
    Service.create(contract=contract, name="Smart Data Platform", status="お申し込み済み")
    gen_user(contract, login_id="sample@ntt.com_ecid1000000001", email="sample@example.jp",
             name="佐藤\u3000一郎", phone="0312345678", legacy=True, legacy_login_id="sample@ntt.com")
    page = browser_page
    page.goto(served.url + "/business/")
    shots(page, "business-01-landing")
    page.get_by_role("link", name="ログインID/パスワードでログイン").click()
    page.get_by_role("link", name="パスワード再設定はこちら").click()
    page.get_by_label("ログインID").fill("sample@ntt.com_ecid1000000001")
    page.get_by_label("メールアドレス").fill("sample@example.jp")
    page.get_by_label("名前").fill("佐藤\u3000一郎")
    page.get_by_label("電話番号").fill("03-1234-5678")
    shots(page, "business-02-identity")
    page.get_by_role("button", name="送信", exact=True).click()
    page.get_by_role("heading", name="メールをご確認ください", exact=True).wait_for()
    shots(page, "business-03-reset-sent")

    subject, body = _deliver_and_read(smtp_app, smtp_server, 1)
    assert subject == "NTTコミュニケーションズ ビジネスポータル パスワード再設定メール"
    link = re.search(r"http://\S+/business/password/reset/\S+", body).group(0)
    page.goto(link)
    page.get_by_label("新しいパスワード", exact=True).press_sequentially("Demo-pass1")
    # The rules list updates while typing (htmx), each rule shown as met.
    page.locator('#password-rules li.ok[data-rule="upper"]').wait_for()
    expect(page.locator("#password-rules li.ok")).to_have_count(5)
    page.get_by_label("新しいパスワード(確認)").fill("Demo-pass1")
    shots(page, "business-04-new-password")
    page.get_by_role("button", name="保存").click()
    page.get_by_role("heading", name="パスワードの設定が完了しました", exact=True).wait_for()
    shots(page, "business-05-password-set")
    page.get_by_role("link", name="サービスへ戻る").click()
    page.get_by_role("link", name="ログインID/パスワードでログイン").click()
    page.get_by_label("ログインID").fill("sample@ntt.com_ecid1000000001")
    page.get_by_label("パスワード").fill("Demo-pass1")
    shots(page, "business-06-signin")
    page.get_by_role("button", name="サインイン").click()
    page.get_by_role("heading", name="二段階認証の選択", exact=True).wait_for()
    page.get_by_label("MailOTP").check()
    shots(page, "business-07-method")
    page.get_by_role("button", name="次へ").click()
    page.get_by_role("heading", name="メールOTP認証", exact=True).wait_for()
    assert "s****@e****.jp" in page.content()

    subject, body = _deliver_and_read(smtp_app, smtp_server, 2)
    assert subject == "NTTコミュニケーションズ ビジネスポータル メールワンタイムパスワード"
    code = re.search(r"^\s+(\d{6})\s*$", body, re.M).group(1)
    page.get_by_label("ワンタイムパスワード").fill(code)
    shots(page, "business-08-mail-otp")
    page.get_by_role("button", name="送信", exact=True).click()
    page.get_by_role("heading", name="カスタマポータル規約", exact=True).wait_for()
    shots(page, "business-09-terms")
    page.get_by_role("button", name="同意を承認する").click()
    page.get_by_role("heading", name="ダッシュボード", exact=True).wait_for()
    assert "お申し込み済み" in page.content() and "Smart Data Platform" in page.content()
    shots(page, "business-10-dashboard")


def test_sdpf_first_login_with_totp_in_chromium(served, smtp_app, smtp_server, browser_page, shots):
    parent = gen_contract(name="サンプルパートナー株式会社")
    child = gen_contract(parent=parent, name="子契約 あおば物流株式会社")
    Service.create(contract=child, name="Smart Data Platform", status="お申し込み済み")
    gen_user(child, login_id="aoba-user1", email="aoba1@example.jp", legacy=True)
    page = browser_page
    page.goto(served.url + "/sdpf/")
    page.get_by_role("heading", name="サインイン", exact=True).wait_for()
    shots(page, "sdpf-01-signin")
    page.get_by_role("link", name="パスワードの再設定はこちら").click()
    page.get_by_label("ログインID").fill("aoba-user1")
    page.get_by_label("メールアドレス").fill("aoba1@example.jp")
    shots(page, "sdpf-02-identity")
    page.get_by_role("button", name="送信", exact=True).click()
    page.get_by_role("heading", name="メールをご確認ください", exact=True).wait_for()
    shots(page, "sdpf-03-reset-sent")

    subject, body = _deliver_and_read(smtp_app, smtp_server, 1)
    assert subject == "【Smart Data Platform】パスワード再設定"
    page.goto(re.search(r"http://\S+/sdpf/password/reset/\S+", body).group(0))
    page.get_by_label("新しいパスワード", exact=True).press_sequentially('Demo"pass1')
    # '"' is not an SDPF symbol: the live rules say so before the form is sent.
    page.locator('#password-rules li:not(.ok)[data-rule="charset"]').wait_for()
    page.get_by_label("新しいパスワード", exact=True).fill("")
    page.get_by_label("新しいパスワード", exact=True).press_sequentially("Demo-pass1")
    expect(page.locator("#password-rules li.ok")).to_have_count(5)
    page.get_by_label("新しいパスワード(確認)").fill("Demo-pass1")
    shots(page, "sdpf-04-new-password")
    page.get_by_role("button", name="保存").click()
    page.get_by_role("heading", name="パスワードの設定が完了しました", exact=True).wait_for()
    shots(page, "sdpf-05-password-set")
    page.get_by_role("link", name="サービスへ戻る").click()
    page.get_by_label("ログインID").fill("aoba-user1")
    page.get_by_label("パスワード").fill("Demo-pass1")
    page.get_by_role("button", name="サインイン").click()
    page.get_by_label("TOTP").check()
    shots(page, "sdpf-06-method")
    page.get_by_role("button", name="次へ").click()
    page.get_by_role("heading", name="TOTP設定", exact=True).wait_for()
    assert page.locator(".qr svg").count() == 1
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    page.get_by_label("6桁のコード").fill(pyotp.TOTP(secret).now())
    shots(page, "sdpf-07-totp-setup")
    page.get_by_role("button", name="登録").click()
    page.get_by_role("heading", name="バックアップコード", exact=True).wait_for()
    assert page.locator("#backup-codes li").count() == 10
    shots(page, "sdpf-08-backup-codes")
    page.get_by_role("button", name="戻る").click()
    page.get_by_role("heading", name="カスタマポータル規約", exact=True).wait_for()
    shots(page, "sdpf-09-terms")
    page.get_by_role("button", name="同意を承認する").click()
    page.get_by_role("heading", name="ダッシュボード", exact=True).wait_for()
    assert "お申し込み済み" in page.content()
    shots(page, "sdpf-10-dashboard")
