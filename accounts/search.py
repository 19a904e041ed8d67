"""The console's user search: prefix and substring, filters, keyset pages, scope inside the query.

Why it is shaped like this (SPEC 9: a million users, p95 under 30 ms prefix / 150 ms substring;
issue 14: every key press of a prefix, from the first character, under 15 ms):
- prefix search is a B-tree range per column (``col >= q AND col < q || U+FFFF``), which both
  SQLite and PostgreSQL answer from the user table's indexes, unlike ``LIKE 'q%'`` whose index use
  depends on collation settings; login ID and e-mail through (id bucket, column) indexes read in
  bucket order (``_bucket_ids``), so that a prefix most users share and a prefix whose users sit
  together at the end of the table both cost about one page;
- substring search (3+ characters) goes through the trigram index (FTS5 on SQLite, pg_trgm on
  PostgreSQL): on SQLite the FTS table drives the query in rowid (= user id) order, so a common
  substring stops after one page instead of sorting every match;
- pages are keyset pages on the user id (``id > after`` / ``id < before``) fetching one row more
  than shown to know whether there is a next page: no OFFSET and no total count on the hot path;
- the caller's scope (accounts.scope.user_condition) is a condition of the same query, never a
  filter applied afterwards.
"""
import re
import unicodedata
from dataclasses import dataclass, field

from peewee import SQL, Expression, NodeList, Table, fn

from . import fields, scope, search_index
from .clock import utcnow
from .db import database, is_postgres
from .models import TWOSTEP_METHODS, Contract, User

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


def _common(cond) -> bool:
    """Whether a prefix condition matches at least COMMON users (reads at most that many index rows)."""
    probe = User.select(SQL("1")).where(cond).limit(COMMON)
    return User.select(fn.COUNT(SQL("*"))).from_(probe.alias("probe")).scalar() >= COMMON


def _plain(column):
    """The column as an expression no index serves (``col || ''``), on both databases."""
    return column.concat("")


def _small_scope_prefix_conditions(q: str, principal) -> list:
    """One condition per column the typed prefix may start, deliberately in a form no index
    serves, so that a small scope's contract index drives the query instead."""
    low = q.lower()
    conds = [_range(_plain(User.login_id_key), low), _range(_plain(User.email_key), low),
             *[_range(_plain(column), value) for column, value in _other_prefix_columns(q)]]
    if ECID_RE.match(q):
        # The scope's contracts only: an ECID prefix such as "ecid1" matches every contract.
        conds.append(User.contract.in_(Contract.select(Contract.id).where(
            _range(Contract.ecid, low) & scope.contract_condition(principal))))
    return conds


def _other_prefix_columns(q: str) -> list:
    """(column, prefix) for name and phone, the columns without a bucket index."""
    columns = [(User.name, q)]
    phone = _phone_key(q)
    if phone and len(phone) >= max(1, len(re.sub(r"[\s\-()+]", "", q))):
        columns.append((User.phone, phone))
    return columns


ECID_FEW = 100  # contracts: up to this many, their ids go into the query


def _ecid_ids(conds, low: str, backwards: bool, limit: int) -> list[int]:
    """Users whose contract's ECID starts with ``low``, first ``limit`` in page order.

    Every ECID starts with "ecid" and most with the same digits, so the first characters typed
    match every contract: then the ids are walked in order and each user's contract looked up
    (a few rows per page), instead of collecting every matching contract's id for each request
    (10,000 contracts: 15-25 ms on SQLite). A few contracts: their ids, and their user counters
    say whether their users are few (the contract index, then sort) or many (ids in order).
    """
    rows = list(Contract.select(Contract.id, Contract.users_total).where(_range(Contract.ecid, low))
                .limit(ECID_FEW + 1).tuples())
    if not rows:
        return []
    if len(rows) > ECID_FEW:
        cond = fn.EXISTS(Contract.select(SQL("1")).where((Contract.id == User.contract)
                                                          & _range(Contract.ecid, low)))
        return _ids(User.select(User.id).where(_all([*conds, cond])), User.id, backwards, limit)
    cond = User.contract.in_([r[0] for r in rows])
    if sum(r[1] for r in rows) < COMMON:
        # id + 0: the contract index, then a sort of the few matches (not a walk over the ids).
        return _ids(User.select(User.id).where(_all([*conds, cond])), User.id + 0, backwards, limit)
    # contract_id + 0: ids in order, the contract index kept out of the plan.
    cond = (User.contract + 0).in_([r[0] for r in rows])
    return _ids(User.select(User.id).where(_all([*conds, cond])), User.id, backwards, limit)


def _bucket():
    """A user's id bucket written exactly as accounts.search_index.PREFIX_INDEXES index it (a
    literal shift: an index on an expression serves only the same expression)."""
    return Expression(User.id, ">>", SQL(str(search_index.BUCKET_BITS)))


