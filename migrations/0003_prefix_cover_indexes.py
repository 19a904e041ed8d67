"""PostgreSQL: covering indexes for common login-ID and e-mail prefixes in the console search;
nothing on SQLite.

The statements are frozen as they ran when this migration was written (commit 9875c7b; today
they are also in accounts.search_index.PG_INDEXES, which the legacy import drops and rebuilds).
"""

PG_UP = (
    'CREATE INDEX IF NOT EXISTS user_login_prefix_cover ON "user" (portal, login_id_key) INCLUDE (id)',
    'CREATE INDEX IF NOT EXISTS user_email_prefix_cover ON "user" (email_key) INCLUDE (id)',
)
PG_DOWN = (
    "DROP INDEX IF EXISTS user_login_prefix_cover",
    "DROP INDEX IF EXISTS user_email_prefix_cover",
)


def _is_postgres(db) -> bool:
    from peewee import PostgresqlDatabase

    return isinstance(getattr(db, "obj", db), PostgresqlDatabase)


def up(migrator, db):
    if _is_postgres(db):
        for sql in PG_UP:
            db.execute_sql(sql)


def down(migrator, db):
    if _is_postgres(db):
        for sql in PG_DOWN:
            db.execute_sql(sql)
