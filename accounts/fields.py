"""Rules for what a person types into an identity field: one place for the portal's profile, the
console's corrections and the legacy pop-up.

(The legacy import is deliberately more lenient: it takes the legacy data as it was, see
``accounts.migration.is_valid_email``.)
"""
import re

MAX_EMAIL = 254
# Half-width (ASCII) addresses, as Japanese carriers' mail systems take them; dots may repeat in
# the local part (some Japanese mobile addresses have them).
EMAIL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)+$")


def email_problem(value: str) -> str | None:
    """None when ``value`` may be saved as an e-mail address, else required / too_long / invalid."""
    if not value:
        return "required"
    if len(value) > MAX_EMAIL:
        return "too_long"
    if not EMAIL_RE.fullmatch(value):  # fullmatch: "$" would let a trailing line break through
        return "invalid"
    return None


def mask_email(address: str) -> str:
    """``s****@e****.jp``: first character of the local part and of the domain, and the TLD
    (the guide's ``****@****``, keeping enough for the owner to recognise it)."""
    local, _, domain = (address or "").partition("@")
    if not domain:
        return (local[:1] + "****") if local else "****"
    host, dot, tld = domain.rpartition(".")
    if not dot:
        host, tld = domain, ""
    return f"{local[:1]}****@{host[:1]}****" + (f".{tld}" if tld else "")
