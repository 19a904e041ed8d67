"""Console corrections, resets, reminders and the sign-in diagnosis, as functions."""
import datetime

import pytest

from accounts import console, diagnosis, period, tokens
from accounts.clock import utcnow
from accounts.models import AuditEntry, BackupCode, Mail, MailAttempt, ResetToken, Staff, TrustedBrowser, User
from tests.helpers import gen_contract, gen_user

# Domain functions that render mails need an application context (no request).
pytestmark = pytest.mark.usefixtures("app_ctx")

def _op():
    return Staff.create(login_id="op", login_id_key="op", role="operator", password_hash="x")


@pytest.mark.parametrize("field,value,code", [
    ("email", "", "required"),
    ("email", "no-at-sign", "email_format"),
    ("email", "a@b", "email_format"),
    ("email", "全角@example.jp", "email_format"),
    ("email", "two@@example.jp", "email_format"),
    ("login_id", "ab", "login_id_format"),
    ("login_id", "has space", "login_id_format"),
    ("login_id", "ユーザー", "login_id_format"),
    ("login_id", "TAKEN-ID", "login_id_taken"),
    ("name", "   ", "required"),
    ("name", " 先頭スペース", "name_edge_space"),
    ("name", "tab\there", "name_format"),
    ("phone", "03-1", "phone_format"),
    ("phone", "03-1234-ABCD", "phone_format"),
    ("phone", "", "required"),
])
def test_bad_values_are_refused_with_the_reason(db, field, value, code):
    c = gen_contract()
    gen_user(c, login_id="taken-id")
    user = gen_user(c)
    assert console.validate(user, field, value) == code
    with pytest.raises(console.Invalid) as exc:
        console.update_field(_op(), user.id, field, value, user.version)
    assert exc.value.code == code
    assert User.get_by_id(user.id).version == user.version


def test_good_values_pass_and_are_cleaned(db):
    user = gen_user(gen_contract())
    for field, value in [("email", "new@example.jp"), ("login_id", "New.Login_ID+1@x"),
                         ("name", "佐藤\u3000一郎"), ("phone", "０３-１２３４-５６７８")]:
        assert console.validate(user, field, value) is None
    assert console.clean("phone", "０３-１２３４-５６７８") == "0312345678"
    sdpf_user = gen_user(gen_contract(parent=gen_contract()))
    assert console.validate(sdpf_user, "phone", "") is None  # SDPF users may have no phone


def test_login_id_uniqueness_is_per_portal_and_case_insensitive(db):
    parent = gen_contract()
    gen_user(parent, login_id="Shared@Example.jp")
    sdpf_user = gen_user(gen_contract(parent=parent))
    business_user = gen_user(parent)
    assert console.validate(sdpf_user, "login_id", "shared@example.jp") is None
    assert console.validate(business_user, "login_id", "SHARED@example.jp") == "login_id_taken"
    assert console.validate(business_user, "login_id", business_user.login_id.upper()) is None  # itself


def test_email_change_voids_links_notifies_both_addresses_and_is_audited(app, db):
    user = gen_user(gen_contract(), email="old@example.jp")
    raw = tokens.issue(user, tokens.RESET, 30)
    op = _op()
    fresh = console.update_field(op, user.id, "email", " New@Example.jp ", user.version, ip="10.0.0.1")
    assert fresh.email == "New@Example.jp" and fresh.email_key == "new@example.jp"
    assert fresh.version == user.version + 1
    assert tokens.check(raw, tokens.RESET).problem == "voided"
    mails = {m.recipient: m for m in Mail.select().where(Mail.kind == "email_changed")}
    assert set(mails) == {"old@example.jp", "New@Example.jp"}
    assert mails["old@example.jp"].subject == "登録メールアドレス変更のお知らせ"
    assert "old@example.jp" in mails["old@example.jp"].body_text
    entry = AuditEntry.get(AuditEntry.action == "email_changed")
    assert (entry.old_value, entry.new_value, entry.field, entry.ip) == \
        ("old@example.jp", "New@Example.jp", "email", "10.0.0.1")
    assert entry.actor_label == "staff:op" and entry.target_user_id == user.id


def test_login_id_change_notifies_the_user_in_their_language(app, db):
    user = gen_user(gen_contract(), login_id="before", language="en")
    console.update_field(_op(), user.id, "login_id", "after-change", user.version)
    mail = Mail.get(Mail.kind == "login_id_changed")
    assert mail.recipient == user.email and mail.subject == "Your login ID was changed"
    assert "after-change" in mail.body_text and "before" in mail.body_text
    assert User.get_by_id(user.id).login_id_key == "after-change"


def test_a_stale_edit_is_refused_with_the_current_value_and_nothing_lost(app, db):
    user = gen_user(gen_contract(), name="元の名前")
    loaded_version = user.version
    op = _op()
    console.update_field(op, user.id, "name", "管理者Aの修正", loaded_version)
    with pytest.raises(console.Conflict) as exc:
        console.update_field(op, user.id, "name", "管理者Bの修正", loaded_version)
    assert exc.value.current.name == "管理者Aの修正"
    assert User.get_by_id(user.id).name == "管理者Aの修正"
    assert AuditEntry.select().where(AuditEntry.action == "name_changed").count() == 1


