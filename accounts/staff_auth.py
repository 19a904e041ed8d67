"""Staff sign-in to the console: password, then TOTP (set up at the first sign-in).

The same lock rules as the portals (accounts.lockout, SPEC 11.4): password failures and TOTP
failures are counted apart, waits never exceed 15 minutes, 100 consecutive failures lock until
an operator unlocks. A wrong login ID costs the same time as a wrong password, and while an
account is locked the answer is the same whether the password was right or wrong: the lock is
never a password oracle, and it does not reveal which login IDs exist.
"""
from . import audit, lockout, totp
from .clock import utcnow
from .db import database
from .models import Staff
from .passwords import hasher

TOTP_ISSUER = "Portal admin console"


def check_password(login_id: str, password: str, *, threshold: int, ip=None,
                   now=None) -> tuple[Staff | None, str]:
    """(staff, "") on success; (None, "invalid") for every refusal (unknown, wrong, locked,
    disabled)."""
    now = now or utcnow()
    staff = Staff.by_login_id((login_id or "").strip()) if login_id else None
    if staff is not None and lockout.password_locked(staff, now):
        hasher().burn(password or "")
        audit.record(staff, "staff_signin_refused", ip=ip, detail="locked")
        return None, "invalid"
    ok, rehash = hasher().verify(staff.password_hash if staff else None, password or "")
    if staff is None or staff.disabled:
        return None, "invalid"
    if not ok:
        failures, until = lockout.count_password_failure(Staff, staff, threshold=threshold, now=now)
        _audit_failure(staff, failures, until, ip, "password")
        return None, "invalid"
    with database.atomic():
        lockout.clear_password_failures(Staff, staff)
        if rehash:
            Staff.update(password_hash=hasher().hash(password)).where(Staff.id == staff.id).execute()
    return staff, ""


def _audit_failure(staff, failures, until, ip, step: str) -> None:
    audit.record(staff, "staff_signin_failed", ip=ip, detail=f"{step} ({failures})")
    if until is not None or failures == lockout.HARD_LOCK_FAILURES:
        audit.record(staff, "staff_locked", ip=ip,
                     new=until.isoformat(sep=" ") if until else None,
                     detail=f"after {failures} failed {step}")


def code_locked(staff: Staff, now=None) -> bool:
    return lockout.twostep_locked(Staff.get_by_id(staff.id), now)


def _code_failed(staff: Staff, ip, step: str, now=None) -> None:
    failures, until = lockout.count_twostep_failure(Staff, staff, now=now)
    _audit_failure(staff, failures, until, ip, step)


def verify_code(staff: Staff, code: str, *, threshold: int = 10, ip=None) -> bool:
    """The second step for a staff account with TOTP set up (replayed codes are refused)."""
    staff = Staff.get_by_id(staff.id)
    if lockout.twostep_locked(staff):
        return False
    step = totp.verify(staff.totp_secret, code, staff.totp_last_step)
    if step is None:
        _code_failed(staff, ip, "totp")
        return False
    with database.atomic():
        got = (Staff.update(totp_last_step=step, twostep_failures=0, twostep_locked_until=None,
                            last_login_at=utcnow())
               .where((Staff.id == staff.id) & ((Staff.totp_last_step.is_null())
                                                | (Staff.totp_last_step < step))).execute())
        if got:
            audit.record(staff, "staff_signed_in", ip=ip)
    return bool(got)


def confirm_setup(staff: Staff, secret: str, code: str, *, threshold: int = 10, ip=None) -> bool:
    """First sign-in: the secret shown as a QR code is kept once the staff member proves it works."""
    staff = Staff.get_by_id(staff.id)
    if staff.totp_confirmed_at is not None or lockout.twostep_locked(staff):
        return False
    step = totp.verify(secret, code, None)
    if step is None:
        _code_failed(staff, ip, "totp setup")
        return False
    now = utcnow()
    with database.atomic():
        got = (Staff.update(totp_secret=secret, totp_confirmed_at=now, totp_last_step=step,
                            twostep_failures=0, twostep_locked_until=None, last_login_at=now)
               .where((Staff.id == staff.id) & Staff.totp_confirmed_at.is_null()).execute())
        if got:
            audit.record(staff, "staff_totp_set_up", ip=ip)
            audit.record(staff, "staff_signed_in", ip=ip)
    return bool(got)


def setup_uri(staff: Staff, secret: str) -> str:
    return totp.provisioning_uri(secret, staff.login_id, TOTP_ISSUER)
