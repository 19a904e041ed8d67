"""Two-step verification: Mail OTP, TOTP, backup codes, trusted browsers (SPEC 5.4).

Mail OTP codes are short-lived and their tries are capped, so a salted SHA-256 is enough to keep
them out of a database dump. A re-send puts a new code into the same row: the failure count stays,
so re-sending never buys more guesses. Backup codes are 10 random codes, shown once, stored
salted-hashed, each usable once. Trusted browsers hold a random token in a cookie; only its
SHA-256 is stored.
"""
import datetime
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from . import audit, fields, outbox, portals, totp
from .clock import utcnow
from .db import database, update_rows
from .models import BUSINESS, MAIL_OTP, TOTP, BackupCode, OneTimeCode, TrustedBrowser, User

OTP_DIGITS = 6
BACKUP_CODE_COUNT = 10
_BACKUP_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i


mask_email = fields.mask_email  # shown on the Mail OTP screen


def _salted(code: str, salt: str | None = None) -> str:
    salt = salt or secrets.token_hex(8)
    return f"{salt}${hashlib.sha256((salt + code).encode()).hexdigest()}"


def _matches(stored: str, code: str) -> bool:
    salt, _, _digest = stored.partition("$")
    return hmac.compare_digest(stored, _salted(code, salt))


def new_otp() -> str:
    return f"{secrets.randbelow(10 ** OTP_DIGITS):0{OTP_DIGITS}d}"


# --- Mail OTP ---------------------------------------------------------------------------------

SENT = "sent"
TOO_SOON = "too_soon"
BLOCKED = "blocked"


@dataclass(frozen=True)
class Send:
    outcome: str                 # sent | too_soon | blocked
    wait_seconds: int = 0        # too_soon: until a re-send is possible; blocked: until expiry
    code: str | None = None      # the raw code (tests only read it from the mail)


def _live_code(user, now):
    return (OneTimeCode.select()
            .where((OneTimeCode.user == user) & OneTimeCode.used_at.is_null()
                   & (OneTimeCode.expires_at > now))
            .order_by(OneTimeCode.id.desc()).first())


def send_mail_otp(user: User, *, config, force: bool, ip=None, now=None) -> Send:
    """Mail a code. ``force`` is an explicit re-send; without it a live code is not sent again.

    A live code with all its tries used blocks until it expires; a re-send within the cool-down
    is refused with the seconds to wait.
    """
    now = now or utcnow()
    minutes, max_tries = config["MAIL_OTP_MINUTES"], config["MAIL_OTP_MAX_TRIES"]
    cooldown = config["MAIL_OTP_RESEND_SECONDS"]
    with database.atomic():
        live = _live_code(user, now)
        if live is not None and live.attempts >= max_tries:
            return Send(BLOCKED, int((live.expires_at - now).total_seconds()) + 1)
        if live is not None:
            since = (now - live.sent_at).total_seconds()
            if not force:
                return Send(TOO_SOON, max(0, int(cooldown - since)))
            if since < cooldown:
                return Send(TOO_SOON, int(cooldown - since) + 1)
        code = new_otp()
        expires = now + datetime.timedelta(minutes=minutes)
        if live is None:
            OneTimeCode.create(user=user, code_hash=_salted(code), created_at=now, sent_at=now,
                               expires_at=expires)
        else:
            OneTimeCode.update(code_hash=_salted(code), sent_at=now, expires_at=expires).where(
                OneTimeCode.id == live.id).execute()
        subject = config["MAIL_SUBJECT_OTP_BUSINESS" if user.portal == BUSINESS else "MAIL_SUBJECT_OTP_SDPF"]
        outbox.render_and_enqueue("otp", recipient=user.email, subject=subject, kind="otp", user=user,
                                  language=user.language, code=code, minutes=minutes, portal=user.portal,
                                  user_obj=user)
        audit.record(user, "otp_resent" if live is not None else "otp_sent", target_user=user, ip=ip)
    return Send(SENT, cooldown, code)


CODE_OK = "ok"
CODE_WRONG = "wrong"
CODE_EXHAUSTED = "exhausted"   # this wrong try used up the code's last try
CODE_BLOCKED = "blocked"       # the code's tries were already used up; nothing was checked
CODE_NONE = "none"             # no live code (expired or never sent)


