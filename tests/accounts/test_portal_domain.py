"""Portal sign-in rules as plain functions: phones, identity check, lockout, Mail OTP, TOTP, backup
codes, trusted browsers, first-login completion."""
import datetime
import time

import pyotp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from accounts import identity, passwords, signin, terms, twostep
from accounts.clock import utcnow
from accounts.models import AuditEntry, Contract, Mail, OneTimeCode, TermsVersion, User
from accounts.phones import normalise_phone_digits
from tests.helpers import gen_contract, gen_user

# Domain functions that render mails need an application context (no request).
pytestmark = pytest.mark.usefixtures("app_ctx")

CONFIG = {"MAIL_OTP_MINUTES": 10, "MAIL_OTP_MAX_TRIES": 5, "MAIL_OTP_RESEND_SECONDS": 60,
          "MAIL_SUBJECT_OTP_BUSINESS": "NTTコミュニケーションズ ビジネスポータル メールワンタイムパスワード",
          "MAIL_SUBJECT_OTP_SDPF": "【Smart Data Platform】メールワンタイムパスワード"}
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


# --- phones and identity ----------------------------------------------------------------------

@pytest.mark.parametrize("typed,digits", [
    ("03-1234-5678", "0312345678"), ("０３－１２３４－５６７８", "0312345678"),
    ("(03) 1234 5678", "0312345678"),
    ("", ""), (None, ""), ("abc", ""), ("٠١٢", ""),  # Arabic-Indic digits are not ASCII digits after NFKC
])
def test_phone_is_normalised_to_ascii_digits(typed, digits):
    assert normalise_phone_digits(typed) == digits


@given(st.text(max_size=40))
def test_phone_normalisation_yields_only_ascii_digits_and_is_idempotent(text):
    once = normalise_phone_digits(text)
    assert set(once) <= set("0123456789") and normalise_phone_digits(once) == once


def test_business_identity_needs_all_four_fields_and_compares_name_exactly(db):
    user = gen_user(gen_contract(), login_id="Sample@NTT.com_ecid1", email="Sample@Example.jp",
                    name="佐藤\u3000一郎", phone="0312345678")
    good = {"login_id": "sample@ntt.com_ECID1", "email": "SAMPLE@example.JP", "name": "佐藤\u3000一郎",
            "phone": "03-1234-5678"}
    assert identity.find_matching_user("business", good) == user
    assert identity.find_matching_user("business", {**good, "name": "佐藤 一郎"}) is None
    assert identity.find_matching_user("business", {**good, "name": "佐藤一郎"}) is None
    assert identity.find_matching_user("business", {**good, "phone": "03-1234-5679"}) is None
    assert identity.find_matching_user("business", {**good, "phone": ""}) is None
    assert identity.find_matching_user("business", {**good, "email": "other@example.jp"}) is None
    assert identity.find_matching_user("sdpf", good) is None  # another portal's user


def test_sdpf_identity_is_login_id_and_email(db):
    user = gen_user(gen_contract(parent=gen_contract()), login_id="aoba-user1", email="aoba1@example.jp")
    found = identity.find_matching_user("sdpf", {"login_id": "AOBA-USER1", "email": "Aoba1@Example.jp"})
    assert found == user
    assert identity.find_matching_user("sdpf", {"login_id": "aoba-user1", "email": "x@example.jp"}) is None
    assert identity.find_matching_user("sdpf", {"login_id": "", "email": "aoba1@example.jp"}) is None
    assert identity.find_matching_user("sdpf", {"login_id": "x" * 300, "email": "aoba1@example.jp"}) is None


# --- password sign-in and lockout --------------------------------------------------------------

def test_lock_waits_grow_after_the_threshold_and_never_exceed_15_minutes():
    assert signin.lock_wait(9, 10) is None
    waits = [signin.lock_wait(n, 10).total_seconds() / 60 for n in range(10, 100)]
    assert waits[:4] == [1, 5, 15, 15] and max(waits) == 15


