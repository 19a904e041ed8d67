"""The legacy Login Portal through the three phases of the migration period, with a frozen clock."""
import datetime
import re

import bcrypt
import pytest
import time_machine
from werkzeug.security import generate_password_hash

from accounts import legacy, tokens
from accounts.models import AuditEntry, LegacyAccount, Mail, ResetToken, User
from tests.helpers import csrf_token, gen_contract, gen_user, links_in
from tests.legacy_helpers import (
    AFTER_AT,
    BEFORE_AT,
    DURING_AT,
    PASSWORD,
    gen_legacy,
    set_period,
)


def signin(client, login_id, password=PASSWORD, **kw):
    page = client.get("/legacy/")
    return client.post("/legacy/signin", data={"login_id": login_id, "password": password,
                                               "csrf_token": csrf_token(page.get_data(as_text=True))}, **kw)


def token_of(client, path="/legacy/"):
    return csrf_token(client.get(path).get_data(as_text=True))


# --- hashes -----------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda pw: legacy._argon2.hash(pw),
    lambda pw: bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=4)).decode(),
    lambda pw: generate_password_hash(pw, method="pbkdf2:sha256:1000"),
    lambda pw: generate_password_hash(pw, method="scrypt:1024:8:1"),
], ids=["argon2", "bcrypt", "werkzeug-pbkdf2", "werkzeug-scrypt"])
def test_each_legacy_hash_format_verifies_the_right_password_only(make):
    stored = make("Right-pass1")
    assert legacy.verify_legacy_hash(stored, "Right-pass1")
    assert not legacy.verify_legacy_hash(stored, "Wrong-pass1")


@pytest.mark.parametrize("stored", [None, "", "plain-text-password", "md5$abc$def", "$1$salt$hash"])
def test_missing_or_unknown_hash_never_signs_in(stored):
    assert not legacy.verify_legacy_hash(stored, "plain-text-password")


# --- before -----------------------------------------------------------------------------------

def test_before_the_period_legacy_sign_in_works_and_says_when_the_new_portal_opens(client, db):
    set_period()
    acc = gen_legacy(login_id="before@example.jp")
    with time_machine.travel(BEFORE_AT, tick=False):
        page = client.get("/legacy/").get_data(as_text=True)
        assert "2026-12-01 00:00 JST" in page and 'name="password"' in page
        r = signin(client, "BEFORE@example.jp")
        assert r.status_code == 303 and r.headers["Location"] == "/legacy/"
        home = client.get("/legacy/").get_data(as_text=True)
        assert "before@example.jp" in home and "2026-12-01 00:00 JST" in home
        assert "identity-dialog" not in home  # no pop-up before the period
        assert client.get("/legacy/identity").status_code == 303
        with client.session_transaction() as s:  # (the signed cookie is dated by the frozen clock)
            assert s["legacy_account_id"] == acc.id and "_user_id" not in s


def test_new_portal_landing_pages_say_when_they_open_before_and_nothing_after(client, db):
    set_period()
    with time_machine.travel(BEFORE_AT, tick=False):
        for path in ("/business/", "/sdpf/"):  # (the SDPF Portal opens on its sign-in page)
            html = client.get(path, follow_redirects=True).get_data(as_text=True)
            assert "2026-12-01 00:00 JST" in html and "ログインポータル" in html
        assert "2026-12-01" not in client.get("/").get_data(as_text=True)
    with time_machine.travel(DURING_AT, tick=False):
        assert "2027-03-31 23:59 JST" in client.get("/business/").get_data(as_text=True)
    with time_machine.travel(AFTER_AT, tick=False):
        assert "2027-03-31" not in client.get("/business/").get_data(as_text=True)


def test_wrong_password_unknown_id_and_missing_hash_get_the_same_answer(client, db):
    set_period()
    gen_legacy(login_id="known@example.jp")
    gen_legacy(login_id="nohash@example.jp", password=None)
    with time_machine.travel(DURING_AT, tick=False):
        answers = []
        for login_id, pw in (("known@example.jp", "Wrong-pass1"), ("unknown@example.jp", PASSWORD),
                             ("nohash@example.jp", PASSWORD)):
            r = signin(client, login_id, pw)
            html = r.get_data(as_text=True)
            assert r.status_code == 200 and "ログインIDまたはパスワードが正しくありません" in html
            answers.append(re.sub(r'value="[^"]*"', "", html))
        assert answers[0] == answers[1] == answers[2]
        with client.session_transaction() as s:
            assert "legacy_account_id" not in s
    assert AuditEntry.select().where(AuditEntry.action == "legacy_signin_failed").count() == 3


