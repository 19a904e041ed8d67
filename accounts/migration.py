"""The legacy import (SPEC 4): the guide's row rules as pure functions, a streaming CSV reader and a
batched bulk writer below the ORM, fast enough for a million rows in under a minute (SPEC 9).

How a run goes:

1. The file's encoding is decided (BOM -> UTF-8, else strict UTF-8, else CP932) by decoding it
   once; a file that is neither stops the run before anything is written.
2. A first streaming pass checks the header and collects the contracts (ECID -> parent, name),
   so that a child row may come before its parent's first row. Memory: one entry per contract.
3. Contracts are created or matched by ECID in their own transaction (idempotent).
4. A second streaming pass validates each row and writes the users in batches. Each batch is ONE
   transaction holding the users, their legacy records and the contract counters, so a kill leaves
   whole batches only and a re-run resumes: rows already migrated are reported ``skipped``.

The file's rows are never held in memory. Login-ID conflicts and "already migrated" pairs are
looked up per batch in the database (small files: the unique indexes answer, memory stays flat)
or, for big files, in sets loaded from the database and kept current (memory grows with the number
of users, ~290 bytes each). A bulk load of many new rows suspends the B-tree and search indexes and
rebuilds them once at the end (SPEC 9); a run killed meanwhile is repaired by the next run.
"""
from __future__ import annotations

import codecs
import collections
import contextlib
import csv
import dataclasses
import re
import sys
import time
from collections.abc import Callable, Container, Iterator, Mapping
from pathlib import Path

import click

from .clock import utcnow
from .db import database, is_postgres
from .models import BUSINESS, ORIGIN_LEGACY, SDPF
from .phones import normalise_phone_digits

# --------------------------------------------------------------------------------------------
# The row rules (pure functions: no database, no I/O)
# --------------------------------------------------------------------------------------------

REQUIRED_COLUMNS = ("login_id", "email", "name", "phone", "contract_ecid", "parent_ecid",
                    "contract_name", "is_admin")
OPTIONAL_COLUMNS = ("password_hash",)
REPORT_COLUMNS = ("line", "status", "legacy_login_id", "login_id", "legacy_phone", "phone", "reason")

MIGRATED = "migrated"
SKIPPED = "skipped"
REJECTED = "rejected"

DEFAULT_PHONE = "0312345678"  # the guide's initial value when no 4-32 digits remain
MAX_TEXT = 255      # login ID, name, contract name (column sizes)
MAX_EMAIL = 254     # RFC 5321 path limit
MAX_PHONE = 64      # column size of phone / legacy_phone

_ECID = re.compile(r"ecid[0-9]{10}")
_PHONE_OK = re.compile(r"[0-9]{4,32}")
_ADMIN_VALUES = {"": False, "0": False, "false": False, "no": False,
                 "1": True, "true": True, "yes": True}
_HASH_PREFIXES = ("$argon2id$", "$argon2i$", "$argon2d$", "$2a$", "$2b$", "$2y$", "pbkdf2:", "scrypt:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_BLANK_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")
# One @, a non-empty local part, a domain with a dot and no empty label, no blank or control.
_EMAIL = re.compile(r"[^\s@\x00-\x1f\x7f-\x9f]+@(?:[^\s@.\x00-\x1f\x7f-\x9f]+\.)+[^\s@.\x00-\x1f\x7f-\x9f]+")


