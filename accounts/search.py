"""The console's user search: prefix and substring, filters, keyset pages, scope inside the query.

Why it is shaped like this (SPEC 9: a million users, p95 under 30 ms prefix / 150 ms substring;
issue 14: every key press of a prefix, from the first character, under 15 ms):
- prefix search is a B-tree range per column (``col >= q AND col < q || U+FFFF``), which both
  SQLite and PostgreSQL answer from the user table's indexes, unlike ``LIKE 'q%'`` whose index use
  depends on collation settings; login ID and e-mail through (id bucket, column) indexes read in
  bucket order (``_bucket_cond``), so that a prefix most users share and a prefix whose users sit
  together at the end of the table both cost about one page; its statements are written as text
  around the scope (``_prefix_ids``) and, on PostgreSQL, run with a generic plan (``_execute``);
- substring search (3+ characters) goes through the trigram index (FTS5 on SQLite, pg_trgm on
  PostgreSQL): on SQLite the FTS table drives the query in rowid (= user id) order, so a common
  substring stops after one page instead of sorting every match; on PostgreSQL a window of ids
  comes first (``_pg_substring_ids``);
- a page is read as plain ``Found`` rows, not model instances;
- pages are keyset pages on the user id (``id > after`` / ``id < before``) fetching one row more
  than shown to know whether there is a next page: no OFFSET and no total count on the hot path;
- the caller's scope (accounts.scope.user_condition) is a condition of the same query, never a
  filter applied afterwards.
"""
import re
import unicodedata
from dataclasses import dataclass, field

from peewee import SQL, Expression, NodeList, Table, __exception_wrapper__, fn

from . import fields, scope, search_index
from .clock import utcnow
from .db import database, is_postgres
from .models import PORTALS, TWOSTEP_METHODS, Contract, User

PAGE_SIZE = 25
MAX_QUERY = 100
SUBSTRING_MIN = 3
HIGH = "\uffff"
ECID_RE = re.compile(r"^ecid\d{0,10}\Z", re.IGNORECASE)

# The FTS5 table (accounts.search_index); its hidden column of the same name takes MATCH.
USER_SEARCH = Table("user_search", ("rowid", "user_search"))

PREFIX = "prefix"
CONTAINS = "contains"


@dataclass
class Query:
    """What the search form asks for (every field optional)."""

    q: str = ""
    match: str = PREFIX                 # prefix | contains
    contract: str = ""                  # an ECID (exact)
    first_login: str = ""               # "" | done | pending
    locked: str = ""                    # "" | yes | no
    method: str = ""                    # "" | mail | totp | none
    after: int | None = None
    before: int | None = None

    @classmethod
    def from_args(cls, args) -> "Query":
        def _int(name):
            return fields.whole_number((args.get(name) or "").strip())

        def _choice(name, allowed):
            value = (args.get(name) or "").strip()
            return value if value in allowed else ""

        return cls(
            q=(args.get("q") or "").strip()[:MAX_QUERY],
            match=CONTAINS if args.get("match") == CONTAINS else PREFIX,
            contract=(args.get("contract") or "").strip().lower()[:14],
            first_login=_choice("first_login", ("done", "pending")),
            locked=_choice("locked", ("yes", "no")),
            method=_choice("method", (*TWOSTEP_METHODS, "none")),
            after=_int("after"),
            before=_int("before"),
        )

    def args(self, **changes) -> dict:
        """Query-string arguments for a link to this search (empty values left out)."""
        data = {"q": self.q, "match": self.match if self.match != PREFIX else "",
                "contract": self.contract, "first_login": self.first_login, "locked": self.locked,
                "method": self.method}
        data.update(changes)
        return {k: v for k, v in data.items() if v not in ("", None)}

    @property
    def substring_too_short(self) -> bool:
        return self.match == CONTAINS and 0 < len(self.q) < SUBSTRING_MIN


@dataclass
class Page:
    users: list = field(default_factory=list)
    next_after: int | None = None    # id to continue after (next page), None on the last page
    prev_before: int | None = None   # id to go back before (previous page), None on the first


def _range(column, q: str):
    """Prefix as a range: index-friendly on both databases, no LIKE escaping needed."""
    return (column >= q) & (column < q + HIGH)


