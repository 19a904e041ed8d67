"""The one phone-normalising rule (guide note 3): NFKC, then ASCII digits only.

Used by the identity check; the migration's phone rule should call the same function so that a
typed ``03-1234-5678`` or ``０３１２３４５６７８`` matches the stored ``0312345678``.
"""
import unicodedata


def normalise_phone_digits(text: str | None) -> str:
    """Full-width digits become ASCII (NFKC); everything that is not an ASCII digit is dropped."""
    folded = unicodedata.normalize("NFKC", text or "")
    return "".join(c for c in folded if "0" <= c <= "9")
