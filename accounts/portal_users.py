"""Importing the users who already exist in the new portals (SPEC 12): ``import-portal-users``.

The file has the legacy export's columns (plus an optional ``password_hash``) and goes through the
legacy import's machinery in accounts.legacy_import: the same reading (encodings, lines), row rules
(``parse_row``), contracts from the whole file, batches of one transaction each, bulk load with
suspended indexes, dry run inside a rolled-back transaction, report and exit codes. What differs:

- one portal per run (``--portal``): a row whose contract kind belongs to the other portal is
  rejected (parent contracts and direct customers -> Business Portal, child contracts -> SDPF);
- the login ID is kept as given; one that the portal already holds is not suffixed but rejected,
  unless it is the same user (same login ID, any case, same contract, a user of the portal's own,
  not migrated): then the row is ``skipped``, which makes a re-run and a resumed run safe;
- users are the portal's own (origin ``native``, no legacy record): the migration period does not
  gate their first login, and a later ``migrate-legacy`` suffixes a legacy login ID that they hold;
- a ``password_hash`` (argon2, bcrypt or Werkzeug, well-formed: ``passwords.hash_format``) is
  stored as the user's password and their first login counts as done; a bcrypt or Werkzeug hash is
  rehashed to argon2id at the first sign-in. Without one the first login goes through a reset;
- SDPF files have no rows of parent contracts: a missing parent is created, named by its ECID,
  and a later legacy export (or the console) gives it its name.
"""
from __future__ import annotations

import collections
import dataclasses

from . import legacy_import
from .legacy_import import (
    SKIPPED,
    Batch,
    Candidate,
    ImportRun,
    LegacyRow,
    ReportRow,
    RowError,
    apply_contracts,
    collect_contracts,
    in_chunks,
    phone_for,
    placeholder,
)
from .models import BUSINESS, ORIGIN_LEGACY, ORIGIN_NATIVE, PORTALS, SDPF
from .passwords import hash_format

IMPORTED = "imported"

USER_COLUMNS = ("id", "portal", "contract_id", "login_id", "login_id_key", "email", "email_key", "name",
                "phone", "is_admin", "origin", "password_hash", "password_changed_at",
                "first_login_done_at", "failed_logins", "disabled", "version", "created_at", "updated_at")


@dataclasses.dataclass(slots=True)
class Found:
    """A login ID of the portal: claimed earlier in this run (at ``line``) or held by a user."""

    this_run: bool
    line: int | None = None
    login_id: str = ""
    phone: str = ""
    origin: str = ""
    contract_ecid: str = ""


class PortalLookups:
    """Which login IDs of one portal are taken, per batch.

    Login IDs this run claimed are kept in memory (key -> line), so the database is asked only
    about the others: per batch by login ID while the unique index is there, or, for a bulk load
    (indexes suspended), by user id from every key of the portal loaded once.
    """

    def __init__(self, cursor, portal: str, in_memory: bool):
        self.cursor = cursor
        self.portal = portal
        self.claimed: dict[str, int] = {}
        self.known: dict[str, int] | None = None
        if in_memory:
            self.known = {}
            cursor.execute(f'SELECT login_id_key, id FROM "user" WHERE portal = {placeholder()}', [portal])
            while chunk := cursor.fetchmany(50000):
                self.known.update(chunk)

    def close(self):
        self.claimed.clear()
        if self.known is not None:
            self.known.clear()

    _SELECT = ('SELECT u.login_id_key, u.login_id, u.phone, u.origin, c.ecid FROM "user" u '
               "JOIN contract c ON c.id = u.contract_id WHERE ")

    def batch(self, rows: list[LegacyRow]):
        found: dict[str, Found] = {}
        ask = []
        for key in {row.pair[0] for row in rows}:
            line = self.claimed.get(key)
            if line is not None:
                found[key] = Found(True, line)
            elif self.known is None or key in self.known:
                ask.append(key)
        if ask:
            if self.known is None:
                result = in_chunks(self.cursor, self._SELECT + f"u.portal = {placeholder()} AND {{cond}}",
                                    "u.login_id_key", sorted(ask), (self.portal,))
            else:
                result = in_chunks(self.cursor, self._SELECT + "{cond}", "u.id",
                                    sorted(self.known[k] for k in ask))
            for key, login_id, phone, origin, ecid in result:
                found[key] = Found(False, None, login_id, phone, origin, ecid)
        return found, None

    def remember(self, new, skipped):
        for line, row, *_rest in new:
            self.claimed[row.pair[0]] = line
        for key, line in skipped:
            self.claimed[key] = line


