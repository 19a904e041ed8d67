"""PostgreSQL: covering indexes for common login-ID and e-mail prefixes in the console search
(accounts.search_index.PG_INDEXES); nothing on SQLite."""
from accounts import search_index


def up(migrator, db):
    if search_index.is_postgres_db(db):
        search_index.create(db)  # idempotent: creates only what is missing


def down(migrator, db):
    if search_index.is_postgres_db(db):
        for name in ("user_login_prefix_cover", "user_email_prefix_cover"):
            db.execute_sql(f"DROP INDEX IF EXISTS {name}")
