"""One import run: the passes over the file, each row's decision (migrated / skipped /
rejected), the report, the dry run (the same code, rolled back) and the ``Summary``.

Over 400 lines on purpose: the run's two ways (per-batch transactions, or a bulk load with the
indexes suspended and, on PostgreSQL, batches written by a thread) share every decision and the
report's order, and read best in one place; the rules, the reading, the writers and the index
handling are in the package's other modules."""
from __future__ import annotations

import collections
import contextlib
import csv
import dataclasses
import gc
import operator
import time
from collections.abc import Callable
from typing import NamedTuple

from ..clock import utcnow
from ..db import database, is_postgres
from .contracts import ResolvedContract, apply_contracts, collect_contracts
from .indexes import bulk_indexes_suspended, create_indexes, recover_interrupted_run, refresh_statistics
from .rules import (
    MIGRATED,
    REPORT_COLUMNS,
    REQUIRED_COLUMNS,
    SKIPPED,
    LegacyRow,
    ReportRow,
    RowError,
    assign_login_id,
    parse_row,
    parse_values,
    phone_for,
)
from .source import Source, UnreadableFile, check_report_path, open_source
from .writer import DatabaseLookups, MemoryLookups, Writer, WriterThread

BATCH_SIZE = 20000

# Below this many rows the search index is kept up to date row by row (its triggers); above it,
# suspended and rebuilt once, which costs time in proportion to ALL users, not to this file.
SUSPEND_INDEX_MIN_ROWS = 20000
AVERAGE_ROW_BYTES = 100  # of an export row: a file this many times SUSPEND_INDEX_MIN_ROWS is big


@dataclasses.dataclass
class Summary:
    rows: int = 0
    migrated: int = 0
    skipped: int = 0
    rejected: int = 0
    login_ids_changed: int = 0
    phones_changed: int = 0
    with_password: int = 0  # portal users imported with a password hash
    contracts_created: int = 0
    encoding: str = ""
    index_suspended: bool = False
    restored: list[str] = dataclasses.field(default_factory=list)  # left over by a killed run
    seconds_total: float = 0.0
    seconds_load: float = 0.0     # reading, rules and writing the rows
    seconds_indexes: float = 0.0  # rebuilding the B-tree indexes after a suspended load
    seconds_search: float = 0.0   # rebuilding the search index after a suspended load
    seconds_statistics: float = 0.0  # PostgreSQL: VACUUM (ANALYZE) after a suspended load
    errors: list[str] = dataclasses.field(default_factory=list)  # the first few, for the terminal


MAX_ERRORS_SHOWN = 20


class Candidate(NamedTuple):
    """A row that passed the row rules, waiting for its batch's database rules (``_decide``)."""

    line: int
    row: LegacyRow
    contract: ResolvedContract


@dataclasses.dataclass(slots=True)
class Batch:
    """What one batch's decisions read and add to: the lookups' answers for its rows
    (``existing`` pairs, ``taken`` login IDs per portal), the pairs claimed so far in this batch
    (-> line), the rows to write and the already-migrated pairs seen (``skipped``)."""

    existing: dict
    taken: dict
    claimed: dict = dataclasses.field(default_factory=dict)
    new: list = dataclasses.field(default_factory=list)
    skipped: list = dataclasses.field(default_factory=list)