def verify_mail_otp(user: User, code: str, *, config, ip=None, now=None) -> tuple[str, int]:
    """(outcome, tries left). Each wrong code uses one try; the counter is updated atomically."""
    now = now or utcnow()
    max_tries = config["MAIL_OTP_MAX_TRIES"]
    code = fields.typed_code(code, OTP_DIGITS)
    with database.atomic():
        live = _live_code(user, now)
        if live is None:
            return CODE_NONE, 0
        if live.attempts >= max_tries:
            return CODE_BLOCKED, 0
        if code is not None and _matches(live.code_hash, code):
            used = OneTimeCode.update(used_at=now).where(
                (OneTimeCode.id == live.id) & OneTimeCode.used_at.is_null()).execute()
            if used:
                User.update(twostep_last_used_at=now).where(User.id == user.id).execute()
                audit.record(user, "otp_ok", target_user=user, ip=ip)
                return CODE_OK, max_tries - live.attempts
        (OneTimeCode.update(attempts=OneTimeCode.attempts + 1)
         .where(OneTimeCode.id == live.id).execute())
        left = max(0, max_tries - live.attempts - 1)
        audit.record(user, "otp_failed", target_user=user, ip=ip, detail=f"tries left {left}")
        return (CODE_EXHAUSTED if left == 0 else CODE_WRONG), left


# --- TOTP -------------------------------------------------------------------------------------

portal_issuer = portals.totp_issuer


def confirm_totp(user: User, secret: str, code: str, *, ip=None, now=None) -> bool:
    """Make TOTP the user's method once they proved their app shows the right code."""
    step = totp.verify(secret, code, None, now=now)
    if step is None:
        audit.record(user, "totp_setup_failed", target_user=user, ip=ip)
        return False
    with database.atomic():
        old = user.twostep_method
        User.update(totp_secret=secret, totp_last_step=step, twostep_method=TOTP,
                    twostep_last_used_at=utcnow()).where(User.id == user.id).execute()
        audit.record(user, "twostep_method_set", target_user=user, field="twostep_method", old=old,
                     new=TOTP, ip=ip)
    return True


def verify_totp(user: User, code: str, *, ip=None, now=None) -> bool:
    """Accept a code once: the step is stored with a conditional update, so a replay (even a
    concurrent one) is refused."""
    fresh = User.get_by_id(user.id)
    step = totp.verify(fresh.totp_secret, code, fresh.totp_last_step, now=now)
    if step is None:
        audit.record(user, "totp_failed", target_user=user, ip=ip)
        return False
    cond = (User.id == user.id) & (User.totp_last_step.is_null() | (User.totp_last_step < step))
    if not User.update(totp_last_step=step, twostep_last_used_at=utcnow()).where(cond).execute():
        audit.record(user, "totp_failed", target_user=user, ip=ip, detail="replayed")
        return False
    audit.record(user, "totp_ok", target_user=user, ip=ip)
    return True


def method_chosen(user: User, method: str, *, ip=None) -> None:
    """The first login's choice of a method (its set-up follows): audited."""
    audit.record(user, "twostep_method_chosen", target_user=user, new=method, ip=ip)


def choose_mail_otp(user: User, *, ip=None) -> None:
    """Make Mail OTP the method (after a mailed code was entered)."""
    with database.atomic():
        old = user.twostep_method
        User.update(twostep_method=MAIL_OTP, totp_secret=None, totp_last_step=None).where(
            User.id == user.id).execute()
        audit.record(user, "twostep_method_set", target_user=user, field="twostep_method", old=old,
                     new=MAIL_OTP, ip=ip)


# --- Backup codes -----------------------------------------------------------------------------

def _normalise_backup(code: str) -> str:
    return "".join(c for c in (code or "").lower() if c.isalnum())


def new_backup_codes(user: User, *, ip=None) -> list[str]:
    """Replace the user's backup codes with 10 new ones; return them (shown once, never again)."""
    codes = ["".join(secrets.choice(_BACKUP_ALPHABET) for _ in range(10)) for _ in range(BACKUP_CODE_COUNT)]
    with database.atomic():
        BackupCode.delete().where(BackupCode.user == user).execute()
        BackupCode.insert_many([{"user": user.id, "code_hash": _salted(c)} for c in codes]).execute()
        audit.record(user, "backup_codes_created", target_user=user, ip=ip)
    return [f"{c[:5]}-{c[5:]}" for c in codes]


