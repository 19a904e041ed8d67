"""Single-use, expiring link tokens (password reset / first login, e-mail change).

A link works only on the portal of the user it was made for (``check(..., portal=)``).

Only a SHA-256 of the token is stored; a newer token of the same purpose voids the older ones;
a token works once. Used by the portal's reset request, the console's "send reset link", the
legacy pop-up's first-login link and the e-mail change confirmation.
"""
import datetime
import hashlib
import secrets
from dataclasses import dataclass

from .clock import utcnow
from .models import ResetToken

RESET = "reset"
EMAIL_CHANGE = "email_change"


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def issue(user, purpose: str, minutes: int, new_email: str | None = None) -> str:
    """Create a token for ``user`` and return its raw value (to put in a link). Voids older ones.

    Call inside the transaction that also writes the mail carrying the link.
    """
    now = utcnow()
    (ResetToken.update(voided_at=now)
     .where((ResetToken.user == user) & (ResetToken.purpose == purpose)
            & ResetToken.used_at.is_null() & ResetToken.voided_at.is_null())
     .execute())
    raw = secrets.token_urlsafe(32)
    ResetToken.create(user=user, purpose=purpose, token_hash=_hash(raw), created_at=now,
                      expires_at=now + datetime.timedelta(minutes=minutes), new_email=new_email)
    return raw


def void_all(user, purpose: str | None = None) -> int:
    """Void every live token of the user (e.g. when the e-mail address was corrected)."""
    q = ResetToken.update(voided_at=utcnow()).where(
        (ResetToken.user == user) & ResetToken.used_at.is_null() & ResetToken.voided_at.is_null())
    if purpose:
        q = q.where(ResetToken.purpose == purpose)
    return q.execute()


@dataclass(frozen=True)
class Check:
    token: ResetToken | None
    problem: str | None  # None (usable) | unknown | expired | used | voided


def check(raw: str, purpose: str, *, portal: str | None = None) -> Check:
    """Whether a raw token from a link can be used, without using it. With ``portal``, a link of
    another portal's user is "unknown" (the link names the portal it was made for)."""
    if not raw or len(raw) > 200:
        return Check(None, "unknown")
    token = ResetToken.get_or_none((ResetToken.token_hash == _hash(raw)) & (ResetToken.purpose == purpose))
    if token is None or (portal is not None and token.user.portal != portal):
        return Check(None, "unknown")
    if token.used_at is not None:
        return Check(token, "used")
    if token.voided_at is not None:
        return Check(token, "voided")
    if token.expires_at <= utcnow():
        return Check(token, "expired")
    return Check(token, None)


def consume(raw: str, purpose: str) -> Check:
    """Use the token once: the conditional update makes a second, concurrent use fail."""
    result = check(raw, purpose)
    if result.problem:
        return result
    used = (ResetToken.update(used_at=utcnow())
            .where((ResetToken.id == result.token.id) & ResetToken.used_at.is_null()
                   & ResetToken.voided_at.is_null())
            .execute())
    if not used:
        return Check(result.token, "used")
    return result


def latest(user, purpose: str = RESET) -> ResetToken | None:
    """The newest token of the user (for the sign-in diagnosis)."""
    return (ResetToken.select().where((ResetToken.user == user) & (ResetToken.purpose == purpose))
            .order_by(ResetToken.created_at.desc(), ResetToken.id.desc()).first())
