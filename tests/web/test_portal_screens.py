"""Every portal screen in both languages, and every bad input answered clearly (never a 500)."""
import datetime
import re

import pytest

from accounts import tokens, twostep
from accounts.clock import utcnow
from accounts.db import database
from accounts.models import AuditEntry, Mail, MigrationPeriod, ResetToken, TrustedBrowser, User
from tests.helpers import Statements, csrf_token, gen_contract, gen_user
from tests.web.portal_journey import Portal, ensure_terms, last_mail, otp_from_mail

PASSWORD = "Abcdef1!x"
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


@pytest.fixture
def app(make_app):
    return make_app(RESET_ANSWER_SECONDS=0.01)


def _other_app(make_app, **config):
    """An app with other settings; the first app's connection is closed before re-initialising."""
    if not database.is_closed():
        database.close()
    application = make_app(RESET_ANSWER_SECONDS=0.01, **config)
    database.connect(reuse_if_open=True)
    return application


def _user(portal="business", **kw):
    contract = gen_contract() if portal == "business" else gen_contract(parent=gen_contract())
    return gen_user(contract, **kw)


def _signed_in(client, portal="business", **kw):
    from accounts.models import TermsAcceptance, TermsVersion

    ensure_terms()
    user = _user(portal, password=PASSWORD, first_login_done=True, twostep_method="totp",
                 totp_secret=SECRET, **kw)
    TermsAcceptance.create(user=user, terms=TermsVersion.current())
    p = Portal(client, portal)
    p.sign_in(user.login_id, PASSWORD)
    r = p.post("/signin/totp", {"code": p.totp_code(SECRET)})
    assert r.headers["Location"].endswith(f"/{portal}/dashboard")
    return user, p


# --- both languages --------------------------------------------------------------------------

SCREENS = [
    ("business", "/business/", "ログインID/パスワードでログイン", "Sign in with login ID and password"),
    ("business", "/business/signin", "パスワード再設定はこちら", "Reset your password here"),
    ("sdpf", "/sdpf/signin", "パスワードの再設定はこちら", "Reset the password here"),
    ("business", "/business/password/reset", "全角/半角スペースを区別", "full-width and half-width spaces"),
    ("sdpf", "/sdpf/password/reset", "子契約の管理者", "child contract's administrator"),
    ("business", "/business/password/ask-admin", "管理者に確認を依頼する", "Ask my administrator"),
]


@pytest.mark.parametrize("lang", ["ja", "en"])
@pytest.mark.parametrize("portal,path,ja,en", SCREENS)
def test_public_screens_in_both_languages(client, db, lang, portal, path, ja, en):
    r = client.get(path, headers={"Accept-Language": lang})
    assert r.status_code == 200
    assert (ja if lang == "ja" else en) in r.get_data(as_text=True)


@pytest.mark.parametrize("lang,words", [
    ("ja", ["二段階認証の選択", "メールOTP認証", "TOTP設定", "カスタマポータル規約", "ダッシュボード",
            "プロフィール"]),
    ("en", ["Choose the two-step verification method", "Mail OTP verification", "TOTP set-up",
            "Customer Portal Terms", "Dashboard", "Profile"]),
])
def test_sign_in_steps_in_both_languages(client, db, lang, words):
    ensure_terms()
    user = _user(password=PASSWORD)
    client.set_cookie("lang", lang)
    p = Portal(client, "business")
    p.sign_in(user.login_id, PASSWORD)
    seen = [p.get("/signin/method").get_data(as_text=True)]
    p.post("/signin/method", {"method": "mail"})
    seen.append(p.landed[1].get_data(as_text=True))
    p.get("/signin/method")
    p.post("/signin/method", {"method": "totp"})
    seen.append(p.landed[1].get_data(as_text=True))
    p.get("/signin/method")
    p.post("/signin/method", {"method": "mail"})
    r = p.post("/signin/mail-otp/setup", {"code": otp_from_mail(last_mail("otp"))})
    seen.append(p.landed[1].get_data(as_text=True))
    p.post("/signin/terms", {"version": "1"})
    seen.append(p.landed[1].get_data(as_text=True))
    seen.append(p.get("/profile").get_data(as_text=True))
    for word, html in zip(words, seen, strict=True):
        assert word in html, word
    assert r.status_code == 303


# --- sign-in -------------------------------------------------------------------------------

@pytest.mark.parametrize("login_id,password,field,message", [
    ("", PASSWORD, "login_id", "ログインIDを入力してください"),
    ("x" * 256, PASSWORD, "login_id", "ログインIDが長すぎます"),
    ("someone", "", "password", "パスワードを入力してください"),
    ("someone", "x" * 300, "password", "パスワードが長すぎます"),
])
def test_sign_in_bad_input_is_answered_next_to_the_field(client, db, login_id, password, field, message):
    p = Portal(client, "business")
    r = p.sign_in(login_id, password)
    html = r.get_data(as_text=True)
    assert r.status_code == 422 and message in html and f'id="f-{field}" ' in html


