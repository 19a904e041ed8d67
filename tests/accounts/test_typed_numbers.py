"""Numbers people type or links carry are read by one digit rule (accounts.phones): full-width
０-９ count, ² ① and other scripts' digits do not. One-time codes read the same for TOTP and
Mail OTP; ids and versions in forms and links never reach int() with a character it refuses."""
import pyotp
import pytest

from accounts import fields, totp, twostep
from tests.helpers import gen_contract, gen_user

CONFIG = {"MAIL_OTP_MINUTES": 10, "MAIL_OTP_MAX_TRIES": 5, "MAIL_OTP_RESEND_SECONDS": 60,
          "MAIL_SUBJECT_OTP_BUSINESS": "subject", "MAIL_SUBJECT_OTP_SDPF": "subject"}
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


@pytest.mark.parametrize("typed,code", [
    ("123456", "123456"), (" 123 456 ", "123456"), ("１２３４５６", "123456"), ("123\u3000456", "123456"),
    ("12345²", None), ("①23456", None), ("١٢٣٤٥٦", None), ("12345", None), ("1234567", None),
    ("12345a", None), ("", None), (None, None), ("1" * 10_000, None),
])
def test_a_typed_code_is_six_digits_by_the_one_digit_rule(typed, code):
    assert fields.typed_code(typed) == code


@pytest.mark.parametrize("raw,number", [
    ("42", 42), ("0", 0), (7, 7), ("²", None), ("①", None), ("４２", None), ("-1", None), ("", None),
    (None, None), ("1" * 19, None), ("4 2", None),
])
def test_a_whole_number_from_a_form_or_link_is_ascii_digits_only(raw, number):
    assert fields.whole_number(raw) == number


def test_totp_takes_full_width_digits_and_refuses_superscripts():
    secret = pyotp.random_base32()
    now = 1_800_000_000
    code = pyotp.TOTP(secret).at(now)
    assert totp.verify(secret, code.translate(FULL_WIDTH), None, now=now) is not None
    assert totp.verify(secret, code[:-1] + code[-1].translate(SUPERSCRIPT), None, now=now) is None


def test_mail_otp_takes_full_width_digits_like_totp(db, app_ctx):
    user = gen_user(gen_contract())
    code = twostep.send_mail_otp(user, config=CONFIG, force=False).code
    wrong = code[:-1] + code[-1].translate(SUPERSCRIPT)
    assert twostep.verify_mail_otp(user, wrong, config=CONFIG)[0] == twostep.CODE_WRONG
    assert twostep.verify_mail_otp(user, code.translate(FULL_WIDTH), config=CONFIG)[0] == twostep.CODE_OK
