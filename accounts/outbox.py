"""Mail written in the caller's transaction, delivered over SMTP with retries, every answer kept.

``enqueue`` renders a mail pair (``templates/mail/<name>.txt`` and ``.html``) in the recipient's
language and inserts a ``Mail`` row: it commits or rolls back with the change that caused it.
``deliver_due`` sends what is due, one SMTP answer per ``MailAttempt``. Delivery is
at-least-once with a stable Message-ID; a mail leased by one worker is not taken by another.
"""
import datetime
import smtplib
import socket
import uuid
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from .clock import utcnow
from .db import database
from .models import Mail, MailAttempt

# Back-off after the n-th failed attempt (temporary failures only); then the mail is failed.
RETRY_DELAYS = (30, 60, 120, 300, 600, 1800, 3600, 7200)
LEASE_SECONDS = 120
# A server that does not answer at all is not the mail's fault: its mails are tried again every
# UNREACHABLE_RETRY seconds for as long as the outage lasts, and such a streak counts as one
# attempt (one MailAttempt row), so an outage neither fails mails nor fills the attempt log.
# Found by benchmarks/faults.py: after a 30 s SMTP outage the back-off (30 s, then 60 s) kept
# Mail OTP codes up to a minute longer; a 4-hour outage would have failed every queued mail.
UNREACHABLE_RETRY = 10
NO_CONNECTION = "no connection: "   # prefix of Mail.last_error while the server is unreachable


class HeaderInjection(ValueError):
    """A subject or an address with a line break: it could add headers to the mail (SPEC 11.6)."""


# Every character Python's str.splitlines() breaks a line at: the email package refuses a header
# holding any of them (so a mail queued with one could never be sent), and NUL.
LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\x00")


def has_line_break(value: str) -> bool:
    """Whether a subject, display name or address could not be one header line (SPEC 11.6)."""
    return not LINE_BREAKS.isdisjoint(value)


def check_header(value: str, what: str) -> str:
    if has_line_break(value):
        raise HeaderInjection(f"{what} holds a line break")
    return value


def enqueue(*, recipient: str, subject: str, body_text: str, body_html: str | None = None,
            kind: str, user=None, domain: str = "portal.local") -> Mail:
    """Write one mail to the outbox. Call inside the transaction of the change that causes it.

    A subject or recipient with a line break is refused here (``HeaderInjection``): callers
    that take them from a form check them first and answer next to the field."""
    check_header(subject, "subject")
    check_header(recipient, "recipient")
    return Mail.create(
        message_id=f"<{uuid.uuid4().hex}@{domain}>",
        kind=kind,
        user=user,
        recipient=recipient,
        subject=subject,
        body_text=body_text,
        body_html=body_html,
        status="queued",
        next_attempt_at=utcnow(),
    )


def render_and_enqueue(template: str, *, recipient: str, subject: str, kind: str, user=None,
                       language: str | None = None, **context) -> Mail:
    """Render ``mail/<template>.txt`` (+ ``.html`` when present) in ``language`` and enqueue it.

    Needs an application context (templates and translations), not a request.
    """
    from flask import current_app, render_template
    from flask_babel import force_locale
    from jinja2 import TemplateNotFound

    language = language or "ja"
    with force_locale(language):
        text = render_template(f"mail/{template}.txt", **context)
        try:
            html = render_template(f"mail/{template}.html", **context)
        except TemplateNotFound:
            html = None
        subject = str(subject)
    domain = current_app.config.get("MAIL_MESSAGE_ID_DOMAIN", "portal.local")
    return enqueue(recipient=recipient, subject=subject, body_text=text, body_html=html,
                   kind=kind, user=user, domain=domain)


def _claim_due(limit: int, now: datetime.datetime) -> list[Mail]:
    """Lease due mails so that concurrent workers never send the same mail at once."""
    candidates = list(
        Mail.select(Mail.id)
        .where((Mail.status == "queued") & (Mail.next_attempt_at <= now)
               & ((Mail.lease_until.is_null()) | (Mail.lease_until < now)))
        .order_by(Mail.next_attempt_at, Mail.id)
        .limit(limit)
    )
    claimed = []
    lease = now + datetime.timedelta(seconds=LEASE_SECONDS)
    for row in candidates:
        with database.atomic():
            got = (Mail.update(lease_until=lease)
                   .where((Mail.id == row.id) & (Mail.status == "queued")
                          & ((Mail.lease_until.is_null()) | (Mail.lease_until < now)))
                   .execute())
        if got:
            claimed.append(Mail.get_by_id(row.id))
    return claimed