class RowError(Exception):
    """A row breaks a rule: the report's reason names the field."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclasses.dataclass(slots=True)
class LegacyRow:
    """One valid input row, fields exactly as given except the ECIDs (lower case)."""

    login_id: str
    email: str
    name: str
    phone: str
    contract_ecid: str
    parent_ecid: str | None
    contract_name: str
    is_admin: bool
    password_hash: str | None
    # What identifies a legacy user: its login ID (any case) together with its contract.
    pair: tuple[str, str] = ("", "")

    def __post_init__(self):
        self.pair = (self.login_id.lower(), self.contract_ecid)

    @property
    def portal(self) -> str:
        """Portal follows the contract kind: parent -> Business Portal, child -> SDPF Portal."""
        return BUSINESS if self.parent_ecid is None else SDPF


def normalize_ecid(value: str, field: str = "contract_ecid") -> str:
    """`ecid` + 10 ASCII digits, any case, stored in lower case; surrounding blanks are ignored."""
    ecid = value.strip(" \t").lower()
    if not ecid:
        raise RowError(field, "missing")
    if not _ECID.fullmatch(ecid):
        raise RowError(field, f"not an ECID (ecid + 10 digits): {value!r}")
    return ecid


def parse_is_admin(value: str) -> bool:
    """1/0, true/false, yes/no in any case; empty means not an admin."""
    flag = _ADMIN_VALUES.get(value)
    if flag is None:
        flag = _ADMIN_VALUES.get(value.strip().lower())
        if flag is None:
            raise RowError("is_admin", f"expected 1/0, true/false or yes/no, got {value!r}")
    return flag


def is_valid_email(value: str) -> bool:
    """A pragmatic syntax check: one @, non-empty local part, a dotted domain, no blanks.

    Deliberately not RFC 5322: legacy data holds addresses that real mail servers accept, and the
    first-login mail is the true test. Case is kept: the address is stored exactly as given.
    """
    return len(value) <= MAX_EMAIL and _EMAIL.fullmatch(value) is not None


phone_digits = normalise_phone_digits  # one rule, shared with the identity check


def apply_phone_rule(phone: str) -> str:
    """The guide's phone rule for Business Portal users.

    4-32 digits: unchanged. Otherwise keep only the digits; if that is not 4-32 digits (empty
    included), the initial value 0312345678.
    """
    if _PHONE_OK.fullmatch(phone):
        return phone
    digits = phone_digits(phone)
    return digits if 4 <= len(digits) <= 32 else DEFAULT_PHONE


def phone_for(portal: str, phone: str) -> str:
    """The phone the new user gets: the rule for Business Portal users, SDPF phones as given."""
    return apply_phone_rule(phone) if portal == BUSINESS else phone


def assign_login_id(login_id: str, ecid: str, taken: Container[str]) -> str:
    """The guide's login-ID rule: unchanged unless taken in the target portal, then `<ID>_<ECID>`.

    ``taken`` holds the lower-case login IDs that exist in the target portal (native users, earlier
    runs, earlier rows of this file); comparison ignores case for the plain and the suffixed ID.
    Raises RowError when the suffixed ID is taken too: the row is not migrated.
    """
    if login_id.lower() not in taken:
        return login_id
    suffixed = f"{login_id}_{ecid}"
    if suffixed.lower() in taken:
        raise RowError("login_id", f"{login_id!r} and {suffixed!r} both exist in the target portal")
    if len(suffixed) > MAX_TEXT:
        raise RowError("login_id", f"{login_id!r} exists in the target portal and {suffixed!r} "
                                   f"would be longer than {MAX_TEXT} characters")
    return suffixed


def _ecid_field(value: str, field: str) -> str:
    return value if _ECID.fullmatch(value) else normalize_ecid(value, field)


def _check_length(column: str, value: str, max_len: int = MAX_TEXT) -> None:
    if len(value) > max_len:
        raise RowError(column, f"longer than {max_len} characters")


def parse_row(fields: Mapping[str, str]) -> LegacyRow:
    """Validate one input row (column -> value); raise RowError naming the first bad field.

    Values are kept exactly as given (no trimming): the guide says e-mail and name stay
    unchanged byte for byte, full-width spaces included. Written for speed (a million rows).
    """
    get = fields.get
    login_id, email, name, phone = get("login_id"), get("email"), get("name"), get("phone")
    contract_ecid, parent, contract_name, admin = (get("contract_ecid"), get("parent_ecid"),
                                                   get("contract_name"), get("is_admin"))
    if None in (login_id, email, name, phone, contract_ecid, parent, contract_name, admin):
        missing = next(c for c in REQUIRED_COLUMNS if get(c) is None)
        raise RowError(missing, "missing (the row has fewer fields than the header)")
    if not login_id:
        raise RowError("login_id", "missing")
    _check_length("login_id", login_id)
    if _BLANK_OR_CONTROL.search(login_id):
        raise RowError("login_id", f"contains a space or a control character: {login_id!r}")
    if not email:
        raise RowError("email", "missing")
    if not is_valid_email(email):
        raise RowError("email", f"not an e-mail address: {email!r}")
    # Interned: a few thousand contracts are shared by a million rows (and the in-memory pairs).
    contract_ecid = sys.intern(_ecid_field(contract_ecid, "contract_ecid"))
    parent_ecid = sys.intern(_ecid_field(parent, "parent_ecid")) if parent and parent.strip(" \t") else None
    if parent_ecid == contract_ecid:
        raise RowError("parent_ecid", "a contract cannot be its own parent")
    # Business Portal users prove who they are with their name; SDPF users do not (guide).
    if not name and parent_ecid is None:
        raise RowError("name", "missing (Business Portal users need a name)")
    _check_length("name", name)
    if _CONTROL.search(name):
        raise RowError("name", "contains a line break or a control character")
    _check_length("phone", phone, MAX_PHONE)
    if not contract_name:
        raise RowError("contract_name", "missing")
    _check_length("contract_name", contract_name)
    is_admin = parse_is_admin(admin)
    password_hash = get("password_hash") or None
    if password_hash is not None and not password_hash.startswith(_HASH_PREFIXES):
        raise RowError("password_hash", "not an argon2, bcrypt or Werkzeug password hash")
    return LegacyRow(login_id, email, name, phone, contract_ecid, parent_ecid, contract_name,
                     is_admin, password_hash)


# --------------------------------------------------------------------------------------------
# Reading the file
# --------------------------------------------------------------------------------------------

class UnreadableFile(Exception):
    """The file cannot be imported at all: nothing is written (exit status 1)."""


def detect_encoding(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """BOM -> utf-8-sig; else strict UTF-8 if the whole file decodes; else CP932; else refuse."""
    path = Path(path)
    with path.open("rb") as fh:
        head = fh.read(4)
    if head.startswith(codecs.BOM_UTF8):
        candidates = ("utf-8-sig",)
    elif head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)) or head.startswith(
            (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise UnreadableFile(f"{path}: UTF-16/UTF-32 files are not supported; "
                             "save the export as UTF-8 or CP932 (Shift_JIS)")
    else:
        candidates = ("utf-8", "cp932")
    failures = []
    for encoding in candidates:
        bad = _first_undecodable(path, encoding, chunk_size)
        if bad is None:
            return encoding
        failures.append(f"{encoding}: byte 0x{bad[1]:02x} on line {bad[0]}")
    names = " nor ".join(c.upper().replace("-SIG", " with BOM") for c in candidates)
    raise UnreadableFile(f"{path}: not {names} ({'; '.join(failures)}); nothing was imported")


def _first_undecodable(path: Path, encoding: str, chunk_size: int):
    """(line, byte) of the first byte that does not decode, or None when the whole file decodes."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    lines_before = 0
    with path.open("rb") as fh:
        while True:
            chunk = fh.read(chunk_size)
            try:
                decoder.decode(chunk, not chunk)
            except UnicodeDecodeError as exc:
                held = len(exc.object) - len(chunk)  # bytes kept back from the previous chunk
                pos = max(exc.start - held, 0)
                return lines_before + chunk[:pos].count(b"\n") + 1, exc.object[exc.start]
            if not chunk:
                return None
            lines_before += chunk.count(b"\n")