def _phone_key(q: str) -> str:
    """A typed phone prefix compares on its digits (03-1234 finds 031234...)."""
    text = unicodedata.normalize("NFKC", q)
    return "".join(c for c in text if "0" <= c <= "9")


COMMON = 5000  # about 0.5% of a million users: where walking ids in order wins
BUCKET_COMMON = 1000  # login ID, e-mail: from here the bucket index (a seek per bucket) wins


def _plain(column):
    """The column as an expression no index serves (``col || ''``), on both databases."""
    return column.concat("")


def _small_scope_prefix_conditions(q: str, principal, in_scope) -> list:
    """One condition per column the typed prefix may start, deliberately in a form no index
    serves, so that a small scope's contract index drives the query instead."""
    low = q.lower()
    conds = [_range(_plain(User.login_id_key), low), _range(_plain(User.email_key), low),
             *[_range(_plain(column), value) for column, value in _other_prefix_columns(q)]]
    if ECID_RE.match(q):
        # The scope's contracts only: an ECID prefix such as "ecid1" matches every contract.
        conds.append(User.contract.in_(Contract.select(Contract.id).where(
            _range(Contract.ecid, low) & scope.contract_condition(principal, in_scope))))
    return conds


def _other_prefix_columns(q: str) -> list:
    """(column, prefix) for name and phone, the columns without a bucket index."""
    columns = [(User.name, q)]
    phone = _phone_key(q)
    if phone and len(phone) >= max(1, len(re.sub(r"[\s\-()+]", "", q))):
        columns.append((User.phone, phone))
    return columns


ECID_FEW = 100  # contracts: up to this many, their ids go into the query
# A few contracts holding fewer users than this: their users through the contract index, then a
# sort; more: the ids walked in order (26 of a contract's 20,000 users come within ~1,300 ids). A
# walk costs about 2.5 us a row, the index 0.15 us an entry: they cross near 20,000 users (one
# contract of 10,000 users: 13 ms walking, 2 ms through the index).
ECID_COMMON = 20_000


def _ecid_arm(conds, low: str, contracts: int, users: int):
    """The page query for users whose contract's ECID starts with ``low`` (``contracts`` of them
    matched, up to ECID_FEW + 1, holding ``users`` users by their counters), or None.

    Every ECID starts with "ecid" and most with the same digits, so the first characters typed
    match every contract: then the ids are walked in order and each user's contract looked up
    (a few rows per page), instead of collecting every matching contract's id for each request
    (10,000 contracts: 15-25 ms on SQLite). A few contracts: their users are few (the contract
    index, then a sort) or many (ids in order, the contract index kept out: contract_id + 0).
    """
    if not contracts:
        return None
    ecid = _range(Contract.ecid, low)
    if contracts > ECID_FEW:
        cond = fn.EXISTS(Contract.select(SQL("1")).where((Contract.id == User.contract) & ecid))
        return User.select(User.id).where(_all([*conds, cond])), User.id
    ids = Contract.select(Contract.id).where(ecid)
    if users < ECID_COMMON:
        return User.select(User.id).where(_all([*conds, User.contract.in_(ids)])), User.id + 0
    return User.select(User.id).where(_all([*conds, (User.contract + 0).in_(ids)])), User.id


def _bucket():
    """A user's id bucket written exactly as accounts.search_index.PREFIX_INDEXES index it (a
    literal shift: an index on an expression serves only the same expression)."""
    return Expression(User.id, ">>", SQL(str(search_index.BUCKET_BITS)))


class _BucketOrder:
    """ORDER BY (bucket, id), ascending or descending, for ``_union_ids``."""

    def asc(self):
        return NodeList((_bucket(), User.id), glue=", ")

    def desc(self):
        return NodeList((_bucket().desc(), User.id.desc()), glue=", ")


GENERIC = "generic"
CUSTOM = "custom"
SERIAL = "serial"
# How each plan mode runs a statement on PostgreSQL: prepared or not, and the settings it runs with.
# No search statement runs in parallel workers: they read a page, and launching the workers cost
# 20-25 ms here, more than the statement (an ECID prefix of one large contract: 33 ms with two
# workers for 5,000 rows a single process reads in 3 ms).
_PLANS = {
    GENERIC: (True, {"plan_cache_mode": "force_generic_plan", "max_parallel_workers_per_gather": "0"}),
    SERIAL: (False, {"max_parallel_workers_per_gather": "0"}),
    CUSTOM: (False, {}),
}


