"""The legacy export's row rules (SPEC 4): columns, one row read into a ``LegacyRow`` or a
``RowError`` naming its field, ECIDs, e-mail, is_admin, the phone rule per portal, and the
login-ID conflict suffix ``_<ECID>``. Plain functions: no database, no files."""
from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Container, Mapping
from typing import NamedTuple

from ..models import BUSINESS, SDPF
from ..phones import normalise_phone_digits

REQUIRED_COLUMNS = ("login_id", "email", "name", "phone", "contract_ecid", "parent_ecid",
                    "contract_name", "is_admin")


OPTIONAL_COLUMNS = ("password_hash",)


REPORT_COLUMNS = ("line", "status", "legacy_login_id", "login_id", "legacy_phone", "phone", "reason")


class ReportRow(NamedTuple):
    """One line of an import's report (REPORT_COLUMNS, in that order): what became of one row."""

    line: int
    status: str            # MIGRATED (or the kind's own, e.g. imported) / SKIPPED / REJECTED
    legacy_login_id: str   # as in the file
    login_id: str          # as written (with its _<ECID> when changed); "" when rejected
    legacy_phone: str
    phone: str
    reason: str = ""       # "field: why" for a rejected row; notes for a written one

    @classmethod
    def rejected(cls, line: int, login_id: str, phone: str, reason: str) -> ReportRow:
        return cls(line, REJECTED, login_id, "", phone, "", reason)


MIGRATED = "migrated"


SKIPPED = "skipped"


REJECTED = "rejected"


DEFAULT_PHONE = "0312345678"  # the guide's initial value when no 4-32 digits remain


MAX_TEXT = 255      # login ID, name, contract name (column sizes)


MAX_EMAIL = 254     # RFC 5321 path limit


MAX_PHONE = 64      # column size of phone / legacy_phone


_ECID = re.compile(r"ecid[0-9]{10}")


_PHONE_OK = re.compile(r"[0-9]{4,32}")


_ADMIN_VALUES = {"": False, "0": False, "false": False, "no": False,
                 "1": True, "true": True, "yes": True}


_HASH_PREFIXES = ("$argon2id$", "$argon2i$", "$argon2d$", "$2a$", "$2b$", "$2y$", "pbkdf2:", "scrypt:")


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


_BLANK_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


# One @, a non-empty local part, a domain with a dot and no empty label, no blank or control.
_EMAIL = re.compile(r"[^\s@\x00-\x1f\x7f-\x9f]+@(?:[^\s@.\x00-\x1f\x7f-\x9f]+\.)+[^\s@.\x00-\x1f\x7f-\x9f]+")


