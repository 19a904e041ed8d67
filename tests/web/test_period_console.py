"""Console pages of the migration period: settings (operator) and advance notices, frozen clock."""
import datetime

import pytest
import time_machine

from accounts import period
from accounts.models import AuditEntry, Mail, MigrationPeriod, Staff
from accounts.passwords import hasher
from tests.helpers import csrf_token, gen_contract, gen_user
from tests.legacy_helpers import AFTER_AT, BEFORE_AT, DURING_AT, set_period


def console_login(app, client, principal):
    """A server-side session for ``principal`` (the console sign-in itself is tested elsewhere)."""
    from tests.web.admin_helpers import sign_in

    sign_in(client, principal)


def staff(role="operator"):
    return Staff.create(login_id=role, login_id_key=role, role=role, password_hash=hasher().hash("x"),
                        totp_confirmed_at=datetime.datetime(2026, 1, 1))


# --- settings -----------------------------------------------------------------------------------

def test_operator_sets_the_period_in_jst_and_sees_the_phase(app, client, db):
    console_login(app, client, staff())
    page = client.get("/admin/settings")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'type="datetime-local"' in html and "設定されていません" in html
    r = client.post("/admin/settings/migration-period", data={
        "start": "2026-12-01T00:00", "end": "2027-03-31T23:59", "action": "save",
        "csrf_token": csrf_token(html)})
    assert r.status_code == 303
    row = MigrationPeriod.get_by_id(1)
    assert row.start_at == datetime.datetime(2026, 11, 30, 15, 0) and row.updated_by == "operator"
    with time_machine.travel(DURING_AT, tick=False):
        console_login(app, client, Staff.get())
        html = client.get("/admin/settings").get_data(as_text=True)
    assert 'value="2026-12-01T00:00"' in html and 'value="2027-03-31T23:59"' in html
    assert "2026-12-01 00:00 JST" in html and "移行期間中" in html
    entry = AuditEntry.get(AuditEntry.action == "migration_period_set")
    assert entry.actor_kind == "staff" and "2027-03-31 23:59 JST" in entry.new_value


@pytest.mark.parametrize("start,end,field,message", [
    ("2027-01-01T00:00", "2026-12-01T00:00", "end", "終了日時は開始日時より後"),
    ("tomorrow", "2027-03-31T23:59", "start", "2026-12-01 00:00 のような形式"),
    ("2026-12-01T00:00", "", "end", "日時を入力してください"),
    ("2026-13-45T00:00", "2027-03-31T23:59", "start", "2026-12-01 00:00 のような形式"),
])
def test_bad_period_settings_are_refused_next_to_the_field_and_nothing_is_saved(app, client, db, start, end,
                                                                                field, message):
    set_period()
    console_login(app, client, staff())
    token = csrf_token(client.get("/admin/settings").get_data(as_text=True))
    r = client.post("/admin/settings/migration-period",
                    data={"start": start, "end": end, "action": "save", "csrf_token": token})
    html = r.get_data(as_text=True)
    assert r.status_code == 400 and message in html
    # The message is in the error paragraph of that field (tied to it by aria-describedby).
    assert message in html.split(f'id="f-{field}-error"')[1].split("</p>")[0]
    assert MigrationPeriod.get_by_id(1).start_at == datetime.datetime(2026, 11, 30, 15, 0)
    assert not AuditEntry.select().where(AuditEntry.action == "migration_period_set").exists()


def test_operator_can_remove_the_period_which_then_behaves_as_after(app, client, db):
    set_period()
    console_login(app, client, staff())
    token = csrf_token(client.get("/admin/settings").get_data(as_text=True))
    r = client.post("/admin/settings/migration-period", data={"action": "clear", "csrf_token": token})
    assert r.status_code == 200 and "移行期間を削除しますか" in r.get_data(as_text=True)
    assert period.current() is not None  # asked first, nothing removed
    r = client.post("/admin/settings/migration-period",
                    data={"action": "clear", "confirmed": "1", "csrf_token": token})
    assert r.status_code == 303 and period.current() is None
    entry = AuditEntry.get(AuditEntry.action == "migration_period_cleared")
    assert entry.old_value.startswith("migration period")
    assert "提供は終了" in client.get("/legacy/").get_data(as_text=True)


def test_settings_are_for_the_operator_only(app, client, db):
    console_login(app, client, staff("helpdesk"))
    assert client.get("/admin/settings").status_code == 404
    parent = gen_contract()
    admin = gen_user(contract=parent, is_admin=True, first_login_done=True)
    c2 = app.test_client()
    console_login(app, c2, admin)
    assert c2.get("/admin/settings").status_code == 404
    assert app.test_client().get("/admin/settings").status_code == 302


# --- advance notices -------------------------------------------------------------------------------

