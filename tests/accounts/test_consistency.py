"""``flask --app app check-db``: a consistent database passes; each kind of damage is one line."""
import pytest

from accounts import outbox
from accounts.db import database, is_postgres
from accounts.models import ALL_MODELS, Contract, Mail, User
from tests.helpers import gen_contract, gen_user

pytestmark = pytest.mark.usefixtures("db")


def _world():
    parent = gen_contract(ecid="ecid3000000001")
    child = gen_contract(parent=parent, ecid="ecid3000000002")
    done = gen_user(child, login_id="done", first_login_done=True)
    gen_user(child, login_id="pending")
    outbox.enqueue(recipient="done@example.jp", subject="s", body_text="t", kind="test", user=done)
    return parent, child, done


def _check(runner, *args):
    result = runner.invoke(args=["check-db", *args])
    return result.exit_code, result.output.strip().splitlines()


def test_a_consistent_database_passes(runner):
    _world()
    code, lines = _check(runner)
    assert code == 0 and lines == [f"ok: {len(ALL_MODELS)} tables; 2 contracts, 2 users, 1 mails"]


def test_a_counter_that_does_not_match_the_rows_is_one_line(runner):
    _, child, _ = _world()
    Contract.update(users_first_login_done=2).where(Contract.id == child.id).execute()
    code, lines = _check(runner)
    assert code == 1
    assert lines == ["contract ecid3000000002: users_total 2 but 2 users; users_first_login_done 2 "
                     "but 1 users with a finished first login"]


def test_a_mail_without_its_user_and_an_orphan_row_are_reported(runner):
    _, _, done = _world()
    Mail.update(user=None).execute()
    # A restore without its constraints could hold such a row; the live schema refuses it.
    orphan = ("INSERT INTO mail_attempt (mail_id, at, ok, smtp_answer) "
              "VALUES (987654, '2026-01-01 00:00:00', %s, '')")
    if is_postgres():
        with database.atomic():
            database.execute_sql("SET LOCAL session_replication_role = replica")
            database.execute_sql(orphan % "true")
    else:
        database.execute_sql("PRAGMA foreign_keys = OFF")
        database.execute_sql(orphan % "1")
        database.execute_sql("PRAGMA foreign_keys = ON")
    code, lines = _check(runner, "--quick")
    assert code == 1
    assert "1 mails have no user" in lines
    assert "1 orphan rows in mail_attempt: mail_id points at no mail row" in lines


def test_a_missing_index_is_reported(runner):
    from accounts.search_index import OWN_INDEXES

    _world()
    name = next(i.name for i in database.get_indexes("user")
                if tuple(i.columns) == ("email_key",) and i.name not in OWN_INDEXES)
    database.execute_sql(f'DROP INDEX "{name}"')
    try:
        code, lines = _check(runner, "--quick")
    finally:   # the schema is shared by the whole session
        database.execute_sql(f'CREATE INDEX "{name}" ON "user" (email_key)')
    assert code == 1 and lines == ["missing index user(email_key)"]


def test_a_search_index_out_of_step_with_the_users_is_reported(runner):
    if is_postgres():
        pytest.skip("PostgreSQL's trigram indexes are ordinary indexes, checked as present")
    from accounts import search_index

    _world()
    database.execute_sql("DROP TRIGGER user_search_au")
    User.update(name="名前が変わった").where(User.login_id == "done").execute()
    try:
        code, lines = _check(runner)
    finally:   # repaired as the line says, so that the next test can empty the tables
        search_index.create()
        database.execute_sql("INSERT INTO user_search(user_search) VALUES ('rebuild')")
    assert _check(runner) == (0, [f"ok: {len(ALL_MODELS)} tables; 2 contracts, 2 users, 1 mails"])
    assert code == 1
    assert "missing search index user_search_au" in lines
    assert any(line.startswith("search index user_search does not match the user table") for line in lines)


def test_a_database_without_schema_says_to_run_db_upgrade(runner, tmp_path):
    from accounts.db import init_database
    from tests.conftest import TEST_DATABASE_URL

    init_database(f"sqlite:///{tmp_path}/empty.db")
    try:
        code, lines = _check(runner)
    finally:
        init_database(TEST_DATABASE_URL)
    assert code == 1 and lines == ["error: the database has no schema: run flask --app app db-upgrade first"]