def test_unknown_wrong_locked_and_disabled_get_the_same_refusal(db):
    user = gen_user(gen_contract(), password="Abcdef1!x")
    disabled = gen_user(gen_contract(), password="Abcdef1!x", disabled=True)
    assert signin.verify_password("business", "nobody", "Abcdef1!x", threshold=3).outcome == signin.REFUSED
    assert signin.verify_password("business", user.login_id, "wrong", threshold=3).outcome == signin.REFUSED
    assert signin.verify_password("business", disabled.login_id, "Abcdef1!x", threshold=3).outcome \
        == signin.REFUSED
    ok = signin.verify_password("business", user.login_id.upper(), "Abcdef1!x", threshold=3)
    assert ok.outcome == signin.OK and ok.user.id == user.id


def test_account_locks_at_the_threshold_and_a_right_password_is_refused_while_locked(db):
    user = gen_user(gen_contract(), password="Abcdef1!x")
    for _ in range(3):
        signin.verify_password("business", user.login_id, "wrong", threshold=3)
    locked = User.get_by_id(user.id)
    assert locked.failed_logins == 3 and locked.is_locked()
    result = signin.verify_password("business", user.login_id, "Abcdef1!x", threshold=3)
    assert result.outcome == signin.REFUSED and result.reason == "locked"
    later = utcnow() + datetime.timedelta(minutes=2)
    assert signin.verify_password("business", user.login_id, "Abcdef1!x", threshold=3, now=later).outcome \
        == signin.OK
    assert User.get_by_id(user.id).failed_logins == 0
    assert AuditEntry.select().where(AuditEntry.action == "account_locked").count() == 1


def test_a_failure_after_a_lock_ends_locks_again_for_longer(db):
    user = gen_user(gen_contract(), password="Abcdef1!x")
    now = utcnow()
    for _ in range(3):
        signin.verify_password("business", user.login_id, "wrong", threshold=3, now=now)
    first = User.get_by_id(user.id).locked_until
    later = now + datetime.timedelta(minutes=2)
    signin.verify_password("business", user.login_id, "wrong", threshold=3, now=later)
    assert User.get_by_id(user.id).locked_until - later == datetime.timedelta(minutes=5)
    assert first - now == datetime.timedelta(minutes=1)


def test_password_is_rehashed_when_the_apps_parameters_change(make_app, db):
    old = passwords.Hasher(time_cost=1, memory_cost=8, parallelism=1)
    user = gen_user(gen_contract(), password_hash=old.hash("Abcdef1!x"))
    stronger = make_app(ARGON2_TIME_COST=2, ARGON2_MEMORY_COST=16)
    with stronger.app_context():
        result = signin.verify_password("business", user.login_id, "Abcdef1!x", threshold=5)
    assert result.outcome == signin.OK
    assert "m=16,t=2" in User.get_by_id(user.id).password_hash


def test_yen_sign_is_a_backslash_when_setting_and_signing_in(db):
    user = gen_user(gen_contract())
    signin.set_password(user, "Abc¥def12", actor=user, action="password_set_by_reset")
    assert signin.verify_password("business", user.login_id, "Abc\\def12", threshold=5).outcome == signin.OK
    assert signin.verify_password("business", user.login_id, "Abc¥def12", threshold=5).outcome == signin.OK


def test_set_password_refuses_what_the_policy_refuses_and_clears_trusted_browsers(db):
    user = gen_user(gen_contract(parent=gen_contract()))
    with pytest.raises(signin.PolicyError) as err:
        signin.set_password(user, 'Abcdef1"x', actor=user, action="x")  # " is not an SDPF symbol
    assert err.value.failures == ["charset"]
    raw = twostep.trust_browser(user, days=30)
    signin.set_password(user, "Abcdef1!x", actor=user, action="password_changed")
    assert not twostep.is_trusted(user, raw)


def test_first_login_completes_once_and_moves_the_contract_counter_once(db):
    contract = gen_contract()
    user = gen_user(contract, password="Abcdef1!x")
    signin.complete_sign_in(user)
    signin.complete_sign_in(user)
    assert Contract.get_by_id(contract.id).users_first_login_done == 1
    assert User.get_by_id(user.id).first_login_done_at is not None


