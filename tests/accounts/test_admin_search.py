"""The console's user search as a function: prefix, substring, filters, keyset pages, scope."""
import datetime

import pytest
from peewee import DataError, fn

from accounts import scope, search, search_index
from accounts.clock import utcnow
from accounts.db import database, is_postgres
from accounts.models import Contract, Staff, User
from tests.helpers import gen_contract, gen_user


def _op():
    return Staff.create(login_id="op", login_id_key="op", role="operator", password_hash="x")


def _ids(page):
    return [u.login_id for u in page.users]


def _find(principal, **kw):
    return search.search(principal, search.Query(**kw))


def test_prefix_finds_each_column_case_insensitively_for_keys(db):
    op = _op()
    gen_user(login_id="Yamada.Taro@example.jp", email="taro@corp.example", name="山田 太郎",
             phone="0311112222")
    gen_user(login_id="suzuki", email="Hanako@corp.example", name="鈴木 花子", phone="0699998888")
    assert _ids(_find(op, q="yamada")) == ["Yamada.Taro@example.jp"]
    assert _ids(_find(op, q="HANA")) == ["suzuki"]
    assert _ids(_find(op, q="山田")) == ["Yamada.Taro@example.jp"]
    assert _ids(_find(op, q="0699")) == ["suzuki"]
    assert _ids(_find(op, q="06-9999")) == ["suzuki"]  # a typed phone compares on its digits
    assert _ids(_find(op, q="amada")) == []  # prefix only


def test_ecid_prefix_finds_the_contracts_users(db):
    op = _op()
    c = gen_contract(ecid="ecid1234500001")
    gen_user(c, login_id="in-contract")
    gen_user(gen_contract(ecid="ecid9999900001"), login_id="elsewhere")
    assert _ids(_find(op, q="ECID12345")) == ["in-contract"]
    assert _ids(_find(op, q="ecid1234500001")) == ["in-contract"]


def test_substring_needs_three_characters_and_finds_any_position(db):
    op = _op()
    gen_user(login_id="alpha-user", email="a@one.example", name="佐藤 一郎")
    gen_user(login_id="beta", email="b@two.example", name="高橋 一郎太")
    assert _find(op, q="一郎", match="contains").users == []
    assert search.Query(q="一郎", match="contains").substring_too_short
    assert sorted(_ids(_find(op, q="藤 一郎", match="contains"))) == ["alpha-user"]
    assert sorted(_ids(_find(op, q="TWO.EX", match="contains"))) == ["beta"]
    assert sorted(_ids(_find(op, q="ha-us", match="contains"))) == ["alpha-user"]


@pytest.mark.parametrize("who", ["operator", "contract admin"])  # trigram index / scan of a small scope
@pytest.mark.parametrize("q", ['"', '""x', "a%b", "a_b", "100%", "x' OR 1=1 --", "NEAR(a b)", "a*", "\\x"])
def test_substring_treats_every_character_literally(db, q, who):
    c = gen_contract()
    op = _op() if who == "operator" else gen_user(c, login_id="cadmin", is_admin=True, first_login_done=True)
    gen_user(c, login_id="plainuser", email="plain@example.jp", name="ordinary")
    gen_user(c, login_id="aXb-100X-xOR1=1--", email="decoy@example.jp", name="decoy")
    literal = gen_user(c, login_id=f"has{q}inside".replace(" ", ""), email="lit@example.jp")
    needle = q.replace(" ", "")
    if len(needle) >= 3:
        assert _ids(_find(op, q=needle, match="contains")) == [literal.login_id]
    _find(op, q=q, match="prefix")  # never an error


def test_filters_first_login_lock_method_and_contract(db):
    op = _op()
    c = gen_contract(ecid="ecid5555500001")
    done = gen_user(c, login_id="done", first_login_done=True, twostep_method="totp")
    locked = gen_user(c, login_id="locked", locked_until=utcnow() + datetime.timedelta(minutes=5))
    gen_user(c, login_id="was-locked", locked_until=utcnow() - datetime.timedelta(minutes=5),
             twostep_method="mail")
    gen_user(login_id="other-contract")
    assert _ids(_find(op, first_login="done")) == [done.login_id]
    assert _ids(_find(op, locked="yes")) == [locked.login_id]
    assert "was-locked" in _ids(_find(op, locked="no"))
    assert _ids(_find(op, method="mail")) == ["was-locked"]
    assert set(_ids(_find(op, method="none", contract="ecid5555500001"))) == {"locked"}
    assert set(_ids(_find(op, contract="ECID5555500001".lower()))) == {"done", "locked", "was-locked"}


