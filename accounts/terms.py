"""Terms ("カスタマポータル規約"): publishing versions (command and console), and the current version
that every user must agree to at sign-in (SPEC 5.4, 12).

A terms text is UTF-8 plain text or Markdown. It is shown through ``render``, which escapes every
character first and then understands a small Markdown subset (headings, lists, paragraphs, bold):
whatever the file holds, no HTML of its own reaches a page.
"""
import datetime
import re
import unicodedata

from markupsafe import Markup, escape
from peewee import IntegrityError, fn

from . import audit
from .clock import utcnow
from .db import ask_ahead, database, first_row
from .models import TermsAcceptance, TermsVersion

MAX_BYTES = 512 * 1024
MAX_TITLE = 255


class TermsError(ValueError):
    """A terms text, title or time that cannot be published; ``code`` names the reason.

    ``field`` is ``file``/``body``, ``title`` or ``at``, so a screen can show its own message next
    to the field; the English message serves the command line.
    """

    def __init__(self, message: str, field: str, code: str):
        super().__init__(message)
        self.field = field
        self.code = code


# --- checking what is published -----------------------------------------------------------------

def _bad_characters(text: str) -> bool:
    """Control characters other than line breaks and tabs (a binary file, or a broken export)."""
    return any(unicodedata.category(c) == "Cc" and c not in "\n\r\t" for c in text)


def check_body(body: str, field: str = "body") -> str:
    """The text as it will be stored (line breaks normalised, outer blank lines removed)."""
    text = (body or "").replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    if not text.strip():
        raise TermsError("the terms text is empty", field, "empty")
    if len(text.encode("utf-8")) > MAX_BYTES:
        raise TermsError(f"the terms text is larger than {MAX_BYTES // 1024} KiB", field, "too_large")
    if _bad_characters(text):
        raise TermsError("the terms text holds control characters (is it a binary file?)", field,
                         "binary")
    return text


def read_file(path: str) -> str:
    """A terms file's text: UTF-8 with or without BOM. Raises TermsError (field ``file``)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 4)
    except OSError as exc:
        raise TermsError(f"cannot read {path}: {exc.strerror or exc}", "file", "unreadable") from None
    if len(raw) > MAX_BYTES + 3:
        raise TermsError(f"{path}: larger than {MAX_BYTES // 1024} KiB", "file", "too_large")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TermsError(f"{path}: not UTF-8 text (byte {exc.start + 1}); save the file as UTF-8",
                         "file", "not_utf8") from None
    try:
        return check_body(text, "file")
    except TermsError as exc:
        raise TermsError(f"{path}: {exc}", "file", exc.code) from None


def check_title(title: str) -> str:
    value = (title or "").strip()
    if not value:
        raise TermsError("the title is empty", "title", "empty")
    if len(value) > MAX_TITLE:
        raise TermsError(f"the title is longer than {MAX_TITLE} characters", "title", "too_long")
    if _bad_characters(value) or "\n" in value or "\t" in value:
        raise TermsError("the title must be one line of text", "title", "binary")
    return value


def parse_at(text: str | None) -> datetime.datetime | None:
    """``--at`` / the form's time: ISO 8601, JST when it has no offset; None (empty) is now."""
    from .clock import from_jst_naive

    value = (text or "").strip()
    if not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise TermsError(f"'{value}' is not an ISO 8601 date and time (e.g. 2026-12-01T00:00)",
                         "at", "unparsable") from None
    return from_jst_naive(parsed)


# --- publishing ---------------------------------------------------------------------------------

def latest() -> TermsVersion | None:
    """The highest version, whether or not it is in force yet."""
    return TermsVersion.select().order_by(TermsVersion.version.desc()).first()


# The version in force: the highest one already published. One condition for both questions below.
IN_FORCE = ('"id" = (SELECT "id" FROM "terms_version" WHERE "published_at" <= ?'
            ' ORDER BY "version" DESC LIMIT 1)')


def in_force(now=None) -> TermsVersion | None:
    """The version users must agree to now (the highest one already published)."""
    # Asked at every sign-in: its SQL is built once (first_row).
    return first_row(TermsVersion, IN_FORCE, TermsVersion.published_at.db_value(now or utcnow()))


def publish(title: str, body: str, *, at: datetime.datetime | None = None, actor=None,
            ip=None) -> TermsVersion:
    """Publish the next version (in force from ``at``, naive UTC; default now), audited.

    Users are asked to agree at their next sign-in once it is in force. A time before the
    previous version's is refused: versions come into force in their order.
    """
    title = check_title(title)
    body = check_body(body)
    when = at or utcnow()
    label = getattr(actor, "login_id", None) or (actor if isinstance(actor, str) else "system")
    for _attempt in range(3):
        try:
            with database.atomic():
                previous = latest()
                if previous is not None and when < previous.published_at:
                    from .clock import format_jst

                    raise TermsError(
                        f"the time is before version {previous.version}'s "
                        f"({format_jst(previous.published_at)}): versions come into force in order",
                        "at", "order")
                number = (previous.version if previous else 0) + 1
                terms = TermsVersion.create(version=number, title=title, body=body, published_at=when,
                                            published_by=label)
                audit.record(actor if actor is not None else "cli", "terms_published",
                             field="terms_version", old=previous.version if previous else None,
                             new=number, ip=ip, detail=f"{title} (in force from {when.isoformat()} UTC)")
            return terms
        except IntegrityError:  # another publisher took the same number: take the next one
            continue
    raise TermsError("the version number is taken; try again", "body", "busy")


