"""Staff accounts (operator, helpdesk): created from the command line, never from a portal."""
import re

from . import audit
from .db import database
from .models import Staff
from .passwords import MAX_LENGTH, hasher

ROLES = ("operator", "helpdesk")
LOGIN_ID_RE = re.compile(r"^[A-Za-z0-9._@+-]{3,64}$")
STAFF_MIN_PASSWORD = 12


class StaffError(ValueError):
    pass


def create_staff_account(login_id: str, role: str, password: str) -> Staff:
    if role not in ROLES:
        raise StaffError(f"role must be one of {', '.join(ROLES)}")
    if not LOGIN_ID_RE.match(login_id or ""):
        raise StaffError("login ID must be 3-64 characters of letters, digits and . _ @ + -")
    if not (STAFF_MIN_PASSWORD <= len(password) <= MAX_LENGTH * 2):
        raise StaffError(f"password must be {STAFF_MIN_PASSWORD}-{MAX_LENGTH * 2} characters")
    with database.atomic():
        if Staff.select().where(Staff.login_id_key == login_id.lower()).exists():
            raise StaffError(f"a staff account '{login_id}' already exists")
        staff = Staff.create(login_id=login_id, login_id_key=login_id.lower(), role=role,
                             password_hash=hasher().hash(password))
        audit.record("cli", "staff_created", detail=f"{role}:{login_id}")
    return staff
