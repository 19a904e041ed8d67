"""Time in one place: UTC in the database, JST on screens and in mails."""
import datetime

JST = datetime.timezone(datetime.timedelta(hours=9), "JST")


def utcnow() -> datetime.datetime:
    """Naive UTC now, as stored in the database."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def to_jst(dt: datetime.datetime | None) -> datetime.datetime | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.UTC)
    return dt.astimezone(JST)


def format_jst(dt: datetime.datetime | None, with_seconds: bool = False) -> str:
    local = to_jst(dt)
    if local is None:
        return ""
    return local.strftime("%Y-%m-%d %H:%M:%S JST" if with_seconds else "%Y-%m-%d %H:%M JST")


def from_jst_naive(dt: datetime.datetime) -> datetime.datetime:
    """A time typed without offset is JST (SPEC 6); return naive UTC."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=JST)
    return dt.astimezone(datetime.UTC).replace(tzinfo=None)