def _execute(sql: str, params: list, plan: str | None = None):
    """Run ``sql`` and return its rows; on PostgreSQL, ``plan`` chooses how it is planned.

    - GENERIC: prepared, with a generic plan, serial. For the prefix search's two statements,
      whose every part has one possible plan by its shape: planning them for each typed value cost
      more than running them (the bucket arms with their list of buckets: about 2.5 ms of planning
      for 3 ms of execution, the probe 0.8 ms for 1 ms), and PostgreSQL plans a prepared
      statement anew for every value until it trusts a generic plan, if it ever does.
    - SERIAL: planned for its values, serial (the prefix search with an ECID arm, whose plan
      depends on how many contracts and users the value matches).
    - CUSTOM: never prepared, so planned for its values every time; parallel workers allowed. For
      a substring's trigram statement: psycopg prepares a statement run five times, and
      PostgreSQL may then keep a plan made without the pattern, which cannot know how many rows
      hold its trigrams (seen: 1 s instead of 3 ms for ``r0123``); a common trigram's tens of
      thousands of rows are rechecked faster by three processes.

    The settings hold for this statement only.
    """
    if plan is None or not is_postgres():
        return database.execute_sql(sql, params).fetchall()
    prepare, settings = _PLANS[plan]
    with __exception_wrapper__:  # driver errors as peewee.OperationalError etc., like execute_sql
        connection = database.connection()
        cursor = connection.cursor()
        if not settings:
            cursor.execute(sql, params, prepare=prepare)
            return cursor.fetchall()
        setting = connection.cursor()
        # One pipeline, one round trip. It is one transaction (one Sync, or the caller's): a
        # failure skips the RESETs but rolls the SETs back with it, so the pooled connection's
        # other statements run as configured either way (tests/accounts/test_admin_search.py).
        with connection.pipeline():
            for name, value in settings.items():
                setting.execute(f"SET {name} = {value}")
            cursor.execute(sql, params, prepare=prepare)
            for name in settings:
                setting.execute(f"RESET {name}")
        return cursor.fetchall()


def _prefix_ids(base, keyset_conds, query: "Query", backwards: bool, limit: int) -> list[int]:
    """The first ``limit`` ids in page order of users a typed prefix starts a column of.

    One query per column (each can use its own index) as arms of one UNION ALL: an OR across
    columns makes the planners fall back to scanning everything, and a round trip per column
    costs more than most of these queries on a busy machine. Before it, one statement counts
    each column's matches up to a threshold, which decides that column's query:

    - few matches: the column's index, then a sort of them (ORDER BY id + 0: no walk of the
      primary key);
    - many: login ID and e-mail (numbered in the order of the export, so their matches may sit
      together anywhere in the table) bucket after bucket (``_bucket_query``); name and phone
      (spread over the ids) the ids in order, the column's index kept out (col || ''), which
      finds a page after a few hundred rows where the index would collect and sort every match.

    The planners guess this badly (SQLite has no statistics, PostgreSQL's histogram is too coarse
    for prefixes and a generic plan knows no prefix at all), so each query is written to have
    only the one plan.

    The statements are written here as text around the scope and filters (rendered by peewee once):
    peewee took 2.3-3.2 ms to build the probe and arm queries of one key press, more than
    PostgreSQL takes to run them. Only the rare ECID arm and SQLite's previous page of a bucket
    query are still built by peewee.
    """
    p = database.param
    low = query.q.lower()
    where, where_params = _where_sql([*base, *keyset_conds])
    # (column, value, condition's extra text and params) for the login ID and the e-mail: the
    # login ID's index is (portal, login_id_key): naming both portals lets PostgreSQL use it.
    portal = (f'"t1"."portal" IN ({", ".join(p for _ in PORTALS)})', list(PORTALS))
    bucketed = [("login_id_key", low, portal), ("email_key", low, None)]
    others = [(column.column_name, value) for column, value in _other_prefix_columns(query.q)]
    ecid = bool(ECID_RE.match(query.q))
    counts = _scalars_sql(*_probes_sql(bucketed, others, low if ecid else None))
    top = counts[len(bucketed) + len(others)]
    arms, found = [], []

    def arm(cond: str, params: list, order: tuple[str, str]):
        arms.append(_arm_sql(where, where_params, cond, params, order[1] if backwards else order[0], limit))

    for (column, value, extra), n in zip(bucketed, counts, strict=False):
        if n < BUCKET_COMMON:
            cond, params = _range_sql(f'"t1"."{column}"', value)
            if extra:
                cond, params = f"{extra[0]} AND {cond}", [*extra[1], *params]
            arm(cond, params, BY_ID_SORTED)
        elif backwards and not is_postgres():
            found += _sqlite_buckets_backwards([*base, _range(getattr(User, column), value), *keyset_conds],
                                               query, top, limit)
        else:
            bucket = _bucket_cond(column, value, query, backwards, top)
            if bucket is not None:
                arm(*bucket)
    for (column, value), n in zip(others, counts[len(bucketed):], strict=False):
        if n >= COMMON:
            arm(*_range_sql(f"(\"t1\".\"{column}\" || '')", value), BY_ID)
        else:
            arm(*_range_sql(f'"t1"."{column}"', value), BY_ID_SORTED)
    ecid_arm = _ecid_arm([*base, *keyset_conds], low, counts[-2], counts[-1]) if ecid else None
    if ecid_arm is not None:
        q, order = ecid_arm
        arms.append(q.order_by(order.desc() if backwards else order.asc()).limit(limit).sql())
    # The ECID arm's plan depends on the typed value (how many contracts and users it matches).
    ids = _union_sql(arms, backwards, limit, generic=ecid_arm is None)
    return sorted({*found, *ids}, reverse=backwards)[:limit]


