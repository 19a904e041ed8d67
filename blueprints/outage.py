"""What the web app answers while a part it depends on is out: a 503 page, never a traceback.

- **Database** (PostgreSQL restarting, a full disk, a read-only SQLite file): a request that
  meets such an error (accounts.health.is_unavailable) is answered 503 with a page in the user's
  language and ``Retry-After``, and one log line (at most one every ``LOG_EVERY`` seconds per
  process, with the number of requests in between); the page is rendered without touching the
  database (no context processor, no signed-in user loaded), since that is what is out. A kept
  connection that the server closed is replaced before the next request (accounts.health).
- **Redis** (rate-limit storage): the limits fall back to this process's memory, with one log
  line when that happens; a hung Redis costs at most ``REDIS_TIMEOUT`` seconds, not a worker.

Found by benchmarks/faults.py: before this, a PostgreSQL restart left every worker answering 500
until it was restarted, and an unreachable Redis turned every rate-limited POST into a 500.
"""
import logging
import sqlite3
import threading
import time

from flask import current_app, g, jsonify, make_response, request, url_for
from flask.logging import default_handler
from flask_babel import force_locale
from peewee import InterfaceError, InternalError, OperationalError
from playhouse.pool import MaxConnectionsExceeded

from accounts import health

LOG_EVERY = 10.0       # seconds between two log lines about the same outage, per process
RETRY_AFTER = 5        # seconds a client is asked to wait (Retry-After)
REDIS_TIMEOUT = 0.5    # seconds: connect and read timeouts of the rate-limit storage
DB_ERRORS = (OperationalError, InterfaceError, InternalError, MaxConnectionsExceeded, sqlite3.Error)

_log_lock = threading.Lock()
_clock = time.monotonic   # (tests replace it)


def limiter_settings(config: dict) -> None:
    """Rate limits in Redis when REDIS_URL is set, falling back to memory while it is out."""
    if not config.get("REDIS_URL"):
        return
    config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    options = dict(config.get("RATELIMIT_STORAGE_OPTIONS") or {})
    options.setdefault("socket_connect_timeout", REDIS_TIMEOUT)
    options.setdefault("socket_timeout", REDIS_TIMEOUT)
    config["RATELIMIT_STORAGE_OPTIONS"] = options


def init_app(app, languages) -> None:
    """Register the 503 answer for database outages; route Flask-Limiter's warning to the log."""
    app.extensions["outage.languages"] = tuple(languages)
    # Per app (a process): when the outage began, its last 503, 503s since, last line written,
    # lines skipped.
    app.extensions["outage.log"] = {"since": None, "failed": None, "count": 0, "last": None,
                                    "suppressed": 0}
    app.after_request(_back)
    for exc_class in DB_ERRORS:
        app.register_error_handler(exc_class, _database_error)
    try:
        import psycopg

        app.register_error_handler(psycopg.Error, _database_error)  # raw cursors (bulk paths)
    except ImportError:  # pragma: no cover - psycopg is a dependency
        pass
    # First of all hooks: a session that could not be opened because the database is out.
    app.before_request_funcs.setdefault(None, []).insert(0, _session_unavailable)
    # Flask-Limiter logs "Rate limit storage unreachable - falling back to in-memory storage" on
    # its own logger, which has only a NullHandler: without this the line went nowhere.
    limiter_log = logging.getLogger("flask-limiter")
    if default_handler not in limiter_log.handlers:
        limiter_log.addHandler(default_handler)
        limiter_log.setLevel(logging.WARNING)


def _session_unavailable():
    from .sessions import UNAVAILABLE_KEY

    error = request.environ.pop(UNAVAILABLE_KEY, None)
    if error is not None:
        raise error


def response_for_server_error(error):
    """For the app's 500 handler: a database outage raised outside a view (for example while
    the session was being opened) still gets the 503 page. None for every other error."""
    original = getattr(error, "original_exception", None)
    if original is not None and health.is_unavailable(original):
        return _unavailable(original)
    return None


def _database_error(error):
    if not health.is_unavailable(error):
        raise error   # a bug, not an outage: Flask logs the traceback and answers 500
    return _unavailable(error)


def _log(error) -> None:
    now = _clock()
    state = current_app.extensions["outage.log"]
    with _log_lock:
        if state["since"] is None:
            state["since"] = now
        state["failed"] = now
        state["count"] += 1
        if state["last"] is not None and now - state["last"] < LOG_EVERY:
            state["suppressed"] += 1
            return
        suppressed, state["suppressed"], state["last"] = state["suppressed"], 0, now
    inner = health.driver_error(error) if not isinstance(error, sqlite3.Error) else error
    more = f" (and {suppressed} more since the last line)" if suppressed else ""
    first_line = (str(inner).strip().splitlines() or [""])[0]
    current_app.logger.warning("database unavailable: 503 for %s %s: %s: %s%s", request.method,
                               request.path, type(inner).__name__, first_line, more)


def _back(response):
    """One line once the outage is over: the first answer after LOG_EVERY seconds without a 503
    (a database that only refuses writes still answers reads in between)."""
    state = current_app.extensions["outage.log"]
    if state["since"] is None or response.status_code == 503:
        return response
    now = _clock()
    with _log_lock:
        if state["since"] is None or now - state["failed"] < LOG_EVERY:
            return response
        since, failed, count = state["since"], state["failed"], state["count"]
        state.update(since=None, failed=None, count=0, last=None, suppressed=0)
    current_app.logger.warning("database back: %d requests answered 503 in %.1f s, the last %.1f s ago",
                               count, failed - since, now - failed)
    return response


def make_unavailable(response, error) -> None:
    """Turn an answer made before the database failed (the session could not be saved after it)
    into the 503 page, in place."""
    page = _unavailable(error)
    response.status_code = 503
    response.set_data(page.get_data())
    response.headers.pop("Location", None)
    for name in ("Content-Type", "Retry-After", "Cache-Control"):
        response.headers[name] = page.headers[name]


def _language() -> str:
    """The language of the page without asking the database: the switch's cookie, the already
    loaded account's language, Accept-Language, Japanese."""
    languages = current_app.extensions.get("outage.languages", ("ja", "en"))
    chosen = request.cookies.get("lang")
    if chosen in languages:
        return chosen
    user = g.get("_login_user")   # set by Flask-Login only once the account was loaded
    if getattr(user, "language", None) in languages:
        return user.language
    return request.accept_languages.best_match(languages) or languages[0]


def _unavailable(error):
    _log(error)
    if request.endpoint == "healthz":
        response = jsonify(ok=False, database="unavailable")
    else:
        language = _language()
        with force_locale(language):
            # Straight from the Jinja environment: no context processor runs (several of them
            # load the signed-in account or the migration period from the database).
            html = current_app.jinja_env.get_template("errors/unavailable.html").render(
                language=language,
                retry_url=request.full_path.rstrip("?") if request.method != "POST" else None,
                home_url=url_for("index"),
                css_url=url_for("static", filename="app.css"),
            )
        response = make_response(html)
        response.headers["Content-Type"] = "text/html; charset=utf-8"
        response.headers["Vary"] = "HX-Request"
    response.status_code = 503
    response.headers["Retry-After"] = str(RETRY_AFTER)
    response.headers["Cache-Control"] = "no-store"
    return response
