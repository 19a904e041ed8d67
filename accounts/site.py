"""Facts about this installation kept in the database (``SiteSetting``), not in configuration.

Why the database: "the demo data is loaded" is a property of the data, not of the process that
serves it; a configuration flag would stay on after a real export replaced the demo, or be
forgotten on one of several web workers.
"""
import weakref
from dataclasses import dataclass

from .clock import utcnow
from .db import database, idle_connection
from .models import MigrationPeriod, SiteSetting
from .period import Period

DEMO_LOADED = "demo_loaded_at"


def put(key: str, value: str) -> None:
    """Set ``key`` (call inside the transaction of the change it records)."""
    now = utcnow()
    (SiteSetting.insert(key=key, value=value, updated_at=now)
     .on_conflict(conflict_target=[SiteSetting.key],
                  update={SiteSetting.value: value, SiteSetting.updated_at: now})
     .execute())


def mark_demo_loaded() -> None:
    put(DEMO_LOADED, utcnow().isoformat(timespec="seconds"))


def demo_loaded() -> bool:
    return facts().demo_loaded


@dataclass(frozen=True)
class Facts:
    """What nearly every page shows: the migration period (accounts.period.current) and whether
    the demo data is loaded (``demo_loaded``)."""
    period: Period | None
    demo_loaded: bool


_FACTS_SQL: dict[str, str] = {}
CHANGED = "portal_site_facts"   # the notification channel of migrations/0012_site_facts_notify.py


def read_facts() -> Facts:
    """The period and the demo flag in one statement: a page that shows both (the footer and the
    sign-in page's notice) makes one round trip to the database for them, not two."""
    sql = _FACTS_SQL.get(database.param)
    if sql is None:
        sql = _FACTS_SQL[database.param] = (
            'SELECT "migration_period"."start_at", "migration_period"."end_at",'
            f' (SELECT "value" FROM "site_setting" WHERE "key" = {database.param})'
            ' FROM (SELECT 1 AS "one") AS "site"'
            ' LEFT JOIN "migration_period" ON "migration_period"."id" = 1')
    start_at, end_at, demo = database.execute_sql(sql, (DEMO_LOADED,)).fetchone()
    period = None
    if start_at is not None:
        period = Period(MigrationPeriod.start_at.python_value(start_at),
                        MigrationPeriod.end_at.python_value(end_at))
    return Facts(period, demo is not None)


class _Kept:
    """The facts kept for one PostgreSQL connection, and whether a notification said they changed."""

    __slots__ = ("facts", "listening", "changes")

    def __init__(self):
        self.facts: Facts | None = None
        self.listening = False
        self.changes = 0

    def changed(self, notify) -> None:
        if notify.channel == CHANGED:
            self.facts, self.changes = None, self.changes + 1


_kept: "weakref.WeakKeyDictionary[object, _Kept]" = weakref.WeakKeyDictionary()


def facts() -> Facts:
    """``read_facts()``, kept between requests on PostgreSQL until the database says they changed.

    Every page shows them; on PostgreSQL each read is a round trip. A connection listens to
    ``CHANGED``, which a trigger on both tables notifies at every change (whoever makes it); the
    facts kept for that connection are dropped when a notification arrives (psycopg hands them
    over with the answer of any statement, and ``accounts.health`` replaces a kept connection that
    received one while idle). Outside a transaction only: LISTEN inside one would be undone with
    it. A database without the trigger (the migration not applied yet) is read every time.
    """
    conn = idle_connection()
    if conn is None:
        return read_facts()
    kept = _kept.get(conn)
    if kept is None:
        kept = _kept[conn] = _Kept()
        kept.listening = database.execute_sql(
            "SELECT count(*) = 2 FROM pg_trigger WHERE tgname IN"
            " ('migration_period_notify', 'site_setting_notify')").fetchone()[0]
        if kept.listening:
            conn.add_notify_handler(kept.changed)
            database.execute_sql(f"LISTEN {CHANGED}")
    if not kept.listening:
        return read_facts()
    if kept.facts is not None:
        return kept.facts
    changes = kept.changes
    value = read_facts()
    if kept.changes == changes:   # not kept if a change was notified with the read's answer
        kept.facts = value
    return value