def test_repeated_failures_for_one_login_id_are_rate_limited(client, db):
    set_period()
    gen_legacy(login_id="target@example.jp")
    with time_machine.travel(DURING_AT, tick=False):
        codes = [signin(client, "target@example.jp", "Wrong-pass1").status_code for _ in range(11)]
        assert codes[:10] == [200] * 10 and codes[10] == 429
        assert signin(client, "target@example.jp").status_code == 429  # even the right password


# --- during: the pop-up ----------------------------------------------------------------------

def test_same_legacy_id_under_two_contracts_tries_every_hash_and_lets_the_user_pick(client, db):
    set_period()
    parent = gen_contract()
    a = gen_legacy(login_id="shared@example.jp", contract=gen_contract(parent=parent, name="子契約A"))
    b_user = gen_user(contract=gen_contract(parent=parent, name="子契約B"), login_id="shared@example.jp_b",
                      legacy=True, legacy_login_id="shared@example.jp")
    b = gen_legacy(user=b_user)
    other = gen_user(contract=gen_contract(parent=parent, name="子契約C"), login_id="shared2", legacy=True,
                     legacy_login_id="shared@example.jp")
    gen_legacy(user=other, login_id="shared@example.jp", password="Other-pass1")
    with time_machine.travel(DURING_AT, tick=False):
        r = signin(client, "shared@example.jp")
        assert r.headers["Location"] == "/legacy/choose"
        page = client.get("/legacy/choose").get_data(as_text=True)
        assert "子契約A" in page and "子契約B" in page and "子契約C" not in page
        r = client.post("/legacy/choose", data={"account": str(other.id + 999),
                                                "csrf_token": csrf_token(page)})
        assert r.status_code == 400
        r = client.post("/legacy/choose", data={"account": str(b.id), "csrf_token": csrf_token(page)})
        assert r.status_code == 303
        with client.session_transaction() as s:
            assert s["legacy_account_id"] == b.id
        # The other password signs in straight to contract C.
        client.post("/legacy/signout", data={"csrf_token": token_of(client)})
        assert signin(client, "shared@example.jp", "Other-pass1").headers["Location"] == "/legacy/"
    assert a.id != b.id


def test_during_the_period_the_popup_shows_business_identity_with_changes_marked(client, db):
    set_period()
    user = gen_user(contract=gen_contract(), login_id="sample@ntt.com_ecid9000000001", legacy=True,
                    legacy_login_id="sample@ntt.com", name="佐藤\u3000一郎", phone="0312345678",
                    legacy_phone="03-ｱｲｳ", email="sample@example.jp")
    gen_legacy(user=user)
    with time_machine.travel(DURING_AT, tick=False):
        signin(client, "sample@ntt.com")
        html = client.get("/legacy/").get_data(as_text=True)
    assert '<dialog id="identity-dialog"' in html and 'data-autoopen="1"' in html
    assert "sample@example.jp" in html and "sample@ntt.com_ecid9000000001" in html
    assert html.count("移行により変更") == 2  # login ID and phone
    assert "03-ｱｲｳ" in html and "佐藤\u3000一郎" in html and "0312345678" in html
    assert 'src="/static/legacy.js"' in html


def test_sdpf_popup_shows_only_email_and_login_id(client, db):
    set_period()
    user = gen_user(contract=gen_contract(parent=gen_contract()), login_id="child-user", legacy=True,
                    legacy_login_id="child-user", name="田中 三郎", phone="09011112222")
    gen_legacy(user=user)
    with time_machine.travel(DURING_AT, tick=False):
        signin(client, "child-user")
        html = client.get("/legacy/identity").get_data(as_text=True)
    assert user.email in html and "child-user" in html
    assert "田中 三郎" not in html and "09011112222" not in html and "移行により変更" not in html