@pytest.mark.parametrize("outer", [False, True])
def test_a_sign_in_that_fails_half_way_writes_nothing(db, monkeypatch, outer):
    """complete_sign_in joins the caller's transaction (the sign-in POST's) instead of nesting a
    savepoint: on its own or inside that transaction, an error leaves no half-done first login."""
    from accounts import audit
    from accounts.db import database

    contract = gen_contract()
    user = gen_user(contract, password="Abcdef1!x")
    real_record = audit.record

    def record(actor, action, **kwargs):
        if action == "signin_completed":
            raise RuntimeError("the audit trail could not be written")
        return real_record(actor, action, **kwargs)

    monkeypatch.setattr(audit, "record", record)
    with pytest.raises(RuntimeError):
        if outer:
            with database.atomic():
                signin.complete_sign_in(user)
        else:
            signin.complete_sign_in(user)
    stored = User.get_by_id(user.id)
    assert stored.first_login_done_at is None and stored.last_login_at is None
    assert Contract.get_by_id(contract.id).users_first_login_done == 0
    assert not AuditEntry.select().where(AuditEntry.action == "first_login_done").exists()


# --- Mail OTP ------------------------------------------------------------------------------------

@pytest.mark.parametrize("address,masked", [
    ("sample@example.jp", "s****@e****.jp"), ("a@b.co.jp", "a****@b****.jp"), ("x@localhost", "x****@l****"),
    ("", "****"),
])
def test_mask_email_keeps_first_characters_and_the_tld(address, masked):
    assert twostep.mask_email(address) == masked


def _otp(db_user, **kw):
    return twostep.send_mail_otp(db_user, config=CONFIG, **kw)


def test_mail_otp_is_mailed_with_the_portal_subject_and_stored_hashed(db):
    user = gen_user(gen_contract(parent=gen_contract()), language=None)
    sent = _otp(user, force=False)
    mail = Mail.select().where(Mail.kind == "otp").get()
    assert mail.subject == "【Smart Data Platform】メールワンタイムパスワード" and sent.code in mail.body_text
    row = OneTimeCode.get()
    assert sent.code not in row.code_hash and len(sent.code) == 6
    assert row.expires_at - row.created_at == datetime.timedelta(minutes=10)


def test_mail_otp_right_code_works_once(db):
    user = gen_user(gen_contract())
    code = _otp(user, force=False).code
    assert twostep.verify_mail_otp(user, code, config=CONFIG)[0] == twostep.CODE_OK
    assert twostep.verify_mail_otp(user, code, config=CONFIG)[0] == twostep.CODE_NONE


def test_mail_otp_allows_five_tries_and_a_resend_keeps_the_count(db):
    user = gen_user(gen_contract())
    now = utcnow()
    code = twostep.send_mail_otp(user, config=CONFIG, force=False, now=now).code
    wrong = "000000" if code != "000000" else "111111"
    for left in (4, 3):
        assert twostep.verify_mail_otp(user, wrong, config=CONFIG, now=now) == (twostep.CODE_WRONG, left)
    assert twostep.send_mail_otp(user, config=CONFIG, force=True, now=now).outcome == twostep.TOO_SOON
    later = now + datetime.timedelta(seconds=61)
    resent = twostep.send_mail_otp(user, config=CONFIG, force=True, now=later)
    assert resent.outcome == twostep.SENT and resent.code
    wrong = "000000" if resent.code != "000000" else "111111"
    assert twostep.verify_mail_otp(user, wrong, config=CONFIG, now=later) == (twostep.CODE_WRONG, 2)
    assert twostep.verify_mail_otp(user, wrong, config=CONFIG, now=later) == (twostep.CODE_WRONG, 1)
    assert twostep.verify_mail_otp(user, wrong, config=CONFIG, now=later) == (twostep.CODE_EXHAUSTED, 0)
    # Even the right code is refused now, and no new code until this one expires.
    assert twostep.verify_mail_otp(user, resent.code, config=CONFIG, now=later)[0] == twostep.CODE_BLOCKED
    assert twostep.send_mail_otp(user, config=CONFIG, force=True, now=later).outcome == twostep.BLOCKED
    after = later + datetime.timedelta(minutes=11)
    assert twostep.send_mail_otp(user, config=CONFIG, force=True, now=after).outcome == twostep.SENT


def test_mail_otp_expires_after_ten_minutes(db):
    user = gen_user(gen_contract())
    now = utcnow()
    code = twostep.send_mail_otp(user, config=CONFIG, force=False, now=now).code
    late = now + datetime.timedelta(minutes=10, seconds=1)
    assert twostep.verify_mail_otp(user, code, config=CONFIG, now=late)[0] == twostep.CODE_NONE


# --- TOTP ---------------------------------------------------------------------------------------

