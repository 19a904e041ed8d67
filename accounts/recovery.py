"""The password-reset link (also the first-login link): sending it (token and mail written in one
transaction) and using it (token consumed and password set in one transaction).

Sent by the worker after a matching reset request, the console's "send reset link" and the legacy
pop-up; never to a migrated user before the period. The link is
``<base>/<portal>/password/reset/<token>``.
"""
from . import audit, outbox, period, signin, tokens
from .db import database
from .models import BUSINESS


def reset_link(base_url: str, portal: str, raw_token: str) -> str:
    return f"{base_url.rstrip('/')}/{portal}/password/reset/{raw_token}"


def set_password_from_link(raw: str, password: str, *, ip: str | None = None) -> str | None:
    """Use a reset link: the token is consumed and the password set in one transaction, so a
    second (or concurrent) use fails and a refused password leaves the link usable. Returns None,
    or the token's problem (unknown / expired / used / voided). The caller has checked the
    password against the policy (signin.PolicyError otherwise)."""
    with database.atomic():
        used = tokens.consume(raw, tokens.RESET)
        if used.problem:
            return used.problem
        user = used.token.user
        signin.set_password(user, password, actor=user, action="password_set_by_reset", ip=ip)
    return None


def send_reset_link(user, *, config, base_url: str, actor=None, ip: str | None = None,
                    action: str = "reset_link_sent", recipient: str | None = None):
    """Issue a fresh reset token (voiding older ones) and write the reset mail. Returns the Mail.

    ``config`` is the app configuration (lifetimes and subjects); ``actor`` is the user themself,
    a console admin or staff account, or None for the system.

    Raises period.NotYetOpen for a migrated user before the migration period: whoever asks (the
    user, an admin, the operator), the first login does not start early (SPEC 6, 12).
    """
    period.ensure_first_login_open(user)
    minutes = config["RESET_TOKEN_MINUTES"]
    subject_key = "MAIL_SUBJECT_RESET_BUSINESS" if user.portal == BUSINESS else "MAIL_SUBJECT_RESET_SDPF"
    with database.atomic():
        raw = tokens.issue(user, tokens.RESET, minutes)
        mail = outbox.render_and_enqueue(
            "reset_password", recipient=recipient or user.email, subject=config[subject_key],
            kind="reset", user=user, language=user.language,
            user_obj=user, link=reset_link(base_url, user.portal, raw), minutes=minutes,
            portal=user.portal)
        audit.record(actor if actor is not None else user, action, target_user=user, ip=ip,
                     detail=f"mail {mail.message_id}")
    return mail
