"""Password policy per portal (guide STEP 6 / STEP 5) and argon2id hashing.

Hashes made elsewhere (the legacy export, users imported into the portals) come in three formats:
argon2, bcrypt and Werkzeug's ``method$salt$hash`` (pbkdf2, scrypt). ``hash_format`` is the one rule
that tells them; a bcrypt or Werkzeug hash verifies and is then due for a rehash to argon2id.
"""
import re
import string
from dataclasses import dataclass

import bcrypt
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from werkzeug.security import check_password_hash

from .models import BUSINESS, SDPF

# The guide prints the backslash as ¥ (as Japanese fonts do): a typed U+00A5 means "\".
YEN = "\u00a5"
BUSINESS_SYMBOLS = "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~"
SDPF_SYMBOLS = BUSINESS_SYMBOLS.replace('"', "")
SYMBOLS = {BUSINESS: BUSINESS_SYMBOLS, SDPF: SDPF_SYMBOLS}
MIN_LENGTH = 8
MAX_LENGTH = 32

# OWASP parameters (SPEC 9). Configuration may lower them for tests; one test pins these.
PRODUCTION_PARAMETERS = {"time_cost": 2, "memory_cost": 19456, "parallelism": 1}


def normalise(password: str) -> str:
    """Read ¥ as \\, when setting a password and when signing in."""
    return password.replace(YEN, "\\")


@dataclass(frozen=True)
class RuleState:
    key: str       # length | digit | upper | lower | charset
    ok: bool


def check_policy(portal: str, password: str) -> list[RuleState]:
    """Each rule of the portal's policy with whether the password meets it (shown live)."""
    pw = normalise(password)
    allowed = set(string.ascii_letters + string.digits + SYMBOLS[portal])
    return [
        RuleState("length", MIN_LENGTH <= len(pw) <= MAX_LENGTH),
        RuleState("digit", any(c in string.digits for c in pw)),
        RuleState("upper", any(c in string.ascii_uppercase for c in pw)),
        RuleState("lower", any(c in string.ascii_lowercase for c in pw)),
        RuleState("charset", bool(pw) and all(c in allowed for c in pw)),
    ]


def policy_failures(portal: str, password: str) -> list[str]:
    return [r.key for r in check_policy(portal, password) if not r.ok]


def invalid_characters(portal: str, password: str) -> list[str]:
    """The characters that the portal does not allow, in order of appearance, once each."""
    allowed = set(string.ascii_letters + string.digits + SYMBOLS[portal])
    seen = []
    for c in normalise(password):
        if c not in allowed and c not in seen:
            seen.append(c)
    return seen


_ARGON2 = re.compile(r"\$argon2(?:id|i|d)\$(?:v=[0-9]+\$)?m=[0-9]+,t=[0-9]+,p=[0-9]+"
                     r"(?:,[a-z]+=[^$]*)*\$[A-Za-z0-9+/]+={0,2}\$[A-Za-z0-9+/]+={0,2}")
_BCRYPT = re.compile(r"\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}")
_WERKZEUG = re.compile(r"(?:scrypt|pbkdf2):[^$]*\$[^$]+\$[0-9a-f]+")


def hash_format(stored: str | None) -> str | None:
    """argon2 | bcrypt | werkzeug | None (missing, or not well-formed in any of the three)."""
    if not stored:
        return None
    if _ARGON2.fullmatch(stored):
        return "argon2"
    if _BCRYPT.fullmatch(stored):
        return "bcrypt"
    if _WERKZEUG.fullmatch(stored):
        return "werkzeug"
    return None


def verify_foreign(stored: str, password: str) -> bool:
    """Whether ``password`` matches a bcrypt or Werkzeug hash (False for anything else)."""
    kind = hash_format(stored)
    try:
        if kind == "bcrypt":
            return bcrypt.checkpw(password.encode("utf-8"), stored.encode("ascii"))
        if kind == "werkzeug":
            return check_password_hash(stored, password)
    except (ValueError, TypeError):
        return False
    return False


class Hasher:
    """argon2id with configurable parameters; verify() also tells when a rehash is due."""

    def __init__(self, time_cost=2, memory_cost=19456, parallelism=1):
        self._ph = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost,
                                  parallelism=parallelism, type=Type.ID)
        # Verifying against this keeps "no such user" as slow as a wrong password.
        self._dummy = self._ph.hash("dummy-password-for-equal-timing")

    @property
    def parameters(self):
        return self._ph

    def hash(self, password: str) -> str:
        return self._ph.hash(normalise(password))

    def verify(self, stored_hash: str | None, password: str) -> tuple[bool, bool]:
        """(matches, needs_rehash). A missing hash costs the same time as a wrong password.

        A bcrypt or Werkzeug hash (users imported with the hash of their portal) verifies too and
        always needs a rehash: the caller stores argon2id at the first successful sign-in.
        """
        if stored_hash and not stored_hash.startswith("$argon2") and hash_format(stored_hash):
            matches = verify_foreign(stored_hash, normalise(password))
            return matches, matches
        if not stored_hash:
            try:
                self._ph.verify(self._dummy, normalise(password) + "x")
            except VerificationError:
                pass
            return False, False
        try:
            self._ph.verify(stored_hash, normalise(password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False, False
        return True, self._ph.check_needs_rehash(stored_hash)

    def burn(self, password: str = "") -> None:
        """Spend one verify's time (for answers that must not reveal whether a user exists)."""
        self.verify(None, password)


_fallback: Hasher | None = None


def configure(time_cost=2, memory_cost=19456, parallelism=1) -> Hasher:
    """Set the hasher used outside an application (scripts, the test suite's factories).

    An app uses its own, built from its configuration by create_app (``app.extensions``), so
    two apps in one process never change each other's parameters.
    """
    global _fallback
    _fallback = Hasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)
    return _fallback


def hasher() -> Hasher:
    """The current app's hasher, or the process's fallback (production parameters by default)."""
    global _fallback
    from flask import current_app, has_app_context

    if has_app_context():
        app_hasher = current_app.extensions.get("password_hasher")
        if app_hasher is not None:
            return app_hasher
    if _fallback is None:
        _fallback = Hasher(**PRODUCTION_PARAMETERS)
    return _fallback
