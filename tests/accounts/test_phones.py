"""The one phone rule (SPEC 4: NFKC, then ASCII 0-9 only) and every caller that uses it: the
migration, the identity check, the console's corrections and the legacy pop-up."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from accounts import console, identity, legacy, phones
from accounts import legacy_import as migration
from tests.helpers import gen_contract, gen_user

# typed -> (its digits, what a correction stores, whether a correction accepts it)
CASES = {
    "0312345678": ("0312345678", "0312345678", True),
    "03-1234-5678": ("0312345678", "0312345678", True),
    "(03) 1234 5678": ("0312345678", "0312345678", True),
    "０３－１２３４－５６７８": ("0312345678", "0312345678", True),      # full-width digits and hyphens
    "（０３）１２３４\u3000５６７８": ("0312345678", "0312345678", True),  # full-width parentheses, space
    "03²-1234-5678": ("0312345678", "03²12345678", False),  # ² is not a digit
    "①0312345678": ("0312345678", "①0312345678", False),                   # nor is ①
    "٠٣١٢٣٤٥٦٧٨": ("", "٠٣١٢٣٤٥٦٧٨", False),  # Arabic-Indic digits are not ASCII after NFKC
    "03-1234-ABCD": ("031234", "031234ABCD", False),
    "03-1": ("031", "031", False),
}


@pytest.mark.parametrize("typed", sorted(CASES))
def test_the_shared_rule_reads_only_ascii_digits_after_nfkc(typed):
    digits, stored, accepted = CASES[typed]
    assert phones.normalise_phone_digits(typed) == digits
    assert phones.typed_phone(typed) == stored
    assert (phones.phone_problem(stored) is None) is accepted


@pytest.mark.parametrize("char", ["²", "³", "¹", "①", "⑴", "⒈", "㉑", "٣", "Ⅲ"])
def test_superscripts_circled_numbers_and_other_scripts_digits_are_not_digits(char):
    assert phones.phone_digit(char) is None
    assert phones.normalise_phone_digits(f"0312{char}345678") == "0312345678"


@given(st.text(max_size=40))
def test_digits_are_ascii_and_the_typed_form_keeps_every_digit(text):
    digits = phones.normalise_phone_digits(text)
    assert set(digits) <= phones.ASCII_DIGITS
    assert phones.normalise_phone_digits(phones.typed_phone(text)) == digits
    assert phones.typed_phone(phones.typed_phone(text)) == phones.typed_phone(text)


@pytest.mark.parametrize("typed", sorted(CASES))
def test_console_corrections_and_the_legacy_popup_take_the_shared_rule(db, typed):
    _digits, stored, accepted = CASES[typed]
    user = gen_user(gen_contract(), phone="0399999999")
    assert console.clean("phone", typed) == stored
    assert (console.validate(user, "phone", typed) is None) is accepted
    popup = legacy.check_business_fields(user, None, typed)
    assert ("phone" not in popup) is accepted


@pytest.mark.parametrize("typed", sorted(CASES))
def test_the_migration_and_the_identity_check_take_the_shared_rule(db, typed):
    digits = CASES[typed][0]
    expected = digits if 4 <= len(digits) <= 32 else migration.DEFAULT_PHONE
    assert migration.apply_phone_rule(typed) == (typed if typed.isascii() and typed.isdigit()
                                                 and 4 <= len(typed) <= 32 else expected)
    user = gen_user(gen_contract(), login_id="phone-user", email="p@example.jp", name="佐藤", phone=expected)
    found = identity.find_matching_user("business", {"login_id": "phone-user", "email": "p@example.jp",
                                                     "name": "佐藤", "phone": typed})
    assert (found == user) is (digits == expected)