@dataclasses.dataclass
class Source:
    """An opened export: its encoding and the column positions of its header."""

    path: Path
    encoding: str
    columns: dict[str, int]
    header_line: int
    header_width: int

    def raw_records(self) -> Iterator[tuple[int, list[str]]]:
        """(line where the record starts, fields) for every non-empty record after the header."""
        with self.path.open("r", encoding=self.encoding, newline="") as fh:
            reader = csv.reader(fh)
            previous_end = 0
            try:
                for record in reader:
                    start, previous_end = previous_end + 1, reader.line_num
                    if start > self.header_line and record and record != [""]:
                        yield start, record
            except csv.Error as exc:
                raise UnreadableFile(f"{self.path}:{previous_end + 1}: not valid CSV: {exc}") from None
            except UnicodeDecodeError as exc:  # the file changed since its encoding was checked
                raise UnreadableFile(f"{self.path}: does not decode as {self.encoding}: {exc}") from None

    def records(self) -> Iterator[tuple[int, dict[str, str] | str]]:
        """(line, column -> value); a record with more fields than the header yields an error text."""
        names = list(self.columns.items())
        width = max(self.columns.values()) + 1
        for start, record in self.raw_records():
            n = len(record)
            if n > self.header_width:
                yield start, f"the row has {n} fields, the header {self.header_width}"
            elif n >= width:
                yield start, {name: record[i] for name, i in names}
            else:
                yield start, {name: record[i] for name, i in names if i < n}


def open_source(path: str | Path) -> Source:
    """Check that the file is readable CSV with every required column; raise UnreadableFile."""
    path = Path(path)
    if not path.is_file():
        raise UnreadableFile(f"{path}: no such file")
    try:
        encoding = detect_encoding(path)
        with path.open("r", encoding=encoding, newline="") as fh:
            reader = csv.reader(fh)
            header = None
            for record in reader:
                if record and record != [""]:
                    header = record
                    break
            header_line = reader.line_num
    except OSError as exc:
        raise UnreadableFile(f"{path}: cannot be read: {exc.strerror}") from None
    except csv.Error as exc:
        raise UnreadableFile(f"{path}: not valid CSV: {exc}") from None
    if header is None:
        raise UnreadableFile(f"{path}: the file is empty (no header row)")
    columns: dict[str, int] = {}
    for i, raw in enumerate(header):
        name = raw.strip().lower()
        if name in columns and name in REQUIRED_COLUMNS + OPTIONAL_COLUMNS:
            raise UnreadableFile(f"{path}: line {header_line}: column {name!r} appears twice")
        columns.setdefault(name, i)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise UnreadableFile(f"{path}: line {header_line}: missing column(s): {', '.join(missing)} "
                             f"(the header must name {', '.join(REQUIRED_COLUMNS)})")
    wanted = {c: columns[c] for c in REQUIRED_COLUMNS + OPTIONAL_COLUMNS if c in columns}
    return Source(path, encoding, wanted, header_line, len(header))


# --------------------------------------------------------------------------------------------
# Contracts: collected from the whole file, then created or matched by ECID
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(slots=True)
class FileContract:
    parent_ecid: str | None
    name: str
    line: int


@dataclasses.dataclass(slots=True)
class ResolvedContract:
    id: int | None
    parent_ecid: str | None
    error: str | None = None  # set: every row of this contract is rejected with it


def collect_contracts(source: Source, known_pairs: Container | None = None
                      ) -> tuple[dict[str, FileContract], int, int]:
    """First pass: ECID -> (parent, name, first line) from the first row naming it; row counts.

    Only rows whose contract fields are valid count; their other fields are checked later.
    Returns the contracts, the number of rows, and how many of them name a legacy user not in
    ``known_pairs`` (all rows when it is None): what decides whether to bulk-load.
    """
    contracts: dict[str, FileContract] = {}
    rows = new = 0
    ci, pi, ni, li = (source.columns[c]
                      for c in ("contract_ecid", "parent_ecid", "contract_name", "login_id"))
    width = max(ci, pi, ni, li) + 1
    for line, record in source.raw_records():
        rows += 1
        if len(record) < width or len(record) > source.header_width:
            continue
        try:
            ecid = _ecid_field(record[ci], "contract_ecid")
            if known_pairs is None or (record[li].lower(), ecid) not in known_pairs:
                new += 1
            if ecid in contracts:
                continue
            parent_raw, name = record[pi], record[ni]
            parent = _ecid_field(parent_raw, "parent_ecid") if parent_raw.strip(" \t") else None
        except RowError:
            continue
        if name and len(name) <= MAX_TEXT and parent != ecid:
            contracts[ecid] = FileContract(parent, name, line)
    return contracts, rows, new


