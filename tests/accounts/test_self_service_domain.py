"""What the views used to do themselves, now domain functions tested without HTTP: using a reset
link, links of another portal, the current-password re-check, ending one's own sessions, the
language switch, sign-out and the method choice (each audited)."""
import pytest

from accounts import profile, recovery, sessions, signin, tokens, twostep
from accounts.models import AuditEntry, Staff, User, WebSession
from accounts.passwords import hasher
from tests.helpers import gen_contract, gen_user

NEW_PASSWORD = "Neue-Passw0rt"


def _actions():
    return [e.action for e in AuditEntry.select().order_by(AuditEntry.id)]


def test_a_reset_link_sets_the_password_once(db):
    user = gen_user(gen_contract())
    raw = tokens.issue(user, tokens.RESET, 30)
    assert recovery.set_password_from_link(raw, NEW_PASSWORD, ip="192.0.2.1") is None
    assert hasher().verify(User.get_by_id(user.id).password_hash, NEW_PASSWORD)[0]
    assert recovery.set_password_from_link(raw, "Other-Passw0rd") == "used"
    assert recovery.set_password_from_link("no-such-token", NEW_PASSWORD) == "unknown"
    assert _actions().count("password_set_by_reset") == 1


def test_a_refused_password_leaves_the_link_usable(db):
    user = gen_user(gen_contract())
    raw = tokens.issue(user, tokens.RESET, 30)
    with pytest.raises(signin.PolicyError):
        recovery.set_password_from_link(raw, "short")
    assert tokens.check(raw, tokens.RESET).problem is None


def test_a_link_is_unknown_on_another_portal(db):
    business_user = gen_user(gen_contract())
    raw = tokens.issue(business_user, tokens.RESET, 30)
    assert tokens.check(raw, tokens.RESET, portal="business").problem is None
    assert tokens.check(raw, tokens.RESET, portal="sdpf") == tokens.Check(None, "unknown")


def test_a_wrong_current_password_is_audited(db):
    user = gen_user(gen_contract(), password=NEW_PASSWORD)
    assert profile.current_password_ok(user, NEW_PASSWORD, max_length=256)
    assert not profile.current_password_ok(user, "wrong", max_length=256)
    assert not profile.current_password_ok(user, NEW_PASSWORD + "x" * 300, max_length=256)
    assert _actions() == ["password_change_refused", "password_change_refused"]


def _session(who):
    return sessions.create("", principal=sessions.principal_key(who), signed_in=True, ip="", user_agent="")[1]


def test_ending_ones_own_sessions_is_audited_against_the_user_not_against_staff(db):
    user = gen_user(gen_contract())
    mine, other, _third = _session(user), _session(user), _session(user)
    assert sessions.end_own(user, other.id, current_id=mine.id, ip="192.0.2.1")
    assert not sessions.end_own(user, mine.id, current_id=mine.id)  # not the current one
    assert sessions.end_own_others(user, current_id=mine.id) == 1
    assert [s.id for s in WebSession.select()] == [mine.id]
    entries = list(AuditEntry.select().order_by(AuditEntry.id))
    assert [(e.action, e.target_user_id) for e in entries] == [("session_ended", user.id),
                                                                ("sessions_ended", user.id)]
    member = Staff.create(login_id="hd", login_id_key="hd", role="helpdesk", password_hash="x")
    current = _session(member)
    _session(member)
    assert sessions.end_own_others(member, current_id=current.id) == 1
    assert AuditEntry.select().order_by(AuditEntry.id.desc()).first().target_user_id is None


def test_the_language_is_saved_for_users_and_staff(db):
    user = gen_user(gen_contract())
    member = Staff.create(login_id="op", login_id_key="op", role="operator", password_hash="x")
    profile.save_language(user, "en")
    profile.save_language(member, "en")
    assert User.get_by_id(user.id).language == "en" and Staff.get_by_id(member.id).language == "en"


def test_sign_out_and_the_method_choice_are_audited(db):
    user = gen_user(gen_contract())
    signin.signed_out(user, ip="192.0.2.1")
    twostep.method_chosen(user, "totp", ip="192.0.2.1")
    assert _actions() == ["signout", "twostep_method_chosen"]
