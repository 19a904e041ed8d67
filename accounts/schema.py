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
