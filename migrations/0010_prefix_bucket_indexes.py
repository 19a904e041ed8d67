"""Console prefix search on the login ID and the e-mail: B-trees on (id bucket, column), read
bucket after bucket so that every prefix answers in time proportional to the page (issue 14;
accounts.search_index.PREFIX_INDEXES says why). On PostgreSQL they replace the covering indexes
of 0003, which served only this search.

Frozen DDL: nothing here imports live code.
"""
from peewee import PostgresqlDatabase

SQLITE_UP = (
    'CREATE INDEX IF NOT EXISTS user_login_id_key_bucket ON "user" ((id >> 12), login_id_key)',
    'CREATE INDEX IF NOT EXISTS user_email_key_bucket ON "user" ((id >> 12), email_key)',
)
POSTGRES_UP = (
    'CREATE INDEX IF NOT EXISTS user_login_id_key_bucket ON "user" ((id >> 12), login_id_key COLLATE "C") '
    'INCLUDE (id)',
    'CREATE INDEX IF NOT EXISTS user_email_key_bucket ON "user" ((id >> 12), email_key COLLATE "C") INCLUDE (id)',
    'DROP INDEX IF EXISTS user_login_prefix_cover',
    'DROP INDEX IF EXISTS user_email_prefix_cover',
)
DOWN = (
    'DROP INDEX IF EXISTS user_login_id_key_bucket',
    'DROP INDEX IF EXISTS user_email_key_bucket',
)
POSTGRES_DOWN = (
    'CREATE INDEX IF NOT EXISTS user_login_prefix_cover ON "user" (portal, login_id_key) INCLUDE (id)',
    'CREATE INDEX IF NOT EXISTS user_email_prefix_cover ON "user" (email_key) INCLUDE (id)',
)


def _postgres(db) -> bool:
    return isinstance(getattr(db, "obj", db), PostgresqlDatabase)


def up(migrator, db):
    for sql in POSTGRES_UP if _postgres(db) else SQLITE_UP:
        db.execute_sql(sql)


def down(migrator, db):
    for sql in DOWN + (POSTGRES_DOWN if _postgres(db) else ()):
        db.execute_sql(sql)
