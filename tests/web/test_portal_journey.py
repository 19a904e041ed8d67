"""The whole first login on both portals through the test client, and later sign-ins."""
import re

import pytest

from accounts.models import AuditEntry, Contract, Service, User
from tests.helpers import gen_contract, gen_user
from tests.web.portal_journey import Portal, ensure_terms, last_mail, otp_from_mail

PASSWORD = "Abcdef1!x"


@pytest.fixture
def app(make_app):
    return make_app(RESET_ANSWER_SECONDS=0.01)


def test_business_first_login_with_mail_otp_reaches_the_dashboard(client, db):
    ensure_terms()
    contract = gen_contract()
    Service.create(contract=contract, name="Smart Data Platform", status="お申し込み済み")
    user = gen_user(contract, login_id="sample@ntt.com_ecid1", email="Sample@Example.jp",
                    name="佐藤\u3000一郎", phone="0312345678", legacy=True)
    p = Portal(client, "business")
    landing = p.get("/").get_data(as_text=True)
    assert "ログインID/パスワードでログイン" in landing
    assert "パスワード再設定はこちら" in p.get("/signin").get_data(as_text=True)
    r = p.request_reset(login_id="SAMPLE@ntt.com_ecid1", email="sample@example.jp", name="佐藤\u3000一郎",
                        phone="03-1234-5678")
    assert r.status_code == 200 and "メール" in r.get_data(as_text=True)
    mail = last_mail("reset")
    assert mail.subject == "NTTコミュニケーションズ ビジネスポータル パスワード再設定メール"
    assert "sample@ntt.com_ecid1" in mail.body_text
    r = p.set_password(p.reset_link(user), "Abc¥def12")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "サービスへ戻る" in html
    r = p.sign_in("sample@ntt.com_ecid1", "Abc\\def12")
    assert r.status_code == 303 and r.headers["Location"].endswith("/business/signin/method")
    choice = p.follow(r).get_data(as_text=True)
    assert "MailOTP" in choice and "TOTP" in choice and "二段階認証" in choice
    r = p.post("/signin/method", {"method": "mail"})
    r = p.follow(r)
    html = r.get_data(as_text=True)
    assert "S****@E****.jp" in html and ">送信<" in html
    otp = last_mail("otp")
    assert otp.subject == "NTTコミュニケーションズ ビジネスポータル メールワンタイムパスワード"
    r = p.post("/signin/mail-otp/setup", {"code": otp_from_mail(otp)})
    assert r.headers["Location"].endswith("/business/signin/terms")
    html = p.follow(r).get_data(as_text=True)
    assert "同意を承認する" in html and "カスタマポータル規約" in html
    r = p.post("/signin/terms", {"version": "1"})
    assert r.headers["Location"].endswith("/business/dashboard")
    html = p.follow(r).get_data(as_text=True)
    assert "Smart Data Platform" in html and "お申し込み済み" in html
    fresh = User.get_by_id(user.id)
    assert fresh.first_login_done_at is not None and fresh.twostep_method == "mail"
    assert Contract.get_by_id(contract.id).users_first_login_done == 1
    actions = {a.action for a in AuditEntry.select().where(AuditEntry.target_user == user)}
    assert {"reset_requested", "password_set_by_reset", "signin_password_ok", "twostep_method_chosen",
            "otp_sent", "otp_ok",
            "twostep_method_set", "terms_accepted", "first_login_done", "signin_completed"} <= actions


def test_sdpf_first_login_with_totp_and_backup_codes(client, db):
    ensure_terms()
    parent = gen_contract()
    child = gen_contract(parent=parent)
    Service.create(contract=child, name="Smart Data Platform", status="お申し込み済み")
    user = gen_user(child, login_id="aoba-user1", email="aoba1@example.jp", legacy=True)
    p = Portal(client, "sdpf")
    r = p.get("/")
    assert r.status_code == 302 and r.headers["Location"].endswith("/sdpf/signin")
    assert "パスワードの再設定はこちら" in p.get("/signin").get_data(as_text=True)
    form = p.get("/password/reset").get_data(as_text=True)
    assert 'name="phone"' not in form and 'name="name"' not in form
    p.request_reset(login_id="AOBA-user1", email="AOBA1@example.jp")
    assert last_mail("reset").subject == "【Smart Data Platform】パスワード再設定"
    p.set_password(p.reset_link(user), "Abcdef12#")
    r = p.sign_in("aoba-user1", "Abcdef12#")
    p.follow(r)
    r = p.post("/signin/method", {"method": "totp"})
    html = p.follow(r).get_data(as_text=True)
    assert "<svg" in html and ">登録<" in html
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', html).group(1)
    r = p.post("/signin/totp/setup", {"code": p.totp_code(secret)})
    html = r.get_data(as_text=True)
    codes = re.findall(r"<li>([a-z2-9]{5}-[a-z2-9]{5})</li>", html)
    assert len(codes) == 10 and ">戻る<" in html
    r = p.get("/signin/continue")
    assert r.headers["Location"].endswith("/sdpf/signin/terms")
    p.follow(r)
    r = p.post("/signin/terms", {"version": "1"})
    assert "お申し込み済み" in p.follow(r).get_data(as_text=True)
    fresh = User.get_by_id(user.id)
    assert fresh.twostep_method == "totp" and fresh.first_login_done_at
    assert Contract.get_by_id(child.id).users_first_login_done == 1