def versions(limit: int = 100) -> list[TermsVersion]:
    """Newest first, with their acceptance counters (no counting over the acceptances)."""
    return list(TermsVersion.select().order_by(TermsVersion.version.desc()).limit(limit))


def by_version(number) -> TermsVersion | None:
    try:
        number = int(number)
    except (TypeError, ValueError):
        return None
    return TermsVersion.get_or_none(TermsVersion.version == number)


# --- users agreeing -----------------------------------------------------------------------------

PENDING = IN_FORCE + (' AND NOT EXISTS (SELECT 1 FROM "terms_acceptance"'
                      ' WHERE "user_id" = ? AND "terms_id" = "terms_version"."id")')


def pending_for(user, now=None) -> TermsVersion | None:
    """The version in force if the user has not agreed to it yet (None: nothing to agree).

    One statement (every sign-in asks): the version in force, kept only if no acceptance of it by
    this user exists. Its answer is taken from ``ask_pending_ahead`` when the sign-in sent it."""
    return first_row(TermsVersion, PENDING, *_pending_params(user, now), ahead=("terms_pending", user.id))


def ask_pending_ahead(user, now=None) -> None:
    """Send ``pending_for``'s question now, to go with the next statement that waits
    (accounts.db.ask_ahead; the sign-in's POST, on PostgreSQL)."""
    ask_ahead(("terms_pending", user.id), TermsVersion, PENDING, *_pending_params(user, now))


def _pending_params(user, now) -> tuple:
    return TermsVersion.published_at.db_value(now or utcnow()), user.id


def accept(user, terms: TermsVersion, *, ip=None) -> None:
    with database.atomic():
        added = (TermsAcceptance.insert(user=user, terms=terms)
                 .on_conflict_ignore().as_rowcount().execute())
        if added:
            TermsVersion.update(accepted_count=TermsVersion.accepted_count + 1) \
                .where(TermsVersion.id == terms.id).execute()
        audit.record(user, "terms_accepted", target_user=user, new=str(terms.version), ip=ip)


def recount() -> None:
    """Set every counter from the acceptances (for repairs; the writers keep them right)."""
    counts = dict(TermsAcceptance.select(TermsAcceptance.terms, fn.COUNT(TermsAcceptance.id))
                  .group_by(TermsAcceptance.terms).tuples())
    for t in TermsVersion.select(TermsVersion.id):
        TermsVersion.update(accepted_count=counts.get(t.id, 0)).where(TermsVersion.id == t.id).execute()


# --- showing a text safely ----------------------------------------------------------------------

_HEADING = re.compile(r"^(#{1,3})\s+(.*)$")
_BULLET = re.compile(r"^\s*[-*・]\s+(.*)$")
_NUMBERED = re.compile(r"^\s*(\d{1,3})[.)]\s+(.*)$")
_BOLD = re.compile(r"\*\*(.+?)\*\*")


def _inline(text: str) -> str:
    """Escape, then the one inline form kept: **bold**."""
    return _BOLD.sub(r"<strong>\1</strong>", str(escape(text)))


def render(body: str) -> Markup:
    """The terms text as HTML: every character escaped, a small Markdown subset understood.

    Headings (``#``, ``##``, ``###``), bulleted (``-``, ``*``, ``・``) and numbered lists, paragraphs
    separated by a blank line (single line breaks kept), ``**bold**``. Anything else, HTML
    included, is shown as the text it is.
    """
    out: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []
    list_tag = ""

    def close_paragraph():
        if paragraph:
            out.append("<p>" + "<br>".join(_inline(line) for line in paragraph) + "</p>")
            paragraph.clear()

    def close_list():
        nonlocal list_tag
        if items:
            out.append(f"<{list_tag}>" + "".join(f"<li>{i}</li>" for i in items) + f"</{list_tag}>")
            items.clear()
        list_tag = ""

    for line in (body or "").replace("\r\n", "\n").split("\n"):
        heading, bullet, numbered = _HEADING.match(line), _BULLET.match(line), _NUMBERED.match(line)
        if not line.strip():
            close_paragraph()
            close_list()
        elif heading:
            close_paragraph()
            close_list()
            level = len(heading.group(1)) + 2  # the page has its own h1 and h2
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif bullet or numbered:
            close_paragraph()
            tag = "ul" if bullet else "ol"
            if list_tag and list_tag != tag:
                close_list()
            list_tag = tag
            items.append(_inline(bullet.group(1) if bullet else numbered.group(2)))
        else:
            close_list()
            paragraph.append(line)
    close_paragraph()
    close_list()
    return Markup("".join(out))


def command(path: str, *, title: str, at: str | None) -> int:
    """`flask publish-terms`: 0 published, 1 the file cannot be used, 2 wrong usage (title, time)."""
    import click

    from .clock import format_jst

    try:
        when = parse_at(at)
        title = check_title(title)
    except TermsError as exc:
        click.echo(f"usage: --{'at' if exc.field == 'at' else 'title'}: {exc}", err=True)
        return 2
    try:
        body = read_file(path)
    except TermsError as exc:
        click.echo(f"refused: {exc}", err=True)
        return 1
    try:
        published = publish(title, body, at=when, actor="cli")
    except TermsError as exc:
        click.echo(f"usage: --{exc.field}: {exc}" if exc.field == "at" else f"refused: {exc}", err=True)
        return 2 if exc.field == "at" else 1
    state = "in force now" if published.published_at <= utcnow() else "scheduled"
    click.echo(f"published terms version {published.version} '{published.title}', in force from "
               f"{format_jst(published.published_at)} ({state}); users agree to it at their next "
               "sign-in")
    return 0
