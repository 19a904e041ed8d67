"""Is the database there? Tell an outage from a bug, and drop a connection the server closed.

A web worker keeps its database connection from one request to the next (accounts/db.py, app.py).
When PostgreSQL restarts, that connection is dead, and a worker that kept it answered every later
request with "the connection is closed" until it was restarted itself (found by
benchmarks/faults.py: ten seconds after PostgreSQL was back, every request still failed).
``ensure_connection`` checks the kept connection before each request without a round trip, and
``discard_connection`` throws away one that failed, so the next request opens a new one.

``is_unavailable`` says whether an exception means "the database cannot serve now" (a restart, a
closed connection, a full disk, a read-only file, a lock held too long): those are answered with
a 503 page and one log line. Anything else (a wrong query) stays a 500 with its traceback.
"""
import select
import sqlite3

import peewee
from playhouse.pool import MaxConnectionsExceeded

from .db import database, is_postgres

# SQLite primary result codes (the low byte of an extended code) that describe the database's
# state, not the query: BUSY, LOCKED, NOMEM, READONLY, IOERR, CORRUPT, FULL, CANTOPEN, PROTOCOL,
# NOTADB.
SQLITE_UNAVAILABLE = {5, 6, 7, 8, 10, 11, 13, 14, 15, 26}
SQLITE_UNAVAILABLE_WORDS = ("locked", "readonly", "read-only", "disk", "full", "unable to open",
                            "i/o", "busy", "malformed", "not a database")
# PostgreSQL SQLSTATE classes of a server that cannot serve now: connection exception, insufficient
# resources (disk full, too many connections), operator intervention (shutdown, cannot connect
# now), system error; and 25006: a read-only transaction (a standby, or writes switched off).
PG_UNAVAILABLE_CLASSES = ("08", "53", "57", "58")
PG_READ_ONLY = "25006"


def driver_error(exc: BaseException) -> BaseException:
    """The driver's own exception under peewee's wrapper (peewee keeps it as ``orig``)."""
    return getattr(exc, "orig", None) or exc.__context__ or exc


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the database cannot serve at the moment (see the module docstring)."""
    if isinstance(exc, MaxConnectionsExceeded):   # the pool stayed exhausted for its whole timeout
        return True
    if isinstance(exc, peewee.PeeweeException):
        inner = driver_error(exc)
    elif isinstance(exc, sqlite3.Error) or type(exc).__module__.startswith("psycopg"):
        inner = exc      # raised by a raw cursor (the bulk import), not wrapped by peewee
    else:
        return False
    if isinstance(inner, sqlite3.Error):
        code = getattr(inner, "sqlite_errorcode", None)
        if code is not None:
            return (code & 0xFF) in SQLITE_UNAVAILABLE
        message = str(inner).lower()
        return isinstance(inner, sqlite3.OperationalError) and any(
            w in message for w in SQLITE_UNAVAILABLE_WORDS)
    import psycopg

    if isinstance(inner, psycopg.Error):
        if isinstance(inner, psycopg.OperationalError | psycopg.InterfaceError):
            # Connection failures carry no SQLSTATE; lock and serialisation timeouts are
            # OperationalError too: all of them go away by trying again later.
            return True
        state = inner.sqlstate or ""
        return state == PG_READ_ONLY or state[:2] in PG_UNAVAILABLE_CLASSES
    # peewee's own complaint about a connection it could not use.
    return isinstance(exc, peewee.InterfaceError) and "connection" in str(exc).lower()


def _raw_connection():
    db = database.obj
    if db is None or db.is_closed():
        return None
    return db._state.conn


def connection_alive() -> bool:
    """False when the kept PostgreSQL connection is closed, broken, or has a message waiting.

    An idle connection has nothing to read: when its socket is readable the server sent a
    termination notice or closed it (a restart, an administrator's pg_terminate_backend). Checked
    with a zero-timeout poll, so a healthy request pays no round trip. SQLite has no server.
    """
    conn = _raw_connection()
    if conn is None or not is_postgres():
        return True
    if conn.closed or conn.broken:
        return False
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def discard_connection() -> None:
    """Close this thread's connection without returning it to the pool; never raises."""
    db = database.obj
    if db is None or db.is_closed():
        return
    try:
        db._state.transactions.clear()   # an atomic() cut off by the failure has nothing to undo
        if hasattr(db, "manual_close"):
            db.manual_close()
        else:
            db.close()
    except Exception:  # noqa: BLE001 - the connection is gone either way
        db._state.reset()


def ensure_connection() -> None:
    """Open (or keep) this thread's connection, replacing a kept one the server has closed."""
    if not connection_alive():
        discard_connection()
    database.connect(reuse_if_open=True)


def end_request() -> bool:
    """Roll back whatever a request left open; discard the connection if that fails.

    Returns True when the connection is still usable (the caller may keep it)."""
    db = database.obj
    if db is None or db.is_closed():
        return False
    try:
        if db.in_transaction() or (is_postgres() and _raw_connection().info.transaction_status):
            db._state.transactions.clear()
            db.rollback()
    except Exception:  # noqa: BLE001 - a dead connection cannot roll back; it is thrown away
        discard_connection()
        return False
    if not connection_alive():
        discard_connection()
        return False
    return True
