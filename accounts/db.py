"""One database handle for the app, the CLI and the tests: SQLite by default, PostgreSQL by URL."""
import os
import threading
from contextlib import contextmanager
from urllib.parse import urlparse

from peewee import DatabaseProxy, PostgresqlDatabase, SqliteDatabase
from peewee import __exception_wrapper__ as as_peewee_errors
from playhouse.pool import PooledPostgresqlDatabase
from psycopg.pq import TransactionStatus

database = DatabaseProxy()

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "busy_timeout": 10000,
    "synchronous": "normal",
    "cache_size": -64000,
}


class WriteFirstSqliteDatabase(SqliteDatabase):
    """Every transaction takes SQLite's write lock at BEGIN (``BEGIN IMMEDIATE``).

    A deferred transaction that reads and then writes fails at once with "database is locked"
    when another worker committed in between (a WAL snapshot cannot be upgraded and busy_timeout
    does not apply). Taking the lock at BEGIN makes it wait its turn instead. Nested blocks are
    savepoints and are unaffected. PostgreSQL needs nothing of the kind.

    The default lives in ``begin`` (not ``atomic``): the app goes through the ``database`` proxy,
    whose ``atomic()`` builds peewee's transaction itself and only calls ``begin()`` on this
    class, so an ``atomic`` override was never reached and every transaction was a plain
    deferred BEGIN (found by benchmarks/load_concurrent.py: a 500 "database is locked" on a
    console save under 20 concurrent clients).
    """

    def begin(self, lock_type=None):
        return super().begin(lock_type or "IMMEDIATE")

    def rollback(self):
        """Roll back, unless SQLite already did.

        On a full disk or an I/O error SQLite rolls the transaction back by itself; peewee's
        ROLLBACK then failed with "cannot rollback - no transaction is active", and that error
        replaced the real one: a 500 with a traceback instead of the 503 page (found by
        benchmarks/faults.py, disk fault: 994 answers 500, and the delivery worker crashed).
        """
        conn = self._state.conn
        if conn is not None and not conn.in_transaction:
            return None
        return super().rollback()


class PipelinedPostgresqlDatabase(PooledPostgresqlDatabase):
    """The pool, able to send a transaction's statements together (``pipelined``).

    Inside ``pipelined()`` psycopg's pipeline mode queues statements instead of waiting for each
    answer. Every statement that goes through ``execute_sql`` (peewee's queries, ``first_row``)
    still waits for its answer, so its rows and row count are there as before; what does not wait
    is peewee's BEGIN and COMMIT (sent with the next statement, and at the block's end) and the
    writes that ``insert_row`` and ``update_rows`` make under ``deferred()``.
    """

    def execute_sql(self, sql, params=None, *, wait=True):
        cursor = super().execute_sql(sql, params)
        pipeline = getattr(_batch, "pipeline", None)
        if wait and pipeline is not None:
            with as_peewee_errors:
                pipeline.sync()
        return cursor


_batch = threading.local()


@contextmanager
def pipelined():
    """Send the block's statements to PostgreSQL together where nothing waits for their answers.

    Each answer a statement waits for costs a round trip, 0.06-0.08 ms of the worker's own CPU
    (benchmarks/portal_signin.py). In this block BEGIN goes out with the first statement, and the
    writes of ``insert_row`` and ``update_rows`` under ``deferred()`` go out with the COMMIT, in
    one round trip at the block's end. An error in a deferred write is raised there, as peewee's
    error (IntegrityError, ...), and nothing of the transaction is kept: wrap the whole
    transaction (``with pipelined(), database.atomic():``) so that nothing after it runs as if it
    had been written. SQLite answers in the process: nothing changes.
    """
    if not is_postgres() or getattr(_batch, "pipeline", None) is not None:
        yield
        return
    block = database.connection().pipeline()
    with as_peewee_errors:  # psycopg's errors, raised as peewee's
        _batch.pipeline = block.__enter__()
    _batch.ahead = {}
    try:
        yield
    except BaseException as exc:
        _batch.pipeline, _batch.ahead = None, {}
        block.__exit__(type(exc), exc, exc.__traceback__)  # the block's error is the one raised
        _end_failed_transaction()
        raise
    _batch.pipeline, _batch.ahead = None, {}
    try:
        with as_peewee_errors:
            block.__exit__(None, None, None)
    except Exception:
        _end_failed_transaction()
        raise


