"""What the console changes: corrections with optimistic locking, resets, contact mails, reminders.

Every function takes the acting principal and checks accounts.scope itself (the views check too,
but the domain must not depend on that), writes its audit entry and mails in the same transaction
as the change, and never sets or shows a password.
"""
from peewee import IntegrityError

from . import audit, fields, lockout, outbox, period, phones, scope, sessions, tokens
from .clock import utcnow
from .db import database
from .models import BUSINESS, BackupCode, TrustedBrowser, User

EDITABLE = ("email", "login_id", "name", "phone")

RESET_2STEP = "reset_twostep"
CLEAR_TRUSTED = "clear_trusted_browsers"
UNLOCK = "unlock"
DISABLE = "disable"
ENABLE = "enable"
END_SESSIONS = "end_sessions"
SEND_RESET_LINK = "send_reset_link"
ACTIONS = (SEND_RESET_LINK, RESET_2STEP, CLEAR_TRUSTED, UNLOCK, DISABLE, ENABLE, END_SESSIONS)


class ConsoleError(Exception):
    """A refused console operation; ``code`` names the reason for the screen's message."""

    def __init__(self, code: str, field: str | None = None, current=None):
        super().__init__(code)
        self.code = code
        self.field = field
        self.current = current


class NotFound(ConsoleError):
    """Missing or out of scope: the same answer for both."""

    def __init__(self):
        super().__init__("not_found")


class Invalid(ConsoleError):
    pass


class Conflict(ConsoleError):
    """Someone else changed the user since the page was loaded; ``current`` is the fresh User."""


def clean(field: str, value: str) -> str:
    """The value as it will be stored. Names are kept byte for byte (spaces matter, SPEC 4)."""
    value = value or ""
    if field == "email":
        return value.strip()
    if field == "login_id":
        return value.strip()
    if field == "phone":
        return phones.typed_phone(value)
    return value


def validate(user: User, field: str, value: str) -> str | None:
    """The error code for ``value`` in ``field`` of ``user``, or None when it may be saved.

    The inline validation while typing and the final save both call this.
    """
    if field not in EDITABLE:
        return "unknown_field"
    value = clean(field, value)
    if field == "email":
        problem = fields.email_problem(value)
        return {"required": "required", None: None}.get(problem, "email_format")
    if field == "login_id":
        problem = fields.login_id_problem(value, current=user.login_id)
        if problem:
            return "required" if problem == "required" else "login_id_format"
        if User.login_id_taken(user.portal, value, exclude_id=user.id):
            return "login_id_taken"
        return None
    if field == "name":
        if not value.strip():
            return "required"
        if len(value) > 255 or fields.holds_control_characters(value):
            return "name_format"
        if value != value.strip():
            return "name_edge_space"
        return None
    # phone: the Business Portal's identity check needs 4-32 digits; SDPF may leave it empty.
    if not value:
        return "required" if user.portal == BUSINESS else None
    return phones.phone_problem(value)


def _require(principal, action: str, user_id) -> User:
    user = scope.get_user_in_scope(principal, user_id)
    if user is None or not scope.may(principal, action):
        raise NotFound()
    return user


def update_field(principal, user_id, field: str, value: str, version, *, ip=None) -> User:
    """Correct one identity field if the page's ``version`` is still current (no lost update).

    Raises Invalid (with the reason) or Conflict (with the current user, to show its value).
    """
    return update_fields(principal, user_id, {field: value}, version, ip=ip)