class ImportRun:
    """One import: pass 2 over the rows, in batches, reporting in file order.

    The import of portal users (accounts.portal_users) subclasses it: its own row fit
    (``_fits``), database rules (``_decide``), lookups and writer; everything else is shared.
    """

    DONE = MIGRATED  # the status of a row written by this run

    def __init__(self, source, resolved, report_rows, summary, progress: Callable[[int], None]):
        self.source = source
        self.resolved = resolved
        self.report = report_rows  # writes a list of report rows
        self.summary = summary
        self.progress = progress
        self.writer = self._writer(utcnow())
        self.lookups = None

    def _writer(self, stamp):
        return Writer(stamp)

    def _database_lookups(self):
        return DatabaseLookups(self.writer.cursor, self.writer.stamp)

    def _fits(self, row: LegacyRow) -> None:
        """Rules beyond parse_row's, before the contract is looked at; raise RowError."""

    def run(self, transaction: Callable, lookups=None, pipelined: bool = False):
        """Check and write every row. ``pipelined`` (PostgreSQL, with MemoryLookups): the batches
        are written by a WriterThread, each in its own transaction; ``transaction`` is then
        what the main thread's look-ups run in."""
        if lookups is not None:
            self.lookups = lookups
        else:
            with transaction():
                self.lookups = self._database_lookups()
        if not pipelined:
            self._rows(transaction)
            return
        self.writer.pipe = WriterThread(self.writer)
        self.pending: collections.deque = collections.deque()
        self.reported = 0
        try:
            self._rows(transaction)
        finally:  # also when the rows stop early: the batches handed over are written first
            try:
                self.writer.pipe.close()
            finally:
                self._report_committed()
                self.writer.pipe = None

    def _rows(self, transaction: Callable):
        items: list = []  # in file order: a ReportRow (final) or a Candidate
        # The columns by position (Source.records() makes a dict of every row: slower).
        columns, header_width = self.source.columns, self.source.header_width
        width = max(columns.values()) + 1
        values_of = operator.itemgetter(*(columns[c] for c in REQUIRED_COLUMNS))
        hash_at = columns.get("password_hash")
        check = self._check_values
        for line, record in self.source.raw_records():
            n = len(record)
            if width <= n <= header_width:
                items.append(check(line, values_of(record), None if hash_at is None else record[hash_at]))
            elif n > header_width:
                items.append(self._check(line, f"the row has {n} fields, the header {header_width}"))
            else:
                items.append(self._check(line, {name: record[i] for name, i in columns.items() if i < n}))
            if len(items) >= BATCH_SIZE:
                self._flush(items, transaction)
                items = []
        if items:
            self._flush(items, transaction)
        self.lookups.close()

    def _check(self, line: int, fields):
        """Row-level rules (no database): a final rejected report row, or a candidate."""
        if isinstance(fields, str):  # more fields than the header
            return ReportRow.rejected(line, "", "", fields)
        try:
            row = parse_row(fields)
            self._fits(row)
            contract = self._contract(row)
        except RowError as exc:
            return ReportRow.rejected(line, fields.get("login_id", ""), fields.get("phone", ""), str(exc))
        return Candidate(line, row, contract)

    def _check_values(self, line: int, values: tuple, password_hash: str | None):
        """_check for a row with every column: its values in REQUIRED_COLUMNS order."""
        try:
            row = parse_values(*values, password_hash)
            self._fits(row)
            contract = self.resolved.get(row.contract_ecid)
            if contract is None or contract.error or contract.parent_ecid != row.parent_ecid:
                contract = self._contract(row)
        except RowError as exc:
            return ReportRow.rejected(line, values[0], values[3], str(exc))
        return Candidate(line, row, contract)

    def _contract(self, row: LegacyRow) -> ResolvedContract:
        """The row's contract as resolved from the whole file; RowError when the row cannot join it."""
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
        return contract

    def _flush(self, items: list, transaction: Callable):
        out: list[ReportRow] = []
        with transaction():
            batch = Batch(*self.lookups.batch([it.row for it in items if type(it) is Candidate]))
            for item in items:
                out.append(item if type(item) is ReportRow else self._decide(item, batch))
            self.writer.write(batch.new)
            self.lookups.remember(batch.new, batch.skipped)
        if self.writer.pipe is None:
            self._report(out)
        else:  # reported once its batch is committed
            self.pending.append(out)
            self._report_committed()

    def _report_committed(self):
        while self.reported < self.writer.pipe.committed:
            self._report(self.pending.popleft())
            self.reported += 1

    def _report(self, out: list[ReportRow]):
        self.report(out)
        for rec in out:
            if rec.status == self.DONE:
                self.summary.migrated += 1
                self.summary.login_ids_changed += rec.legacy_login_id != rec.login_id
                self.summary.phones_changed += rec.legacy_phone != rec.phone
            elif rec.status == SKIPPED:
                self.summary.skipped += 1
            else:
                self.summary.rejected += 1
                if len(self.summary.errors) < MAX_ERRORS_SHOWN:
                    self.summary.errors.append(f"{self.source.path}:{rec.line}: {rec.reason}")
        self.progress(len(out))

    def _decide(self, item: Candidate, batch: Batch) -> ReportRow:
        """The rules that need the database: already migrated, duplicate, login-ID conflict.
        A row to write goes into ``batch.new``; the batch remembers what it claimed."""
        line, row, contract = item
        pair = row.pair
        first = batch.claimed.get(pair)
        if first is None and pair in batch.existing:
            found = batch.existing[pair]
            if found.this_run:
                first = found.line
            else:
                batch.claimed[pair] = line
                batch.skipped.append((pair, line))
                return ReportRow(line, SKIPPED, row.login_id, found.login_id, row.phone, found.phone)
        if first is not None:
            return ReportRow.rejected(
                line, row.login_id, row.phone,
                f"login_id: duplicate of line {first} (same login ID and contract_ecid)")
        taken = batch.taken[row.portal]
        try:
            login_id = assign_login_id(row.login_id, row.contract_ecid, taken)
        except RowError as exc:
            return ReportRow.rejected(line, row.login_id, row.phone, str(exc))
        batch.claimed[pair] = line
        taken.add(pair[0] if login_id is row.login_id else login_id.lower())
        phone = phone_for(row.portal, row.phone)
        batch.new.append((line, row, contract, login_id, phone))
        notes = []
        if login_id != row.login_id:
            notes.append(f"login_id: exists in the {row.portal} portal, changed to {login_id}")
        if phone != row.phone:
            notes.append("phone: changed by the phone rule")
        return ReportRow(line, MIGRATED, row.login_id, login_id, row.phone, phone, "; ".join(notes))


