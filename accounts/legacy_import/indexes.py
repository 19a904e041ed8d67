"""Suspending the indexes of ``user`` and ``legacy_account`` for a big first import and
building them again afterwards; ``recover_interrupted_run`` puts back what a killed run left out."""
from __future__ import annotations

import contextlib
import re

from ..db import database, is_postgres

BULK_TABLES = ("user", "legacy_account")


@contextlib.contextmanager
def bulk_indexes_suspended():
    """Drop the B-tree indexes of the bulk-loaded tables, rebuild them once at the end (SPEC 9).

    Inserting a million rows in random key order into seven indexes, committing per batch,
    writes every index page many times over; building an index afterwards is one sort. Meanwhile
    MemoryLookups answer what the unique indexes would; rebuilding the unique indexes re-checks
    uniqueness. A run killed in between leaves them missing: ``recover_interrupted_run`` puts them
    back (each run starts with it).
    """
    from ..search_index import PG_INDEXES

    dropped = []
    for table in BULK_TABLES:
        for meta in database.get_indexes(table):
            if meta.name not in PG_INDEXES and meta.sql and not meta.name.endswith("_pkey"):
                dropped.append(meta.sql)
                database.execute_sql(f'DROP INDEX IF EXISTS "{meta.name}"')
    foreign_keys = _drop_foreign_keys() if is_postgres() else []
    try:
        yield
    finally:
        create_indexes(dropped)
        for sql in foreign_keys:
            database.execute_sql(sql)


def _drop_foreign_keys() -> list[str]:
    """PostgreSQL: drop the foreign keys of the bulk-loaded tables; return the SQL that adds them back.

    COPY checks a foreign key row by row, and the check of ``legacy_account.user_id`` also locks
    the user row it points to (a write to that row's page). Adding the constraint back checks
    every row at once, with one join. SQLite checks them as cheap primary-key look-ups: kept.
    """
    found = database.execute_sql(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE contype = 'f' AND conrelid = ANY(%s::regclass[]) ORDER BY conname",
        [[f'"{t}"' for t in BULK_TABLES]]).fetchall()
    for table, name, _definition in found:
        database.execute_sql(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    return [f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}' for table, name, definition in found]


def _missing_foreign_keys() -> list[tuple[str, str]]:
    """PostgreSQL: (name, SQL that adds it) for each foreign key of the bulk-loaded tables'
    models that the database lacks (an import killed during a bulk load)."""
    from peewee import ForeignKeyField

    from ..models import LegacyAccount, User

    have = {(table.strip('"'), column) for table, column in database.execute_sql(
        "SELECT c.conrelid::regclass::text, a.attname FROM pg_constraint c JOIN pg_attribute a "
        "ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
        "WHERE c.contype = 'f' AND c.conrelid = ANY(%s::regclass[])",
        [[f'"{t}"' for t in BULK_TABLES]]).fetchall()}
    missing = []
    for model in (User, LegacyAccount):
        table = model._meta.table_name
        for field in model._meta.sorted_fields:
            if isinstance(field, ForeignKeyField) and (table, field.column_name) not in have:
                name = f"{table}_{field.column_name}_fkey"  # PostgreSQL's own name, not peewee's
                sql = database.get_sql_context().sql(model._schema._create_foreign_key(field)).query()[0]
                sql = re.sub(r'ADD CONSTRAINT "[^"]+"', f'ADD CONSTRAINT "{name}"', sql, count=1)
                missing.append((name, sql))
    return missing


PG_INDEX_BUILDERS = 2                 # PostgreSQL connections building indexes at once


PG_INDEX_MEMORY = "512MB"             # maintenance_work_mem of each (GIN builds sort in it)


def create_indexes(sqls: list[str]) -> None:
    """Run CREATE INDEX statements: on PostgreSQL from two connections at once.

    Each index build is one statement in the server, on one core; two builds of the same table
    do not lock each other out (both take a SHARE lock). Measured on the 1M users: the e-mail and
    name trigram indexes one after the other 15.3 s, side by side 7.7 s. SQLite has one writer:
    one after the other on this connection.
    """
    if not is_postgres():
        for sql in sqls:
            database.execute_sql(sql)
        return

    def build(sql):
        with database.atomic():
            database.execute_sql(f"SET LOCAL maintenance_work_mem = '{PG_INDEX_MEMORY}'")
            database.execute_sql(sql)

    _side_by_side(build, sqls)


def _side_by_side(work, items) -> None:
    """PostgreSQL: ``work(item)`` for every item, PG_INDEX_BUILDERS at a time, each in a thread
    with its own connection (outside the caller's transaction); the first error is raised."""
    from concurrent.futures import ThreadPoolExecutor

    def on_own_connection(item):
        with database.connection_context():
            work(item)

    with ThreadPoolExecutor(PG_INDEX_BUILDERS) as pool:
        for future in [pool.submit(on_own_connection, item) for item in items]:
            future.result()


def refresh_statistics() -> None:
    """PostgreSQL, after a bulk load: VACUUM (ANALYZE) the loaded tables at once, instead of a
    minute or more later when autovacuum comes. A table just loaded has an empty visibility map,
    so every index-only scan of the console's search visits the table too, and the planner has no
    statistics of its columns: straight after a 1M import the prefix `0` took 69 ms, 1 ms after
    the VACUUM (benchmarks/RESULTS-migration.md). 0.5-0.7 s for a million users. VACUUM cannot run
    in a transaction: its own connection, in autocommit, tables side by side. SQLite needs
    neither (measured: the same search times without ``sqlite_stat1``)."""
    if is_postgres():
        _side_by_side(lambda table: database.execute_sql(f'VACUUM (ANALYZE) "{table}"'),
                      ("user", "legacy_account", "contract"))


def recover_interrupted_run() -> list[str]:
    """Put back what an import killed during a bulk load left suspended; say what was restored."""
    from .. import search_index
    from ..models import LegacyAccount, User

    restored = []
    for model in (User, LegacyAccount):
        have = {tuple(meta.columns) for meta in database.get_indexes(model._meta.table_name)
                if meta.name not in search_index.OWN_INDEXES}  # the search's: restored below
        for index in model._meta.fields_to_index():
            columns = tuple(f.column_name for f in index._expressions)
            if columns not in have:
                database.execute(model._schema._create_index(index, safe=True))
                have.add(columns)  # the model may declare the same index twice (FK + Meta)
                restored.append(f"index {model._meta.table_name}({', '.join(columns)})")
    restored += [f"search index {name}" for name in search_index.create_prefix_indexes()]
    if is_postgres():
        for name, sql in _missing_foreign_keys():
            database.execute_sql(sql)
            restored.append(f"foreign key {name}")
        names = {r[0] for r in database.execute_sql(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'user'").fetchall()}
        if not set(search_index.PG_INDEXES) <= names:
            search_index.create()
            restored.append("search index")
    else:
        names = {r[0] for r in database.execute_sql(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'user'").fetchall()}
        if not set(search_index.SQLITE_TRIGGERS) <= names:
            search_index.create()
            search_index.rebuild()
            restored.append("search index")
    return restored

