"""The console's user search as a function: prefix, substring, filters, keyset pages, scope."""
import datetime

import pytest

from accounts import search
from accounts.clock import utcnow
from accounts.models import Staff
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