class LegacyImport:
    """What the legacy import plugs into the shared run; accounts.portal_users.PortalUsersImport
    is the other kind (same reading, contracts, batches, bulk load, dry run, report)."""

    verb = MIGRATED

    def memory_lookups(self, cursor):
        return MemoryLookups(cursor)

    def collect(self, source: Source, lookups):
        return collect_contracts(source, lookups.pairs if lookups else None)

    def apply_contracts(self, found):
        return apply_contracts(found)

    def job(self, source, resolved, report, summary, progress) -> ImportRun:
        return ImportRun(source, resolved, report, summary, progress)


def run(csv_path, dry_run: bool = False, report_path=None, progress_factory=None, kind=None) -> Summary:
    """Import a legacy export; raise UnreadableFile (nothing written) when it cannot be read.

    ``progress_factory(total_rows)`` returns a context manager whose value has ``update(n)`` (rows
    done) and ``phase(text)`` (what the run does after the rows); the command's prints them.
    ``kind``: LegacyImport() by default.
    """
    kind = kind or LegacyImport()
    started = time.perf_counter()
    summary = Summary()
    source = open_source(csv_path)
    summary.encoding = source.encoding
    check_report_path(report_path, source)
    opened = database.is_closed()
    database.connect(reuse_if_open=True)
    try:
        with _cyclic_gc_paused():
            # A big file: every taken login ID and legacy pair in memory (a bulk load needs them, and
            # they tell the first pass how many rows are new, so a re-run does not bulk-load).
            lookups = None
            if not dry_run and source.path.stat().st_size >= SUSPEND_INDEX_MIN_ROWS * AVERAGE_ROW_BYTES:
                lookups = kind.memory_lookups(database.cursor())
            found, summary.rows, new_rows = kind.collect(source, lookups)
            import_rows(source, found, new_rows, lookups, dry_run, report_path, progress_factory, summary,
                        kind)
    finally:
        if opened and not database.is_closed():
            database.close()
    summary.seconds_total = time.perf_counter() - started
    return summary


