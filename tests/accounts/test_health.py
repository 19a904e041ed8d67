"""accounts.health tells "the database cannot serve now" (503) from "this query is wrong" (500)."""
import sqlite3

import psycopg
import pytest
from peewee import IntegrityError, InternalError, OperationalError, ProgrammingError
from playhouse.pool import MaxConnectionsExceeded

from accounts.health import is_unavailable


def _real_sqlite_error(tmp_path, setup, statement):
    path = tmp_path / "x.db"
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE t (a UNIQUE)")
        c.execute("INSERT INTO t VALUES (1)")
    conn = sqlite3.connect(f"file:{path}{setup}", uri=True)
    try:
        conn.execute(statement)
    except sqlite3.Error as exc:
        return exc
    finally:
        conn.close()
    raise AssertionError("no error")


@pytest.mark.parametrize("setup, statement, expected", [
    ("?mode=ro", "INSERT INTO t VALUES (2)", True),          # a read-only file
    ("", "SELECT * FROM nope", False),                       # a bug
    ("", "INSERT INTO t VALUES (1)", False),                 # a constraint: the caller's business
])
def test_real_sqlite_errors(tmp_path, setup, statement, expected):
    exc = _real_sqlite_error(tmp_path, setup, statement)
    wrapped = (OperationalError if isinstance(exc, sqlite3.OperationalError) else IntegrityError)(exc)
    assert is_unavailable(wrapped) is expected
    assert is_unavailable(exc) is expected


@pytest.mark.parametrize("error, expected", [
    (OperationalError(psycopg.OperationalError("the connection is closed")), True),
    (OperationalError(psycopg.errors.AdminShutdown("terminating connection")), True),
    (OperationalError(psycopg.OperationalError("connection failed: Connection refused")), True),
    (OperationalError(psycopg.errors.DiskFull("could not extend file")), True),
    (InternalError(psycopg.errors.ReadOnlySqlTransaction("cannot execute UPDATE in a read-only "
                                                          "transaction")), True),
    (psycopg.errors.CannotConnectNow("the database system is starting up"), True),
    (MaxConnectionsExceeded("Max connections exceeded, timed out attempting to connect."), True),
    (ProgrammingError(psycopg.errors.UndefinedColumn("column nope does not exist")), False),
    (IntegrityError(psycopg.errors.UniqueViolation("duplicate key")), False),
    (OperationalError(sqlite3.OperationalError("database is locked")), True),
    (OperationalError(sqlite3.OperationalError("database or disk is full")), True),
    (OperationalError(sqlite3.OperationalError("no such column: nope")), False),
    (ValueError("not a database error"), False),
])
def test_driver_errors(error, expected):
    assert is_unavailable(error) is expected