def test_unknown_wrong_and_locked_get_the_same_message(make_app, db):
    app = _other_app(make_app, LOCKOUT_THRESHOLD=3)
    client = app.test_client()
    user = _user(password=PASSWORD)
    p = Portal(client, "business")
    answers = []
    for login_id, password in [("nobody", PASSWORD), (user.login_id, "Wrong-pass1"), (user.login_id, "x"),
                               (user.login_id, "y"), (user.login_id, PASSWORD)]:
        r = p.sign_in(login_id, password)
        assert r.status_code == 401
        answers.append(re.search(r'id="signin-error">([^<]+)<', r.get_data(as_text=True)).group(1))
    assert len(set(answers)) == 1 and "ロック" in answers[0]
    assert User.get_by_id(user.id).is_locked()


def test_sign_in_is_rate_limited_per_account(client, db):
    p = Portal(client, "business")
    codes = [p.sign_in("victim", f"Wrong-pass{i}").status_code for i in range(11)]
    assert codes[:10] == [401] * 10 and codes[10] == 429


def test_steps_without_a_pending_sign_in_go_back_to_sign_in(client, db):
    p = Portal(client, "business")
    for path in ("/signin/method", "/signin/mail-otp", "/signin/totp", "/signin/totp/setup",
                 "/signin/backup-code", "/signin/terms", "/signin/continue"):
        r = p.get(path)
        assert r.status_code == 303 and r.headers["Location"].endswith("/business/signin"), path
    assert p.get("/dashboard").status_code == 302


def test_pending_sign_in_of_one_portal_does_not_open_the_other(client, db):
    user = _user(password=PASSWORD)
    p = Portal(client, "business")
    p.sign_in(user.login_id, PASSWORD)
    r = client.get("/sdpf/signin/method")
    assert r.status_code == 303 and r.headers["Location"].endswith("/sdpf/signin")


def test_method_choice_must_be_made(client, db):
    user = _user(password=PASSWORD)
    p = Portal(client, "business")
    p.sign_in(user.login_id, PASSWORD)
    r = p.post("/signin/method", {"method": "sms"})
    assert r.status_code == 422 and "二段階認証は必須" in r.get_data(as_text=True)


# --- Mail OTP screens ------------------------------------------------------------------------

def _mail_user_pending(client, portal="business"):
    user = _user(portal, password=PASSWORD, first_login_done=True, twostep_method="mail")
    p = Portal(client, portal)
    p.sign_in(user.login_id, PASSWORD)
    return user, p


@pytest.mark.parametrize("code,message", [
    ("", "ワンタイムパスワードを入力してください"),
    ("12ab56", "6桁の数字"),
    ("1234567", "6桁の数字"),
])
def test_mail_otp_malformed_codes(client, db, code, message):
    _user_, p = _mail_user_pending(client)
    r = p.post("/signin/mail-otp", {"code": code})
    assert r.status_code == 422 and message in r.get_data(as_text=True)


def test_mail_otp_wrong_code_tells_tries_left_then_used_up(client, db):
    user, p = _mail_user_pending(client)
    right = otp_from_mail(last_mail("otp"))
    wrong = "000000" if right != "000000" else "111111"
    for left in (4, 3, 2, 1):
        r = p.post("/signin/mail-otp", {"code": wrong})
        assert f"あと{left}回" in r.get_data(as_text=True)
    r = p.post("/signin/mail-otp", {"code": wrong})
    assert "上限に達しました" in r.get_data(as_text=True)
    r = p.post("/signin/mail-otp", {"code": right})
    assert r.status_code == 422 and "入力回数の上限" in r.get_data(as_text=True)
    fresh = User.get_by_id(user.id)  # every wrong code is a second-step failure, not a password one
    assert fresh.twostep_failures == 5 and fresh.failed_logins == 0


def test_mail_otp_resend_waits_60_seconds(client, db):
    user, p = _mail_user_pending(client)
    r = p.post("/signin/mail-otp/resend")
    assert r.status_code == 429 and "秒後に再送信できます" in r.get_data(as_text=True)
    assert Mail.select().where(Mail.kind == "otp").count() == 1
    from accounts.models import OneTimeCode

    OneTimeCode.update(sent_at=utcnow() - datetime.timedelta(seconds=61)).execute()
    r = p.post("/signin/mail-otp/resend")
    assert r.status_code == 200 and "新しいワンタイムパスワードを送信しました" in r.get_data(as_text=True)
    assert Mail.select().where(Mail.kind == "otp").count() == 2