def tree():
    parent = gen_contract(name="パートナーA")
    child = gen_contract(parent=parent, name="子契約みどり")
    admin = gen_user(contract=parent, is_admin=True, first_login_done=True)
    u1 = gen_user(contract=child, login_id="midori@x.jp_ecid1", legacy=True, legacy_login_id="midori@x.jp",
                  email="midori@example.jp")
    u2 = gen_user(contract=child, login_id="midori2", legacy=True, legacy_login_id="midori2")
    other_parent = gen_contract(name="パートナーB")
    outsider = gen_user(contract=gen_contract(parent=other_parent), login_id="outsider", legacy=True)
    return admin, child, u1, u2, outsider


def test_parent_admin_sends_advance_notices_to_own_children_with_date_and_new_login_id(app, client, db):
    set_period()
    admin, child, u1, u2, outsider = tree()
    with time_machine.travel(BEFORE_AT, tick=False):
        console_login(app, client, admin)
        html = client.get("/admin/notices").get_data(as_text=True)
        assert "midori@x.jp_ecid1" in html and "outsider" not in html and "未送信" in html
        # Another partner's child contract is not reachable by its id either.
        other = client.get(f"/admin/notices?contract={outsider.contract_id}").get_data(as_text=True)
        assert "outsider" not in other and "midori@x.jp_ecid1" in other
        r = client.post("/admin/notices/send", data={"user": [str(u1.id), str(outsider.id)],
                                                     "csrf_token": csrf_token(html)})
        assert r.status_code == 303
        mails = list(Mail.select())
        assert [m.recipient for m in mails] == ["midori@example.jp"]  # the outsider is out of scope
        m = mails[0]
        assert m.kind == "advance_notice" and "Smart Data Platform" in m.subject
        assert "2026-12-01 00:00 JST" in m.body_text and "midori@x.jp_ecid1" in m.body_text
        assert "http://localhost/sdpf/" in m.body_text
        html = client.get("/admin/notices").get_data(as_text=True)
        row = html.split(f'id="user-{u1.id}"')[1].split("</tr>")[0]
        assert "2026-11-28" in row and "送信待ち" in row
        row2 = html.split(f'id="user-{u2.id}"')[1].split("</tr>")[0]
        assert "未送信" in row2
    assert AuditEntry.select().where(AuditEntry.action == "advance_notice_sent").count() == 1


def test_a_whole_child_contract_can_be_notified_and_delivery_state_is_shown(app, client, db):
    set_period()
    admin, child, u1, u2, outsider = tree()
    with time_machine.travel(BEFORE_AT, tick=False):
        console_login(app, client, staff())
        html = client.get(f"/admin/notices?contract={outsider.contract_id}").get_data(as_text=True)
        assert "outsider" in html  # the operator sees every parent's children
        client.post("/admin/notices/send", data={"contract": str(child.id), "csrf_token": csrf_token(html)})
        assert sorted(m.user_id for m in Mail.select()) == sorted([u1.id, u2.id])
        Mail.update(status="sent").where(Mail.user == u1.id).execute()
        Mail.update(status="failed").where(Mail.user == u2.id).execute()
        html = client.get(f"/admin/notices?contract={child.id}").get_data(as_text=True)
        assert "配信済み" in html and "配信失敗" in html and "outsider" not in html


@pytest.mark.parametrize("when,sendable", [(BEFORE_AT, True), (DURING_AT, True), (AFTER_AT, False)])
def test_advance_notices_follow_the_phase(app, client, db, when, sendable):
    set_period()
    admin, child, u1, *_ = tree()
    with time_machine.travel(when, tick=False):
        console_login(app, client, admin)
        html = client.get("/admin/notices").get_data(as_text=True)
        r = client.post("/admin/notices/send", data={"user": str(u1.id), "csrf_token": csrf_token(html)},
                        follow_redirects=True)
    assert (Mail.select().count() == 1) is sendable
    if not sendable:
        assert "移行期間は終了しています" in r.get_data(as_text=True)


def test_without_a_period_no_notice_is_sent_and_the_page_says_why(app, client, db):
    admin, child, u1, *_ = tree()
    console_login(app, client, admin)
    html = client.get("/admin/notices").get_data(as_text=True)
    r = client.post("/admin/notices/send", data={"user": str(u1.id), "csrf_token": csrf_token(html)},
                    follow_redirects=True)
    assert Mail.select().count() == 0 and "先に移行期間を設定してください" in r.get_data(as_text=True)


def test_child_admins_and_helpdesk_cannot_send_advance_notices(app, client, db):
    set_period()
    admin, child, u1, *_ = tree()
    child_admin = gen_user(contract=child, is_admin=True, first_login_done=True)
    console_login(app, client, child_admin)
    assert client.get("/admin/notices").status_code == 404
    c2 = app.test_client()
    console_login(app, c2, staff("helpdesk"))
    assert c2.get("/admin/notices").status_code == 404