class PortalWriter(legacy_import.Writer):
    """Users only (no legacy record), with their password and first login when a hash is given."""

    def write(self, new):
        if not new:
            return
        ids = self._allocate_user_ids(len(new))
        users, counts = [], collections.defaultdict(lambda: [0, 0])
        yes, no = (True, False) if self.pg else (1, 0)
        stamp = self.stamp
        for uid, (_line, row, contract, login_id, phone) in zip(ids, new, strict=True):
            done = stamp if row.password_hash else None
            users.append((uid, row.portal, contract.id, login_id, row.pair[0], row.email, row.email.lower(),
                          row.name, phone, yes if row.is_admin else no, ORIGIN_NATIVE, row.password_hash,
                          done, done, 0, no, 1, stamp, stamp))
            count = counts[contract.id]
            count[0] += 1
            count[1] += done is not None
        self._insert('"user"', USER_COLUMNS, users)
        self.cursor.executemany(
            f"UPDATE contract SET users_total = users_total + {self.p}, "
            f"users_first_login_done = users_first_login_done + {self.p} WHERE id = {self.p}",
            [(total, done, cid) for cid, (total, done) in sorted(counts.items())])


class _PortalRun(ImportRun):
    DONE = IMPORTED

    def __init__(self, portal, *args):
        self.portal = portal
        super().__init__(*args)

    def _writer(self, stamp):
        return PortalWriter(stamp)

    def _database_lookups(self):
        return PortalLookups(self.writer.cursor, self.portal, in_memory=False)

    def _fits(self, row: LegacyRow) -> None:
        if row.portal != self.portal:
            if self.portal == BUSINESS:
                raise RowError("parent_ecid", f"{row.contract_ecid} is a child contract (of "
                                              f"{row.parent_ecid}): its users belong to the SDPF Portal, "
                                              "not to the Business Portal (--portal business)")
            raise RowError("parent_ecid", f"empty: {row.contract_ecid} is a parent contract: its users "
                                          "belong to the Business Portal, not to the SDPF Portal "
                                          "(--portal sdpf)")
        if row.password_hash is not None and hash_format(row.password_hash) is None:
            raise RowError("password_hash", "not an argon2, bcrypt or Werkzeug password hash")

    def _decide(self, item: Candidate, batch: Batch) -> ReportRow:
        line, row, contract = item
        key = row.pair[0]
        found = batch.existing.get(key)
        first = batch.claimed.get(key)
        if first is None and found is not None and found.this_run:
            first = found.line
        if first is not None:
            return ReportRow.rejected(line, row.login_id, row.phone,
                                      f"login_id: duplicate of line {first} (login IDs are unique in a "
                                      "portal, ignoring case)")
        if found is not None:
            if found.origin != ORIGIN_LEGACY and found.contract_ecid == row.contract_ecid:
                batch.claimed[key] = line
                batch.skipped.append((key, line))
                return ReportRow(line, SKIPPED, row.login_id, found.login_id, row.phone, found.phone)
            held = ("a user migrated from the legacy portal (run import-portal-users before "
                    "migrate-legacy)" if found.origin == ORIGIN_LEGACY
                    else f"a user of contract {found.contract_ecid}")
            return ReportRow.rejected(
                line, row.login_id, row.phone,
                f"login_id: {found.login_id!r} exists in the {self.portal} portal: {held}")
        batch.claimed[key] = line
        phone = phone_for(self.portal, row.phone)
        batch.new.append((line, row, contract, row.login_id, phone))
        self.summary.with_password += row.password_hash is not None
        return ReportRow(line, IMPORTED, row.login_id, row.login_id, row.phone, phone,
                         "phone: changed by the phone rule" if phone != row.phone else "")


class PortalUsersImport:
    """The import of one portal's users, plugged into ``legacy_import.run``."""

    verb = IMPORTED

    def __init__(self, portal: str):
        if portal not in PORTALS:
            raise ValueError(portal)
        self.portal = portal

    def memory_lookups(self, cursor):
        return PortalLookups(cursor, self.portal, in_memory=True)

    def collect(self, source, lookups):
        return collect_contracts(source, portal=self.portal,
                                 known_login_ids=lookups.known if lookups else None)

    def apply_contracts(self, found):
        return apply_contracts(found, missing_parents=self.portal == SDPF)

    def job(self, source, resolved, report, summary, progress):
        return _PortalRun(self.portal, source, resolved, report, summary, progress)


def run(csv_path, portal: str, dry_run: bool = False, report_path=None, progress_factory=None):
    return legacy_import.run(csv_path, dry_run=dry_run, report_path=report_path,
                         progress_factory=progress_factory, kind=PortalUsersImport(portal))


def command(csv_path, portal: str, dry_run: bool = False, report_path=None) -> int:
    """``flask --app app import-portal-users``: 0 processed, 1 unreadable (nothing written)."""
    return legacy_import.command(csv_path, dry_run=dry_run, report_path=report_path,
                             kind=PortalUsersImport(portal))
