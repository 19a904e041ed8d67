"""db.first_row and db.insert_row give what peewee's get_or_none and create give (SQLite and
PostgreSQL): the same fields, converted the same way, defaults filled, ids from the database."""
import datetime

import pytest
from peewee import IntegrityError

from accounts import audit
from accounts.db import (
    ask_ahead,
    database,
    deferred,
    first_row,
    insert_row,
    is_postgres,
    pipelined,
    update_rows,
)
from accounts.models import AuditEntry, MigrationPeriod, TermsVersion, User, WebSession
from tests.helpers import Statements, gen_contract, gen_user


def _fields(row):
    return {f.name: getattr(row, f.name if not hasattr(f, "rel_model") else f.name + "_id")
            for f in type(row)._meta.sorted_fields}


def test_first_row_equals_get_or_none_for_a_wide_row(db):
    user = gen_user(gen_contract(), login_id="Yamada.Taro", email="taro@example.jp")
    User.update(last_login_at=datetime.datetime(2026, 11, 26, 10, 0, 0, 123456)).where(
        User.id == user.id).execute()
    expected = User.get_or_none(User.id == user.id)
    got = first_row(User, '"portal" = ? AND "login_id_key" = ?', user.portal, "yamada.taro")
    assert got is not None and type(got) is User
    assert _fields(got) == _fields(expected)
    assert isinstance(got.last_login_at, datetime.datetime)
    assert got.last_login_at.microsecond == 123456
    assert got.contract.id == user.contract_id  # the foreign key still resolves
    assert got.__data__ == expected.__data__ and got._dirty == set() == expected._dirty
    got.name = "山田　花子"
    assert got.save() == 1 and User.get_by_id(user.id).name == "山田　花子"  # only what changed is written


def test_first_row_none_order_and_reuse(db):
    assert first_row(User, '"id" = ?', 987654) is None
    assert first_row(MigrationPeriod, '"id" = 1') is None
    now = datetime.datetime(2026, 11, 1)
    for n in (1, 3, 2):
        TermsVersion.create(version=n, title=f"v{n}", body="b", published_at=now)
    newest = first_row(TermsVersion, '"published_at" <= ?', TermsVersion.published_at.db_value(now),
                       order_by='"version" DESC')
    assert newest.version == 3 and newest.title == "v3"
    oldest = first_row(TermsVersion, '"published_at" <= ?', TermsVersion.published_at.db_value(now),
                       order_by='"version"')
    assert oldest.version == 1  # the order is part of the cached text's key


def test_insert_row_equals_create(db):
    user = gen_user(gen_contract())
    entry = audit.record(user, "signin_completed", target_user=user, ip="192.0.2.1", detail="x")
    assert entry.id is not None
    stored = AuditEntry.get_by_id(entry.id)
    assert _fields(stored) == _fields(entry)
    assert stored.at is not None and stored.target_contract_id == user.contract_id
    assert stored.actor_kind == "user" and stored.actor_label == f"{user.portal}:{user.login_id}"
    second = audit.record(None, "other")
    assert second.id > entry.id and AuditEntry.get_by_id(second.id).actor_label == "system"


def test_insert_row_fills_defaults_and_can_be_saved_again(db):
    row = insert_row(WebSession, key_hash="k" * 64, principal="u:1", data="{}")
    stored = WebSession.get_by_id(row.id)
    assert stored.signed_in is False and stored.ip == "" and stored.user_agent == ""
    assert isinstance(stored.created_at, datetime.datetime) and stored.created_at == row.created_at
    row.data = '{"a": 1}'
    row.save()
    assert WebSession.get_by_id(row.id).data == '{"a": 1}'
    assert WebSession.select().count() == 1


# --- pipelined() and deferred(): the sign-in POST's round trips on PostgreSQL ----------------------

def test_deferred_writes_are_stored_with_the_commit(db):
    user = gen_user(gen_contract())
    with pipelined(), database.atomic():
        with deferred():
            changed = update_rows(User, '"id" = ?', (user.id,), name="後で 書く")
            entry = audit.record(user, "deferred_test", target_user=user)
        # A query in the block waits for its answer, and sees what the block wrote before it.
        assert first_row(User, '"id" = ?', user.id).name == "後で 書く"
    # PostgreSQL has not answered the deferred writes yet: no row count, no id.
    assert (changed, entry.id) == ((None, None) if is_postgres() else (1, entry.id))
    assert User.get_by_id(user.id).name == "後で 書く"
    assert AuditEntry.select().where(AuditEntry.action == "deferred_test").count() == 1