@pytest.mark.parametrize("common", [5000, 2])  # 2: the "many matches" strategies (ids in order)
@pytest.mark.parametrize("match,q", [("prefix", "page"), ("contains", "age-us")])
def test_keyset_pages_forward_and_back_without_gaps_or_repeats(db, monkeypatch, match, q, common):
    monkeypatch.setattr(search, "COMMON", common)
    monkeypatch.setattr(search, "WINDOW", 4000 if common > 2 else 7)  # PostgreSQL: window, then index
    op = _op()
    made = [gen_user(login_id=f"page-user{i:02d}").login_id for i in range(23)]
    gen_user(login_id="unrelated")
    seen, after, pages = [], None, []
    while True:
        page = search.search(op, search.Query(q=q, match=match, after=after), page_size=10)
        pages.append(page)
        seen += _ids(page)
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == made and len(pages) == 3
    assert pages[0].prev_before is None
    back = search.search(op, search.Query(q=q, match=match, before=pages[2].prev_before), page_size=10)
    assert _ids(back) == _ids(pages[1])
    assert back.next_after == pages[1].next_after and back.prev_before == pages[1].prev_before


def test_scope_is_part_of_the_query_so_pages_are_full(db):
    parent = gen_contract()
    child = gen_contract(parent=parent)
    admin = gen_user(child, login_id="cadmin", is_admin=True, first_login_done=True)
    for i in range(30):
        gen_user(gen_contract(), login_id=f"zz-other{i:02d}")  # older rows out of scope
    mine = [gen_user(child, login_id=f"zz-mine{i:02d}").login_id for i in range(5)]
    page = search.search(admin, search.Query(q="zz"), page_size=5)
    assert _ids(page) == mine and page.next_after is None
    contains = search.search(admin, search.Query(q="zz-", match="contains"), page_size=5)
    assert _ids(contains) == mine


def test_a_plain_user_finds_nobody(db):
    u = gen_user(login_id="someone", first_login_done=True)
    assert _find(u, q="some").users == []


# --------------------------------------------------------------------------------------------
# Prefixes most users share (issue 14): the bucket indexes give the same pages as the obvious
# query over every user, in the same order, inside the same scope.
# --------------------------------------------------------------------------------------------

BUCKET = 1 << search_index.BUCKET_BITS


def _reference(principal, q, after=None, before=None, size=10):
    """The page the search must answer, computed the slow, obvious way over every user."""
    import re

    low, digits = q.lower(), search._phone_key(q)
    phone_too = digits and len(digits) >= max(1, len(re.sub(r"[\s\-()+]", "", q)))
    ecid_too = bool(search.ECID_RE.match(q))

    def hit(u):
        return (u.login_id_key.startswith(low) or u.email_key.startswith(low) or u.name.startswith(q)
                or (phone_too and u.phone.startswith(digits))
                or (ecid_too and u.contract.ecid.startswith(low)))

    users = (User.select(User, Contract).join(Contract).where(scope.user_condition(principal))
             .order_by(User.id))
    ids = [u.id for u in users if hit(u)]
    if before is not None:
        return [i for i in ids if i < before][-size:]
    return [i for i in ids if after is None or i > after][:size]


def _spread_world():
    """Users over six buckets: a run of ``user00…`` login IDs at the start, a run of ``user099…``
    far into the table (numbered in the order of an export), common names and phones spread
    everywhere; a parent contract with a child, and contracts outside that tree."""
    parent = gen_contract(ecid="ecid1000000001")
    child = gen_contract(parent=parent, ecid="ecid1000000002")
    outside = [gen_contract(ecid=f"ecid10000001{i:02d}") for i in range(3)]
    contracts = [parent, child, *outside]
    admins = {"parent admin": gen_user(parent, login_id="padmin", email="padmin@example.jp", is_admin=True,
                                       first_login_done=True),
              "child admin": gen_user(child, login_id="cadmin", email="cadmin@example.jp", is_admin=True,
                                      first_login_done=True)}
    names = ["佐藤 太郎", "佐藤\u3000花子", "佐々木 一郎", "鈴木 次郎", "高橋 美咲"]
    rows = [(BUCKET + i, f"user{i:07d}@example.co.jp") for i in range(40)]          # bucket 1
    rows += [(4 * BUCKET + 7 * i, f"user099{i:04d}@example.com") for i in range(30)]  # bucket 4
    rows += [(k * BUCKET + 100 + i, f"sato.taro{k}{i}@example.ne.jp") for k in range(6) for i in range(4)]
    for n, (uid, login) in enumerate(rows):
        gen_user(contracts[n % len(contracts)], id=uid, login_id=login,
                 email=login if n % 3 else f"mail{uid}@example.co.jp", name=names[n % len(names)],
                 phone=f"0{3 + n % 4}{uid:08d}")
    if is_postgres():
        database.execute_sql("""SELECT setval(pg_get_serial_sequence('"user"', 'id'),
                                (SELECT max(id) FROM "user"))""")
    return {"operator": _op(), **admins}


