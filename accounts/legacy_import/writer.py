"""Writing users and legacy accounts in batches with raw SQL (COPY on PostgreSQL): the taken
login IDs and already-migrated rows looked up per batch (``DatabaseLookups``) or held in memory
while the unique indexes are suspended (``MemoryLookups``), and ``Writer`` for the inserts."""
from __future__ import annotations

import collections

from ..db import database, is_postgres
from ..models import ORIGIN_LEGACY
from .contracts import ResolvedContract
from .rules import LegacyRow
from .sql import Existing, db_time, in_chunks, placeholder

USER_COLUMNS = ("id", "portal", "contract_id", "login_id", "login_id_key", "email", "email_key", "name",
                "phone", "is_admin", "origin", "legacy_login_id", "legacy_phone", "migrated_at",
                "failed_logins", "disabled", "version", "created_at", "updated_at")


LEGACY_COLUMNS = ("login_id", "login_id_key", "contract_ecid", "parent_ecid", "contract_name", "email",
                  "name", "phone", "is_admin", "password_hash", "user_id", "source_line", "migrated_at")


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
        self.p = placeholder()
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
        found = in_chunks(self.cursor, sql, "la.login_id_key", keys, (self.stamp,))
        existing = {(k, e): Existing(bool(this_run), line, login_id, phone)
                    for k, e, this_run, line, login_id, phone in found}
        earlier = sorted({k for (k, _e), found in existing.items() if not found.this_run})
        if earlier:
            sql = f"SELECT login_id_key, contract_ecid, line FROM {self.SEEN_TABLE} WHERE {{cond}}"
            for k, e, line in in_chunks(self.cursor, sql, "login_id_key", earlier):
                existing[(k, e)] = Existing(True, line)
        wanted = collections.defaultdict(set)
        for row in rows:
            key = row.pair[0]
            wanted[row.portal].update((key, f"{key}_{row.contract_ecid}"))
        sql = f'SELECT login_id_key FROM "user" WHERE portal = {self.p} AND {{cond}}'
        taken = {portal: {k for (k,) in in_chunks(self.cursor, sql, "login_id_key", sorted(ks), (portal,))}
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
        from ..models import PORTALS

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
            for la_id, line, login_id, phone in in_chunks(self.cursor, sql, "la.id", sorted(earlier)):
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
        self.stamp = db_time(run_stamp)
        self.cursor = database.cursor()
        self.pipe: WriterThread | None = None
        self._types: dict[str, list[int]] = {}

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
        """Write one batch (inside the caller's transaction): users, legacy records, counters.

        With a ``pipe`` (a PostgreSQL bulk load) the batch is handed to the pipe's thread
        instead, which writes it in a transaction of its own, batches in order."""
        if self.pipe is not None:
            self.pipe.put(self._copy_data(new) if new else None)
            return
        if new:
            users, legacy, counts = self._rows(new)
            self._insert('"user"', USER_COLUMNS, users)
            self._insert("legacy_account", LEGACY_COLUMNS, legacy)
            self._count(self.cursor, counts)

    def pipes(self) -> bool:
        """Whether a WriterThread can write this writer's batches: on PostgreSQL, when ``write``
        is this class's (users and legacy records). A subclass that writes other rows (the
        portal users' PortalWriter) writes them on the main thread, in the batch's transaction."""
        return self.pg and type(self).write is Writer.write

    def _rows(self, new):
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
        return users, legacy, counts

    def _count(self, cursor, counts):
        """Add the batch's users to their contracts' counters (thousands of contracts a batch)."""
        ordered = sorted(counts.items())
        if self.pg:  # one statement: executemany was a statement per contract, ~5 s per million rows
            cursor.execute("UPDATE contract c SET users_total = c.users_total + v.n "
                           "FROM unnest(%s::bigint[], %s::int[]) AS v(id, n) WHERE c.id = v.id",
                           [[cid for cid, _n in ordered], [n for _cid, n in ordered]])
        else:
            cursor.executemany("UPDATE contract SET users_total = users_total + ? WHERE id = ?",
                               [(n, cid) for cid, n in ordered])

    def _copy_data(self, new):
        """The batch as COPY data (psycopg's own formatting, not sent anywhere yet), and its counts."""
        import io

        import psycopg
        from psycopg.copy import FileWriter

        users, legacy, counts = self._rows(new)
        formatting = self.cursor.connection.cursor()  # one that has run nothing: no result to check
        data = []
        for table, columns, rows in (("user", USER_COLUMNS, users),
                                     ("legacy_account", LEGACY_COLUMNS, legacy)):
            buffer = io.BytesIO()
            with psycopg.Copy(formatting, binary=True, writer=FileWriter(buffer)) as copy:
                copy.set_types(self._column_types(table, columns))
                for row in rows:
                    copy.write_row(row)
            data.append(buffer.getvalue())
        return data[0], data[1], counts

    def _column_types(self, table: str, columns: tuple[str, ...]) -> list[int]:
        """The columns' type OIDs, as binary COPY needs them exactly (int4 is not int8)."""
        if table not in self._types:
            self.cursor.execute("SELECT attname, atttypid FROM pg_attribute WHERE attrelid = %s::regclass "
                                "AND attnum > 0 AND NOT attisdropped", [f'"{table}"'])
            oids = dict(self.cursor.fetchall())
            self._types[table] = [oids[c] for c in columns]
        return self._types[table]

    def copy_in(self, cursor, batch):
        """In the pipe's thread: one batch's COPY data into the tables, on ``cursor``."""
        users, legacy, counts = batch
        for table, columns, data in (('"user"', USER_COLUMNS, users),
                                     ("legacy_account", LEGACY_COLUMNS, legacy)):
            # Binary: the server parses no text (measured: 20,000 users 52 ms instead of 77 ms).
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(data)
        self._count(cursor, counts)

    def _insert(self, table: str, columns: tuple[str, ...], rows: list[tuple]):
        if self.pg:
            with self.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            self.cursor.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                rows)