def test_statements_that_are_not_deferred_answer_as_usual_in_a_pipeline(db):
    user = gen_user(gen_contract())
    with pipelined(), database.atomic():
        assert update_rows(User, '"id" = ?', (user.id,), name="すぐ") == 1
        assert User.update(phone="0312345678").where(User.id == user.id).execute() == 1
        assert insert_row(WebSession, key_hash="p" * 64, principal="u:1", data="{}").id is not None
    assert User.get_by_id(user.id).phone == "0312345678"


def test_a_deferred_write_that_fails_keeps_nothing_of_the_transaction(db):
    """On PostgreSQL the failure comes back at the block's end (with the COMMIT): as peewee's
    IntegrityError, nothing of the transaction kept, and the connection usable afterwards."""
    user = gen_user(gen_contract())
    with pytest.raises(IntegrityError):
        with pipelined(), database.atomic():
            update_rows(User, '"id" = ?', (user.id,), name="途中")
            with deferred():
                update_rows(User, '"id" = ?', (user.id,), phone="0399999999")
                insert_row(AuditEntry, action="deferred_test", target_user=10**9, actor_kind="system")
    stored = User.get_by_id(user.id)
    assert stored.name != "途中" and stored.phone != "0399999999"
    assert not AuditEntry.select().where(AuditEntry.action == "deferred_test").exists()
    assert database.execute_sql("SELECT 1").fetchone()[0] == 1 and not database.in_transaction()


def test_an_error_in_the_block_keeps_nothing_either(db):
    user = gen_user(gen_contract())
    with pytest.raises(RuntimeError):
        with pipelined(), database.atomic():
            with deferred():
                update_rows(User, '"id" = ?', (user.id,), name="途中")
            raise RuntimeError("stop")
    assert User.get_by_id(user.id).name != "途中"
    assert database.execute_sql("SELECT 1").fetchone()[0] == 1


# --- ask_ahead(): a read sent with the next statement that waits -----------------------------------

def _statements(fn) -> int:
    with Statements() as seen:
        fn()
    return len(seen)


def test_a_read_asked_ahead_is_answered_with_the_next_statement_and_not_asked_again(db):
    user = gen_user(gen_contract(), name="先に 聞く")
    got = []

    def block():
        with pipelined(), database.atomic():
            ask_ahead("who", User, '"id" = ?', user.id)
            update_rows(User, '"id" = ?', (user.id,), phone="0311112222")   # waits: brings both
            got.append(first_row(User, '"id" = ?', user.id, ahead="who"))

    count = _statements(block)
    assert got[0].name == "先に 聞く" and got[0].id == user.id
    # PostgreSQL: the read sent ahead and the UPDATE (first_row did not ask again); SQLite: nothing
    # is sent ahead, the UPDATE and first_row's own read.
    assert count == 2


def test_an_answer_asked_ahead_can_be_read_before_anything_else_waits(db):
    user = gen_user(gen_contract())
    with pipelined(), database.atomic():
        ask_ahead("who", User, '"id" = ?', user.id)
        assert first_row(User, '"id" = ?', user.id, ahead="who").id == user.id


def test_an_answer_asked_ahead_and_not_taken_is_dropped_at_the_end_of_its_block(db):
    user = gen_user(gen_contract(), name="前")
    with pipelined(), database.atomic():
        ask_ahead("who", User, '"id" = ?', user.id)
    User.update(name="後").where(User.id == user.id).execute()
    with pipelined(), database.atomic():
        assert first_row(User, '"id" = ?', user.id, ahead="who").name == "後"
    assert first_row(User, '"id" = ?', user.id, ahead="who").name == "後"


def test_asking_ahead_outside_a_pipeline_sends_nothing(db):
    user = gen_user(gen_contract())
    assert _statements(lambda: ask_ahead("who", User, '"id" = ?', user.id)) == 0
