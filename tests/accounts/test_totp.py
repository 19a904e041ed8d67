"""TOTP: standard codes accepted within one step either side, never twice."""
import pyotp

from accounts import totp

NOW = 1_800_000_000.0


def test_the_code_of_a_standard_app_is_accepted_within_one_step_either_side():
    secret = totp.new_secret()
    t = pyotp.TOTP(secret)
    for offset in (-30, 0, 30):
        assert totp.verify(secret, t.at(NOW + offset), None, now=NOW) is not None
    assert totp.verify(secret, t.at(NOW - 90), None, now=NOW) is None
    assert totp.verify(secret, t.at(NOW + 90), None, now=NOW) is None


def test_a_code_once_used_is_refused_a_second_time():
    secret = totp.new_secret()
    code = pyotp.TOTP(secret).at(NOW)
    step = totp.verify(secret, code, None, now=NOW)
    assert step is not None
    assert totp.verify(secret, code, step, now=NOW) is None
    assert totp.verify(secret, code, step, now=NOW + 20) is None


def test_malformed_codes_are_refused():
    secret = totp.new_secret()
    for bad in ("", "12345", "1234567", "abcdef", None):
        assert totp.verify(secret, bad, None, now=NOW) is None


def test_qr_code_is_svg_and_uri_names_issuer_and_account():
    uri = totp.provisioning_uri("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "sample@ntt.com", "ビジネスポータル")
    assert uri.startswith("otpauth://totp/") and "issuer=" in uri and "sample%40ntt.com" in uri
    svg = totp.qr_svg(uri)
    assert svg.startswith("<svg") and "<path" in svg
    assert totp.grouped("ABCDEFGHIJKL") == "ABCD EFGH IJKL"