def idle_connection():
    """The thread's PostgreSQL connection (psycopg's) when no transaction or pipeline is open on
    it, else None (and None on SQLite)."""
    if not is_postgres() or database.in_transaction() or getattr(_batch, "pipeline", None) is not None:
        return None
    conn = database.connection()
    return conn if conn.info.transaction_status == TransactionStatus.IDLE else None


def _end_failed_transaction() -> None:
    """After an error in a pipeline PostgreSQL skips the rest up to the next sync, ROLLBACK and
    COMMIT included: the connection is left in the failed transaction. End it here, unless an
    outer transaction of peewee's is still open (its own exit rolls back)."""
    conn = database.connection()
    if database.transaction_depth() == 0 and conn.info.transaction_status == TransactionStatus.INERROR:
        conn.execute("ROLLBACK")


@contextmanager
def deferred():
    """In ``pipelined()``, the block's ``update_rows`` and ``insert_row`` do not wait for their
    answers: ``update_rows`` returns None instead of a row count and ``insert_row`` returns the row
    without its id. For writes whose answers nobody reads (the sign-in's last-sign-in time and its
    audit entry). Everything else in the block, peewee's queries included, waits as usual; outside
    a pipeline (SQLite, or no ``pipelined()`` around) nothing changes."""
    previous = getattr(_batch, "defer", False)
    _batch.defer = True
    try:
        yield
    finally:
        _batch.defer = previous


def _deferring() -> bool:
    return getattr(_batch, "pipeline", None) is not None and getattr(_batch, "defer", False)


def _execute_write(sql, params):
    """A write of ``insert_row`` / ``update_rows``: queued without waiting under ``deferred()``
    in a pipeline (PostgreSQL only), executed as any other statement otherwise."""
    if _deferring():
        return database.obj.execute_sql(sql, params, wait=False)
    return database.execute_sql(sql, params)