def test_mail_otp_page_shows_the_masked_address_and_sdpf_button(client, db):
    user, p = _mail_user_pending(client, "sdpf")
    html = p.landed[1].get_data(as_text=True)
    assert twostep.mask_email(user.email) in html and ">有効化<" in html


# --- TOTP and backup code screens -------------------------------------------------------------

def test_totp_set_up_refuses_wrong_and_malformed_codes(client, db):
    user = _user("sdpf", password=PASSWORD)
    p = Portal(client, "sdpf")
    p.sign_in(user.login_id, PASSWORD)
    p.post("/signin/method", {"method": "totp"})
    for code, message in [("", "6桁の数字"), ("abcdef", "6桁の数字"), ("000000", "コードが正しくありません")]:
        r = p.post("/signin/totp/setup", {"code": code})
        assert r.status_code == 422 and message in r.get_data(as_text=True)
    assert User.get_by_id(user.id).twostep_method is None


def test_backup_code_bad_inputs(client, db):
    user = _user(password=PASSWORD, first_login_done=True, twostep_method="totp", totp_secret=SECRET)
    p = Portal(client, "business")
    p.sign_in(user.login_id, PASSWORD)
    p.get("/signin/backup-code")
    for code, message in [("", "バックアップコード(例"), ("x" * 50, "バックアップコード(例"),
                          ("abcde-fghjk", "正しくないか")]:
        r = p.post("/signin/backup-code", {"code": code})
        assert r.status_code == 422 and message in r.get_data(as_text=True)


def test_terms_need_the_shown_version(client, db):
    ensure_terms()
    user = _user(password=PASSWORD, first_login_done=True, twostep_method="totp", totp_secret=SECRET)
    p = Portal(client, "business")
    p.sign_in(user.login_id, PASSWORD)
    p.post("/signin/totp", {"code": p.totp_code(SECRET)})
    r = p.post("/signin/terms", {"version": "99"})
    assert r.status_code == 409 and "同意を承認する" in r.get_data(as_text=True)
    r = p.post("/signin/terms", {"version": "abc"})
    assert r.status_code == 409


# --- reset request ---------------------------------------------------------------------------

def test_reset_request_answers_the_same_page_whether_or_not_it_matched(client, db):
    user = _user("sdpf", email="aoba1@example.jp")
    p = Portal(client, "sdpf")
    matched = p.request_reset(login_id=user.login_id, email="aoba1@example.jp").get_data(as_text=True)
    unmatched = p.request_reset(login_id=user.login_id, email="other@example.jp").get_data(as_text=True)
    unknown = p.request_reset(login_id="nobody", email="aoba1@example.jp").get_data(as_text=True)

    def main(html):
        return re.sub(r'value="[^"]+"', "", html[html.index("<main"):])

    assert main(matched) == main(unmatched) == main(unknown)
    assert Mail.select().where(Mail.kind == "reset").count() == 1
    assert AuditEntry.select().where(AuditEntry.action == "reset_request_refused").count() == 2


def test_reset_request_does_the_same_work_whether_or_not_it_matched(client, db):
    """SPEC 11.8: the request only records what was typed (one row, no mail, no sleep); the
    worker's round answers it, with a mail for the matching identity only."""
    import time

    from accounts.models import IdentityRequest
    from tests.helpers import run_worker

    user = _user("sdpf", email="aoba1@example.jp")
    p = Portal(client, "sdpf")
    times = []
    for email in ("aoba1@example.jp", "other@example.jp"):
        p.get("/password/reset")
        start = time.perf_counter()
        r = p.post("/password/reset", {"login_id": user.login_id, "email": email})
        times.append(time.perf_counter() - start)
        assert r.status_code == 200
    assert IdentityRequest.select().count() == 2 and Mail.select().count() == 0
    assert max(times) < 0.3, times  # no padding sleep holds the worker
    run_worker(client.application)
    assert [m.recipient for m in Mail.select()] == ["aoba1@example.jp"]
    assert {r.outcome for r in IdentityRequest.select()} == {"sent", "mismatch"}


@pytest.mark.parametrize("values,field,message", [
    ({"login_id": "", "email": "a@example.jp", "name": "n", "phone": "1"}, "login_id", "ログインIDを入力"),
    ({"login_id": "a", "email": "", "name": "n", "phone": "1"}, "email", "メールアドレスを入力"),
    ({"login_id": "a", "email": "no-at-sign", "name": "n", "phone": "1"}, "email", "name@example.jp"),
    ({"login_id": "a", "email": "a@example.jp", "name": "", "phone": "1"}, "name", "名前を入力"),
    ({"login_id": "a", "email": "a@example.jp", "name": "n", "phone": "   "}, "phone", "電話番号を入力"),
    ({"login_id": "a" * 256, "email": "a@example.jp", "name": "n", "phone": "1"}, "login_id", "長すぎます"),
])
def test_reset_request_bad_input(client, db, values, field, message):
    p = Portal(client, "business")
    r = p.request_reset(**values)
    html = r.get_data(as_text=True)
    assert r.status_code == 422 and message in html and f'id="f-{field}" ' in html
    assert not Mail.select().exists()


