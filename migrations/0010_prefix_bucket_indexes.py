"""Console prefix search on the login ID and the e-mail: B-trees on (id bucket, column), read
bucket after bucket so that every prefix shared by thousands of users answers in time
proportional to the page (issue 14; accounts.search_index.PREFIX_INDEXES says why). PostgreSQL
also gets covering indexes for name and phone prefixes and for a contract's users, like 0003's
for login ID and e-mail: a prefix of a few thousand users is then read from the index alone.

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
    'CREATE INDEX IF NOT EXISTS user_name_prefix_cover ON "user" (name) INCLUDE (id)',
    'CREATE INDEX IF NOT EXISTS user_phone_prefix_cover ON "user" (phone) INCLUDE (id)',
    'CREATE INDEX IF NOT EXISTS user_contract_cover ON "user" (contract_id) INCLUDE (id)',
)
DOWN = (
    'DROP INDEX IF EXISTS user_login_id_key_bucket',
    'DROP INDEX IF EXISTS user_email_key_bucket',
    'DROP INDEX IF EXISTS user_name_prefix_cover',
    'DROP INDEX IF EXISTS user_phone_prefix_cover',
    'DROP INDEX IF EXISTS user_contract_cover',
)


def _postgres(db) -> bool:
    return isinstance(getattr(db, "obj", db), PostgresqlDatabase)


def up(migrator, db):
    for sql in POSTGRES_UP if _postgres(db) else SQLITE_UP:
        db.execute_sql(sql)


def down(migrator, db):
    for sql in DOWN:
        db.execute_sql(sql)
