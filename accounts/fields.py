"""Rules for what a person types into an identity field (e-mail address, login ID): one place for
the portal's profile, the console's corrections, the legacy pop-up and staff accounts.

(The legacy import is deliberately more lenient about e-mail addresses: it takes the legacy data as
it was, see ``accounts.legacy_import.rules.is_valid_email``; its login-ID rule is ``login_id_problem(...,
imported=True)``.) The phone rule has its own module, accounts/phones.py.
"""
import re
import unicodedata

from .phones import phone_digit

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


# Login IDs. The data decides: the guide's migrated login IDs are e-mail addresses
# (``sample@ntt.com``), a conflict makes them ``<login ID>_<ECID>``, other legacy IDs are words with
# digits and hyphens (``midori-user1``). So a login ID typed anew (console, pop-up) may hold every
# character an e-mail address may hold (EMAIL_RE: ASCII letters, digits, ``@`` and the local part's
# symbols), 3-255 of them: any address the portal accepts, and its suffixed form, is a valid login
# ID. An imported one is kept as the legacy system had it (anything but blanks and control
# characters): a user's own login ID is never refused for being old.
MIN_LOGIN_ID = 3
MAX_LOGIN_ID = 255
LOGIN_ID_SYMBOLS = ".!#$%&'*+/=?^_`{|}~-@"
LOGIN_ID_CHARS_RE = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~@\-]+")
BLANK_OR_CONTROL_RE = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def login_id_problem(value: str, *, current: str | None = None, max_length: int = MAX_LOGIN_ID,
                     imported: bool = False) -> str | None:
    """None when ``value`` may be a login ID, else required / too_long / invalid.

    ``invalid``: fewer than 3 characters, or a character outside letters, digits and
    ``LOGIN_ID_SYMBOLS``. ``current``: the login ID the user has now, always acceptable (a
    correction form sends it back unchanged). ``imported=True`` is the migration's rule (the legacy
    ID as given: no blank, no control character). Staff accounts use the same characters with their
    own length. Uniqueness in the portal is the caller's (``User.login_id_taken``).
    """
    if not value:
        return "required"
    if current is not None and value == current:
        return None
    if len(value) > max_length:
        return "too_long"
    if imported:
        return "invalid" if BLANK_OR_CONTROL_RE.search(value) else None
    if len(value) < MIN_LOGIN_ID or not LOGIN_ID_CHARS_RE.fullmatch(value):
        return "invalid"
    return None


def whole_number(text: str | None, max_digits: int = 18) -> int | None:
    """A non-negative integer given as ASCII digits (an id or version from a form or a link), or
    None. ``str.isdigit`` is not the test: it takes ² and ①, which ``int()`` then refuses."""
    text = text if isinstance(text, str) else str(text if text is not None else "")
    if not (0 < len(text) <= max_digits and text.isascii() and text.isdigit()):
        return None
    return int(text)


def holds_control_characters(text: str) -> bool:
    """Whether a one-line display value (a person's or a contract's name) holds a control or
    format character (Unicode Cc, Cf: line breaks, tabs, zero-width and direction marks).

    ``str.isprintable`` is False for every Cc and Cf character, so a printable text (nearly all)
    is answered without a look at each character (an import checks a hundred thousand rows)."""
    if text.isprintable():
        return False
    return any(unicodedata.category(c) in ("Cc", "Cf") for c in text)


def typed_code(text: str | None, length: int = 6) -> str | None:
    """A one-time code (Mail OTP, TOTP) as typed, in ASCII digits; None unless it is ``length`` digits.

    Blanks are dropped; a digit is the phone rule's (accounts.phones): full-width ０-９ count, as a
    Japanese input method types them, ² and ① do not. Both methods and every form use this, so a
    code is never read one way by TOTP and another by Mail OTP.
    """
    chars = [c for c in (text or "")[:64] if not c.isspace()]
    if len(chars) != length:
        return None
    digits = [phone_digit(c) for c in chars]
    return None if None in digits else "".join(digits)


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
