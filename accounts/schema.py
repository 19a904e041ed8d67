"""Schema migrations with peewee's playhouse.migrations: numbered scripts in migrations/."""
from pathlib import Path

from playhouse.migrations import Runner

from .db import database

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def runner() -> Runner:
    return Runner(database.obj, directory=str(MIGRATIONS_DIR))


def upgrade() -> list[str]:
    """Apply every pending migration in order; return the names applied."""
    with database.connection_context():
        return runner().up()


def pending() -> list[str]:
    with database.connection_context():
        return [m.name for m in runner().status() if not m.applied and m.path]


DB_UPGRADE_FIRST = "run flask --app app db-upgrade first"


class SchemaNotReady(RuntimeError):
    """The database has no schema yet, or an older one: every command but db-upgrade refuses."""


def check_ready() -> None:
    """Raise SchemaNotReady (one line for the operator) unless every migration is applied.

    Reads only the migrations' history table (never creates it), so a fresh database stays
    untouched; a database that cannot be reached is reported the same way, in one line.
    """
    from peewee import DatabaseError, InterfaceError

    try:
        waiting = pending()
    except (DatabaseError, InterfaceError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SchemaNotReady(f"the database cannot be used ({first}): check DATABASE_URL, then "
                             f"{DB_UPGRADE_FIRST}") from None
    if waiting:
        applied_none = len(waiting) == len(runner().migrations())
        what = "the database has no schema" if applied_none else \
            f"the database schema is not up to date ({len(waiting)} migration(s) pending)"
        raise SchemaNotReady(f"{what}: {DB_UPGRADE_FIRST}")
