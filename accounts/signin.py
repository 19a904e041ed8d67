"""Password sign-in with lockout, password setting, and completing a sign-in (first login included).

One generic refusal for an unknown login ID, a wrong password, a locked or a disabled account,
costing one argon2id verify each time, so that neither the message nor the time tells them apart.
After ``LOCKOUT_THRESHOLD`` failures the account locks for an increasing wait; each further failure
after a lock ends locks it again for the next, longer wait. NIST SP 800-63B allows at most 100
consecutive failures; with the default threshold of 10 and these waits an attacker gets about 15
guesses in the first two hours and a handful a day after.
"""
import datetime
from dataclasses import dataclass

from . import audit, passwords
from .clock import utcnow
from .db import database
from .models import Contract, User
from .twostep import clear_trusted_browsers

LOCK_MINUTES = (1, 5, 15, 60, 240, 1440)

OK = "ok"
REFUSED = "refused"  # the one answer for unknown / wrong / locked / disabled


@dataclass(frozen=True)
class SignIn:
    outcome: str
    user: User | None = None
    # Internal reason for the audit trail and the console's diagnosis; never shown to the user.
    reason: str = ""


def lock_wait(failures: int, threshold: int) -> datetime.timedelta | None:
    """How long the account locks after its ``failures``-th consecutive failure (None: no lock)."""
    if failures < threshold:
        return None
    index = min(failures - threshold, len(LOCK_MINUTES) - 1)
    return datetime.timedelta(minutes=LOCK_MINUTES[index])


def verify_password(portal: str, login_id: str, password: str, *, threshold: int, ip=None,
                    now=None) -> SignIn:
    """Check a login ID and password on a portal, with lockout; write the audit entry."""
    now = now or utcnow()
    login_id = (login_id or "").strip()
    user = User.by_login_id(portal, login_id) if 0 < len(login_id) <= 255 else None
    if user is None:
        passwords.hasher().burn(password)
        return SignIn(REFUSED, None, "unknown")
    if user.is_locked(now):
        passwords.hasher().burn(password)
        audit.record(user, "signin_refused", target_user=user, ip=ip, detail="locked")
        return SignIn(REFUSED, user, "locked")
    matches, needs_rehash = passwords.hasher().verify(user.password_hash, password)
    if not matches:
        register_failure(user, threshold=threshold, ip=ip, now=now,
                         reason="no password yet" if not user.password_hash else "wrong password")
        return SignIn(REFUSED, user, "wrong")
    if user.disabled:
        audit.record(user, "signin_refused", target_user=user, ip=ip, detail="disabled")
        return SignIn(REFUSED, user, "disabled")
    with database.atomic():
        fields = {}
        if user.failed_logins or user.locked_until is not None:
            fields.update({User.failed_logins: 0, User.locked_until: None})
        if needs_rehash:
            fields[User.password_hash] = passwords.hasher().hash(password)
        if fields:  # the usual sign-in writes only its audit entry here
            User.update(fields).where(User.id == user.id).execute()
        audit.record(user, "signin_password_ok", target_user=user, ip=ip,
                     detail="rehashed" if needs_rehash else None)
    user.failed_logins, user.locked_until = 0, None
    return SignIn(OK, user, "")


def register_failure(user: User, *, threshold: int, ip=None, now=None, reason="wrong password") -> None:
    """Count one failed attempt (password or exhausted second step) and lock when due."""
    now = now or utcnow()
    with database.atomic():
        User.update(failed_logins=User.failed_logins + 1).where(User.id == user.id).execute()
        failures = User.select(User.failed_logins).where(User.id == user.id).scalar()
        wait = lock_wait(failures, threshold)
        audit.record(user, "signin_failed", target_user=user, ip=ip, detail=f"{reason} ({failures})")
        if wait:
            until = now + wait
            User.update(locked_until=until).where(User.id == user.id).execute()
            audit.record(user, "account_locked", target_user=user, ip=ip, new=until.isoformat(sep=" "),
                         detail=f"after {failures} failures, {int(wait.total_seconds() // 60)} min")


class PolicyError(ValueError):
    def __init__(self, failures):
        super().__init__(", ".join(failures))
        self.failures = failures


def set_password(user: User, new_password: str, *, actor, action: str, ip=None) -> None:
    """Hash and store a password the portal's policy accepts; trusted browsers and lock are cleared.

    Call inside the transaction that also consumes the reset token (if any).
    """
    failures = passwords.policy_failures(user.portal, new_password)
    if failures:
        raise PolicyError(failures)
    now = utcnow()
    with database.atomic():
        User.update(password_hash=passwords.hasher().hash(new_password), password_changed_at=now,
                    failed_logins=0, locked_until=None, updated_at=now).where(User.id == user.id).execute()
        revoked = clear_trusted_browsers(user)
        audit.record(actor, action, target_user=user, field="password", ip=ip,
                     detail=f"trusted browsers revoked: {revoked}" if revoked else None)


def complete_sign_in(user: User, *, ip=None, now=None) -> User:
    """The whole sign-in is done; the first one also completes the first login.

    The contract's progress counter moves in the same transaction, and only when this call is the
    one that set ``first_login_done_at`` (a concurrent double submit counts once).
    """
    now = now or utcnow()
    with database.atomic():
        User.update(last_login_at=now).where(User.id == user.id).execute()
        first = 0
        if user.first_login_done_at is None:  # the conditional update decides a race
            first = (User.update(first_login_done_at=now)
                     .where((User.id == user.id) & User.first_login_done_at.is_null()).execute())
        if first:
            Contract.update(users_first_login_done=Contract.users_first_login_done + 1).where(
                Contract.id == user.contract_id).execute()
            audit.record(user, "first_login_done", target_user=user, ip=ip)
        audit.record(user, "signin_completed", target_user=user, ip=ip)
    user.last_login_at = now
    if first:
        user.first_login_done_at = now
    return user
