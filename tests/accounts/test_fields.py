"""The one rule for a typed e-mail address, shared by the profile, the console and the pop-up."""
import pytest

from accounts import fields


@pytest.mark.parametrize("value,problem", [
    ("taro.yamada@example.co.jp", None),
    ("user..name@docomo.ne.jp", None),  # repeated dots exist in Japanese mobile addresses
    ("a+tag@b.jp", None),
    ("", "required"),
    ("no-at-sign.example.jp", "invalid"),
    ("two@@example.jp", "invalid"),
    ("space in@example.jp", "invalid"),
    ("ｆｕｌｌ@example.jp", "invalid"),   # full-width letters
    ("name＠example.jp", "invalid"),     # full-width @
    ("name@localhost", "invalid"),
    ("a" * 250 + "@b.jp", "too_long"),
])
def test_email_problem(value, problem):
    assert fields.email_problem(value) == problem


@pytest.mark.parametrize("address,masked", [
    ("sample@example.jp", "s****@e****.jp"),
    ("x@localhost", "x****@l****"),
    ("", "****"),
])
def test_mask_email_keeps_the_first_characters_and_the_tld(address, masked):
    assert fields.mask_email(address) == masked