class WriterThread:
    """PostgreSQL bulk load: batches written by a thread of their own while the next is checked.

    The server's work on a batch (COPY into two tables, the commit) used to wait for the Python
    that checks the rows, and that Python for the server: one core idle at a time. Here the main
    thread checks batch n+1 and formats it as COPY data while this thread's connection sends batch
    n and waits for the server (waiting, it holds no GIL). Each batch is still one transaction,
    written in file order, so a kill leaves whole batches; its report rows are written once it is
    committed (``done``). A failed batch stops the thread: later batches are not written, and the
    main thread raises its error at the next ``put`` or at ``close``.
    """

    def __init__(self, writer: Writer, depth: int = 2):
        import queue
        import threading

        self.writer = writer
        self.batches: queue.Queue = queue.Queue(maxsize=depth)
        self.committed = 0  # batches done, in order (empty ones included)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._work, name="migration-writer", daemon=True)
        self.thread.start()

    def put(self, batch):
        if self.error is not None:
            raise self.error
        self.batches.put(batch)

    def close(self):
        """Wait for every batch handed over; raise the thread's error, if any."""
        self.batches.put(_STOP)
        self.thread.join()
        if self.error is not None:
            raise self.error

    def _work(self):
        try:
            with database.connection_context():
                cursor = database.cursor()
                while (batch := self.batches.get()) is not _STOP:
                    if self.error is not None:
                        continue  # drain: nothing after a failed batch is written
                    try:
                        if batch is not None:
                            with database.atomic():
                                self.writer.copy_in(cursor, batch)
                        self.committed += 1
                    except BaseException as exc:  # handed to the main thread
                        self.error = exc
        except BaseException as exc:  # no connection: the main thread must not wait on a full queue
            self.error = self.error or exc
            while self.batches.get() is not _STOP:
                pass


_STOP = object()

