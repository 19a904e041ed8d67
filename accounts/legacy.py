"""The legacy Login Portal's domain: when it is open (``signin_open``, ``popup_open``: by phase),
sign-in with legacy hashes, the identity pop-up, its confirmation (with the console's field rules).

Legacy password hashes come from the export in one of three formats (argon2, bcrypt, Werkzeug's
``method$salt$hash``); anything else, or no hash, cannot sign in. An unknown login ID and a wrong
password take the same path and about the same time (a hash is burnt), so the answer tells an
attacker nothing. The same legacy login ID may exist under several contracts: every candidate's
hash is tried and the caller lets the user pick when more than one matched.
"""
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask_babel import lazy_gettext as _l
from peewee import IntegrityError

from . import audit, fields, lockout, outbox, passwords, period, recovery, tokens
from .clock import utcnow
from .db import database, is_postgres
from .models import BUSINESS, LegacyAccount, User
from .passwords import hasher

_argon2 = PasswordHasher()
EMAIL_CHANGED_SUBJECT = _l("Your e-mail address for the new portal was changed")
MAX_LOGIN_ID = fields.MAX_LOGIN_ID


hash_format = passwords.hash_format  # one rule for the three formats


def verify_legacy_hash(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches a legacy hash; unknown formats never match (and never raise)."""
    kind = hash_format(stored)
    if kind in ("bcrypt", "werkzeug"):
        return passwords.verify_foreign(stored, password)
    try:
        if kind == "argon2":
            return _argon2.verify(stored, password)
    except (VerificationError, InvalidHashError, ValueError, TypeError):
        return False
    hasher().burn(password)  # no usable hash: spend the time a check would have taken
    return False


@dataclass
class SignIn:
    """The outcome of a legacy sign-in: the accounts whose password matched (empty = refused)."""

    accounts: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.accounts)


def authenticate(login_id: str, password: str, *, ip: str | None = None, threshold: int = 10,
                 now=None) -> SignIn:
    """Try every legacy account with this login ID (any contract). Records the attempt.

    The same lockout as the new portals (accounts.lockout, SPEC 11.4), per legacy account: a
    locked candidate is not tried, a candidate whose password did not match counts a failure.
    Refused only while the legacy portal is closed (after the period) by the caller; this
    function answers the same for an unknown ID, a wrong password and a locked account.
    """
    now = now or utcnow()
    key = (login_id or "").strip().lower()
    candidates = list(LegacyAccount.select().where(LegacyAccount.login_id_key == key)
                      .order_by(LegacyAccount.contract_ecid)) if key and len(key) <= MAX_LOGIN_ID else []
    open_ones = [a for a in candidates if not lockout.password_locked(a, now)]
    if not open_ones:
        hasher().burn(password)
    matched = [a for a in open_ones if verify_legacy_hash(a.password_hash, password or "")]
    with database.atomic():
        if matched:
            for a in matched:
                lockout.clear_password_failures(LegacyAccount, a)
                audit.record(_actor(a), "legacy_signin", target_user=a.user if a.user_id else None, ip=ip,
                             detail=f"legacy {a.login_id} / {a.contract_ecid}")
        else:
            for a in open_ones:
                failures, until = lockout.count_password_failure(LegacyAccount, a, threshold=threshold,
                                                                 now=now)
                if until is not None or failures >= lockout.HARD_LOCK_FAILURES:
                    audit.record(_actor(a), "legacy_account_locked", ip=ip,
                                 target_user=a.user if a.user_id else None,
                                 detail=f"after {failures} failures")
            # No user is revealed: the entry names the typed login ID only.
            audit.record("legacy-portal", "legacy_signin_failed", ip=ip,
                         target_user=candidates[0].user if len(candidates) == 1 and candidates[0].user_id
                         else None,
                         detail=f"legacy login ID {key[:100]}"
                         + (" (locked)" if candidates and not open_ones else ""))
    return SignIn(matched)


def _actor(account: LegacyAccount):
    return account.user if account.user_id else f"legacy:{account.login_id}"


mask_email = fields.mask_email


@dataclass(frozen=True)
class Identity:
    """What the new portal will use, as shown in the pop-up (SPEC 6, guide p. 3)."""

    account: LegacyAccount
    user: User | None
    portal: str | None
    email: str
    login_id: str
    legacy_login_id: str
    login_id_changed: bool
    name: str
    phone: str
    legacy_phone: str | None
    phone_changed: bool
    confirmed_at: object

    @property
    def is_business(self) -> bool:
        return self.portal == BUSINESS


def identity(account: LegacyAccount) -> Identity:
    user = account.user if account.user_id else None
    if user is None:
        return Identity(account, None, None, account.email, "", account.login_id, False,
                        account.name, account.phone, None, False, account.confirmed_at)
    legacy_phone = user.legacy_phone
    return Identity(
        account=account, user=user, portal=user.portal, email=user.email, login_id=user.login_id,
        legacy_login_id=account.login_id,
        login_id_changed=user.login_id.lower() != account.login_id.lower(),
        name=user.name, phone=user.phone, legacy_phone=legacy_phone,
        phone_changed=legacy_phone is not None and legacy_phone != user.phone,
        confirmed_at=account.confirmed_at)


class ConfirmError(ValueError):
    """Bad input in the pop-up: ``errors`` maps a field (email / login_id / name / phone) to a code
    (name and phone: the console's codes, accounts.console.validate)."""

    def __init__(self, errors: dict):
        super().__init__(", ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def check_fields(user: User, email: str, login_id: str) -> dict:
    """Field -> problem code (required / invalid / too_long / taken); the same check as the POST and
    the same login-ID rule as the console (accounts.fields.login_id_problem)."""
    errors = {}
    if fields.email_problem(email):
        errors["email"] = fields.email_problem(email)
    problem = fields.login_id_problem(login_id, current=user.login_id)
    if problem:
        errors["login_id"] = problem
    elif User.login_id_taken(user.portal, login_id, exclude_id=user.id):
        errors["login_id"] = "taken"
    return errors


CORRECTABLE_BUSINESS = ("name", "phone")


def check_business_fields(user: User, name: str | None, phone: str | None) -> dict:
    """Name and phone of a Business Portal user (SPEC 12: the guide shows all four rows as
    "確認/変更可能"): the console's validation, so the pop-up accepts exactly what the console does."""
    from . import console

    errors = {}
    if user.portal != BUSINESS:
        return errors
    for name_of_field, value in (("name", name), ("phone", phone)):
        if value is None:
            continue
        code = console.validate(user, name_of_field, value)
        if code:
            errors[name_of_field] = code
    return errors


def confirm(account: LegacyAccount, *, email: str, login_id: str | None = None, name: str | None = None,
            phone: str | None = None, config, base_url: str, ip: str | None = None):
    """Confirm or correct the identity information and mail the first-login link, in one transaction.

    Corrections update the new portal's user (audit old -> new; older link tokens voided); the
    legacy account is marked confirmed; the first-login link goes to the confirmed address.
    Business Portal users may also correct name and phone (None: unchanged; ignored for SDPF).
    Returns the Mail. Raises ConfirmError for bad input (nothing written).
    """
    from . import console

    email = (email or "").strip()
    with database.atomic():
        q = User.select().where(User.id == account.user_id)
        user = (q.for_update() if is_postgres() else q).first() if account.user_id else None
        if user is None:
            raise ConfirmError({"account": "not_migrated"})
        login_id = (login_id or "").strip() or user.login_id
        if user.portal != BUSINESS:
            name = phone = None
        errors = check_fields(user, email, login_id)
        errors.update(check_business_fields(user, name, phone))
        if errors:
            raise ConfirmError(errors)
        changes = {}
        if email != user.email:
            changes["email"] = (user.email, email)
            user.email, user.email_key = email, email.lower()
        if login_id != user.login_id:
            changes["login_id"] = (user.login_id, login_id)
            user.login_id, user.login_id_key = login_id, login_id.lower()
        for field_name, value in (("name", name), ("phone", phone)):
            if value is None:
                continue
            value = console.clean(field_name, value)
            if value != getattr(user, field_name):
                changes[field_name] = (getattr(user, field_name), value)
                setattr(user, field_name, value)
        if changes:
            user.version += 1
            user.updated_at = utcnow()
            try:
                with database.atomic():
                    user.save()
            except IntegrityError:  # someone took the login ID between the check and the write
                raise ConfirmError({"login_id": "taken"}) from None
            for changed, (old, new) in changes.items():
                audit.record(user, "legacy_popup_corrected", target_user=user, field=changed,
                             old=old, new=new, ip=ip)
            tokens.void_all(user)
            if "email" in changes:
                # A stolen legacy password must not silently redirect the first-login link.
                outbox.render_and_enqueue(
                    "legacy_email_changed", recipient=changes["email"][0],
                    subject=EMAIL_CHANGED_SUBJECT, kind="email_changed", user=user,
                    language=user.language, user_obj=user, portal=user.portal,
                    masked=mask_email(email))
        LegacyAccount.update(confirmed_at=utcnow()).where(LegacyAccount.id == account.id).execute()
        audit.record(user, "legacy_popup_confirmed", target_user=user, ip=ip,
                     detail=f"legacy {account.login_id} / {account.contract_ecid}")
        mail = recovery.send_reset_link(user, config=config, base_url=base_url, actor=user, ip=ip,
                                        action="first_login_link_sent")
    return mail


def popup_open(phase: str) -> bool:
    """The pop-up exists only during the migration period (``phase``: accounts.period.phase)."""
    return phase == period.DURING


def signin_open(phase: str) -> bool:
    """The legacy portal signs users in before and during the period; after it, it is closed
    (the end-of-service page) and every other legacy address leads there."""
    return phase != period.AFTER
