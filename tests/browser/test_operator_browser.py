"""The operator of a real deployment in real Chromium (SPEC 12): publishes the first terms version
from the console (preview through htmx), finds a contract as they type, gives it an administrator
(who receives the mail over SMTP), and disables a departed helpdesk member.

With PORTAL_SCREENSHOTS=1 the screens are written to docs/screens/operator-*.png.
"""
import os
import re
from pathlib import Path

import pytest

from accounts import outbox
from accounts.db import database
from accounts.models import Staff, TermsVersion, User
from blueprints.extensions import mail as mail_ext
from tests.browser.signin import staff_sign_in, with_totp
from tests.web.admin_helpers import make_world

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect
ROOT = Path(__file__).resolve().parents[2]


def test_operator_publishes_terms_gives_a_contract_an_admin_and_disables_a_staff_member(
        smtp_app, smtp_server, live_server_factory, browser_page, tmp_path):
    app = smtp_app
    database.connect(reuse_if_open=True)
    w = make_world()
    folder = ROOT / "docs" / "screens" if os.environ.get("PORTAL_SCREENSHOTS") else tmp_path
    server = live_server_factory(app)
    page = browser_page
    with_totp(w.operator)
    staff_sign_in(page, server.url, w.operator.login_id)

    # No terms yet: every console page warns; the link leads to the terms page.
    page.goto(server.url + "/admin/")
    page.locator("#terms-missing").get_by_role("link", name="規約を公開する").click()
    page.wait_for_url(re.compile(r"/admin/terms$"))
    page.get_by_label("タイトル").fill("カスタマポータル規約 第1版")
    page.get_by_label("規約の本文").fill(
        "# 第1条（適用）\n本規約は、カスタマポータルの利用条件を定めるものです。\n\n"
        "- ログインIDは自己の責任で管理します\n- <b>タグ</b>は文字として表示されます")
    page.get_by_role("button", name="プレビュー").click()
    preview = page.locator("#terms-preview")
    expect(preview.locator("h3", has_text="第1条（適用）")).to_be_visible()
    expect(preview).to_contain_text("<b>タグ</b>")  # shown as text, never as markup
    assert TermsVersion.select().count() == 0
    page.screenshot(path=str(folder / "operator-01-terms-preview.png"), full_page=True)
    page.get_by_role("button", name="公開", exact=True).click()
    page.locator(".flash", has_text="第1版を公開しました").wait_for()
    expect(page.locator("#terms-versions")).to_contain_text("適用中")
    assert page.locator("#terms-missing").count() == 0
    page.screenshot(path=str(folder / "operator-02-terms-published.png"), full_page=True)

    # Find the child contract as you type, open it, make "plain" its administrator.
    page.get_by_role("link", name="契約", exact=True).click()
    box = page.get_by_label("ECIDまたは契約名")
    box.press_sequentially("子契約A", delay=40)
    page.wait_for_url(re.compile(r"q=%E5%AD%90"))  # the address keeps the query (hx-push-url)
    page.locator("#contract-results a", has_text=w.child.ecid).click()
    page.wait_for_url(re.compile(rf"/admin/contracts/{w.child.ecid}$"))
    expect(page.locator("#contract-parent")).to_contain_text("親契約A")
    expect(page.locator("#contract-admins")).to_contain_text("cadmin")
    page.get_by_label("この契約のユーザーのログインID").fill("plain")
    page.get_by_role("button", name="管理者権限を付与").click()
    page.locator(".flash", has_text="plain").wait_for()
    expect(page.locator("#contract-admins")).to_contain_text("plain")
    page.screenshot(path=str(folder / "operator-03-contract.png"), full_page=True)
    assert User.get_by_id(w.plain.id).is_admin

    # A helpdesk member left: disable the account (with a confirmation).
    page.get_by_role("link", name="スタッフ", exact=True).click()
    page.locator(f"#staff-{w.helpdesk.id}").get_by_role("link", name="無効化").click()
    page.get_by_role("button", name=re.compile("はい")).click()
    page.locator(".flash", has_text="hd を無効化しました").wait_for()
    expect(page.locator(f"#staff-{w.helpdesk.id}")).to_contain_text("無効")
    page.screenshot(path=str(folder / "operator-04-staff.png"), full_page=True)
    assert Staff.get_by_id(w.helpdesk.id).disabled

    with app.app_context():
        database.connect(reuse_if_open=True)
        outbox.deliver_due(mail_ext, app.config["MAIL_DEFAULT_SENDER"])
    messages = smtp_server.wait_for(1)
    told = [m for m in messages if m["to"] == [w.plain.email]]
    assert told and "管理者に設定されました" in str(told[0]["message"]["Subject"])
