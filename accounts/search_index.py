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
# PostgreSQL: the name with each half- or full-width space written as the digit 0, a word
# character. pg_trgm splits a name at its spaces, so a name typed across its space (上　明美, 下　大)
# has only the trigrams of one-character words that tens of thousands of names share (50,000 rows
# read and rechecked: 90 ms), while "上0明美" holds the trigram "上0明" of the letters around the
# space: about the names that match (800 rows, 6 ms). The same replacement in the text and in the
# pattern keeps every match (a name holding "上　明美" holds "上0明美" once replaced); what else it
# lets through (a name with a digit 0 where the pattern has a space) the search rechecks on the
# name itself (accounts.search._name_beyond).
NAME_SPACES = " \u3000"
NAME_SPACE_MARK = "0"


def name_joined(column: str) -> str:
    """The SQL of the name with its spaces written as NAME_SPACE_MARK (the index's expression;
    the search writes the same with the column of its statement)."""
    return f"translate({column}, '{NAME_SPACES}', '{NAME_SPACE_MARK * len(NAME_SPACES)}')"


PG_INDEXES["user_name_joined_trgm"] = ('CREATE INDEX IF NOT EXISTS user_name_joined_trgm ON "user" '
                                       f'USING gin (({name_joined("name")}) gin_trgm_ops)')
# PostgreSQL: a prefix shared by a few thousand users is answered from these indexes alone
# (index-only scan, then the first ids), instead of fetching every matching row from the table:
# the console's worst login-ID prefix search went from 61 ms to 12 ms; a name prefix of 3,500
# users (佐藤　愛) from 9 ms to 1 ms (name and phone: migration 0010).
PG_INDEXES.update({
    "user_login_prefix_cover":
        'CREATE INDEX IF NOT EXISTS user_login_prefix_cover ON "user" (portal, login_id_key) INCLUDE (id)',
    "user_email_prefix_cover":
        'CREATE INDEX IF NOT EXISTS user_email_prefix_cover ON "user" (email_key) INCLUDE (id)',
    "user_name_prefix_cover":
        'CREATE INDEX IF NOT EXISTS user_name_prefix_cover ON "user" (name) INCLUDE (id)',
    "user_phone_prefix_cover":
        'CREATE INDEX IF NOT EXISTS user_phone_prefix_cover ON "user" (phone) INCLUDE (id)',
    # An ECID prefix of a few contracts: their users' ids from the index alone (1,000 users of 10
    # contracts read from the table: 29 ms when the pages were not cached).
    "user_contract_cover":
        'CREATE INDEX IF NOT EXISTS user_contract_cover ON "user" (contract_id) INCLUDE (id)',
})
# Prefix search on the login ID and the e-mail when thousands of users match (both databases):
# B-trees on (id bucket, column), a bucket being 4,096 consecutive user ids. The console reads
# them bucket after bucket, each bucket's matches sorted by id within that bucket only (SQLite:
# "temp B-tree for the right part of ORDER BY", PostgreSQL: incremental sort), and stops at the
# first full page. So a prefix most users share ("u", "user") costs one bucket, and a prefix whose
# users sit together far into the table (login IDs numbered in the order of the export: "user099"
# is the last tenth) one index seek per bucket before them, instead of a walk over every row in
# id order: 1.3 s -> under 1 ms on SQLite with a million users (benchmarks/RESULTS-search.md).
BUCKET_BITS = 12
PREFIX_INDEXES = {"user_login_id_key_bucket": "login_id_key", "user_email_key_bucket": "email_key"}


def prefix_index_sql(name: str, postgres: bool) -> str:
    """The DDL of one of PREFIX_INDEXES.

    PostgreSQL: the column in the "C" collation, which the search's range names too. Then a
    prefix range means code-point order whatever the database's collation, and only this index
    can serve that range: a planner without statistics (just after an import) or with a generic
    plan cannot take the column's other index and sort every match of "u" instead. It also
    stores the id (index-only scans). SQLite: every index entry holds the rowid already.
    """
    column = PREFIX_INDEXES[name]
    if postgres:
        return (f'CREATE INDEX IF NOT EXISTS {name} ON "user" ((id >> {BUCKET_BITS}), {column} COLLATE "C") '
                f"INCLUDE (id)")
    return f'CREATE INDEX IF NOT EXISTS {name} ON "user" ((id >> {BUCKET_BITS}), {column})'



# Indexes of the user table that belong to the search rather than to a model's Meta.indexes.
OWN_INDEXES = frozenset({*PG_INDEXES, *PREFIX_INDEXES})


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


def create_prefix_indexes(db=None) -> list[str]:
    """Create the PREFIX_INDEXES a database lacks (an import killed while they were dropped);
    returns their names."""
    db = db or database
    postgres = is_postgres_db(db)
    have = {meta.name for meta in db.get_indexes("user")}
    missing = [name for name in PREFIX_INDEXES if name not in have]
    for name in missing:
        db.execute_sql(prefix_index_sql(name, postgres))
    return missing


def rebuild():
    """Rebuild the SQLite FTS index from the user table (no-op on PostgreSQL)."""
    if not is_postgres():
        database.execute_sql("INSERT INTO user_search(user_search) VALUES ('rebuild')")