def test_reset_before_the_migration_period_sends_nothing_and_says_when(client, db):
    start = utcnow() + datetime.timedelta(days=3)
    MigrationPeriod.create(id=1, start_at=start, end_at=start + datetime.timedelta(days=30))
    migrated = _user("sdpf", email="m@example.jp", legacy=True)
    native = _user("sdpf", email="n@example.jp")
    p = Portal(client, "sdpf")
    html = p.request_reset(login_id=migrated.login_id, email="m@example.jp").get_data(as_text=True)
    assert "初回ログイン設定を開始できます" in html
    assert not Mail.select().where(Mail.user == migrated).exists()
    p.request_reset(login_id=native.login_id, email="n@example.jp")
    assert Mail.select().where(Mail.user == native).count() == 1


def test_reset_request_is_rate_limited(client, db):
    p = Portal(client, "sdpf")
    codes = [p.request_reset(login_id="x", email="x@example.jp").status_code for _ in range(6)]
    assert codes[-1] == 429 and codes[0] == 200


# --- new password from the link -----------------------------------------------------------------

def _link(user):
    from accounts import recovery

    raw = tokens.issue(user, tokens.RESET, 30)
    return recovery.reset_link("http://localhost", user.portal, raw).split("localhost", 1)[1], raw


@pytest.mark.parametrize("password,confirm,message", [
    ("", "", "新しいパスワードを入力してください"),
    ("Abc def12", "Abc def12", "(space)"),
    ("Abcdef1'x", "Abcdef1'x", "次の文字は使用できません: &#39;"),
    ("Ａbcdef12", "Ａbcdef12", "次の文字は使用できません: Ａ"),
    ("abcdef12", "abcdef12", "アルファベット大文字"),
    ("Abc1", "Abc1", "8文字以上32文字以下"),
    ("Abcdef12" * 5, "Abcdef12" * 5, "8文字以上32文字以下"),
    ("Abcdef12", "Abcdef13", "2つのパスワードが一致しません"),
])
def test_new_password_bad_input(client, db, password, confirm, message):
    user = _user()
    path, _raw = _link(user)
    p = Portal(client, "business")
    p.get(path)
    r = p.post(path, {"password": password, "confirm": confirm})
    assert r.status_code == 422 and message in r.get_data(as_text=True)
    assert User.get_by_id(user.id).password_hash is None


def test_double_quote_is_a_business_symbol_but_not_an_sdpf_one(client, db):
    for portal, status in (("business", 200), ("sdpf", 422)):
        user = _user(portal)
        path, _raw = _link(user)
        p = Portal(client, portal)
        p.get(path)
        assert p.post(path, {"password": 'Abcdef1"x', "confirm": 'Abcdef1"x'}).status_code == status


def test_reset_link_expired_used_voided_and_unknown(client, db):
    user = _user()
    old_path, _ = _link(user)
    path, raw = _link(user)
    p = Portal(client, "business")
    r = p.get(old_path)
    assert r.status_code == 410 and "最新のメール" in r.get_data(as_text=True)
    p.get(path)
    assert p.post(path, {"password": PASSWORD, "confirm": PASSWORD}).status_code == 200
    r = p.get(path)
    assert r.status_code == 410 and "すでに使用されています" in r.get_data(as_text=True)
    r = p.get("/business/password/reset/not-a-token")
    assert r.status_code == 404 and "無効です" in r.get_data(as_text=True)
    path, raw = _link(user)
    ResetToken.update(expires_at=utcnow() - datetime.timedelta(seconds=1)).where(
        ResetToken.used_at.is_null() & ResetToken.voided_at.is_null()).execute()
    r = p.get(path)
    assert r.status_code == 410 and "有効期限が切れています" in r.get_data(as_text=True)
    # A link of one portal does not open on the other.
    sdpf_path = "/sdpf" + _link(user)[0][len("/business"):]
    assert client.get(sdpf_path).status_code == 404


def test_live_password_rules_fragment(client, db):
    p = Portal(client, "sdpf")
    p.get("/sdpf/password/reset")
    r = p.c.post("/sdpf/password/rules", data={"password": "abc"}, headers={"HX-Request": "true",
                                                                          "X-CSRFToken": p.token})
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and html.strip().startswith('<ul class="rules"')
    assert 'class="ok" data-rule="lower"' in html and 'class="" data-rule="upper"' in html
    html = p.c.post("/sdpf/password/rules", data={"password": 'Abcdef1"'},
                    headers={"HX-Request": "true", "X-CSRFToken": p.token}).get_data(as_text=True)
    assert 'class="" data-rule="charset"' in html


