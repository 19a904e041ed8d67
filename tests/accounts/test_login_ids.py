"""The one login-ID rule (accounts.fields.login_id_problem), decided from the data: migrated login
IDs are e-mail addresses, ``<login ID>_<ECID>`` after a conflict, or words with digits and hyphens.
The console, the legacy pop-up and staff accounts use it; the migration's own rule is its
``imported=True`` form."""
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accounts import console, fields, legacy, staff
from accounts import legacy_import as migration
from accounts.demo import load_demo
from accounts.models import Staff, User
from tests.helpers import gen_contract, gen_user

GOOD = [
    "sample@ntt.com",                    # the guide's example
    "sample@ntt.com_ecid1234567890",     # ... after the conflict suffix
    "Sample@NTT.com_ECID1234567890",
    "midori-user1", "locked-user", "abc",
    "taro.yamada+portal@example.co.jp",
    "o'brien@example.jp",                # e-mail addresses may hold these symbols
    "a!#$%&'*+/=?^_`{|}~-@example.jp",
]
BAD = {
    "": "required",
    "ab": "invalid",                     # 3 characters at least
    "has space": "invalid",
    "tab\there": "invalid",
    "line\nbreak": "invalid",
    "ユーザー": "invalid",                # full-width characters
    "ｓａｍｐｌｅ": "invalid",
    "name＠example.jp": "invalid",       # full-width @
    "a(b)c": "invalid", "a,b": "invalid", "a;b": "invalid", "a\"b": "invalid", "a<b": "invalid",
    "a\\b": "invalid", "a[b]": "invalid", "a:b": "invalid",
    "x" * 256: "too_long",
}


@pytest.mark.parametrize("value", GOOD)
def test_email_like_and_suffixed_login_ids_are_valid(value):
    assert fields.login_id_problem(value) is None
    assert fields.login_id_problem(value, imported=True) is None


@pytest.mark.parametrize("value", sorted(BAD))
def test_blanks_full_width_and_other_symbols_are_refused(value):
    assert fields.login_id_problem(value) == BAD[value]
    assert fields.login_id_problem(value + "\n") in ("invalid", "too_long")  # no "$" loophole


emails = st.from_regex(fields.EMAIL_RE, fullmatch=True).filter(lambda v: fields.email_problem(v) is None)


@given(emails, st.from_regex(r"ecid[0-9]{10}", fullmatch=True))
def test_every_address_the_portal_accepts_and_its_suffixed_form_is_a_login_id(address, ecid):
    if len(address) >= fields.MIN_LOGIN_ID:
        assert fields.login_id_problem(address) is None
    suffixed = f"{address}_{ecid}"
    if len(suffixed) <= fields.MAX_LOGIN_ID:
        assert fields.login_id_problem(suffixed) is None


@given(st.text(alphabet=string.printable + "\u3000あ²", max_size=20))
def test_a_login_id_typed_anew_is_one_the_migration_accepts(value):
    if fields.login_id_problem(value) is None:
        assert fields.login_id_problem(value, imported=True) is None


@pytest.mark.parametrize("value", ["ab", "ユーザー", "x", "a,b"])
def test_the_migration_keeps_legacy_login_ids_that_a_correction_would_refuse(value):
    assert fields.login_id_problem(value, imported=True) is None
    assert migration.parse_row({"login_id": value, "email": "a@b.jp", "name": "n", "phone": "",
                                "contract_ecid": "ecid1234567890", "parent_ecid": "",
                                "contract_name": "c", "is_admin": ""}).login_id == value


def test_every_login_id_of_the_demo_data_is_valid(db):
    load_demo()
    for user in User.select():
        assert fields.login_id_problem(user.login_id) is None, user.login_id
    for member in Staff.select():
        assert fields.login_id_problem(member.login_id, max_length=staff.MAX_LOGIN_ID) is None


@pytest.mark.parametrize("value", sorted(BAD))
def test_the_console_and_the_legacy_popup_refuse_the_same_login_ids(db, value):
    user = gen_user(gen_contract(), login_id="current-id")
    code = console.validate(user, "login_id", value)
    assert code == ("required" if BAD[value] == "required" else "login_id_format")
    assert legacy.check_fields(user, "a@example.jp", value)["login_id"] == BAD[value]


@pytest.mark.parametrize("value", GOOD)
def test_the_console_and_the_legacy_popup_accept_the_same_login_ids(db, value):
    user = gen_user(gen_contract(), login_id="current-id")
    assert console.validate(user, "login_id", value) is None
    assert "login_id" not in legacy.check_fields(user, "a@example.jp", value)


def test_a_users_own_imported_login_id_is_never_refused_for_its_form(db):
    user = gen_user(gen_contract(), login_id="旧ID")  # as the legacy system had it
    assert console.validate(user, "login_id", "旧ID") is None
    assert legacy.check_fields(user, "a@example.jp", "旧ID") == {}
    assert console.validate(user, "login_id", "新ID") == "login_id_format"


def test_staff_login_ids_take_the_same_characters_with_their_own_length(db):
    assert staff.create_staff_account("o'neil@example.jp", "helpdesk", "a-long-password-1")
    for bad in ("ab", "has space", "ユーザー", "x" * 65):
        with pytest.raises(staff.StaffError):
            staff.create_staff_account(bad, "helpdesk", "a-long-password-1")
