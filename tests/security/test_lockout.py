"""SPEC 11.4 (findings 4 and 5): failures counted per account and per step; waits that grow but
never exceed 15 minutes; a hard lock after 100 that only a reset by mail or an unlock lifts; an
attacker with only a login ID keeps nobody from resetting, nor a trusted browser out for long."""
import datetime

import pytest
import time_machine

from accounts import console, lockout, signin, staff_auth, twostep
from accounts.clock import utcnow
from accounts.models import LegacyAccount, Mail, Staff, User
from tests.security.attack import PASSWORD, victim
from tests.web.portal_journey import Portal


def _wrong(user, n, now):
    for _ in range(n):
        signin.verify_password(user.portal, user.login_id, "Wrong-pass9", threshold=10, now=now)


def test_waits_never_exceed_15_minutes_and_100_failures_lock_until_a_reset(db):
    user = victim()
    now = utcnow()
    _wrong(user, 10, now)
    waits = []
    for _ in range(90):  # each further failure after the lock ends
        fresh = User.get_by_id(user.id)
        waits.append(fresh.locked_until - now)
        now = fresh.locked_until + datetime.timedelta(seconds=1)
        _wrong(user, 1, now)
    assert max(waits) == datetime.timedelta(minutes=15)
    fresh = User.get_by_id(user.id)
    assert fresh.failed_logins == 100 and lockout.hard_locked(fresh)
    later = now + datetime.timedelta(days=2)
    assert signin.verify_password("business", user.login_id, PASSWORD, threshold=10,
                                  now=later).outcome == signin.REFUSED
    signin.set_password(fresh, "Another1!x", actor=fresh, action="password_set_by_reset")
    assert signin.verify_password("business", user.login_id, "Another1!x", threshold=10,
                                  now=later).outcome == signin.OK


def test_second_step_failures_of_every_channel_add_up_and_lock_for_15_minutes(db):
    user = victim()
    for reason in ["wrong TOTP code"] * 4 + ["wrong mail OTP"] * 3 + ["wrong backup code"] * 3:
        signin.register_twostep_failure(user, reason=reason)
    fresh = User.get_by_id(user.id)
    assert fresh.twostep_failures == 10 and signin.twostep_locked(fresh)
    assert fresh.twostep_locked_until - utcnow() <= datetime.timedelta(minutes=15)
    # A correct password does not wipe them ...
    assert signin.verify_password("business", user.login_id, PASSWORD, threshold=10).outcome == signin.OK
    assert User.get_by_id(user.id).twostep_failures == 10
    # ... a passed second step does.
    signin.twostep_succeeded(User.get_by_id(user.id))
    assert User.get_by_id(user.id).twostep_failures == 0


def test_someone_with_only_a_login_id_cannot_keep_the_owner_from_a_reset_by_mail(client, db):
    from tests.helpers import run_worker

    user = victim("sdpf", email="owner@example.jp")
    now = utcnow()
    _wrong(user, 100, now)  # whatever it takes: even a hard lock
    attacker = Portal(client, "sdpf")
    for _ in range(4):  # and reset requests that do not match
        attacker.request_reset(login_id=user.login_id, email="attacker@example.jp")
    owner = Portal(client.application.test_client(), "sdpf")
    owner.request_reset(login_id=user.login_id, email="owner@example.jp")
    run_worker(client.application)
    mail = Mail.get(Mail.kind == "reset")
    assert mail.recipient == "owner@example.jp"
    owner.set_password(owner.reset_link(user), "Newpass1!x")
    fresh = User.get_by_id(user.id)
    assert fresh.failed_logins == 0 and not lockout.password_locked(fresh)


def test_a_trusted_browser_of_the_owner_is_not_kept_out_by_a_stranger_s_lock(db):
    user = victim()
    raw = twostep.trust_browser(user, days=30)
    now = utcnow()
    _wrong(user, 12, now)
    assert lockout.password_locked(User.get_by_id(user.id), now)
    refused = signin.verify_password("business", user.login_id, PASSWORD, threshold=10, now=now)
    assert refused.outcome == signin.REFUSED  # an unknown browser waits
    ok = signin.verify_password("business", user.login_id, PASSWORD, threshold=10, now=now, trusted_token=raw)
    assert ok.outcome == signin.OK
    with time_machine.travel(now + datetime.timedelta(minutes=16), tick=False):
        # and any browser after at most 15 minutes
        assert signin.verify_password("business", user.login_id, PASSWORD, threshold=10).outcome == signin.OK