def test_rules_endpoint_needs_csrf(client, db):
    assert client.post("/business/password/rules", data={"password": "x"}).status_code == 400


# --- ask my administrator -----------------------------------------------------------------------

def test_ask_admin_mails_the_admins_in_scope_and_answers_generically(client, db):
    parent = gen_contract()
    child = gen_contract(parent=parent)
    child_admin = gen_user(child, is_admin=True, first_login_done=True, email="ca@example.jp")
    parent_admin = gen_user(parent, is_admin=True, first_login_done=True, email="pa@example.jp")
    gen_user(child, is_admin=True, email="not-done@example.jp")  # first login not done: not asked
    user = gen_user(child)
    p = Portal(client, "sdpf")
    p.get("/sdpf/password/ask-admin")
    known = p.post("/password/ask-admin", {"login_id": user.login_id, "message": "届きません"})
    p.get("/sdpf/password/ask-admin")
    unknown = p.post("/password/ask-admin", {"login_id": "nobody", "message": ""})
    assert known.status_code == unknown.status_code == 200
    assert Mail.select().count() == 0  # the worker writes the mails
    from tests.helpers import run_worker

    run_worker(client.application)
    assert {m.recipient for m in Mail.select()} == {child_admin.email, parent_admin.email}
    mail = last_mail("ask_admin")
    assert f"/admin/users/{user.id}" in mail.body_text and "届きません" in mail.body_text


def test_ask_admin_bad_input(client, db):
    p = Portal(client, "business")
    p.get("/business/password/ask-admin")
    r = p.post("/password/ask-admin", {"login_id": "", "message": ""})
    assert r.status_code == 422 and "ログインIDを入力" in r.get_data(as_text=True)
    r = p.post("/password/ask-admin", {"login_id": "a", "message": "x" * 2001})
    assert r.status_code == 422 and "メッセージが長すぎます" in r.get_data(as_text=True)


# --- profile --------------------------------------------------------------------------------------

def test_profile_change_password_needs_the_current_one_and_clears_trusted_browsers(client, db):
    user, p = _signed_in(client)
    twostep.trust_browser(user, days=30)
    p.get("/profile")
    r = p.post("/profile/password",
               {"current": "Wrong-pass1", "password": "Newpass1!", "confirm": "Newpass1!"})
    assert r.status_code == 422 and "現在のパスワードが正しくありません" in r.get_data(as_text=True)
    r = p.post("/profile/password", {"current": PASSWORD, "password": "newpass", "confirm": "newpass"})
    assert r.status_code == 422
    r = p.post("/profile/password", {"current": PASSWORD, "password": "Newpass1!", "confirm": "Newpass1!"})
    assert r.status_code == 303
    assert "パスワードを変更しました" in p.landed[1].get_data(as_text=True)
    assert not TrustedBrowser.select().where(TrustedBrowser.revoked_at.is_null()).exists()
    assert AuditEntry.select().where(AuditEntry.action == "password_changed").count() == 1


def test_profile_change_email_confirms_the_new_address_and_tells_the_old(client, db):
    user, p = _signed_in(client, email="old@example.jp")
    p.get("/profile")
    for bad, message in [("", "新しいメールアドレスを入力"), ("bad", "name@example.jp"),
                         ("OLD@example.jp", "すでにご登録")]:
        r = p.post("/profile/email", {"email": bad})
        assert r.status_code == 422 and message in r.get_data(as_text=True)
    p.post("/profile/email", {"email": "new@example.jp"})
    confirm = last_mail("email_change")
    notice = last_mail("email_change_notice")
    assert confirm.recipient == "new@example.jp" and notice.recipient == "old@example.jp"
    link = re.search(r"http://localhost(/business/profile/email/\S+)", confirm.body_text).group(1)
    assert User.get_by_id(user.id).email == "old@example.jp"
    p.get(link)
    assert p.post(link).status_code == 303
    assert User.get_by_id(user.id).email_key == "new@example.jp"
    assert p.get(link).status_code == 410