def resolve_contracts(found: dict[str, FileContract], existing: Mapping[str, tuple[int, str | None]]
                      ) -> tuple[dict[str, ResolvedContract], list[tuple[str, FileContract]]]:
    """Decide each contract of the file against the database (pure).

    ``existing``: ECID -> (id, parent ECID) for the contracts of the file (and their parents) that
    the database holds. Returns the resolution per ECID and the contracts to create, parents first.
    A contract the database holds keeps its parent: rows that name another parent are rejected
    row by row. A new child needs a parent contract from the file or the database.
    """
    resolved: dict[str, ResolvedContract] = {}
    to_create: list[tuple[str, FileContract]] = []
    for ecid in found:
        if ecid in existing:
            cid, parent = existing[ecid]
            resolved[ecid] = ResolvedContract(cid, parent)
    for ecid, info in found.items():  # new parents
        if ecid not in resolved and info.parent_ecid is None:
            resolved[ecid] = ResolvedContract(None, None)
            to_create.append((ecid, info))
    for ecid, info in found.items():  # new children
        if ecid in resolved:
            continue
        parent = info.parent_ecid
        parent_state = resolved.get(parent)
        if parent_state is None and parent in existing:
            parent_state = ResolvedContract(existing[parent][0], existing[parent][1])
        if parent_state is None:
            error = f"parent contract {parent} is neither in the file nor in the database"
        elif parent_state.parent_ecid is not None:
            error = f"{parent} is itself a child contract (of {parent_state.parent_ecid})"
        elif parent_state.error:
            error = f"parent contract {parent} cannot be created: {parent_state.error}"
        else:
            error = None
        resolved[ecid] = ResolvedContract(None, parent, error)
        if error is None:
            to_create.append((ecid, info))
    return resolved, to_create


def _existing_contracts(ecids: list[str]) -> dict[str, tuple[int, str | None]]:
    found: dict[str, tuple[int, str | None]] = {}
    p = _param()
    for i in range(0, len(ecids), 500):
        chunk = ecids[i:i + 500]
        sql = ('SELECT c.id, c.ecid, p.ecid FROM contract c LEFT JOIN contract p ON p.id = c.parent_id '
               f'WHERE c.ecid IN ({", ".join([p] * len(chunk))})')
        for cid, ecid, parent in database.execute_sql(sql, chunk).fetchall():
            found[ecid] = (cid, parent)
    return found


def apply_contracts(found: dict[str, FileContract]) -> tuple[dict[str, ResolvedContract], int]:
    """Create the new contracts (one transaction, parents first) and return ECID -> resolution."""
    ecids = sorted(set(found) | {c.parent_ecid for c in found.values() if c.parent_ecid})
    existing = _existing_contracts(ecids)
    resolved, to_create = resolve_contracts(found, existing)
    if to_create:
        now = _db_time(utcnow())
        p = _param()
        sql = ("INSERT INTO contract (ecid, parent_id, name, created_at, users_total, "
               f"users_first_login_done) VALUES ({p}, {p}, {p}, {p}, 0, 0)")
        with database.atomic():
            cursor = database.cursor()
            cursor.executemany(sql, [(ecid, None, info.name, now)
                                     for ecid, info in to_create if info.parent_ecid is None])
            ids = {e: cid for e, (cid, _p) in _existing_contracts(ecids).items()}
            cursor.executemany(sql, [(ecid, ids[info.parent_ecid], info.name, now)
                                     for ecid, info in to_create if info.parent_ecid is not None])
        for ecid, (cid, _parent) in _existing_contracts([e for e, _i in to_create]).items():
            resolved[ecid].id = cid
    return resolved, len(to_create)


# --------------------------------------------------------------------------------------------
# The bulk writer
# --------------------------------------------------------------------------------------------

BATCH_SIZE = 20000
IN_CHUNK = 10000  # SQLite allows 32766 parameters per statement
# Below this many rows the search index is kept up to date row by row (its triggers); above it,
# suspended and rebuilt once, which costs time in proportion to ALL users, not to this file.
SUSPEND_INDEX_MIN_ROWS = 20000

USER_COLUMNS = ("id", "portal", "contract_id", "login_id", "login_id_key", "email", "email_key", "name",
                "phone", "is_admin", "origin", "legacy_login_id", "legacy_phone", "migrated_at",
                "failed_logins", "disabled", "version", "created_at", "updated_at")
LEGACY_COLUMNS = ("login_id", "login_id_key", "contract_ecid", "parent_ecid", "contract_name", "email",
                  "name", "phone", "is_admin", "password_hash", "user_id", "source_line", "migrated_at")


def _param() -> str:
    return "%s" if is_postgres() else "?"


def _db_time(value):
    """SQLite stores peewee datetimes as text ('YYYY-MM-DD HH:MM:SS.ffffff'); psycopg adapts them."""
    return value if is_postgres() else str(value)


@dataclasses.dataclass(slots=True)
class Existing:
    """A pair already known: claimed earlier in this run (at ``line``) or migrated by an earlier run."""

    this_run: bool
    line: int | None
    login_id: str = ""
    phone: str = ""


def _in_chunks(cursor, sql: str, column: str, values: list, before: tuple = ()) -> list[tuple]:
    """Run ``sql`` (``{cond}`` = ``column IN values``) in chunks that fit the parameter limit."""
    if is_postgres():
        cursor.execute(sql.format(cond=f"{column} = ANY(%s)"), [*before, values])
        return cursor.fetchall()
    rows: list[tuple] = []
    for i in range(0, len(values), IN_CHUNK):
        chunk = values[i:i + IN_CHUNK]
        cursor.execute(sql.format(cond=f"{column} IN ({', '.join('?' * len(chunk))})"), [*before, *chunk])
        rows.extend(cursor.fetchall())
    return rows