def backup_codes_left(user: User) -> int:
    return BackupCode.select().where((BackupCode.user == user) & BackupCode.used_at.is_null()).count()


def use_backup_code(user: User, code: str, *, ip=None) -> bool:
    """Spend one unused backup code; a code works once (conditional update)."""
    typed = _normalise_backup(code)
    if len(typed) != 10:
        return False
    for row in BackupCode.select().where((BackupCode.user == user) & BackupCode.used_at.is_null()):
        if _matches(row.code_hash, typed):
            if BackupCode.update(used_at=utcnow()).where(
                    (BackupCode.id == row.id) & BackupCode.used_at.is_null()).execute():
                User.update(twostep_last_used_at=utcnow()).where(User.id == user.id).execute()
                audit.record(user, "backup_code_used", target_user=user, ip=ip,
                             detail=f"left {backup_codes_left(user)}")
                return True
    audit.record(user, "backup_code_failed", target_user=user, ip=ip)
    return False


# --- Trusted browsers -------------------------------------------------------------------------

def _token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def trust_browser(user: User, *, days: int, label: str = "", ip=None, now=None) -> str:
    """Remember this browser for ``days``; returns the raw token for the cookie."""
    now = now or utcnow()
    raw = secrets.token_urlsafe(32)
    TrustedBrowser.create(user=user, token_hash=_token_hash(raw), label=(label or "")[:255],
                          created_at=now, expires_at=now + datetime.timedelta(days=days))
    audit.record(user, "trusted_browser_added", target_user=user, ip=ip, detail=(label or "")[:200])
    return raw


def trusted_browser_valid(user: User, raw: str | None, *, now=None) -> bool:
    """Whether this cookie is a live trusted browser of ``user`` (a read: nothing is written)."""
    if not raw or len(raw) > 100:
        return False
    now = now or utcnow()
    return (TrustedBrowser.select(TrustedBrowser.id)
            .where((TrustedBrowser.token_hash == _token_hash(raw)) & (TrustedBrowser.user == user)
                   & TrustedBrowser.revoked_at.is_null() & (TrustedBrowser.expires_at > now))
            .exists())


def is_trusted(user: User, raw: str | None, *, ip=None, now=None, record: bool = True) -> bool:
    """Whether this browser's cookie lets ``user`` skip the second step now (``record=False``:
    the caller's own audit entry says so)."""
    if not raw or len(raw) > 100:
        return False
    now = now or utcnow()
    # One conditional UPDATE both checks and touches the row (no read-then-write).
    used = update_rows(
        TrustedBrowser, '"token_hash" = ? AND "user_id" = ? AND "revoked_at" IS NULL AND "expires_at" > ?',
        (_token_hash(raw), user.id, TrustedBrowser.expires_at.db_value(now)), last_used_at=now)
    if not used:
        return False
    if record:
        audit.record(user, "trusted_browser_used", target_user=user, ip=ip)
    return True


def trusted_browsers(user: User, now=None) -> list[TrustedBrowser]:
    now = now or utcnow()
    return list(TrustedBrowser.select().where(
        (TrustedBrowser.user == user) & TrustedBrowser.revoked_at.is_null()
        & (TrustedBrowser.expires_at > now)).order_by(TrustedBrowser.created_at.desc()))


def clear_trusted_browsers(user: User) -> int:
    """Revoke every trusted browser: used on a password change and by the console's resets."""
    return (TrustedBrowser.update(revoked_at=utcnow())
            .where((TrustedBrowser.user == user) & TrustedBrowser.revoked_at.is_null()).execute())


def revoke_browser(user: User, browser_id, *, ip=None) -> bool:
    browser_id = fields.whole_number(browser_id)
    if browser_id is None:
        return False
    done = (TrustedBrowser.update(revoked_at=utcnow())
            .where((TrustedBrowser.id == browser_id) & (TrustedBrowser.user == user)
                   & TrustedBrowser.revoked_at.is_null()).execute())
    if done:
        audit.record(user, "trusted_browser_revoked", target_user=user, ip=ip, detail=str(browser_id))
    return bool(done)
