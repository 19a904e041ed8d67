"""Console substring search on PostgreSQL: a trigram index over the name with each half- or
full-width space written as 0, so that a name typed across its space (上　明美) is looked up by the
trigram of the letters around the space instead of rechecking every name that holds one of its
one-character words (accounts.search_index.name_joined says why). SQLite's FTS5 trigram index
keeps the spaces in its trigrams already: nothing to do there.

Frozen DDL: nothing here imports live code.
"""
from peewee import PostgresqlDatabase

POSTGRES_UP = (
    "CREATE INDEX IF NOT EXISTS user_name_joined_trgm ON \"user\" "
    "USING gin ((translate(name, ' \u3000', '00')) gin_trgm_ops)",
)
DOWN = ("DROP INDEX IF EXISTS user_name_joined_trgm",)


def _postgres(db) -> bool:
    return isinstance(getattr(db, "obj", db), PostgresqlDatabase)


def up(migrator, db):
    if _postgres(db):
        for sql in POSTGRES_UP:
            db.execute_sql(sql)


def down(migrator, db):
    if _postgres(db):
        for sql in DOWN:
            db.execute_sql(sql)
