"""Failed sign-in attempts and locks, one rule for portal users, staff and legacy accounts
(SPEC 11.4).

- Password failures and second-step failures (Mail OTP, TOTP, backup code) are two counters per
  account. A correct password clears only the first; a passed second step only the second.
- After ``threshold`` consecutive password failures the account locks; each further failure
  locks it again, for 1, 5 and then 15 minutes: a wait never exceeds 15 minutes, so someone who
  knows only a login ID keeps nobody out for long.
- After ``TWOSTEP_THRESHOLD`` consecutive second-step failures the second step is locked for 15
  minutes, whatever the channel.
- After ``HARD_LOCK_FAILURES`` (100, NIST SP 800-63B) consecutive failures of either kind the
  account stays locked until its owner completes a password reset by mail or an administrator
  unlocks it.

The counters move with single UPDATE statements (``x = x + 1``), so concurrent attempts on
several workers are all counted.
"""
import datetime

from .clock import utcnow
from .db import database

LOCK_MINUTES = (1, 5, 15)
MAX_LOCK = datetime.timedelta(minutes=LOCK_MINUTES[-1])
HARD_LOCK_FAILURES = 100
TWOSTEP_THRESHOLD = 10
TWOSTEP_LOCK = datetime.timedelta(minutes=15)


def lock_wait(failures: int, threshold: int) -> datetime.timedelta | None:
    """How long the account locks after its ``failures``-th consecutive failure (None: no lock)."""
    if failures < threshold:
        return None
    index = min(failures - threshold, len(LOCK_MINUTES) - 1)
    return datetime.timedelta(minutes=LOCK_MINUTES[index])


def hard_locked(account) -> bool:
    """Locked until a reset by mail or an administrator's unlock."""
    return (account.failed_logins or 0) >= HARD_LOCK_FAILURES \
        or (getattr(account, "twostep_failures", 0) or 0) >= HARD_LOCK_FAILURES


def password_locked(account, now=None) -> bool:
    return hard_locked(account) or (account.locked_until is not None
                                    and account.locked_until > (now or utcnow()))


def twostep_locked(account, now=None) -> bool:
    until = getattr(account, "twostep_locked_until", None)
    return hard_locked(account) or (until is not None and until > (now or utcnow()))


def locked_until(account, now=None) -> datetime.datetime | None:
    """When the current lock ends (None: not locked, or locked until a reset/unlock)."""
    now = now or utcnow()
    ends = [t for t in (account.locked_until, getattr(account, "twostep_locked_until", None))
            if t is not None and t > now]
    return max(ends) if ends else None


def _count(model, account, counter: str, until_field: str, threshold: int, now,
           wait_for) -> tuple[int, datetime.datetime | None]:
    with database.atomic():
        field = getattr(model, counter)
        model.update({field: field + 1}).where(model.id == account.id).execute()
        failures = model.select(field).where(model.id == account.id).scalar()
        wait = wait_for(failures, threshold)
        until = now + wait if wait else None
        if until is not None:
            model.update({getattr(model, until_field): until}).where(model.id == account.id).execute()
    setattr(account, counter, failures)
    if until is not None:
        setattr(account, until_field, until)
    return failures, until


def count_password_failure(model, account, *, threshold: int, now=None):
    """One more wrong password; returns (consecutive failures, locked until or None)."""
    return _count(model, account, "failed_logins", "locked_until", threshold, now or utcnow(), lock_wait)


def count_twostep_failure(model, account, *, now=None):
    """One more wrong second-step code; returns (consecutive failures, locked until or None)."""
    def wait(failures, threshold):
        return TWOSTEP_LOCK if failures >= threshold else None

    return _count(model, account, "twostep_failures", "twostep_locked_until", TWOSTEP_THRESHOLD,
                  now or utcnow(), wait)


def clear_password_failures(model, account) -> None:
    """A correct password: the password counter starts again (second-step failures stay)."""
    if account.failed_logins or account.locked_until is not None:
        model.update(failed_logins=0, locked_until=None).where(model.id == account.id).execute()
        account.failed_logins, account.locked_until = 0, None


def clear_twostep_failures(model, account) -> None:
    if account.twostep_failures or account.twostep_locked_until is not None:
        model.update(twostep_failures=0, twostep_locked_until=None).where(model.id == account.id).execute()
        account.twostep_failures, account.twostep_locked_until = 0, None


def unlock_fields(model) -> dict:
    """The update that lifts every lock (an administrator's unlock, a completed reset by mail)."""
    fields = {model.failed_logins: 0, model.locked_until: None}
    if hasattr(model, "twostep_failures"):
        fields.update({model.twostep_failures: 0, model.twostep_locked_until: None})
    return fields
