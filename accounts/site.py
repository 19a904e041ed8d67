"""Facts about this installation kept in the database (``SiteSetting``), not in configuration.

Why the database: "the demo data is loaded" is a property of the data, not of the process that
serves it; a configuration flag would stay on after a real export replaced the demo, or be
forgotten on one of several web workers.
"""
from dataclasses import dataclass

from .clock import utcnow
from .db import database
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


def facts() -> Facts:
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