class DatabaseLookups:
    """What is taken, asked of the database per batch: memory stays flat however long the file.

    Needs the unique indexes (portal, login_id_key) and (login_id_key, contract_ecid), so it serves
    imports small enough to keep the indexes in place. Pairs written by this run carry its stamp;
    pairs this run reported ``skipped`` go to a per-connection scratch table (for duplicates).
    """

    SEEN_TABLE = "migration_run_seen"

    def __init__(self, cursor, stamp):
        self.cursor = cursor
        self.stamp = stamp
        self.p = _param()
        cursor.execute(f"DROP TABLE IF EXISTS {self.SEEN_TABLE}")
        cursor.execute(f"CREATE TEMP TABLE {self.SEEN_TABLE} (login_id_key VARCHAR(255), "
                       "contract_ecid VARCHAR(14), line INTEGER, PRIMARY KEY (login_id_key, contract_ecid))")

    def close(self):
        self.cursor.execute(f"DROP TABLE IF EXISTS {self.SEEN_TABLE}")

    def batch(self, rows: list[LegacyRow]):
        keys = sorted({row.pair[0] for row in rows})
        sql = ("SELECT la.login_id_key, la.contract_ecid, la.migrated_at = " + self.p + ", la.source_line, "
               "COALESCE(u.login_id, la.login_id), COALESCE(u.phone, la.phone) "
               'FROM legacy_account la LEFT JOIN "user" u ON u.id = la.user_id WHERE {cond}')
        found = _in_chunks(self.cursor, sql, "la.login_id_key", keys, (self.stamp,))
        existing = {(k, e): Existing(bool(this_run), line, login_id, phone)
                    for k, e, this_run, line, login_id, phone in found}
        earlier = sorted({k for (k, _e), found in existing.items() if not found.this_run})
        if earlier:
            sql = f"SELECT login_id_key, contract_ecid, line FROM {self.SEEN_TABLE} WHERE {{cond}}"
            for k, e, line in _in_chunks(self.cursor, sql, "login_id_key", earlier):
                existing[(k, e)] = Existing(True, line)
        wanted = collections.defaultdict(set)
        for row in rows:
            key = row.pair[0]
            wanted[row.portal].update((key, f"{key}_{row.contract_ecid}"))
        sql = f'SELECT login_id_key FROM "user" WHERE portal = {self.p} AND {{cond}}'
        taken = {portal: {k for (k,) in _in_chunks(self.cursor, sql, "login_id_key", sorted(ks), (portal,))}
                 for portal, ks in wanted.items()}
        return existing, taken

    def remember(self, new, skipped: list[tuple[tuple[str, str], int]]):
        if skipped:
            self.cursor.executemany(f"INSERT INTO {self.SEEN_TABLE} (login_id_key, contract_ecid, line) "
                                    f"VALUES ({self.p}, {self.p}, {self.p})",
                                    [(k, e, line) for (k, e), line in skipped])


class MemoryLookups:
    """What is taken, held in memory: for bulk loads, while the indexes are suspended.

    Every login ID of both portals and every legacy pair, loaded once and kept current: memory
    grows with the number of users, never with the file's bytes (rows are streamed).
    """

    def __init__(self, cursor):
        from .models import PORTALS

        self.cursor = cursor
        self.taken: dict[str, set[str]] = {portal: set() for portal in PORTALS}
        cursor.execute('SELECT portal, login_id_key FROM "user"')
        while chunk := cursor.fetchmany(50000):
            for portal, key in chunk:
                self.taken.setdefault(portal, set()).add(key)
        # (login key, ECID) -> line claimed in this run (> 0) or -id of the earlier legacy record.
        self.pairs: dict[tuple[str, str], int] = {}
        cursor.execute("SELECT login_id_key, contract_ecid, id FROM legacy_account")
        while chunk := cursor.fetchmany(50000):
            for key, ecid, la_id in chunk:
                self.pairs[(key, ecid)] = -la_id

    def close(self):
        self.taken.clear()
        self.pairs.clear()

    def batch(self, rows: list[LegacyRow]):
        existing: dict[tuple[str, str], Existing] = {}
        earlier: dict[int, tuple[str, str]] = {}
        for row in rows:
            pair = row.pair
            mark = self.pairs.get(pair)
            if mark is None:
                continue
            if mark > 0:
                existing[pair] = Existing(True, mark)
            else:
                earlier[-mark] = pair
        if earlier:
            sql = ("SELECT la.id, la.source_line, COALESCE(u.login_id, la.login_id), "
                   'COALESCE(u.phone, la.phone) FROM legacy_account la LEFT JOIN "user" u '
                   "ON u.id = la.user_id WHERE {cond}")
            for la_id, line, login_id, phone in _in_chunks(self.cursor, sql, "la.id", sorted(earlier)):
                existing[earlier[la_id]] = Existing(False, line, login_id, phone)
        return existing, self.taken

    def remember(self, new, skipped):
        for line, row, *_rest in new:
            self.pairs[row.pair] = line
        for pair, line in skipped:
            self.pairs[pair] = line