def _where_sql(conds) -> tuple[str, list]:
    """Conditions on the user table as SQL text on "t1" (the alias of every statement here) and
    their parameters, rendered by peewee."""
    if not conds:
        return "1 = 1", []
    text, params = User.select(User.id).where(_all(conds)).sql()
    return text.split(" WHERE ", 1)[1], params


def _range_sql(column: str, value: str) -> tuple[str, list]:
    """``_range`` as text: the prefix ``value`` as a range on ``column``."""
    p = database.param
    return f"({column} >= {p} AND {column} < {p})", [value, value + HIGH]


BY_ID = ('"t1"."id"', '"t1"."id" DESC')
BY_ID_SORTED = ('("t1"."id" + 0)', '("t1"."id" + 0) DESC')  # the matches sorted: no walk of the primary key


def _arm_sql(where: str, where_params: list, cond: str, params: list, order: str, limit: int):
    """One column's page statement: the ids matching the scope, filters and keyset (``where``) and
    ``cond``, in ``order``, up to ``limit``."""
    return (f'SELECT "t1"."id" FROM "user" AS "t1" WHERE ({where}) AND {cond} ORDER BY {order} LIMIT {limit}',
            [*where_params, *params])


def _bucket_cond(column: str, value: str, query: "Query", backwards: bool, top: int | None):
    """(condition, params, (order, order backwards)) of a prefix of ``column`` (one of
    search_index.PREFIX_INDEXES) read bucket after bucket from its bucket index, ordered by
    (bucket, id); None when no bucket is left. ``top`` is the highest user id.

    Each bucket's matches are sorted by id within the bucket only, and the query stops at the
    bucket that fills the page: a prefix of most users costs one bucket (at most 4,096 index
    entries), a prefix of users gathered anywhere in the table one index seek per bucket before
    them. The shift is written exactly as the index's (an index on an expression serves only the
    same expression); on PostgreSQL the column in the "C" collation, as the index holds it
    (accounts.search_index.prefix_index_sql).
    """
    buckets = _bucket_list(query, backwards, top)
    if buckets is None:
        return None
    key = f'"t1"."{column}"' + (' COLLATE "C"' if is_postgres() else "")
    cond, params = _range_sql(key, value)
    shift = f'("t1"."id" >> {search_index.BUCKET_BITS})'
    return (f"{cond} AND {shift} IN ({buckets})", params,
            (f'{shift}, "t1"."id"', f'{shift} DESC, "t1"."id" DESC'))


_PROBES_SQL: dict[tuple, str] = {}
ECID_COLUMN = '"t1"."ecid"'


