"""Staff accounts (operator, helpdesk): created and managed by the operator, never from a portal.

The command line and the console's staff page call the same functions here; every change is
audited. Two guards keep a deployment manageable: nobody disables their own account, and the last
enabled operator cannot be disabled (there would be nobody left to enable anyone).
"""
from . import audit, fields
from .clock import utcnow
from .db import database, is_postgres
from .models import Staff
from .passwords import MAX_LENGTH, hasher

ROLES = ("operator", "helpdesk")
MAX_LOGIN_ID = 64  # staff keep shorter IDs; the characters are the portals' (accounts.fields)
STAFF_MIN_PASSWORD = 12

DISABLE = "disable"
ENABLE = "enable"
UNLOCK = "unlock"
RESET_TOTP = "reset_totp"
ACTIONS = (DISABLE, ENABLE, UNLOCK, RESET_TOTP)


class StaffError(ValueError):
    """A refused staff operation. ``code`` names the reason for a screen's own message."""

    def __init__(self, message: str, code: str = "invalid"):
        super().__init__(message)
        self.code = code


class StaffNotFound(StaffError):
    def __init__(self, login_id: str = ""):
        super().__init__(f"no staff account '{login_id}'" if login_id else "no such staff account",
                         "not_found")


def check_password(password: str) -> None:
    if not (STAFF_MIN_PASSWORD <= len(password or "") <= MAX_LENGTH * 2):
        raise StaffError(f"password must be {STAFF_MIN_PASSWORD}-{MAX_LENGTH * 2} characters",
                         "password")


def create_staff_account(login_id: str, role: str, password: str) -> Staff:
    if role not in ROLES:
        raise StaffError(f"role must be one of {', '.join(ROLES)}")
    if fields.login_id_problem(login_id or "", max_length=MAX_LOGIN_ID):
        raise StaffError(f"login ID must be {fields.MIN_LOGIN_ID}-{MAX_LOGIN_ID} characters of letters, "
                         f"digits and {' '.join(fields.LOGIN_ID_SYMBOLS)}")
    check_password(password)
    with database.atomic():
        if Staff.select().where(Staff.login_id_key == login_id.lower()).exists():
            raise StaffError(f"a staff account '{login_id}' already exists")
        staff = Staff.create(login_id=login_id, login_id_key=login_id.lower(), role=role,
                             password_hash=hasher().hash(password))
        audit.record("cli", "staff_created", detail=f"{role}:{login_id}")
    return staff


def listing() -> list[Staff]:
    """Every staff account, operators first (a deployment has tens, not millions)."""
    return list(Staff.select().order_by(Staff.role.desc(), Staff.login_id_key))


def find(login_id: str) -> Staff:
    staff = Staff.by_login_id((login_id or "").strip()) if login_id else None
    if staff is None:
        raise StaffNotFound(login_id)
    return staff


def get(staff_id) -> Staff | None:
    try:
        return Staff.get_or_none(Staff.id == int(staff_id))
    except (TypeError, ValueError):
        return None


def status(staff: Staff, now=None) -> str:
    """disabled | locked | totp_pending | active: what the list shows first."""
    if staff.disabled:
        return "disabled"
    if staff.locked_until is not None and staff.locked_until > (now or utcnow()):
        return "locked"
    if staff.totp_confirmed_at is None:
        return "totp_pending"
    return "active"


def _locked_row(staff_id: int) -> Staff:
    q = Staff.select().where(Staff.id == staff_id)
    row = (q.for_update() if is_postgres() else q).first()
    if row is None:
        raise StaffNotFound()
    return row