def update_fields(principal, user_id, values: dict, version, *, ip=None, detail=None) -> User:
    """Correct several identity fields of one user at once, if ``version`` is still current.

    The one home of a correction's rules, for the console's click-to-edit (one field) and the
    bulk corrections (a row of a file, accounts.bulk_corrections): every value checked with
    ``validate``, one transaction, one version step, one audit entry per changed field, the old
    and new address told of an e-mail change (older links voided), the user told of a login-ID
    change. Values equal to the current ones change nothing. ``detail`` goes into the audit
    entries (e.g. which file and line a bulk correction came from).

    Raises NotFound, Conflict (with the current user) or Invalid (the first bad field and why).
    """
    user = _require(principal, scope.EDIT, user_id)
    first = next(iter(values), None)
    try:
        version = int(version)
    except (TypeError, ValueError):
        raise Conflict("stale", first, current=user) from None
    if version != user.version:
        raise Conflict("stale", first, current=user)
    for field, value in values.items():
        error = validate(user, field, value)
        if error:
            raise Invalid(error, field)
    changed = {}
    for field, value in values.items():
        new, old = clean(field, value), getattr(user, field)
        if new != old:
            changed[field] = (old, new)
    if not changed:
        return user
    now = utcnow()
    new_values = {"version": version + 1, "updated_at": now}
    for field, (_old, new) in changed.items():
        new_values[field] = new
        if field in ("email", "login_id"):
            new_values[f"{field}_key"] = new.lower()
    # The row as the update leaves it (the version guard says nothing else changed these fields),
    # built here rather than read again: a bulk correction saves thousands of rows.
    fresh = User(**{**user.__data__, **new_values})
    fresh._dirty.clear()
    try:
        with database.atomic():
            updated = (User.update({**new_values, "version": User.version + 1})
                       .where((User.id == user.id) & (User.version == version)).execute())
            if not updated:
                raise Conflict("stale", first, current=User.get_by_id(user.id))
            for field, (old, new) in changed.items():
                audit.record(principal, f"{field}_changed", target_user=user, field=field, old=old,
                             new=new, ip=ip, detail=detail)
            if "email" in changed:
                old, new = changed["email"]
                tokens.void_all(fresh)
                # SPEC 11.5: an e-mail change ends the account's sessions (the admin's is not one).
                sessions.end_all(fresh)
                for recipient in (old, new):
                    outbox.render_and_enqueue(
                        "email_changed", recipient=recipient, subject=_subject("email_changed"),
                        kind="email_changed", user=fresh, language=fresh.language,
                        user_obj=fresh, old=old, new=new, portal=fresh.portal)
            if "login_id" in changed:
                old, new = changed["login_id"]
                outbox.render_and_enqueue(
                    "login_id_changed", recipient=fresh.email, subject=_subject("login_id_changed"),
                    kind="login_id_changed", user=fresh, language=fresh.language,
                    user_obj=fresh, old=old, new=new, portal=fresh.portal)
    except IntegrityError:  # a concurrent save took the same login ID first
        raise Invalid("login_id_taken", "login_id") from None
    return fresh


def _subject(kind: str):
    """Mail subjects, translated in the recipient's language by outbox (lazy strings)."""
    from flask_babel import lazy_gettext as _l

    return {
        "email_changed": _l("Your registered e-mail address was changed"),
        "login_id_changed": _l("Your login ID was changed"),
        "reminder": _l("Please complete your first login to the new portal"),
    }[kind]


def reset(principal, user_id, action: str, *, ip=None) -> User:
    """One of the console's resets. The user's password is never set or shown here.

    A two-step reset, disabling and "sign out everywhere" end every session of the user
    (SPEC 11.5), pending sign-ins included.
    """
    if action not in (RESET_2STEP, CLEAR_TRUSTED, UNLOCK, DISABLE, ENABLE, END_SESSIONS):
        raise NotFound()
    user = _require(principal, scope.RESET, user_id)
    now = utcnow()
    with database.atomic():
        if action == RESET_2STEP:
            User.update(twostep_method=None, totp_secret=None, totp_last_step=None,
                        updated_at=now).where(User.id == user.id).execute()
            codes = BackupCode.delete().where(BackupCode.user == user).execute()
            browsers = TrustedBrowser.delete().where(TrustedBrowser.user == user).execute()
            ended = sessions.end_all(user)
            audit.record(principal, action, target_user=user, field="twostep_method",
                         old=user.twostep_method, new=None, ip=ip,
                         detail=f"backup codes removed: {codes}, trusted browsers removed: {browsers}, "
                                f"sessions ended: {ended}")
        elif action == CLEAR_TRUSTED:
            browsers = TrustedBrowser.delete().where(TrustedBrowser.user == user).execute()
            audit.record(principal, action, target_user=user, ip=ip,
                         detail=f"trusted browsers removed: {browsers}")
        elif action == UNLOCK:
            User.update({**lockout.unlock_fields(User), User.updated_at: now}) \
                .where(User.id == user.id).execute()
            audit.record(principal, action, target_user=user, field="locked_until",
                         old=user.locked_until, new=None, ip=ip)
        elif action == END_SESSIONS:
            ended = sessions.end_all(user)
            audit.record(principal, action, target_user=user, ip=ip, detail=f"sessions ended: {ended}")
        else:
            disabled = action == DISABLE
            User.update(disabled=disabled, updated_at=now).where(User.id == user.id).execute()
            ended = sessions.end_all(user) if disabled else 0
            audit.record(principal, action, target_user=user, field="disabled",
                         old=user.disabled, new=disabled, ip=ip,
                         detail=f"sessions ended: {ended}" if disabled else None)
    return User.get_by_id(user.id)