def _probes_sql(bucketed, others, ecid_low: str | None) -> tuple[str, list]:
    """The probe statement: each column's matches counted up to its threshold, the highest user
    id, and for an ECID prefix the matching contracts (up to ECID_FEW + 1) and their users."""
    p = database.param
    params = []
    for _, value, extra in bucketed:
        params += [*(extra[1] if extra else []), value, value + HIGH]
    for _, value in others:
        params += [value, value + HIGH]
    if ecid_low is not None:
        params += [ecid_low, ecid_low + HIGH] * 2
    key = (p, tuple(c for c, _, _ in bucketed), tuple(c for c, _ in others), ecid_low is not None,
           BUCKET_COMMON, COMMON, ECID_FEW)
    sql = _PROBES_SQL.get(key)
    if sql is None:
        def count(cond: str, threshold: int) -> str:
            return (f'(SELECT COUNT(*) FROM (SELECT 1 FROM "user" AS "t1" WHERE {cond} LIMIT {threshold}) '
                    f'AS "probe")')

        parts = []
        for column, value, extra in bucketed:
            cond = _range_sql(f'"t1"."{column}"', value)[0]
            parts.append(count(f"{extra[0]} AND {cond}" if extra else cond, BUCKET_COMMON))
        parts += [count(_range_sql(f'"t1"."{column}"', value)[0], COMMON) for column, value in others]
        parts.append('(SELECT MAX("t1"."id") FROM "user" AS "t1")')
        if ecid_low is not None:
            contracts = (f'(SELECT "t1"."users_total" FROM "contract" AS "t1" WHERE '
                         f'{_range_sql(ECID_COLUMN, "")[0]} LIMIT {ECID_FEW + 1}) AS "c"')
            parts += [f"(SELECT COUNT(*) FROM {contracts})",
                      f'(SELECT COALESCE(SUM("c"."users_total"), 0) FROM {contracts})']
        sql = "SELECT " + ", ".join(parts)
        _PROBES_SQL[key] = sql
    return sql, params


def _scalars_sql(sql: str, params: list) -> tuple:
    """One statement of scalar subqueries, one round trip; on PostgreSQL with a generic plan."""
    return tuple(_execute(sql, params, GENERIC)[0])


def _union_sql(arms, backwards: bool, limit: int, generic: bool) -> list[int]:
    """The ids of several page statements (text, params), each its own plan, in one statement."""
    if not arms:
        return []
    text = " UNION ALL ".join(f'SELECT * FROM ({sql}) AS "arm{i}"' for i, (sql, _) in enumerate(arms))
    rows = _execute(text, [v for _, params in arms for v in params], GENERIC if generic else SERIAL)
    return sorted({row[0] for row in rows}, reverse=backwards)[:limit]


def _bucket_list(query: "Query", backwards: bool, top: int | None) -> str | None:
    """The buckets a bucket query reads, as literal numbers (made here, not typed: a million users
    have 245 buckets, and a bound parameter each would cost more than the query), or None when no
    bucket is left. ``top`` is the highest user id."""
    bits = search_index.BUCKET_BITS
    if top is None:
        return None
    if backwards:
        first, last = 0, min(query.before, top) >> bits
    else:
        first, last = (query.after or 0) >> bits, top >> bits
    if first > last:
        return None
    return ",".join(str(b) for b in range(first, last + 1))


def _sqlite_buckets_backwards(conds, query: "Query", top: int | None, limit: int) -> list[int]:
    """A previous page on SQLite: its IN loop runs in ascending order only, so ``ORDER BY bucket
    DESC`` sorted every match of every bucket (55 ms for ``u`` half-way through the table). Here
    chunks of buckets from the highest down, each twice as many buckets as the one before, each
    sorted on its own: a page of a prefix most users share costs one bucket again.
    """
    if top is None:
        return []
    bits = search_index.BUCKET_BITS
    last, size, found = min(query.before, top) >> bits, 1, []
    while last >= 0 and len(found) < limit:
        first = max(0, last - size + 1)
        buckets = SQL("(" + ",".join(str(b) for b in range(first, last + 1)) + ")")
        q = (User.select(User.id).where(_all([*conds, Expression(_bucket(), "IN", buckets)]))
             .order_by(_BucketOrder().desc()).limit(limit - len(found)))
        found += [row[0] for row in q.tuples()]
        last, size = first - 1, size * 2
    return found


