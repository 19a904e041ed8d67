"""The two portals' names, in one place: shown on screens and in mails (translated), and the
TOTP issuer that authenticator apps show (fixed, not translated: the app keeps it)."""
from flask_babel import lazy_gettext as _l

from .models import BUSINESS

DISPLAY_NAMES = {BUSINESS: _l("Business Portal"), "sdpf": _l("Smart Data Platform Portal")}
TOTP_ISSUERS = {BUSINESS: "Business Portal", "sdpf": "Smart Data Platform Portal"}


def display_name(portal: str):
    """The portal's name in the current language (a lazy string)."""
    return DISPLAY_NAMES.get(portal, DISPLAY_NAMES["sdpf"])


def totp_issuer(portal: str) -> str:
    return TOTP_ISSUERS.get(portal, TOTP_ISSUERS["sdpf"])
