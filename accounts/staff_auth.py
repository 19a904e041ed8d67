"""Staff sign-in to the console: password, then TOTP (set up at the first sign-in).

Failed passwords and codes count towards a lockout like the portals'; a wrong login ID costs the
same time as a wrong password (no enumeration of staff accounts).
"""
import datetime

from . import audit, totp
from .clock import utcnow
from .db import database
from .models import Staff
from .passwords import hasher

LOCK_MINUTES = 30
TOTP_ISSUER = "Portal admin console"


def check_password(login_id: str, password: str, *, threshold: int, ip=None) -> tuple[Staff | None, str]:
    """(staff, "") on success; (None, reason) otherwise: reason is "invalid" or "locked".

    A locked account answers "locked" only after a correct password, so the lock does not reveal
    which login IDs exist.
    """
    staff = Staff.by_login_id((login_id or "").strip()) if login_id else None
    ok, rehash = hasher().verify(staff.password_hash if staff else None, password or "")
    if staff is None or staff.disabled:
        return None, "invalid"
    now = utcnow()
    if not ok:
        _failed(staff, now, ip, "password", threshold)
        return None, "invalid"
    if staff.locked_until and staff.locked_until > now:
        audit.record(staff, "staff_signin_locked", ip=ip)
        return None, "locked"
    if rehash:
        Staff.update(password_hash=hasher().hash(password)).where(Staff.id == staff.id).execute()
    return staff, ""


def _failed(staff: Staff, now, ip, step: str, threshold: int) -> None:
    with database.atomic():
        Staff.update(failed_logins=Staff.failed_logins + 1).where(Staff.id == staff.id).execute()
        fresh = Staff.get_by_id(staff.id)
        if fresh.failed_logins >= threshold:
            Staff.update(locked_until=now + datetime.timedelta(minutes=LOCK_MINUTES),
                         failed_logins=0).where(Staff.id == staff.id).execute()
            audit.record(staff, "staff_locked", ip=ip, detail=f"after failed {step}")
        else:
            audit.record(staff, "staff_signin_failed", ip=ip, detail=step)


def verify_code(staff: Staff, code: str, *, threshold: int, ip=None) -> bool:
    """The second step for a staff account with TOTP set up (replayed codes are refused)."""
    staff = Staff.get_by_id(staff.id)
    if staff.locked_until and staff.locked_until > utcnow():
        return False
    step = totp.verify(staff.totp_secret, code, staff.totp_last_step)
    if step is None:
        _failed(staff, utcnow(), ip, "totp", threshold)
        return False
    with database.atomic():
        got = (Staff.update(totp_last_step=step, failed_logins=0, last_login_at=utcnow())
               .where((Staff.id == staff.id) & ((Staff.totp_last_step.is_null())
                                                | (Staff.totp_last_step < step))).execute())
        if got:
            audit.record(staff, "staff_signed_in", ip=ip)
    return bool(got)


def confirm_setup(staff: Staff, secret: str, code: str, *, threshold: int, ip=None) -> bool:
    """First sign-in: the secret shown as a QR code is kept once the staff member proves it works."""
    staff = Staff.get_by_id(staff.id)
    if staff.totp_confirmed_at is not None:
        return False
    step = totp.verify(secret, code, None)
    if step is None:
        _failed(staff, utcnow(), ip, "totp setup", threshold)
        return False
    now = utcnow()
    with database.atomic():
        got = (Staff.update(totp_secret=secret, totp_confirmed_at=now, totp_last_step=step,
                            failed_logins=0, last_login_at=now)
               .where((Staff.id == staff.id) & Staff.totp_confirmed_at.is_null()).execute())
        if got:
            audit.record(staff, "staff_totp_set_up", ip=ip)
            audit.record(staff, "staff_signed_in", ip=ip)
    return bool(got)


def setup_uri(staff: Staff, secret: str) -> str:
    return totp.provisioning_uri(secret, staff.login_id, TOTP_ISSUER)
