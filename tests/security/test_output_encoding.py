"""SPEC 11.6 (findings 7 and 9): console CSV exports never hold a cell a spreadsheet would run;
mail headers can never be extended by a typed value."""
import csv
import io

import pytest

from accounts import console, outbox
from accounts.csvsafe import safe_cell
from accounts.models import Mail, Staff
from tests.helpers import csrf_token, gen_contract, gen_user
from tests.web.admin_helpers import sign_in

FORMULAS = ['=HYPERLINK("http://attacker.example","x")', "+81-3-1234-5678", "-2+3", "@SUM(A1)",
            "\t=1+1", "\r=1+1"]


@pytest.mark.parametrize("text", FORMULAS)
def test_a_text_cell_that_starts_like_a_formula_gets_a_quote(text):
    assert safe_cell(text) == "'" + text
    assert safe_cell("普通の名前") == "普通の名前" and safe_cell(42) == 42 and safe_cell(None) == ""


def _rows(response):
    text = response.get_data(as_text=True).lstrip("\ufeff")
    return list(csv.reader(io.StringIO(text)))


def test_the_audit_and_progress_exports_quote_formulas(client, db):
    contract = gen_contract(name='=HYPERLINK("http://attacker.example","契約")')
    user = gen_user(contract, login_id="=cmd|' /C calc'!A0", name="@SUM(1+1)", email="a@example.jp")
    operator = Staff.create(login_id="op", login_id_key="op", role="operator", password_hash="x")
    console.reset(operator, user.id, console.UNLOCK)
    from accounts import audit

    audit.record(operator, "note", target_user=user, old="=1+1", new="+2", detail="-3")
    sign_in(client, operator)
    for path in ("/admin/audit.csv", "/admin/progress.csv"):
        r = client.get(path)
        assert r.status_code == 200, path
        for row in _rows(r)[1:]:
            for cell in row:
                assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (path, cell)
    cells = [cell for row in _rows(client.get("/admin/audit.csv")) for cell in row]
    assert "'=1+1" in cells and "'+2" in cells and "'-3" in cells


def test_a_contact_subject_with_a_line_break_is_refused_next_to_the_field(client, db):
    operator = Staff.create(login_id="op", login_id_key="op", role="operator", password_hash="x")
    user = gen_user(gen_contract())
    sign_in(client, operator)
    page = client.get(f"/admin/users/{user.id}/contact").get_data(as_text=True)
    r = client.post(f"/admin/users/{user.id}/contact", data={
        "csrf_token": csrf_token(page), "subject": "ご連絡\r\nBcc: victim@example.jp\r\nX-Injected: 1",
        "body": "本文"})
    html = r.get_data(as_text=True)
    assert r.status_code == 422 and "件名は1行で入力してください" in html and 'id="f-subject-error"' in html
    assert Mail.select().count() == 0


def test_the_outbox_refuses_line_breaks_and_the_mail_builder_cannot_be_extended(db, app_ctx):
    with pytest.raises(outbox.HeaderInjection):
        outbox.enqueue(recipient="a@example.jp", subject="x\r\nBcc: b@example.jp", body_text="t", kind="t")
    with pytest.raises(outbox.HeaderInjection):
        outbox.enqueue(recipient="a@example.jp\r\nBcc: b@example.jp", subject="x", body_text="t", kind="t")
    # A row written around the checks (e.g. by hand in the database) is still never sent as such.
    mail = outbox.enqueue(recipient="a@example.jp", subject="ok", body_text="t", kind="t")
    Mail.update(subject="x\r\nX-Injected: 1").where(Mail.id == mail.id).execute()
    with pytest.raises(ValueError):
        outbox.build_message(Mail.get_by_id(mail.id), "no-reply@example.jp")


def test_a_delivered_mail_has_exactly_the_headers_we_wrote(smtp_app, smtp_server, db):
    from accounts import background
    from blueprints.extensions import mail as mail_ext

    with smtp_app.app_context():
        outbox.enqueue(recipient="a@example.jp", subject="【Smart Data Platform】パスワード再設定",
                       body_text="本文\r\nBcc: x@example.jp", kind="t")
        bad = outbox.enqueue(recipient="b@example.jp", subject="ok", body_text="t", kind="t")
        Mail.update(subject="x\nX-Injected: 1").where(Mail.id == bad.id).execute()
        background.run_round(mail_ext, smtp_app.config)
    received = smtp_server.wait_for(1)
    assert len(received) == 1 and received[0]["to"] == ["a@example.jp"]
    msg = received[0]["message"]
    assert msg["Subject"] == "【Smart Data Platform】パスワード再設定"
    assert msg["Bcc"] is None and msg["X-Injected"] is None
    assert Mail.get_by_id(bad.id).status == "failed"
