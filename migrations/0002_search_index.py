"""Substring search over users: FTS5 trigram on SQLite, pg_trgm on PostgreSQL (SPEC 7, 9).

The statements are frozen as they ran when this migration was written (commit e623cd1): a
migration must build the same schema whatever accounts.search_index says later. The covering
indexes came later, in 0003.
"""

SQLITE_UP = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS user_search USING fts5("
    "login_id_key, email_key, name, phone, content='user', content_rowid='id', tokenize='trigram')",
    """CREATE TRIGGER IF NOT EXISTS user_search_ai AFTER INSERT ON "user" BEGIN
        INSERT INTO user_search(rowid, login_id_key, email_key, name, phone)
        VALUES (new.id, new.login_id_key, new.email_key, new.name, new.phone); END""",
    """CREATE TRIGGER IF NOT EXISTS user_search_ad AFTER DELETE ON "user" BEGIN
        INSERT INTO user_search(user_search, rowid, login_id_key, email_key, name, phone)
        VALUES ('delete', old.id, old.login_id_key, old.email_key, old.name, old.phone); END""",
    """CREATE TRIGGER IF NOT EXISTS user_search_au
        AFTER UPDATE OF login_id_key, email_key, name, phone ON "user" BEGIN
        INSERT INTO user_search(user_search, rowid, login_id_key, email_key, name, phone)
        VALUES ('delete', old.id, old.login_id_key, old.email_key, old.name, old.phone);
        INSERT INTO user_search(rowid, login_id_key, email_key, name, phone)
        VALUES (new.id, new.login_id_key, new.email_key, new.name, new.phone); END""",
)
SQLITE_DOWN = (
    "DROP TRIGGER IF EXISTS user_search_ai",
    "DROP TRIGGER IF EXISTS user_search_ad",
    "DROP TRIGGER IF EXISTS user_search_au",
    "DROP TABLE IF EXISTS user_search",
)
PG_UP = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    'CREATE INDEX IF NOT EXISTS user_login_id_key_trgm ON "user" USING gin (login_id_key gin_trgm_ops)',
    'CREATE INDEX IF NOT EXISTS user_email_key_trgm ON "user" USING gin (email_key gin_trgm_ops)',
    'CREATE INDEX IF NOT EXISTS user_name_trgm ON "user" USING gin (name gin_trgm_ops)',
    'CREATE INDEX IF NOT EXISTS user_phone_trgm ON "user" USING gin (phone gin_trgm_ops)',
)
PG_DOWN = (
    "DROP INDEX IF EXISTS user_login_id_key_trgm",
    "DROP INDEX IF EXISTS user_email_key_trgm",
    "DROP INDEX IF EXISTS user_name_trgm",
    "DROP INDEX IF EXISTS user_phone_trgm",
)


def _is_postgres(db) -> bool:
    from peewee import PostgresqlDatabase

    return isinstance(getattr(db, "obj", db), PostgresqlDatabase)


def up(migrator, db):
    for sql in PG_UP if _is_postgres(db) else SQLITE_UP:
        db.execute_sql(sql)


def down(migrator, db):
    for sql in PG_DOWN if _is_postgres(db) else SQLITE_DOWN:
        db.execute_sql(sql)
