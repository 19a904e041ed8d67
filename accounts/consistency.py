"""The database's own consistency check (``flask --app app check-db``), for after a restore or a crash.

A backup that restores without an error can still be the wrong thing to go live with: a copy
taken file by file while the app wrote, a dump restored without its indexes, a counter that a
half-applied change left behind. ``problems()`` returns one line per thing that is wrong, from
the rules this application keeps:

- the schema: every migration applied, every table, column and index the models declare, and
  the search index (FTS5 table and triggers on SQLite, trigram and covering indexes on PostgreSQL);
- the migration-progress counters of each contract equal its users (SPEC 7 keeps them in the
  transaction of the change, so they must match exactly);
- no orphan rows: every foreign key points at a row that exists, and every mail has its user;
- per mail: a known status, and a sent mail has the attempt the server accepted;
- SQLite's own ``quick_check`` and the FTS5 index against its table (skipped with ``quick``).
"""
from .db import database, is_postgres
from .models import ALL_MODELS, Contract, Mail, MailAttempt, User

MAIL_STATUSES = ("queued", "sent", "failed")


def problems(quick: bool = False) -> list[str]:
    """Every problem found, one line each; an empty list when the database is consistent."""
    found = _schema_problems()
    if any(line.startswith("missing table") for line in found):
        return found   # the row checks would only fail on the missing tables
    found += _counter_problems()
    found += _orphan_problems()
    found += _row_problems()
    if not quick:
        found += _engine_problems()
    return found


def summary() -> str:
    """What was checked, for the line printed when nothing is wrong."""
    counts = {m._meta.table_name: m.select().count() for m in (Contract, User, Mail)}
    return (f"{len(ALL_MODELS)} tables; {counts['contract']:,} contracts, {counts['user']:,} users, "
            f"{counts['mail']:,} mails")


def _schema_problems() -> list[str]:
    from playhouse.schema_diff import diff_models

    from . import search_index
    from .schema import pending

    out = [f"migration {name} is not applied (run flask --app app db-upgrade)" for name in pending()]
    diff = diff_models(database.obj, ALL_MODELS)
    out += [f"missing table {m._meta.table_name}" for m in diff.create_tables]
    out += [f"missing column {f.model._meta.table_name}.{f.column_name}" for f in diff.add_columns]
    out += _missing_indexes(diff.create_tables, set(search_index.OWN_INDEXES))
    if is_postgres():
        present = {r[0] for r in database.execute_sql(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'user'")}
        wanted = [*search_index.PG_INDEXES, *search_index.PREFIX_INDEXES]
        out += [f"missing search index {name}" for name in wanted if name not in present]
    else:
        present = {r[0] for r in database.execute_sql("SELECT name FROM sqlite_master")}
        wanted = ["user_search", *search_index.SQLITE_TRIGGERS, *search_index.PREFIX_INDEXES]
        out += [f"missing search index {name}" for name in wanted if name not in present]
    return out


def _missing_indexes(missing_tables, search_indexes: set) -> list[str]:
    """Indexes the models declare that the database lacks, by columns and uniqueness.

    The search index's own indexes do not count (playhouse.schema_diff pairs them: on
    PostgreSQL ``(email_key) INCLUDE (id)`` would stand in for a dropped ``(email_key)``)."""
    from peewee import Field, Index

    out = []
    for model in ALL_MODELS:
        meta = model._meta
        if getattr(meta, "extension_module", None) or model in missing_tables:
            continue
        present = [(tuple(i.columns), bool(i.unique)) for i in database.get_indexes(meta.table_name)
                   if i.name not in search_indexes]
        wanted = sorted({(tuple(p.column_name for p in index._expressions), bool(index._unique))
                         for index in meta.fields_to_index()
                         if isinstance(index, Index) and index._where is None
                         and all(isinstance(p, Field) for p in index._expressions)})
        for columns, unique in wanted:   # a set: a foreign key may be declared indexed twice
            if (columns, unique) in present:
                present.remove((columns, unique))
            else:
                out.append(f"missing index {meta.table_name}({', '.join(columns)})"
                           f"{' unique' if unique else ''}")
    return out


def _counter_problems() -> list[str]:
    rows = database.execute_sql(
        'SELECT c.ecid, c.users_total, c.users_first_login_done, '
        'COUNT(u.id), COUNT(u.first_login_done_at) '
        'FROM contract c LEFT JOIN "user" u ON u.contract_id = c.id '
        'GROUP BY c.id, c.ecid, c.users_total, c.users_first_login_done '
        'HAVING c.users_total <> COUNT(u.id) OR c.users_first_login_done <> COUNT(u.first_login_done_at) '
        'ORDER BY c.ecid')
    return [f"contract {ecid}: users_total {total} but {users} users; users_first_login_done {done} "
            f"but {done_users} users with a finished first login"
            for ecid, total, done, users, done_users in rows]


def _foreign_keys():
    for model in ALL_MODELS:
        for field in model._meta.sorted_fields:
            if getattr(field, "rel_model", None) is not None:
                yield model, field


def _orphan_problems() -> list[str]:
    out = []
    for model, field in _foreign_keys():
        child, parent = model._meta.table_name, field.rel_model._meta.table_name
        key = field.rel_field.column_name
        n = database.execute_sql(
            f'SELECT COUNT(*) FROM "{child}" c LEFT JOIN "{parent}" p ON p."{key}" = c."{field.column_name}" '
            f'WHERE c."{field.column_name}" IS NOT NULL AND p."{key}" IS NULL').fetchone()[0]
        if n:
            out.append(f"{n} orphan rows in {child}: {field.column_name} points at no {parent} row")
    n = Mail.select().where(Mail.user.is_null(True)).count()
    if n:
        out.append(f"{n} mails have no user")
    return out


def _row_problems() -> list[str]:
    out = []
    n = Mail.select().where(Mail.status.not_in(MAIL_STATUSES)).count()
    if n:
        out.append(f"{n} mails with an unknown status")
    accepted = MailAttempt.select(MailAttempt.mail).where(MailAttempt.ok == True)  # noqa: E712
    n = Mail.select().where((Mail.status == "sent") & (Mail.id.not_in(accepted))).count()
    if n:
        out.append(f"{n} mails marked sent without an accepted delivery attempt")
    return out


def _engine_problems() -> list[str]:
    if is_postgres():
        return []
    out = [f"sqlite quick_check: {row[0]}" for row in database.execute_sql("PRAGMA quick_check")
           if row[0] != "ok"]
    try:
        database.execute_sql("INSERT INTO user_search(user_search, rank) VALUES ('integrity-check', 1)")
    except Exception as exc:  # noqa: BLE001 - the message is the finding
        out.append(f"search index user_search does not match the user table ({exc}); "
                   "rebuild it: INSERT INTO user_search(user_search) VALUES ('rebuild')")
    return out


def command(quick: bool = False, echo=print) -> int:
    """``flask --app app check-db``: 0 when consistent, 1 with one line per problem."""
    from peewee import DatabaseError

    try:
        with database.connection_context():
            found = problems(quick=quick)
            if not found:
                echo(f"ok: {summary()}")
                return 0
    except DatabaseError as exc:
        echo(f"cannot check the database: {type(exc).__name__}: {exc}")
        return 1
    for line in found:
        echo(line)
    return 1
