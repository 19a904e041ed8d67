"""SQLite transactions opened through the app's ``database`` proxy take the write lock at BEGIN.

A deferred transaction that reads and then writes fails at once with "database is locked" (a 500)
when another worker committed in between; BEGIN IMMEDIATE makes it wait its turn instead.
"""
import sqlite3

import pytest

from accounts.db import database, is_postgres


@pytest.fixture
def sqlite_path(db):
    if is_postgres():
        pytest.skip("SQLite locking only")
    return database.obj.database


def test_atomic_through_the_proxy_takes_the_write_lock_at_begin(sqlite_path):
    other = sqlite3.connect(sqlite_path, timeout=0, isolation_level=None)
    try:
        with database.atomic():
            # Nothing written yet: only BEGIN IMMEDIATE already holds the write lock.
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # released at COMMIT
        other.execute("ROLLBACK")
    finally:
        other.close()


def test_a_savepoint_inside_a_transaction_still_works(sqlite_path):
    from accounts.models import Contract

    with database.atomic():
        Contract.create(ecid="ecid0000000101", name="a")
        with database.atomic():
            Contract.create(ecid="ecid0000000102", name="b")
    assert Contract.select().count() == 2
