"""The one phone-digits rule (guide note 3, SPEC 4): the ASCII digits of a phone after NFKC.

The migration's phone rule and the identity check both call it, so that a typed ``03-1234-5678``
or ``０３１２３４５６７８`` matches the stored ``0312345678``.
"""
import unicodedata

ASCII_DIGITS = frozenset("0123456789")


def normalise_phone_digits(text: str | None) -> str:
    """The ASCII digits of a phone after NFKC (full-width ０-９ count; ² and ① do not).

    A character counts when it is a decimal digit (category Nd) whose NFKC form is an ASCII
    digit: NFKC alone would also turn ² into 2 and ① into 1, which the guide does not mean.
    """
    out = []
    for c in text or "":
        if c in ASCII_DIGITS:
            out.append(c)
        elif unicodedata.category(c) == "Nd":
            n = unicodedata.normalize("NFKC", c)
            if n in ASCII_DIGITS:
                out.append(n)
    return "".join(out)
