"""The identity check of the reset request (SPEC 5.2): which fields each portal asks, how they compare.

Login ID and e-mail compare case-insensitively; the name compares byte for byte (a full-width
space U+3000 is not a half-width one, as the guide warns); the phone compares after the migration's
phone rule. The caller answers the same page whether or not this matched (no enumeration).
"""
import hmac

from .models import BUSINESS, User
from .phones import normalise_phone_digits

FIELDS = {BUSINESS: ("login_id", "email", "name", "phone"), "sdpf": ("login_id", "email")}
MAX_FIELD_LENGTH = 255


def fields_for(portal: str) -> tuple[str, ...]:
    return FIELDS.get(portal, FIELDS["sdpf"])


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def find_matching_user(portal: str, data: dict) -> User | None:
    """The user whose identity information matches every field the portal asks, else None.

    Every field is compared even after a mismatch, so that the work does not depend on which
    field was wrong.
    """
    login_id = (data.get("login_id") or "").strip()
    if not login_id or len(login_id) > MAX_FIELD_LENGTH:
        return None
    user = User.by_login_id(portal, login_id)
    stored = user or User(email="", email_key="", name="", phone="")
    ok = user is not None
    ok &= _same((data.get("email") or "").strip().lower(), stored.email_key or "")
    if "name" in fields_for(portal):
        # Only line ends are trimmed: spaces inside and around the name are part of it.
        ok &= _same((data.get("name") or "").strip("\r\n"), stored.name or "")
    if "phone" in fields_for(portal):
        typed = normalise_phone_digits(data.get("phone"))
        ok &= bool(typed) and _same(typed, normalise_phone_digits(stored.phone))
    return user if ok else None