def _smtp_error(exc: Exception) -> tuple[int | None, str, bool]:
    """(code, answer, permanent) for an exception raised while sending."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, answer = next(iter(exc.recipients.values()))
        return code, _decode(answer), 500 <= code < 600
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code, _decode(exc.smtp_error), 500 <= exc.smtp_code < 600
    if isinstance(exc, (OSError, socket.timeout, smtplib.SMTPException)):
        return None, f"{type(exc).__name__}: {exc}", False
    return None, f"{type(exc).__name__}: {exc}", False


def _decode(answer) -> str:
    return answer.decode("utf-8", "replace") if isinstance(answer, bytes) else str(answer)


def build_message(m: Mail, sender: str) -> bytes:
    """The mail as sent: built by the standard library's ``email`` package with the SMTP policy,
    never by joining header strings, so a header value can never start a new header (a value
    with a line break raises ValueError)."""
    msg = EmailMessage(policy=SMTP)
    msg["Subject"] = m.subject
    msg["From"] = sender
    msg["To"] = m.recipient
    msg["Date"] = format_datetime(m.created_at.replace(tzinfo=datetime.UTC))
    msg["Message-ID"] = m.message_id
    msg.set_content(m.body_text)
    if m.body_html:
        msg.add_alternative(m.body_html, subtype="html")
    return msg.as_bytes()


def deliver_due(mail_ext, sender: str, limit: int = 100, now: datetime.datetime | None = None) -> dict:
    """Send due mails through a Flask-Mail ``Mail`` extension; return counts of what happened.

    Each mail is marked sent only after the server accepted it. A temporary failure (4xx)
    schedules a retry with back-off; a permanent one (5xx) or exhausted retries marks it failed;
    a server that does not answer at all is tried again every UNREACHABLE_RETRY seconds. The
    server's answer is kept in ``MailAttempt``.
    """
    now = now or utcnow()
    mails = _claim_due(limit, now)
    if not mails:
        return {"sent": 0, "retry": 0, "failed": 0}
    try:
        return _deliver(mail_ext, sender, mails, now)
    except Exception as exc:
        # The database went away mid-batch: say which leases are ours, so that the worker can
        # give them back when it returns (accounts.background.work) instead of leaving them for
        # LEASE_SECONDS.
        exc.claimed_mail_ids = [m.id for m in mails]
        raise


def _deliver(mail_ext, sender: str, mails: list[Mail], now) -> dict:
    counts = {"sent": 0, "retry": 0, "failed": 0}
    try:
        conn = mail_ext.connect()
        conn.__enter__()
    except Exception as exc:  # server down: every claimed mail waits for it
        code, answer, _ = _smtp_error(exc)
        _record_unreachable(mails, answer, now)
        counts["retry"] += len(mails)
        return counts
    try:
        for m in mails:
            try:
                data = build_message(m, sender)
            except ValueError as exc:  # a header with a line break: never sent
                _record_failure(m, None, f"refused before sending: {exc}", permanent=True, now=now)
                counts["failed"] += 1
                continue
            try:
                code, answer = _send(conn.host, sender, m.recipient, data)
            except Exception as exc:
                code, answer, permanent = _smtp_error(exc)
                if not isinstance(exc, smtplib.SMTPResponseException | smtplib.SMTPRecipientsRefused):
                    _record_unreachable([m], answer, now)   # connection lost: no answer to judge
                    counts["retry"] += 1
                    break  # leave the rest for the next round
                failed = _record_failure(m, code, answer, permanent=permanent, now=now)
                counts["failed" if failed else "retry"] += 1
                continue
            with database.atomic():
                MailAttempt.create(mail=m, at=now, ok=True, smtp_code=code, smtp_answer=answer)
                (Mail.update(status="sent", sent_at=utcnow(), attempts=Mail.attempts + 1,
                             lease_until=None, last_error=None)
                 .where(Mail.id == m.id).execute())
            counts["sent"] += 1
    finally:
        try:
            conn.__exit__(None, None, None)
        except Exception:
            pass
    # Mails claimed but not tried (connection lost) lose their lease and are tried next round.
    (Mail.update(lease_until=None)
     .where((Mail.id.in_([m.id for m in mails])) & (Mail.status == "queued")).execute())
    return counts


def _send(host: smtplib.SMTP, sender: str, recipient: str, data: bytes) -> tuple[int, str]:
    """One SMTP transaction, returning the server's own answer to DATA (kept for the helpdesk)."""
    host.ehlo_or_helo_if_needed()
    code, resp = host.mail(sender)
    if code != 250:
        host.rset()
        raise smtplib.SMTPSenderRefused(code, resp, sender)
    code, resp = host.rcpt(recipient)
    if code not in (250, 251):
        host.rset()
        raise smtplib.SMTPRecipientsRefused({recipient: (code, resp)})
    code, resp = host.data(data)
    if code != 250:
        host.rset()
        raise smtplib.SMTPDataError(code, resp)
    return code, _decode(resp)


def _record_failure(m: Mail, code, answer: str, *, permanent: bool, now) -> bool:
    attempts = m.attempts + 1
    failed = permanent or attempts > len(RETRY_DELAYS)
    delay = RETRY_DELAYS[min(attempts - 1, len(RETRY_DELAYS) - 1)]
    with database.atomic():
        MailAttempt.create(mail=m, at=now, ok=False, smtp_code=code, smtp_answer=answer)
        (Mail.update(status="failed" if failed else "queued", attempts=attempts, last_error=answer,
                     lease_until=None, next_attempt_at=now + datetime.timedelta(seconds=delay))
         .where(Mail.id == m.id).execute())
    return failed


def _record_unreachable(mails: list[Mail], answer: str, now) -> None:
    """The server did not answer: try again soon; only the first failure of a streak is an attempt."""
    retry_at = now + datetime.timedelta(seconds=UNREACHABLE_RETRY)
    with database.atomic():
        for m in mails:
            changes = {"lease_until": None, "next_attempt_at": retry_at}
            if not (m.last_error or "").startswith(NO_CONNECTION):
                MailAttempt.create(mail=m, at=now, ok=False, smtp_code=None, smtp_answer=answer)
                changes.update(attempts=Mail.attempts + 1, last_error=NO_CONNECTION + answer)
            Mail.update(changes).where((Mail.id == m.id) & (Mail.status == "queued")).execute()


def delivery_delayed() -> bool:
    """True while some mail waits for an SMTP server that does not answer (for the pages that
    tell a user a code is on its way)."""
    return Mail.select(Mail.id).where((Mail.status == "queued")
                                      & Mail.last_error.startswith(NO_CONNECTION)).exists()


def release_leases(mail_ids) -> int:
    """Give back leases this worker took but could not finish: those mails are due again at once."""
    if not mail_ids:
        return 0
    return (Mail.update(lease_until=None)
            .where(Mail.id.in_(list(mail_ids)) & (Mail.status == "queued")).execute())