def test_confirming_as_is_mails_the_first_login_link_and_marks_the_account(client, db):
    set_period()
    acc = gen_legacy(login_id="confirm@example.jp", email="confirm@example.jp")
    with time_machine.travel(DURING_AT, tick=False):
        signin(client, "confirm@example.jp")
        r = client.post("/legacy/identity", data={"csrf_token": token_of(client)})
        assert r.status_code == 303 and r.headers["Location"] == "/legacy/identity/sent"
        sent = client.get(r.headers["Location"]).get_data(as_text=True)
        assert "c****@e****.jp" in sent and "confirm@example.jp" not in sent
        home = client.get("/legacy/").get_data(as_text=True)
        assert 'data-autoopen="0"' in home  # confirmed: the pop-up no longer opens by itself
    mail = Mail.get()
    assert mail.recipient == "confirm@example.jp" and mail.subject.startswith("NTTコミュニケーションズ")
    assert LegacyAccount.get_by_id(acc.id).confirmed_at is not None
    link = [u for u in links_in(mail.body_text) if "/password/reset/" in u][0]
    assert tokens.check(link.rsplit("/", 1)[1], tokens.RESET).problem is None
    assert AuditEntry.select().where(AuditEntry.action == "first_login_link_sent").count() == 1


def test_correcting_the_email_updates_the_user_voids_old_links_and_mails_the_new_address(client, db):
    set_period()
    acc = gen_legacy(login_id="fix@example.jp", email="old@example.jp")
    user = acc.user
    old_raw = tokens.issue(user, tokens.RESET, 30)
    with time_machine.travel(DURING_AT, tick=False):
        signin(client, "fix@example.jp")
        edit = client.get("/legacy/identity?edit=1", headers={"HX-Request": "true"})
        frag = edit.get_data(as_text=True)
        assert frag.lstrip().startswith("{#") is False and 'id="f-email"' in frag and "<html" not in frag
        r = client.post("/legacy/identity", headers={"HX-Request": "true"},
                        data={"email": "New@Example.jp", "login_id": "fix@example.jp",
                              "csrf_token": token_of(client)})
        assert r.status_code == 200 and "N****@E****.jp" in r.get_data(as_text=True)
    user = User.get_by_id(user.id)
    assert user.email == "New@Example.jp" and user.email_key == "new@example.jp"
    assert tokens.check(old_raw, tokens.RESET).problem == "voided"
    reset = Mail.get(Mail.kind == "reset")
    assert reset.recipient == "New@Example.jp"
    notice = Mail.get(Mail.kind == "email_changed")  # the old address hears of it (stolen password)
    assert notice.recipient == "old@example.jp" and "N****@E****.jp" in notice.body_text
    assert "New@Example.jp" not in notice.body_text
    entry = AuditEntry.get(AuditEntry.action == "legacy_popup_corrected")
    assert (entry.field, entry.old_value, entry.new_value) == ("email", "old@example.jp", "New@Example.jp")
    live = ResetToken.select().where(ResetToken.used_at.is_null() & ResetToken.voided_at.is_null())
    assert live.count() == 1


@pytest.mark.parametrize("email,login_id,message", [
    ("not-an-address", "mine", "name@example.jp"),
    ("", "mine", "メールアドレスを入力してください"),
    ("ok@example.jp", "TAKEN-id", "すでに使われています"),
    ("ok@example.jp", "has space", "半角の英数字"),
])
def test_bad_corrections_are_refused_next_to_the_field_and_nothing_is_written(client, db, email, login_id,
                                                                               message):
    set_period()
    contract = gen_contract()
    gen_user(contract=contract, login_id="taken-id")
    acc = gen_legacy(login_id="mine", contract=contract)
    with time_machine.travel(DURING_AT, tick=False):
        signin(client, "mine")
        r = client.post("/legacy/identity", data={"email": email, "login_id": login_id,
                                                  "csrf_token": token_of(client)})
    html = r.get_data(as_text=True)
    assert r.status_code == 400 and message in html and 'aria-invalid="true"' in html
    assert Mail.select().count() == 0 and LegacyAccount.get_by_id(acc.id).confirmed_at is None
    assert User.get_by_id(acc.user_id).login_id == "mine"


def test_correcting_the_login_id_keeps_it_unique_and_is_audited(client, db):
    set_period()
    acc = gen_legacy(login_id="rename-me")
    with time_machine.travel(DURING_AT, tick=False):
        signin(client, "rename-me")
        r = client.post("/legacy/identity", data={"email": acc.user.email, "login_id": "Renamed",
                                                  "csrf_token": token_of(client)})
    assert r.status_code == 303
    user = User.get_by_id(acc.user_id)
    assert (user.login_id, user.login_id_key) == ("Renamed", "renamed")
    assert "Renamed" in Mail.get().body_text
    assert AuditEntry.get(AuditEntry.field == "login_id").new_value == "Renamed"


