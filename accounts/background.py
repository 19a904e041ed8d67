"""One round of the worker that runs beside the web workers (``flask deliver-mail``, and a thread
of ``make run``): answer identity requests, deliver due mail, remove expired sessions and
answered identity requests older than a week."""
import time

from . import identity_requests, outbox, sessions

SESSION_CLEANUP_SECONDS = 60
_last_cleanup = [0.0]


def run_round(mail_ext, config) -> dict:
    """Do what is due; ``mail_ext`` is Flask-Mail's extension, or None when no SMTP server is set
    (mails then wait in the outbox). Needs an application context (mail templates)."""
    counts = {"requests": identity_requests.process_pending(config)}
    if mail_ext is not None:
        counts.update(outbox.deliver_due(mail_ext, config["MAIL_DEFAULT_SENDER"]))
    if time.monotonic() - _last_cleanup[0] >= SESSION_CLEANUP_SECONDS:
        _last_cleanup[0] = time.monotonic()
        counts["sessions_ended"] = sessions.clean_up(idle_minutes=config["SESSION_IDLE_MINUTES"],
                                                     max_hours=config["SESSION_MAX_HOURS"])
        counts["requests_removed"] = identity_requests.clean_up()
    return counts
