"""The migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""
from playhouse.schema_diff import diff_models

from accounts import search_index
from accounts.db import database, is_postgres
from accounts.models import ALL_MODELS
from accounts.schema import pending, runner


def test_migrations_create_exactly_what_the_models_declare(db):
    diff = diff_models(database.obj, ALL_MODELS)
    # The trigram indexes belong to the search index (accounts.search_index), not to a model.
    diff = diff._replace(drop_indexes=[i for i in diff.drop_indexes
                                       if i.name not in search_index.OWN_INDEXES])
    assert not diff, f"models and migrations differ:\n{diff}"


def test_no_migration_is_left_pending(db):
    assert pending() == []
    applied = {m.name for m in runner().status() if m.applied}
    assert {"0001_initial", "0002_search_index", "0003_prefix_cover_indexes",
            "0005_bulk_corrections", "0010_prefix_bucket_indexes", "0011_name_joined_trgm"} <= applied


def test_substring_search_index_exists(db):
    if is_postgres():
        rows = database.execute_sql(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'user' AND right(indexname, 4) = 'trgm'"
        ).fetchall()
        assert {r[0] for r in rows} == {"user_login_id_key_trgm", "user_email_key_trgm", "user_name_trgm",
                                        "user_phone_trgm", "user_name_joined_trgm"}
    else:
        rows = database.execute_sql(
            "SELECT name FROM sqlite_master WHERE name = 'user_search' OR name LIKE 'user_search_a%'"
        ).fetchall()
        assert {r[0] for r in rows} >= {"user_search", "user_search_ai", "user_search_au", "user_search_ad"}


def test_db_upgrade_restores_indexes_an_interrupted_import_left_dropped(runner, db):
    from accounts.models import User

    names = [m.name for m in database.get_indexes("user") if m.name not in search_index.OWN_INDEXES
             and not m.name.endswith("_pkey") and "login_id_key" in m.columns]
    assert names
    database.execute_sql(f'DROP INDEX "{names[0]}"')
    result = runner.invoke(args=["db-upgrade"])
    assert result.exit_code == 0, result.output
    assert "restored after an interrupted import: index user(portal, login_id_key)" in result.output
    assert any(tuple(m.columns) == ("portal", "login_id_key") for m in database.get_indexes("user"))
    assert User.select().count() == 0


def _search_schema():
    """The search index's part of the schema, as the database describes it."""
    if is_postgres():
        indexes = database.execute_sql(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'user' ORDER BY indexname"
        ).fetchall()
        extensions = database.execute_sql("SELECT extname FROM pg_extension ORDER BY extname").fetchall()
        return sorted(i for i in indexes if i[0] in search_index.PG_INDEXES), extensions
    return database.execute_sql(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name LIKE 'user_search%' ORDER BY name"
    ).fetchall()


def test_upgrading_step_by_step_gives_todays_schema(make_app, empty_database_url):
    """0002 and 0003 run frozen statements: step by step, each adds what it added when written,
    and the end equals what accounts.search_index creates today."""
    from accounts.db import init_database
    from tests.conftest import TEST_DATABASE_URL

    make_app(DATABASE_URL=empty_database_url)
    try:
        with database.connection_context():
            steps = runner()
            names = [m.name for m in steps.migrations()]
            for name in names:
                assert steps.up(target=name) == [name]
                if name == "0002_search_index":
                    after_0002 = _search_schema()
            if is_postgres():
                created = {n for n, _sql in after_0002[0]}
                assert created == {f"user_{c}_trgm" for c in search_index.SEARCH_COLUMNS}  # no covering ones
                assert ("pg_trgm",) in after_0002[1]
            else:
                assert {r[1] for r in after_0002} >= {"user_search", *search_index.SQLITE_TRIGGERS}
            upgraded = _search_schema()
            diff = diff_models(database.obj, ALL_MODELS)
            diff = diff._replace(drop_indexes=[i for i in diff.drop_indexes
                                               if i.name not in search_index.OWN_INDEXES])
            assert not diff, f"models and migrations differ:\n{diff}"

            search_index.drop()
            search_index.create()      # what today's code creates
            assert _search_schema() == upgraded
            assert pending() == []
    finally:
        init_database(TEST_DATABASE_URL)
