"""Shared domain pieces: link tokens, the migration period, the console scope, the reset mail."""
import datetime

import pytest

from accounts import period, recovery, scope, tokens
from accounts.clock import utcnow
from accounts.models import Mail, ResetToken, Staff, User
from tests.helpers import gen_contract, gen_user

# Domain functions that render mails need an application context (no request).
pytestmark = pytest.mark.usefixtures("app_ctx")

def test_a_token_works_once_and_a_newer_one_voids_the_older(db):
    u = gen_user()
    first = tokens.issue(u, tokens.RESET, 30)
    second = tokens.issue(u, tokens.RESET, 30)
    assert tokens.check(first, tokens.RESET).problem == "voided"
    assert tokens.consume(second, tokens.RESET).problem is None
    assert tokens.consume(second, tokens.RESET).problem == "used"
    assert tokens.check("nonsense", tokens.RESET).problem == "unknown"
    assert all(len(t.token_hash) == 64 and t.token_hash not in (first, second) for t in ResetToken.select())


def test_a_token_expires(db):
    u = gen_user()
    raw = tokens.issue(u, tokens.RESET, 30)
    ResetToken.update(expires_at=utcnow() - datetime.timedelta(seconds=1)).execute()
    assert tokens.consume(raw, tokens.RESET).problem == "expired"


def test_a_token_of_one_purpose_does_not_open_another(db):
    u = gen_user()
    raw = tokens.issue(u, tokens.EMAIL_CHANGE, 30, new_email="n@example.jp")
    assert tokens.check(raw, tokens.RESET).problem == "unknown"


def test_no_period_behaves_as_after(db):
    assert period.phase() == period.AFTER


@pytest.mark.parametrize("offset_days,expected",
                         [(-1, period.BEFORE), (1, period.DURING), (40, period.AFTER)])
def test_phase_follows_the_clock(db, offset_days, expected):
    start = datetime.datetime(2026, 12, 1)
    period.set_period(start, start + datetime.timedelta(days=30))
    assert period.phase(now=start + datetime.timedelta(days=offset_days)) == expected


def test_times_without_offset_are_jst_and_bad_settings_are_refused():
    assert period.parse_time("2026-12-01T00:00", "start") == datetime.datetime(2026, 11, 30, 15, 0)
    assert period.parse_time("2026-12-01T00:00+00:00", "start") == datetime.datetime(2026, 12, 1)
    with pytest.raises(period.PeriodError, match="start"):
        period.parse_time("tomorrow", "start")
    with pytest.raises(period.PeriodError, match="after the start"):
        period.validate(datetime.datetime(2026, 12, 2), datetime.datetime(2026, 12, 1))


def test_migration_period_command(runner, db):
    r = runner.invoke(args=["migration-period", "--start", "2026-12-01T00:00", "--end", "2027-03-31T23:59"])
    assert r.exit_code == 0 and "2026-12-01 00:00 JST - 2027-03-31 23:59 JST" in r.output
    r = runner.invoke(args=["migration-period", "--start", "2027-01-01T00:00", "--end", "2026-01-01T00:00"])
    assert r.exit_code == 1 and "after the start" in r.output
    assert "2026-12-01 00:00 JST" in runner.invoke(args=["migration-period"]).output
    r = runner.invoke(args=["migration-period", "--clear"])
    assert r.exit_code == 0 and period.current() is None


def _tree():
    parent = gen_contract()
    child_a, child_b = gen_contract(parent=parent), gen_contract(parent=parent)
    other = gen_contract()
    return parent, child_a, child_b, other


def test_scope_parent_admin_sees_own_tree_only(db):
    parent, child_a, child_b, other = _tree()
    admin = gen_user(parent, is_admin=True, first_login_done=True)
    inside = [gen_user(parent), gen_user(child_a), gen_user(child_b)]
    outside = gen_user(other)
    assert scope.role_of(admin) == scope.PARENT_ADMIN
    visible = {u.id for u in User.select().where(scope.user_condition(admin))}
    assert {u.id for u in inside} <= visible and outside.id not in visible
    assert scope.get_user_in_scope(admin, outside.id) is None


def test_scope_child_admin_sees_own_contract_only(db):
    parent, child_a, child_b, _ = _tree()
    admin = gen_user(child_a, is_admin=True, first_login_done=True)
    mine, sibling, up = gen_user(child_a), gen_user(child_b), gen_user(parent)
    assert scope.get_user_in_scope(admin, mine.id) == mine
    assert scope.get_user_in_scope(admin, sibling.id) is None
    assert scope.get_user_in_scope(admin, up.id) is None


def test_an_admin_before_its_first_login_or_a_plain_user_has_no_console_role(db):
    c = gen_contract()
    assert scope.role_of(gen_user(c, is_admin=True)) is None
    assert scope.role_of(gen_user(c, first_login_done=True)) is None


def test_helpdesk_reads_everything_and_may_only_send_reset_links(db):
    hd = Staff.create(login_id="hd", login_id_key="hd", role="helpdesk", password_hash="x")
    assert scope.may(hd, scope.READ) and scope.may(hd, scope.SEND_RESET)
    assert not scope.may(hd, scope.EDIT) and not scope.may(hd, scope.RESET)


def test_admins_for_an_sdpf_user_are_child_then_partner_admins(db):
    parent, child_a, _, _ = _tree()
    partner_admin = gen_user(parent, is_admin=True, first_login_done=True)
    child_admin = gen_user(child_a, is_admin=True, first_login_done=True)
    gen_user(child_a, is_admin=True)  # first login not done: does not count
    user = gen_user(child_a)
    assert {a.id for a in scope.admins_for(user)} == {partner_admin.id, child_admin.id}


def test_reset_mail_has_the_guides_subject_the_login_id_and_a_working_link(app, db):
    parent = gen_contract()
    u = gen_user(parent, login_id="sample@ntt.com_ecid1234567890", legacy_login_id="sample@ntt.com")
    mail = recovery.send_reset_link(u, config=app.config, base_url="http://x.example")
    assert mail.subject == "NTTコミュニケーションズ ビジネスポータル パスワード再設定メール"
    assert "sample@ntt.com_ecid1234567890" in mail.body_text and "sample@ntt.com" in mail.body_text
    assert "http://x.example/business/password/reset/" in mail.body_text
    raw = mail.body_text.split("/password/reset/")[1].split()[0]
    assert tokens.check(raw, tokens.RESET).problem is None
    child = gen_user(gen_contract(parent=parent))
    assert recovery.send_reset_link(child, config=app.config, base_url="http://x").subject == \
        "【Smart Data Platform】パスワード再設定"
    assert Mail.select().count() == 2


def test_reset_mail_in_english_for_a_user_who_chose_english(app, db):
    u = gen_user(language="en")
    mail = recovery.send_reset_link(u, config=app.config, base_url="http://x")
    assert "Login ID to sign in with:" in mail.body_text
