"""The legacy area's rules as functions: where tickets go, masked addresses, hash formats, identity."""
import pytest
import time_machine

from accounts import legacy, tickets
from tests.helpers import gen_contract, gen_user
from tests.legacy_helpers import AFTER_AT, BEFORE_AT, DURING_AT, gen_legacy, set_period


@pytest.mark.parametrize("when,business_legacy,business_native,sdpf_legacy", [
    (BEFORE_AT, "business", "business", "sdpf"),
    (DURING_AT, "legacy", "business", "sdpf"),
    (AFTER_AT, "business", "business", "sdpf"),
])
def test_where_tickets_are_filed_follows_the_guide(db, when, business_legacy, business_native, sdpf_legacy):
    set_period()
    parent = gen_contract()
    bl = gen_user(contract=parent, legacy=True)
    bn = gen_user(contract=parent)
    sl = gen_user(contract=gen_contract(parent=parent), legacy=True)
    with time_machine.travel(when, tick=False):
        assert (tickets.place_for(bl), tickets.place_for(bn), tickets.place_for(sl)) == \
            (business_legacy, business_native, sdpf_legacy)
        assert tickets.legacy_may_file() is (when != AFTER_AT)


@pytest.mark.parametrize("email,masked", [
    ("taro.yamada@example.co.jp", "t****@e****.jp"),
    ("a@b.jp", "a****@b****.jp"),
    ("x@localhost", "x****@l****"),
])
def test_masked_addresses_keep_enough_to_recognise(email, masked):
    assert legacy.mask_email(email) == masked


@pytest.mark.parametrize("stored,kind", [
    ("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA", "argon2"),
    ("$2b$04$abcdefghijklmnopqrstuuAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "bcrypt"),
    ("$2b$04$abcdefghijklmnopqrstuuAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", None),    # one character short
    ("$argon2id$v=19$garbage", None),
    ("$2b$12$short", None),
    ("pbkdf2:sha256:600000$salt$not-hex", None),
    ("pbkdf2:sha256:600000$salt$" + "ab" * 32, "werkzeug"),
    ("scrypt:32768:8:1$salt$" + "cd" * 64, "werkzeug"),
    ("sha1$salt$abcdef", None),
    ("", None),
    (None, None),
])
def test_hash_formats_are_recognised(stored, kind):
    assert legacy.hash_format(stored) == kind


def test_identity_marks_only_real_changes(db):
    same = gen_legacy(login_id="same-id", phone="0312345678", legacy_phone="0312345678")
    ident = legacy.identity(same)
    assert not ident.login_id_changed and not ident.phone_changed and ident.is_business
    changed = gen_user(contract=gen_contract(), login_id="dup@x.jp_ecid1", legacy=True,
                       legacy_login_id="dup@x.jp", phone="0312345678", legacy_phone="")
    ident = legacy.identity(gen_legacy(user=changed))
    assert ident.login_id_changed and ident.phone_changed and ident.legacy_login_id == "dup@x.jp"


def test_a_login_id_taken_between_check_and_write_is_refused_and_nothing_is_written(app, db, monkeypatch):
    from accounts.models import AuditEntry, LegacyAccount, Mail, User

    acc = gen_legacy(login_id="racer")
    gen_user(contract=acc.user.contract, login_id="winner")
    monkeypatch.setattr(legacy, "check_fields", lambda *a, **k: {})  # the other writer came in between
    with pytest.raises(legacy.ConfirmError) as exc:
        legacy.confirm(acc, email="new@example.jp", login_id="WINNER", config=app.config,
                       base_url="http://localhost")
    assert exc.value.errors == {"login_id": "taken"}
    assert User.get_by_id(acc.user_id).login_id == "racer"
    assert User.get_by_id(acc.user_id).email != "new@example.jp"
    assert Mail.select().count() == 0 and AuditEntry.select().count() == 0
    assert LegacyAccount.get_by_id(acc.id).confirmed_at is None


def test_the_legacy_portal_signs_in_before_and_during_the_period_and_pops_up_only_during():
    from accounts import period

    phases = (period.BEFORE, period.DURING, period.AFTER)
    assert [legacy.signin_open(p) for p in phases] == [True, True, False]
    assert [legacy.popup_open(p) for p in phases] == [False, True, False]
