"""The one phone rule (guide note 3, SPEC 4): what a digit is, and what a typed phone becomes.

A digit is an ASCII ``0-9`` after NFKC: full-width ``０-９`` count, ``²`` and ``①`` do not. The
migration's phone rule and the identity check take the digits of a phone
(``normalise_phone_digits``); the console's corrections and the legacy pop-up store what a person
typed with its separators removed (``typed_phone``) and then ask ``phone_problem``. Nobody else
decides what a digit is.
"""
import functools
import re
import unicodedata

ASCII_DIGITS = frozenset("0123456789")
MIN_DIGITS, MAX_DIGITS = 4, 32  # the guide: a phone of 4-32 digits is kept as it is
PHONE_RE = re.compile(r"[0-9]{4,32}")
SEPARATORS = frozenset(" -()")  # after NFKC, besides white space: full-width ones count too


def phone_digit(c: str) -> str | None:
    """The ASCII digit that the character ``c`` stands for, or None.

    A character counts when it is a decimal digit (category Nd) whose NFKC form is an ASCII
    digit: NFKC alone would also turn ² into 2 and ① into 1, which the guide does not mean.
    """
    if c in ASCII_DIGITS:
        return c
    if unicodedata.category(c) == "Nd":
        n = unicodedata.normalize("NFKC", c)
        if n in ASCII_DIGITS:
            return n
    return None


_NOT_ASCII_DIGITS = re.compile(r"[^0-9]+")
_cached_phone_digit = functools.lru_cache(maxsize=4096)(phone_digit)


def normalise_phone_digits(text: str | None) -> str:
    """The ASCII digits of a phone after NFKC (full-width ０-９ count; ² and ① do not).

    An ASCII phone (most of them) takes a regular expression, others a per-character cache: the
    legacy import asks this of hundreds of thousands of phones (SPEC 9).
    """
    if not text:
        return ""
    if text.isascii():
        return _NOT_ASCII_DIGITS.sub("", text)
    return "".join(d for d in map(_cached_phone_digit, text) if d is not None)


def is_separator(c: str) -> bool:
    """White space, hyphens and parentheses, half- or full-width (what people put in a phone)."""
    n = unicodedata.normalize("NFKC", c)
    return bool(n) and all(ch.isspace() or ch in SEPARATORS for ch in n)


def typed_phone(text: str | None) -> str:
    """A typed phone as it will be stored: digits made ASCII, separators removed, anything else kept
    (so that ``phone_problem`` refuses it instead of the phone silently losing a character)."""
    out = []
    for c in text or "":
        digit = phone_digit(c)
        if digit is not None:
            out.append(digit)
        elif not is_separator(c):
            out.append(c)
    return "".join(out)


def phone_problem(value: str) -> str | None:
    """None when ``value`` (after ``typed_phone``) is 4-32 ASCII digits, else "phone_format"."""
    return None if PHONE_RE.fullmatch(value or "") else "phone_format"