def fts_phrase(q: str) -> str:
    """An FTS5 query matching ``q`` literally: one quoted phrase, inner quotes doubled."""
    return '"' + q.replace('"', '""') + '"'


def like_pattern(q: str) -> str:
    """``%q%`` for ILIKE with the wildcards of q escaped (backslash is PostgreSQL's escape)."""
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filters(query: Query):
    conds = []
    if query.contract:
        conds.append(User.contract.in_(Contract.select(Contract.id).where(Contract.ecid == query.contract)))
    if query.first_login == "done":
        conds.append(User.first_login_done_at.is_null(False))
    elif query.first_login == "pending":
        conds.append(User.first_login_done_at.is_null(True))
    now = utcnow()
    if query.locked == "yes":
        conds.append(User.locked_until > now)
    elif query.locked == "no":
        conds.append(User.locked_until.is_null(True) | (User.locked_until <= now))
    if query.method == "none":
        conds.append(User.twostep_method.is_null(True))
    elif query.method:
        conds.append(User.twostep_method == query.method)
    return conds


# Below this many users in scope (read from the contracts' counters), a substring search scans
# the scope's own rows instead of the whole trigram index: a parent admin's rare substring would
# otherwise walk index entries of a million users to find a handful of its own.
SMALL_SCOPE = 20_000


def _all(conds):
    where = conds[0]
    for c in conds[1:]:
        where = where & c
    return where


def _any(conds):
    either = conds[0]
    for c in conds[1:]:
        either = either | c
    return either


def _like(column, pattern):
    """``column LIKE pattern ESCAPE '\\'`` (SQLite: case-insensitive for ASCII, like the index)."""
    return NodeList((column, SQL("LIKE"), pattern, SQL("ESCAPE '\\'")))


def _small_scope(ids) -> bool:
    """Whether the contracts ``ids`` (scope.contract_ids_in_scope; None: all) hold few users."""
    if ids is None:
        return False
    total = Contract.select(fn.SUM(Contract.users_total)).where(Contract.id.in_(ids or [0])).scalar()
    return (total or 0) < SMALL_SCOPE


def _ids(query, id_col, backwards: bool, limit: int, plan: str | None = None) -> list[int]:
    sql, params = query.order_by(id_col.desc() if backwards else id_col.asc()).limit(limit).sql()
    return [row[0] for row in _execute(sql, params, plan)]


# The window's size: a substring whose matches are spread fills a page within it when it has
# more than about 26 / WINDOW of the users (6,500 of a million); a rarer one is cheaper through the
# trigram indexes (fewer candidates to recheck) than through the window (about 2 us a row: 45 ms
# for 20,000 rows when the matches start further on, as for every login ID typed from its middle).
WINDOW = 4_000
# A substring holding a space: its name matches are often dense (藤　花子: 5,000 users) and then
# fill a page within this many ids; when they do not, the name's joined index answers the rest
# (_name_beyond). 8,000 measured best at a million users (the slowest of nine such names: 13 ms,
# against 20 ms with 20,000, the window before that index, and 28 ms with no window of its own).
NAME_WINDOW = 8_000


