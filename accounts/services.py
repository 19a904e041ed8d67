"""Contracts' services from the operator's file (SPEC 12, ``flask --app app import-services``): the
row rules, the run and the command.

The file is read like the legacy export (accounts/legacy_import/: encoding, header, physical line
numbers, ECIDs, report file and exit statuses are that module's, called from here): columns
``contract_ecid,service,status`` in any order, extra columns ignored. Per row:

- ``imported``: a service the contract does not have yet; ``updated``: it has it with another
  status (the report gives the old and the new text); ``skipped``: it has it with this status, so
  re-running a file changes nothing.
- ``rejected``, with the field: the contract is not in the database (import the legacy export
  first); the service or the status is empty, longer than its column, or holds a line break or a
  control character; the same contract and service appeared on an earlier line of the file
  ("duplicate of line N": the first one counts, as in the legacy import).

Service and status are kept as given, without surrounding blanks; names compare exactly (case
included). Nothing is ever removed: a service that ended gets a status that says so.

The whole file is ONE transaction (the report is written beside and renamed into place at the
end): a run that fails part-way leaves nothing, neither rows nor report. ``--dry-run`` is the
same run rolled back, so its report is the real one's. Memory stays flat however long the file:
rows are streamed and looked up in batches, and the pairs already seen in this run are kept in a
temporary table, not in memory.
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from . import audit
from .csvsafe import SafeWriter
from .db import database, is_postgres
from .fields import holds_control_characters
from .legacy_import import (
    MAX_ERRORS_SHOWN,
    RowError,
    UnreadableFile,
    check_report_path,
    echo_rejected,
    in_chunks,
    normalize_ecid,
    open_source,
)
from .models import Service

REQUIRED_COLUMNS = ("contract_ecid", "service", "status")
REPORT_COLUMNS = ("line", "status", "contract_ecid", "service", "old_status", "new_status", "reason")

IMPORTED = "imported"
UPDATED = "updated"
SKIPPED = "skipped"
REJECTED = "rejected"

MAX_SERVICE = Service.name.max_length
MAX_STATUS = Service.status.max_length
BATCH_SIZE = 2000  # rows looked up and written together


# --------------------------------------------------------------------------------------------
# The row rules (pure)
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(slots=True, frozen=True)
class ServiceRow:
    contract_ecid: str  # lower case
    service: str
    status: str


def _text(fields, column: str, max_len: int) -> str:
    value = fields.get(column)
    if value is None:
        raise RowError(column, "missing (the row has fewer fields than the header)")
    value = value.strip()
    if not value:
        raise RowError(column, "missing")
    if len(value) > max_len:
        raise RowError(column, f"longer than {max_len} characters")
    if holds_control_characters(value):
        raise RowError(column, "contains a line break or a control character")
    return value


def parse_row(fields) -> ServiceRow:
    """Validate one input row (column -> value); raise RowError naming the first bad field."""
    raw_ecid = fields.get("contract_ecid")
    if raw_ecid is None:
        raise RowError("contract_ecid", "missing (the row has fewer fields than the header)")
    ecid = normalize_ecid(raw_ecid)
    return ServiceRow(ecid, _text(fields, "service", MAX_SERVICE), _text(fields, "status", MAX_STATUS))


def decide(row: ServiceRow, contract_id: int | None, current: tuple[int, str] | None,
           first_line: int | None) -> tuple[str, str]:
    """(outcome, reason) of a valid row given what the database and the earlier lines hold.

    ``current``: (service id, status) when the contract has this service; ``first_line``: the
    earlier line of this file with the same contract and service.
    """
    if contract_id is None:
        return REJECTED, (f"contract_ecid: no contract {row.contract_ecid} in the database "
                          "(import the legacy export first)")
    if first_line is not None:
        return REJECTED, f"service: duplicate of line {first_line} (same contract_ecid and service)"
    if current is None:
        return IMPORTED, ""
    return (SKIPPED if current[1] == row.status else UPDATED), ""


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Summary:
    rows: int = 0
    imported: int = 0
    updated: int = 0
    skipped: int = 0
    rejected: int = 0
    encoding: str = ""
    seconds: float = 0.0
    errors: list[str] = dataclasses.field(default_factory=list)  # the first few, for the terminal

    def count(self, outcome: str, error: str) -> None:
        self.rows += 1
        if outcome == IMPORTED:
            self.imported += 1
        elif outcome == UPDATED:
            self.updated += 1
        elif outcome == SKIPPED:
            self.skipped += 1
        else:
            self.rejected += 1
            if len(self.errors) < MAX_ERRORS_SHOWN:
                self.errors.append(error)


class _Store:
    """The run's SQL on the raw cursor, a batch at a time: lists go to PostgreSQL as one array
    parameter (``= ANY``, ``unnest``) and to SQLite as IN lists and executemany (measured: the
    ORM's query building and psycopg's per-row pipeline took most of a 100,000-row run).

    The pairs this run has seen (for "duplicate of line N") are in a temporary table, not in
    memory; it goes with the transaction.
    """

    SEEN = "service_import_seen"

    def __init__(self):
        self.pg = is_postgres()
        self.p = database.param
        self.cursor = database.cursor()
        self.cursor.execute(f"DROP TABLE IF EXISTS {self.SEEN}")
        self.cursor.execute(f"CREATE TEMPORARY TABLE {self.SEEN} (contract_id INTEGER, "
                            f"name VARCHAR({MAX_SERVICE}), line INTEGER, PRIMARY KEY (contract_id, name))")

    def close(self) -> None:
        self.cursor.execute(f"DROP TABLE IF EXISTS {self.SEEN}")

    def contract_ids(self, ecids: list[str]) -> dict[str, int]:
        return dict(in_chunks(self.cursor, "SELECT ecid, id FROM contract WHERE {cond}", "ecid", ecids))

    def current(self, contract_ids: list[int]) -> dict[tuple[int, str], tuple[int, str]]:
        """(contract id, service) -> (service id, status) for every service of these contracts."""
        sql = 'SELECT contract_id, name, id, status FROM "service" WHERE {cond}'
        return {(cid, name): (sid, status)
                for cid, name, sid, status in in_chunks(self.cursor, sql, "contract_id", contract_ids)}

    def seen(self, contract_ids: list[int]) -> dict[tuple[int, str], int]:
        sql = f"SELECT contract_id, name, line FROM {self.SEEN} WHERE {{cond}}"
        return {(cid, name): line for cid, name, line in in_chunks(self.cursor, sql, "contract_id",
                                                                     contract_ids)}

    def write(self, inserts: list[tuple[int, str, str]], updates: list[tuple[str, int]],
              seen: list[tuple[int, str, int]]) -> None:
        p, cursor = self.p, self.cursor
        if self.pg:
            if inserts:
                cursor.execute('INSERT INTO "service" (contract_id, name, status) '
                               "SELECT * FROM unnest(%s::integer[], %s::text[], %s::text[])",
                               [list(column) for column in zip(*inserts, strict=True)])
            if updates:
                cursor.execute('UPDATE "service" s SET status = u.status FROM unnest(%s::text[], '
                               "%s::integer[]) AS u(status, id) WHERE s.id = u.id",
                               [list(column) for column in zip(*updates, strict=True)])
            if seen:
                cursor.execute(f"INSERT INTO {self.SEEN} (contract_id, name, line) "
                               "SELECT * FROM unnest(%s::integer[], %s::text[], %s::integer[])",
                               [list(column) for column in zip(*seen, strict=True)])
            return
        if inserts:
            cursor.executemany(f'INSERT INTO "service" (contract_id, name, status) VALUES ({p}, {p}, {p})',
                               inserts)
        if updates:
            cursor.executemany(f'UPDATE "service" SET status = {p} WHERE id = {p}', updates)
        if seen:
            cursor.executemany(f"INSERT INTO {self.SEEN} (contract_id, name, line) VALUES ({p}, {p}, {p})",
                               seen)


class _Batch:
    """Up to BATCH_SIZE rows in file order: validated alone, then decided and written together."""

    def __init__(self):
        self.items: list[tuple[int, object, object]] = []  # (line, fields, ServiceRow | RowError text)

    def add(self, line: int, fields) -> None:
        if isinstance(fields, str):  # more fields than the header
            self.items.append((line, {}, fields))
            return
        try:
            self.items.append((line, fields, parse_row(fields)))
        except RowError as exc:
            self.items.append((line, fields, str(exc)))

    def apply(self, store: _Store, report, summary: Summary, path) -> None:
        rows = [r for _line, _f, r in self.items if isinstance(r, ServiceRow)]
        contracts = store.contract_ids(sorted({r.contract_ecid for r in rows}))
        cids = sorted({contracts[r.contract_ecid] for r in rows if r.contract_ecid in contracts})
        current = store.current(cids)
        earlier = store.seen(cids)
        inserts, updates, claimed = [], [], []
        for line, fields, row in self.items:
            if not isinstance(row, ServiceRow):
                rec = (line, REJECTED, fields.get("contract_ecid", ""), fields.get("service", ""), "",
                       fields.get("status", ""), row)
            else:
                cid = contracts.get(row.contract_ecid)
                key = (cid, row.service)
                now = current.get(key)
                outcome, reason = decide(row, cid, now, earlier.get(key))
                old = now[1] if now and outcome != REJECTED else ""
                rec = (line, outcome, row.contract_ecid, row.service, old, row.status, reason)
                if outcome != REJECTED:
                    earlier[key] = line
                    claimed.append((cid, row.service, line))
                if outcome == IMPORTED:
                    inserts.append((cid, row.service, row.status))
                elif outcome == UPDATED:
                    updates.append((row.status, now[0]))
            report(rec)
            summary.count(rec[1], f"{path}:{line}: {rec[6]}")
        store.write(inserts, updates, claimed)
        self.items = []


def run(csv_path, dry_run: bool = False, report_path=None) -> Summary:
    """Import a services file in one transaction; raise UnreadableFile (nothing written) when it
    cannot be read, before or part-way."""
    started = time.perf_counter()
    summary = Summary()
    source = open_source(csv_path, REQUIRED_COLUMNS, ())
    summary.encoding = source.encoding
    check_report_path(report_path, source)
    partial = Path(f"{report_path}.part") if report_path is not None else None
    try:
        report_file = open(partial, "w", encoding="utf-8", newline="") if partial else None
    except OSError as exc:
        raise UnreadableFile(f"{report_path}: cannot write the report: {exc.strerror}") from None
    try:
        if report_file is not None:
            writer = SafeWriter(report_file, lineterminator="\n")
            writer.writerow(REPORT_COLUMNS)
            report = writer.writerow
        else:
            def report(_rec):
                return None
        with database.atomic() as txn:
            store = _Store()
            batch = _Batch()
            try:
                for line, fields in source.records():
                    batch.add(line, fields)
                    if len(batch.items) >= BATCH_SIZE:
                        batch.apply(store, report, summary, source.path)
            except UnreadableFile as exc:  # broken CSV or a file changed under us, part-way
                raise UnreadableFile(f"{exc}; nothing was imported") from None
            batch.apply(store, report, summary, source.path)
            store.close()
            audit.record("cli", "services_imported", detail=(
                f"{csv_path}: {summary.rows} rows: {summary.imported} imported, {summary.updated} "
                f"updated, {summary.skipped} skipped, {summary.rejected} rejected"))
            if dry_run:
                txn.rollback()
        if report_file is not None:
            report_file.close()
            os.replace(partial, report_path)
    finally:
        if report_file is not None and not report_file.closed:
            report_file.close()
        if partial is not None and partial.exists():
            partial.unlink()
    summary.seconds = time.perf_counter() - started
    return summary


# --------------------------------------------------------------------------------------------
# The command (blueprints/commands.py: flask --app app import-services CSV [--dry-run] [--report R])
# --------------------------------------------------------------------------------------------

def command(csv_path, dry_run: bool = False, report_path=None) -> int:
    """0 processed (rejected rows included), 1 the file cannot be used or the run failed: nothing
    written."""
    import click

    try:
        summary = run(csv_path, dry_run=dry_run, report_path=report_path)
    except UnreadableFile as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    except Exception as exc:  # a database failure: the transaction was rolled back
        first = (str(exc).strip().splitlines() or [""])[0]
        click.echo(f"error: the import stopped: {exc.__class__.__name__}: {first}. Nothing was "
                   "imported; run the same command again.", err=True)
        return 1
    echo_rejected(summary.errors, summary.rejected, report_path)
    click.echo(format_summary(summary, dry_run))
    return 0


def format_summary(s: Summary, dry_run: bool = False) -> str:
    head = "dry run, nothing written: " if dry_run else ""
    rate = s.rows / s.seconds if s.seconds else 0.0
    return (f"{head}{s.rows:,} rows ({s.encoding}): {s.imported:,} imported, {s.updated:,} updated, "
            f"{s.skipped:,} skipped, {s.rejected:,} rejected\n"
            f"time: {s.seconds:.1f} s ({rate:,.0f} rows/s)")
