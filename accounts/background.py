"""One round of the worker that runs beside the web workers (``flask deliver-mail``, and a thread
of ``make run``): answer identity requests, deliver due mail, remove expired sessions and
answered identity requests older than a week."""
import time

from . import health, identity_requests, outbox, sessions

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


def work(mail_ext, config, *, interval: float = 1.0, once: bool = False, say=print, warn=print):
    """The worker's loop (``flask --app app deliver-mail``): a round, a pause, again.

    While the database is out (a restart, a full disk) it waits, with one line per outage,
    instead of crashing (it crashed on a PostgreSQL restart, AdminShutdown: found by
    benchmarks/faults.py), and gives back the leases of the mail batch the outage cut short as
    soon as the database is back. Any other error stops it, with its traceback.
    """
    outage_since, held = None, []
    while True:
        try:
            health.ensure_connection()
            if held:
                outbox.release_leases(held)
                held = []
            counts = run_round(mail_ext, config)
        except Exception as exc:
            if once or not health.is_unavailable(exc):
                raise
            held = getattr(exc, "claimed_mail_ids", None) or held
            health.discard_connection()
            if outage_since is None:
                outage_since = time.monotonic()
                inner = health.driver_error(exc)
                first = (str(inner).strip().splitlines() or [""])[0]
                warn(f"database unavailable, waiting: {type(inner).__name__}: {first}")
            time.sleep(interval)
            continue
        if outage_since is not None:
            warn(f"database back after {time.monotonic() - outage_since:.1f} s")
            outage_since = None
        if any(counts.values()):
            say(", ".join(f"{k} {v}" for k, v in counts.items()))
        if once:
            return
        time.sleep(interval)