def connect_url(url: str):
    """Build (not open) the database named by a URL: sqlite:///path or postgresql://..."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else parsed.path
        return WriteFirstSqliteDatabase(path or ":memory:", pragmas=SQLITE_PRAGMAS, timeout=10)
    if parsed.scheme in ("postgres", "postgresql"):
        # A pool: a new PostgreSQL connection costs 10-15 ms, more than most pages. psycopg's
        # automatic prepared statements stay on: measured, they halve the search's p95.
        return PipelinedPostgresqlDatabase(
            parsed.path.lstrip("/"),
            user=parsed.username,
            password=parsed.password,
            host=parsed.hostname,
            port=parsed.port or 5432,
            prefer_psycopg3=True,
            autoconnect=True,
            max_connections=int(os.environ.get("DATABASE_POOL_SIZE", "32")),
            stale_timeout=300,
            timeout=10,
        )
    raise ValueError(f"unsupported DATABASE_URL scheme: {parsed.scheme!r}")


_current_url: list[str | None] = [None]


def init_database(url: str):
    """Point the process's database handle at ``url``.

    One process serves one database: a second app for the same URL (the test suite builds many)
    keeps the handle and its open connections. Only a different URL replaces it, and then the
    old database's connections are closed.
    """
    if database.obj is not None and _current_url[0] == url:
        return database.obj
    previous = database.obj
    if previous is not None:
        if hasattr(previous, "close_all"):
            previous.close_all()
        elif not previous.is_closed():
            previous.close()
    db = connect_url(url)
    database.initialize(db)
    _current_url[0] = url
    return db


def is_postgres() -> bool:
    return isinstance(database.obj, PostgresqlDatabase)


_ROW_SQL: dict[tuple, tuple[str, tuple]] = {}


def ask_ahead(key, model, where: str, *params) -> None:
    """Send ``first_row``'s statement now without waiting for its answer, in ``pipelined()``: it
    goes to PostgreSQL with the next statement that waits, and ``first_row(..., ahead=key)`` then
    takes the answer instead of asking again (one round trip for both). For a read that the block
    will probably need after a write whose answer decides (the sign-in asks the terms with its
    trusted browser's UPDATE). The answer is as of when it was sent; one not taken is dropped at
    the block's end. Outside a pipeline (SQLite) nothing is sent and ``first_row`` asks as usual.
    """
    if getattr(_batch, "pipeline", None) is None:
        return
    sql, _fields = _row_statement(model, where, "")
    _batch.ahead[key] = (sql, database.obj.execute_sql(sql, params, wait=False))


def _row_statement(model, where: str, order_by: str) -> tuple[str, tuple]:
    key = (model, where, order_by, database.param)
    statement = _ROW_SQL.get(key)
    if statement is None:
        fields = model._meta.sorted_fields
        columns = ", ".join(f'"{f.column_name}"' for f in fields)
        sql = (f'SELECT {columns} FROM "{model._meta.table_name}"'
               f' WHERE {where.replace("?", database.param)}'
               + (f" ORDER BY {order_by}" if order_by else "") + " LIMIT 1")
        statement = _ROW_SQL[key] = (sql, tuple((f.name, f.python_value) for f in fields))
    return statement


def first_row(model, where: str, *params, order_by: str = "", ahead=None):
    """The first ``model`` row matching a hand-written ``where`` (``?`` placeholders), or None.

    For the few lookups that nearly every request makes (the signed-in principal and its session,
    the site flags, the migration period, the user signing in). Peewee builds a query's SQL text
    anew at every call (0.1 ms for a small table, 0.5 ms for ``user`` with its thirty columns) and
    maps the cursor's columns to fields again for every result (another 0.05 ms): more than
    SQLite takes to answer (benchmarks/portal_signin.py). Here both are worked out once per
    (model, condition, placeholder style), and the row comes back as the model a peewee select
    gives: every value converted by its field, nothing marked changed. ``where`` names columns
    as they are in the table. ``ahead``: the key of an ``ask_ahead`` that sent this statement.
    """
    sql, fields = _row_statement(model, where, order_by)
    sent = getattr(_batch, "ahead", None) and _batch.ahead.pop(ahead, None)
    if sent and sent[0] == sql:
        with as_peewee_errors:
            values = sent[1].fetchone()
    else:
        values = database.execute_sql(sql, params).fetchone()
    if values is None:
        return None
    row = model(__no_default__=1)
    row.__data__ = {name: convert(value) for (name, convert), value in zip(fields, values, strict=True)}
    return row


_INSERT_SQL: dict[tuple, str] = {}


def insert_row(model, **values):
    """Insert one ``model`` row and return it, as ``model.create(**values)`` does (defaults filled,
    values converted by their fields), with the INSERT's text built once per (model, columns).
    Under ``deferred()`` on PostgreSQL the row comes back without its id.

    For the rows that a sign-in writes (its audit entry, its session): see ``first_row``.
    """
    meta = model._meta
    for field, default in meta.defaults.items():
        if field.name not in values:
            values[field.name] = default() if callable(default) else default
    names = tuple(values)
    returning = is_postgres() and not _deferring()
    key = (model, names, database.param, returning)
    sql = _INSERT_SQL.get(key)
    if sql is None:
        columns = ", ".join(f'"{meta.fields[name].column_name}"' for name in names)
        sql = (f'INSERT INTO "{meta.table_name}" ({columns})'
               f' VALUES ({", ".join([database.param] * len(names))})')
        if returning:
            sql += f' RETURNING "{meta.primary_key.column_name}"'
        _INSERT_SQL[key] = sql
    cursor = _execute_write(sql, [meta.fields[name].db_value(values[name]) for name in names])
    row = model(**values)
    if returning:
        setattr(row, meta.primary_key.name, cursor.fetchone()[0])
    elif not is_postgres():
        setattr(row, meta.primary_key.name, cursor.lastrowid)
    row._dirty.clear()
    return row


_UPDATE_SQL: dict[tuple, str] = {}


def update_rows(model, where: str, params: tuple, **values) -> int | None:
    """``model.update(**values).where(...)`` with the text built once per (model, columns,
    condition); returns the number of rows changed (None under ``deferred()`` on PostgreSQL: not
    known yet). ``where`` is written as in ``first_row``; its ``params`` are given as the database
    takes them (``Field.db_value`` for times).

    For the rows that every sign-in changes (the user's last sign-in, its trusted browser): peewee
    spends 0.05-0.1 ms building each UPDATE, about what SQLite takes to run it.
    """
    meta = model._meta
    names = tuple(values)
    key = (model, names, where, database.param)
    sql = _UPDATE_SQL.get(key)
    if sql is None:
        columns = ", ".join(f'"{meta.fields[name].column_name}" = {database.param}' for name in names)
        sql = f'UPDATE "{meta.table_name}" SET {columns} WHERE {where.replace("?", database.param)}'
        _UPDATE_SQL[key] = sql
    new_values = [meta.fields[name].db_value(values[name]) for name in names]
    cursor = _execute_write(sql, new_values + list(params))
    return None if _deferring() else cursor.rowcount
