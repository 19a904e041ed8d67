"""The migration period: before / during / after, derived from the clock (SPEC 6).

No period set behaves as "after": the new portals are open and the legacy portal shows its
end-of-service page.
"""
import datetime
from dataclasses import dataclass

from . import audit
from .clock import JST, from_jst_naive, utcnow
from .db import database, first_row
from .models import ORIGIN_LEGACY, MigrationPeriod

BEFORE = "before"
DURING = "during"
AFTER = "after"


class PeriodError(ValueError):
    """A period setting that cannot be accepted; the message says why.

    ``field`` (start / end) and ``code`` (required / unparsable / order) let a screen put its own
    translated message next to the right field; the English message serves the command line.
    """

    def __init__(self, message: str, field: str = "", code: str = ""):
        super().__init__(message)
        self.field = field
        self.code = code


@dataclass(frozen=True)
class Period:
    start_at: datetime.datetime  # naive UTC
    end_at: datetime.datetime    # naive UTC


def current() -> Period | None:
    row = first_row(MigrationPeriod, '"id" = 1')
    return Period(row.start_at, row.end_at) if row else None


def phase(now: datetime.datetime | None = None, period: Period | None = None) -> str:
    period = period if period is not None else current()
    if period is None:
        return AFTER
    now = now or utcnow()
    if now < period.start_at:
        return BEFORE
    if now <= period.end_at:
        return DURING
    return AFTER


def first_login_open_for(user, now=None) -> bool:
    """Migrated users start their first login only once the period has begun (native users always)."""
    return first_login_opens_at(user, now) is None


def first_login_opens_at(user, now=None, period: "Period | None" = None) -> datetime.datetime | None:
    """When a migrated user may start the first login (the period's start, naive UTC), or None when
    the user may start now (native users always; migrated users once the period has begun)."""
    if user.origin != ORIGIN_LEGACY:
        return None
    period = period if period is not None else current()
    if phase(now, period) == BEFORE:
        return period.start_at
    return None


class NotYetOpen(ValueError):
    """A migrated user cannot be sent a first-login (reset) link or a reminder before the period
    (SPEC 6, 12): nobody, the operator included, moves users early. ``opens_at`` is naive UTC."""

    def __init__(self, opens_at: datetime.datetime):
        super().__init__(f"the first login opens at {opens_at.isoformat()} UTC")
        self.opens_at = opens_at


def ensure_first_login_open(user, now=None) -> None:
    """Raise NotYetOpen for a migrated user before the period; every sender of a link calls this."""
    opens_at = first_login_opens_at(user, now)
    if opens_at is not None:
        raise NotYetOpen(opens_at)


def parse_time(text: str, field: str) -> datetime.datetime:
    """ISO 8601 to naive UTC; a time without offset is JST. Raises PeriodError naming the field."""
    value = (text or "").strip()
    if not value:
        raise PeriodError(f"{field}: a date and time is required (e.g. 2026-12-01T00:00)",
                          field, "required")
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PeriodError(f"{field}: '{value}' is not an ISO 8601 date and time "
                          f"(e.g. 2026-12-01T00:00)", field, "unparsable") from None
    return from_jst_naive(parsed)


def validate(start_at: datetime.datetime, end_at: datetime.datetime) -> None:
    if end_at <= start_at:
        raise PeriodError("end: the end must be after the start", "end", "order")


def set_period(start_at: datetime.datetime, end_at: datetime.datetime, updated_by: str = "") -> Period:
    """Store the period (naive UTC), unaudited: demo data and tests; a person's change is ``change``."""
    validate(start_at, end_at)
    (MigrationPeriod.insert(id=1, start_at=start_at, end_at=end_at, updated_at=utcnow(),
                            updated_by=updated_by)
     .on_conflict(conflict_target=[MigrationPeriod.id],
                  update={MigrationPeriod.start_at: start_at, MigrationPeriod.end_at: end_at,
                          MigrationPeriod.updated_at: utcnow(), MigrationPeriod.updated_by: updated_by})
     .execute())
    return Period(start_at, end_at)


def clear_period() -> None:
    MigrationPeriod.delete().where(MigrationPeriod.id == 1).execute()


def _updated_by(actor) -> str:
    return actor if isinstance(actor, str) else actor.login_id


def change(actor, start_at: datetime.datetime, end_at: datetime.datetime, *, ip=None) -> Period:
    """Set the period (naive UTC) and audit it, old -> new, in one transaction: the command
    (actor "cli") and the console's settings page (the operator) both call this.
    Raises PeriodError (end not after start) with nothing written."""
    with database.atomic():
        old = current()
        new = set_period(start_at, end_at, updated_by=_updated_by(actor))
        audit.record(actor, "migration_period_set", field="migration_period",
                     old=describe(old) if old else None, new=describe(new), ip=ip)
    return new


def remove(actor, *, ip=None) -> Period | None:
    """Remove the period (the phase becomes "after" at once) and audit it; returns the old one."""
    with database.atomic():
        old = current()
        clear_period()
        audit.record(actor, "migration_period_cleared", field="migration_period",
                     old=describe(old) if old else None, new=None, ip=ip)
    return old


def to_jst_input(dt: datetime.datetime | None) -> str:
    """A stored time as the value of an ``<input type="datetime-local">`` in JST."""
    if dt is None:
        return ""
    return dt.replace(tzinfo=datetime.UTC).astimezone(JST).strftime("%Y-%m-%dT%H:%M")


def describe(period: Period | None, now=None) -> str:
    if period is None:
        return "no migration period is set: phase 'after' (new portals open, legacy portal closed)"
    fmt = "%Y-%m-%d %H:%M JST"
    start = period.start_at.replace(tzinfo=datetime.UTC).astimezone(JST).strftime(fmt)
    end = period.end_at.replace(tzinfo=datetime.UTC).astimezone(JST).strftime(fmt)
    return f"migration period {start} - {end}: phase '{phase(now, period)}'"


def command(start: str | None, end: str | None, clear: bool) -> int:
    """`flask migration-period`: 0 done, 1 refused (message on stderr), 2 wrong usage."""
    import click

    if clear and (start or end):
        click.echo("usage: --clear cannot be combined with --start/--end", err=True)
        return 2
    if clear:
        remove("cli")
        click.echo("migration period removed: " + describe(None))
        return 0
    if not start and not end:
        click.echo(describe(current()))
        return 0
    if not (start and end):
        click.echo("usage: give both --start and --end (or --clear, or neither to show the period)",
                   err=True)
        return 2
    try:
        start_at, end_at = parse_time(start, "start"), parse_time(end, "end")
        new = change("cli", start_at, end_at)
    except PeriodError as exc:
        click.echo(f"refused: {exc}", err=True)
        return 1
    click.echo("saved: " + describe(new))
    from . import terms

    if terms.in_force(now=max(start_at, utcnow())) is None:
        click.echo("warning: no terms version is published: users will not be asked to agree to "
                   "terms at their first login (publish one with: flask --app app publish-terms FILE "
                   "--title TITLE)", err=True)
    return 0
