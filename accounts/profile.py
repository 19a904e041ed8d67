"""What a signed-in user changes about themselves: the e-mail address (confirmed by a link to the
new address, the old one told), the current-password re-check before a password change, the
re-check of the current two-step method before it may be changed (SPEC 11.1), and the saved
language (staff too)."""
from flask_babel import lazy_gettext as _l

from . import audit, outbox, passwords, sessions, tokens
from .db import database
from .models import Staff, User

REAUTH_SECONDS = 10 * 60  # a passed re-check allows a method change for this long


def current_password_ok(user: User, password: str, *, max_length: int, ip=None) -> bool:
    """The re-check before a password change; a wrong (or over-long) one is audited."""
    if len(password) <= max_length and passwords.hasher().verify(user.password_hash, password)[0]:
        return True
    audit.record(user, "password_change_refused", target_user=user, ip=ip)
    return False


def save_language(who: User | Staff, code: str) -> None:
    """The language chosen with the visible switch, kept in the account (mails use it too)."""
    model = type(who)
    model.update(language=code).where(model.id == who.id).execute()


def request_email_change(user: User, new: str, *, minutes: int, base_url: str, ip=None) -> None:
    """Mail a confirmation link to the new address and a notice to the old one (one transaction)."""
    with database.atomic():
        raw = tokens.issue(user, tokens.EMAIL_CHANGE, minutes, new_email=new)
        outbox.render_and_enqueue("email_change_confirm", recipient=new, kind="email_change",
                                  subject=_l("Confirm your new e-mail address"), user=user,
                                  language=user.language, user_obj=user, portal=user.portal,
                                  link=f"{base_url.rstrip('/')}/{user.portal}/profile/email/{raw}",
                                  minutes=minutes)
        outbox.render_and_enqueue("email_change_notice", recipient=user.email, kind="email_change_notice",
                                  subject=_l("A change of your e-mail address was requested"), user=user,
                                  language=user.language, user_obj=user, portal=user.portal, new=new)
        audit.record(user, "email_change_requested", target_user=user, field="email", old=user.email,
                     new=new, ip=ip)


def confirm_email_change(raw: str, *, ip=None, keep_session_id: int | None = None):
    """Use the confirmation link: the address changes, reset links sent to the old address stop
    working and the account's other sessions end. Returns (user, new address) or a problem string."""
    with database.atomic():
        used = tokens.consume(raw, tokens.EMAIL_CHANGE)
        if used.problem:
            return used.problem
        user, new = used.token.user, used.token.new_email
        User.update(email=new, email_key=new.lower(), version=User.version + 1).where(
            User.id == user.id).execute()
        tokens.void_all(user, tokens.RESET)
        ended = sessions.end_all(user, except_id=keep_session_id)
        audit.record(user, "email_changed", target_user=user, field="email", old=user.email, new=new,
                     ip=ip, detail=f"sessions ended: {ended}")
    return user, new