def test_edits_need_the_edit_right_and_the_scope(app, db):
    hd = Staff.create(login_id="hd", login_id_key="hd", role="helpdesk", password_hash="x")
    user = gen_user(gen_contract())
    with pytest.raises(console.NotFound):
        console.update_field(hd, user.id, "name", "x", user.version)
    child_admin = gen_user(gen_contract(parent=gen_contract()), is_admin=True, first_login_done=True)
    with pytest.raises(console.NotFound):
        console.update_field(child_admin, user.id, "name", "x", user.version)
    with pytest.raises(console.NotFound):
        console.reset(child_admin, user.id, console.UNLOCK)


def test_reset_two_step_clears_method_secret_backup_codes_and_browsers(app, db):
    user = gen_user(gen_contract(), first_login_done=True, twostep_method="totp", totp_secret="S" * 32)
    BackupCode.create(user=user, code_hash="h")
    TrustedBrowser.create(user=user, token_hash="t" * 64, expires_at=utcnow() + datetime.timedelta(days=3))
    console.reset(_op(), user.id, console.RESET_2STEP, ip="1.2.3.4")
    fresh = User.get_by_id(user.id)
    assert fresh.twostep_method is None and fresh.totp_secret is None
    assert fresh.password_hash == user.password_hash  # the password is untouched
    assert not BackupCode.select().exists() and not TrustedBrowser.select().exists()
    assert AuditEntry.get(AuditEntry.action == "reset_twostep").old_value == "totp"


def test_unlock_disable_enable_and_clear_browsers(app, db):
    user = gen_user(gen_contract(), failed_logins=9, locked_until=utcnow() + datetime.timedelta(minutes=9))
    TrustedBrowser.create(user=user, token_hash="t" * 64, expires_at=utcnow() + datetime.timedelta(days=3))
    op = _op()
    assert not console.reset(op, user.id, console.UNLOCK).is_locked()
    assert User.get_by_id(user.id).failed_logins == 0
    assert console.reset(op, user.id, console.DISABLE).disabled
    assert not console.reset(op, user.id, console.ENABLE).disabled
    console.reset(op, user.id, console.CLEAR_TRUSTED)
    assert not TrustedBrowser.select().exists()
    actions = [e.action for e in AuditEntry.select().order_by(AuditEntry.id)]
    assert actions == ["unlock", "disable", "enable", "clear_trusted_browsers"]


def test_reminders_go_only_to_pending_users_in_scope(app, db):
    parent = gen_contract()
    child = gen_contract(parent=parent)
    admin = gen_user(parent, is_admin=True, first_login_done=True)
    pending = gen_user(child)
    done = gen_user(child, first_login_done=True)
    outside = gen_user(gen_contract())
    sent = console.remind(admin, [pending.id, done.id, outside.id, "junk"], base_url="http://h")
    assert sent == 1
    mail = Mail.get(Mail.kind == "reminder")
    assert mail.recipient == pending.email and "http://h/sdpf/" in mail.body_text
    assert pending.login_id in mail.body_text


def test_diagnosis_names_each_reason_with_its_fix(app, db):
    user = gen_user(gen_contract(), name="佐藤\u3000一郎", legacy=True, legacy_login_id="sato",
                    login_id="sato_ecid1", locked_until=utcnow() + datetime.timedelta(minutes=5))
    codes = {r.code: r for r in diagnosis.diagnose(user)}
    assert {"locked", "first_login_pending", "reset_none", "login_id_changed",
            "name_fullwidth_space"} <= set(codes)
    assert codes["locked"].fix == "unlock" and codes["name_fullwidth_space"].fix == "edit_name"
    assert codes["login_id_changed"].params == {"old": "sato", "new": "sato_ecid1"}
    assert not diagnosis.can_sign_in(list(codes.values()))
    ResetToken.create(user=user, token_hash="x" * 64, created_at=utcnow() - datetime.timedelta(hours=2),
                      expires_at=utcnow() - datetime.timedelta(hours=1))
    assert "reset_expired" in {r.code for r in diagnosis.diagnose(user)}


def test_diagnosis_shows_a_failed_delivery_with_the_smtp_answer(app, db):
    from accounts import outbox

    user = gen_user(gen_contract(), email="bounce@example.jp")
    m = outbox.enqueue(recipient=user.email, subject="s", body_text="b", kind="reset", user=user)
    MailAttempt.create(mail=m, ok=False, smtp_code=550, smtp_answer="5.1.1 user unknown")
    Mail.update(status="failed").where(Mail.id == m.id).execute()
    reason = next(r for r in diagnosis.diagnose(user) if r.code == "delivery_failed")
    assert reason.params["answer"] == "550 5.1.1 user unknown" and reason.fix == "edit_email"


def test_diagnosis_before_the_migration_period(app, db):
    period.set_period(utcnow() + datetime.timedelta(days=3), utcnow() + datetime.timedelta(days=30))
    migrated = gen_user(gen_contract(), legacy=True)
    native = gen_user(gen_contract())
    assert "before_period" in {r.code for r in diagnosis.diagnose(migrated)}
    assert "before_period" not in {r.code for r in diagnosis.diagnose(native)}


def test_visible_spaces_tell_full_width_from_half_width():
    assert diagnosis.visible_spaces("佐藤\u3000一郎 様") == [
        ("text", "佐藤"), ("full", "\u3000"), ("text", "一郎"), ("half", " "), ("text", "様")]