TYPED = ["user0990012@example.com", "user0000003@example.co.jp", "sato.taro31@example.ne.jp", "SATO",
         "mail", "佐藤\u3000花子", "佐々", "03-0001", "ecid10000001", "zz", "e"]


@pytest.mark.parametrize("small_scope", [search.SMALL_SCOPE, 0])  # contract index / bucket indexes
@pytest.mark.parametrize("common", [search.COMMON, 2])  # their index / ids in order or buckets
@pytest.mark.parametrize("ecid_few", [search.ECID_FEW, 1])  # ECID: the contracts' ids / a lookup per user
def test_every_typed_prefix_pages_like_the_obvious_query_in_every_scope(db, monkeypatch, small_scope, common,
                                                                         ecid_few):
    monkeypatch.setattr(search, "SMALL_SCOPE", small_scope)
    monkeypatch.setattr(search, "COMMON", common)
    monkeypatch.setattr(search, "ECID_COMMON", common if common == 2 else search.ECID_COMMON)
    monkeypatch.setattr(search, "BUCKET_COMMON", common)
    monkeypatch.setattr(search, "ECID_FEW", ecid_few)
    principals = _spread_world()
    prefixes = sorted({word[:k] for word in TYPED for k in range(1, len(word) + 1)})
    for who, principal in principals.items():
        for q in prefixes:
            expected = _reference(principal, q)
            page = search.search(principal, search.Query(q=q), page_size=10)
            assert [u.id for u in page.users] == expected, (who, q)
            # Every page forward, then one back, as the links of the results fragment ask them.
            pages = [page]
            while page.next_after is not None:
                page = search.search(principal, search.Query(q=q, after=page.next_after), page_size=10)
                expected = _reference(principal, q, after=pages[-1].next_after)
                assert [u.id for u in page.users] == expected, (who, q)
                pages.append(page)
            # And back to the first page, one page at a time.
            for earlier in reversed(pages[:-1]):
                page = search.search(principal, search.Query(q=q, before=page.prev_before), page_size=10)
                assert [u.id for u in page.users] == [u.id for u in earlier.users], (who, q)
            assert page.prev_before is None, (who, q)


def test_a_first_character_most_users_share_gives_the_first_page_in_id_order(db):
    principals = _spread_world()
    op, parent_admin, child_admin = principals.values()
    page = search.search(op, search.Query(q="u"), page_size=25)
    assert [u.id for u in page.users] == [BUCKET + i for i in range(25)]
    assert page.next_after == BUCKET + 24 and page.prev_before is None
    # The run of user099... far into the table: the first page starts where it starts.
    late = search.search(op, search.Query(q="user099"), page_size=25)
    assert [u.id for u in late.users] == [4 * BUCKET + 7 * i for i in range(25)]
    # A parent admin sees its tree only, a child admin its own contract only.
    tree = {parent_admin.contract_id, child_admin.contract_id}
    for who, allowed in ((parent_admin, tree), (child_admin, {child_admin.contract_id})):
        found = search.search(who, search.Query(q="u"), page_size=100).users
        assert found and {u.contract_id for u in found} <= allowed


def test_the_bucket_query_is_answered_from_the_bucket_index(db):
    """The shift in the query is written as the index's (an expression index serves only the
    same expression): a change to one without the other shows here, not in a benchmark."""
    _spread_world()
    for name, column in search_index.PREFIX_INDEXES.items():
        top = User.select(fn.MAX(User.id)).scalar()
        cond, cond_params, order = search._bucket_cond(column, "user", search.Query(q="user"), False, top)
        sql, params = search._arm_sql("1 = 1", [], cond, cond_params, order[0], 26)
        if is_postgres():
            with database.atomic():
                database.execute_sql("SET LOCAL enable_seqscan = off")  # a few rows: any plan would do
                database.execute_sql("SET LOCAL enable_sort = off")
                plan = " ".join(r[0] for r in database.execute_sql("EXPLAIN " + sql, params))
        else:
            plan = " ".join(str(r[-1]) for r in database.execute_sql("EXPLAIN QUERY PLAN " + sql, params))
        assert name in plan, plan


def _normal(sql):
    for noise in ("if not exists ", "public.", "using btree ", '"', "(", ")"):
        sql = sql.lower().replace(noise, "")
    return "".join(sql.split())


def test_the_bucket_indexes_are_built_as_the_search_declares_them(db):
    """Migration 0010 freezes the DDL; accounts.search_index restores it after an interrupted import."""
    have = {m.name: m.sql for m in database.get_indexes("user")}
    for name in search_index.PREFIX_INDEXES:
        declared = search_index.prefix_index_sql(name, is_postgres())
        assert name in have
        assert _normal(have[name]) == _normal(declared), (have[name], declared)