def _pg_substring_ids(base, keyset_conds, backwards: bool, limit: int, low: str, raw: str) -> list[int]:
    """Substring ids on PostgreSQL: first the next WINDOW ids in page order (a common substring
    fills the page there, cheaply), then the trigram indexes beyond that window (a rare one).
    pg_trgm alone rechecks every row holding the substring's trigrams, which for a medium rare
    substring of common trigrams means tens of thousands of rows; walking ids alone reads the
    whole table for a rare one.

    A substring holding a space has a longer window of its own for the name (NAME_WINDOW), then
    the index of the name with its spaces joined (_name_beyond): pg_trgm splits a name typed
    across its full-width space (藤　花子) into one-character words whose trigrams half the names
    hold, so the name's own trigram index has hundreds of thousands of candidates for it.
    """
    order = User.id.desc() if backwards else User.id.asc()

    def edge_at(offset: int):
        return (User.select(User.id).where(_all([*base, *keyset_conds])).order_by(order)
                .offset(offset - 1).limit(1))

    if any(c.isspace() for c in raw):
        (at, at_params), (name_at, name_params) = edge_at(WINDOW).sql(), edge_at(NAME_WINDOW).sql()
        edge, name_edge = _execute(f"SELECT ({at}), ({name_at})", [*at_params, *name_params])[0]
    else:  # its trigrams are selective: the name needs no window of its own
        edge = name_edge = edge_at(WINDOW).scalar()
    # The *_key columns are lower case already: LIKE is cheaper to recheck than ILIKE.
    name = Expression(User.name, "LIKE" if raw.lower() == raw.upper() else "ILIKE", raw)  # ILIKE: letters
    others = [Expression(User.login_id_key, "LIKE", low), Expression(User.email_key, "LIKE", low),
              Expression(User.phone, "LIKE", raw)]

    def upto(e):
        return [] if e is None else [User.id >= e] if backwards else [User.id <= e]

    def after(e):
        return [User.id < e] if backwards else [User.id > e]

    def plain(conds):
        """The conditions OR-ed, each as ``col || ''``: the trigram indexes kept out of a window,
        where the primary key's range is cheaper."""
        return _any([Expression(_plain(c.lhs), c.op, c.rhs) for c in conds])

    # In the window, one pass checks every column.
    window = _all([*base, *keyset_conds, *upto(edge), plain([name, *others])])
    found = set(_ids(User.select(User.id).where(window), User.id, backwards, limit, SERIAL))
    # Ids beyond a window come after every id in it: only needed while the page is not full.
    if edge is not None and len(found) < limit:
        # The name alone, on to its own window's edge.
        names = [] if name_edge == edge else _ids(
            User.select(User.id).where(_all([*base, *after(edge), *upto(name_edge), plain([name])])),
            User.id, backwards, limit, SERIAL)
        found.update(names)
        # The other columns beyond the window, and the name beyond its window unless it filled a
        # page there (then every later name has a later id): one statement, the trigram indexes'
        # bitmaps OR-ed, each candidate row read and rechecked once (the login ID and the e-mail
        # are often the same text: r01's 85,000 rows were rechecked twice, one statement a column).
        beyond = _all([*after(edge), _any(others)])
        if name_edge is not None and len(names) < limit:
            beyond = beyond | _all([*after(name_edge), *_name_beyond(name, raw)])
        # id + 0: the planner may not walk the primary key here (that is what the window did).
        found.update(_ids(User.select(User.id).where(_all([*base, beyond])), User.id + 0, backwards, limit,
                          CUSTOM))
    return sorted(found, reverse=backwards)[:limit]


_NAME_JOINED = SQL(search_index.name_joined('"t1"."name"'))
_JOIN_SPACES = {ord(c): search_index.NAME_SPACE_MARK for c in search_index.NAME_SPACES}


def _name_beyond(name: Expression, raw: str) -> list:
    """The name's conditions for the trigram statement beyond the windows. A pattern holding a
    space asks the index of the name with its spaces written as 0 (search_index.name_joined) for
    the pattern written the same way, then checks the name itself, kept from the name's own
    trigram index (which would only add the candidates of its one-character words)."""
    joined = raw.translate(_JOIN_SPACES)
    if joined == raw or not _has_trigram(joined):
        return [name]
    return [Expression(_NAME_JOINED, name.op, joined), Expression(_plain(name.lhs), name.op, name.rhs)]


def _has_trigram(pattern: str) -> bool:
    """Whether a ``%...%`` pattern holds three word characters in a row, pg_trgm's smallest lookup
    (its words are runs of letters and digits; backslash escapes and wildcards split them)."""
    run = 0
    for c in pattern[1:-1]:
        run = run + 1 if c.isalnum() else 0
        if run == 3:
            return True
    return False


@dataclass(frozen=True, slots=True)
class FoundContract:
    id: int
    ecid: str
    name: str


@dataclass(frozen=True, slots=True)
class Found:
    """A user as a page of results shows it (templates/admin/_results.html, _badges.html)."""

    id: int
    login_id: str
    name: str
    email: str
    is_admin: bool
    disabled: bool
    locked_until: object
    first_login_done_at: object
    twostep_method: str | None
    contract: FoundContract

    @property
    def contract_id(self) -> int:
        return self.contract.id

    def is_locked(self, now=None) -> bool:
        return User.is_locked(self, now)  # the model's rule, on these fields


