"""Write transactions that read first: ``BEGIN IMMEDIATE`` on SQLite.

A deferred SQLite transaction that reads and then writes fails at once with "database is locked"
when another worker committed in between (WAL snapshot cannot be upgraded; busy_timeout does not
help). Taking the write lock at BEGIN makes such transactions wait instead. PostgreSQL needs
nothing special. (A candidate for accounts/db.py.)
"""
from .db import database, is_postgres


def writing():
    return database.atomic() if is_postgres() else database.atomic("IMMEDIATE")
