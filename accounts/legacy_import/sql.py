"""Small SQL helpers of the import's lookups and writers: the placeholder of the database in
use, timestamps as the driver wants them, and ``in_chunks`` for IN lists longer than SQLite's
parameter limit."""
from __future__ import annotations

import dataclasses

from ..db import is_postgres

IN_CHUNK = 10000  # SQLite allows 32766 parameters per statement


def placeholder() -> str:
    return "%s" if is_postgres() else "?"


def db_time(value):
    """SQLite stores peewee datetimes as text ('YYYY-MM-DD HH:MM:SS.ffffff'); psycopg adapts them."""
    return value if is_postgres() else str(value)


@dataclasses.dataclass(slots=True)
class Existing:
    """A pair already known: claimed earlier in this run (at ``line``) or migrated by an earlier run."""

    this_run: bool
    line: int | None
    login_id: str = ""
    phone: str = ""


def in_chunks(cursor, sql: str, column: str, values: list, before: tuple = ()) -> list[tuple]:
    """Run ``sql`` (``{cond}`` = ``column IN values``) in chunks that fit the parameter limit."""
    if is_postgres():
        cursor.execute(sql.format(cond=f"{column} = ANY(%s)"), [*before, values])
        return cursor.fetchall()
    rows: list[tuple] = []
    for i in range(0, len(values), IN_CHUNK):
        chunk = values[i:i + IN_CHUNK]
        cursor.execute(sql.format(cond=f"{column} IN ({', '.join('?' * len(chunk))})"), [*before, *chunk])
        rows.extend(cursor.fetchall())
    return rows