# The columns of Found, then of its contract. A user row has thirty columns; building peewee model
# instances of both tables for a page cost more than a prefix search's own statements on
# PostgreSQL (2.3 ms against 0.4 ms for the query), so the page is read as plain rows.
_FOUND_FIELDS = (User.id, User.login_id, User.name, User.email, User.is_admin, User.disabled,
                 User.locked_until, User.first_login_done_at, User.twostep_method)
_FOUND_CONTRACT_FIELDS = (Contract.id, Contract.ecid, Contract.name)
_FOUND_SQL: dict[tuple, str] = {}


def _found(ids: list[int]) -> list[Found]:
    """The users of ``ids`` (a page: at most a few dozen) in id order, with their contracts."""
    if not ids:
        return []
    key = (len(ids), database.param)
    sql = _FOUND_SQL.get(key)
    if sql is None:  # the text depends only on how many ids: built once by peewee, then kept
        sql = (User.select(*_FOUND_FIELDS, *_FOUND_CONTRACT_FIELDS).join(Contract)
               .where(User.id.in_(ids)).order_by(User.id).sql()[0])
        _FOUND_SQL[key] = sql
    width = len(_FOUND_FIELDS)
    users = [f.python_value for f in _FOUND_FIELDS]
    contracts = [f.python_value for f in _FOUND_CONTRACT_FIELDS]
    found = []
    for row in database.execute_sql(sql, list(ids)):
        contract = FoundContract(*[convert(v) for convert, v in zip(contracts, row[width:], strict=True)])
        found.append(Found(*[convert(v) for convert, v in zip(users, row[:width], strict=True)], contract))
    return found


def search(principal, query: Query, page_size: int = PAGE_SIZE) -> Page:
    """One page of users in the principal's scope matching ``query``, ordered by user id (as
    Found records).

    First the ids of the page (each strategy picks index-friendly queries, with the scope and the
    filters inside), then one query for those rows with their contracts.
    """
    # The scope's contracts are read once (a parent admin's children are a query).
    in_scope = scope.contract_ids_in_scope(principal)
    base = [scope.user_condition(principal, in_scope), *_filters(query)]
    backwards = query.before is not None and query.after is None
    limit = page_size + 1

    def keyset(col):
        if backwards:
            return [col < query.before]
        return [col > query.after] if query.after is not None else []

    if query.q and query.match == CONTAINS:
        if len(query.q) < SUBSTRING_MIN:
            return Page()
        low, raw = like_pattern(query.q.lower()), like_pattern(query.q)
        if _small_scope(in_scope):
            like = (lambda c, p: _plain(c).ilike(p)) if is_postgres() else _like
            cond = (like(User.login_id_key, low) | like(User.email_key, low) | like(User.name, raw)
                    | like(User.phone, raw))
            ids = _ids(User.select(User.id).where(_all([*base, cond, *keyset(User.id)])), User.id,
                       backwards, limit, SERIAL)
        elif is_postgres():
            ids = _pg_substring_ids(base, keyset(User.id), backwards, limit, low, raw)
        else:
            # Drive from the FTS table: it yields rowids in order, so LIMIT stops early.
            q = (User.select(USER_SEARCH.rowid).join(USER_SEARCH, on=(USER_SEARCH.rowid == User.id))
                 .where(_all([*base, Expression(USER_SEARCH.user_search, "MATCH", fts_phrase(query.q)),
                              *keyset(USER_SEARCH.rowid)])))
            ids = _ids(q, USER_SEARCH.rowid, backwards, limit)
    elif query.q and _small_scope(in_scope):
        # A few contracts: one pass over the scope's own rows (contract index) checks every column.
        cond = _small_scope_prefix_conditions(query.q, principal, in_scope)
        ids = _ids(User.select(User.id).where(_all([*base, _any(cond), *keyset(User.id)])), User.id,
                   backwards, limit, SERIAL)
    elif query.q:
        ids = _prefix_ids(base, keyset(User.id), query, backwards, limit)
    else:
        ids = _ids(User.select(User.id).where(_all([*base, *keyset(User.id)])), User.id, backwards, limit)

    more = len(ids) > page_size
    ids = sorted(ids[:page_size])
    rows = _found(ids)
    if backwards:
        return Page(rows, next_after=rows[-1].id if rows else None,
                    prev_before=rows[0].id if (rows and more) else None)
    return Page(rows, next_after=rows[-1].id if (rows and more) else None,
                prev_before=rows[0].id if (rows and query.after is not None) else None)
