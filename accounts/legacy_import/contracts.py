"""The contracts an export names: collected in a first pass over the file, checked against
the database (parent/child consistency), then created or completed before any user row."""
from __future__ import annotations

import dataclasses
from collections.abc import Container, Mapping

from ..clock import utcnow
from ..db import database
from ..models import SDPF
from .rules import MAX_TEXT, RowError, cached_ecid
from .source import Source
from .sql import db_time, placeholder


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


def collect_contracts(source: Source, known_pairs: Container | None = None, *, portal: str | None = None,
                      known_login_ids: Container | None = None
                      ) -> tuple[dict[str, FileContract], int, int]:
    """First pass: ECID -> (parent, name, first line) from the first row naming it; row counts.

    Only rows whose contract fields are valid count; their other fields are checked later.
    Returns the contracts, the number of rows, and how many of them name a legacy user not in
    ``known_pairs`` (all rows when it is None): what decides whether to bulk-load.
    With ``portal`` (the import of portal users), only rows whose contract kind fits that portal
    count and name contracts, and a row is new when its login ID is not in ``known_login_ids``.
    """
    contracts: dict[str, FileContract] = {}
    rows = new = 0
    ci, pi, ni, li = (source.columns[c]
                      for c in ("contract_ecid", "parent_ecid", "contract_name", "login_id"))
    width = max(ci, pi, ni, li) + 1
    child_wanted = portal == SDPF
    for line, record in source.raw_records():
        rows += 1
        if len(record) < width or len(record) > source.header_width:
            continue
        if portal is not None and bool(record[pi].strip(" \t")) != child_wanted:
            continue  # rejected row by row: its users belong to the other portal
        try:
            ecid = cached_ecid(record[ci], "contract_ecid")
            if portal is not None:
                if known_login_ids is None or record[li].lower() not in known_login_ids:
                    new += 1
            elif known_pairs is None or (record[li].lower(), ecid) not in known_pairs:
                new += 1
            if ecid in contracts:
                continue
            parent_raw, name = record[pi], record[ni]
            parent = cached_ecid(parent_raw, "parent_ecid") if parent_raw.strip(" \t") else None
        except RowError:
            continue
        if name and len(name) <= MAX_TEXT and parent != ecid:
            contracts[ecid] = FileContract(parent, name, line)
    return contracts, rows, new


def resolve_contracts(found: dict[str, FileContract], existing: Mapping[str, tuple[int, str | None]],
                      missing_parents: bool = False
                      ) -> tuple[dict[str, ResolvedContract], list[tuple[str, FileContract]]]:
    """Decide each contract of the file against the database (pure).

    ``existing``: ECID -> (id, parent ECID) for the contracts of the file (and their parents) that
    the database holds. Returns the resolution per ECID and the contracts to create, parents first.
    A contract the database holds keeps its parent: rows that name another parent are rejected
    row by row. A new child needs a parent contract from the file or the database; with
    ``missing_parents`` (the SDPF Portal's users, whose file has no parent rows) a missing parent
    is created, named by its ECID until a legacy export names it (``apply_contracts``).
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
        if parent_state is None and missing_parents:
            parent_state = resolved[parent] = ResolvedContract(None, None)
            to_create.append((parent, FileContract(None, parent, info.line)))
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
    p = placeholder()
    for i in range(0, len(ecids), 500):
        chunk = ecids[i:i + 500]
        sql = ('SELECT c.id, c.ecid, p.ecid FROM contract c LEFT JOIN contract p ON p.id = c.parent_id '
               f'WHERE c.ecid IN ({", ".join([p] * len(chunk))})')
        for cid, ecid, parent in database.execute_sql(sql, chunk).fetchall():
            found[ecid] = (cid, parent)
    return found


def apply_contracts(found: dict[str, FileContract], missing_parents: bool = False
                    ) -> tuple[dict[str, ResolvedContract], int]:
    """Create the new contracts (one transaction, parents first) and return ECID -> resolution.

    A contract named by its own ECID (a parent that an import of SDPF users had to create, see
    ``resolve_contracts``) takes the name this file gives it.
    """
    ecids = sorted(set(found) | {c.parent_ecid for c in found.values() if c.parent_ecid})
    existing = _existing_contracts(ecids)
    resolved, to_create = resolve_contracts(found, existing, missing_parents)
    named = [(info.name, ecid) for ecid, info in found.items() if ecid in existing and info.name != ecid]
    if named:
        p = placeholder()
        with database.atomic():
            database.cursor().executemany(
                f"UPDATE contract SET name = {p} WHERE ecid = {p} AND name = ecid", named)
    if to_create:
        now = db_time(utcnow())
        p = placeholder()
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