def test_the_per_account_limit_counts_failures_not_the_owner_s_successes(make_app, db):
    app = make_app(RATELIMIT_ENABLED=True, LOCKOUT_THRESHOLD=1000)
    user = victim()
    stranger = Portal(app.test_client(), "business")
    stranger.c.environ_base["REMOTE_ADDR"] = "192.0.2.1"
    for _ in range(9):
        assert stranger.sign_in(user.login_id, "Wrong-pass9").status_code == 401
    owner = Portal(app.test_client(), "business")
    owner.c.environ_base["REMOTE_ADDR"] = "192.0.2.2"
    for _ in range(5):  # each success would have used up the account's allowance if counted
        assert owner.sign_in(user.login_id, PASSWORD).status_code == 303
    assert stranger.sign_in(user.login_id, "Wrong-pass9").status_code == 401  # the 10th failure
    assert stranger.sign_in(user.login_id, "Wrong-pass9").status_code == 429


@pytest.mark.parametrize("right_password", [True, False])
def test_a_locked_staff_account_answers_the_same_to_right_and_wrong(db, right_password):
    from accounts.passwords import hasher

    staff = Staff.create(login_id="hd", login_id_key="hd", role="helpdesk",
                         password_hash=hasher().hash("Staff-pass1"), totp_confirmed_at=utcnow())
    for _ in range(10):
        staff_auth.check_password("hd", "wrong", threshold=10)
    fresh = Staff.get_by_id(staff.id)
    assert fresh.locked_until - utcnow() <= datetime.timedelta(minutes=15)
    result = staff_auth.check_password("hd", "Staff-pass1" if right_password else "nope", threshold=10)
    assert result == (None, "invalid")


def test_staff_totp_failures_lock_the_code_step_not_the_password(db):
    from accounts.passwords import hasher

    staff = Staff.create(login_id="op", login_id_key="op", role="operator",
                         totp_secret="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
                         password_hash=hasher().hash("Staff-pass1"), totp_confirmed_at=utcnow())
    for _ in range(10):
        assert not staff_auth.verify_code(staff, "abcdef")  # never a valid code
    fresh = Staff.get_by_id(staff.id)
    assert fresh.twostep_failures == 10 and staff_auth.code_locked(fresh)
    assert staff_auth.check_password("op", "Staff-pass1", threshold=10)[0] is not None


def test_the_legacy_sign_in_locks_like_the_portals(db):
    from accounts import legacy
    from tests.legacy_helpers import PASSWORD as LEGACY_PASSWORD
    from tests.legacy_helpers import gen_legacy

    account = gen_legacy(login_id="old@example.jp")
    for _ in range(10):
        assert not legacy.authenticate("old@example.jp", "wrong", threshold=10).ok
    fresh = LegacyAccount.get_by_id(account.id)
    assert fresh.failed_logins == 10 and fresh.locked_until is not None
    assert not legacy.authenticate("old@example.jp", LEGACY_PASSWORD, threshold=10).ok  # locked
    with time_machine.travel(fresh.locked_until + datetime.timedelta(seconds=1), tick=False):
        assert legacy.authenticate("old@example.jp", LEGACY_PASSWORD, threshold=10).ok


def test_an_administrator_unlock_lifts_every_lock(db):
    user = victim()
    _wrong(user, 100, utcnow())
    for _ in range(10):
        signin.register_twostep_failure(user)
    operator = Staff.create(login_id="op", login_id_key="op", role="operator", password_hash="x")
    console.reset(operator, user.id, console.UNLOCK)
    fresh = User.get_by_id(user.id)
    assert (fresh.failed_logins, fresh.locked_until, fresh.twostep_failures, fresh.twostep_locked_until) \
        == (0, None, 0, None)