def send_reset_link(principal, user_id, *, config, base_url: str, ip=None):
    """The reset (first-login) mail, sent by an admin or the helpdesk on the user's behalf."""
    from . import recovery

    user = _require(principal, scope.SEND_RESET, user_id)
    if user.disabled:
        raise Invalid("disabled")
    try:
        return recovery.send_reset_link(user, config=config, base_url=base_url, actor=principal, ip=ip)
    except period.NotYetOpen as exc:
        raise Invalid("not_yet_open", current=exc.opens_at) from None


CONTACT_SUBJECT_MAX = 200
CONTACT_BODY_MAX = 5000


def validate_contact(subject: str, body: str) -> dict:
    errors = {}
    if not (subject or "").strip():
        errors["subject"] = "required"
    elif len(subject) > CONTACT_SUBJECT_MAX:
        errors["subject"] = "too_long"
    elif any(c in subject for c in "\r\n\x00"):  # a line break would start a header (SPEC 11.6)
        errors["subject"] = "line_break"
    if not (body or "").strip():
        errors["body"] = "required"
    elif len(body) > CONTACT_BODY_MAX:
        errors["body"] = "too_long"
    return errors


def contact(principal, user_id, subject: str, body: str, *, base_url: str, ip=None):
    """A mail from the console to the user, kept in the user's mail log like every other mail."""
    user = _require(principal, scope.CONTACT, user_id)
    errors = validate_contact(subject, body)
    if errors:
        field, code = next(iter(errors.items()))
        raise Invalid(code, field)
    with database.atomic():
        mail = outbox.render_and_enqueue(
            "contact", recipient=user.email, subject=subject.strip(), kind="contact", user=user,
            language=user.language, user_obj=user, body=body, portal=user.portal,
            portal_url=f"{base_url.rstrip('/')}/{user.portal}/")
        audit.record(principal, "contact_sent", target_user=user, ip=ip,
                     detail=f"mail {mail.message_id}: {subject.strip()}")
    return mail


def remind(principal, user_ids, *, base_url: str, ip=None) -> int:
    """Reminder mails to users in scope whose first login is pending; returns how many were sent.

    Users out of scope, already done or disabled are skipped silently (the list came from a form).
    Before the migration period a selection holding a migrated user is refused whole
    (Invalid "not_yet_open", ``current`` = the period's start): nobody moves users early.
    """
    if not scope.may(principal, scope.REMIND):
        raise NotFound()
    ids = []
    for raw in user_ids:
        try:
            ids.append(int(raw))
        except (TypeError, ValueError):
            continue
    if not ids:
        return 0
    users = list(User.select().where(
        User.id.in_(ids[:500]) & scope.user_condition(principal)
        & User.first_login_done_at.is_null(True) & (User.disabled == False)))  # noqa: E712
    current = period.current()
    for user in users:
        opens_at = period.first_login_opens_at(user, period=current)
        if opens_at is not None:
            raise Invalid("not_yet_open", current=opens_at)
    with database.atomic():
        for user in users:
            outbox.render_and_enqueue(
                "first_login_reminder", recipient=user.email, subject=_subject("reminder"),
                kind="reminder", user=user, language=user.language, user_obj=user,
                portal=user.portal, portal_url=f"{base_url.rstrip('/')}/{user.portal}/")
            audit.record(principal, "reminder_sent", target_user=user, ip=ip)
    return len(users)
