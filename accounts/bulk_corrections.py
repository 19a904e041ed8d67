"""Bulk corrections by CSV (SPEC 14): a file of corrections checked against the console's rules,
kept in the database as a preview, then applied row by row with the console's own function.

- ``read_file`` decides the encoding as the legacy import does (accounts.legacy_import: BOM -> UTF-8,
  else strict UTF-8, else CP932) and refuses a whole file that cannot be used, with one reason
  (``FileRefused``): nothing is written then.
- ``preview`` finds each row's user in the principal's scope (a user outside it is "not found",
  like a missing one), checks every given cell with ``accounts.console.validate`` and stores the
  rows with the user's values and version as seen, the cells' errors and what would change.
- ``apply`` takes the rows that would change, in file order, each in its own transaction through
  ``accounts.console.update_fields`` (the click-to-edit's rules, mails and audit entries) with
  the version seen at preview, so a user changed since then is refused as stale. A row's result
  is written in the transaction of its change, so an apply cut short (a time budget, a killed
  worker) resumes where it stopped, and concurrent applies never apply a row twice.

Memory grows with the file (at most MAX_BYTES and MAX_ROWS), never with the user table: users are
looked up by the file's login IDs, in chunks.

Why one module of ~500 lines: reading, previewing and applying share one stored row format and
its states (change / unchanged / error, then applied / stale / refused); split apart, each part
would have to know the others' columns. The field rules are not here: they are the console's
(``accounts.console.validate``, hence accounts.fields and accounts.phones).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from peewee import fn

from . import audit, console, scope
from .clock import utcnow
from .db import database
from .legacy_import import UnreadableFile, detect_encoding
from .models import PORTALS, BulkRow, BulkUpload, User

MAX_BYTES = 10 * 1024 * 1024
MAX_ROWS = 50_000

LOGIN_ID = "login_id"
PORTAL = "portal"
# Correction columns and the console field each one corrects (accounts.console.EDITABLE).
FIELD_OF = {"new_email": "email", "new_login_id": "login_id", "name": "name", "phone": "phone"}
COLUMN_OF = {field: column for column, field in FIELD_OF.items()}
COLUMNS = (LOGIN_ID, PORTAL, *FIELD_OF)
TEMPLATE_COLUMNS = (LOGIN_ID, "new_email", "new_login_id", "name", "phone", PORTAL)
ROW = "_row"  # errors of the row as a whole (more fields than the header)
KEPT_CHARACTERS = 1000  # longer cells are errors anyway (every field allows 255 at most)

# A row's status at preview.
CHANGE, UNCHANGED, ERROR = "change", "unchanged", "error"
# A row's result at apply.
APPLIED, STALE, REFUSED, GONE = "applied", "stale", "refused", "not_found"
# An upload's state.
PREVIEWED, APPLYING, DONE = "previewed", "applying", "applied"

SHOW = ("all", CHANGE, UNCHANGED, ERROR, "not_applied")
PAGE_SIZE = 50


class FileRefused(Exception):
    """The file cannot be used at all (``code``, with ``args`` for the message); nothing is written.

    Codes: not_csv, empty, no_rows, too_large, too_many_rows, no_login_id, unknown_columns,
    duplicate_column, nothing_to_correct.
    """

    def __init__(self, code: str, **args):
        super().__init__(code)
        self.code = code
        self.args_ = args


class NotFound(Exception):
    """No such upload for this principal (someone else's answers the same): 404."""


# --------------------------------------------------------------------------------------------
# Reading the file
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(slots=True)
class FileRow:
    line: int
    cells: dict[str, str]
    width: int  # fields in the record


@dataclasses.dataclass
class ParsedFile:
    encoding: str
    columns: list[str]
    rows: list[FileRow]


def read_file(path: str | Path) -> ParsedFile:
    """The file's header and rows (lines numbered as in SPEC 4: the header is line 1), or
    FileRefused. Blank records are skipped, as in the import."""
    path = Path(path)
    size = os.path.getsize(path)
    if size > MAX_BYTES:
        raise FileRefused("too_large", limit_mb=MAX_BYTES // (1024 * 1024))
    if size == 0:
        raise FileRefused("empty")
    try:
        encoding = detect_encoding(path)
    except UnreadableFile:
        raise FileRefused("not_csv") from None
    with path.open("r", encoding=encoding, newline="") as fh:
        text = fh.read()
    if "\x00" in text:  # a binary file (a spreadsheet, an archive) that happened to decode
        raise FileRefused("not_csv")
    reader = csv.reader(text.splitlines(keepends=True), strict=True)
    header = None
    rows: list[FileRow] = []
    previous_end = 0
    try:
        for record in reader:
            start, previous_end = previous_end + 1, reader.line_num
            if not record or record == [""] or not any(cell.strip() for cell in record):
                continue
            if header is None:
                header = _header(record)
                continue
            if len(rows) == MAX_ROWS:
                raise FileRefused("too_many_rows", limit=MAX_ROWS)
            cells = {name: record[i] for i, name in enumerate(header) if i < len(record)}
            rows.append(FileRow(start, cells, len(record)))
    except csv.Error:
        raise FileRefused("not_csv") from None
    if header is None:
        raise FileRefused("empty")
    if not rows:
        raise FileRefused("no_rows")
    return ParsedFile(encoding, header, rows)


def _header(record: list[str]) -> list[str]:
    names = [cell.strip().lower() for cell in record]
    if LOGIN_ID not in names:
        raise FileRefused("no_login_id", column=LOGIN_ID)
    unknown = [name for name in names if name not in COLUMNS]
    if unknown:
        raise FileRefused("unknown_columns", columns=", ".join(n or '""' for n in unknown),
                          allowed=", ".join(COLUMNS))
    twice = [name for i, name in enumerate(names) if name in names[:i]]
    if twice:
        raise FileRefused("duplicate_column", column=twice[0])
    if not any(name in FIELD_OF for name in names):
        raise FileRefused("nothing_to_correct", columns=", ".join(FIELD_OF))
    return names


# --------------------------------------------------------------------------------------------
# Preview
# --------------------------------------------------------------------------------------------

def owner_of(principal) -> tuple[str, int]:
    fields = audit.actor_fields(principal)
    return fields["actor_kind"], fields["actor_id"]


def _given(value: str | None) -> str | None:
    """A cell's value, or None when blank (the value stays as it is)."""
    if value is None or not value.strip():
        return None
    return value[:KEPT_CHARACTERS] if len(value) > KEPT_CHARACTERS else value


def _users_by_login_id(principal, keys: list[str]) -> dict[str, dict[str, User]]:
    """login ID key -> portal -> user, for users in the principal's scope only."""
    found: dict[str, dict[str, User]] = {}
    condition = scope.user_condition(principal)
    for i in range(0, len(keys), 500):
        chunk = keys[i:i + 500]
        query = (User.select(User.id, User.portal, User.contract, User.login_id, User.login_id_key,
                             User.email, User.name, User.phone, User.version)
                 .where(User.portal.in_(PORTALS) & User.login_id_key.in_(chunk) & condition))
        for user in query:
            found.setdefault(user.login_id_key, {})[user.portal] = user
    return found


def check_rows(principal, parsed: ParsedFile) -> list[dict]:
    """Each row as a ``BulkRow`` dict: the user found, the cells' errors, what would change."""
    header_width = len(parsed.columns)
    keys = {(row.cells.get(LOGIN_ID) or "").strip().lower() for row in parsed.rows}
    keys |= {(row.cells.get("new_login_id") or "").strip().lower() for row in parsed.rows}
    users = _users_by_login_id(principal, sorted(keys - {""}))
    first_line: dict[tuple, int] = {}       # the user (or login ID) a row is about -> its line
    claimed: dict[tuple[str, str], int] = {}  # (portal, new login ID key) -> line claiming it
    out = []
    for row in parsed.rows:
        cells = row.cells
        errors: dict[str, list] = {}
        login_id = (cells.get(LOGIN_ID) or "").strip()
        key = login_id.lower()
        portal = (cells.get(PORTAL) or "").strip().lower()
        values = {column: _given(cells.get(column)) for column in FIELD_OF}
        if row.width > header_width:
            errors[ROW] = ["too_many_fields", row.width, header_width]
        user = None
        if portal and portal not in PORTALS:
            errors[PORTAL] = ["portal_format"]
        if not login_id:
            errors[LOGIN_ID] = ["required"]
        else:
            candidates = users.get(key, {})
            if portal in PORTALS:
                user = candidates.get(portal)
            elif not portal and len(candidates) == 1:
                user = next(iter(candidates.values()))
            elif not portal and len(candidates) > 1:
                errors[PORTAL] = ["portal_ambiguous"]
            if user is None and not errors:
                user = _already_applied(users.get(_new_key(values), {}), portal, values)
            target = ("user", user.id) if user else ("login_id", key, portal)
            if target in first_line:
                errors[LOGIN_ID] = ["duplicate", first_line[target]]
                user = None  # the first row counts; this one is not checked further
            else:
                first_line[target] = row.line
                if user is None and PORTAL not in errors:
                    errors[LOGIN_ID] = ["not_found"]
        changes = []
        if user is not None:
            for column, value in values.items():
                if value is None:
                    continue
                field = FIELD_OF[column]
                code = console.validate(user, field, value)
                if code:
                    errors[column] = [code]
                    continue
                new = console.clean(field, value)
                if field == "login_id" and new.lower() != user.login_id_key:
                    taken_by = claimed.setdefault((user.portal, new.lower()), row.line)
                    if taken_by != row.line:
                        errors[column] = ["duplicate_new_login_id", taken_by]
                        continue
                if new != getattr(user, field):
                    changes.append(field)
        status = ERROR if errors else (CHANGE if changes else UNCHANGED)
        out.append({
            "line": row.line,
            "login_id": _given(cells.get(LOGIN_ID)) or "",
            "portal": (cells.get(PORTAL) or "")[:KEPT_CHARACTERS],
            **values,
            "user": user.id if user else None,
            "user_version": user.version if user else None,
            "user_portal": user.portal if user else None,
            "current_email": user.email if user else None,
            "current_login_id": user.login_id if user else None,
            "current_name": user.name if user else None,
            "current_phone": user.phone if user else None,
            "status": status,
            "changes": ",".join(changes) if status == CHANGE else "",
            "errors": json.dumps(errors, ensure_ascii=False) if errors else None,
        })
    return out


def _new_key(values: dict) -> str:
    return console.clean("login_id", values["new_login_id"] or "").lower()


def _already_applied(candidates: dict[str, User], portal: str, values: dict) -> User | None:
    """The user a row renamed, when the file is uploaded again after it was applied: found by
    the row's new login ID, and only when every value of the row is already the user's (so the
    row changes nothing; a row that would change something must name the user by its login ID)."""
    if not values["new_login_id"]:
        return None
    if portal in PORTALS:
        user = candidates.get(portal)
    else:
        user = next(iter(candidates.values())) if len(candidates) == 1 and not portal else None
    if user is None:
        return None
    for column, value in values.items():
        if value is not None and console.clean(FIELD_OF[column], value) != getattr(user, FIELD_OF[column]):
            return None
    return user


def preview(principal, path: str | Path, file_name: str) -> BulkUpload:
    """Read and check the file, and keep it with its rows for the preview; nothing else changes.

    Raises FileRefused (nothing written) or NotFound (the principal may not correct users).
    """
    if not scope.may(principal, scope.EDIT):
        raise NotFound()
    parsed = read_file(path)
    rows = check_rows(principal, parsed)
    counts = {CHANGE: 0, UNCHANGED: 0, ERROR: 0}
    for row in rows:
        counts[row["status"]] += 1
    kind, owner_id = owner_of(principal)
    with database.atomic():
        upload = BulkUpload.create(
            owner_kind=kind, owner_id=owner_id, file_name=_file_name(file_name),
            encoding=parsed.encoding, columns=",".join(parsed.columns)[:255], rows_total=len(rows),
            rows_change=counts[CHANGE], rows_unchanged=counts[UNCHANGED], rows_error=counts[ERROR])
        _insert_rows(upload.id, rows)
    return upload


def _insert_rows(upload_id: int, rows: list[dict]) -> None:
    """The rows in one ``executemany`` below the ORM: peewee's insert_many spends seconds
    building the statement for 10,000 rows, the driver a fraction of one."""
    if not rows:
        return
    names = ["upload", *rows[0]]
    columns = ", ".join(f'"{BulkRow._meta.fields[n].column_name}"' for n in names)
    params = ", ".join([database.param] * len(names))
    cursor = database.cursor()
    cursor.executemany(f'INSERT INTO "{BulkRow._meta.table_name}" ({columns}) VALUES ({params})',
                       [(upload_id, *row.values()) for row in rows])


def _file_name(name: str) -> str:
    """The uploaded file's base name, as shown on the page (no directories, no control characters)."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable())
    return name[:255] or "upload.csv"


# --------------------------------------------------------------------------------------------
# Reading an upload back (owner only)
# --------------------------------------------------------------------------------------------

def get_upload(principal, upload_id) -> BulkUpload:
    """The principal's own upload; NotFound for a missing one and for anyone else's."""
    if not scope.may(principal, scope.EDIT):
        raise NotFound()
    try:
        upload_id = int(upload_id)
    except (TypeError, ValueError):
        raise NotFound() from None
    kind, owner_id = owner_of(principal)
    upload = BulkUpload.get_or_none((BulkUpload.id == upload_id) & (BulkUpload.owner_kind == kind)
                                    & (BulkUpload.owner_id == owner_id))
    if upload is None:
        raise NotFound()
    return upload


def recent_uploads(principal, limit: int = 20) -> list[BulkUpload]:
    kind, owner_id = owner_of(principal)
    return list(BulkUpload.select()
                .where((BulkUpload.owner_kind == kind) & (BulkUpload.owner_id == owner_id))
                .order_by(BulkUpload.id.desc()).limit(limit))


def _shown(upload: BulkUpload, show: str):
    condition = BulkRow.upload == upload.id
    if show in (CHANGE, UNCHANGED, ERROR):
        condition &= BulkRow.status == show
    elif show == "not_applied":
        condition &= BulkRow.result.in_([STALE, REFUSED, GONE])
    return condition


@dataclasses.dataclass
class Page:
    rows: list[BulkRow]
    next_after: int | None
    prev_before: int | None


def rows_page(upload: BulkUpload, show: str = "all", after: int | None = None,
              before: int | None = None, size: int = PAGE_SIZE) -> Page:
    """One page of rows in line order, keyset-paged by line (``after`` / ``before``)."""
    query = BulkRow.select().where(_shown(upload, show))
    if before is not None:
        rows = list(query.where(BulkRow.line < before).order_by(BulkRow.line.desc()).limit(size + 1))
        more_before = len(rows) > size
        rows = rows[:size][::-1]
        return Page(rows, rows[-1].line if rows else None,
                    rows[0].line if rows and more_before else None)
    if after is not None:
        query = query.where(BulkRow.line > after)
    rows = list(query.order_by(BulkRow.line).limit(size + 1))
    more_after = len(rows) > size
    rows = rows[:size]
    return Page(rows, rows[-1].line if rows and more_after else None,
                rows[0].line if rows and after is not None else None)


def all_rows(upload: BulkUpload) -> Iterator[BulkRow]:
    """Every row in line order, streamed (for the CSV report)."""
    return BulkRow.select().where(BulkRow.upload == upload.id).order_by(BulkRow.line).iterator()


def errors_of(row: BulkRow) -> dict[str, list]:
    return json.loads(row.errors) if row.errors else {}


# --------------------------------------------------------------------------------------------
# Apply
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Progress:
    done: bool
    rows_done: int   # rows that would change and have a result now
    rows_total: int  # rows that would change


def progress(upload: BulkUpload) -> Progress:
    done = upload.rows_applied + upload.rows_stale + upload.rows_refused
    return Progress(upload.state == DONE, done, upload.rows_change)


def apply(principal, upload_id, *, ip=None, budget_seconds: float | None = None) -> Progress:
    """Apply the rows that would change and have no result yet, in file order, each in its own
    transaction; stop after ``budget_seconds`` (None: apply everything) and say how far it got.

    Applying an upload again, or the same file uploaded again, changes nothing: a row applied
    has its result, and a new preview finds the values unchanged.
    """
    upload = get_upload(principal, upload_id)
    deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
    if upload.state == PREVIEWED:
        (BulkUpload.update(state=APPLYING, apply_started_at=utcnow())
         .where((BulkUpload.id == upload.id) & (BulkUpload.state == PREVIEWED)).execute())
    after = 0  # keyset: each batch starts after the last row tried
    while True:
        batch = list(_pending(upload).where(BulkRow.line > after).order_by(BulkRow.line).limit(200))
        for row in batch:
            _apply_row(principal, upload, row, ip)
            after = row.line
            if deadline is not None and time.monotonic() >= deadline:
                break
        if not batch or not _pending(upload).exists():
            _recount(upload)
            (BulkUpload.update(state=DONE, applied_at=utcnow())
             .where((BulkUpload.id == upload.id) & (BulkUpload.state != DONE)).execute())
            break
        if deadline is not None and time.monotonic() >= deadline:
            _recount(upload)
            break
    return progress(BulkUpload.get_by_id(upload.id))


def _pending(upload: BulkUpload):
    """Rows that would change and have no result yet."""
    return BulkRow.select().where((BulkRow.upload == upload.id) & (BulkRow.status == CHANGE)
                                  & BulkRow.result.is_null())


class _AlreadyDone(Exception):
    """Another apply of the same upload gave this row its result first: roll this one back."""


def _apply_row(principal, upload: BulkUpload, row: BulkRow, ip) -> str | None:
    """One row in one transaction: the correction, its audit entries and mails, and the row's
    result commit together (or not at all). The result is written only where there is none yet;
    where a concurrent apply of the same upload was first, the whole row rolls back (its user
    update could not have happened anyway: the version it needs was used by the other one)."""
    values = {FIELD_OF[column]: getattr(row, column) for column in FIELD_OF
              if getattr(row, column) is not None}
    try:
        with database.atomic():
            detail = None
            try:  # update_fields writes in a savepoint of its own: a refusal leaves nothing behind
                console.update_fields(principal, row.user_id, values, row.user_version, ip=ip,
                                      detail=f"bulk correction {upload.id}, line {row.line}")
                result = APPLIED
            except console.NotFound:
                result = GONE
            except console.Conflict:
                result = STALE
            except console.Invalid as exc:
                result, detail = REFUSED, f"{exc.field}:{exc.code}"
            written = (BulkRow.update(result=result, result_detail=detail, applied_at=utcnow())
                       .where((BulkRow.id == row.id) & BulkRow.result.is_null()).execute())
            if not written:
                raise _AlreadyDone()
    except _AlreadyDone:
        return None
    return result


def _recount(upload: BulkUpload) -> None:
    """The upload's apply counts, from its rows (so that a step cut short cannot skew them)."""
    counts = dict(BulkRow.select(BulkRow.result, fn.COUNT(BulkRow.id))
                  .where((BulkRow.upload == upload.id) & BulkRow.result.is_null(False))
                  .group_by(BulkRow.result).tuples())
    (BulkUpload.update(rows_applied=counts.get(APPLIED, 0), rows_stale=counts.get(STALE, 0),
                       rows_refused=counts.get(REFUSED, 0) + counts.get(GONE, 0))
     .where(BulkUpload.id == upload.id).execute())