class Writer:
    """Batched writes for one run, on the raw DB-API cursor (the ORM is too slow for a million rows)."""

    def __init__(self, run_stamp):
        self.pg = is_postgres()
        self.p = "%s" if self.pg else "?"
        self.stamp = _db_time(run_stamp)
        self.cursor = database.cursor()

    def _allocate_user_ids(self, n: int) -> list[int]:
        if self.pg:
            self.cursor.execute("SELECT nextval(pg_get_serial_sequence('\"user\"', 'id')) "
                                "FROM generate_series(1, %s)", [n])
            return [i for (i,) in self.cursor.fetchall()]
        # Inside BEGIN IMMEDIATE: no other writer can take these ids before we commit.
        self.cursor.execute('SELECT COALESCE(MAX(id), 0) FROM "user"')
        first = self.cursor.fetchone()[0] + 1
        return list(range(first, first + n))

    def write(self, new: list[tuple[int, LegacyRow, ResolvedContract, str, str]]):
        """Write one batch (inside the caller's transaction): users, legacy records, counters."""
        if new:
            ids = self._allocate_user_ids(len(new))
            users, legacy, counts = [], [], collections.Counter()
            yes, no = (True, False) if self.pg else (1, 0)
            stamp = self.stamp
            for uid, (line, row, contract, login_id, phone) in zip(ids, new, strict=True):
                admin = yes if row.is_admin else no
                key = row.pair[0]
                users.append((uid, row.portal, contract.id, login_id,
                              key if login_id is row.login_id else login_id.lower(), row.email,
                              row.email.lower(), row.name, phone, admin, ORIGIN_LEGACY,
                              row.login_id, row.phone, stamp, 0, no, 1, stamp, stamp))
                legacy.append((row.login_id, key, row.contract_ecid, row.parent_ecid,
                               row.contract_name, row.email, row.name, phone, admin,
                               row.password_hash, uid, line, stamp))
                counts[contract.id] += 1
            self._insert('"user"', USER_COLUMNS, users)
            self._insert("legacy_account", LEGACY_COLUMNS, legacy)
            self.cursor.executemany(
                f"UPDATE contract SET users_total = users_total + {self.p} WHERE id = {self.p}",
                [(n, cid) for cid, n in sorted(counts.items())])

    def _insert(self, table: str, columns: tuple[str, ...], rows: list[tuple]):
        if self.pg:
            with self.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            self.cursor.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                rows)


# --------------------------------------------------------------------------------------------
# Indexes during a bulk load
# --------------------------------------------------------------------------------------------

BULK_TABLES = ("user", "legacy_account")


@contextlib.contextmanager
def bulk_indexes_suspended():
    """Drop the B-tree indexes of the bulk-loaded tables, rebuild them once at the end (SPEC 9).

    Inserting a million rows in random key order into seven indexes, committing per batch,
    writes every index page many times over; building an index afterwards is one sort. Meanwhile
    MemoryLookups answer what the unique indexes would; rebuilding the unique indexes re-checks
    uniqueness. A run killed in between leaves them missing: ``recover_interrupted_run`` puts them
    back (each run starts with it).
    """
    from .search_index import PG_INDEXES

    dropped = []
    for table in BULK_TABLES:
        for meta in database.get_indexes(table):
            if meta.name not in PG_INDEXES and meta.sql and not meta.name.endswith("_pkey"):
                dropped.append(meta.sql)
                database.execute_sql(f'DROP INDEX IF EXISTS "{meta.name}"')
    try:
        yield
    finally:
        for sql in dropped:
            database.execute_sql(sql)