class RowError(Exception):
    """A row breaks a rule: the report's reason names the field."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclasses.dataclass(slots=True)
class LegacyRow:
    """One valid input row, fields exactly as given except the ECIDs (lower case)."""

    login_id: str
    email: str
    name: str
    phone: str
    contract_ecid: str
    parent_ecid: str | None
    contract_name: str
    is_admin: bool
    password_hash: str | None
    # What identifies a legacy user: its login ID (any case) together with its contract.
    pair: tuple[str, str] = ("", "")

    def __post_init__(self):
        self.pair = (self.login_id.lower(), self.contract_ecid)

    @property
    def portal(self) -> str:
        """Portal follows the contract kind: parent -> Business Portal, child -> SDPF Portal."""
        return BUSINESS if self.parent_ecid is None else SDPF


def normalize_ecid(value: str, field: str = "contract_ecid") -> str:
    """`ecid` + 10 ASCII digits, any case, stored in lower case; surrounding blanks are ignored."""
    ecid = value.strip(" \t").lower()
    if not ecid:
        raise RowError(field, "missing")
    if not _ECID.fullmatch(ecid):
        raise RowError(field, f"not an ECID (ecid + 10 digits): {value!r}")
    return ecid


def parse_is_admin(value: str) -> bool:
    """1/0, true/false, yes/no in any case; empty means not an admin."""
    flag = _ADMIN_VALUES.get(value)
    if flag is None:
        flag = _ADMIN_VALUES.get(value.strip().lower())
        if flag is None:
            raise RowError("is_admin", f"expected 1/0, true/false or yes/no, got {value!r}")
    return flag


def is_valid_email(value: str) -> bool:
    """A pragmatic syntax check: one @, non-empty local part, a dotted domain, no blanks.

    Deliberately not RFC 5322: legacy data holds addresses that real mail servers accept, and the
    first-login mail is the true test. Case is kept: the address is stored exactly as given.
    """
    return len(value) <= MAX_EMAIL and _EMAIL.fullmatch(value) is not None


phone_digits = normalise_phone_digits  # one rule, shared with the identity check


def apply_phone_rule(phone: str) -> str:
    """The guide's phone rule for Business Portal users.

    4-32 digits: unchanged. Otherwise keep only the digits; if that is not 4-32 digits (empty
    included), the initial value 0312345678.
    """
    if _PHONE_OK.fullmatch(phone):
        return phone
    digits = phone_digits(phone)
    return digits if 4 <= len(digits) <= 32 else DEFAULT_PHONE


def phone_for(portal: str, phone: str) -> str:
    """The phone the new user gets: the rule for Business Portal users, SDPF phones as given."""
    return apply_phone_rule(phone) if portal == BUSINESS else phone


def assign_login_id(login_id: str, ecid: str, taken: Container[str]) -> str:
    """The guide's login-ID rule: unchanged unless taken in the target portal, then `<ID>_<ECID>`.

    ``taken`` holds the lower-case login IDs that exist in the target portal (native users, earlier
    runs, earlier rows of this file); comparison ignores case for the plain and the suffixed ID.
    Raises RowError when the suffixed ID is taken too: the row is not migrated.
    """
    if login_id.lower() not in taken:
        return login_id
    suffixed = f"{login_id}_{ecid}"
    if suffixed.lower() in taken:
        raise RowError("login_id", f"{login_id!r} and {suffixed!r} both exist in the target portal")
    if len(suffixed) > MAX_TEXT:
        raise RowError("login_id", f"{login_id!r} exists in the target portal and {suffixed!r} "
                                   f"would be longer than {MAX_TEXT} characters")
    return suffixed


def ecid_field(value: str, field: str) -> str:
    return value if _ECID.fullmatch(value) else normalize_ecid(value, field)


def parse_row(fields: Mapping[str, str]) -> LegacyRow:
    """Validate one input row (column -> value); raise RowError naming the first bad field.

    Values are kept exactly as given (no trimming): the guide says e-mail and name stay
    unchanged byte for byte, full-width spaces included.
    """
    values = [fields.get(c) for c in REQUIRED_COLUMNS]
    if None in values:
        missing = REQUIRED_COLUMNS[values.index(None)]
        raise RowError(missing, "missing (the row has fewer fields than the header)")
    return parse_values(*values, fields.get("password_hash"))


# Valid ECIDs as written in the file -> lower case, interned: a few thousand contracts are shared by
# a million rows. Bounded: a file of ever new ECIDs only stops adding to it.
_ECIDS: dict[str, str] = {}


_ECIDS_MAX = 1 << 16


def cached_ecid(value: str, field: str) -> str:
    ecid = _ECIDS.get(value)
    if ecid is None:
        ecid = sys.intern(ecid_field(value, field))
        if len(_ECIDS) < _ECIDS_MAX:
            _ECIDS[value] = ecid
    return ecid


def parse_values(login_id: str, email: str, name: str, phone: str, contract_ecid: str, parent: str,
                  contract_name: str, admin: str, password_hash: str | None) -> LegacyRow:
    """parse_row on the values of a row in REQUIRED_COLUMNS order (+ password_hash or None).

    Written for speed (a million rows): the checks of the first bad field come first, in the
    order of the columns, and cheaper tests stand in for a regular expression where they are
    equivalent (an ASCII login ID: control characters are exactly the non-printable ones).
    """
    if not login_id:
        raise RowError("login_id", "missing")
    if len(login_id) > MAX_TEXT:
        raise RowError("login_id", f"longer than {MAX_TEXT} characters")
    if (not login_id.isprintable() or " " in login_id) if login_id.isascii() else \
            _BLANK_OR_CONTROL.search(login_id):
        raise RowError("login_id", f"contains a space or a control character: {login_id!r}")
    if not email:
        raise RowError("email", "missing")
    if len(email) > MAX_EMAIL or _EMAIL.fullmatch(email) is None:
        raise RowError("email", f"not an e-mail address: {email!r}")
    contract_ecid = cached_ecid(contract_ecid, "contract_ecid")
    parent_ecid = cached_ecid(parent, "parent_ecid") if parent and parent.strip(" \t") else None
    if parent_ecid == contract_ecid:
        raise RowError("parent_ecid", "a contract cannot be its own parent")
    # Business Portal users prove who they are with their name; SDPF users do not (guide).
    if not name and parent_ecid is None:
        raise RowError("name", "missing (Business Portal users need a name)")
    if len(name) > MAX_TEXT:
        raise RowError("name", f"longer than {MAX_TEXT} characters")
    if _CONTROL.search(name):
        raise RowError("name", "contains a line break or a control character")
    if len(phone) > MAX_PHONE:
        raise RowError("phone", f"longer than {MAX_PHONE} characters")
    if not contract_name:
        raise RowError("contract_name", "missing")
    if len(contract_name) > MAX_TEXT:
        raise RowError("contract_name", f"longer than {MAX_TEXT} characters")
    is_admin = _ADMIN_VALUES.get(admin)
    if is_admin is None:
        is_admin = parse_is_admin(admin)
    if not password_hash:
        password_hash = None
    elif not password_hash.startswith(_HASH_PREFIXES):
        raise RowError("password_hash", "not an argon2, bcrypt or Werkzeug password hash")
    return LegacyRow(login_id, email, name, phone, contract_ecid, parent_ecid, contract_name,
                     is_admin, password_hash)