@contextlib.contextmanager
def _cyclic_gc_paused():
    """No cyclic garbage collection during a run: the run makes no reference cycles, but it holds
    millions of objects (the taken login IDs and legacy pairs of a bulk load), and every full
    collection walked all of them again (about 1.5 s of 14 s at 200,000 rows, more at a million).
    Reference counting still frees each batch as soon as it is written."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def import_rows(source, found, new_rows, lookups, dry_run, report_path, progress_factory, summary, kind):
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
            report = out.writerows  # a batch's rows at a time
        else:
            def report(_recs):
                return None
        progress_cm = progress_factory(summary.rows) if progress_factory else NoProgress()
        with progress_cm as bar:
            if dry_run:
                _dry_run(source, found, report, summary, bar, kind)
            else:
                _real_run(source, found, new_rows, lookups, report, summary, bar, kind)
    finally:
        if report_file is not None:
            report_file.close()


class NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        return None

    def phase(self, text):
        return None


BULK_SQLITE_CACHE_KIB = 256 * 1024


# FTS5 keeps the terms it is given in a hash and writes them out as a new segment whenever the
# hash outgrows "hashsize" (1 MiB by default); then it merges the segments. Rebuilding the trigram
# index of a million users 1 MiB at a time wrote hundreds of small segments and merged them again
# and again: 13.5 s CPU, 15 segments left. With 64 MiB: 7.7 s, 5 segments, ~110 MB more memory
# while it runs (measured on a copy of the 1M benchmark database).
BULK_FTS_HASH_BYTES = 64 << 20


FTS_DEFAULT_HASH_BYTES = 1 << 20


def _batch_transaction():
    """One batch = one transaction; on SQLite take the write lock first (ids are allocated)."""
    return database.atomic() if is_postgres() else database.atomic("IMMEDIATE")


def _real_run(source, found, new_rows, lookups, report, summary, bar, kind):
    from .. import search_index

    summary.restored = recover_interrupted_run()
    resolved, summary.contracts_created = kind.apply_contracts(found)
    load_started = time.perf_counter()
    users_before = database.execute_sql('SELECT COUNT(*) FROM "user"').fetchone()[0]
    # Rebuilding costs time in proportion to every user; suspend only when this file's new rows
    # dominate (MemoryLookups answer while the indexes are gone).
    summary.index_suspended = lookups is not None and new_rows >= max(SUSPEND_INDEX_MIN_ROWS,
                                                                      users_before // 2)
    job = kind.job(source, resolved, report, summary, bar.update)
    if not summary.index_suspended:
        job.run(_batch_transaction, lookups)
        summary.seconds_load = time.perf_counter() - load_started
        return
    if not is_postgres():
        # Index builds sort: a bounded page cache and in-memory temp storage for this connection.
        database.execute_sql(f"PRAGMA cache_size = -{BULK_SQLITE_CACHE_KIB}")
        database.execute_sql("PRAGMA temp_store = MEMORY")
    with _fts_hash_size(BULK_FTS_HASH_BYTES), search_index.suspended():
        with bulk_indexes_suspended():
            if job.writer.pipes():  # the main thread only reads (MemoryLookups), autocommitted
                job.run(contextlib.nullcontext, lookups, pipelined=True)
            else:
                job.run(_batch_transaction, lookups)
            loaded = time.perf_counter()
            bar.phase("rebuilding the indexes and the search index ...")  # why it is not done yet
        indexed = time.perf_counter()
        if is_postgres():  # side by side (search_index.suspended() then finds them built)
            create_indexes(list(search_index.PG_INDEXES.values()))
    searchable = time.perf_counter()
    refresh_statistics()
    summary.seconds_load = loaded - load_started
    summary.seconds_indexes = indexed - loaded
    summary.seconds_search = searchable - indexed
    summary.seconds_statistics = time.perf_counter() - searchable


@contextlib.contextmanager
def _fts_hash_size(nbytes: int):
    """SQLite: let the search index's rebuild hold ``nbytes`` of terms in memory, then the default."""
    if is_postgres():
        yield
        return
    sql = "INSERT INTO user_search(user_search, rank) VALUES ('hashsize', ?)"
    database.execute_sql(sql, [nbytes])
    try:
        yield
    finally:
        database.execute_sql(sql, [FTS_DEFAULT_HASH_BYTES])


def _dry_run(source, found, report, summary, bar, kind):
    """The same code inside one transaction that is rolled back, so the report is the real one's.

    The search index is not suspended: its DDL would be rolled back too, and nothing stays anyway.
    """
    load_started = time.perf_counter()
    with database.atomic() as txn:
        resolved, summary.contracts_created = kind.apply_contracts(found)
        kind.job(source, resolved, report, summary, bar.update).run(database.atomic)
        txn.rollback()
    summary.seconds_load = time.perf_counter() - load_started
