"""Substring search over users: FTS5 trigram on SQLite, pg_trgm on PostgreSQL (SPEC 7, 9)."""
from accounts import search_index


def up(migrator, db):
    search_index.create(db)


def down(migrator, db):
    search_index.drop(db)
