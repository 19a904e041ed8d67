"""Password sign-in with lockout, password setting, and completing a sign-in (first login included).

One generic refusal for an unknown login ID, a wrong password, a locked or a disabled account,
costing one argon2id verify each time, so that neither the message nor the time tells them apart.
The lock rules (accounts.lockout, SPEC 11.4): waits of 1, 5, then 15 minutes, never longer; after
100 consecutive failures the account stays locked until a reset by mail or an administrator's
unlock. A browser the owner marked "remember" (a valid trusted-browser cookie) is not kept out by
a temporary lock that someone else's wrong passwords caused; its own wrong passwords still count.
"""
from dataclasses import dataclass

from . import audit, fields, lockout, passwords, sessions, twostep
from .clock import utcnow
from .db import database, deferred, update_rows
from .models import Contract, User

OK = "ok"
REFUSED = "refused"  # the one answer for unknown / wrong / locked / disabled

lock_wait = lockout.lock_wait
password_locked = lockout.password_locked
twostep_locked = lockout.twostep_locked


@dataclass(frozen=True)
class SignIn:
    outcome: str
    user: User | None = None
    # Internal reason for the audit trail and the console's diagnosis; never shown to the user.
    reason: str = ""


def verify_password(portal: str, login_id: str, password: str, *, threshold: int, ip=None,
                    now=None, trusted_token: str | None = None) -> SignIn:
    """Check a login ID and password on a portal, with lockout; refusals are audited here, the
    success by the caller (``password_passed`` or ``complete_sign_in``: one entry per sign-in).

    ``trusted_token`` is the browser's trusted-browser cookie, if any: it lets the owner's
    remembered browser past a temporary lock (never past a hard lock).
    """
    now = now or utcnow()
    login_id = (login_id or "").strip()
    user = User.by_login_id(portal, login_id) if 0 < len(login_id) <= fields.MAX_LOGIN_ID else None
    if user is None:
        passwords.hasher().burn(password)
        return SignIn(REFUSED, None, "unknown")
    if lockout.hard_locked(user) or (lockout.password_locked(user, now)
                                     and not twostep.trusted_browser_valid(user, trusted_token, now=now)):
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
    if user.failed_logins or user.locked_until is not None or needs_rehash:
        with database.atomic():
            lockout.clear_password_failures(User, user)
            if needs_rehash:
                User.update(password_hash=passwords.hasher().hash(password)).where(
                    User.id == user.id).execute()
                audit.record(user, "password_rehashed", target_user=user, ip=ip)
    return SignIn(OK, user, "")


def signed_out(user: User, *, ip=None) -> None:
    """The user signed out (the session row itself is ended by the web layer's session.clear())."""
    audit.record(user, "signout", target_user=user, ip=ip)


def password_passed(user: User, *, ip=None, detail: str | None = None) -> None:
    """The audit entry of a password that passed while the second step is still to come."""
    audit.record(user, "signin_password_ok", target_user=user, ip=ip, detail=detail)


def register_failure(user: User, *, threshold: int, ip=None, now=None, reason="wrong password") -> None:
    """Count one wrong password and lock when due."""
    failures, until = lockout.count_password_failure(User, user, threshold=threshold, now=now)
    _audit_failure(user, failures, until, ip=ip, reason=reason, action="signin_failed")


def register_twostep_failure(user: User, *, ip=None, now=None, reason="wrong code") -> None:
    """Count one wrong second-step code (any channel); 10 in a row lock the second step."""
    failures, until = lockout.count_twostep_failure(User, user, now=now)
    _audit_failure(user, failures, until, ip=ip, reason=reason, action="twostep_failed")


def _audit_failure(user, failures, until, *, ip, reason, action):
    audit.record(user, action, target_user=user, ip=ip, detail=f"{reason} ({failures})")
    if failures == lockout.HARD_LOCK_FAILURES:
        audit.record(user, "account_locked", target_user=user, ip=ip,
                     detail=f"after {failures} failures: until a reset by mail or an unlock")
    elif until is not None:
        audit.record(user, "account_locked" if action == "signin_failed" else "twostep_locked",
                     target_user=user, ip=ip, new=until.isoformat(sep=" "),
                     detail=f"after {failures} failures")


def twostep_succeeded(user: User) -> None:
    lockout.clear_twostep_failures(User, user)


class PolicyError(ValueError):
    def __init__(self, failures):
        super().__init__(", ".join(failures))
        self.failures = failures


def set_password(user: User, new_password: str, *, actor, action: str, ip=None,
                 keep_session_id: int | None = None) -> None:
    """Hash and store a password the portal's policy accepts.

    Every lock is lifted (a completed reset by mail always unlocks), trusted browsers are revoked
    and the account's other sessions end (all of them, but ``keep_session_id``: the one the user
    changed the password in). Call inside the transaction that also consumes the reset token.
    """
    failures = passwords.policy_failures(user.portal, new_password)
    if failures:
        raise PolicyError(failures)
    now = utcnow()
    with database.atomic():
        User.update({User.password_hash: passwords.hasher().hash(new_password),
                     User.password_changed_at: now, User.updated_at: now, **lockout.unlock_fields(User)}
                    ).where(User.id == user.id).execute()
        revoked = twostep.clear_trusted_browsers(user)
        ended = sessions.end_all(user, except_id=keep_session_id)
        audit.record(actor, action, target_user=user, field="password", ip=ip,
                     detail=f"trusted browsers revoked: {revoked}, sessions ended: {ended}")


def complete_sign_in(user: User, *, ip=None, now=None, detail: str | None = None) -> User:
    """The whole sign-in is done; the first one also completes the first login. ``detail`` says
    how (e.g. "password + trusted browser" when one request did it all: one audit entry).

    The contract's progress counter moves in the same transaction, and only when this call is the
    one that set ``first_login_done_at`` (a concurrent double submit counts once). Called inside
    the caller's transaction (the sign-in's POST), it joins it instead of nesting a savepoint:
    two statements fewer, two round trips on PostgreSQL; an error still undoes the whole sign-in.
    Its last two writes are ``deferred``: in the POST's ``pipelined()`` block they reach
    PostgreSQL together with the COMMIT.
    """
    now = now or utcnow()
    with database.transaction():
        first = 0
        if user.first_login_done_at is None:  # the conditional update decides a race
            first = (User.update(first_login_done_at=now)
                     .where((User.id == user.id) & User.first_login_done_at.is_null()).execute())
        if first:
            Contract.update(users_first_login_done=Contract.users_first_login_done + 1).where(
                Contract.id == user.contract_id).execute()
            audit.record(user, "first_login_done", target_user=user, ip=ip)
        with deferred():  # nobody reads these answers: under pipelined() they go with the COMMIT
            update_rows(User, '"id" = ?', (user.id,), last_login_at=now)
            audit.record(user, "signin_completed", target_user=user, ip=ip, detail=detail)
    user.last_login_at = now
    if first:
        user.first_login_done_at = now
    return user
