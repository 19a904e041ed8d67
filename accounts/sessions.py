"""Server-side sessions (SPEC 11.5): the rows behind the session cookie, and ending them (an
account's own "sign out there / everywhere else" audited here, for portal users and staff alike).

The cookie holds a random key; the row holds its SHA-256, the principal (``u:<id>`` for a portal
user, ``s:<id>`` for staff), the session's data, when it started and was last seen, and the
client's address and browser. Deleting the row ends the session everywhere: a copied cookie then
opens nothing. Lifetimes: idle (``SESSION_IDLE_MINUTES``) and absolute (``SESSION_MAX_HOURS``).
"""
import datetime
import hashlib
import secrets

from . import audit, fields
from .clock import utcnow
from .db import first_row, insert_row
from .models import Staff, User, WebSession

TOUCH_SECONDS = 60  # last_seen_at is written at most once a minute per session


def key_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def new_key() -> str:
    return secrets.token_urlsafe(32)


def principal_key(who) -> str | None:
    """``u:<id>`` / ``s:<id>`` for a User or a Staff row (the Flask-Login identity)."""
    return who.get_id() if isinstance(who, (User, Staff)) else None


def is_live(row: WebSession, *, idle_minutes: int, max_hours: int, now=None) -> bool:
    now = now or utcnow()
    return (row.last_seen_at > now - datetime.timedelta(minutes=idle_minutes)
            and row.created_at > now - datetime.timedelta(hours=max_hours))


def load(raw: str, *, idle_minutes: int, max_hours: int, now=None) -> WebSession | None:
    """The live session row of a cookie key, or None (unknown, ended or expired)."""
    if not raw or len(raw) > 100:
        return None
    row = first_row(WebSession, '"key_hash" = ?', key_hash(raw))
    if row is None or not is_live(row, idle_minutes=idle_minutes, max_hours=max_hours, now=now):
        return None
    return row


def create(data: str, *, principal: str | None, signed_in: bool, ip: str, user_agent: str,
           now=None) -> tuple[str, WebSession]:
    """A new session row; returns the raw key for the cookie and the row."""
    now = now or utcnow()
    raw = new_key()
    row = insert_row(WebSession, key_hash=key_hash(raw), principal=principal, signed_in=signed_in,
                     data=data, created_at=now, last_seen_at=now, ip=(ip or "")[:64],
                     user_agent=(user_agent or "")[:255])
    return raw, row


def save(row_id: int, data: str, *, principal: str | None, signed_in: bool, now=None) -> None:
    WebSession.update(data=data, principal=principal, signed_in=signed_in,
                      last_seen_at=now or utcnow()).where(WebSession.id == row_id).execute()


def touch(row: WebSession, now=None) -> None:
    """Move last_seen_at forward (at most once a minute: a signed-in page view stays a read)."""
    now = now or utcnow()
    if (now - row.last_seen_at).total_seconds() >= TOUCH_SECONDS:
        WebSession.update(last_seen_at=now).where(WebSession.id == row.id).execute()


def delete(row_id: int) -> None:
    WebSession.delete().where(WebSession.id == row_id).execute()


def end_all(who, *, except_id: int | None = None) -> int:
    """End every session of a user or staff account (but ``except_id``, the caller's own);
    pending sign-ins included. Returns how many ended."""
    key = principal_key(who)
    if key is None:
        return 0
    q = WebSession.delete().where(WebSession.principal == key)
    if except_id is not None:
        q = q.where(WebSession.id != except_id)
    return q.execute()


def end_one(who, session_id, *, except_id: int | None = None) -> bool:
    """End one of the account's own sessions (the profile's "sign out" on a listed session)."""
    session_id = fields.whole_number(session_id)
    if session_id is None:
        return False
    q = WebSession.delete().where((WebSession.id == session_id)
                                  & (WebSession.principal == principal_key(who)))
    if except_id is not None:
        q = q.where(WebSession.id != except_id)
    return bool(q.execute())


def end_own(who, session_id, *, current_id: int | None, ip=None) -> bool:
    """A user or staff member signs out one of their own other sessions (audited)."""
    ended = end_one(who, session_id, except_id=current_id)
    if ended:
        audit.record(who, "session_ended", target_user=who if isinstance(who, User) else None, ip=ip,
                     detail=str(session_id))
    return ended


def end_own_others(who, *, current_id: int | None, ip=None) -> int:
    """"Sign out everywhere else": every session but ``current_id`` ends (audited)."""
    ended = end_all(who, except_id=current_id)
    audit.record(who, "sessions_ended", target_user=who if isinstance(who, User) else None, ip=ip,
                 detail=f"others: {ended}")
    return ended


def active(who, *, idle_minutes: int, max_hours: int, now=None) -> list[WebSession]:
    """The account's signed-in sessions that are still live, newest first."""
    now = now or utcnow()
    return list(WebSession.select().where(
        (WebSession.principal == principal_key(who)) & WebSession.signed_in
        & (WebSession.last_seen_at > now - datetime.timedelta(minutes=idle_minutes))
        & (WebSession.created_at > now - datetime.timedelta(hours=max_hours)))
        .order_by(WebSession.last_seen_at.desc()))


def clean_up(*, idle_minutes: int, max_hours: int, now=None) -> int:
    """Delete expired rows (the worker runs this)."""
    now = now or utcnow()
    return (WebSession.delete()
            .where((WebSession.last_seen_at <= now - datetime.timedelta(minutes=idle_minutes))
                   | (WebSession.created_at <= now - datetime.timedelta(hours=max_hours)))
            .execute())


def browser_label(user_agent: str) -> str:
    """A short name for a browser from its user agent, for the session list."""
    ua = user_agent or ""
    for needle, label in (("Edg/", "Edge"), ("Chrome/", "Chrome"), ("Firefox/", "Firefox"),
                          ("Safari/", "Safari")):
        if needle in ua:
            browser = label
            break
    else:
        browser = ua[:40] or "?"
    for needle, label in (("Windows", "Windows"), ("Mac OS X", "macOS"), ("iPhone", "iPhone"),
                          ("Android", "Android"), ("Linux", "Linux")):
        if needle in ua:
            return f"{browser} / {label}"
    return browser