def test_profile_backup_codes_browsers_and_method_switch(client, db):
    user, p = _signed_in(client)
    p.get("/profile")
    html = p.post("/profile/backup-codes").get_data(as_text=True)
    assert len(re.findall(r"<li>[a-z2-9]{5}-[a-z2-9]{5}</li>", html)) == 10
    twostep.trust_browser(user, days=30, label="Firefox")
    html = p.get("/profile").get_data(as_text=True)
    assert "Firefox" in html and "未使用のバックアップコード: 10個" in html
    browser = TrustedBrowser.get()
    p.post(f"/profile/browsers/{browser.id}/revoke")
    assert TrustedBrowser.get_by_id(browser.id).revoked_at is not None
    # Changing the method first re-checks the current one (TOTP here).
    assert p.get("/profile/twostep/mail").status_code == 303  # not yet
    right = p.totp_code(SECRET, offset=30)  # the next step: the sign-in used the current one
    r = p.post("/profile/twostep", {"code": "000000" if right != "000000" else "111111"})
    assert r.status_code == 422
    r = p.post("/profile/twostep", {"code": right})
    assert r.status_code == 303
    # Switch to Mail OTP: a mailed code must be entered first.
    r = p.post("/profile/twostep/mail", {"start": "1"})
    assert r.status_code == 200 and Mail.select().where(Mail.kind == "otp").count() == 1
    assert p.post("/profile/twostep/mail", {"code": "12"}).status_code == 422
    r = p.post("/profile/twostep/mail", {"code": otp_from_mail(last_mail("otp"))})
    assert r.status_code == 303 and User.get_by_id(user.id).twostep_method == "mail"
    # And back to TOTP with a new secret: the re-check is needed again, now by Mail OTP.
    assert p.post("/profile/twostep/totp", {"start": "1"}).status_code == 303
    p.post("/profile/twostep/send")
    p.post("/profile/twostep", {"code": otp_from_mail(last_mail("otp"))})
    html = p.post("/profile/twostep/totp", {"start": "1"}).get_data(as_text=True)
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', html).group(1)
    html = p.post("/profile/twostep/totp", {"code": p.totp_code(secret)}).get_data(as_text=True)
    assert "バックアップコード" in html
    assert User.get_by_id(user.id).twostep_method == "totp"


def test_sign_out_ends_the_session(client, db):
    user, p = _signed_in(client)
    r = p.signout()
    assert r.status_code == 303
    assert p.get("/dashboard").status_code == 302
    assert AuditEntry.select().where(AuditEntry.action == "signout").count() == 1


def test_profile_pages_need_a_signed_in_user_of_this_portal(client, db):
    _signed_in(client, "sdpf")
    assert client.get("/business/profile").status_code == 302
    assert client.get("/sdpf/profile").status_code == 200


def test_ten_wrong_totp_codes_lock_the_second_step_and_the_password_does_not_clear_them(make_app, db):
    app = _other_app(make_app, RATELIMIT_ENABLED=False)
    client = app.test_client()
    user = _user(password=PASSWORD, first_login_done=True, twostep_method="totp", totp_secret=SECRET)
    p = Portal(client, "business")
    p.sign_in(user.login_id, PASSWORD)
    right = p.totp_code(SECRET)
    wrong = "000000" if right != "000000" else "111111"
    for _ in range(5):
        p.post("/signin/totp", {"code": wrong})
    p.sign_in(user.login_id, PASSWORD)  # a correct password does not wipe second-step failures
    assert User.get_by_id(user.id).twostep_failures == 5
    for _ in range(5):
        p.post("/signin/totp", {"code": wrong})
    fresh = User.get_by_id(user.id)
    assert fresh.twostep_failures == 10 and fresh.twostep_locked_until is not None
    assert not fresh.is_locked()  # the password still works; only the second step is locked
    r = p.post("/signin/totp", {"code": right})
    assert r.status_code == 429 and "JST" in r.get_data(as_text=True)


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_remaining_screens_in_both_languages(client, db, lang):
    words = {
        "ja": ["パスワード再設定", "パスワードの設定が完了しました", "このリンクは使用できません",
               "メールをご確認ください", "ご依頼を受け付けました", "TOTP認証",
               "バックアップコードでサインイン", "バックアップコード", "新しいメールアドレスの確認"],
        "en": ["Set a new password", "Your password is set", "This link cannot be used", "Check your mail",
               "Your request was received", "TOTP verification", "Sign in with a backup code",
               "Your backup codes", "Confirm your new e-mail address"],
    }[lang]
    client.set_cookie("lang", lang)
    user = _user()
    path, _raw = _link(user)
    p = Portal(client, "business")
    seen = [p.get(path).get_data(as_text=True)]
    seen.append(p.post(path, {"password": PASSWORD, "confirm": PASSWORD}).get_data(as_text=True))
    seen.append(p.get(path).get_data(as_text=True))
    r = p.request_reset(login_id="x", email="x@example.jp", name="n", phone="1")
    seen.append(r.get_data(as_text=True))
    p.get("/password/ask-admin")
    seen.append(p.post("/password/ask-admin", {"login_id": "x"}).get_data(as_text=True))
    totp_user, p2 = _signed_in(client)
    p2.signout()
    p2.sign_in(totp_user.login_id, PASSWORD)
    seen.append(p2.get("/signin/totp").get_data(as_text=True))
    seen.append(p2.get("/signin/backup-code").get_data(as_text=True))
    p2.post("/signin/totp", {"code": p2.totp_code(SECRET, 30)})
    p2.get("/profile")
    seen.append(p2.post("/profile/backup-codes").get_data(as_text=True))
    p2.get("/profile")
    p2.post("/profile/email", {"email": "new@example.jp"})
    link = re.search(r"http://localhost(/business/profile/email/\S+)", last_mail("email_change").body_text)
    seen.append(p2.get(link.group(1)).get_data(as_text=True))
    for word, html in zip(words, seen, strict=True):
        assert word in html, word