def recover_interrupted_run() -> list[str]:
    """Put back what an import killed during a bulk load left suspended; say what was restored."""
    from . import search_index
    from .models import LegacyAccount, User

    restored = []
    for model in (User, LegacyAccount):
        have = {tuple(meta.columns) for meta in database.get_indexes(model._meta.table_name)
                if meta.name not in search_index.OWN_INDEXES}  # the search's: restored below
        for index in model._meta.fields_to_index():
            columns = tuple(f.column_name for f in index._expressions)
            if columns not in have:
                database.execute(model._schema._create_index(index, safe=True))
                have.add(columns)  # the model may declare the same index twice (FK + Meta)
                restored.append(f"index {model._meta.table_name}({', '.join(columns)})")
    restored += [f"search index {name}" for name in search_index.create_prefix_indexes()]
    if is_postgres():
        names = {r[0] for r in database.execute_sql(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'user'").fetchall()}
        if not set(search_index.PG_INDEXES) <= names:
            search_index.create()
            restored.append("search index")
    else:
        names = {r[0] for r in database.execute_sql(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'user'").fetchall()}
        if not set(search_index.SQLITE_TRIGGERS) <= names:
            search_index.create()
            search_index.rebuild()
            restored.append("search index")
    return restored


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Summary:
    rows: int = 0
    migrated: int = 0
    skipped: int = 0
    rejected: int = 0
    login_ids_changed: int = 0
    phones_changed: int = 0
    contracts_created: int = 0
    encoding: str = ""
    index_suspended: bool = False
    restored: list[str] = dataclasses.field(default_factory=list)  # left over by a killed run
    seconds_total: float = 0.0
    seconds_load: float = 0.0     # reading, rules and writing the rows
    seconds_indexes: float = 0.0  # rebuilding the B-tree indexes after a suspended load
    seconds_search: float = 0.0   # rebuilding the search index after a suspended load
    errors: list[str] = dataclasses.field(default_factory=list)  # the first few, for the terminal


MAX_ERRORS_SHOWN = 20


class _Run:
    """One import: pass 2 over the rows, in batches, reporting in file order."""

    def __init__(self, source, resolved, report_writer, summary, progress: Callable[[int], None]):
        self.source = source
        self.resolved = resolved
        self.report = report_writer
        self.summary = summary
        self.progress = progress
        self.writer = Writer(utcnow())
        self.lookups = None

    def run(self, transaction: Callable, lookups: MemoryLookups | None = None):
        if lookups is not None:
            self.lookups = lookups
        else:
            with transaction():
                self.lookups = DatabaseLookups(self.writer.cursor, self.writer.stamp)
        items: list = []  # in file order: report tuples (final) or (line, LegacyRow, contract)
        for line, fields in self.source.records():
            items.append(self._check(line, fields))
            if len(items) >= BATCH_SIZE:
                self._flush(items, transaction)
                items = []
        if items:
            self._flush(items, transaction)
        self.lookups.close()

    def _check(self, line: int, fields):
        """Row-level rules (no database): a final rejected report row, or a candidate."""
        if isinstance(fields, str):  # more fields than the header
            return (line, REJECTED, "", "", "", "", fields)
        try:
            row = parse_row(fields)
            contract = self.resolved.get(row.contract_ecid)
            if contract is None:  # its contract fields were bad in the first pass: cannot happen
                raise RowError("contract_ecid", f"contract {row.contract_ecid} could not be resolved")
            if contract.error:
                raise RowError("parent_ecid", contract.error)
            if contract.parent_ecid != row.parent_ecid:
                held = (f"is a child contract of {contract.parent_ecid}" if contract.parent_ecid
                        else "is a parent contract")
                given = row.parent_ecid or "empty"
                raise RowError("parent_ecid", f"{row.contract_ecid} {held} (parent_ecid here: {given})")
        except RowError as exc:
            return (line, REJECTED, fields.get("login_id", ""), "", fields.get("phone", ""), "", str(exc))
        return (line, row, contract)

    def _flush(self, items: list, transaction: Callable):
        out: list[tuple] = []
        new: list = []
        skipped: list = []
        with transaction():
            existing, taken = self.lookups.batch([it[1] for it in items if len(it) == 3])
            claimed: dict[tuple[str, str], int] = {}
            for item in items:
                if len(item) != 3:
                    out.append(item)
                    continue
                line, row, contract = item
                out.append(self._decide(line, row, contract, existing, claimed, taken, new, skipped))
            self.writer.write(new)
            self.lookups.remember(new, skipped)
        for rec in out:
            self.report(rec)
            status = rec[1]
            if status == MIGRATED:
                self.summary.migrated += 1
                self.summary.login_ids_changed += rec[2] != rec[3]
                self.summary.phones_changed += rec[4] != rec[5]
            elif status == SKIPPED:
                self.summary.skipped += 1
            else:
                self.summary.rejected += 1
                if len(self.summary.errors) < MAX_ERRORS_SHOWN:
                    self.summary.errors.append(f"{self.source.path}:{rec[0]}: {rec[6]}")
        self.progress(len(items))

    def _decide(self, line, row: LegacyRow, contract, existing, claimed, taken, new, skipped):
        """The rules that need the database: already migrated, duplicate, login-ID conflict."""
        pair = row.pair
        first = claimed.get(pair)
        if first is None and pair in existing:
            found = existing[pair]
            if found.this_run:
                first = found.line
            else:
                claimed[pair] = line
                skipped.append((pair, line))
                return (line, SKIPPED, row.login_id, found.login_id, row.phone, found.phone, "")
        if first is not None:
            return (line, REJECTED, row.login_id, "", row.phone, "",
                    f"login_id: duplicate of line {first} (same login ID and contract_ecid)")
        try:
            login_id = assign_login_id(row.login_id, row.contract_ecid, taken[row.portal])
        except RowError as exc:
            return (line, REJECTED, row.login_id, "", row.phone, "", str(exc))
        claimed[pair] = line
        taken[row.portal].add(pair[0] if login_id is row.login_id else login_id.lower())
        phone = phone_for(row.portal, row.phone)
        new.append((line, row, contract, login_id, phone))
        notes = []
        if login_id != row.login_id:
            notes.append(f"login_id: exists in the {row.portal} portal, changed to {login_id}")
        if phone != row.phone:
            notes.append("phone: changed by the phone rule")
        return (line, MIGRATED, row.login_id, login_id, row.phone, phone, "; ".join(notes))


def run(csv_path, dry_run: bool = False, report_path=None, progress_factory=None) -> Summary:
    """Import a legacy export; raise UnreadableFile (nothing written) when it cannot be read.

    ``progress_factory(total_rows)`` returns a context manager whose value has ``update(n)``.
    """
    started = time.perf_counter()
    summary = Summary()
    source = open_source(csv_path)
    summary.encoding = source.encoding
    if report_path is not None and Path(report_path).resolve() == source.path.resolve():
        raise UnreadableFile(f"{report_path}: the report would overwrite the input file")
    opened = database.is_closed()
    database.connect(reuse_if_open=True)
    try:
        # A big file: every taken login ID and legacy pair in memory (a bulk load needs them, and
        # they tell the first pass how many rows are new, so a re-run does not bulk-load).
        lookups = None
        if not dry_run and source.path.stat().st_size >= SUSPEND_INDEX_MIN_ROWS * 100:
            lookups = MemoryLookups(database.cursor())
        found, summary.rows, new_rows = collect_contracts(source, lookups.pairs if lookups else None)
        _import(source, found, new_rows, lookups, dry_run, report_path, progress_factory, summary)
    finally:
        if opened and not database.is_closed():
            database.close()
    summary.seconds_total = time.perf_counter() - started
    return summary


def _import(source, found, new_rows, lookups, dry_run, report_path, progress_factory, summary):
    report_file = None
    if report_path is not None:
        try:
            report_file = open(report_path, "w", encoding="utf-8", newline="")
        except OSError as exc:
            raise UnreadableFile(f"{report_path}: cannot write the report: {exc.strerror}") from None
    try:
        if report_file is not None:
            out = csv.writer(report_file, lineterminator="\n")
            out.writerow(REPORT_COLUMNS)
            report = out.writerow
        else:
            def report(_rec):
                return None
        progress_cm = progress_factory(summary.rows) if progress_factory else _NoProgress()
        with progress_cm as bar:
            if dry_run:
                _dry_run(source, found, report, summary, bar)
            else:
                _real_run(source, found, new_rows, lookups, report, summary, bar)
    finally:
        if report_file is not None:
            report_file.close()


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        return None


BULK_SQLITE_CACHE_KIB = 256 * 1024


def _batch_transaction():
    """One batch = one transaction; on SQLite take the write lock first (ids are allocated)."""
    return database.atomic() if is_postgres() else database.atomic("IMMEDIATE")


def _real_run(source, found, new_rows, lookups, report, summary, bar):
    from . import search_index

    summary.restored = recover_interrupted_run()
    resolved, summary.contracts_created = apply_contracts(found)
    load_started = time.perf_counter()
    users_before = database.execute_sql('SELECT COUNT(*) FROM "user"').fetchone()[0]
    # Rebuilding costs time in proportion to every user; suspend only when this file's new rows
    # dominate (MemoryLookups answer while the indexes are gone).
    summary.index_suspended = lookups is not None and new_rows >= max(SUSPEND_INDEX_MIN_ROWS,
                                                                      users_before // 2)
    job = _Run(source, resolved, report, summary, bar.update)
    if not summary.index_suspended:
        job.run(_batch_transaction, lookups)
        summary.seconds_load = time.perf_counter() - load_started
        return
    if not is_postgres():
        # Index builds sort: a bounded page cache and in-memory temp storage for this connection.
        database.execute_sql(f"PRAGMA cache_size = -{BULK_SQLITE_CACHE_KIB}")
        database.execute_sql("PRAGMA temp_store = MEMORY")
    with search_index.suspended():
        with bulk_indexes_suspended():
            job.run(_batch_transaction, lookups)
            loaded = time.perf_counter()
            if sys.stderr.isatty():  # the bar is full; say why the command is not done yet
                click.echo("\nrebuilding the indexes and the search index ...", err=True)
            if is_postgres():  # index builds sort; give them room
                database.execute_sql("SET maintenance_work_mem = '256MB'")
        indexed = time.perf_counter()
    summary.seconds_load = loaded - load_started
    summary.seconds_indexes = indexed - loaded
    summary.seconds_search = time.perf_counter() - indexed


def _dry_run(source, found, report, summary, bar):
    """The same code inside one transaction that is rolled back, so the report is the real one's.

    The search index is not suspended: its DDL would be rolled back too, and nothing stays anyway.
    """
    load_started = time.perf_counter()
    with database.atomic() as txn:
        resolved, summary.contracts_created = apply_contracts(found)
        _Run(source, resolved, report, summary, bar.update).run(database.atomic)
        txn.rollback()
    summary.seconds_load = time.perf_counter() - load_started


# --------------------------------------------------------------------------------------------
# The command (app.py: flask --app app migrate-legacy CSV [--dry-run] [--report R.csv])
# --------------------------------------------------------------------------------------------

def _progress_factory():
    """A progress bar on a terminal; a line every 10% otherwise (logs stay readable)."""
    if sys.stderr.isatty():
        return lambda total: click.progressbar(length=total, label="importing", file=sys.stderr,
                                               show_pos=True, show_eta=True)
    return lambda total: _PeriodicProgress(total)


class _PeriodicProgress:
    def __init__(self, total):
        self.total = total
        self.done = 0
        self.next_at = max(total // 10, 100000)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        self.done += n
        if self.done >= self.next_at and self.done < self.total:
            click.echo(f"... {self.done:,} of {self.total:,} rows", err=True)
            self.next_at += max(self.total // 10, 100000)


def command(csv_path, dry_run: bool = False, report_path=None) -> int:
    """Run an import from the command line: 0 processed, 1 unreadable (nothing written)."""
    try:
        summary = run(csv_path, dry_run=dry_run, report_path=report_path,
                      progress_factory=_progress_factory())
    except UnreadableFile as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    except Exception as exc:  # a database failure mid-run: whole batches only were written
        click.echo(f"error: the import stopped: {exc.__class__.__name__}: {exc}. Batches written "
                   "so far are complete; run the same command again to resume.", err=True)
        return 1
    for line in summary.errors:
        click.echo(line, err=True)
    if summary.rejected > len(summary.errors):
        more = summary.rejected - len(summary.errors)
        click.echo(f"... and {more:,} more rejected rows" + (f", see {report_path}" if report_path else
                   " (use --report to list them all)"), err=True)
    click.echo(format_summary(summary, dry_run))
    return 0


def format_summary(s: Summary, dry_run: bool = False) -> str:
    head = "dry run, nothing written: " if dry_run else ""
    rate = s.rows / s.seconds_total if s.seconds_total else 0.0
    lines = [
        f"{head}{s.rows:,} rows ({s.encoding}): {s.migrated:,} migrated, {s.skipped:,} skipped, "
        f"{s.rejected:,} rejected",
        f"login IDs changed: {s.login_ids_changed:,}; phones changed: {s.phones_changed:,}; "
        f"contracts created: {s.contracts_created:,}",
        f"time: {s.seconds_total:.1f} s total, {s.seconds_load:.1f} s load"
        + (f", {s.seconds_indexes:.1f} s indexes, {s.seconds_search:.1f} s search index"
           if s.index_suspended else "")
        + f" ({rate:,.0f} rows/s)",
    ]
    if s.restored:
        lines.insert(0, "an earlier import was interrupted; restored: " + ", ".join(s.restored))
    return "\n".join(lines)
