"""Facts about this installation kept in the database (``SiteSetting``), not in configuration.

Why the database: "the demo data is loaded" is a property of the data, not of the process that
serves it; a configuration flag would stay on after a real export replaced the demo, or be
forgotten on one of several web workers.
"""
from .clock import utcnow
from .db import first_row
from .models import SiteSetting

DEMO_LOADED = "demo_loaded_at"


def get(key: str, default: str | None = None) -> str | None:
    row = first_row(SiteSetting, '"key" = ?', key)
    return row.value if row is not None else default


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
    return get(DEMO_LOADED) is not None