def test_totp_accepts_one_step_either_side_and_refuses_two(db):
    user = gen_user(gen_contract(), twostep_method="totp", totp_secret=SECRET)
    now = time.time()
    t = pyotp.TOTP(SECRET)
    assert not twostep.verify_totp(user, t.at(now - 60), now=now)
    assert twostep.verify_totp(user, t.at(now - 30), now=now)
    assert twostep.verify_totp(user, t.at(now + 30), now=now)


def test_totp_code_once_used_is_refused_and_older_steps_too(db):
    user = gen_user(gen_contract(), twostep_method="totp", totp_secret=SECRET)
    now = time.time()
    code = pyotp.TOTP(SECRET).at(now)
    assert twostep.verify_totp(user, code, now=now)
    assert not twostep.verify_totp(user, code, now=now)
    assert not twostep.verify_totp(user, pyotp.TOTP(SECRET).at(now - 30), now=now)


def test_totp_set_up_needs_a_right_code(db):
    user = gen_user(gen_contract())
    assert not twostep.confirm_totp(user, SECRET, "123")
    assert twostep.confirm_totp(user, SECRET, pyotp.TOTP(SECRET).now())
    fresh = User.get_by_id(user.id)
    assert fresh.twostep_method == "totp" and fresh.totp_secret == SECRET and fresh.totp_last_step


# --- backup codes and trusted browsers ----------------------------------------------------------

def test_ten_backup_codes_stored_hashed_each_usable_once(db):
    user = gen_user(gen_contract())
    codes = twostep.new_backup_codes(user)
    assert len(set(codes)) == 10
    from accounts.models import BackupCode

    assert all(c.replace("-", "") not in b.code_hash for b in BackupCode.select() for c in codes)
    assert twostep.use_backup_code(user, codes[3].upper().replace("-", " "))
    assert not twostep.use_backup_code(user, codes[3])
    assert twostep.backup_codes_left(user) == 9
    assert not twostep.use_backup_code(user, "")
    again = twostep.new_backup_codes(user)
    assert not twostep.use_backup_code(user, codes[0]) and twostep.use_backup_code(user, again[0])


def test_trusted_browser_expires_is_revocable_and_belongs_to_one_user(db):
    user, other = gen_user(gen_contract()), gen_user(gen_contract())
    raw = twostep.trust_browser(user, days=30, label="Chrome")
    assert twostep.is_trusted(user, raw) and not twostep.is_trusted(other, raw)
    assert not twostep.is_trusted(user, raw, now=utcnow() + datetime.timedelta(days=31))
    browser = twostep.trusted_browsers(user)[0]
    assert not twostep.revoke_browser(other, browser.id)
    assert twostep.revoke_browser(user, browser.id) and not twostep.is_trusted(user, raw)
    assert not twostep.is_trusted(user, None) and not twostep.is_trusted(user, "x" * 500)


def test_terms_pending_until_the_current_version_is_agreed(db):
    user = gen_user(gen_contract())
    assert terms.pending_for(user) is None
    v1 = TermsVersion.create(version=1, title="t1", body="b")
    assert terms.pending_for(user) == v1
    terms.accept(user, v1)
    terms.accept(user, v1)  # a double submit is harmless
    assert terms.pending_for(user) is None
    v2 = TermsVersion.create(version=2, title="t2", body="b")
    assert terms.pending_for(user) == v2


def test_only_the_version_in_force_is_pending_whatever_older_or_newer_ones_exist(db):
    """One statement answers it (accounts.terms.IN_FORCE): an older version left unagreed does not
    come back once the user agreed to the one in force, and a version published for later is not
    asked for until its time."""
    user = gen_user(gen_contract())
    now = utcnow()
    TermsVersion.create(version=1, title="t1", body="b", published_at=now - datetime.timedelta(days=2))
    v2 = TermsVersion.create(version=2, title="t2", body="b", published_at=now - datetime.timedelta(days=1))
    terms.accept(user, v2)
    assert terms.pending_for(user) is None
    v3 = TermsVersion.create(version=3, title="t3", body="b", published_at=now + datetime.timedelta(days=1))
    assert terms.in_force() == v2 and terms.pending_for(user) is None
    later = now + datetime.timedelta(days=2)
    assert terms.in_force(now=later) == v3 and terms.pending_for(user, now=later) == v3
    assert terms.pending_for(gen_user(gen_contract())) == v2  # someone who agreed to nothing