def _bucket_key(column):
    """The column as the bucket index holds it (PostgreSQL: in the "C" collation, see
    accounts.search_index.prefix_index_sql)."""
    return NodeList((column, SQL('COLLATE "C"'))) if is_postgres() else column


def _bucket_query(conds, query: "Query", backwards: bool, limit: int, top: int | None):
    """The ids of the first ``limit`` users in page order matching ``conds`` (one of them a prefix
    range on a column of PREFIX_INDEXES), read bucket after bucket from that column's bucket
    index; None when no bucket is left.

    Each bucket's matches are sorted by id within the bucket only, and the query stops at the
    bucket that fills the page: a prefix of most users costs one bucket (at most 4,096 index
    entries), a prefix of users gathered anywhere in the table one index seek per bucket before
    them, a rare prefix one seek per bucket and its few matches.
    """
    bits = search_index.BUCKET_BITS
    if top is None:
        return None
    if backwards:
        first, last = 0, min(query.before, top) >> bits
    else:
        first, last = (query.after or 0) >> bits, top >> bits
    if first > last:
        return None
    bucket = _bucket()
    order = (bucket.desc(), User.id.desc()) if backwards else (bucket, User.id)
    # The buckets as literal numbers (made here, not typed): peewee spends ~20 us building each
    # bound parameter, and a million users have 245 buckets.
    buckets = SQL("(" + ",".join(str(b) for b in range(first, last + 1)) + ")")
    return (User.select(User.id).where(_all([*conds, Expression(bucket, "IN", buckets)]))
            .order_by(*order).limit(limit))


def _bucket_ids(conds, query: "Query", backwards: bool, limit: int, top: int | None) -> list[int]:
    q = _bucket_query(conds, query, backwards, limit, top)
    return [] if q is None else [row[0] for row in q.tuples()]


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


def _like(column, pattern):
    """``column LIKE pattern ESCAPE '\\'`` (SQLite: case-insensitive for ASCII, like the index)."""
    return NodeList((column, SQL("LIKE"), pattern, SQL("ESCAPE '\\'")))


def _small_scope(principal) -> bool:
    ids = scope.contract_ids_in_scope(principal)
    if ids is None:
        return False
    total = Contract.select(fn.SUM(Contract.users_total)).where(Contract.id.in_(ids or [0])).scalar()
    return (total or 0) < SMALL_SCOPE


def _ids(query, id_col, backwards: bool, limit: int) -> list[int]:
    return [row[0] for row in query.order_by(id_col.desc() if backwards else id_col.asc())
            .limit(limit).tuples()]


WINDOW = 20_000


def _pg_substring_ids(base, keyset_conds, backwards: bool, limit: int, low: str, raw: str) -> list[int]:
    """Substring ids on PostgreSQL, per column: first the next WINDOW ids in page order (a common
    substring fills the page there, cheaply), then the trigram index beyond that window (a rare
    one). pg_trgm alone rechecks every row holding the substring's trigrams, which for a medium
    rare substring of common trigrams means tens of thousands of rows; walking ids alone reads the
    whole table for a rare one.
    """
    order = User.id.desc() if backwards else User.id.asc()
    edge = (User.select(User.id).where(_all([*base, *keyset_conds])).order_by(order)
            .offset(WINDOW - 1).limit(1).scalar())
    # The *_key columns are lower case already: LIKE is cheaper to recheck than ILIKE.
    columns = [Expression(User.login_id_key, "LIKE", low), Expression(User.email_key, "LIKE", low),
               # A query without letters that have case (Japanese, digits) needs no ILIKE.
               Expression(User.name, "LIKE" if raw.lower() == raw.upper() else "ILIKE", raw),
               Expression(User.phone, "LIKE", raw)]
    inside = [] if edge is None else [User.id >= edge] if backwards else [User.id <= edge]
    # In the window, one pass checks every column; (col || '') keeps the trigram indexes out: the
    # primary key range is cheaper.
    either = None
    for cond in columns:
        plain = Expression(_plain(cond.lhs), cond.op, cond.rhs)
        either = plain if either is None else (either | plain)
    found = set(_ids(User.select(User.id).where(_all([*base, *keyset_conds, *inside, either])), User.id,
                     backwards, limit))
    # Ids beyond the window come after every id in it: only needed while the page is not full
    # (then no column filled a page in the window, so each is looked up beyond it).
    if edge is not None and len(found) < limit:
        beyond = User.id < edge if backwards else User.id > edge
        for cond in columns:
            # id + 0: the planner may not walk the primary key here (that is what the window did).
            found.update(_ids(User.select(User.id).where(_all([*base, beyond, cond])), User.id + 0,
                              backwards, limit))
    return sorted(found, reverse=backwards)[:limit]