def _signed_up(client, portal="business", method="mail", **kw):
    """A user whose first login is done, signed out, with a known password."""
    ensure_terms()
    contract = gen_contract() if portal == "business" else gen_contract(parent=gen_contract())
    from accounts.models import TermsAcceptance, TermsVersion

    user = gen_user(contract, password=PASSWORD, first_login_done=True, twostep_method=method, **kw)
    TermsAcceptance.create(user=user, terms=TermsVersion.current())
    return user, Portal(client, portal)


def test_later_sign_in_with_mail_otp_and_remember_browser_skips_the_second_step(client, db):
    user, p = _signed_up(client)
    r = p.sign_in(user.login_id, PASSWORD)
    assert r.headers["Location"].endswith("/business/signin/mail-otp")
    p.follow(r)
    r = p.post("/signin/mail-otp", {"code": otp_from_mail(last_mail("otp")), "remember": "1"})
    assert r.headers["Location"].endswith("/business/dashboard")
    assert "trusted_browser_business=" in r.headers["Set-Cookie"]
    p.signout()
    r = p.sign_in(user.login_id, PASSWORD)
    assert r.headers["Location"].endswith("/business/dashboard")
    # A password change elsewhere (admin reset path uses the same function) clears the trust.
    from accounts import twostep

    twostep.clear_trusted_browsers(user)
    p.signout()
    r = p.sign_in(user.login_id, PASSWORD)
    assert r.headers["Location"].endswith("/business/signin/mail-otp")


def test_later_sign_in_with_a_backup_code_once(client, db):
    from accounts import twostep

    user, p = _signed_up(client, method="totp", totp_secret="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    codes = twostep.new_backup_codes(user)
    p.sign_in(user.login_id, PASSWORD)
    p.get("/signin/backup-code")
    r = p.post("/signin/backup-code", {"code": codes[0].upper()})
    assert r.headers["Location"].endswith("/business/dashboard")
    p.signout()
    p.sign_in(user.login_id, PASSWORD)
    p.get("/signin/backup-code")
    r = p.post("/signin/backup-code", {"code": codes[0]})
    assert r.status_code == 422 and "既に使用" in r.get_data(as_text=True)


def test_totp_code_is_refused_a_second_time(client, db):
    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    user, p = _signed_up(client, portal="sdpf", method="totp", totp_secret=secret)
    r = p.sign_in(user.login_id, PASSWORD)
    assert r.headers["Location"].endswith("/sdpf/signin/totp")
    p.follow(r)
    code = p.totp_code(secret)
    assert p.post("/signin/totp", {"code": code}).headers["Location"].endswith("/sdpf/dashboard")
    p.signout()
    p.sign_in(user.login_id, PASSWORD)
    p.get("/signin/totp")
    r = p.post("/signin/totp", {"code": code})
    assert r.status_code == 422 and "既に使用" in r.get_data(as_text=True)


def test_new_terms_version_is_shown_at_the_next_sign_in(client, db):
    user, p = _signed_up(client, method="totp", totp_secret="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    ensure_terms(2)
    p.sign_in(user.login_id, PASSWORD)
    r = p.post("/signin/totp", {"code": p.totp_code("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")})
    assert r.headers["Location"].endswith("/business/signin/terms")
    assert "第2版" in p.follow(r).get_data(as_text=True)
    r = p.post("/signin/terms", {"version": "2"})
    assert r.headers["Location"].endswith("/business/dashboard")


def test_next_is_followed_only_when_it_is_a_local_path(client, db):
    user, p = _signed_up(client, method="totp", totp_secret="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
                         is_admin=True)
    p.sign_in(user.login_id, PASSWORD, next_url="/admin/")
    r = p.post("/signin/totp", {"code": p.totp_code("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")})
    assert r.headers["Location"] == "/admin/"
    p.signout()
    p.sign_in(user.login_id, PASSWORD, next_url="https://evil.example/")
    r = p.post("/signin/totp", {"code": p.totp_code("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", 30)})
    assert r.headers["Location"].endswith("/business/dashboard")


def test_session_is_renewed_and_pending_steps_do_not_sign_in(client, db):
    user, p = _signed_up(client)
    p.sign_in(user.login_id, PASSWORD)
    # Half-way through (password only), the dashboard is still closed.
    r = p.get("/dashboard")
    assert r.status_code == 302 and "/business/signin" in r.headers["Location"]
    with client.session_transaction() as s:
        assert "_user_id" not in s and s["pending_signin"]["uid"] == user.id


def test_dashboard_links_contract_admins_to_the_console(client, db):
    user, p = _signed_up(client, method="totp", totp_secret="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
                         is_admin=True)
    p.sign_in(user.login_id, PASSWORD)
    r = p.post("/signin/totp", {"code": p.totp_code("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")})
    assert 'href="/admin/"' in p.follow(r).get_data(as_text=True)


def test_session_is_renewed_at_the_second_step(client, db):
    user, p = _signed_up(client, method="totp", totp_secret="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    p.sign_in(user.login_id, PASSWORD)
    with client.session_transaction() as s:
        before = s["csrf_token"]
    ensure_terms(2)  # keeps the sign-in pending after the second step
    p.post("/signin/totp", {"code": p.totp_code("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")})
    with client.session_transaction() as s:
        assert s["csrf_token"] != before and s["pending_signin"]["second"] is True