def test_the_generic_plan_setting_never_outlives_the_prefix_search(db):
    """The prefix search's statements run with plan_cache_mode = force_generic_plan; the pooled
    connection's later statements (the ECID arm, every other page) must get their custom plans
    back, after a search and after a statement that failed."""
    if not is_postgres():
        pytest.skip("PostgreSQL's plan cache setting")
    op = _spread_world()["operator"]

    def settings():
        return [database.execute_sql(f"SHOW {name}").fetchone()[0]
                for name in ("plan_cache_mode", "max_parallel_workers_per_gather")]

    configured = settings()
    assert configured[0] == "auto"
    for q in ("u", "ecid1"):  # a generic plan; a custom one with an ECID arm, both serial
        assert search.search(op, search.Query(q=q)).users
        assert settings() == configured
    for plan in (search.GENERIC, search.SERIAL):
        with pytest.raises(DataError):  # division by zero, raised as peewee's error like execute_sql's
            search._execute('SELECT 1 / 0 FROM "user" WHERE id > %s', [0], plan)
        assert settings() == configured


@pytest.mark.parametrize("window,name_window", [(4000, 20000), (5, 12), (3, 3)])
def test_every_substring_pages_like_the_obvious_query_whatever_the_windows(db, monkeypatch, window,
                                                                           name_window):
    """PostgreSQL looks through a window of ids, the name through a longer one, then the trigram
    indexes beyond them; SQLite through its FTS table. Every page of every needle, with windows
    that end before, inside and after the matches, is the obvious filter over all users."""
    monkeypatch.setattr(search, "WINDOW", window)
    monkeypatch.setattr(search, "NAME_WINDOW", name_window)
    op = _op()
    contract = gen_contract()
    family = ["佐藤", "山下", "伊藤", "加藤"]
    given = ["花子", "裕太", "大輔", "一郎"]
    for i in range(40):
        gen_user(contract, login_id=f"user{i:04d}r01@example.co.jp", email=f"mail{i}@EXAMPLE.ne.jp",
                 name=f"{family[i % 4]}\u3000{given[(i // 3) % 4]}", phone=f"03{i:04d}0753")
    # Names the index of joined names lets through for a needle with a space and the name itself
    # must turn away (a digit 0, the other width of space), and letters of both cases.
    for i, name in enumerate(["伊藤0花子", "伊藤 花子", "山下0裕太", "Alex Smith", "ALEX SMITHSON",
                              "alex0smith", "加藤\u3000\u3000一郎", "加藤 \u3000一郎"]):
        gen_user(contract, login_id=f"other{i}", email=f"other{i}@example.org", name=name)
    users = list(User.select().order_by(User.id))
    needles = ["藤\u3000花", "下\u3000裕太", "r01@", "0753", "0012", "@example.ne", "藤\u3000一郎", "zzz",
               "藤 花子", "藤0花", "x s", "X SMITH", "藤\u3000\u3000一", " \u3000一郎", "\u3000一郎"]
    for needle in needles:
        low = needle.lower()
        expected = [u.id for u in users if low in u.login_id_key or low in u.email_key
                    or low in u.name.lower() or needle in (u.phone or "")]
        seen, after = [], None
        while True:
            page = search.search(op, search.Query(q=needle, match="contains", after=after), page_size=7)
            seen += [u.id for u in page.users]
            if page.next_after is None:
                break
            after = page.next_after
        assert seen == expected, needle
        assert expected or needle == "zzz", needle


def test_a_pattern_has_a_trigram_when_three_word_characters_stand_together():
    """pg_trgm looks a LIKE pattern up by the trigrams inside its words: the joined name index
    (search._name_beyond) is only asked when the pattern, its spaces joined, holds one."""
    assert search._has_trigram(search.like_pattern("上0明美"))
    assert search._has_trigram(search.like_pattern("a0b"))
    assert not search._has_trigram(search.like_pattern("ab"))
    assert not search._has_trigram(search.like_pattern("a%b_c"))  # escaped wildcards split words
    assert not search._has_trigram(search.like_pattern("a-b.c"))


def test_a_name_with_a_space_beyond_the_windows_asks_the_joined_index():
    name = search.Expression(User.name, "LIKE", search.like_pattern("上\u3000明美"))
    joined, plain = search._name_beyond(name, name.rhs)
    assert joined.rhs == "%上0明美%" and joined.op == "LIKE"
    assert plain.rhs == name.rhs
    only = search.Expression(User.name, "ILIKE", search.like_pattern("abc"))
    assert search._name_beyond(only, only.rhs) == [only]  # no space: the name's own index