def search(principal, query: Query, page_size: int = PAGE_SIZE) -> Page:
    """One page of users in the principal's scope matching ``query``, ordered by user id.

    First the ids of the page (each strategy picks index-friendly queries, with the scope and the
    filters inside), then one query for those rows with their contracts.

    PostgreSQL plans every query of the search for its own values: psycopg prepares a statement
    run five times on a connection, and the server may then switch to a generic plan, made
    without the typed prefix, so with the default estimate of a range (0.5 % of the rows) for
    "u" as for "user0999" (a plan fit for one of them is hundreds of times too slow for the other).
    """
    if not is_postgres():
        return _search(principal, query, page_size)
    with database.atomic():
        database.execute_sql("SET LOCAL plan_cache_mode = force_custom_plan")
        return _search(principal, query, page_size)


def _search(principal, query: Query, page_size: int) -> Page:
    base = [scope.user_condition(principal), *_filters(query)]
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
        if _small_scope(principal):
            like = (lambda c, p: _plain(c).ilike(p)) if is_postgres() else _like
            cond = (like(User.login_id_key, low) | like(User.email_key, low) | like(User.name, raw)
                    | like(User.phone, raw))
            ids = _ids(User.select(User.id).where(_all([*base, cond, *keyset(User.id)])), User.id,
                       backwards, limit)
        elif is_postgres():
            ids = _pg_substring_ids(base, keyset(User.id), backwards, limit, low, raw)
        else:
            # Drive from the FTS table: it yields rowids in order, so LIMIT stops early.
            q = (User.select(USER_SEARCH.rowid).join(USER_SEARCH, on=(USER_SEARCH.rowid == User.id))
                 .where(_all([*base, Expression(USER_SEARCH.user_search, "MATCH", fts_phrase(query.q)),
                              *keyset(USER_SEARCH.rowid)])))
            ids = _ids(q, USER_SEARCH.rowid, backwards, limit)
    elif query.q and _small_scope(principal):
        # A few contracts: one pass over the scope's own rows (contract index) checks every column.
        cond = _small_scope_prefix_conditions(query.q, principal)
        either = cond[0]
        for c in cond[1:]:
            either = either | c
        ids = _ids(User.select(User.id).where(_all([*base, either, *keyset(User.id)])), User.id,
                   backwards, limit)
    elif query.q:
        # One small query per column (each can use its own index), merged here: an OR across
        # columns makes the planners fall back to scanning everything.
        low = query.q.lower()
        found = set()
        top = User.select(fn.MAX(User.id)).scalar()
        for column in (User.login_id_key, User.email_key):
            found.update(_bucket_ids([*base, _range(_bucket_key(column), low), *keyset(User.id)], query,
                                     backwards, limit, top))
        for column, value in _other_prefix_columns(query.q):
            # Thousands of matches: walking the ids in order finds a page after a few hundred
            # rows, where the column's index would collect and sort every match first. Few
            # matches: the column's index, since walking ids would read the whole table. The
            # planners guess this badly (SQLite has no statistics, PostgreSQL's histogram is too
            # coarse for prefixes, and a generic plan has no prefix at all), so a probe that reads
            # at most COMMON index entries decides, and each query is written so that it has
            # only the one plan: the column's index kept out (col || '') or the walk of the
            # primary key in order kept out (ORDER BY id + 0). (Names and phones are not numbered
            # in the order of the export, so the matches of a common prefix are spread over the
            # ids; login IDs and e-mails, which are, use the bucket indexes above.)
            if _common(_range(column, value)):
                q = User.select(User.id).where(_all([*base, _range(_plain(column), value), *keyset(User.id)]))
                found.update(_ids(q, User.id, backwards, limit))
            else:
                q = User.select(User.id).where(_all([*base, _range(column, value), *keyset(User.id)]))
                found.update(_ids(q, User.id + 0, backwards, limit))
        if ECID_RE.match(query.q):
            found.update(_ecid_ids([*base, *keyset(User.id)], low, backwards, limit))
        ids = sorted(found, reverse=backwards)[:limit]
    else:
        ids = _ids(User.select(User.id).where(_all([*base, *keyset(User.id)])), User.id, backwards, limit)

    more = len(ids) > page_size
    ids = sorted(ids[:page_size])
    rows = (list(User.select(User, Contract).join(Contract).where(User.id.in_(ids)).order_by(User.id))
            if ids else [])
    if backwards:
        return Page(rows, next_after=rows[-1].id if rows else None,
                    prev_before=rows[0].id if (rows and more) else None)
    return Page(rows, next_after=rows[-1].id if (rows and more) else None,
                prev_before=rows[0].id if (rows and query.after is not None) else None)