# --- after ------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/legacy/identity", "/legacy/tickets", "/legacy/choose",
                                  "/legacy/identity/sent", "/legacy/users/child-user/home", "/legacy/x.html"])
def test_after_the_period_every_legacy_address_redirects_to_the_end_of_service_page(client, db, path):
    set_period()
    with time_machine.travel(AFTER_AT, tick=False):
        r = client.get(path)
        assert r.status_code in (302, 303) and r.headers["Location"] == "/legacy/"


def test_after_the_period_the_end_of_service_page_offers_the_two_ways_on(client, db):
    set_period()
    with time_machine.travel(AFTER_AT, tick=False):
        html = client.get("/legacy/").get_data(as_text=True)
    assert "ビジネスポータルをご利用のお客さま（直販またはパートナーのお客さま）" in html
    assert "Smart Data Platform ポータルをご利用のお客さま（パートナーとご契約のお客さま）" in html
    assert 'href="/business/"' in html and 'href="/sdpf/"' in html
    assert 'name="password"' not in html


def test_no_period_set_behaves_as_after(client, db):
    assert "ログインポータルの提供は終了しました" in client.get("/legacy/").get_data(as_text=True)


def test_after_the_period_legacy_sign_in_is_closed_even_for_a_signed_in_session(client, db):
    set_period()
    gen_legacy(login_id="late@example.jp")
    # Signed in minutes before the end (a session idle for longer would have ended anyway).
    with time_machine.travel(AFTER_AT - datetime.timedelta(minutes=10), tick=False):
        signin(client, "late@example.jp")
        token = token_of(client)
    with time_machine.travel(AFTER_AT, tick=False):
        r = client.post("/legacy/signin", data={"login_id": "late@example.jp", "password": PASSWORD,
                                                "csrf_token": token})
        assert r.status_code == 303 and r.headers["Location"] == "/legacy/"
        assert "提供は終了" in client.get("/legacy/").get_data(as_text=True)
        r = client.post("/legacy/identity", data={"csrf_token": token})
        assert r.headers["Location"] == "/legacy/"
        with client.session_transaction() as s:
            assert "legacy_account_id" not in s
    assert Mail.select().count() == 0


def test_before_the_period_unknown_legacy_addresses_do_not_exist(client, db):
    set_period()
    with time_machine.travel(BEFORE_AT, tick=False):
        assert client.get("/legacy/no-such-page").status_code == 404


def test_sign_in_renews_the_session_and_never_signs_in_to_the_new_portals(client, db):
    set_period()
    acc = gen_legacy(login_id="renew@example.jp")
    with time_machine.travel(DURING_AT, tick=False):
        with client.session_transaction() as s:
            s["_user_id"] = f"u:{acc.user_id}"
            s["leftover"] = "x"
        signin(client, "renew@example.jp")
        with client.session_transaction() as s:
            # no "_user_id" (not a new-portal session), no leftover; a fresh CSRF secret
            assert {k: v for k, v in s.items() if k != "csrf_token"} == {"legacy_account_id": acc.id}


def test_unknown_login_id_spends_a_hash_like_a_wrong_password(db, monkeypatch):
    calls = []
    from accounts import passwords

    monkeypatch.setattr(passwords.Hasher, "burn", lambda self, pw="": calls.append(pw))
    assert not legacy.authenticate("nobody@example.jp", "x").ok
    assert calls == ["x"]


def test_a_legacy_account_that_was_not_migrated_gets_a_clear_message(client, db):
    set_period()
    contract = gen_contract()
    LegacyAccount.create(login_id="orphan", login_id_key="orphan", contract_ecid=contract.ecid,
                         email="orphan@example.jp", password_hash=legacy._argon2.hash(PASSWORD))
    with time_machine.travel(DURING_AT, tick=False):
        signin(client, "orphan")
        html = client.get("/legacy/identity").get_data(as_text=True)
        assert "移行されていません" in html
        r = client.post("/legacy/identity", data={"csrf_token": token_of(client)})
        assert r.status_code == 303
    assert Mail.select().count() == 0


def test_end_of_service_page_in_english(client, db):
    html = client.get("/legacy/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "The Login Portal has closed" in html
    assert "Customers using the Business Portal (direct or partner customers)" in html