# --- what a sign-in asks of the database ---------------------------------------------------------

def test_a_trusted_sign_in_asks_the_database_only_what_it_needs(client, db):
    """Each statement is a round trip on PostgreSQL (benchmarks/portal_signin.py): the sign-in page
    reads the period and the demo flag in one statement, and a sign-in from a trusted browser
    reads the user, its browser, the terms and writes its three rows (BEGIN and COMMIT besides),
    the session's row inside the sign-in's transaction (blueprints.sessions.write_now)."""
    from accounts.models import TermsAcceptance, TermsVersion

    ensure_terms()
    user = _user(password=PASSWORD, first_login_done=True, twostep_method="mail")
    TermsAcceptance.create(user=user, terms=TermsVersion.current())
    client.set_cookie("trusted_browser_business", twostep.trust_browser(user, days=30))
    p = Portal(client, "business")
    with Statements() as page:
        p.get("/signin")
    assert len(page) == 1 and '"migration_period"' in page[0][2] and '"site_setting"' in page[0][2]
    with Statements() as sign_in:
        r = client.post("/business/signin", data={"csrf_token": p.token, "login_id": user.login_id,
                                                  "password": PASSWORD})
    assert r.headers["Location"].endswith("/business/dashboard")
    checks = [("UPDATE", "trusted_browser"), ("SELECT", "terms_version")]
    if database.obj.__class__.__name__.startswith("Pipelined"):
        checks.reverse()   # the terms question is sent ahead, to go with the browser's check
    assert [s[:2] for s in sign_in] == [("SELECT", "user"), *checks, ("UPDATE", "user"),
                                        ("INSERT", "audit_entry"), ("INSERT", "web_session")]


def test_a_sign_in_whose_transaction_fails_leaves_no_session(make_app, monkeypatch):
    """The session row is written inside the sign-in's transaction: when a write of it fails (on
    PostgreSQL at the COMMIT, where the pipelined writes and the session's INSERT go together), the
    answer is the error page, no session row is kept and nobody is signed in."""
    from accounts import audit
    from accounts.db import insert_row
    from accounts.models import TermsAcceptance, TermsVersion, WebSession

    client = _other_app(make_app, PROPAGATE_EXCEPTIONS=False).test_client()
    ensure_terms()
    user = _user(password=PASSWORD, first_login_done=True, twostep_method="mail")
    TermsAcceptance.create(user=user, terms=TermsVersion.current())
    client.set_cookie("trusted_browser_business", twostep.trust_browser(user, days=30))
    record = audit.record

    def failing_record(actor, action, **kw):
        if action != "signin_completed":
            return record(actor, action, **kw)
        return insert_row(AuditEntry, action=action, target_user=10**9, actor_kind="system")  # no such user

    monkeypatch.setattr(audit, "record", failing_record)
    p = Portal(client, "business")
    p.get("/signin")
    r = client.post("/business/signin", data={"csrf_token": p.token, "login_id": user.login_id,
                                              "password": PASSWORD})
    assert r.status_code == 500
    assert list(WebSession.select().dicts()) == []
    assert User.get_by_id(user.id).last_login_at is None
    monkeypatch.setattr(audit, "record", record)
    r = client.get("/business/dashboard")
    assert r.status_code in (302, 303) and "/business/signin" in r.headers["Location"]


def test_a_session_changed_after_the_sign_in_wrote_it_is_saved_whole(client, monkeypatch):
    """A value put in the session after the sign-in's own write (a flash on the way out) reaches
    the row: the next page shows it."""
    from blueprints.portal import flow

    finish = flow.finish

    def finish_and_flash(user, detail=None):
        response = finish(user, detail)
        flow.flash("after the write", "ok")
        return response

    monkeypatch.setattr(flow, "finish", finish_and_flash)
    _user_, p = _signed_in(client)   # the journey loads the dashboard the sign-in redirects to
    assert "after the write" in p.landed[1].get_data(as_text=True)
    assert "after the write" not in p.get("/dashboard").get_data(as_text=True)   # shown once


# --- the sign-in page kept rendered (blueprints.web.render_public) -------------------------------

_TOKEN = re.compile(r'(name="csrf_token" value="|"X-CSRFToken": ")[^"]+')


def _page(client, path, **kw):
    r = client.get(path, **kw)
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    return html, _TOKEN.sub(r"\1TOKEN", html)


