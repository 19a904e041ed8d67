"""Tickets: filed from the portal a user belongs to; during the period the guide's rule applies."""
import pytest
import time_machine

from accounts.models import AuditEntry, Ticket
from tests.helpers import csrf_token, gen_contract, gen_user
from tests.legacy_helpers import (
    AFTER_AT,
    BEFORE_AT,
    DURING_AT,
    PASSWORD,
    gen_legacy,
    set_period,
)
from tests.web.test_period_console import console_login


def file_ticket(client, path, subject="請求書について", body="請求書の送付先を変更したい。"):
    token = csrf_token(client.get(path).get_data(as_text=True))
    return client.post(path, data={"subject": subject, "body": body, "csrf_token": token})


@pytest.mark.parametrize("when", [BEFORE_AT, AFTER_AT])
def test_outside_the_period_users_file_tickets_from_their_own_portal(app, client, db, when):
    set_period()
    migrated = gen_user(contract=gen_contract(), legacy=True, first_login_done=True)
    with time_machine.travel(when, tick=False):
        console_login(app, client, migrated)
        r = file_ticket(client, "/business/tickets")
        assert r.status_code == 303 and r.headers["Location"] == "/business/tickets?filed=1"
        html = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "チケットを起票しました" in html and "請求書について" in html
    t = Ticket.get()
    assert (t.user_id, t.filed_from) == (migrated.id, "business")
    assert AuditEntry.get(AuditEntry.action == "ticket_filed").target_user_id == migrated.id


def test_during_the_period_a_migrated_business_user_is_sent_to_the_login_portal(app, client, db):
    set_period()
    migrated = gen_user(contract=gen_contract(), legacy=True, first_login_done=True)
    with time_machine.travel(DURING_AT, tick=False):
        console_login(app, client, migrated)
        page = client.get("/business/tickets")
        html = page.get_data(as_text=True)
        assert page.status_code == 200 and 'href="/legacy/tickets"' in html
        assert "ログインポータルで作成されたユーザー" in html and 'name="subject"' not in html
        r = client.post("/business/tickets",
                        data={"subject": "s", "body": "b", "csrf_token": csrf_token(html)})
        assert r.status_code == 403
    assert Ticket.select().count() == 0


def test_during_the_period_a_native_business_user_files_from_the_business_portal(app, client, db):
    set_period()
    native = gen_user(contract=gen_contract(), first_login_done=True)
    with time_machine.travel(DURING_AT, tick=False):
        console_login(app, client, native)
        assert file_ticket(client, "/business/tickets").status_code == 303
    assert Ticket.get().filed_from == "business"


def test_during_the_period_sdpf_users_file_from_the_sdpf_portal(app, client, db):
    set_period()
    child_user = gen_user(contract=gen_contract(parent=gen_contract()), legacy=True, first_login_done=True)
    with time_machine.travel(DURING_AT, tick=False):
        console_login(app, client, child_user)
        assert file_ticket(client, "/sdpf/tickets").status_code == 303
    assert Ticket.get().filed_from == "sdpf"


def test_during_the_period_a_legacy_sign_in_files_from_the_login_portal_and_sees_it_in_both(app, client, db):
    set_period()
    acc = gen_legacy(login_id="ticket@example.jp")
    with time_machine.travel(DURING_AT, tick=False):
        page = client.get("/legacy/")
        client.post("/legacy/signin", data={"login_id": "ticket@example.jp", "password": PASSWORD,
                                            "csrf_token": csrf_token(page.get_data(as_text=True))})
        r = file_ticket(client, "/legacy/tickets")
        assert r.status_code == 303
        assert "請求書について" in client.get("/legacy/tickets").get_data(as_text=True)
    t = Ticket.get()
    assert (t.filed_from, t.legacy_account_id, t.user_id) == ("legacy", acc.id, acc.user_id)


@pytest.mark.parametrize("subject,body,message", [
    ("", "本文", "件名を入力してください"),
    ("件名", "", "お問合せ内容を入力してください"),
    ("x" * 201, "本文", "200文字以内"),
])
def test_bad_tickets_are_refused_next_to_the_field(app, client, db, subject, body, message):
    native = gen_user(contract=gen_contract(), first_login_done=True)
    console_login(app, client, native)
    r = file_ticket(client, "/business/tickets", subject=subject, body=body)
    assert r.status_code == 400 and message in r.get_data(as_text=True)
    assert Ticket.select().count() == 0


def test_after_the_period_the_legacy_ticket_page_redirects_to_the_end_of_service_page(client, db):
    set_period()
    with time_machine.travel(AFTER_AT, tick=False):
        token = csrf_token(client.get("/legacy/").get_data(as_text=True))
        r = client.post("/legacy/tickets", data={"subject": "s", "body": "b", "csrf_token": token})
    assert r.status_code in (302, 303) and r.headers["Location"] == "/legacy/"
    assert Ticket.select().count() == 0


def test_a_user_sees_only_their_own_tickets(app, client, db):
    a = gen_user(contract=gen_contract(), first_login_done=True)
    b = gen_user(contract=gen_contract(), first_login_done=True)
    Ticket.create(user=b, filed_from="business", subject="他人のチケット", body="x")
    console_login(app, client, a)
    assert "他人のチケット" not in client.get("/business/tickets").get_data(as_text=True)
