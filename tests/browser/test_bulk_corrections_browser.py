"""A parent admin in real Chromium corrects users with one CSV file (SPEC 14): downloads the
template, uploads a CP932 file with valid, invalid and out-of-scope rows, reads the preview (pages
with htmx, the URL keeps the page), applies it, and the mails arrive at a real SMTP server on
loopback. With PORTAL_SCREENSHOTS=1 the screens are written to docs/screens/bulk-*.png.
"""
import os
import re
from pathlib import Path

import pytest

from accounts import background
from accounts.db import database
from accounts.models import AuditEntry, User
from blueprints.extensions import mail as mail_ext
from tests.browser.signin import portal_sign_in, with_totp
from tests.helpers import gen_user
from tests.web.admin_helpers import make_world

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect
ROOT = Path(__file__).resolve().parents[2]


def _shot(page, name, tmp_path, full_page=True):
    folder = ROOT / "docs" / "screens" if os.environ.get("PORTAL_SCREENSHOTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=full_page)


def test_parent_admin_previews_and_applies_a_csv_and_the_mails_arrive(
        smtp_app, smtp_server, live_server_factory, browser_page, tmp_path):
    app = smtp_app
    app.config["BULK_APPLY_SECONDS"] = 0.05  # several htmx steps, each continuing the last
    database.connect(reuse_if_open=True)
    w = make_world()
    # Sixty more users of the child contract whose names change: the preview has two pages.
    many = [gen_user(w.child, login_id=f"staff{i:02d}", email=f"staff{i:02d}@example.jp",
                     name=f"社員 {i:02d}") for i in range(60)]
    server = live_server_factory(app)
    page = browser_page
    with_totp(w.parent_admin)
    portal_sign_in(page, server.url, "business", w.parent_admin.login_id)

    page.goto(server.url + "/admin/")
    page.get_by_role("link", name="一括修正").click()
    page.get_by_role("heading", name="一括修正", exact=True).wait_for()
    with page.expect_download() as download:
        page.get_by_role("link", name="テンプレートをダウンロード(CSV)").click()
    template = Path(download.value.path()).read_bytes().decode("utf-8")
    assert template == "\ufefflogin_id,new_email,new_login_id,name,phone,portal\r\n"

    rows = [
        "login_id,new_email,new_login_id,name,phone,portal",
        "target-child,corrected@example.jp,,佐藤\u3000一朗,,",     # e-mail and name
        "target-parent,,target-parent-2025,,03-5555-0000,",       # login ID and phone
        "target-other,stolen@example.jp,,,,",                     # another partner's user
        "nobody-here,x@example.jp,,,,",                           # missing: the same answer
        "plain,not-an-address,,,,",                               # a bad cell
        "TARGET-CHILD,again@example.jp,,,,sdpf",                  # duplicate of line 2
        *[f"{u.login_id},,,社員\u3000{i:02d},," for i, u in enumerate(many)],
    ]
    page.set_input_files("#f-file", files=[{"name": "異動.csv", "mimeType": "text/csv",
                                             "buffer": "\r\n".join(rows).encode("cp932") + b"\r\n"}])
    _shot(page, "bulk-01-upload", tmp_path)
    page.get_by_role("button", name="アップロードしてプレビュー").click()
    page.wait_for_url(re.compile(r"/admin/bulk/\d+$"))
    preview_url = page.url
    status = page.locator("#bulk-status")
    expect(status).to_contain_text("変更あり: 62")
    expect(status).to_contain_text("エラー: 4")
    for line in (4, 5):  # out of scope and missing: one message, nothing about the other tree
        expect(page.locator(f"#line-{line}")).to_contain_text("このログインIDのユーザーは見つかりません。")
    assert "to@example.jp" not in page.content()
    expect(page.locator("#line-6")).to_contain_text("name@example.jp のような形式")
    expect(page.locator("#line-7")).to_contain_text("2行目と重複しています")
    expect(page.locator("#line-2 ins").first).to_have_text(re.compile("corrected@example.jp"))
    _shot(page, "bulk-02-preview", tmp_path, full_page=False)  # the first rows of a long page

    page.get_by_role("link", name="次へ").click()  # htmx swaps the rows, the URL keeps the page
    page.wait_for_url(re.compile(r"after=51"))
    page.locator("#line-67").wait_for()
    assert page.locator("#line-2").count() == 0
    page.reload()
    page.locator("#line-67").wait_for()
    page.get_by_role("navigation", name="表示する行").get_by_role("link", name="エラー").click()
    page.wait_for_url(re.compile(r"show=error"))
    expect(page.locator("#bulk-rows tbody tr")).to_have_count(4)

    assert User.get_by_id(w.target_child.id).email == "tc@example.jp"  # nothing written yet
    page.get_by_role("button", name="62件の変更を適用").click()
    page.wait_for_url(preview_url)  # htmx stepped through the rows, then reloaded the page
    expect(page.locator("#bulk-status")).to_contain_text("適用しました: 62件を変更", timeout=30000)
    expect(page.locator("#line-2")).to_contain_text("修正済み")
    _shot(page, "bulk-03-result", tmp_path, full_page=False)

    child = User.get_by_id(w.target_child.id)
    assert (child.email, child.name) == ("corrected@example.jp", "佐藤\u3000一朗")
    parent = User.get_by_id(w.target_parent.id)
    assert (parent.login_id, parent.phone) == ("target-parent-2025", "0355550000")
    assert User.get_by_id(w.target_other.id).email == "to@example.jp"
    assert User.get_by_id(w.plain.id).email == w.plain.email
    corrections = AuditEntry.select().where((AuditEntry.actor_label == "business:padmin")
                                            & AuditEntry.action.endswith("_changed"))
    assert corrections.count() == 2 + 2 + 60  # one entry per changed field

    with app.app_context():
        background.run_round(mail_ext, app.config)  # the delivery worker's round
    messages = smtp_server.wait_for(3)
    got = sorted((m["to"][0], str(m["message"]["Subject"])) for m in messages)
    assert got == [("corrected@example.jp", "登録メールアドレス変更のお知らせ"),
                   ("tc@example.jp", "登録メールアドレス変更のお知らせ"),
                   ("tp@example.jp", "ログインID変更のお知らせ")]
    notice = next(m["message"] for m in messages if m["to"][0] == "tp@example.jp")
    assert "target-parent-2025" in notice.get_body(preferencelist=("plain",)).get_content()