@pytest.mark.parametrize("portal", ["business", "sdpf"])
def test_the_kept_sign_in_page_is_the_page_rendered_afresh(app, portal):
    """Whatever the language, period, phase, demo flag or address: the kept page is the one the
    template renders at that moment, with the visitor's own token."""
    import time_machine

    from accounts import site
    from tests.legacy_helpers import BEFORE_AT, DURING_AT, set_period

    def both(path, **kw):
        kept = [_page(app.test_client(), path, **kw) for _ in range(2)]
        app.jinja_env.auto_reload = True   # development: nothing kept
        try:
            fresh = _page(app.test_client(), path, **kw)
        finally:
            app.jinja_env.auto_reload = False
        assert kept[0][1] == kept[1][1] == fresh[1]
        assert len({csrf_token(h) for h, _ in (*kept, fresh)}) == 3
        return fresh[1]

    path = f"/{portal}/signin"
    pages = [both(path), both(path, headers={"Accept-Language": "en"}), both(path + "?next=/x%22y")]
    set_period()
    with time_machine.travel(BEFORE_AT, tick=False):
        pages.append(both(path))
    with time_machine.travel(DURING_AT, tick=False):
        pages.append(both(path))
    site.mark_demo_loaded()
    pages.append(both(path))
    assert len(set(pages)) == len(pages)   # every change above shows
    assert 'value="/x&#34;y"' in pages[2] and "(demo)" not in pages[1] and "（デモ）" in pages[-1]


def test_each_visitor_of_the_kept_page_has_a_token_of_their_own(client, app):
    other = app.test_client()
    mine = csrf_token(client.get("/business/signin").get_data(as_text=True))
    theirs = csrf_token(other.get("/business/signin").get_data(as_text=True))
    assert mine != theirs
    form = {"login_id": "nobody", "password": "Wrong-pass1"}
    assert client.post("/business/signin", data={**form, "csrf_token": theirs}).status_code == 400
    assert client.post("/business/signin", data={**form, "csrf_token": mine}).status_code == 401


def test_a_message_or_a_signed_in_visitor_never_gets_the_kept_page(client, app, monkeypatch):
    """A session holding more than its token (a message, somebody signed in) is rendered for
    itself, and what it showed is not kept for others."""
    from blueprints import web
    from tests.web.admin_helpers import make_world, sign_in

    renders = []
    render_template = web.render_template
    monkeypatch.setattr(web, "render_template",
                        lambda *a, **kw: renders.append(a[0]) or render_template(*a, **kw))

    def renders_for(c, path="/business/signin"):
        renders.clear()
        html = c.get(path).get_data(as_text=True)
        return len(renders), html

    visitor = app.test_client()
    assert renders_for(visitor)[0] == 1 and renders_for(visitor)[0] == 0   # kept after the first
    with client.session_transaction() as sess:
        sess["_flashes"] = [("ok", "for this visitor only")]
    count, html = renders_for(client)
    assert count == 1 and "for this visitor only" in html
    count, html = renders_for(app.test_client())
    assert count == 0 and "for this visitor only" not in html
    assert renders_for(app.test_client(), "/sdpf/signin")[0] == 1      # kept once per portal...
    _signed_in(client)                                                     # ...but a Business user
    assert renders_for(client, "/sdpf/signin")[0] == 1                    # is rendered for
    staff = app.test_client()
    sign_in(staff, make_world().operator)
    assert renders_for(staff)[0] == 1


def test_each_app_keeps_its_own_sign_in_page(make_app):
    """The kept pages live in their app (its configuration is part of what they show)."""
    first = _other_app(make_app, SITE_OPERATOR_NAME="一番 通信")
    second = _other_app(make_app, SITE_OPERATOR_NAME="二番 通信")
    for _ in range(2):
        assert "© 一番 通信" in _page(first.test_client(), "/business/signin")[0]
        assert "© 二番 通信" in _page(second.test_client(), "/business/signin")[0]


def test_a_sign_out_that_fails_after_ending_the_session_still_signs_out(make_app, monkeypatch):
    """An error can sign somebody out, never in: the session the request ended stays ended even
    when the answer is the error page."""
    from accounts.models import WebSession
    from blueprints.portal import auth

    client = _other_app(make_app, PROPAGATE_EXCEPTIONS=False).test_client()
    _user_, p = _signed_in(client)
    assert WebSession.select().where(WebSession.signed_in).count() == 1

    def broken_flash(*args, **kwargs):
        raise RuntimeError("after session.clear()")

    monkeypatch.setattr(auth, "flash", broken_flash)
    p.get("/dashboard")
    assert client.post("/business/signout", data={"csrf_token": p.token}).status_code == 500
    assert WebSession.select().count() == 0
    r = client.get("/business/dashboard")
    assert r.status_code in (302, 303) and "/business/signin" in r.headers["Location"]
