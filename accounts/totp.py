"""TOTP (RFC 6238) for portal users and staff: secrets, otpauth URIs, QR codes as SVG, verification.

A code is accepted within one time step either side; a time step once accepted is refused again
(the caller stores ``last_step``), so a code cannot be replayed.
"""
import io

import pyotp
import qrcode
import qrcode.image.svg

from .fields import typed_code

VALID_WINDOW = 1  # one 30 s step either side


def new_secret() -> str:
    return pyotp.random_base32(32)


def grouped(secret: str) -> str:
    """The secret in groups of four for manual entry."""
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """An inline SVG of the QR code (no Pillow at run time)."""
    img = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    buf = io.BytesIO()
    img.save(buf)
    svg = buf.getvalue().decode("utf-8")
    return svg[svg.index("<svg"):]


def verify(secret: str | None, code: str, last_step: int | None, now: float | None = None) -> int | None:
    """The accepted time step, or None: wrong code, malformed code, or a replayed step."""
    if not secret:
        return None
    code = typed_code(code)
    if code is None:
        return None
    totp = pyotp.TOTP(secret)
    import time as _time

    at = now if now is not None else _time.time()
    current = int(at // totp.interval)
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if last_step is not None and step <= last_step:
            continue
        if pyotp.utils.strings_equal(totp.generate_otp(step), code):
            return step
    return None