def apply(actor, target_id: int, action: str, *, ip=None) -> Staff:
    """Disable, enable, unlock or reset the TOTP of a staff account; audited. Returns the fresh row.

    ``actor`` is the operator's Staff row (console) or a label such as "cli" (command line).
    """
    if action not in ACTIONS:
        raise StaffError(f"unknown action {action}", "invalid")
    with database.atomic():
        if is_postgres():
            # Two operators disabling each other at once must not both pass the "last operator"
            # check: the operators' rows are locked in one order before counting.
            list(Staff.select(Staff.id).where(Staff.role == "operator").order_by(Staff.id).for_update())
        staff = _locked_row(target_id)
        label = f"staff:{staff.login_id}"
        if action == DISABLE:
            if isinstance(actor, Staff) and actor.id == staff.id:
                raise StaffError("you cannot disable your own account", "self")
            if staff.disabled:
                return staff
            if staff.role == "operator":
                others = (Staff.select().where((Staff.role == "operator") & (Staff.disabled == False)  # noqa: E712
                                               & (Staff.id != staff.id)).count())
                if others == 0:
                    raise StaffError(f"'{staff.login_id}' is the last enabled operator: enable or "
                                     "create another operator first", "last_operator")
            Staff.update(disabled=True).where(Staff.id == staff.id).execute()
            audit.record(actor, "staff_disabled", field="disabled", old=False, new=True, ip=ip,
                         detail=label)
        elif action == ENABLE:
            if not staff.disabled:
                return staff
            Staff.update(disabled=False).where(Staff.id == staff.id).execute()
            audit.record(actor, "staff_enabled", field="disabled", old=True, new=False, ip=ip,
                         detail=label)
        elif action == UNLOCK:
            Staff.update(failed_logins=0, locked_until=None).where(Staff.id == staff.id).execute()
            audit.record(actor, "staff_unlocked", field="locked_until", old=staff.locked_until,
                         new=None, ip=ip, detail=label)
        else:  # RESET_TOTP: the account sets up a new TOTP at its next sign-in
            Staff.update(totp_secret=None, totp_confirmed_at=None, totp_last_step=None) \
                .where(Staff.id == staff.id).execute()
            audit.record(actor, "staff_totp_reset", field="totp", old="set up" if
                         staff.totp_confirmed_at else "not set up", new="set up at next sign-in",
                         ip=ip, detail=label)
    return Staff.get_by_id(staff.id)


def set_password(actor, login_id: str, password: str, *, ip=None) -> Staff:
    """A new password chosen by the operator (command line); it also clears a lock."""
    staff = find(login_id)
    check_password(password)
    with database.atomic():
        Staff.update(password_hash=hasher().hash(password), failed_logins=0, locked_until=None) \
            .where(Staff.id == staff.id).execute()
        audit.record(actor, "staff_password_set", field="password", ip=ip,
                     detail=f"staff:{staff.login_id}")
    return Staff.get_by_id(staff.id)


# --- the staff-* commands (thin wrappers in app.py call these) -----------------------------------

def command_list() -> int:
    import click

    from .clock import format_jst

    rows = listing()
    if not rows:
        click.echo("no staff account yet: flask --app app create-staff LOGIN_ID --role operator")
        return 0
    width = max(len(s.login_id) for s in rows)
    click.echo(f"{'login_id'.ljust(width)}  role      state         last sign-in")
    now = utcnow()
    for s in rows:
        last = format_jst(s.last_login_at) if s.last_login_at else "-"
        click.echo(f"{s.login_id.ljust(width)}  {s.role.ljust(8)}  {status(s, now).ljust(12)}  {last}")
    return 0


DONE = {
    DISABLE: "disabled: it can no longer sign in",
    ENABLE: "enabled: it may sign in again",
    UNLOCK: "unlocked",
    RESET_TOTP: "TOTP reset: it sets up TOTP again at the next sign-in",
}


def command_apply(login_id: str, action: str) -> int:
    """staff-disable / staff-enable / staff-unlock / staff-reset-totp: 0 done, 1 refused."""
    import click

    try:
        staff = apply("cli", find(login_id).id, action)
    except StaffError as exc:
        click.echo(f"refused: {exc}", err=True)
        return 1
    click.echo(f"{staff.role} '{staff.login_id}' {DONE[action]}")
    return 0


def command_set_password(login_id: str, password: str) -> int:
    import click

    try:
        staff = set_password("cli", login_id, password)
    except StaffError as exc:
        click.echo(f"refused: {exc}", err=True)
        return 1
    click.echo(f"new password set for {staff.role} '{staff.login_id}' (any lock cleared)")
    return 0
