"""Sign-in diagnosis (SPEC 7): why this user cannot sign in, each reason with its one-click fix.

The verdict is data (a code, a severity, parameters, the fix action); the console turns it into
words in the reader's language. Severities: ``block`` (cannot sign in until fixed), ``warn``
(likely to trip the user up), ``info`` (useful to know on the phone with the user).
"""
from dataclasses import dataclass, field

from . import period, tokens
from .clock import utcnow
from .models import Mail, MailAttempt, User

BLOCK = "block"
WARN = "warn"
INFO = "info"

FULLWIDTH_SPACE = "\u3000"
HALFWIDTH_SPACE = " "


@dataclass
class Reason:
    code: str
    severity: str
    params: dict = field(default_factory=dict)
    fix: str | None = None  # a console action (accounts.console.ACTIONS) or "edit_<field>"


def visible_spaces(text: str) -> list[tuple[str, str]]:
    """The text split into runs: ("text", s), ("full", U+3000) and ("half", " ") pieces.

    The console renders full-width spaces as a marked "□全角" and half-width ones as "␣", so the
    helpdesk can tell the user exactly what to type in the identity check.
    """
    parts: list[tuple[str, str]] = []
    buf = ""
    for ch in text or "":
        kind = "full" if ch == FULLWIDTH_SPACE else "half" if ch == HALFWIDTH_SPACE else None
        if kind:
            if buf:
                parts.append(("text", buf))
                buf = ""
            parts.append((kind, ch))
        else:
            buf += ch
    if buf:
        parts.append(("text", buf))
    return parts


def diagnose(user: User, now=None) -> list[Reason]:
    now = now or utcnow()
    reasons: list[Reason] = []
    if user.disabled:
        reasons.append(Reason("disabled", BLOCK, fix="enable"))
    if user.is_locked(now):
        reasons.append(Reason("locked", BLOCK, {"until": user.locked_until,
                                                "failed": user.failed_logins}, fix="unlock"))
    if not period.first_login_open_for(user, now) and user.first_login_done_at is None:
        p = period.current()
        reasons.append(Reason("before_period", BLOCK, {"start": p.start_at if p else None}))

    if user.first_login_done_at is None:
        reasons.append(Reason("first_login_pending", BLOCK, fix="send_reset_link"))
        token = tokens.latest(user)
        if token is None:
            reasons.append(Reason("reset_none", WARN, fix="send_reset_link"))
        elif token.used_at is not None:
            reasons.append(Reason("reset_used", INFO, {"at": token.used_at}, fix="send_reset_link"))
        elif token.voided_at is not None:
            reasons.append(Reason("reset_voided", WARN, {"at": token.voided_at}, fix="send_reset_link"))
        elif token.expires_at <= now:
            reasons.append(Reason("reset_expired", WARN, {"sent": token.created_at,
                                                          "expired": token.expires_at},
                                  fix="send_reset_link"))
        else:
            reasons.append(Reason("reset_live", INFO, {"sent": token.created_at,
                                                       "expires": token.expires_at}))
    else:
        reasons.append(Reason("first_login_done", INFO, {"at": user.first_login_done_at}))

    last_mail = (Mail.select().where(Mail.user == user)
                 .order_by(Mail.created_at.desc(), Mail.id.desc()).first())
    if last_mail is not None and last_mail.status == "failed":
        attempt = (MailAttempt.select().where(MailAttempt.mail == last_mail)
                   .order_by(MailAttempt.at.desc(), MailAttempt.id.desc()).first())
        reasons.append(Reason("delivery_failed", BLOCK, {
            "recipient": last_mail.recipient, "at": attempt.at if attempt else last_mail.created_at,
            "answer": (f"{attempt.smtp_code or ''} {attempt.smtp_answer}".strip() if attempt
                       else last_mail.last_error or "")}, fix="edit_email"))
    elif last_mail is not None and last_mail.status == "queued" and last_mail.attempts:
        reasons.append(Reason("delivery_retrying", WARN, {"recipient": last_mail.recipient,
                                                          "answer": last_mail.last_error or ""}))

    if user.legacy_login_id and user.legacy_login_id != user.login_id:
        reasons.append(Reason("login_id_changed", WARN, {"old": user.legacy_login_id,
                                                         "new": user.login_id}))
    if FULLWIDTH_SPACE in (user.name or ""):
        reasons.append(Reason("name_fullwidth_space", WARN, {"parts": visible_spaces(user.name)},
                              fix="edit_name"))
    if user.twostep_method:
        reasons.append(Reason("twostep", INFO, {"method": user.twostep_method,
                                                "last_used": user.twostep_last_used_at},
                              fix="reset_twostep"))
    elif user.first_login_done_at is not None:
        reasons.append(Reason("twostep_unset", INFO))
    return reasons


def can_sign_in(reasons: list[Reason]) -> bool:
    return not any(r.severity == BLOCK for r in reasons)
